# Agent core: config, scheduler/result store, HTTP server.
pacs_add_test(NAME config_test SOURCES unit/config_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME scheduler_test SOURCES unit/scheduler_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME run_path_test SOURCES unit/run_path_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME registry_test SOURCES unit/registry_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME http_server_test SOURCES unit/http_server_test.cpp LIBS pacs_agent_lib ZLIB::ZLIB OpenSSL::Crypto crypt LABELS unit)
# The web surface under abuse: starvation, deadlines, bcrypt, lifecycle, /probe coalescing.
pacs_add_test(NAME http_hardening_test SOURCES unit/http_hardening_test.cpp LIBS pacs_agent_lib OpenSSL::Crypto crypt LABELS unit TIMEOUT 300)
# The built binary, end to end (needs promtool from the Debian prometheus package).
pacs_add_test(NAME agent_e2e_test SOURCES e2e/agent_e2e_test.cpp LABELS e2e TIMEOUT 300 COST 50 SANITIZERS)
add_dependencies(agent_e2e_test pacs-agent)
# The binary under abuse: PHI in spool names, a dead mount, signals, EMFILE, proxies.
pacs_add_test(NAME hardening_e2e_test SOURCES e2e/hardening_e2e_test.cpp LIBS crypt LABELS e2e TIMEOUT 900)
add_dependencies(hardening_e2e_test pacs-agent)
pacs_add_test(NAME dicom_e2e_test SOURCES e2e/dicom_e2e_test.cpp LABELS e2e TIMEOUT 300 SANITIZERS)
add_dependencies(dicom_e2e_test pacs-agent)
# docs/configuration.md and docs/metrics.md carry every kind's README sections (scripts/gen-docs).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME docs_generated_fresh COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/gen-docs --check)
set_tests_properties(docs_generated_fresh PROPERTIES LABELS unit)
# Layers only look down (docs/architecture.md): agent -> framework <- kinds.
add_test(NAME layering COMMAND sh ${PROJECT_SOURCE_DIR}/tests/e2e/layering_fixture_test.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(layering PROPERTIES LABELS unit)
# docs/metrics.md against what the binary exports with every kind's golden
# fixture running (probes/*/tests/golden_fixture.cpp, found by glob).
file(GLOB PACS_GOLDEN_FIXTURES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/probes/*/tests/golden_fixture.cpp)
pacs_add_test(NAME metrics_docs_test SOURCES e2e/metrics_docs_test.cpp ${PACS_GOLDEN_FIXTURES}
  LABELS e2e TIMEOUT 300)
add_dependencies(metrics_docs_test pacs-agent)
# Scale: cached /metrics rendering and gzip parts, [agent] include, the series budget.
pacs_add_test(NAME exposition_test SOURCES unit/exposition_test.cpp LIBS pacs_agent_lib ZLIB::ZLIB LABELS unit)
pacs_add_test(NAME config_include_test SOURCES unit/config_include_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME scale_e2e_test SOURCES e2e/scale_e2e_test.cpp LABELS e2e TIMEOUT 300)
add_dependencies(scale_e2e_test pacs-agent)
# It runs every kind's checks (the registry lists them) against their peers, the hl7
# kind's npm MLLP listener included.
pacs_add_test(NAME series_budget_test SOURCES e2e/series_budget_test.cpp LIBS pacs_agent_lib LABELS e2e TIMEOUT 400)
get_target_property(PACS_BUDGET_NODE_MODULES hl7_test_peer PACS_NODE_MODULES)
target_compile_definitions(series_budget_test PRIVATE PACS_HL7_NODE_MODULES="${PACS_BUDGET_NODE_MODULES}")
add_dependencies(series_budget_test pacs-agent hl7_test_peer)
# The shared HTTP client (probes/lib/http) against scripted loopback peers: resets, closes,
# silence, and what its transcript shows.
pacs_add_test(NAME http_client_test SOURCES unit/http_client_test.cpp LIBS pacs_lib_http LABELS integration TIMEOUT 120)
# /probe?debug=true transcripts, per-target history and pages, status page figures.
pacs_add_test(NAME target_pages_test SOURCES unit/target_pages_test.cpp LIBS pacs_agent_lib LABELS integration TIMEOUT 180)
# The status page and a target page rendered by headless Chromium (Debian chromium), the
# DOM checked for every row's figure against real peers; screenshots in build/screenshots/.
add_test(NAME status_page_browser
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/e2e/status_page_browser_test.py
          $<TARGET_FILE:pacs-agent> --screenshots ${PROJECT_BINARY_DIR}/screenshots)
set_tests_properties(status_page_browser PROPERTIES LABELS e2e TIMEOUT 300)
