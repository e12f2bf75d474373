# Storage and queue probes (probes/filesystem, probes/queue).
pacs_add_test(NAME filesystem_test SOURCES unit/filesystem_test.cpp
  LIBS pacs_agent_lib LABELS unit TIMEOUT 120)
target_compile_definitions(filesystem_test PRIVATE PACS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

pacs_add_test(NAME queue_directory_test SOURCES unit/queue_directory_test.cpp
  LIBS pacs_agent_lib LABELS unit TIMEOUT 120)
