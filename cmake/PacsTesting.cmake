# pacs_add_test(NAME name SOURCES ... LIBS ... [LABELS unit|integration|e2e] [TIMEOUT s] [COST s]
#               [SANITIZERS])
# COST: about how long the suite runs, for the long ones. ctest -j starts the costliest
# first; without it a fresh tree (no timings recorded yet) may start a minute-long suite
# last, alone on one core.
# One gtest binary per component, registered with ctest. Defined before any
# subdirectory so probe kinds can declare their tests in their own folder.
#
# sanitizer_suites: one target that builds what scripts/test runs in the sanitizer trees
# (every suite labelled unit or integration, the ones marked SANITIZERS, and the agent), so
# those trees do not compile the e2e-only suites and the benchmarks they never run.
if(PACS_BUILD_TESTS AND NOT TARGET sanitizer_suites)
  add_custom_target(sanitizer_suites)
endif()
function(pacs_sanitizer_suite target)
  if(TARGET sanitizer_suites)
    add_dependencies(sanitizer_suites ${target})
  endif()
endfunction()

function(pacs_add_test)
  if(NOT PACS_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(T "SANITIZERS" "NAME;TIMEOUT;COST" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} pacs_test_support GTest::gtest_main pacs_warnings)
  target_compile_definitions(${T_NAME} PRIVATE PACS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} --gtest_color=no)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "PACS_AGENT_BINARY=$<TARGET_FILE:pacs-agent>;PACS_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  if(T_COST)
    set_tests_properties(${T_NAME} PROPERTIES COST ${T_COST})
  endif()
  if(T_SANITIZERS OR "unit" IN_LIST T_LABELS OR "integration" IN_LIST T_LABELS)
    pacs_sanitizer_suite(${T_NAME})
  endif()
endfunction()
