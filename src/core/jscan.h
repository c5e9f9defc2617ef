/*
 * jscan — a single-pass validating scanner for request bodies (see jscan.c).
 */
#ifndef SKULD_CORE_JSCAN_H
#define SKULD_CORE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    JS_ABSENT = 0,
    JS_STRING,
    JS_INT, /* a number jansson reads as an integer */
    JS_REAL,
    JS_TRUE,
    JS_FALSE,
    JS_NULL,
    JS_OBJECT,
    JS_ARRAY,
} jscan_type_t;

typedef struct jscan {
    /* top-level keys the gateway reads */
    jscan_type_t model, messages, prompt, input, stream, stream_options;
    jscan_type_t include_usage; /* stream_options.include_usage (ABSENT unless an object) */
    jscan_type_t max_tokens, max_completion_tokens;
    int64_t max_tokens_v, max_completion_tokens_v; /* when JS_INT */
    jscan_type_t n, best_of;                       /* the answers asked for (each billed) */
    int64_t n_v, best_of_v;                        /* when JS_INT */
    const char *model_p; /* the model string's bytes (no escapes), when JS_STRING */
    size_t model_len;
    bool u_escape; /* some string holds a \u escape */
} jscan_t;

/* The usage object of an answer: what accounting reads. */
typedef struct jscan_usage {
    jscan_type_t prompt_tokens, completion_tokens;
    jscan_type_t cached_tokens; /* prompt_tokens_details.cached_tokens (ABSENT unless an object) */
    int64_t prompt_tokens_v, completion_tokens_v, cached_tokens_v; /* when JS_INT */
} jscan_usage_t;

/* 0: body is a JSON object jansson (JSON_REJECT_DUPLICATES) accepts as is,
 * and out describes it. -1: invalid, or anything the scanner is not sure
 * about (escaped keys, deep nesting, many keys, escaped model...): parse with
 * jansson instead. */
int jscan_body(const char *p, size_t n, jscan_t *out);

/* The object value starting at p (whitespace allowed before it; bytes after
 * it are not looked at): 0 when json_loadb(p, n, JSON_DISABLE_EOF_CHECK |
 * JSON_REJECT_DUPLICATES) accepts it as an object, with out as jansson would
 * report; -1 as for jscan_body (parse with jansson instead). */
int jscan_usage(const char *p, size_t n, jscan_usage_t *out);

#endif
