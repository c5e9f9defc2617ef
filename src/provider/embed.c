#include "provider/embed.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "provider/xlate.h"

static const char *const embed_fields[] = {"model", "input", "encoding_format", "dimensions",
                                           "user"};

static int embed_refuse(prov_call_t *out, const char *code, const char *param, const char *msg)
{
    out->error = msg;
    out->error_code = code;
    out->error_param = param;
    return PROV_EBADREQ;
}

int embed_request(arena_t *a, const json_t *body, embed_opts_t *o, prov_call_t *out)
{
    memset(o, 0, sizeof *o);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof embed_fields / sizeof embed_fields[0]; i++)
            known = known || !strcmp(key, embed_fields[i]);
        if (!known) {
            const char *k = a ? arena_strdup(a, key) : NULL;
            const char *msg =
                a ? arena_printf(a, "'%.64s' is not supported for embeddings on this deployment",
                                 key)
                  : NULL;
            return embed_refuse(out, "unsupported_parameter", k && *k ? k : NULL,
                                msg ? msg : "a field is not supported for embeddings here");
        }
    }
    json_t *in = json_object_get(body, "input");
    if (json_is_string(in)) {
        o->n = 1;
    } else if (json_is_array(in) && json_array_size(in) >= 1 &&
               json_array_size(in) <= EMBED_MAX_INPUTS) {
        size_t i;
        json_array_foreach(in, i, v) if (!json_is_string(v)) return embed_refuse(
            out, "invalid_type", "input",
            "this deployment takes input as a string or an array of strings (not token ids)");
        o->n = json_array_size(in);
    } else {
        return embed_refuse(out, json_is_array(in) ? "invalid_value" : "invalid_type", "input",
                            "input must be a string or an array of 1 to 2048 strings");
    }
    v = json_object_get(body, "encoding_format");
    if (v && !json_is_null(v)) {
        const char *f = json_string_value(v);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64")))
            return embed_refuse(out, "invalid_value", "encoding_format",
                                "encoding_format must be 'float' or 'base64'");
        o->base64 = !strcmp(f, "base64");
    }
    v = json_object_get(body, "dimensions");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v))
            return embed_refuse(out, "invalid_type", "dimensions", "dimensions must be an integer");
        if (json_integer_value(v) < 1 || json_integer_value(v) > EMBED_MAX_DIMS)
            return embed_refuse(out, "invalid_value", "dimensions",
                                "dimensions must be between 1 and 65536");
        o->dims = (int)json_integer_value(v);
    }
    v = json_object_get(body, "user");
    if (v && !json_is_null(v) && !json_is_string(v))
        return embed_refuse(out, "invalid_type", "user", "user must be a string");
    return 0;
}

const char *embed_input(const json_t *body, size_t i, size_t *len)
{
    json_t *in = json_object_get(body, "input");
    json_t *s = json_is_array(in) ? json_array_get(in, i) : in;
    *len = json_string_length(s);
    return json_string_value(s);
}

void embed_begin(buf_t *out)
{
    buf_appends(out, "{\"object\":\"list\",\"data\":[");
}

static void embed_base64(buf_t *out, const float *v, int n)
{
    size_t raw_len = (size_t)n * 4;
    unsigned char *raw = malloc(raw_len ? raw_len : 1);
    char *enc = malloc(4 * ((raw_len + 2) / 3) + 1);
    if (raw && enc) {
        for (int i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int b = 0; b < 4; b++)
                raw[4 * (size_t)i + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        int k = EVP_EncodeBlock((unsigned char *)enc, raw, (int)raw_len);
        buf_append(out, "\"", 1);
        buf_append(out, enc, (size_t)k);
        buf_append(out, "\"", 1);
    } else {
        buf_appends(out, "\"\"");
    }
    free(raw);
    free(enc);
}

int embed_vector(buf_t *out, const embed_opts_t *o, size_t index, const float *v, int n)
{
    if (o->dims > n) return -1;
    int d = o->dims ? o->dims : n;
    float *w = NULL;
    if (o->dims) { /* the first d components, unit length (again) */
        w = malloc((size_t)d * sizeof *w);
        if (!w) return -1;
        double norm = 0;
        for (int i = 0; i < d; i++) norm += (double)v[i] * v[i];
        norm = sqrt(norm);
        for (int i = 0; i < d; i++) w[i] = norm > 0 ? (float)(v[i] / norm) : 0.0f;
        v = w;
    }
    buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", index ? "," : "",
               index);
    if (o->base64) {
        embed_base64(out, v, d);
    } else {
        buf_appends(out, "[");
        for (int i = 0; i < d; i++) {
            float f = isfinite(v[i]) ? v[i] : 0.0f; /* JSON has no NaN */
            buf_printf(out, "%s%.9g", i ? "," : "", (double)f);
        }
        buf_appends(out, "]");
    }
    buf_appends(out, "}");
    free(w);
    return 0;
}

void embed_end(buf_t *out, const char *model, long prompt_tokens)
{
    buf_appends(out, "],\"model\":");
    jsonw_cstr(out, model ? model : "");
    if (prompt_tokens < 0) prompt_tokens = 0;
    buf_printf(out, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", prompt_tokens,
               prompt_tokens);
}

void embed_dims_error(buf_t *out, const embed_opts_t *o, int n)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "dimensions %d is more than this model's embeddings have (%d); use 1 to %d", o->dims,
             n, n);
    buf_reset(out);
    xl_error_json(out, 400, NULL, "invalid_value", "dimensions", msg);
}

int embed_json_answer(buf_t *out, const embed_opts_t *o, const json_t *vectors, const char *key,
                      const char *model, long prompt_tokens, int status)
{
    if (!json_is_array(vectors) || json_array_size(vectors) != o->n) return -1;
    embed_begin(out);
    size_t i;
    json_t *e;
    json_array_foreach(vectors, i, e)
    {
        json_t *vals = key ? json_object_get(e, key) : e;
        size_t n = json_array_size(vals);
        if (!json_is_array(vals) || n == 0 || n > EMBED_MAX_DIMS) return -1;
        float *v = malloc(n * sizeof *v);
        if (!v) return -1;
        size_t k;
        json_t *x;
        bool numbers = true;
        json_array_foreach(vals, k, x)
        {
            v[k] = (float)json_number_value(x);
            numbers = numbers && json_is_number(x) && isfinite(v[k]); /* as a float32 */
        }
        int rc = numbers ? embed_vector(out, o, i, v, (int)n) : -1;
        free(v);
        if (!numbers) return -1;
        if (rc) { /* fewer dimensions than asked for */
            embed_dims_error(out, o, (int)n);
            return 400;
        }
    }
    embed_end(out, model, prompt_tokens);
    return status;
}
