/*
 * jscan_oracle — the differential oracle for src/core/jscan, shared by the
 * unit test (tests/unit/test_jscan.c) and the fuzz target
 * (tests/fuzz/fuzz_jscan.c).
 *
 * jscan_oracle(b, n, why, whylen): run jscan_body() on b[0..n); when the
 * scanner accepts, json_loadb(JSON_REJECT_DUPLICATES) must accept an object
 * and agree on every field the scanner reports (types of the top-level keys
 * the gateway reads, stream_options.include_usage, the integer values of
 * max_tokens/max_completion_tokens, the model string's bytes).
 * Returns the scanner's non-zero code when it defers (no check), 0 when it
 * accepts and jansson agrees, JSCAN_ORACLE_DISAGREE (with a description of
 * the first difference in why) otherwise. Header-only (static functions), so
 * each test binary compiles its own copy.
 */
#ifndef SKULD_TESTS_JSCAN_ORACLE_H
#define SKULD_TESTS_JSCAN_ORACLE_H

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/jscan.h"

#define JSCAN_ORACLE_DISAGREE 0x7fff

static inline jscan_type_t jscan_oracle_type_of(const json_t *v)
{
    if (!v) return JS_ABSENT;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return JS_OBJECT;
    case JSON_ARRAY:
        return JS_ARRAY;
    case JSON_STRING:
        return JS_STRING;
    case JSON_INTEGER:
        return JS_INT;
    case JSON_REAL:
        return JS_REAL;
    case JSON_TRUE:
        return JS_TRUE;
    case JSON_FALSE:
        return JS_FALSE;
    default:
        return JS_NULL;
    }
}

static inline int jscan_oracle(const char *b, size_t n, char *why, size_t whylen)
{
    jscan_t s;
    int rc = jscan_body(b, n, &s);
    if (rc != 0) return rc;
    json_error_t e;
    json_t *j = json_loadb(b, n, JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) {
        snprintf(why, whylen, "scanner accepted what jansson rejects: '%.*s' (%s)", (int)n, b,
                 j ? "not an object" : e.text);
        json_decref(j);
        return JSCAN_ORACLE_DISAGREE;
    }
    const json_t *so = json_object_get(j, "stream_options");
    const struct {
        const char *name;
        jscan_type_t got, want;
    } fields[] = {
        {"model", s.model, jscan_oracle_type_of(json_object_get(j, "model"))},
        {"messages", s.messages, jscan_oracle_type_of(json_object_get(j, "messages"))},
        {"prompt", s.prompt, jscan_oracle_type_of(json_object_get(j, "prompt"))},
        {"input", s.input, jscan_oracle_type_of(json_object_get(j, "input"))},
        {"stream", s.stream, jscan_oracle_type_of(json_object_get(j, "stream"))},
        {"stream_options", s.stream_options, jscan_oracle_type_of(so)},
        {"include_usage", s.include_usage,
         jscan_oracle_type_of(json_object_get(so, "include_usage"))},
        {"max_tokens", s.max_tokens, jscan_oracle_type_of(json_object_get(j, "max_tokens"))},
        {"max_completion_tokens", s.max_completion_tokens,
         jscan_oracle_type_of(json_object_get(j, "max_completion_tokens"))},
        {"n", s.n, jscan_oracle_type_of(json_object_get(j, "n"))},
        {"best_of", s.best_of, jscan_oracle_type_of(json_object_get(j, "best_of"))},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields && !bad; i++) {
        if (fields[i].got != fields[i].want) {
            snprintf(why, whylen, "%s: scanner type %d, jansson type %d in '%.*s'", fields[i].name,
                     (int)fields[i].got, (int)fields[i].want, (int)n, b);
            bad = 1;
        }
    }
    if (!bad && s.max_tokens == JS_INT &&
        s.max_tokens_v != json_integer_value(json_object_get(j, "max_tokens"))) {
        snprintf(why, whylen, "max_tokens: scanner %lld, jansson %lld", (long long)s.max_tokens_v,
                 (long long)json_integer_value(json_object_get(j, "max_tokens")));
        bad = 1;
    }
    if (!bad && s.max_completion_tokens == JS_INT &&
        s.max_completion_tokens_v !=
            json_integer_value(json_object_get(j, "max_completion_tokens"))) {
        snprintf(why, whylen, "max_completion_tokens: scanner %lld, jansson %lld",
                 (long long)s.max_completion_tokens_v,
                 (long long)json_integer_value(json_object_get(j, "max_completion_tokens")));
        bad = 1;
    }
    if (!bad && s.n == JS_INT && s.n_v != json_integer_value(json_object_get(j, "n"))) {
        snprintf(why, whylen, "n: scanner %lld, jansson %lld", (long long)s.n_v,
                 (long long)json_integer_value(json_object_get(j, "n")));
        bad = 1;
    }
    if (!bad && s.best_of == JS_INT &&
        s.best_of_v != json_integer_value(json_object_get(j, "best_of"))) {
        snprintf(why, whylen, "best_of: scanner %lld, jansson %lld", (long long)s.best_of_v,
                 (long long)json_integer_value(json_object_get(j, "best_of")));
        bad = 1;
    }
    if (!bad && s.model == JS_STRING) {
        const json_t *m = json_object_get(j, "model");
        if (s.model_len != json_string_length(m) ||
            memcmp(s.model_p, json_string_value(m), s.model_len) != 0) {
            snprintf(why, whylen, "model: scanner '%.*s', jansson '%s'", (int)s.model_len,
                     s.model_p, json_string_value(m));
            bad = 1;
        }
    }
    json_decref(j);
    return bad ? JSCAN_ORACLE_DISAGREE : 0;
}

/* The same for jscan_usage(): when the scanner accepts, json_loadb(b, n,
 * JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES) must accept an object and
 * agree on prompt_tokens, completion_tokens and
 * prompt_tokens_details.cached_tokens (types, and values when integers). */
static inline int jscan_usage_oracle(const char *b, size_t n, char *why, size_t whylen)
{
    jscan_usage_t s;
    int rc = jscan_usage(b, n, &s);
    if (rc != 0) return rc;
    json_error_t e;
    json_t *j = json_loadb(b, n, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) {
        snprintf(why, whylen, "usage: scanner accepted what jansson rejects: '%.*s' (%s)", (int)n,
                 b, j ? "not an object" : e.text);
        json_decref(j);
        return JSCAN_ORACLE_DISAGREE;
    }
    const json_t *d = json_object_get(j, "prompt_tokens_details");
    const struct {
        const char *name;
        jscan_type_t got;
        int64_t got_v;
        const json_t *want;
    } f[] = {
        {"prompt_tokens", s.prompt_tokens, s.prompt_tokens_v, json_object_get(j, "prompt_tokens")},
        {"completion_tokens", s.completion_tokens, s.completion_tokens_v,
         json_object_get(j, "completion_tokens")},
        {"cached_tokens", s.cached_tokens, s.cached_tokens_v, json_object_get(d, "cached_tokens")},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof f / sizeof *f && !bad; i++) {
        /* the scanner reports only what accounting reads: integers */
        jscan_type_t want = jscan_oracle_type_of(f[i].want) == JS_INT ? JS_INT : JS_ABSENT;
        jscan_type_t got = f[i].got == JS_INT ? JS_INT : JS_ABSENT;
        if (got != want || (got == JS_INT && f[i].got_v != json_integer_value(f[i].want))) {
            snprintf(why, whylen, "usage %s: scanner %d/%lld, jansson %d/%lld in '%.*s'", f[i].name,
                     (int)got, (long long)f[i].got_v, (int)want,
                     (long long)(want == JS_INT ? json_integer_value(f[i].want) : 0), (int)n, b);
            bad = 1;
        }
    }
    json_decref(j);
    return bad ? JSCAN_ORACLE_DISAGREE : 0;
}

#endif
