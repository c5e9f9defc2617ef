/*
 * local_providers_stub — provider.c's table names the in-process providers
 * (echo: libevent; llamacpp: llama.cpp) and vertex (its bearer comes from
 * upstream/gtoken.c: libcurl, libjwt and a fetcher thread), which no fuzz
 * target exercises. These empty tables let the fuzz builds link provider.c
 * without them. (Vertex's bodies are the gemini and anthropic translations,
 * which fuzz_xlate covers.)
 */
#include "provider/provider.h"

const prov_ops_t provider_echo = {.type = "echo"};
const prov_ops_t provider_llamacpp = {.type = "llamacpp"};
const prov_ops_t provider_vertex = {.type = "vertex"};
