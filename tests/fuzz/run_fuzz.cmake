# One ctest fuzz run (tests/fuzz/CMakeLists.txt): copy the seed corpus into a
# fresh work directory in the build tree, run the fuzzer there for a fixed
# budget, fail when it reports anything (crash, leak, timeout, OOM).
#   cmake -DFUZZER=bin -DSEEDS=dir -DWORK=dir [-DDICT=file] -DSECONDS=n -DRUNS=n [-DSEED=n]
#         -P run_fuzz.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
file(GLOB seeds ${SEEDS}/*)
if(NOT seeds)
  message(FATAL_ERROR "no seed inputs in ${SEEDS}")
endif()
file(COPY ${seeds} DESTINATION ${WORK}/corpus)
set(args -max_total_time=${SECONDS} -runs=${RUNS} -rss_limit_mb=2048 -timeout=10
    -artifact_prefix=${WORK}/artifacts/ -print_final_stats=1)
if(DICT)
  list(APPEND args -dict=${DICT})
endif()
if(SEED)
  list(APPEND args -seed=${SEED})
endif()
message(STATUS "${FUZZER} ${args} ${WORK}/corpus")
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus WORKING_DIRECTORY ${WORK}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/artifacts/*)
  message(FATAL_ERROR "fuzzer exited with ${rc}; input(s): ${found}\n"
                      "reproduce: ${FUZZER} <input>")
endif()
