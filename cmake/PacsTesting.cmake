# pacs_add_test(NAME name SOURCES ... LIBS ... [LABELS unit|integration|e2e] [TIMEOUT s])
# One gtest binary per component, registered with ctest. Defined before any
# subdirectory so probe kinds can declare their tests in their own folder.
function(pacs_add_test)
  if(NOT PACS_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} pacs_test_support GTest::gtest_main pacs_warnings)
  target_compile_definitions(${T_NAME} PRIVATE PACS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} --gtest_color=no)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "PACS_AGENT_BINARY=$<TARGET_FILE:pacs-agent>;PACS_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
