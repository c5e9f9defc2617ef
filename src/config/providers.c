/*
 * providers.c — the providers section: a list of upstreams (name, type,
 * base_url, api_key, health_check; api_version and auth for azure). Names
 * are unique; the type decides whether base_url is required and api_key
 * allowed (remote) or both refused (in-process types). An azure provider
 * needs api_key (the key, or with auth: entra an Entra ID token); its
 * api_version defaults to CONFIG_AZURE_API_VERSION and its base_url is the
 * resource endpoint, with no query and no "/openai" (the provider appends
 * /openai/deployments/...). The vertex keys are checked in vertex.c.
 * api_key is a secret (helpers.c). c->providers is
 * allocated once, before models are parsed, and never moves: models point
 * into it.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Provider types this version implements, with what their deployments can
 * do unless a model lists its capabilities (README "Capabilities"): what the
 * provider file really sends upstream. openai passes every field through;
 * anthropic translates tools and images but has no JSON mode or n; gemini and
 * ollama translate tools, images and response_format; the in-process types
 * (echo, llamacpp: no grammar-constrained decoding) generate plain text only.
 * None but openai asks the upstream for several answers (n). */
#define CAPS_LOCAL (CAP_CHAT | CAP_COMPLETIONS | CAP_EMBEDDINGS)
static const struct provider_type provider_types[] = {
    {"openai", true, CAP_ALL},
    {"echo", false, CAPS_LOCAL},
    {"llamacpp", false, CAPS_LOCAL}, /* embedded llama.cpp; models need `path` */
    {"anthropic", true, CAP_CHAT | CAP_VISION | CAP_TOOLS},
    {"gemini", true, CAP_CHAT | CAP_EMBEDDINGS | CAP_VISION | CAP_TOOLS | CAP_JSON},
    {"ollama", true, CAP_CHAT | CAP_EMBEDDINGS | CAP_VISION | CAP_TOOLS | CAP_JSON},
    {"azure", true, CAP_ALL}, /* Azure OpenAI: OpenAI's API, n included */
    /* Vertex AI: gemini's or anthropic's translation, per publisher (the
     * narrower anthropic set unless the model lists its capabilities) */
    {"vertex", true, CAP_CHAT | CAP_VISION | CAP_TOOLS},
};

const struct provider_type *config__find_provider_type(const char *name)
{
    for (size_t i = 0; i < COUNTOF(provider_types); i++)
        if (strcmp(provider_types[i].name, name) == 0) return &provider_types[i];
    return NULL;
}

unsigned config_default_capabilities(const char *type)
{
    const struct provider_type *pt = type ? config__find_provider_type(type) : NULL;
    return pt ? pt->caps : CAP_ALL;
}

/* P_AUTH goes into a struct of its own (split walk): only its value is kept. */
enum {
    P_NAME,
    P_TYPE,
    P_BASE_URL,
    P_API_KEY,
    P_HEALTH_CHECK,
    P_API_VERSION,
    P_PROJECT,
    P_LOCATION,
    P_PUBLISHER,
    P_TOKEN_URL,
    P_AUTH,
    P_CREDENTIALS
};
struct provider_extra {
    char *auth;
    char *credentials;
};
static const field_t provider_fields[] = {
    [P_NAME] = {.key = "name",
                .type = FT_STRING,
                .off = offsetof(cfg_provider_t, name),
                .required = true},
    [P_TYPE] = {.key = "type",
                .type = FT_STRING,
                .off = offsetof(cfg_provider_t, type),
                .required = true},
    [P_BASE_URL] = {.key = "base_url",
                    .type = FT_STRING,
                    .off = offsetof(cfg_provider_t, base_url)},
    [P_API_KEY] = {.key = "api_key", .type = FT_STRING, .off = offsetof(cfg_provider_t, api_key)},
    [P_HEALTH_CHECK] = {.key = "health_check",
                        .type = FT_STRING,
                        .off = offsetof(cfg_provider_t, health_check)},
    [P_API_VERSION] = {.key = "api_version",
                       .type = FT_STRING,
                       .off = offsetof(cfg_provider_t, api_version)},
    [P_PROJECT] = {.key = "project", .type = FT_STRING, .off = offsetof(cfg_provider_t, project)},
    [P_LOCATION] = {.key = "location",
                    .type = FT_STRING,
                    .off = offsetof(cfg_provider_t, location)},
    [P_PUBLISHER] = {.key = "publisher",
                     .type = FT_STRING,
                     .off = offsetof(cfg_provider_t, publisher)},
    [P_TOKEN_URL] = {.key = "token_url",
                     .type = FT_STRING,
                     .off = offsetof(cfg_provider_t, token_url)},
    [P_AUTH] = {.key = "auth", .type = FT_STRING, .off = offsetof(struct provider_extra, auth)},
    [P_CREDENTIALS] = {.key = "credentials",
                       .type = FT_STRING,
                       .off = offsetof(struct provider_extra, credentials)},
};

static bool provider_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-') return false;
    return true;
}

/* http:// or https://, a non-empty rest without whitespace; trailing slashes
 * are stripped in place. */
static void check_base_url(loader_t *L, const ynode_t *at, char *url)
{
    size_t skip = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (!skip) {
        config__err_at(L, at, "base_url must start with http:// or https://");
        return;
    }
    size_t len = strlen(url);
    while (len > skip && url[len - 1] == '/') url[--len] = '\0';
    if (len == skip || url[skip] == '/') {
        config__err_at(L, at, "base_url '%s' has no host", SHOWN(at));
        return;
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            config__err_at(L, at, "base_url must not contain spaces or control characters");
            return;
        }
    }
}

/* YYYY-MM-DD, optionally followed by "-preview" (Azure's api-version values). */
bool config_azure_api_version_ok(const char *s)
{
    static const char pat[] = "dddd-dd-dd";
    for (size_t i = 0; i < sizeof pat - 1; i++)
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i]) return false;
    return s[10] == '\0' || strcmp(s + 10, "-preview") == 0;
}

/* The azure-only keys: refused for other types; for azure checked and defaulted. */
static void check_azure(loader_t *L, const ynode_t *map, cfg_provider_t *p, const char *auth,
                        const ynode_t **keys, const ynode_t **vals)
{
    if (!p->type || strcmp(p->type, "azure") != 0) {
        static const int azure_only[] = {P_API_VERSION, P_AUTH};
        for (size_t i = 0; i < COUNTOF(azure_only); i++)
            if (keys[azure_only[i]])
                config__err_at(L, keys[azure_only[i]], "%s is only for provider type 'azure'",
                               provider_fields[azure_only[i]].key);
        return;
    }
    if (!p->api_version) {
        p->api_version = config__dup_str(L, map, CONFIG_AZURE_API_VERSION);
    } else if (!config_azure_api_version_ok(p->api_version)) {
        config__err_at(L, vals[P_API_VERSION],
                       "api_version '%s' is not an Azure OpenAI API version (YYYY-MM-DD or "
                       "YYYY-MM-DD-preview, e.g. %s)",
                       SHOWN(vals[P_API_VERSION]), CONFIG_AZURE_API_VERSION);
    }
    if (auth && strcmp(auth, "entra") == 0)
        p->bearer = true;
    else if (auth && strcmp(auth, "api-key") != 0)
        config__err_at(L, vals[P_AUTH], "auth must be api-key or entra, not '%s'",
                       SHOWN(vals[P_AUTH]));
    if (!keys[P_API_KEY])
        config__err_at(L, map,
                       "provider type 'azure' needs api_key (the resource key, or with auth: "
                       "entra an Entra ID access token)");
    const char *u = p->base_url;
    size_t n = u ? strlen(u) : 0;
    if (u && strpbrk(u, "?#"))
        config__err_at(L, vals[P_BASE_URL],
                       "base_url of an azure provider must not have a query or fragment "
                       "(api_version sets the api-version)");
    else if (n >= 7 && strcmp(u + n - 7, "/openai") == 0)
        config__err_at(L, vals[P_BASE_URL],
                       "base_url of an azure provider is the resource endpoint without /openai "
                       "(e.g. https://NAME.openai.azure.com)");
}

static void parse_provider(loader_t *L, const ynode_t *map, cfg_provider_t *p,
                           const ynode_t **name_nodes, size_t idx)
{
    const ynode_t *keys[COUNTOF(provider_fields)], *vals[COUNTOF(provider_fields)];
    struct provider_extra extra = {0};
    config__walk_map_split(L, map, "provider", provider_fields, COUNTOF(provider_fields), p, P_AUTH,
                           &extra, keys, vals);
    name_nodes[idx] = NULL;

    /* The raw api_key (FT_STRING) is replaced by its resolution below; wipe it
     * on every path so the literal does not linger in freed memory. */
    char *raw_key = p->api_key;
    p->api_key = NULL;

    if (p->name) {
        if (!provider_name_ok(p->name)) {
            config__err_at(L, vals[P_NAME],
                           "invalid provider name '%s' (use letters, digits, '.', '_' and '-')",
                           SHOWN(vals[P_NAME]));
        } else {
            for (size_t j = 0; j < idx; j++) {
                if (name_nodes[j] && strcmp(name_nodes[j]->str, p->name) == 0) {
                    config__err_at(L, vals[P_NAME],
                                   "duplicate provider name '%s' (first at line %d)", p->name,
                                   name_nodes[j]->line);
                    break;
                }
            }
            name_nodes[idx] = vals[P_NAME];
        }
    }

    const struct provider_type *pt = NULL;
    if (p->type) {
        pt = config__find_provider_type(p->type);
        if (!pt) {
            char list[128] = "";
            for (size_t i = 0; i < COUNTOF(provider_types); i++) {
                if (i) strncat(list, ", ", sizeof(list) - strlen(list) - 1);
                strncat(list, provider_types[i].name, sizeof(list) - strlen(list) - 1);
            }
            config__err_at(L, vals[P_TYPE], "unknown provider type '%s' (supported: %s)",
                           SHOWN(vals[P_TYPE]), list);
        }
    }

    if (pt && !pt->remote) {
        if (keys[P_BASE_URL])
            config__err_at(L, keys[P_BASE_URL], "base_url is not allowed for provider type '%s'",
                           pt->name);
        if (keys[P_API_KEY])
            config__err_at(L, keys[P_API_KEY], "api_key is not allowed for provider type '%s'",
                           pt->name);
        free(p->base_url);
        p->base_url = NULL;
    } else {
        if (pt && !keys[P_BASE_URL] && strcmp(pt->name, "vertex") != 0)
            config__err_at(L, map,
                           "provider is missing required key 'base_url' (required for type '%s')",
                           pt->name);
        if (p->base_url) check_base_url(L, vals[P_BASE_URL], p->base_url);
        if (raw_key) p->api_key = config__resolve_secret(L, vals[P_API_KEY], raw_key);
    }
    config__free_secret(raw_key);
    if (pt) check_azure(L, map, p, extra.auth, keys, vals);
    if (pt) {
        const ynode_t *vk[] = {keys[P_PROJECT], keys[P_LOCATION], keys[P_PUBLISHER],
                               keys[P_TOKEN_URL], keys[P_CREDENTIALS]};
        const ynode_t *vv[] = {vals[P_PROJECT], vals[P_LOCATION], vals[P_PUBLISHER],
                               vals[P_TOKEN_URL], vals[P_CREDENTIALS]};
        config__check_vertex(L, map, p, extra.credentials, vk, vv);
    }
    free(extra.auth);
    config__free_secret(extra.credentials);

    const char *hc = p->health_check;
    if (hc && strcmp(hc, "models") != 0 && strcmp(hc, "chat") != 0 && strcmp(hc, "none") != 0)
        config__err_at(L, vals[P_HEALTH_CHECK],
                       "health_check must be models, chat or none, not '%s'",
                       SHOWN(vals[P_HEALTH_CHECK]));
}

const cfg_provider_t *config__find_provider(const config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_providers; i++)
        if (c->providers[i].name && strcmp(c->providers[i].name, name) == 0)
            return &c->providers[i];
    return NULL;
}

/* The providers list (a non-empty sequence). c->providers is allocated here
 * once and never moves: models point into it. */
void config__parse_providers(loader_t *L, config_t *c, const ynode_t *provs)
{
    const ynode_t **names = calloc(provs->n, sizeof(*names));
    c->providers = calloc(provs->n, sizeof(*c->providers));
    if (!names || !c->providers) {
        config__err_at(L, provs, "out of memory");
    } else {
        for (size_t i = 0; i < provs->n; i++) {
            const ynode_t *item = provs->items[i];
            if (item->kind != YNODE_MAPPING) {
                config__err_at(L, item, "providers: expected a mapping, got %s",
                               ytree_kind_name(item));
                continue;
            }
            size_t idx = c->n_providers++;
            parse_provider(L, item, &c->providers[idx], names, idx);
        }
    }
    free(names);
}

void config__providers_free(config_t *c)
{
    for (size_t i = 0; i < c->n_providers; i++) {
        cfg_provider_t *p = &c->providers[i];
        free(p->name);
        free(p->type);
        free(p->base_url);
        free(p->health_check);
        free(p->api_version);
        free(p->project);
        free(p->location);
        free(p->publisher);
        free(p->token_url);
        free(p->sa_email);
        config__free_secret(p->sa_key);
        config__free_secret(p->api_key);
    }
    free(c->providers);
}
