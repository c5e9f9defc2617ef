# Embedded llama.cpp (DESIGN.md "Local inference"): the prebuilt libraries and
# headers that scripts/install-llama.sh lays out under SKULD_LLAMA_DIR, linked
# with a RUNPATH to them so the binary finds them (and its CPU backends) at run time.
#
# Defines the interface target skuld_llama and SKULD_LLAMA_VOCAB (the SPM
# vocabulary embedded into skuld for the demo model).
set(SKULD_LLAMA_DIR ${CMAKE_SOURCE_DIR}/.deps/llama CACHE PATH
    "llama.cpp laid out by scripts/install-llama.sh")
if(NOT EXISTS ${SKULD_LLAMA_DIR}/include/llama.h OR NOT EXISTS ${SKULD_LLAMA_DIR}/lib/libllama.so)
  message(FATAL_ERROR "llama.cpp not found in ${SKULD_LLAMA_DIR}: run scripts/install-deps.sh "
                      "(it calls scripts/install-llama.sh)")
endif()
file(REAL_PATH ${SKULD_LLAMA_DIR}/lib SKULD_LLAMA_LIB)
set(SKULD_LLAMA_VOCAB ${SKULD_LLAMA_DIR}/models/ggml-vocab-llama-spm.gguf)

add_library(skuld_llama INTERFACE)
# SYSTEM: third-party headers are not held to our -Werror.
target_include_directories(skuld_llama SYSTEM INTERFACE ${SKULD_LLAMA_DIR}/include
                           ${SKULD_LLAMA_DIR}/ggml/include)
target_link_libraries(skuld_llama INTERFACE ${SKULD_LLAMA_LIB}/libllama.so
                      ${SKULD_LLAMA_LIB}/libggml.so ${SKULD_LLAMA_LIB}/libggml-base.so ${CMAKE_DL_LIBS})
# No -rpath option of our own: CMake puts the directory of these full-path
# libraries in the build tree's RUNPATH and replaces it on install with the
# target's INSTALL_RPATH ($ORIGIN/../lib/skuld), which a linker option would not.
target_compile_definitions(skuld_llama INTERFACE SKULD_LLAMA_LIB_DIR="${SKULD_LLAMA_LIB}")

# The demo model's vocabulary is compiled into skuld (src/local/demo_vocab.c, .incbin).
set_source_files_properties(${CMAKE_SOURCE_DIR}/src/local/demo_vocab.c PROPERTIES
  COMPILE_DEFINITIONS SKULD_LLAMA_VOCAB="${SKULD_LLAMA_VOCAB}" OBJECT_DEPENDS ${SKULD_LLAMA_VOCAB})

# `skuld pull` verifies downloads with OpenSSL's EVP SHA-256.
pkg_check_modules(SKULD_OPENSSL REQUIRED IMPORTED_TARGET openssl)
