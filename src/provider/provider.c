#include "provider/provider.h"

#include <string.h>

/* Every provider type; config validation accepts exactly these names. */
static const prov_ops_t *const provider_table[] = {&provider_openai,    &provider_echo,
                                                   &provider_anthropic, &provider_gemini,
                                                   &provider_ollama,    &provider_llamacpp};

const prov_ops_t *provider_ops(const char *type)
{
    for (size_t i = 0; i < sizeof provider_table / sizeof provider_table[0]; i++)
        if (strcmp(provider_table[i]->type, type) == 0) return provider_table[i];
    return NULL;
}

const char *provider_openai_path(endpoint_t ep)
{
    switch (ep) {
    case EP_CHAT:
        return "/chat/completions";
    case EP_COMPLETIONS:
        return "/completions";
    case EP_EMBEDDINGS:
        return "/embeddings";
    case EP_MODELS:
        return "/models";
    default:
        return "/";
    }
}
