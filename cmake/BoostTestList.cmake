# Script mode: writes an add_test() for every enabled test case of a Boost.Test binary.
# Inputs: EXE (the binary), OUT (the CTest include file), WORKDIR, AVX2_SUITES (comma-separated suites
# to run twice, the second time capped to AVX2). Each test is labelled with its suite.
execute_process(COMMAND "${EXE}" --list_content
                OUTPUT_VARIABLE out ERROR_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} --list_content failed (${rc}): ${out}${listing}")
endif()

cmake_policy(VERSION 3.25)  # if(IN_LIST)
string(REPLACE "," ";" AVX2_SUITES "${AVX2_SUITES}")

# The listing is indented by 4 spaces per level; enabled units end with '*'.
string(REPLACE "\n" ";" lines "${listing}")
set(path "")
set(depths "")
set(names "")
set(enabled "")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^( *)([A-Za-z0-9_]+)(\\*?)")
    continue()
  endif()
  string(LENGTH "${CMAKE_MATCH_1}" indent)
  math(EXPR depth "${indent} / 4")
  set(name "${CMAKE_MATCH_2}")
  set(on "${CMAKE_MATCH_3}")
  list(LENGTH path len)
  while(len GREATER depth)
    list(POP_BACK path)
    list(LENGTH path len)
  endwhile()
  list(APPEND path "${name}")
  list(JOIN path "/" full)
  list(APPEND depths ${depth})
  list(APPEND names "${full}")
  list(APPEND enabled "x${on}")
endforeach()

# ctest runs tests side by side on few cores: OpenMP threads that spin while waiting at a
# barrier then steal the cores of the other test's threads, and a 2 s test took 100 s. Threads
# that sleep at once keep the suite's time near the sum of its tests.
set(wait_policy "OMP_WAIT_POLICY=passive")

# A leaf (a test case) is an entry not followed by a deeper one.
set(result "")
list(LENGTH names n)
if(n GREATER 0)
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    list(GET depths ${i} d)
    list(GET names ${i} full)
    list(GET enabled ${i} on)
    math(EXPR next "${i} + 1")
    set(leaf TRUE)
    if(next LESS n)
      list(GET depths ${next} nd)
      if(nd GREATER d)
        set(leaf FALSE)
      endif()
    endif()
    if(leaf AND on STREQUAL "x*")
      string(REGEX REPLACE "/.*" "" suite "${full}")
      string(APPEND result "add_test([=[${full}]=] \"${EXE}\" --run_test=${full} --color_output=no)\n"
             "set_tests_properties([=[${full}]=] PROPERTIES WORKING_DIRECTORY \"${WORKDIR}\" LABELS ${suite} "
             "ENVIRONMENT ${wait_policy} SKIP_REGULAR_EXPRESSION \"SKIPPED [A-Za-z0-9_]+/\")\n")
      # The same case again with oneDNN, and so our own kernels, capped to AVX2: the path
      # every AVX2-only CPU takes, proven whatever CPU runs the suite.
      if(suite IN_LIST AVX2_SUITES)
        string(APPEND result "add_test([=[avx2/${full}]=] \"${EXE}\" --run_test=${full} --color_output=no)\n"
               "set_tests_properties([=[avx2/${full}]=] PROPERTIES WORKING_DIRECTORY \"${WORKDIR}\" "
               "LABELS \"avx2;${suite}\" ENVIRONMENT \"ONEDNN_MAX_CPU_ISA=AVX2;${wait_policy}\" "
               "SKIP_REGULAR_EXPRESSION \"SKIPPED [A-Za-z0-9_]+/\")\n")
      endif()
    endif()
  endforeach()
endif()
file(WRITE "${OUT}" "${result}")
