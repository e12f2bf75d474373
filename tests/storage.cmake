# Storage and queue probes (probes/filesystem, probes/queue).
pacs_add_test(NAME filesystem_test SOURCES unit/filesystem_test.cpp
  LIBS pacs_agent_lib LABELS unit TIMEOUT 120)
target_compile_definitions(filesystem_test PRIVATE PACS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

pacs_add_test(NAME queue_directory_test SOURCES unit/queue_directory_test.cpp
  LIBS pacs_agent_lib LABELS unit TIMEOUT 120)

pacs_add_test(NAME queue_http_test SOURCES integration/queue_http_test.cpp
  LIBS pacs_agent_lib LABELS integration TIMEOUT 120)
target_compile_definitions(queue_http_test PRIVATE PACS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

pacs_add_test(NAME queue_orthanc_test SOURCES integration/queue_orthanc_test.cpp
  LIBS pacs_agent_lib nlohmann_json::nlohmann_json LABELS integration TIMEOUT 300)
