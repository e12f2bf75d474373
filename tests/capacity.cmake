# Capacity report (report/pacs-capacity-report). Included from tests/CMakeLists.txt.
#   ctest -R e2e_capacity_report   90 days backfilled into a real Prometheus (TLS, basic auth),
#                                  the report, its figures against the truth, Chromium screenshot
# The capacity recording rules and alerts are promtool-tested with the other rules
# (alerts_test_rules in alerts.cmake: alerts/tests/*.yml).
#
# The report runs on Debian's python3 (its #! line), where python3-matplotlib lives; the test
# uses the same interpreter (it reads the screenshot with python3-pil, which matplotlib pulls
# in). prometheus, promtool, chromium and openssl come from scripts/lib.sh PACS_PACKAGES;
# when one is missing the test fails saying so.
find_program(PACS_DEBIAN_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT PACS_DEBIAN_PYTHON3)
  set(PACS_DEBIAN_PYTHON3 /usr/bin/python3)
endif()
add_test(NAME e2e_capacity_report
  COMMAND ${PACS_DEBIAN_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/e2e/capacity_report_test.py)
set_tests_properties(e2e_capacity_report PROPERTIES LABELS e2e TIMEOUT 600 COST 36)
