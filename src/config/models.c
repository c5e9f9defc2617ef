/*
 * models.c — the models section (deployments) and runtime models.
 *
 * A model maps a public name to a provider and its upstream model name, with
 * metadata the router and the cost tracker read (price, context window,
 * capabilities, quality, tags, weight, size, hardware, region, capacity) and
 * its resilience (server.resilience plus the model's overrides). Several
 * deployments in the file may share a name (a model group); each gets a
 * unique id (explicit, else the name, else name@provider).
 *
 * Runtime models (config_build) are JSON objects parsed with the same rules
 * after the file's; their errors name the file "registry" and they may not
 * reuse a name. fallbacks and on_content_policy name other models and are
 * resolved only once every model (and every id) is known.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model_raw {
    char *name;
    char *provider;
    char *model;
    cfg_strlist_t capabilities;
    char *id;      /* routing */
    char *balance; /* routing */
} model_raw_t;

/* Keys parsed into model_raw_t (resolved below) or straight into cfg_model_t. */
enum { M_NAME, M_PROVIDER, M_MODEL, M_CAPABILITIES, M_ID, M_BALANCE, M__RAW };
static const field_t model_fields[] = {
    [M_NAME] = {.key = "name",
                .type = FT_STRING,
                .off = offsetof(model_raw_t, name),
                .required = true},
    [M_PROVIDER] = {.key = "provider",
                    .type = FT_STRING,
                    .off = offsetof(model_raw_t, provider),
                    .required = true},
    [M_MODEL] = {.key = "model", .type = FT_STRING, .off = offsetof(model_raw_t, model)},
    [M_CAPABILITIES] = {.key = "capabilities",
                        .type = FT_STRLIST,
                        .off = offsetof(model_raw_t, capabilities)},
    [M_ID] = {.key = "id", .type = FT_STRING, .off = offsetof(model_raw_t, id)},
    [M_BALANCE] = {.key = "balance", .type = FT_STRING, .off = offsetof(model_raw_t, balance)},
};

#define MDL(f) offsetof(cfg_model_t, f)
enum {
    MD_PATH,
    MD_PRICE,
    MD_CONTEXT,
    MD_QUALITY,
    MD_TAGS,
    MD_WEIGHT,
    MD_PARAMS,
    MD_HARDWARE,
    MD_REGION,
    MD_PARALLEL,
    MD_DEFMAX,
    MD_FALLBACKS,
    MD_ON_CONTENT_POLICY,
    MD_RESILIENCE,
    MD_CAPACITY
};
static const field_t model_meta_fields[] = {
    [MD_PATH] = {.key = "path", .type = FT_STRING, .off = MDL(path)},
    [MD_PRICE] = {.key = "price", .type = FT_MAPPING},
    [MD_CONTEXT] = {.key = "context_window",
                    .type = FT_INT,
                    .off = MDL(context_window),
                    .min = 1,
                    .max = INT32_MAX},
    [MD_QUALITY] = {.key = "quality", .type = FT_NUMBER, .off = MDL(quality), .dmin = 0, .dmax = 1},
    [MD_TAGS] = {.key = "tags", .type = FT_STRLIST, .off = MDL(tags)},
    [MD_WEIGHT] = {.key = "weight", .type = FT_INT, .off = MDL(weight), .min = 0, .max = 1000000},
    [MD_PARAMS] =
        {.key = "params_b", .type = FT_NUMBER, .off = MDL(params_b), .dmin = 0, .dmax = 100000},
    [MD_HARDWARE] = {.key = "hardware", .type = FT_STRING, .off = MDL(hardware)},
    [MD_REGION] = {.key = "region", .type = FT_STRING, .off = MDL(region)},
    [MD_PARALLEL] = {.key = "parallel", .type = FT_INT, .off = MDL(parallel), .min = 1, .max = 256},
    [MD_DEFMAX] = {.key = "default_max_tokens",
                   .type = FT_INT,
                   .off = MDL(default_max_tokens),
                   .min = 0,
                   .max = 1 << 24},
    [MD_FALLBACKS] = {.key = "fallbacks", .type = FT_STRLIST, .off = MDL(fallbacks)},
    [MD_ON_CONTENT_POLICY] = {.key = "on_content_policy",
                              .type = FT_STRING,
                              .off = MDL(on_content_policy)},
    [MD_RESILIENCE] = {.key = "resilience", .type = FT_MAPPING},
    [MD_CAPACITY] = {.key = "capacity", .type = FT_MAPPING},
};

typedef struct model_refs {
    const ynode_t *fallbacks;         /* the list node, or NULL */
    const ynode_t *on_content_policy; /* the value node, or NULL */
} model_refs_t;

/* routing: a deployment's capacity, for the load threshold */
typedef struct cap_raw {
    int rpm, tpm, concurrency;
} cap_raw_t;
static const field_t capacity_fields[] = {
    {.key = "rpm", .type = FT_INT, .off = offsetof(cap_raw_t, rpm), .min = 0, .max = INT32_MAX},
    {.key = "tpm", .type = FT_INT, .off = offsetof(cap_raw_t, tpm), .min = 0, .max = INT32_MAX},
    {.key = "concurrency",
     .type = FT_INT,
     .off = offsetof(cap_raw_t, concurrency),
     .min = 0,
     .max = 1000000},
};

#define PRC(f) offsetof(cfg_price_t, f)
static const field_t price_fields[] = {
    {.key = "input", .type = FT_NUMBER, .off = PRC(input), .dmin = 0, .dmax = 1e6},
    {.key = "output", .type = FT_NUMBER, .off = PRC(output), .dmin = 0, .dmax = 1e6},
    {.key = "cached", .type = FT_NUMBER, .off = PRC(cached), .dmin = 0, .dmax = 1e6},
};

static const char *const capability_names[] = {
    "chat", "completions", "embeddings", "vision", "tools", "json", "audio", "files", "n"};

unsigned config_capability(const char *name)
{
    for (size_t i = 0; i < COUNTOF(capability_names); i++)
        if (strcmp(capability_names[i], name) == 0) return 1u << i;
    return 0;
}

const char *config_capability_name(unsigned cap)
{
    for (size_t i = 0; i < COUNTOF(capability_names); i++)
        if (cap == 1u << i) return capability_names[i];
    return "?";
}

bool config__model_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s)) return false;
    return true;
}

/* An Azure OpenAI deployment name: 1-64 of letters, digits, '.', '_', '-'. */
bool config_azure_deployment_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
            return false;
    return n >= 1 && n <= 64;
}

static void parse_model(loader_t *L, config_t *c, const ynode_t *map, cfg_model_t *m,
                        const ynode_t **name_nodes, size_t idx)
{
    model_raw_t raw = {0};
    /* One walk over both tables: the first fills raw, the second the model. */
    field_t fields[COUNTOF(model_fields) + COUNTOF(model_meta_fields)];
    memcpy(fields, model_fields, sizeof model_fields);
    memcpy(fields + M__RAW, model_meta_fields, sizeof model_meta_fields);
    const ynode_t *keys[COUNTOF(fields)], *vals[COUNTOF(fields)];
    m->quality = 0.5;
    m->weight = 1;
    m->parallel = 4;
    m->capabilities = CAP_ALL;
    m->resil = c->server.resilience;
    m->balance = -1;
    config__walk_map_split(L, map, "model", fields, COUNTOF(fields), &raw, M__RAW, m, keys, vals);
    name_nodes[idx] = NULL;
    if (vals[M__RAW + MD_RESILIENCE])
        config__parse_resilience(L, vals[M__RAW + MD_RESILIENCE], &m->resil);
    if (L->refs) {
        L->refs[idx].fallbacks = vals[M__RAW + MD_FALLBACKS];
        L->refs[idx].on_content_policy = vals[M__RAW + MD_ON_CONTENT_POLICY];
    }

    const ynode_t *price = vals[M__RAW + MD_PRICE];
    if (price) {
        if (price->kind != YNODE_MAPPING) {
            config__err_at(L, price, "price: expected a mapping (input, output, cached), got %s",
                           ytree_kind_name(price));
        } else {
            const ynode_t *pk[COUNTOF(price_fields)], *pv[COUNTOF(price_fields)];
            config__walk_map(L, price, "price", price_fields, COUNTOF(price_fields), &m->price, pk,
                             pv);
        }
    }
    if (keys[M_CAPABILITIES]) {
        m->capabilities = 0;
        const ynode_t *list = vals[M_CAPABILITIES];
        for (size_t i = 0; i < raw.capabilities.n; i++) {
            unsigned cap = config_capability(raw.capabilities.v[i]);
            if (!cap)
                config__err_at(L, list->items[i],
                               "unknown capability '%s' (known: " CONFIG_CAPABILITY_LIST ")",
                               SHOWN(list->items[i]));
            m->capabilities |= cap;
        }
    }
    config__strlist_free(&raw.capabilities);

    const ynode_t *cap = vals[M__RAW + MD_CAPACITY];
    if (cap) {
        if (cap->kind != YNODE_MAPPING) {
            config__err_at(L, cap, "capacity: expected a mapping (rpm, tpm, concurrency), got %s",
                           ytree_kind_name(cap));
        } else {
            cap_raw_t cr = {0};
            const ynode_t *ck[COUNTOF(capacity_fields)], *cv[COUNTOF(capacity_fields)];
            config__walk_map(L, cap, "capacity", capacity_fields, COUNTOF(capacity_fields), &cr, ck,
                             cv);
            m->cap_rpm = cr.rpm;
            m->cap_tpm = cr.tpm;
            m->cap_concurrency = cr.concurrency;
        }
    }
    /* The slots resilience enforces are the router's capacity too, unless
     * capacity.concurrency says otherwise: the router then steers new work
     * away before the slots run out (and requests queue). */
    if (!m->cap_concurrency && m->resil.max_concurrency > 0)
        m->cap_concurrency = m->resil.max_concurrency;
    if (raw.balance) {
        m->balance =
            config__name_index(config__strategy_names + 1, ROUTE_STRAT__COUNT - 1, raw.balance);
        if (m->balance < 0) {
            char list[160];
            config__err_at(
                L, vals[M_BALANCE], "unknown balance strategy '%s' (known: %s)",
                SHOWN(vals[M_BALANCE]),
                config__name_list(list, config__strategy_names + 1, ROUTE_STRAT__COUNT - 1));
        } else {
            m->balance += 1;
        }
        free(raw.balance);
    }
    if (raw.id && !config__model_name_ok(raw.id))
        config__err_at(L, vals[M_ID],
                       "invalid deployment id '%s' (must be non-empty, no whitespace)",
                       SHOWN(vals[M_ID]));
    m->id = raw.id; /* NULL: assigned by assign_ids() once every model is known */
    if (L->mpos) {
        const ynode_t *at = vals[M_ID] ? vals[M_ID] : vals[M_NAME] ? vals[M_NAME] : map;
        L->mpos[idx][0] = at->line;
        L->mpos[idx][1] = at->col;
    }

    if (raw.name) {
        if (!config__model_name_ok(raw.name)) {
            config__err_at(L, vals[M_NAME],
                           "invalid model name '%s' (must be non-empty, no whitespace)",
                           SHOWN(vals[M_NAME]));
        } else {
            /* Deployments in the file may share a public name (a model group);
             * a runtime model may not reuse any name. */
            for (size_t j = 0; L->registry && j < idx; j++) {
                if (name_nodes[j] && strcmp(name_nodes[j]->str, raw.name) == 0) {
                    config__err_at(L, vals[M_NAME], "duplicate model name '%s' (first at line %d)",
                                   raw.name, name_nodes[j]->line);
                    break;
                }
            }
            name_nodes[idx] = vals[M_NAME];
        }
    }
    if (raw.provider) {
        m->provider = config__find_provider(c, raw.provider);
        if (!m->provider)
            config__err_at(L, vals[M_PROVIDER], "provider '%s' is not defined in providers",
                           SHOWN(vals[M_PROVIDER]));
    }
    if (raw.model && !*raw.model) config__err_at(L, vals[M_MODEL], "model must not be empty");

    /* NULL when the provider's type is missing or unknown (reported with the provider) */
    const struct provider_type *mpt =
        m->provider && m->provider->type ? config__find_provider_type(m->provider->type) : NULL;
    if (!keys[M_CAPABILITIES]) m->capabilities = mpt ? mpt->caps : CAP_ALL;
    if (mpt && m->path && mpt->remote)
        config__err_at(L, keys[M__RAW + MD_PATH], "path is only for local providers, not type '%s'",
                       m->provider->type);
    if (mpt && !m->path && strcmp(mpt->name, "llamacpp") == 0)
        config__err_at(L, map, "model '%s': provider type llamacpp needs 'path' (a GGUF file)",
                       raw.name ? raw.name : "?");
    if (mpt && strcmp(mpt->name, "llamacpp") == 0) {
        if (!keys[M__RAW + MD_DEFMAX]) m->default_max_tokens = CONFIG_LOCAL_DEFAULT_MAX_TOKENS;
    } else if (mpt && keys[M__RAW + MD_DEFMAX]) {
        /* remote upstreams apply their own; one the relay would not send is refused */
        config__err_at(L, keys[M__RAW + MD_DEFMAX],
                       "default_max_tokens is only for llamacpp models, not type '%s'",
                       m->provider->type);
    }

    /* azure: the upstream model is the deployment name, a path segment of the URL */
    const char *dep = raw.model ? raw.model : raw.name;
    if (mpt && strcmp(mpt->name, "azure") == 0 && dep && *dep && !config_azure_deployment_ok(dep))
        config__err_at(L, raw.model ? vals[M_MODEL] : vals[M_NAME],
                       "model '%s': an azure deployment name (the model: key, else the name) "
                       "has letters, digits, '.', '_' and '-' only (at most 64)",
                       raw.name ? raw.name : "?");

    m->name = raw.name;
    if (raw.model)
        m->upstream_model = raw.model;
    else if (raw.name)
        m->upstream_model = config__dup_str(L, map, raw.name);
    free(raw.provider);
}

/* A deployment's id: explicit, else its name when no other deployment shares
 * it, else name@provider. Ids are unique and no id is another model's name. */
static void assign_ids(loader_t *L, config_t *c)
{
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        if (m->id || !m->name) continue;
        bool shared = false;
        for (size_t j = 0; j < c->n_models && !shared; j++)
            shared = j != i && !m->runtime && !c->models[j].runtime && c->models[j].name &&
                     strcmp(c->models[j].name, m->name) == 0;
        if (shared && m->provider) {
            size_t n = strlen(m->name) + strlen(m->provider->name) + 2;
            m->id = malloc(n);
            if (m->id) snprintf(m->id, n, "%s@%s", m->name, m->provider->name);
        } else {
            m->id = strdup(m->name);
        }
        if (!m->id) config__err_pos(L, 0, 0, "out of memory");
    }
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model_t *m = &c->models[i];
        int line = L->mpos ? L->mpos[i][0] : 0, col = L->mpos ? L->mpos[i][1] : 0;
        if (!m->id) continue;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            const cfg_model_t *o = &c->models[j];
            if (m->runtime && o->name && m->name && strcmp(o->name, m->name) == 0)
                continue; /* reported as a duplicate model name already */
            if (o->id && strcmp(o->id, m->id) == 0) {
                config__err_pos(
                    L, line, col,
                    "duplicate deployment id '%s' (first at line %d): deployments sharing a "
                    "name need different providers or an explicit 'id'",
                    m->id, L->mpos ? L->mpos[j][0] : 0);
                dup = true;
            }
        }
        for (size_t j = 0; j < c->n_models && !dup; j++) {
            const cfg_model_t *o = &c->models[j];
            if (o->name && strcmp(o->name, m->id) == 0 && (!m->name || strcmp(m->name, o->name))) {
                config__err_pos(L, line, col, "deployment id '%s' is the name of another model",
                                m->id);
                break;
            }
        }
    }
    /* One balance strategy per model group. */
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model_t *m = &c->models[i];
        for (size_t j = 0; j < i && m->balance >= 0 && m->name; j++) {
            const cfg_model_t *o = &c->models[j];
            if (o->name && strcmp(o->name, m->name) == 0 && o->balance >= 0 &&
                o->balance != m->balance) {
                config__err_pos(L, L->mpos ? L->mpos[i][0] : 0, L->mpos ? L->mpos[i][1] : 0,
                                "model '%s': deployments of one model must use the same balance "
                                "strategy ('%s' at line %d)",
                                m->name, config__strategy_names[o->balance],
                                L->mpos ? L->mpos[j][0] : 0);
                break;
            }
        }
    }
}

/* Runtime models (config_build): each a JSON object, parsed with the same
 * rules as a model in the file; errors name the file "registry". The trees
 * must outlive the loop because duplicate-name checks keep their nodes. */
static void parse_extra_models(loader_t *L, config_t *c, const ynode_t **names)
{
    if (!L->n_extra) return;
    ytree_t **trees = calloc(L->n_extra, sizeof(*trees));
    if (!trees) {
        config__err_pos(L, 0, 0, "out of memory");
        return;
    }
    const char *file = L->file;
    L->file = "registry";
    L->registry = true;
    for (size_t i = 0; i < L->n_extra; i++) {
        ytree_error_t yerr;
        trees[i] = ytree_parse(L->extra[i], strlen(L->extra[i]), &yerr);
        if (!trees[i]) {
            config__err_pos(L, yerr.line, yerr.col, "%s", yerr.msg);
            continue;
        }
        const ynode_t *root = ytree_root(trees[i]);
        if (!root || root->kind != YNODE_MAPPING) {
            config__err_pos(L, 1, 1, "a model must be a JSON object");
            continue;
        }
        size_t idx = c->n_models++;
        parse_model(L, c, root, &c->models[idx], names, idx);
        c->models[idx].runtime = true;
    }
    L->file = file;
    L->registry = false;
    L->extra_trees = trees; /* freed by parse_root after resolve_model_refs */
}

static void free_extra_trees(loader_t *L)
{
    if (!L->extra_trees) return;
    for (size_t i = 0; i < L->n_extra; i++) ytree_free(L->extra_trees[i]);
    free(L->extra_trees);
    L->extra_trees = NULL;
}

/* fallbacks and on_content_policy name other models: resolved once all are loaded. */
static void resolve_model_refs(loader_t *L, config_t *c, size_t n_file)
{
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        const model_refs_t *rf = L->refs ? &L->refs[i] : NULL;
        const char *file = L->file;
        if (i >= n_file) L->file = "registry";
        if (m->fallbacks.n) {
            m->fallback_models = calloc(m->fallbacks.n, sizeof *m->fallback_models);
            if (!m->fallback_models) config__err_pos(L, 0, 0, "out of memory");
        }
        for (size_t j = 0; j < m->fallbacks.n && m->fallback_models; j++) {
            const char *n = m->fallbacks.v[j];
            const ynode_t *at = rf && rf->fallbacks && j < rf->fallbacks->n
                                    ? rf->fallbacks->items[j]
                                    : (rf ? rf->fallbacks : NULL);
            const cfg_model_t *f = config_find_model(c, n, strlen(n));
            if (!f)
                config__err_at(L, at, "fallbacks: '%s' is not a configured model", n);
            else if (f == m)
                config__err_at(L, at, "fallbacks: model '%s' cannot fall back to itself", n);
            m->fallback_models[j] = f;
        }
        if (m->on_content_policy) {
            const char *n = m->on_content_policy;
            const cfg_model_t *f = config_find_model(c, n, strlen(n));
            if (!f)
                config__err_at(L, rf ? rf->on_content_policy : NULL,
                               "on_content_policy: '%s' is not a configured model", n);
            else if (f == m)
                config__err_at(L, rf ? rf->on_content_policy : NULL,
                               "on_content_policy: model '%s' cannot be its own alternate", n);
            m->content_policy_alt = f;
        }
        L->file = file;
    }
}

/* Linear scan over the deployments. A hash index built at load time (keyed by
 * name) can replace this body without changing callers. */
const cfg_model_t *config_find_model(const config_t *c, const char *name, size_t len)
{
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->n_models; i++) {
        const char *n = c->models[i].id;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->models[i];
    }
    for (size_t i = 0; i < c->n_models; i++) {
        const char *n = c->models[i].name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->models[i];
    }
    return NULL;
}

/* The models list (NULL when absent or empty) and then the runtime models.
 * Ids are assigned before fallbacks are resolved: they may name ids. */
void config__parse_models(loader_t *L, config_t *c, const ynode_t *models)
{
    size_t n_file = models ? models->n : 0, total = n_file + L->n_extra;
    if (total) {
        const ynode_t **names = calloc(total, sizeof(*names));
        c->models = calloc(total, sizeof(*c->models));
        L->refs = calloc(total, sizeof(*L->refs));
        L->mpos = calloc(total, sizeof(*L->mpos));
        if (!names || !c->models || !L->refs || !L->mpos) {
            config__err_pos(L, 0, 0, "out of memory");
        } else {
            for (size_t i = 0; i < n_file; i++) {
                const ynode_t *item = models->items[i];
                if (item->kind != YNODE_MAPPING) {
                    config__err_at(L, item, "models: expected a mapping, got %s",
                                   ytree_kind_name(item));
                    continue;
                }
                size_t idx = c->n_models++;
                parse_model(L, c, item, &c->models[idx], names, idx);
            }
            parse_extra_models(L, c, names);
            assign_ids(L, c); /* before references: they may name ids */
            resolve_model_refs(L, c, n_file);
        }
        free(names);
        free(L->refs);
        L->refs = NULL;
        free(L->mpos);
        L->mpos = NULL;
        free_extra_trees(L);
    }
}

/* The runtime models alone, for an empty config file (all defaults). */
void config__parse_runtime_models(loader_t *L, config_t *c)
{
    if (L->n_extra && (c->models = calloc(L->n_extra, sizeof(*c->models)))) {
        const ynode_t **names = calloc(L->n_extra, sizeof(*names));
        L->refs = calloc(L->n_extra, sizeof(*L->refs));
        if (names) parse_extra_models(L, c, names);
        free(names);
        assign_ids(L, c); /* before references: they may name ids */
        resolve_model_refs(L, c, 0);
        free(L->refs);
        L->refs = NULL;
        free_extra_trees(L);
    }
}

void config__models_free(config_t *c)
{
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        free(m->name);
        free(m->upstream_model);
        free(m->path);
        free(m->hardware);
        free(m->region);
        free(m->id);
        config__strlist_free(&m->tags);
        config__strlist_free(&m->fallbacks);
        free(m->fallback_models);
        free(m->on_content_policy);
    }
    free(c->models);
}
