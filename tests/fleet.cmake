# The multi-site (fleet) chain of docs/scaling.md. Included from tests/CMakeLists.txt.
#   deploy_fleet_config   deploy/fleet/ configs load in the installed vmagent/vmalert; units verify
#   e2e_fleet             two sites (Orthanc + agent + vmagent each) → VictoriaMetrics → vmalert
#                         (shipped rules) → Alertmanager (shipped config) → webhook; dashboards
#                         on VictoriaMetrics; a 2-minute central outage loses no sample
# Needs Debian's victoria-metrics (vmagent, vmalert), orthanc, prometheus-alertmanager, dcmtk,
# python3-yaml; a missing one fails the test ("not found"), never skips it.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME deploy_fleet_config
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-deploy --only fleet)
set_tests_properties(deploy_fleet_config PROPERTIES LABELS alerts TIMEOUT 300)

# About 5 minutes, 2 of them the deliberate central outage.
add_test(NAME e2e_fleet
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/e2e/fleet_test.py $<TARGET_FILE:pacs-agent>)
set_tests_properties(e2e_fleet PROPERTIES LABELS e2e TIMEOUT 900 RUN_SERIAL TRUE)
