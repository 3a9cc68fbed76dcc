# Registers every Boost.Test case of an executable as its own CTest test (suite/case), so
# `ctest -N` lists them and `ctest -R` selects them. The list is read from the built binary
# (--list_content) after each build, like gtest_discover_tests.
function(tessera_discover_boost_tests target)
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  # Until the binary is built and listed, CTest sees one failing placeholder, never nothing.
  if(NOT EXISTS ${ctest_file})
    file(WRITE ${ctest_file} "add_test(${target}_not_built \"${CMAKE_COMMAND}\" -E false)\n")
  endif()
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D "EXE=$<TARGET_FILE:${target}>" -D "OUT=${ctest_file}"
            -D "WORKDIR=${CMAKE_CURRENT_BINARY_DIR}" -D "AVX2_SUITES=${TESSERA_AVX2_SUITES}"
            -P "${PROJECT_SOURCE_DIR}/cmake/BoostTestList.cmake"
    BYPRODUCTS ${ctest_file}
    VERBATIM)
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${ctest_file})
endfunction()
