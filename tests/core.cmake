# Agent core: config, scheduler/result store, HTTP server.
pacs_add_test(NAME config_test SOURCES unit/config_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME scheduler_test SOURCES unit/scheduler_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME run_path_test SOURCES unit/run_path_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME registry_test SOURCES unit/registry_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME http_server_test SOURCES unit/http_server_test.cpp LIBS pacs_agent_lib ZLIB::ZLIB OpenSSL::Crypto crypt LABELS unit)
# The web surface under abuse: starvation, deadlines, bcrypt, lifecycle, /probe coalescing.
pacs_add_test(NAME http_hardening_test SOURCES unit/http_hardening_test.cpp LIBS pacs_agent_lib OpenSSL::Crypto crypt LABELS unit TIMEOUT 300)
# The built binary, end to end (needs promtool from the Debian prometheus package).
pacs_add_test(NAME agent_e2e_test SOURCES e2e/agent_e2e_test.cpp LABELS e2e TIMEOUT 300)
add_dependencies(agent_e2e_test pacs-agent)
# The binary under abuse: PHI in spool names, a dead mount, signals, EMFILE, proxies.
pacs_add_test(NAME hardening_e2e_test SOURCES e2e/hardening_e2e_test.cpp LIBS crypt LABELS e2e TIMEOUT 900)
add_dependencies(hardening_e2e_test pacs-agent)
pacs_add_test(NAME dicom_e2e_test SOURCES e2e/dicom_e2e_test.cpp LABELS e2e TIMEOUT 300)
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
