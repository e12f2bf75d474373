# Alert rules, dashboards and deploy/ artifacts. Included from tests/CMakeLists.txt.
#   ctest -L alerts    rules (promtool check/test), lint, dashboards, Prometheus/Alertmanager configs
#   ctest -L package   systemd unit verification
#   ctest -L e2e       full stack: Orthanc → agent → Prometheus → Alertmanager → webhook
# promtool/amtool/systemd-analyze come from Debian packages CI installs; when one is
# missing the test fails with "not found" rather than silently skipping.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
find_program(PACS_PROMTOOL promtool)
if(NOT PACS_PROMTOOL)
  set(PACS_PROMTOOL promtool)
endif()

file(GLOB PACS_RULE_FILES ${PROJECT_SOURCE_DIR}/alerts/*.rules.yml)
file(GLOB PACS_RULE_TESTS ${PROJECT_SOURCE_DIR}/alerts/tests/*.yml)

add_test(NAME alerts_check_rules COMMAND ${PACS_PROMTOOL} check rules ${PACS_RULE_FILES})
add_test(NAME alerts_test_rules COMMAND ${PACS_PROMTOOL} test rules ${PACS_RULE_TESTS}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# The same rule files, unchanged, must load in vmalert (MetricsQL) for central evaluation on
# VictoriaMetrics (docs/scaling.md): -dryRun parses every expression and template.
find_program(PACS_VMALERT vmalert)
if(NOT PACS_VMALERT)
  set(PACS_VMALERT vmalert)
endif()
set(_pacs_vmalert_rule_args)
foreach(_f ${PACS_RULE_FILES})
  list(APPEND _pacs_vmalert_rule_args -rule=${_f})
endforeach()
add_test(NAME alerts_vmalert_rules COMMAND ${PACS_VMALERT} -dryRun -loggerLevel=ERROR ${_pacs_vmalert_rule_args})
add_test(NAME alerts_lint COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/lint-alerts)
add_test(NAME alerts_lint_catches_violations
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/e2e/lint_fixture_test.sh ${PROJECT_SOURCE_DIR})
add_test(NAME dashboards_check COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-dashboards)
# The committed JSON must be exactly what dashboards/generate.py produces.
add_test(NAME dashboards_generated COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/dashboards/generate.py --check)
add_test(NAME dashboards_generated_catches_drift
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/e2e/dashboard_drift_test.sh ${PROJECT_SOURCE_DIR})
add_test(NAME dashboards_check_catches_violations
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/e2e/dashboard_fixture_test.sh ${PROJECT_SOURCE_DIR})
add_test(NAME deploy_prometheus_config
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-deploy --only prometheus)
add_test(NAME deploy_alertmanager_config
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-deploy --only alertmanager)
set_tests_properties(alerts_check_rules alerts_test_rules alerts_vmalert_rules alerts_lint alerts_lint_catches_violations
  dashboards_check dashboards_generated dashboards_generated_catches_drift
  dashboards_check_catches_violations deploy_prometheus_config deploy_alertmanager_config
  PROPERTIES LABELS alerts TIMEOUT 600)

# systemd-analyze verify on the unit, with the freshly built binary standing in for
# /usr/bin/pacs-agent (verify checks that ExecStart is executable).
add_test(NAME package_systemd_unit
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-deploy --only unit
          --binary $<TARGET_FILE:pacs-agent>)
add_test(NAME package_systemd_unit_catches_violations
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/e2e/deploy_fixture_test.sh ${PROJECT_SOURCE_DIR})
# The shipped example config must be valid for the agent it ships with.
add_test(NAME package_example_config
  COMMAND $<TARGET_FILE:pacs-agent> --config.check --config.file=${PROJECT_SOURCE_DIR}/deploy/pacs-agent.toml)
set_tests_properties(package_systemd_unit package_systemd_unit_catches_violations package_example_config
  PROPERTIES LABELS package TIMEOUT 300)

# End to end: real Orthanc, agent, Prometheus with our rules, Alertmanager, webhook sink.
# Runs the fast variant (rules rendered with short for:/windows); `tests/e2e/stack_test.py
# --default-rules` measures time-to-page with the shipped rules and 15 s probes.
add_test(NAME e2e_stack
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/e2e/stack_test.py $<TARGET_FILE:pacs-agent>)
set_tests_properties(e2e_stack PROPERTIES LABELS e2e TIMEOUT 300 RUN_SERIAL TRUE)
