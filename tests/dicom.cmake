# DICOM probes (probes/dicom): config, reason mapping, and integration tests
# against real peers on 127.0.0.1 (Orthanc, dcmqrscp, storescp, wlmscpfs).
pacs_add_test(NAME dicom_config_test SOURCES unit/dicom_config_test.cpp
  LIBS pacs_agent_lib pacs_probes_dicom LABELS unit)
target_compile_definitions(dicom_config_test PRIVATE PACS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
pacs_add_test(NAME dicom_integration_test SOURCES integration/dicom_integration_test.cpp
  LIBS pacs_probes_dicom LABELS integration TIMEOUT 300)
