/*
 * jscan — validate a request body as JSON in one pass, without building a
 * tree, and note the top-level fields the gateway reads (api/openai.c's fast
 * path for plain pass-through requests).
 *
 * Invariant: jscan_body() returns 0 only for bodies that json_loadb(...,
 * JSON_REJECT_DUPLICATES) accepts as an object, and then the recorded types
 * and values are what jansson would report. It is strict the other way too
 * (the grammar, UTF-8 and escape rules of jansson 2.14), but anything it is
 * unsure about returns -1, which only means "parse with jansson": escaped
 * object keys (duplicate checks compare raw bytes), more than JSCAN_MAX_KEYS
 * keys in one object, nesting deeper than JSCAN_MAX_DEPTH, numbers longer
 * than 63 bytes or out of range (under- or overflow), an escaped "model"
 * value. Pure function, no allocation (at most ~1 KiB of stack per nesting
 * level, 32 levels); any thread.
 *
 * jscan_usage() is the same scanner over an answer's "usage" object (the
 * call layer reads the token counts of every relayed answer with it instead
 * of building a jansson tree).
 */
#include "core/jscan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSCAN_MAX_DEPTH 32
#define JSCAN_MAX_KEYS 64

typedef struct {
    const char *p, *end;
    jscan_t *out;
    jscan_usage_t *usage; /* jscan_usage() only */
} js_t;

static void js_ws(js_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int js_hex4(const char *p, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9')
            x |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            x |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *v = x;
    return 0;
}

/* At the opening quote. On success s->p is past the closing quote, *esc says
 * whether the string held any escape. */
static int js_string(js_t *s, bool *esc)
{
    const unsigned char *p = (const unsigned char *)s->p + 1, *end = (const unsigned char *)s->end;
    *esc = false;
    for (;;) {
        if (p >= end) return -1;
        unsigned c = *p;
        if (c == '"') break;
        if (c < 0x20) return -1;
        if (c == '\\') {
            *esc = true;
            if (end - p < 2) return -1;
            c = p[1];
            if (c == 'u') {
                unsigned v, w;
                if (end - p < 6 || js_hex4((const char *)p + 2, &v)) return -1;
                p += 6;
                s->out->u_escape = true;
                if (v == 0 || (v >= 0xDC00 && v <= 0xDFFF)) return -1;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
                        js_hex4((const char *)p + 2, &w) || w < 0xDC00 || w > 0xDFFF)
                        return -1;
                    p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0) return -1;
            p += 2;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF */
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF)
            n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4, cp = c & 0x07;
        else
            return -1;
        if ((size_t)(end - p) < n) return -1;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        p += n;
    }
    s->p = (const char *)p + 1;
    return 0;
}

static int js_number(js_t *s, jscan_type_t *t, int64_t *iv)
{
    const char *p = s->p, *start = p;
    bool real = false;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end) return -1;
    if (*p == '0') {
        p++;
        if (p < s->end && *p >= '0' && *p <= '9') return -1;
    } else if (*p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    } else {
        return -1;
    }
    if (p < s->end && *p == '.') {
        real = true;
        p++;
        if (p >= s->end || *p < '0' || *p > '9') return -1;
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || *p < '0' || *p > '9') return -1;
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    }
    char tmp[64];
    size_t len = (size_t)(p - start);
    if (len >= sizeof tmp) return -1;
    memcpy(tmp, start, len);
    tmp[len] = '\0';
    errno = 0;
    char *e;
    if (real) {
        (void)strtod(tmp, &e);
        *t = JS_REAL;
    } else {
        long long v = strtoll(tmp, &e, 10);
        *iv = v;
        *t = JS_INT;
    }
    if (errno || *e) return -1;
    s->p = p;
    return 0;
}

static int js_lit(js_t *s, const char *w, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return -1;
    s->p += n;
    return 0;
}

static int js_value(js_t *s, int depth, jscan_type_t *t, int64_t *iv, int top);

/* The framing shared by objects and arrays. Both return 1 when a member
 * follows (whitespace skipped), 0 when the container is closed (close
 * consumed), -1 when the body is not valid (or nested too deep). */

/* At the opening '{' or '['. */
static inline int js_open(js_t *s, int depth, char close)
{
    if (depth > JSCAN_MAX_DEPTH) return -1;
    s->p++;
    js_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    return 1;
}

/* After a member's value. */
static inline int js_next(js_t *s, char close)
{
    js_ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
        s->p++;
        js_ws(s);
        return 1;
    }
    if (*s->p != close) return -1;
    s->p++;
    return 0;
}

/* At '{'. top: 1 for the body, 2 for the body's stream_options, 3 for a
 * usage object, 4 for its prompt_tokens_details. */
static int js_object(js_t *s, int depth, int top)
{
    struct {
        const char *p;
        size_t n;
    } keys[JSCAN_MAX_KEYS];
    size_t nk = 0;
    int more = js_open(s, depth, '}');
    while (more > 0) {
        if (s->p >= s->end || *s->p != '"') return -1;
        const char *k = s->p + 1;
        bool esc;
        if (js_string(s, &esc) || esc) return -1;
        size_t kn = (size_t)(s->p - 1 - k);
        if (nk == JSCAN_MAX_KEYS) return -1;
        for (size_t i = 0; i < nk; i++)
            if (keys[i].n == kn && memcmp(keys[i].p, k, kn) == 0) return -1; /* duplicate */
        keys[nk].p = k;
        keys[nk++].n = kn;
        js_ws(s);
        if (s->p >= s->end || *s->p != ':') return -1;
        s->p++;
        js_ws(s);
        jscan_t *o = s->out;
        jscan_type_t *slot = NULL;
        int64_t *ivp = NULL, dummy = 0;
        int sub = 0;
#define KEY(lit) (kn == sizeof lit - 1 && memcmp(k, lit, kn) == 0)
        if (top == 1) {
            if (KEY("model"))
                slot = &o->model;
            else if (KEY("messages"))
                slot = &o->messages;
            else if (KEY("prompt"))
                slot = &o->prompt;
            else if (KEY("input"))
                slot = &o->input;
            else if (KEY("stream"))
                slot = &o->stream;
            else if (KEY("stream_options"))
                slot = &o->stream_options, sub = 2;
            else if (KEY("max_tokens"))
                slot = &o->max_tokens, ivp = &o->max_tokens_v;
            else if (KEY("max_completion_tokens"))
                slot = &o->max_completion_tokens, ivp = &o->max_completion_tokens_v;
            else if (KEY("n"))
                slot = &o->n, ivp = &o->n_v;
            else if (KEY("best_of"))
                slot = &o->best_of, ivp = &o->best_of_v;
        } else if (top == 2 && KEY("include_usage")) {
            slot = &o->include_usage;
        } else if (top == 3) {
            jscan_usage_t *u = s->usage;
            if (KEY("prompt_tokens"))
                slot = &u->prompt_tokens, ivp = &u->prompt_tokens_v;
            else if (KEY("completion_tokens"))
                slot = &u->completion_tokens, ivp = &u->completion_tokens_v;
            else if (KEY("prompt_tokens_details"))
                sub = 4;
        } else if (top == 4 && KEY("cached_tokens")) {
            slot = &s->usage->cached_tokens, ivp = &s->usage->cached_tokens_v;
        }
#undef KEY
        jscan_type_t t;
        const char *vstart = s->p;
        if (js_value(s, depth, &t, ivp ? ivp : &dummy, sub)) return -1;
        if (slot) *slot = t;
        if (slot == &o->model && t == JS_STRING) {
            if (memchr(vstart + 1, '\\', (size_t)(s->p - vstart - 2))) return -1;
            o->model_p = vstart + 1;
            o->model_len = (size_t)(s->p - vstart - 2);
        }
        more = js_next(s, '}');
    }
    return more;
}

static int js_array(js_t *s, int depth)
{
    int more = js_open(s, depth, ']');
    while (more > 0) {
        jscan_type_t t;
        int64_t iv;
        if (js_value(s, depth, &t, &iv, 0)) return -1;
        more = js_next(s, ']');
    }
    return more;
}

/* At the first byte of a value (whitespace skipped). */
static int js_value(js_t *s, int depth, jscan_type_t *t, int64_t *iv, int top)
{
    if (s->p >= s->end) return -1;
    bool esc;
    switch (*s->p) {
    case '{':
        *t = JS_OBJECT;
        return js_object(s, depth + 1, top);
    case '[':
        *t = JS_ARRAY;
        return js_array(s, depth + 1);
    case '"':
        *t = JS_STRING;
        return js_string(s, &esc);
    case 't':
        *t = JS_TRUE;
        return js_lit(s, "true", 4);
    case 'f':
        *t = JS_FALSE;
        return js_lit(s, "false", 5);
    case 'n':
        *t = JS_NULL;
        return js_lit(s, "null", 4);
    default:
        return js_number(s, t, iv);
    }
}

int jscan_body(const char *p, size_t n, jscan_t *out)
{
    memset(out, 0, sizeof *out);
    if (!p) return -1;
    js_t s = {p, p + n, out, NULL};
    js_ws(&s);
    if (s.p >= s.end || *s.p != '{') return -1;
    if (js_object(&s, 1, 1)) return -1;
    js_ws(&s);
    return s.p == s.end ? 0 : -1;
}

int jscan_usage(const char *p, size_t n, jscan_usage_t *out)
{
    memset(out, 0, sizeof *out);
    if (!p) return -1;
    jscan_t body; /* the string scanner notes \u escapes there; unused here */
    memset(&body, 0, sizeof body);
    js_t s = {p, p + n, &body, out};
    js_ws(&s);
    if (s.p >= s.end || *s.p != '{') return -1;
    return js_object(&s, 1, 3) ? -1 : 0;
}
