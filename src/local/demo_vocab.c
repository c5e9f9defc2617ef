/*
 * demo_vocab — the llama SPM vocabulary (models/ggml-vocab-llama-spm.gguf from
 * the pinned llama.cpp bundle, ~720 KB) compiled into the binary, so
 * `skuld demo-model` and the embedded default need no file at run time.
 * SKULD_LLAMA_VOCAB is set by cmake/Llama.cmake.
 */
#include "local/demo_model.h"

__asm__(".section .rodata\n"
        ".balign 64\n"
        "demo__vocab_start:\n"
        ".incbin \"" SKULD_LLAMA_VOCAB "\"\n"
        "demo__vocab_end:\n"
        ".previous\n");

extern const unsigned char demo__vocab_start[] __asm__("demo__vocab_start");
extern const unsigned char demo__vocab_end[] __asm__("demo__vocab_end");

const unsigned char *demo_vocab_data(size_t *len)
{
    *len = (size_t)(demo__vocab_end - demo__vocab_start);
    return demo__vocab_start;
}
