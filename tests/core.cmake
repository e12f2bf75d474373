# Agent core: config, scheduler/result store, HTTP server.
pacs_add_test(NAME config_test SOURCES unit/config_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME scheduler_test SOURCES unit/scheduler_test.cpp LIBS pacs_agent_lib LABELS unit)
pacs_add_test(NAME http_server_test SOURCES unit/http_server_test.cpp LIBS pacs_agent_lib ZLIB::ZLIB LABELS unit)
