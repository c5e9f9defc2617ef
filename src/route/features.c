/*
 * route features — what the router needs from a request body and headers.
 * Pure: reads the parsed body, writes a route_features_t (text copied into
 * the caller's arena, capped at FEAT_TEXT_MAX bytes).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "provider/provider.h"
#include "route/router.h"

#define FEAT_TEXT_MAX (64u << 10)

void route_features_init(route_features_t *f)
{
    memset(f, 0, sizeof *f);
    f->needs = CAP_CHAT;
    f->out_tokens = ROUTE_DEFAULT_OUT_TOKENS;
    f->answers = 1;
    f->max_cost_usd = f->max_latency_ms = f->min_quality = -1;
}

typedef struct feat_acc {
    size_t bytes; /* all text, for the token estimate */
    buf_t text;   /* user text, capped */
} feat_acc_t;

static void feat_text(feat_acc_t *acc, const char *s, size_t n, bool keep)
{
    acc->bytes += n;
    if (!keep || acc->text.len >= FEAT_TEXT_MAX) return;
    size_t room = FEAT_TEXT_MAX - acc->text.len;
    if (acc->text.len) buf_append(&acc->text, "\n", 1);
    buf_append(&acc->text, s, n < room ? n : room);
}

static void feat_part(route_features_t *f, feat_acc_t *acc, const json_t *part, bool keep)
{
    if (json_is_string(part)) {
        feat_text(acc, json_string_value(part), json_string_length(part), keep);
        return;
    }
    const char *t = json_string_value(json_object_get(part, "type"));
    if (!t) return;
    if (!strcmp(t, "text") || !strcmp(t, "input_text")) {
        const json_t *tx = json_object_get(part, "text");
        if (json_is_string(tx)) feat_text(acc, json_string_value(tx), json_string_length(tx), keep);
    } else if (!strcmp(t, "image_url") || !strcmp(t, "input_image") || !strcmp(t, "image")) {
        f->image = true;
    } else if (!strcmp(t, "input_audio") || !strcmp(t, "audio")) {
        f->audio = true;
    } else if (!strcmp(t, "file") || !strcmp(t, "input_file")) {
        f->file = true;
    }
}

static void feat_content(route_features_t *f, feat_acc_t *acc, const json_t *content, bool keep)
{
    if (json_is_array(content)) {
        size_t i;
        const json_t *p;
        json_array_foreach(content, i, p) feat_part(f, acc, p, keep);
    } else {
        feat_part(f, acc, content, keep);
    }
}

/* The capabilities the request's content and options need (README
 * "Capabilities"); f's flags are set already. */
unsigned route_endpoint_need(int endpoint)
{
    return endpoint == EP_EMBEDDINGS    ? CAP_EMBEDDINGS
           : endpoint == EP_COMPLETIONS ? CAP_COMPLETIONS
                                        : CAP_CHAT;
}

static unsigned feat_needs(const route_features_t *f, int endpoint)
{
    unsigned needs = route_endpoint_need(endpoint);
    if (f->tools) needs |= CAP_TOOLS;
    if (f->image) needs |= CAP_VISION;
    if (f->audio) needs |= CAP_AUDIO;
    if (f->file) needs |= CAP_FILES;
    if (f->json_mode) needs |= CAP_JSON;
    if (f->answers > 1) needs |= CAP_N;
    return needs;
}

/* n, or best_of when larger (completions); 1 when neither is an integer > 1. */
static long feat_answers(int endpoint, const json_t *body)
{
    if (endpoint == EP_EMBEDDINGS || endpoint == EP_COUNT_TOKENS) return 1;
    long k = 1;
    const char *keys[] = {"n", "best_of"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(body, keys[i]);
        if (json_is_integer(v) && json_integer_value(v) > k) k = (long)json_integer_value(v);
    }
    return k;
}

void route_features_from_body(route_features_t *f, arena_t *a, int endpoint, const json_t *body)
{
    feat_acc_t acc = {0};
    bool keep = a != NULL; /* no arena: no text wanted (estimates and needs only) */
    buf_init(&acc.text, keep ? FEAT_TEXT_MAX + 16 : 0);
    size_t n_msgs = 0;
    if (endpoint == EP_CHAT || endpoint == EP_COUNT_TOKENS) {
        size_t i;
        const json_t *msg;
        json_array_foreach(json_object_get(body, "messages"), i, msg)
        {
            const char *role = json_string_value(json_object_get(msg, "role"));
            bool user = !role || !strcmp(role, "user");
            feat_content(f, &acc, json_object_get(msg, "content"), keep && user);
            n_msgs++;
        }
        const json_t *tools = json_object_get(body, "tools");
        const json_t *fns = json_object_get(body, "functions");
        f->tools = (json_is_array(tools) && json_array_size(tools)) ||
                   (json_is_array(fns) && json_array_size(fns));
        const char *rf =
            json_string_value(json_object_get(json_object_get(body, "response_format"), "type"));
        f->json_mode = rf && (!strcmp(rf, "json_object") || !strcmp(rf, "json_schema"));
    } else {
        feat_content(f, &acc, json_object_get(body, endpoint == EP_EMBEDDINGS ? "input" : "prompt"),
                     keep);
        n_msgs = 1;
    }
    f->answers = feat_answers(endpoint, body);
    f->needs = feat_needs(f, endpoint);
    f->prompt_tokens = (long)(acc.bytes / 4 + 4 * n_msgs);
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(mt)) mt = json_object_get(body, "max_tokens");
    if (json_is_integer(mt) && json_integer_value(mt) > 0)
        f->out_tokens = (long)json_integer_value(mt);
    if (endpoint == EP_EMBEDDINGS || endpoint == EP_COUNT_TOKENS) f->out_tokens = 0;
    f->stream = json_is_true(json_object_get(body, "stream"));
    if (acc.text.len && a) {
        char *t = arena_strndup(a, buf_data(&acc.text), acc.text.len);
        if (t) /* ASCII lower case: the built-in keywords are matched with strstr */
            for (char *q = t; *q; q++)
                if (*q >= 'A' && *q <= 'Z') *q = (char)(*q + 32);
        f->text = t;
        f->text_len = t ? acc.text.len : 0;
    }
    buf_free(&acc.text);
}

unsigned route_needs_from_body(int endpoint, const json_t *body)
{
    route_features_t f;
    route_features_init(&f);
    route_features_from_body(&f, NULL, endpoint, body);
    return f.needs;
}

const char *route_cap_first_name(unsigned caps)
{
    return config_capability_name(caps & -caps);
}

long route_estimate_input_tokens(const json_t *body)
{
    route_features_t f;
    route_features_init(&f);
    route_features_from_body(&f, NULL, EP_COUNT_TOKENS, body);
    long n = f.prompt_tokens;
    const json_t *tools = json_object_get(body, "tools");
    if (json_is_array(tools) && json_array_size(tools))
        n += (long)(json_dumpb(tools, NULL, 0, JSON_COMPACT) / 4);
    return n;
}

const char *const route_constraint_headers[ROUTE_N_CONSTRAINTS] = {
    "x-skuld-max-cost", "x-skuld-max-latency-ms", "x-skuld-min-quality"};

int route_features_constraint(route_features_t *f, const char *header, const char *value,
                              size_t len, const char **err)
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp) {
        *err = "expected a number";
        return -1;
    }
    memcpy(tmp, value, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (errno || *end || end == tmp || !isfinite(v) || v < 0) {
        *err = "expected a non-negative number";
        return -1;
    }
    if (!strcmp(header, "x-skuld-max-cost")) {
        f->max_cost_usd = v;
    } else if (!strcmp(header, "x-skuld-max-latency-ms")) {
        f->max_latency_ms = v;
    } else if (!strcmp(header, "x-skuld-min-quality")) {
        if (v > 1) {
            *err = "expected a number between 0 and 1";
            return -1;
        }
        f->min_quality = v;
    } else {
        *err = "unknown constraint";
        return -1;
    }
    return 0;
}
