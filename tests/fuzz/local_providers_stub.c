/*
 * local_providers_stub — provider.c's table names the in-process providers
 * (echo: libevent; llamacpp: llama.cpp), which no fuzz target exercises.
 * These empty tables let the fuzz builds link provider.c without them.
 */
#include "provider/provider.h"

const prov_ops_t provider_echo = {.type = "echo"};
const prov_ops_t provider_llamacpp = {.type = "llamacpp"};
