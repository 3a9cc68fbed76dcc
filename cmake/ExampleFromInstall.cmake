# Script mode: installs the built project into a fresh prefix, then configures, builds and
# runs examples/small_cnn against it with find_package(Tessera), as a user would.
# Inputs: BUILD_DIR, SOURCE_DIR, WORK_DIR, GENERATOR.
file(REMOVE_RECURSE "${WORK_DIR}")
foreach(step IN ITEMS install configure build run)
  if(step STREQUAL "install")
    set(cmd ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  elseif(step STREQUAL "configure")
    set(cmd ${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/small_cnn" -B "${WORK_DIR}/build" -G "${GENERATOR}"
            "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release)
  elseif(step STREQUAL "build")
    set(cmd ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
  else()
    set(cmd "${WORK_DIR}/build/small_cnn")
  endif()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "example ${step} failed (${rc}):\n${err}")
  endif()
endforeach()
