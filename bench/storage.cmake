# Storage and queue benchmarks (figures only).
add_executable(bench_spool_scan spool_scan.cpp)
target_link_libraries(bench_spool_scan PRIVATE pacs_agent_lib pacs_warnings)
