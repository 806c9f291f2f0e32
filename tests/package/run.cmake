# Install medinfer into a scratch prefix, then configure, build and run tests/package against it
# with nothing but CMAKE_PREFIX_PATH pointing there.
set(prefix ${WORK_DIR}/install)
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer ${SOURCE_DIR}/models/demo)
if(NOT EXISTS ${prefix}/lib/pkgconfig/medinfer.pc AND NOT EXISTS ${prefix}/lib/x86_64-linux-gnu/pkgconfig/medinfer.pc)
  message(FATAL_ERROR "medinfer.pc was not installed")
endif()
