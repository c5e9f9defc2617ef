/*
 * litellm_models.c — LiteLLM's model_list as skuld providers, models and
 * routes (see litellm_internal.h for who owns what).
 *
 * One model_list entry is one skuld deployment (a models: entry). Its
 * provider comes from the prefix of litellm_params.model (openai/,
 * anthropic/, gemini/, ollama/, ollama_chat/, azure/, hosted_vllm/ and the
 * other OpenAI-compatible ones in `prefixes` below; a few OpenAI and Anthropic
 * model names without a prefix too) and its api_base / api_key (azure/ also
 * api_version and azure_ad_token, read in litellm_azure.c); deployments with
 * the same type, base URL, key and api_version (and auth) share one provider. Entries with one
 * model_name form one model group: all of its deployments get the group's
 * `balance` (from routing_strategy) and, for simple-shuffle, weights taken as
 * LiteLLM takes them (litellm_params.weight, else rpm, else tpm, whichever
 * the group's first deployment has; a missing one counts 0).
 *
 * Deployment ids: skuld names a deployment by its name when the name is
 * unique and name@provider otherwise. Where that would repeat (two entries
 * of one name on one provider) or collide with a model_info.id or another
 * model's name, the later deployment gets an explicit id NAME@PROVIDER#N
 * ('#' never occurs in a provider name, so it cannot meet skuld's own ids).
 *
 * An entry that cannot be converted (a provider skuld lacks, a wildcard, an
 * api_base read from the environment, ...) is skipped whole with one
 * not-converted line; fallbacks naming it are reported too.
 */
#include "import/litellm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NK(a) (sizeof(a) / sizeof((a)[0]))

typedef struct prefix {
    const char *prefix;
    const char *type;     /* skuld provider type */
    const char *base_url; /* default; NULL = api_base required */
    const char *key_env;  /* LiteLLM's variable when api_key is absent; NULL = none */
} prefix_t;

static const prefix_t prefixes[] = {
    {"openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"text-completion-openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"anthropic", "anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"},
    {"azure", "azure", NULL, "AZURE_API_KEY"},
    {"gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"},
    {"ollama", "ollama", "http://localhost:11434", NULL},
    {"ollama_chat", "ollama", "http://localhost:11434", NULL},
    {"hosted_vllm", "openai", NULL, NULL},
    {"lm_studio", "openai", NULL, NULL},
    {"llamafile", "openai", NULL, NULL},
    {"xinference", "openai", NULL, NULL},
    {"litellm_proxy", "openai", NULL, NULL},
    {"custom_openai", "openai", NULL, NULL},
    {"groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"},
    {"mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"},
    {"together_ai", "openai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"},
    {"openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"},
    {"deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"},
    {"fireworks_ai", "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"},
    {"xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY"},
    {"perplexity", "openai", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"},
    {"cerebras", "openai", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"},
    {"deepinfra", "openai", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"},
    {"nvidia_nim", "openai", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY"},
};

/* Prefixes LiteLLM knows and skuld has no provider type for, with why. */
static const imp_reason_t missing_types[] = {
    {"azure_ai", "Azure AI Foundry's model inference API is not Azure OpenAI's (skuld's azure "
                 "type); for an Azure OpenAI deployment use azure/"},
    {"bedrock", "AWS Bedrock needs SigV4 request signing, which skuld does not do"},
    {"sagemaker", "AWS SageMaker needs SigV4 request signing, which skuld does not do"},
    {"vertex_ai", "Vertex AI needs Google OAuth credentials, which skuld does not do"},
    {"vllm", "LiteLLM's vllm/ runs the model in-process; for a vLLM server use hosted_vllm/"},
};

/* Model names LiteLLM maps to a provider without a prefix. */
static const struct {
    const char *start, *prefix;
} bare_names[] = {
    {"gpt-", "openai"},    {"chatgpt-", "openai"}, {"o1", "openai"},
    {"o3", "openai"},      {"o4", "openai"},       {"text-embedding-", "openai"},
    {"davinci", "openai"}, {"babbage", "openai"},  {"claude-", "anthropic"},
};

static const imp_reason_t param_reasons[] = {
    {"api_version", "an Azure api-version: only azure/ models have one"},
    {"azure_ad_token", "an Entra ID token: only azure/ models take one"},
    {"tenant_id", "Entra client credentials: skuld's azure type takes a token (auth: entra)"},
    {"client_id", "Entra client credentials: skuld's azure type takes a token (auth: entra)"},
    {"client_secret", "Entra client credentials: skuld's azure type takes a token (auth: entra)"},
    {"organization", "skuld sends no OpenAI-Organization header"},
    {"temperature", "skuld forwards request parameters as the client sent them"},
    {"max_tokens", "skuld forwards request parameters as the client sent them"},
    {"top_p", "skuld forwards request parameters as the client sent them"},
    {"seed", "skuld forwards request parameters as the client sent them"},
    {"stop", "skuld forwards request parameters as the client sent them"},
    {"extra_headers", "no per-deployment extra headers in skuld"},
    {"litellm_credential_name", "credentials are not converted: give api_key and api_base"},
    {"stream_timeout", "no exact equivalent (see first_chunk_timeout, idle_gap_timeout)"},
    {"max_retries", "see server.resilience (num_retries is converted)"},
    {"num_retries", "per-deployment retries: see resilience.retries_per_deployment"},
    {"aws_region_name", "no AWS providers in skuld"},
    {"input_cost_per_second", "skuld prices per token (price: USD per 1M tokens)"},
    {"output_cost_per_second", "skuld prices per token (price: USD per 1M tokens)"},
};

static const imp_reason_t info_reasons[] = {
    {"base_model", "skuld prices from each model's price:"},
    {"max_tokens", "ambiguous (input or output?): give max_input_tokens for context_window"},
    {"max_output_tokens", "skuld reserves max_tokens from the request (limits)"},
    {"supports_vision",
     "skuld's capabilities default to the provider type's (README Capabilities)"},
    {"supports_function_calling",
     "skuld's capabilities default to the provider type's (README Capabilities)"},
    {"access_groups", "use skuld's keys (models allowed per key)"},
};

static const ynode_t *last_get(const ynode_t *map, const char *key)
{
    const ynode_t *v = NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; map && map->kind == YNODE_MAPPING && i < map->n; i++) {
        const ynode_t *k = map->pairs[i].key;
        if (k->kind == YNODE_SCALAR && k->len == kl && memcmp(k->str, key, kl) == 0)
            v = map->pairs[i].value;
    }
    return v && !ytree_is_null(v) ? v : NULL;
}

static size_t find_model(const imp_conv_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0) return i;
    return (size_t)-1;
}

static bool was_skipped(const imp_conv_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_skipped; i++)
        if (strcmp(c->skipped[i].name, name) == 0) return true;
    return false;
}

static void skip(imp_conv_t *c, const char *name)
{
    c->skipped[c->n_skipped++].name = name;
}

/* http:// or https:// and a host, no spaces or control bytes; trailing '/'
 * dropped. NULL when skuld would refuse it. */
static const char *base_url_ok(imp_conv_t *c, const ynode_t *v)
{
    const char *u = v->str;
    size_t skip_n = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;
    if (!skip_n || imp__has_nul(v)) return NULL;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) return NULL;
    size_t len = v->len;
    while (len > skip_n && u[len - 1] == '/') len--;
    if (len == skip_n || u[skip_n] == '/') return NULL;
    char *s = arena_strndup(c->a, u, len);
    if (!s) c->oom = true;
    return s;
}

static bool same_opt(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static size_t provider(imp_conv_t *c, const char *pname, const char *type, const char *base,
                       const char *key, const char *api_version, bool entra)
{
    for (size_t i = 0; i < c->n_provs; i++) {
        const imp_prov_t *p = &c->provs[i];
        if (strcmp(p->type, type) == 0 && strcmp(p->base_url, base) == 0 &&
            same_opt(p->api_key, key) && same_opt(p->api_version, api_version) && p->entra == entra)
            return i;
    }
    /* a new provider: pname, else pname-2, pname-3, ... */
    const char *name = pname;
    for (unsigned n = 2;; n++) {
        bool taken = false;
        for (size_t i = 0; i < c->n_provs && !taken; i++)
            taken = strcmp(c->provs[i].name, name) == 0;
        if (!taken) break;
        name = arena_printf(c->a, "%s-%u", pname, n);
        if (!name) {
            c->oom = true;
            name = pname;
            break;
        }
    }
    imp_prov_t *p = &c->provs[c->n_provs];
    p->name = name;
    p->type = type;
    p->base_url = base;
    p->api_key = key;
    p->api_version = api_version;
    p->entra = entra;
    return c->n_provs++;
}

/* litellm_params.model -> the prefix entry and the upstream id; NULL after a
 * not-converted report. */
static const prefix_t *resolve_model(imp_conv_t *c, const ynode_t *mv, const char *path,
                                     const char **upstream, const char **pname)
{
    const char *m = mv->str;
    if (imp__has_nul(mv) || !*m) {
        imp__nc(c, mv, path, "an empty model or one with a NUL byte; entry skipped");
        return NULL;
    }
    if (strchr(m, '*')) {
        imp__nc(c, mv, path,
                "wildcard models have no skuld equivalent: list each model; entry "
                "skipped");
        return NULL;
    }
    const char *slash = strchr(m, '/');
    if (slash) {
        size_t pl = (size_t)(slash - m);
        for (size_t i = 0; i < NK(prefixes); i++) {
            if (strlen(prefixes[i].prefix) == pl && memcmp(prefixes[i].prefix, m, pl) == 0) {
                if (!slash[1]) {
                    imp__nc(c, mv, path, "no model after '%s/'; entry skipped", prefixes[i].prefix);
                    return NULL;
                }
                *upstream = slash + 1;
                *pname = strcmp(prefixes[i].prefix, "ollama_chat") == 0 ? "ollama"
                         : strcmp(prefixes[i].prefix, "text-completion-openai") == 0
                             ? "openai"
                             : prefixes[i].prefix;
                return &prefixes[i];
            }
        }
        for (size_t i = 0; i < NK(missing_types); i++) {
            if (strlen(missing_types[i].key) == pl && memcmp(missing_types[i].key, m, pl) == 0) {
                imp__nc(c, mv, path, "%s; entry skipped", missing_types[i].why);
                return NULL;
            }
        }
        /* "facebook/opt-125m" style ids without a known prefix fall through to
         * the bare-name check below, which will not match them */
    }
    for (size_t i = 0; i < NK(bare_names); i++) {
        if (strncmp(m, bare_names[i].start, strlen(bare_names[i].start)) == 0) {
            for (size_t k = 0; k < NK(prefixes); k++)
                if (strcmp(prefixes[k].prefix, bare_names[i].prefix) == 0) {
                    *upstream = m;
                    *pname = prefixes[k].prefix;
                    return &prefixes[k];
                }
        }
    }
    if (slash)
        imp__nc(c, mv, path,
                "provider '%s' has no skuld provider type (skuld has openai-compatible, "
                "anthropic, gemini, ollama and azure); entry skipped",
                imp__show(c, m, (size_t)(slash - m)));
    else
        imp__nc(c, mv, path,
                "cannot tell the provider of '%s': write it with LiteLLM's prefix (openai/, "
                "anthropic/, gemini/, ollama/, hosted_vllm/, ...); entry skipped",
                imp__show(c, m, mv->len));
    return NULL;
}

/* A price per token -> USD per 1M tokens. 1 read, else 0/-1 (reported). */
static int price(imp_conv_t *c, const ynode_t *v, const char *path, double *out)
{
    double d;
    int rc = imp__number(c, v, path, &d);
    if (rc <= 0) return rc;
    d *= 1e6;
    if (d < 0 || d > 1e6) {
        imp__nc(c, v, path, "USD %s per 1M tokens is outside skuld's price range 0..1000000",
                imp__show(c, v->str, v->len));
        return 0;
    }
    *out = d;
    return 1;
}

static void entry(imp_conv_t *c, const ynode_t *item, size_t idx)
{
    const char *path = imp__index(c, "model_list", idx);
    if (item->kind != YNODE_MAPPING) {
        imp__err(c, item, "%s: expected a mapping (model_name, litellm_params), got %s", path,
                 ytree_kind_name(item));
        return;
    }
    imp_key_t k[] = {{.key = "model_name"}, {.key = "litellm_params"}, {.key = "model_info"}};
    static const imp_reason_t why[] = {{"tpm", "write it under litellm_params"},
                                       {"rpm", "write it under litellm_params"}};
    imp__walk(c, item, path, k, NK(k), why, NK(why), "no skuld equivalent");
    const ynode_t *nv = imp__kv(k, NK(k), "model_name"), *lp = imp__kv(k, NK(k), "litellm_params");
    const ynode_t *mi = imp__kv(k, NK(k), "model_info");
    const char *np = imp__path(c, path, "model_name"), *lpp = imp__path(c, path, "litellm_params");
    if (!nv) {
        imp__err(c, item, "%s: model_name is missing", path);
        return;
    }
    if (!imp__scalar(c, nv, np)) return;
    if (!lp || lp->kind != YNODE_MAPPING) {
        imp__err(c, lp ? lp : item, "%s: expected a mapping with model, got %s", lpp,
                 lp ? ytree_kind_name(lp) : "nothing");
        return;
    }
    if (mi && mi->kind != YNODE_MAPPING) {
        imp__err(c, mi, "%s.model_info: expected a mapping, got %s", path, ytree_kind_name(mi));
        return;
    }
    const ynode_t *mv = last_get(lp, "model");
    const char *mp = imp__path(c, lpp, "model");
    if (!mv) {
        imp__err(c, lp, "%s: model is missing", lpp);
        return;
    }
    if (!imp__scalar(c, mv, mp)) return;
    const char *name = nv->str;
    if (!imp__name_ok(name, nv->len)) {
        imp__nc(c, nv, np, "skuld model names are non-empty, without spaces; entry skipped");
        skip(c, name);
        return;
    }
    if (strchr(name, '*')) {
        imp__nc(c, nv, np, "wildcard model names have no skuld equivalent; entry skipped");
        skip(c, name);
        return;
    }
    const char *upstream = NULL, *pname = NULL;
    const prefix_t *pt = resolve_model(c, mv, mp, &upstream, &pname);
    if (!pt) {
        skip(c, name);
        return;
    }

    imp_key_t p[] = {{.key = "model"},
                     {.key = "api_base"},
                     {.key = "api_key"},
                     {.key = "rpm"},
                     {.key = "tpm"},
                     {.key = "weight"},
                     {.key = "input_cost_per_token"},
                     {.key = "output_cost_per_token"},
                     {.key = "cache_read_input_token_cost"},
                     {.key = "timeout"},
                     {.key = "max_parallel_requests"},
                     {.key = "api_version"}, /* the last two: known for azure/ only */
                     {.key = "azure_ad_token"}};
    bool azure = strcmp(pt->type, "azure") == 0;
    imp__walk(c, lp, lpp, p, NK(p) - (azure ? 0 : 2), param_reasons, NK(param_reasons),
              "no skuld equivalent");
#define PV(n) imp__kv(p, NK(p), n)
#define PP(n) imp__path(c, lpp, n)
    const char *base = pt->base_url;
    const ynode_t *ab = PV("api_base");
    if (ab) {
        bool bad;
        const char *env = imp__env_ref(c, ab, &bad);
        if (ab->kind != YNODE_SCALAR) {
            imp__err(c, ab, "%s: expected a URL, got %s", PP("api_base"), ytree_kind_name(ab));
            return;
        }
        if (env || bad) {
            imp__nc(c, ab, PP("api_base"),
                    "read from the environment variable %s; skuld's base_url is written in the "
                    "file: write the URL; entry skipped",
                    env ? env : "(invalid name)");
            skip(c, name);
            return;
        }
        if (!(base = base_url_ok(c, ab))) {
            imp__nc(c, ab, PP("api_base"),
                    "skuld's base_url must be an http:// or https:// URL with a host, without "
                    "spaces; entry skipped");
            skip(c, name);
            return;
        }
        if (strcmp(pt->type, "anthropic") == 0) {
            /* skuld posts to {base_url}/messages; LiteLLM's api_base is the host */
            size_t bl = strlen(base);
            if (bl >= 12 && strcmp(base + bl - 12, "/v1/messages") == 0)
                base = arena_strndup(c->a, base, bl - 9);
            else if (!(bl >= 3 && strcmp(base + bl - 3, "/v1") == 0))
                base = arena_printf(c->a, "%s/v1", base);
            if (!base) {
                c->oom = true;
                return;
            }
        } else if (strcmp(pt->type, "openai") == 0) {
            size_t bl = strlen(base);
            if (!(bl >= 3 && strcmp(base + bl - 3, "/v1") == 0))
                imp__warn(c, ab,
                          "%s does not end in /v1: skuld calls {base_url}/chat/completions, so "
                          "it must be the URL the OpenAI paths hang off",
                          PP("api_base"));
        }
    } else if (!base) {
        if (azure)
            imp__nc(c, mv, mp,
                    "azure/ needs api_base (the resource endpoint, "
                    "https://NAME.openai.azure.com): skuld's azure type has no default; entry "
                    "skipped");
        else
            imp__nc(c, mv, mp, "%s/ needs api_base (the server's URL); entry skipped", pt->prefix);
        skip(c, name);
        return;
    }
    const char *key = NULL;
    const ynode_t *kv = PV("api_key");
    if (kv) {
        key = imp__secret(c, kv, PP("api_key"), "API key");
    } else if ((!ab || azure) && pt->key_env) {
        key = arena_printf(c->a, "env:%s", pt->key_env);
    }
    const char *api_version = NULL;
    bool entra = false;
    if (azure) {
        const imp_azure_in_t in = {.model = mv,
                                   .model_path = mp,
                                   .params_path = lpp,
                                   .deployment = upstream,
                                   .api_base = ab,
                                   .api_base_path = PP("api_base"),
                                   .base = base,
                                   .api_key = kv,
                                   .api_key_path = PP("api_key"),
                                   .api_version = PV("api_version"),
                                   .api_version_path = PP("api_version"),
                                   .ad_token = PV("azure_ad_token"),
                                   .ad_token_path = PP("azure_ad_token")};
        if (!imp__azure(c, &in, &key, &api_version, &entra)) {
            skip(c, name);
            return;
        }
    }
    if (!kv && key && !entra) /* warned once the entry is known to be converted */
        imp__warn(c, mv, "%s: no api_key; LiteLLM reads %s from the environment, written as env:%s",
                  lpp, pt->key_env, pt->key_env);
    if (c->n_deps >= IMP_MAX_DEPLOYMENTS) return;
    imp_dep_t *d = &c->deps[c->n_deps];
    memset(d, 0, sizeof *d);
    d->at = item;
    d->index = idx;
    d->name = name;
    d->upstream = upstream;
    d->out_weight = -1;

    int64_t n;
    double x;
    uint64_t ms;
    if (PV("rpm") && imp__integer(c, PV("rpm"), PP("rpm"), 0, INT32_MAX, &n) > 0)
        d->has_rpm = true, d->rpm = n;
    if (PV("tpm") && imp__integer(c, PV("tpm"), PP("tpm"), 0, INT32_MAX, &n) > 0)
        d->has_tpm = true, d->tpm = n;
    if (PV("weight") && imp__number(c, PV("weight"), PP("weight"), &x) > 0) {
        if (x < 0 || x > 1e9)
            imp__nc(c, PV("weight"), PP("weight"), "outside 0..1000000000");
        else
            d->has_weight = true, d->weight = x;
    }
    if (PV("input_cost_per_token") &&
        price(c, PV("input_cost_per_token"), PP("input_cost_per_token"), &x) > 0)
        d->has_in = true, d->p_in = x;
    if (PV("output_cost_per_token") &&
        price(c, PV("output_cost_per_token"), PP("output_cost_per_token"), &x) > 0)
        d->has_out = true, d->p_out = x;
    if (PV("cache_read_input_token_cost") &&
        price(c, PV("cache_read_input_token_cost"), PP("cache_read_input_token_cost"), &x) > 0)
        d->has_cached = true, d->p_cached = x;
    if (PV("timeout") && imp__seconds(c, PV("timeout"), PP("timeout"), &ms) > 0) {
        if (ms == 0)
            imp__nc(c, PV("timeout"), PP("timeout"), "0 seconds: skuld's 0 means off");
        else
            d->has_timeout = true, d->timeout_ms = ms;
    }
    if (PV("max_parallel_requests") &&
        imp__integer(c, PV("max_parallel_requests"), PP("max_parallel_requests"), 0, 1000000, &n) >
            0)
        d->has_max_par = true, d->max_par = n;
#undef PV
#undef PP

    if (mi) {
        const char *mip = imp__path(c, path, "model_info");
        imp_key_t m[] = {{.key = "id"},
                         {.key = "mode"},
                         {.key = "max_input_tokens"},
                         {.key = "input_cost_per_token"},
                         {.key = "output_cost_per_token"},
                         {.key = "cache_read_input_token_cost"}};
        imp__walk(c, mi, mip, m, NK(m), info_reasons, NK(info_reasons), "no skuld equivalent");
#define MV(n) imp__kv(m, NK(m), n)
#define MP(n) imp__path(c, mip, n)
        const ynode_t *id = MV("id");
        if (id && imp__scalar(c, id, MP("id"))) {
            if (!imp__name_ok(id->str, id->len))
                imp__nc(c, id, MP("id"), "skuld deployment ids are non-empty, without spaces");
            else
                d->id = id->str, d->id_at = id;
        }
        const ynode_t *mode = MV("mode");
        if (mode && imp__scalar(c, mode, MP("mode"))) {
            if (strcmp(mode->str, "embedding") == 0)
                d->capability = "embeddings";
            else if (strcmp(mode->str, "completion") == 0)
                d->capability = "completions";
            else if (strcmp(mode->str, "chat") != 0)
                imp__nc(c, mode, MP("mode"),
                        "mode '%s': skuld serves chat, completions and embeddings",
                        imp__show(c, mode->str, mode->len));
        }
        if (MV("max_input_tokens") &&
            imp__integer(c, MV("max_input_tokens"), MP("max_input_tokens"), 1, INT32_MAX, &n) > 0)
            d->context_window = n;
        static const char *const costs[] = {"input_cost_per_token", "output_cost_per_token",
                                            "cache_read_input_token_cost"};
        bool *has[] = {&d->has_in, &d->has_out, &d->has_cached};
        double *val[] = {&d->p_in, &d->p_out, &d->p_cached};
        for (int i = 0; i < 3; i++) {
            const ynode_t *cv = MV(costs[i]);
            if (!cv) continue;
            if (*has[i])
                imp__nc(c, cv, MP(costs[i]), "litellm_params.%s is used", costs[i]);
            else if (price(c, cv, MP(costs[i]), &x) > 0)
                *has[i] = true, *val[i] = x;
        }
#undef MV
#undef MP
    }
    d->prov = provider(c, pname, pt->type, base, key, api_version, entra);
    c->n_deps++;
}

void imp__model_list(imp_conv_t *c, const ynode_t *seq)
{
    if (seq->n > IMP_MAX_DEPLOYMENTS) {
        imp__err(c, seq, "model_list: more than %d entries", IMP_MAX_DEPLOYMENTS);
        return;
    }
    size_t n = seq->n ? seq->n : 1;
    c->deps = arena_calloc(c->a, n * sizeof *c->deps);
    c->provs = arena_calloc(c->a, n * sizeof *c->provs);
    c->skipped = arena_calloc(c->a, n * sizeof *c->skipped);
    c->models = arena_calloc(c->a, n * sizeof *c->models);
    if (!c->deps || !c->provs || !c->skipped || !c->models) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < seq->n; i++) entry(c, seq->items[i], i);
    /* model groups, in first-seen order */
    for (size_t i = 0; i < c->n_deps; i++) {
        size_t m = find_model(c, c->deps[i].name);
        if (m == (size_t)-1) {
            m = c->n_models++;
            c->models[m].name = c->deps[i].name;
            c->models[m].first = i;
        }
        c->models[m].n_deps++;
        c->deps[i].model = m;
    }
}

/* ---- fallbacks and aliases ---- */

/* A converted model named by a fallbacks setting, or (size_t)-1 after a
 * not-converted report. */
static size_t named_model(imp_conv_t *c, const ynode_t *v, const char *path)
{
    if (v->kind != YNODE_SCALAR || ytree_is_null(v)) {
        imp__err(c, v, "%s: expected a model name, got %s", path, ytree_kind_name(v));
        return (size_t)-1;
    }
    size_t m = imp__has_nul(v) ? (size_t)-1 : find_model(c, v->str);
    if (m != (size_t)-1) return m;
    const char *shown = imp__show(c, v->str, v->len);
    if (was_skipped(c, v->str))
        imp__nc(c, v, path, "model '%s' was not converted", shown);
    else
        imp__nc(c, v, path, "'%s' is not a model_name of model_list", shown);
    return (size_t)-1;
}

static void add_fallback(imp_conv_t *c, imp_model_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_fb; i++)
        if (strcmp(m->fb[i], name) == 0) return;
    if (m->n_fb == m->cap_fb) {
        size_t cap = m->cap_fb ? m->cap_fb * 2 : 4;
        const char **v = arena_alloc(c->a, cap * sizeof *v);
        if (!v) {
            c->oom = true;
            return;
        }
        if (m->n_fb) memcpy(v, m->fb, m->n_fb * sizeof *v);
        m->fb = v;
        m->cap_fb = cap;
    }
    m->fb[m->n_fb++] = name;
}

void imp__fallbacks(imp_conv_t *c, const ynode_t *v, const char *path, const char *kind)
{
    if (!v) return;
    if (v->kind != YNODE_SEQUENCE) {
        imp__err(c, v, "%s: expected a list of {model: [fallback, ...]}, got %s", path,
                 ytree_kind_name(v));
        return;
    }
    bool policy = strcmp(kind, "content_policy_fallbacks") == 0;
    bool context = strcmp(kind, "context_window_fallbacks") == 0;
    for (size_t i = 0; i < v->n && i < IMP_MAX_LIST; i++) {
        const ynode_t *it = v->items[i];
        const char *ip = imp__index(c, path, i);
        if (it->kind != YNODE_MAPPING) {
            imp__err(c, it, "%s: expected {model: [fallback, ...]}, got %s", ip,
                     ytree_kind_name(it));
            continue;
        }
        for (size_t j = 0; j < it->n && j < IMP_MAX_LIST; j++) {
            const ynode_t *from = it->pairs[j].key, *list = it->pairs[j].value;
            if (from->kind != YNODE_SCALAR) {
                imp__err(c, from, "%s: expected a model name as the key", ip);
                continue;
            }
            const char *fp = imp__path(c, ip, from->str);
            if (list->kind != YNODE_SEQUENCE) {
                imp__err(c, list, "%s: expected a list of model names, got %s", fp,
                         ytree_kind_name(list));
                continue;
            }
            size_t m = named_model(c, from, fp);
            if (m == (size_t)-1) continue;
            imp_model_t *mm = &c->models[m];
            for (size_t t = 0; t < list->n && t < IMP_MAX_LIST; t++) {
                const char *tp = imp__index(c, fp, t);
                size_t f = named_model(c, list->items[t], tp);
                if (f == (size_t)-1) continue;
                if (f == m) {
                    imp__nc(c, list->items[t], tp, "a model cannot fall back to itself");
                } else if (policy) {
                    if (mm->on_policy)
                        imp__nc(c, list->items[t], tp,
                                "skuld has one content-policy alternate per model "
                                "(on_content_policy): '%s' is used",
                                mm->on_policy);
                    else
                        mm->on_policy = c->models[f].name;
                } else {
                    add_fallback(c, mm, c->models[f].name);
                }
            }
            if (context && list->n)
                imp__warn(c, from,
                          "%s: skuld has one fallbacks list per model: these are appended to the "
                          "fallbacks of '%s', so they are tried on other failures too; on a "
                          "context-length error skuld takes the next one with a larger "
                          "context_window",
                          fp, mm->name);
        }
    }
}

void imp__default_fallbacks(imp_conv_t *c, const ynode_t *v, const char *path)
{
    if (!v) return;
    if (v->kind != YNODE_SEQUENCE) {
        imp__err(c, v, "%s: expected a list of model names, got %s", path, ytree_kind_name(v));
        return;
    }
    size_t *ok = arena_alloc(c->a, (v->n + 1) * sizeof *ok), n_ok = 0;
    if (!ok) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < v->n && i < IMP_MAX_LIST; i++) {
        size_t f = named_model(c, v->items[i], imp__index(c, path, i));
        if (f != (size_t)-1) ok[n_ok++] = f;
    }
    /* only models without fallbacks of their own, as in LiteLLM */
    for (size_t m = 0; m < c->n_models; m++) {
        if (c->models[m].n_fb) continue;
        for (size_t i = 0; i < n_ok; i++)
            if (ok[i] != m) add_fallback(c, &c->models[m], c->models[ok[i]].name);
    }
}

void imp__aliases(imp_conv_t *c, const ynode_t *v, const char *path)
{
    if (!v) return;
    if (v->kind != YNODE_MAPPING) {
        imp__err(c, v, "%s: expected a mapping of alias: model, got %s", path, ytree_kind_name(v));
        return;
    }
    c->routes = arena_calloc(c->a, (v->n + 1) * sizeof *c->routes);
    if (!c->routes) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < v->n && i < IMP_MAX_LIST; i++) {
        const ynode_t *a = v->pairs[i].key, *t = v->pairs[i].value;
        if (a->kind != YNODE_SCALAR || ytree_is_null(a)) {
            imp__err(c, a, "%s: expected an alias name as the key", path);
            continue;
        }
        const char *ap = imp__path(c, path, a->str);
        if (t->kind == YNODE_MAPPING) { /* {model: NAME, hidden: bool} */
            const ynode_t *hid = last_get(t, "hidden");
            if (hid) imp__nc(c, hid, imp__path(c, ap, "hidden"), "skuld lists every route");
            t = last_get(t, "model");
            if (!t) {
                imp__err(c, v->pairs[i].value, "%s: model is missing", ap);
                continue;
            }
        }
        size_t m = named_model(c, t, ap);
        if (m == (size_t)-1) continue;
        if (!imp__name_ok(a->str, a->len)) {
            imp__nc(c, a, ap, "skuld route names are non-empty, without spaces");
            continue;
        }
        bool clash = find_model(c, a->str) != (size_t)-1;
        for (size_t d = 0; d < c->n_deps && !clash; d++)
            clash = c->deps[d].id && strcmp(c->deps[d].id, a->str) == 0;
        for (size_t r = 0; r < c->n_routes && !clash; r++)
            clash = strcmp(c->routes[r].name, a->str) == 0;
        if (clash) {
            imp__nc(c, a, ap, "'%s' is already a model, a deployment id or an alias",
                    imp__show(c, a->str, a->len));
            continue;
        }
        c->routes[c->n_routes].name = a->str;
        c->routes[c->n_routes].target = c->models[m].name;
        c->n_routes++;
    }
}

size_t imp__longest_fallbacks(const imp_conv_t *c)
{
    size_t n = 0;
    for (size_t m = 0; m < c->n_models; m++)
        if (c->models[m].n_fb > n) n = c->models[m].n_fb;
    return n;
}

size_t imp__most_candidates(const imp_conv_t *c)
{
    size_t most = 0;
    for (size_t m = 0; m < c->n_models; m++) {
        const imp_model_t *mm = &c->models[m];
        size_t n = mm->n_deps;
        for (size_t i = 0; i < mm->n_fb; i++) {
            size_t f = find_model(c, mm->fb[i]);
            if (f != (size_t)-1) n += c->models[f].n_deps;
        }
        if (n > most) most = n;
    }
    return most;
}

/* ---- groups, weights, ids ---- */

static const char *balance_for(imp_conv_t *c, bool *weighted)
{
    const char *s = c->strategy;
    *weighted = false;
    if (!s || strcmp(s, "simple-shuffle") == 0) {
        *weighted = true;
        return "round_robin";
    }
    if (strcmp(s, "least-busy") == 0) return "least_inflight";
    if (strcmp(s, "latency-based-routing") == 0) return "p2c";
    if (strcmp(s, "usage-based-routing") == 0 || strcmp(s, "usage-based-routing-v2") == 0) {
        imp__warn(c, c->strategy_at,
                  "router_settings.routing_strategy: skuld has no usage-based balance; groups "
                  "use round_robin, and each deployment's rpm/tpm becomes its capacity, which "
                  "the router keeps new work under");
        return "round_robin";
    }
    imp__nc(c, c->strategy_at, "router_settings.routing_strategy",
            "'%s' has no skuld balance strategy (round_robin, least_inflight, p2c, "
            "score_weighted); groups use round_robin",
            imp__show(c, s, strlen(s)));
    return "round_robin";
}

/* A deployment's share under LiteLLM's simple-shuffle basis (1 weight, 2 rpm,
 * 3 tpm); a deployment without it counts 0, as in LiteLLM. */
static double basis_value(const imp_dep_t *d, int basis)
{
    if (basis == 1) return d->has_weight ? d->weight : 0;
    if (basis == 2) return d->has_rpm ? (double)d->rpm : 0;
    return d->has_tpm ? (double)d->tpm : 0;
}

static void weights(imp_conv_t *c, size_t model)
{
    const imp_dep_t *first = &c->deps[c->models[model].first];
    int basis = first->has_weight ? 1 : first->has_rpm ? 2 : first->has_tpm ? 3 : 0;
    if (!basis) return; /* uniform: skuld's default weight 1 */
    double max = 0;
    bool integral = true;
    for (size_t i = c->models[model].first; i < c->n_deps; i++) {
        if (c->deps[i].model != model) continue;
        double w = basis_value(&c->deps[i], basis);
        if (w > max) max = w;
        if (w != floor(w)) integral = false;
    }
    for (size_t i = c->models[model].first; i < c->n_deps; i++) {
        imp_dep_t *d = &c->deps[i];
        if (d->model != model) continue;
        double w = basis_value(d, basis);
        if (max <= 0)
            d->out_weight = 1; /* all zero: LiteLLM then picks at random */
        else if (integral && max <= 1000000)
            d->out_weight = (int64_t)w;
        else /* scaled to 0..1000, keeping every non-zero share above 0 */
            d->out_weight = w > 0 && llround(w / max * 1000) == 0 ? 1 : llround(w / max * 1000);
    }
}

/* The id skuld would give deps[i] (for collision checks). */
static const char *effective_id(imp_conv_t *c, size_t i)
{
    const imp_dep_t *d = &c->deps[i];
    if (d->id) return d->id;
    if (c->models[d->model].n_deps == 1) return d->name;
    char *s = arena_printf(c->a, "%s@%s", d->name, c->provs[d->prov].name);
    if (!s) c->oom = true;
    return s ? s : d->name;
}

static bool id_taken(imp_conv_t *c, const char **ids, size_t n, const char *id, const char *name)
{
    for (size_t j = 0; j < n; j++)
        if (ids[j] && strcmp(ids[j], id) == 0) return true;
    size_t m = find_model(c, id);
    return m != (size_t)-1 && strcmp(c->models[m].name, name) != 0;
}

void imp__finish_models(imp_conv_t *c)
{
    bool weighted = false;
    bool groups = false;
    for (size_t m = 0; m < c->n_models; m++) groups |= c->models[m].n_deps > 1;
    const char *balance = groups || c->strategy ? balance_for(c, &weighted) : NULL;
    for (size_t m = 0; m < c->n_models && groups; m++) {
        const imp_model_t *mm = &c->models[m];
        if (mm->n_deps < 2) continue;
        for (size_t i = mm->first; i < c->n_deps; i++)
            if (c->deps[i].model == m) c->deps[i].balance = balance;
        if (weighted) weights(c, m);
    }
    /* ids: keep skuld's own where they are unique, else NAME@PROVIDER#N */
    const char **ids = arena_calloc(c->a, (c->n_deps + 1) * sizeof *ids);
    if (!ids) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < c->n_deps; i++) {
        imp_dep_t *d = &c->deps[i];
        const char *id = effective_id(c, i);
        if (id_taken(c, ids, i, id, d->name)) {
            if (d->id)
                imp__nc(c, d->id_at, "model_info.id",
                        "'%s' is already the id or name of another deployment; skuld's own id "
                        "is used",
                        imp__show(c, d->id, strlen(d->id)));
            d->id = NULL;
            id = effective_id(c, i);
            for (unsigned n = 2; id_taken(c, ids, i, id, d->name) && n < 100000; n++) {
                id = arena_printf(c->a, "%s@%s#%u", d->name, c->provs[d->prov].name, n);
                if (!id) {
                    c->oom = true;
                    return;
                }
                d->id = id;
            }
        }
        ids[i] = id;
    }
}

/* ---- output ---- */

static imp_node_t *name_list(imp_doc_t *d, const char **v, size_t n)
{
    imp_node_t *s = imp_seq(d);
    for (size_t i = 0; i < n; i++) imp_seq_add(d, s, imp_cstr(d, v[i]));
    return s;
}

void imp__emit_models(imp_conv_t *c, imp_doc_t *doc, imp_node_t *root)
{
    if (c->n_provs) {
        imp_node_t *ps = imp_map_add(doc, root, "providers", imp_seq(doc));
        for (size_t i = 0; i < c->n_provs; i++) {
            const imp_prov_t *p = &c->provs[i];
            imp_node_t *m = imp_seq_add(doc, ps, imp_map(doc));
            imp_map_add(doc, m, "name", imp_cstr(doc, p->name));
            imp_map_add(doc, m, "type", imp_cstr(doc, p->type));
            imp_map_add(doc, m, "base_url", imp_cstr(doc, p->base_url));
            if (p->api_key) imp_map_add(doc, m, "api_key", imp_cstr(doc, p->api_key));
            if (p->api_version) imp_map_add(doc, m, "api_version", imp_cstr(doc, p->api_version));
            if (p->entra) imp_map_add(doc, m, "auth", imp_cstr(doc, "entra"));
        }
    }
    if (c->n_deps) {
        imp_node_t *ms = imp_map_add(doc, root, "models", imp_seq(doc));
        for (size_t i = 0; i < c->n_deps; i++) {
            const imp_dep_t *d = &c->deps[i];
            const imp_model_t *mm = &c->models[d->model];
            imp_node_t *m = imp_seq_add(doc, ms, imp_map(doc));
            imp_map_add(doc, m, "name", imp_cstr(doc, d->name));
            imp_map_add(doc, m, "provider", imp_cstr(doc, c->provs[d->prov].name));
            imp_map_add(doc, m, "model", imp_cstr(doc, d->upstream));
            if (d->id) imp_map_add(doc, m, "id", imp_cstr(doc, d->id));
            if (d->out_weight >= 0) imp_map_add(doc, m, "weight", imp_int(doc, d->out_weight));
            if (d->balance) imp_map_add(doc, m, "balance", imp_cstr(doc, d->balance));
            if (d->has_rpm || d->has_tpm) {
                imp_node_t *cap = imp_map_add(doc, m, "capacity", imp_map(doc));
                if (d->has_rpm) imp_map_add(doc, cap, "rpm", imp_int(doc, d->rpm));
                if (d->has_tpm) imp_map_add(doc, cap, "tpm", imp_int(doc, d->tpm));
            }
            if (d->has_in || d->has_out || d->has_cached) {
                imp_node_t *pr = imp_map_add(doc, m, "price", imp_map(doc));
                if (d->has_in) imp_map_add(doc, pr, "input", imp_real(doc, d->p_in));
                if (d->has_out) imp_map_add(doc, pr, "output", imp_real(doc, d->p_out));
                if (d->has_cached) imp_map_add(doc, pr, "cached", imp_real(doc, d->p_cached));
            }
            if (d->context_window)
                imp_map_add(doc, m, "context_window", imp_int(doc, d->context_window));
            if (d->capability) {
                imp_node_t *caps = imp_map_add(doc, m, "capabilities", imp_seq(doc));
                imp_seq_add(doc, caps, imp_cstr(doc, d->capability));
            }
            if (mm->n_fb) imp_map_add(doc, m, "fallbacks", name_list(doc, mm->fb, mm->n_fb));
            if (mm->on_policy)
                imp_map_add(doc, m, "on_content_policy", imp_cstr(doc, mm->on_policy));
            if (d->has_timeout || d->has_max_par) {
                imp_node_t *r = imp_map_add(doc, m, "resilience", imp_map(doc));
                if (d->has_timeout)
                    imp_map_add(doc, r, "per_try_timeout", imp_dur(doc, d->timeout_ms));
                if (d->has_max_par)
                    imp_map_add(doc, r, "max_concurrency", imp_int(doc, d->max_par));
            }
        }
    }
    if (c->n_routes) {
        imp_node_t *rs = imp_map_add(doc, root, "routes", imp_seq(doc));
        for (size_t i = 0; i < c->n_routes; i++) {
            imp_node_t *r = imp_seq_add(doc, rs, imp_map(doc));
            imp_map_add(doc, r, "name", imp_cstr(doc, c->routes[i].name));
            imp_map_add(doc, r, "candidates", name_list(doc, &c->routes[i].target, 1));
        }
    }
}
