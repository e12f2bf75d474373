# C-ECHO cost: the probe vs one echoscu process per echo, against storescp.
add_executable(bench_dicom_echo dicom_echo_bench.cpp)
target_link_libraries(bench_dicom_echo PRIVATE pacs_probes_dicom pacs_warnings)
