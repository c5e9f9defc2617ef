#include "provider/provider.h"

#include <string.h>

/* Every provider type; config validation accepts exactly these names. */
static const prov_ops_t *const provider_table[] = {
    &provider_openai, &provider_echo,     &provider_anthropic, &provider_gemini,
    &provider_ollama, &provider_llamacpp, &provider_azure,     &provider_vertex};

const prov_ops_t *provider_ops(const char *type)
{
    for (size_t i = 0; i < sizeof provider_table / sizeof provider_table[0]; i++)
        if (strcmp(provider_table[i]->type, type) == 0) return provider_table[i];
    return NULL;
}

static int provider__sink(const char *p, size_t n, void *ud)
{
    return buf_append(ud, p, n) == BUF_OK ? 0 : -1;
}

int provider_dump(buf_t *b, const json_t *v)
{
    return json_dump_callback(v, provider__sink, b, JSON_COMPACT);
}

int provider_body(arena_t *a, const json_t *v, prov_call_t *out)
{
    buf_t b;
    buf_init(&b, 0);
    char *p = NULL;
    if (provider_dump(&b, v) == 0 && b.len) p = arena_strndup(a, buf_data(&b), b.len);
    size_t n = b.len;
    buf_free(&b);
    if (!p) return -1;
    out->body = p;
    out->body_len = n;
    return 0;
}

void provider_content_text(buf_t *out, const json_t *content, const char *sep)
{
    if (json_is_string(content)) {
        buf_append(out, json_string_value(content), json_string_length(content));
        return;
    }
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t)) continue;
        if (sep && out->len) buf_appends(out, sep);
        buf_append(out, json_string_value(t), json_string_length(t));
    }
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
