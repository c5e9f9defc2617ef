/*
 * mock-upstream: a scriptable fake OpenAI-compatible provider for Skuld's
 * integration tests and benchmarks.
 *
 * It is a real HTTP/1.1 server built on libevent's evhttp (on purpose not
 * Skuld's own HTTP code, so a bug there cannot hide behind the same bug
 * here). One thread, one event loop; every delay is a libevent timer, never
 * a sleep, so thousands of slow or streaming requests can be in flight at
 * once. The RLIMIT_NOFILE soft limit is raised to the hard limit at start.
 *
 * Command line
 *   mock-upstream [--listen HOST:PORT] [--seed N] [--azure-key K] [--azure-token T]
 *                 [--vertex-pubkey PEM] [--vertex-ttl S]
 *   Default 127.0.0.1:0 (port 0 = pick a free port). Once listening it prints
 *   exactly "LISTENING <port>\n" on stdout. SIGTERM/SIGINT: free all, exit 0.
 *   --seed seeds the PRNG used by fail_rate, stall_rate and reset_rate
 *   (default 1). --azure-key and --azure-token are the credentials the Azure
 *   shape accepts (default "mock-azure-key" and "mock-azure-token").
 *
 * Endpoints (a client's base_url is http://HOST:PORT/v1)
 *   POST /v1/chat/completions  chat.completion, or SSE chat.completion.chunk
 *                              events when "stream": true
 *   POST /v1/completions       text_completion (legacy), streaming too
 *   POST /v1/embeddings        8 floats per input (unit length), derived from a
 *                              hash of it (base64 float32 when encoding_format is
 *                              "base64"; "dimensions" 1..8 keeps the first N,
 *                              renormalised; more is a 400)
 *   GET  /v1/models            one model, "mock-model"
 *   Unknown /v1 path: 404 {"error":{...,"code":"not_found"}}; wrong method:
 *   405; malformed JSON body: 400; errors always use the OpenAI error object.
 *
 * Other provider shapes (same scripting, same content and token counting;
 * each answers and fails in its own shape):
 *   POST /v1/messages          Anthropic Messages: a message, or with
 *                              "stream": true the events message_start,
 *                              content_block_start, one content_block_delta
 *                              per piece (text_delta / input_json_delta),
 *                              content_block_stop, message_delta,
 *                              message_stop. Errors {"type":"error","error":
 *                              {"type":T,"message"}}, T by status (429
 *                              rate_limit_error, 529 overloaded_error, ...)
 *   POST /v1beta/models/{m}:generateContent  Gemini; :streamGenerateContent
 *                              (?alt=sse) sends one SSE event per piece, then
 *                              one with finishReason and usageMetadata.
 *                              Errors {"error":{"code","message","status"}}
 *   POST /api/chat             Ollama native chat; streams (the default
 *                              unless "stream": false) as NDJSON lines, the
 *                              last with "done": true and the counts.
 *                              Errors {"error":"..."}
 *   POST /v1/messages/count_tokens  Anthropic token count: {"input_tokens":
 *                              words of system and message text + 10 per
 *                              tool}; a field Anthropic does not take there
 *                              (max_tokens, stream, ...) is a 400
 *   POST /v1beta/models/{m}:countTokens  Gemini token count of a
 *                              {"generateContentRequest"} (or bare
 *                              "contents"): {"totalTokens": words of the
 *                              parts + 10 per function declaration}
 *   POST /v1beta/models/{m}:batchEmbedContents  Gemini embeddings: the same
 *                              8 components per request's text, cut to
 *                              outputDimensionality and NOT renormalised (as
 *                              Gemini below its full size)
 *   POST /api/embed            Ollama embeddings: {"embeddings": unit vectors
 *                              cut to "dimensions" and renormalised,
 *                              "prompt_eval_count": words}
 *   POST /openai/deployments/{d}/chat/completions?api-version=V  Azure
 *                              OpenAI (also .../completions, .../embeddings;
 *                              GET /openai/models?api-version=V): OpenAI's
 *                              bodies and streams, with Azure's
 *                              prompt_filter_results (a stream opens with a
 *                              chunk of "choices":[] carrying them). Checked
 *                              in this order: an unknown /openai path or no
 *                              api-version is a 404 "Resource not found";
 *                              the "api-key" header must be the --azure-key
 *                              or "Authorization: Bearer" the --azure-token
 *                              (else 401); V must be YYYY-MM-DD[-preview]
 *                              (else 400 "API version not supported"); a
 *                              deployment whose name starts with "missing" is
 *                              a 404 DeploymentNotFound. Errors
 *                              {"error":{"code","message"}}, code the status
 *                              as a string (as Azure's own)
 *   POST /oauth2/token, POST /v1/projects/.../publishers/{google,anthropic}/
 *                              models/{m}:{generateContent,...,rawPredict}:
 *                              Google's token endpoint and Vertex AI (see
 *                              vertex.c; --vertex-pubkey, --vertex-ttl)
 *   A tool call is one piece in the Gemini and Ollama shapes (they send a
 *   call whole). Anthropic input_tokens = prompt words - cached_tokens.
 *
 *   Default content: the words "c<i>" for i < chunks, joined by single spaces
 *   ("c0 c1 c2 c3 c4"). A stream sends a role chunk (chat only), then one
 *   chunk per piece ("c<i> ", or `content` cut into `chunks` roughly equal
 *   pieces on UTF-8 boundaries), then a chunk with finish_reason, then with
 *   stream_options.include_usage a chunk with "choices":[] and the usage
 *   (every other chunk then has "usage":null), then "data: [DONE]".
 *   prompt_tokens = whitespace-separated words of the message contents (text
 *   parts of array contents) or of "prompt"/"input"; completion_tokens =
 *   words of the reply content (of the tool-call arguments for tool calls).
 *
 * Scripting (per request). Sources, highest precedence first:
 *   1. the JSON object field "mock" in the request body;
 *   2. request headers "x-mock-<key>", with '_' written as '-'
 *      (e.g. "x-mock-latency-ms: 250");
 *   3. process-wide defaults set by POST /_mock/config (a JSON object with
 *      the same keys; it replaces the previous defaults, {} clears them).
 *   A value of the wrong type or out of range is ignored (the lower-precedence
 *   value, if any, stays). Numbers may also be given as numeric strings,
 *   booleans as true/false/1/0/yes/no/on/off. Delays are capped at one day,
 *   counts at 100000. Keys:
 *   latency_ms    delay before the status line and headers are sent
 *   status        HTTP status (200..599, default 200). >= 400 answers
 *                 {"error":{"message":"mock error <status>","type":T,
 *                 "param":null,"code":null}}, T = rate_limit_error (429),
 *                 invalid_request_error (other 4xx), server_error (5xx);
 *                 an error is always a JSON reply, even for "stream": true
 *   error_body    raw string sent verbatim as the body of an error reply
 *   retry_after   value of a Retry-After response header (number or string)
 *   chunks        number of content pieces (default 5, at most 100000)
 *   chunk_gap_ms  delay between two consecutive stream events (default 0)
 *   cut_after     streams: once that many content pieces are sent (and
 *                 flushed), the TCP connection is shut down and closed: no
 *                 finish chunk, no [DONE], no terminating zero-length chunk.
 *                 0 cuts right after the chat role chunk (completions: after
 *                 the headers); more than the number of pieces: no cut.
 *                 Non-stream replies ignore it
 *   stall_ms      delay after the headers are sent, before the first byte of
 *                 the body (the first stream event, or the JSON body, whose
 *                 headers then carry a Content-Length)
 *   content       the reply text
 *   tool_call     true: if the request has "tools", answer with a call of
 *                 the first tool, arguments "{\"x\":1}", finish_reason
 *                 "tool_calls" (tool_call deltas when streaming)
 *   cached_tokens how many prompt tokens to report as served from a prompt
 *                 cache (OpenAI prompt_tokens_details.cached_tokens,
 *                 Anthropic cache_read_input_tokens, Gemini
 *                 cachedContentTokenCount; Ollama has none)
 *   safety        Gemini: true answers a safety block (finishReason SAFETY,
 *                 no content)
 *   stall_rate    0..1: with it, only that share of requests (seeded PRNG)
 *                 gets stall_ms; the others none ("10% stall 5 s":
 *                 stall_rate 0.1, stall_ms 5000)
 *   fail_rate     0..1: with that probability (seeded PRNG) answer with
 *                 `status` if it is >= 400, else 500; otherwise succeed
 *                 (with a 2xx/3xx `status`, else 200)
 *   reset_rate    0..1: with that probability (seeded PRNG) the request is
 *                 answered with nothing: once latency_ms has passed, the
 *                 connection is closed with a TCP reset (SO_LINGER 0), no
 *                 status line. fail_rate, stall_rate and reset_rate are drawn
 *                 independently, in that order (three faults at rate p
 *                 each hit 1-(1-p)^3 of the requests; a reset wins)
 *
 * Introspection (never scripted, never counted)
 *   GET  /_mock/stats    {"requests","by_path","in_flight",
 *                         "streams_completed","streams_cut","client_aborts",
 *                         "stalls" (requests given a stall),
 *                         "fails" (errors drawn by fail_rate),
 *                         "resets" (connections reset by reset_rate),
 *                         "faults" (requests given at least one of the
 *                         three: the share of calls that failed),
 *                         "abort_after_ms" (arrival to client abort, ms,
 *                         of the latest 256 aborts)}
 *   GET  /_mock/last     {"method","path","query","headers","body"} of the
 *                        latest /v1 request (null before the first; query
 *                        the raw query string or null)
 *   GET  /_mock/prompts  {"<last user message text>": count} (chat only)
 *   POST /_mock/reset    zero the counters, forget last and prompts; the
 *                        defaults stay; answers {"ok":true}
 *   GET|POST /_mock/config  read or replace the scripting defaults (POST
 *                        answers the new defaults; not an object: 400)
 *
 * Lifetime of a request: each /v1 request gets a struct mreq that owns its
 * timers and a close watcher (a read event on the socket that peeks for EOF
 * while the request is waiting, because evhttp does not read during that
 * time). The connection's close callback points at the mreq while it is
 * alive. A client that goes away is counted in client_aborts; its mreq is
 * freed, and so is the evhttp request if evhttp detached it from the
 * connection. Once the final piece of the reply is handed to evhttp (or the
 * connection is cut), the close callback is cleared and the mreq freed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "vertex.h"

#define MAX_DELAY_MS 86400000.0 /* one day */
#define MAX_CHUNKS 100000
#define MAX_BODY (64 * 1024 * 1024)
#define DEFAULT_CHUNKS 5
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6))
#define TOOL_ARGS "{\"x\":1}"

enum endpoint { EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS, EP_MODELS, EP_COUNT };
enum shape { SH_OPENAI, SH_ANTHROPIC, SH_GEMINI, SH_OLLAMA };

enum phase {
    PH_LATENCY, /* waiting before the status line */
    PH_STALL,   /* non-stream: headers sent, body pending */
    PH_STREAM,  /* stream: waiting before the next event */
    PH_CUT,     /* stream: waiting for the output to drain, then cut */
};

/* The scripting values of one request, merged from all sources. */
struct script {
    double latency_ms, stall_ms, chunk_gap_ms;
    int status;             /* 0 = not set */
    long chunks, cut_after; /* -1 = not set */
    int tool_call;          /* -1 = not set */
    long cached_tokens;     /* -1 = not set */
    int safety;             /* -1 = not set */
    double fail_rate;       /* < 0 = not set */
    double stall_rate;      /* < 0 = not set */
    double reset_rate;      /* < 0 = not set */
    char *error_body, *retry_after, *content;
};

/* The state of one /v1 request while it is ours. */
struct mreq {
    struct mreq *prev, *next;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer, *watch;
    enum phase phase;
    enum endpoint ep;
    enum shape shape;
    bool safety;
    bool reset; /* reset_rate drew this one: RST instead of a reply */
    bool azure; /* the Azure shape: OpenAI's with prompt filter results */
    long long cached_tokens;
    int status;
    long long stall_ms, gap_ms;
    double t_start; /* CLOCK_MONOTONIC seconds at arrival */
    char *retry_after;
    char *body; /* whole JSON body of a non-stream reply */

    /* streams */
    bool streaming, include_usage, tool_mode, default_content;
    char *id, *model, *tool_name, *content;
    long long created, prompt_tokens, completion_tokens;
    size_t npieces, *bounds; /* piece i = content[bounds[i], bounds[i+1]) */
    long cut_after;          /* -1 = none */
    size_t next_event, total_events;
};

static struct {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct event *accept_retry;
    uint64_t rng;
    unsigned long long seq;
    json_t *defaults, *last, *prompts, *by_path;
    long long requests, streams_completed, streams_cut, client_aborts, in_flight, stalls;
    long long fails, resets, faults;
    double abort_after_ms[256]; /* ring: arrival to client abort, latest aborts */
    size_t n_abort_after;
    struct mreq *active;
    const char *azure_key, *azure_token;
} g;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A client went away while its request was ours. */
static void count_abort(double t_start)
{
    g.client_aborts++;
    g.abort_after_ms[g.n_abort_after++ % 256] = (mono_s() - t_start) * 1000.0;
}

/* ------------------------------------------------------------------ util */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "mock-upstream: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "mock-upstream: out of memory\n");
        abort();
    }
    return s;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_double(void)
{
    return (double)(splitmix64(&g.rng) >> 11) * (1.0 / 9007199254740992.0);
}

static long long count_words(const char *s)
{
    long long n = 0;
    bool in_word = false;
    for (; s && *s; s++) {
        bool sp = isspace((unsigned char)*s) != 0;
        if (!sp && !in_word) n++;
        in_word = !sp;
    }
    return n;
}

/* A JSON string for arbitrary bytes: invalid UTF-8 bytes become '?'. */
static json_t *jstr_safe(const char *s)
{
    json_t *v = json_string(s);
    if (v) return v;
    char *copy = xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(copy);
    free(copy);
    return v ? v : json_string("");
}

static char *dump(const json_t *v)
{
    char *s = json_dumps(v, DUMP_FLAGS | JSON_ENCODE_ANY);
    if (!s) {
        fprintf(stderr, "mock-upstream: out of memory\n");
        abort();
    }
    return s;
}

static const char *reason_phrase(int code)
{
    static const struct {
        int code;
        const char *text;
    } phrases[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {402, "Payment Required"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {413, "Payload Too Large"},
        {422, "Unprocessable Entity"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (phrases[i].code == code) return phrases[i].text;
    if (code < 300) return "OK";
    if (code < 400) return "Redirect";
    if (code < 500) return "Client Error";
    return "Server Error";
}

static bool status_has_body(int status)
{
    return status != 204 && status != 304;
}

static json_t *error_object(const char *message, const char *type, const char *code)
{
    return json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", message, "type", type, "param",
                     "code", code ? json_string(code) : json_null());
}

static const char *error_type_for(int status)
{
    if (status == 429) return "rate_limit_error";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
}

/* Reply at once with a JSON value (stolen). */
static void send_json_now(struct evhttp_request *req, int status, json_t *v)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) abort();
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/json");
    if (status_has_body(status)) {
        char *s = dump(v);
        evbuffer_add(buf, s, strlen(s));
        free(s);
    }
    json_decref(v);
    evhttp_send_reply(req, status, reason_phrase(status), buf);
    evbuffer_free(buf);
}

static void send_error_now(struct evhttp_request *req, int status, const char *message,
                           const char *code)
{
    send_json_now(req, status, error_object(message, error_type_for(status), code));
}

/* -------------------------------------------------------------- scripting */

static void script_init(struct script *s)
{
    memset(s, 0, sizeof(*s));
    s->latency_ms = s->stall_ms = s->chunk_gap_ms = 0;
    s->chunks = -1;
    s->cut_after = -1;
    s->tool_call = -1;
    s->fail_rate = -1;
    s->stall_rate = -1;
    s->reset_rate = -1;
    s->cached_tokens = -1;
    s->safety = -1;
}

static void script_free(struct script *s)
{
    free(s->error_body);
    free(s->retry_after);
    free(s->content);
}

static bool j_number(const json_t *v, double *out)
{
    double d;
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        while (isspace((unsigned char)*s)) s++;
        if (!*s) return false;
        errno = 0;
        d = strtod(s, &end);
        while (isspace((unsigned char)*end)) end++;
        if (*end || errno) return false;
    } else {
        return false;
    }
    if (!isfinite(d)) return false;
    *out = d;
    return true;
}

static bool j_bool(const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v) != 0;
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") ||
            !strcasecmp(s, "on")) {
            *out = true;
            return true;
        }
        if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") ||
            !strcasecmp(s, "off")) {
            *out = false;
            return true;
        }
    }
    return false;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = xstrdup(src);
}

static void delay_key(const json_t *obj, const char *key, double *dst)
{
    double d;
    if (j_number(json_object_get(obj, key), &d) && d >= 0)
        *dst = d > MAX_DELAY_MS ? MAX_DELAY_MS : d;
}

static void count_key(const json_t *obj, const char *key, long *dst)
{
    double d;
    if (j_number(json_object_get(obj, key), &d) && d >= 0)
        *dst = d > MAX_CHUNKS ? MAX_CHUNKS : (long)d;
}

/* Overlay the valid values of a JSON object onto s. */
static void script_apply(struct script *s, const json_t *obj)
{
    if (!json_is_object(obj)) return;
    double d;
    bool b;
    const json_t *v;

    delay_key(obj, "latency_ms", &s->latency_ms);
    delay_key(obj, "stall_ms", &s->stall_ms);
    delay_key(obj, "chunk_gap_ms", &s->chunk_gap_ms);
    count_key(obj, "chunks", &s->chunks);
    count_key(obj, "cut_after", &s->cut_after);
    if (j_number(json_object_get(obj, "status"), &d) && d >= 200 && d <= 599) s->status = (int)d;
    if (j_number(json_object_get(obj, "fail_rate"), &d) && d >= 0 && d <= 1) s->fail_rate = d;
    if (j_number(json_object_get(obj, "stall_rate"), &d) && d >= 0 && d <= 1) s->stall_rate = d;
    if (j_number(json_object_get(obj, "reset_rate"), &d) && d >= 0 && d <= 1) s->reset_rate = d;
    if (j_bool(json_object_get(obj, "tool_call"), &b)) s->tool_call = b;
    if (j_bool(json_object_get(obj, "safety"), &b)) s->safety = b;
    count_key(obj, "cached_tokens", &s->cached_tokens);
    v = json_object_get(obj, "error_body");
    if (json_is_string(v)) set_str(&s->error_body, json_string_value(v));
    v = json_object_get(obj, "content");
    if (json_is_string(v)) set_str(&s->content, json_string_value(v));
    v = json_object_get(obj, "retry_after");
    if (json_is_string(v) && *json_string_value(v)) {
        set_str(&s->retry_after, json_string_value(v));
    } else if (json_is_number(v) && isfinite(json_number_value(v))) {
        free(s->retry_after);
        d = json_number_value(v);
        if (d == floor(d) && fabs(d) < 1e15)
            s->retry_after = xasprintf("%lld", (long long)d);
        else
            s->retry_after = xasprintf("%g", d);
    }
}

/* The x-mock-* request headers as a JSON object of strings. */
static json_t *header_script(struct evkeyvalq *headers)
{
    json_t *obj = json_object();
    for (struct evkeyval *kv = headers->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strncasecmp(kv->key, "x-mock-", 7) != 0 || !kv->key[7]) continue;
        char *key = xstrdup(kv->key + 7);
        for (char *p = key; *p; p++) *p = *p == '-' ? '_' : (char)tolower((unsigned char)*p);
        json_t *val = json_string(kv->value);
        if (val) json_object_set_new(obj, key, val); /* invalid UTF-8 is dropped */
        free(key);
    }
    return obj;
}

/* ------------------------------------------------------------ mreq state */

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_watch(evutil_socket_t fd, short what, void *arg);
static void on_conn_close(struct evhttp_connection *evcon, void *arg);

static void arm(struct mreq *st, enum phase ph, long long ms)
{
    struct timeval tv;
    if (ms < 0) ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    st->phase = ph;
    evtimer_add(st->timer, &tv);
}

static int conn_fd(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    return bev ? (int)bufferevent_getfd(bev) : -1;
}

static struct mreq *mreq_new(struct evhttp_request *req)
{
    struct mreq *st = xmalloc(sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->req = req;
    st->evcon = evhttp_request_get_connection(req);
    st->cut_after = -1;
    st->t_start = mono_s();
    st->timer = evtimer_new(g.base, on_timer, st);
    if (!st->timer) abort();
    st->next = g.active;
    if (g.active) g.active->prev = st;
    g.active = st;
    g.in_flight++;
    return st;
}

/* Start watching the connection and take over its close callback. */
static void mreq_attach(struct mreq *st)
{
    int fd = conn_fd(st->evcon);
    if (fd >= 0) {
        st->watch = event_new(g.base, fd, EV_READ | EV_PERSIST, on_watch, st);
        if (st->watch) event_add(st->watch, NULL);
    }
    evhttp_connection_set_closecb(st->evcon, on_conn_close, st);
}

/* Free the state; the evhttp request is not touched. */
static void mreq_destroy(struct mreq *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        g.active = st->next;
    if (st->next) st->next->prev = st->prev;
    g.in_flight--;
    if (st->timer) event_free(st->timer);
    if (st->watch) event_free(st->watch);
    free(st->retry_after);
    free(st->body);
    free(st->id);
    free(st->model);
    free(st->tool_name);
    free(st->content);
    free(st->bounds);
    free(st);
}

/* The reply is about to be finished by evhttp: let go of the connection. */
static void mreq_release(struct mreq *st)
{
    evhttp_connection_set_closecb(st->evcon, NULL, NULL);
    if (st->watch) {
        event_free(st->watch);
        st->watch = NULL;
    }
}

/* The client went away while the request was ours (closecb). evhttp frees
 * the request with the connection unless it detached it first. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct mreq *st = arg;
    (void)evcon;
    count_abort(st->t_start);
    if (evhttp_request_get_connection(st->req) == NULL) evhttp_request_free(st->req);
    mreq_destroy(st);
}

/* Drop the connection ourselves; frees the (attached) evhttp request. */
static void mreq_drop_connection(struct mreq *st)
{
    struct evhttp_connection *evcon = st->evcon;
    struct evhttp_request *req = st->req;
    mreq_release(st);
    mreq_destroy(st);
    if (evhttp_request_get_connection(req) == evcon)
        evhttp_connection_free(evcon);
    else
        evhttp_request_free(req);
}

/* evhttp does not read from the socket while the user prepares a reply, so
 * the close of an idle client is noticed here by peeking. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct mreq *st = arg;
    char c;
    (void)what;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) { /* pipelined data: stop watching, evhttp will see the close */
        event_free(st->watch);
        st->watch = NULL;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    count_abort(st->t_start);
    mreq_drop_connection(st);
}

/* ------------------------------------------------------------ responses */

static void add_common_headers(struct mreq *st, const char *content_type)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(st->req);
    evhttp_add_header(oh, "Content-Type", content_type);
    if (st->retry_after) evhttp_add_header(oh, "Retry-After", st->retry_after);
}

static void finish_whole(struct mreq *st)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) abort();
    if (status_has_body(st->status)) evbuffer_add(buf, st->body, strlen(st->body));
    add_common_headers(st, "application/json");
    mreq_release(st);
    evhttp_send_reply(st->req, st->status, reason_phrase(st->status), buf);
    evbuffer_free(buf);
    mreq_destroy(st);
}

static void send_chunk_str(struct mreq *st, const char *s, size_t n)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) abort();
    evbuffer_add(buf, s, n);
    evhttp_send_reply_chunk(st->req, buf);
    evbuffer_free(buf);
}

/* Non-stream reply after stall: headers now, body later. */
static void start_stalled(struct mreq *st)
{
    add_common_headers(st, "application/json");
    if (status_has_body(st->status)) {
        char len[32];
        snprintf(len, sizeof(len), "%zu", strlen(st->body));
        evhttp_add_header(evhttp_request_get_output_headers(st->req), "Content-Length", len);
    }
    evhttp_send_reply_start(st->req, st->status, reason_phrase(st->status));
    arm(st, PH_STALL, st->stall_ms);
}

static void finish_stalled(struct mreq *st)
{
    if (status_has_body(st->status) && *st->body) send_chunk_str(st, st->body, strlen(st->body));
    mreq_release(st);
    evhttp_send_reply_end(st->req);
    mreq_destroy(st);
}

static json_t *usage_object(const struct mreq *st)
{
    json_t *u = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)st->prompt_tokens,
                          "completion_tokens", (json_int_t)st->completion_tokens, "total_tokens",
                          (json_int_t)(st->prompt_tokens + st->completion_tokens));
    if (st->cached_tokens > 0)
        json_object_set_new(u, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)st->cached_tokens));
    return u;
}

static json_t *tool_calls_full(const char *name, const char *args, bool with_index)
{
    json_t *call = json_object();
    if (with_index) json_object_set_new(call, "index", json_integer(0));
    json_object_set_new(call, "id", json_string("call_mock_1"));
    json_object_set_new(call, "type", json_string("function"));
    json_object_set_new(call, "function",
                        json_pack("{s:o, s:s}", "name", jstr_safe(name), "arguments", args));
    return json_pack("[o]", call);
}

static char *piece_text(const struct mreq *st, size_t i)
{
    if (st->default_content) return xasprintf("c%zu ", i);
    return xstrndup(st->content + st->bounds[i], st->bounds[i + 1] - st->bounds[i]);
}

static size_t role_events(const struct mreq *st)
{
    if (st->shape == SH_ANTHROPIC) return 2; /* message_start, content_block_start */
    if (st->shape != SH_OPENAI) return 0;
    return st->ep == EP_CHAT ? 1 : 0;
}

static char *shape_event(const struct mreq *st, size_t idx);
static char *shape_body(const struct mreq *st);
static char *azure_preamble(void);
static json_t *azure_filter_results(void);

static json_t *chunk_base(const struct mreq *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(st->id));
    json_object_set_new(
        o, "object", json_string(st->ep == EP_CHAT ? "chat.completion.chunk" : "text_completion"));
    json_object_set_new(o, "created", json_integer(st->created));
    json_object_set_new(o, "model", jstr_safe(st->model));
    return o;
}

/* One choice for a stream chunk; delta or text is stolen. */
static json_t *chunk_choice(const struct mreq *st, json_t *delta_or_text, const char *finish)
{
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(0));
    if (st->ep == EP_CHAT) {
        json_object_set_new(c, "delta", delta_or_text);
        json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    } else {
        json_object_set_new(c, "text", delta_or_text);
        json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
        json_object_set_new(c, "logprobs", json_null());
    }
    return c;
}

/* The SSE event with index idx (malloc'd "data: ...\n\n"). */
static char *make_event(const struct mreq *st, size_t idx)
{
    size_t base = role_events(st);
    json_t *chunk, *choice = NULL;

    if (st->shape != SH_OPENAI) return shape_event(st, idx);
    if (st->azure && idx-- == 0) return azure_preamble();
    if (idx >= base + st->npieces + 1 + (st->include_usage ? 1 : 0))
        return xstrdup("data: [DONE]\n\n");
    chunk = chunk_base(st);
    if (idx < base) { /* chat role chunk */
        json_t *delta = json_object();
        json_object_set_new(delta, "role", json_string("assistant"));
        if (st->tool_mode) {
            json_object_set_new(delta, "content", json_null());
            json_object_set_new(delta, "tool_calls", tool_calls_full(st->tool_name, "", true));
        } else {
            json_object_set_new(delta, "content", json_string(""));
        }
        choice = chunk_choice(st, delta, NULL);
    } else if (idx < base + st->npieces) {
        char *p = piece_text(st, idx - base);
        json_t *v;
        if (st->ep != EP_CHAT)
            v = jstr_safe(p);
        else if (st->tool_mode)
            v = json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", 0, "function", "arguments",
                          jstr_safe(p));
        else
            v = json_pack("{s:o}", "content", jstr_safe(p));
        free(p);
        choice = chunk_choice(st, v, NULL);
    } else if (idx == base + st->npieces) {
        const char *fin = st->tool_mode ? "tool_calls" : "stop";
        choice = chunk_choice(st, st->ep == EP_CHAT ? json_object() : json_string(""), fin);
    }
    if (choice) {
        json_object_set_new(chunk, "choices", json_pack("[o]", choice));
        if (st->include_usage) json_object_set_new(chunk, "usage", json_null());
    } else { /* usage chunk */
        json_object_set_new(chunk, "choices", json_array());
        json_object_set_new(chunk, "usage", usage_object(st));
    }
    char *js = dump(chunk);
    json_decref(chunk);
    char *ev = xasprintf("data: %s\n\n", js);
    free(js);
    return ev;
}

/* Is the stream cut before event idx? (cut_after content pieces sent) */
static bool cut_point(const struct mreq *st, size_t idx)
{
    size_t base = role_events(st) + (st->azure ? 1 : 0);
    if (st->cut_after < 0 || (size_t)st->cut_after > st->npieces) return false;
    if (idx < base) return false;
    return idx - base == (size_t)st->cut_after;
}

static void try_cut(struct mreq *st)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(st->evcon);
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        arm(st, PH_CUT, 1); /* let what was sent reach the socket first */
        return;
    }
    int fd = conn_fd(st->evcon);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
    g.streams_cut++;
    mreq_drop_connection(st);
}

static void stream_step(struct mreq *st)
{
    for (;;) {
        if (cut_point(st, st->next_event)) {
            try_cut(st);
            return;
        }
        if (st->next_event >= st->total_events) {
            mreq_release(st);
            evhttp_send_reply_end(st->req);
            g.streams_completed++;
            mreq_destroy(st);
            return;
        }
        char *ev = make_event(st, st->next_event++);
        send_chunk_str(st, ev, strlen(ev));
        free(ev);
        if (st->gap_ms > 0 && st->next_event < st->total_events && !cut_point(st, st->next_event)) {
            arm(st, PH_STREAM, st->gap_ms);
            return;
        }
    }
}

/* reset_rate: a TCP reset, nothing sent. evhttp_connection_free shuts the
 * write side down (a FIN) before it closes, so the reset is sent first:
 * connect(AF_UNSPEC) disconnects an established TCP socket with a RST on
 * Linux; SO_LINGER 0 makes the close abortive where it does not. */
static void reset_now(struct mreq *st)
{
    int fd = conn_fd(st->evcon);
    if (fd >= 0) {
        struct linger lg = {1, 0};
        struct sockaddr sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_family = AF_UNSPEC;
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        (void)connect(fd, &sa, sizeof sa);
    }
    mreq_drop_connection(st);
}

static void start_reply(struct mreq *st)
{
    if (st->reset) {
        reset_now(st);
        return;
    }
    if (!st->streaming) {
        if (st->stall_ms > 0)
            start_stalled(st);
        else
            finish_whole(st);
        return;
    }
    add_common_headers(st, st->shape == SH_OLLAMA ? "application/x-ndjson" : "text/event-stream");
    evhttp_add_header(evhttp_request_get_output_headers(st->req), "Cache-Control", "no-cache");
    evhttp_send_reply_start(st->req, st->status, reason_phrase(st->status));
    if (st->stall_ms > 0)
        arm(st, PH_STREAM, st->stall_ms);
    else
        stream_step(st);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mreq *st = arg;
    (void)fd;
    (void)what;
    if (evhttp_request_get_connection(st->req) == NULL) {
        /* detached without a close callback: should not happen */
        count_abort(st->t_start);
        evhttp_request_free(st->req);
        mreq_destroy(st);
        return;
    }
    switch (st->phase) {
    case PH_LATENCY:
        start_reply(st);
        break;
    case PH_STALL:
        finish_stalled(st);
        break;
    case PH_STREAM:
        stream_step(st);
        break;
    case PH_CUT:
        try_cut(st);
        break;
    }
}

/* ------------------------------------------------------- request parsing */

static long long words_of_content(const json_t *content)
{
    long long n = 0;
    if (json_is_string(content)) return count_words(json_string_value(content));
    if (json_is_array(content)) {
        for (size_t i = 0; i < json_array_size(content); i++) {
            const json_t *part = json_array_get(content, i);
            const json_t *type = json_object_get(part, "type");
            const json_t *text = json_object_get(part, "text");
            if (json_is_string(type) && !strcmp(json_string_value(type), "text") &&
                json_is_string(text))
                n += count_words(json_string_value(text));
        }
    }
    return n;
}

/* The text of a message content (text parts joined by newlines), or NULL. */
static char *content_text(const json_t *content)
{
    if (json_is_string(content)) return xstrdup(json_string_value(content));
    if (!json_is_array(content)) return NULL;
    char *out = NULL;
    size_t len = 0;
    for (size_t i = 0; i < json_array_size(content); i++) {
        const json_t *part = json_array_get(content, i);
        const json_t *type = json_object_get(part, "type");
        const json_t *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") ||
            !json_is_string(text))
            continue;
        const char *t = json_string_value(text);
        size_t tl = strlen(t);
        char *grown = realloc(out, len + tl + 2);
        if (!grown) abort();
        out = grown;
        if (len) out[len++] = '\n';
        memcpy(out + len, t, tl + 1);
        len += tl;
    }
    return out;
}

static long long words_of_prompt(const json_t *prompt)
{
    long long n = 0;
    if (json_is_string(prompt)) return count_words(json_string_value(prompt));
    if (!json_is_array(prompt)) return 0;
    for (size_t i = 0; i < json_array_size(prompt); i++) {
        const json_t *v = json_array_get(prompt, i);
        if (json_is_string(v))
            n += count_words(json_string_value(v));
        else if (json_is_integer(v))
            n++; /* a token id */
        else if (json_is_array(v))
            n += (long long)json_array_size(v);
    }
    return n;
}

static void record_prompt(const json_t *body)
{
    const json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs)) return;
    for (size_t i = json_array_size(msgs); i-- > 0;) {
        const json_t *m = json_array_get(msgs, i);
        const json_t *role = json_object_get(m, "role");
        if (!json_is_string(role) || strcmp(json_string_value(role), "user")) continue;
        char *text = content_text(json_object_get(m, "content"));
        if (!text) return;
        json_t *old = json_object_get(g.prompts, text);
        json_int_t n = json_is_integer(old) ? json_integer_value(old) : 0;
        json_object_set_new(g.prompts, text, json_integer(n + 1));
        free(text);
        return;
    }
}

static void record_last(struct evhttp_request *req, const char *path, const json_t *body)
{
    json_t *last = json_object();
    json_t *headers = json_object();
    const char *method;
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        method = "GET";
        break;
    case EVHTTP_REQ_POST:
        method = "POST";
        break;
    case EVHTTP_REQ_HEAD:
        method = "HEAD";
        break;
    case EVHTTP_REQ_PUT:
        method = "PUT";
        break;
    case EVHTTP_REQ_DELETE:
        method = "DELETE";
        break;
    default:
        method = "OTHER";
        break;
    }
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = ih->tqh_first; kv; kv = kv->next.tqe_next) {
        char *key = xstrdup(kv->key);
        for (char *p = key; *p; p++) *p = (char)tolower((unsigned char)*p);
        json_t *keyj = jstr_safe(key); /* a valid UTF-8 form of the name */
        const char *k = json_string_value(keyj);
        json_t *old = json_object_get(headers, k);
        if (json_is_string(old)) {
            char *joined = xasprintf("%s, %s", json_string_value(old), kv->value);
            json_object_set_new(headers, k, jstr_safe(joined));
            free(joined);
        } else {
            json_object_set_new(headers, k, jstr_safe(kv->value));
        }
        json_decref(keyj);
        free(key);
    }
    json_object_set_new(last, "method", json_string(method));
    json_object_set_new(last, "path", jstr_safe(path));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    json_object_set_new(last, "query", query ? jstr_safe(query) : json_null());
    json_object_set_new(last, "headers", headers);
    json_object_set_new(last, "body", body ? json_deep_copy(body) : json_null());
    json_decref(g.last);
    g.last = last;
}

/* Split st->content into about n pieces on UTF-8 character boundaries. */
static void split_content(struct mreq *st, long n)
{
    size_t len = strlen(st->content);
    if (len == 0) {
        st->npieces = 0;
        st->bounds = xmalloc(sizeof(size_t));
        st->bounds[0] = 0;
        return;
    }
    if (n < 1) n = 1;
    if ((size_t)n > len) n = (long)len;
    st->bounds = xmalloc(sizeof(size_t) * ((size_t)n + 1));
    size_t k = 0;
    st->bounds[k++] = 0;
    for (long i = 1; i < n; i++) {
        size_t b = (size_t)((double)len * (double)i / (double)n);
        while (b < len && ((unsigned char)st->content[b] & 0xC0) == 0x80) b++;
        if (b > st->bounds[k - 1] && b < len) st->bounds[k++] = b;
    }
    st->bounds[k] = len;
    st->npieces = k;
}

static char *default_content(long chunks)
{
    size_t cap = 16 + (size_t)chunks * 8, len = 0;
    char *s = xmalloc(cap);
    s[0] = '\0';
    for (long i = 0; i < chunks; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? " c%ld" : "c%ld", i);
    return s;
}

/* encoding_format "base64": the vector as little-endian float32, base64-encoded,
 * as OpenAI sends it (and the official SDK asks for by default). */
static json_t *embedding_base64(const double *vec, int n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char raw[64];
    for (int j = 0; j < n; j++) {
        float f = (float)vec[j];
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int b = 0; b < 4; b++) raw[4 * j + b] = (unsigned char)(u >> (8 * b));
    }
    size_t len = (size_t)n * 4;
    char out[96];
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (i + 1 < len ? (uint32_t)raw[i + 1] << 8 : 0) |
                     (i + 2 < len ? raw[i + 2] : 0);
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return json_string(out);
}

#define EMBED_DIMS 8

/* The mock's embedding of text: EMBED_DIMS components from an FNV-1a hash, unit length. */
static void embed_vec(const char *text, double vec[EMBED_DIMS])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = text; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    double norm = 0;
    for (int j = 0; j < EMBED_DIMS; j++) {
        vec[j] = (double)(splitmix64(&h) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
        norm += vec[j] * vec[j];
    }
    norm = sqrt(norm);
    for (int j = 0; j < EMBED_DIMS; j++) vec[j] = norm > 0 ? vec[j] / norm : 0;
}

/* The first dims components (0 or more than EMBED_DIMS: all), renormalised or not. */
static json_t *embed_values(const double vec[EMBED_DIMS], long dims, bool renorm)
{
    int d = dims > 0 && dims < EMBED_DIMS ? (int)dims : EMBED_DIMS;
    double norm = 0;
    for (int j = 0; j < d; j++) norm += vec[j] * vec[j];
    norm = renorm && norm > 0 ? sqrt(norm) : 1;
    json_t *a = json_array();
    for (int j = 0; j < d; j++) json_array_append_new(a, json_real(vec[j] / norm));
    return a;
}

/* Gemini batchEmbedContents: {"embeddings":[{"values"}]} per request, truncated
 * to outputDimensionality without renormalising (as Gemini does below its full
 * size); NULL with *why for a body it would refuse. */
static char *gemini_embed_body(const json_t *body, const char **why)
{
    const json_t *reqs = json_object_get(body, "requests");
    if (!json_is_array(reqs) || !json_array_size(reqs)) {
        *why = "requests is required";
        return NULL;
    }
    json_t *embs = json_array();
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        const json_t *r = json_array_get(reqs, i);
        const json_t *parts = json_object_get(json_object_get(r, "content"), "parts");
        const json_t *text = json_object_get(json_array_get(parts, 0), "text");
        const json_t *od = json_object_get(r, "outputDimensionality");
        if (!json_is_string(text) || json_array_size(parts) != 1 ||
            (od && (!json_is_integer(od) || json_integer_value(od) < 1))) {
            json_decref(embs);
            *why = "each request needs content.parts[0].text (and a positive outputDimensionality)";
            return NULL;
        }
        double vec[EMBED_DIMS];
        embed_vec(json_string_value(text), vec);
        json_array_append_new(
            embs, json_pack("{s:o}", "values",
                            embed_values(vec, od ? (long)json_integer_value(od) : 0, false)));
    }
    json_t *o = json_pack("{s:o}", "embeddings", embs);
    char *s = dump(o);
    json_decref(o);
    return s;
}

/* Ollama /api/embed: {"model","embeddings":[[...]],"prompt_eval_count"}, unit
 * vectors cut to "dimensions" and renormalised. */
static char *ollama_embed_body(const json_t *body, const char **why)
{
    const json_t *in = json_object_get(body, "input"), *dims = json_object_get(body, "dimensions");
    const json_t *model = json_object_get(body, "model");
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    if ((!json_is_string(in) && !json_is_array(in)) || (json_is_array(in) && !n) ||
        (dims && !json_is_integer(dims))) {
        *why = "input must be a string or a list of strings";
        return NULL;
    }
    json_t *embs = json_array();
    long long tokens = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(in) ? json_array_get(in, i) : in;
        if (!json_is_string(t)) {
            json_decref(embs);
            *why = "input must be a string or a list of strings";
            return NULL;
        }
        double vec[EMBED_DIMS];
        embed_vec(json_string_value(t), vec);
        tokens += count_words(json_string_value(t));
        json_array_append_new(embs,
                              embed_values(vec, dims ? (long)json_integer_value(dims) : 0, true));
    }
    json_t *o = json_pack("{s:o, s:o, s:I}", "model", jstr_safe(json_string_value(model)),
                          "embeddings", embs, "prompt_eval_count", (json_int_t)tokens);
    char *s = dump(o);
    json_decref(o);
    return s;
}

static char *embedding_body(const json_t *input, const char *model, bool base64, long dims)
{
    json_t *data = json_array();
    long long tokens = 0;
    size_t n = json_is_array(input) ? json_array_size(input) : 1;
    /* a flat array of token ids is one input */
    bool token_list = json_is_array(input) && n > 0 && json_is_integer(json_array_get(input, 0));
    if (token_list) n = 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_is_array(input) && !token_list ? json_array_get(input, i) : input;
        char *text;
        if (json_is_string(item)) {
            text = xstrdup(json_string_value(item));
            tokens += count_words(text);
        } else {
            text = dump(item);
            tokens += json_is_array(item) ? (long long)json_array_size(item) : 1;
        }
        double vec[EMBED_DIMS];
        embed_vec(text, vec);
        free(text);
        json_t *vals = embed_values(vec, dims, true); /* OpenAI: dimensions cut, unit length */
        int d = (int)json_array_size(vals);
        double cut[EMBED_DIMS];
        for (int j = 0; j < d; j++) cut[j] = json_real_value(json_array_get(vals, j));
        json_t *emb = base64 ? embedding_base64(cut, d) : json_incref(vals);
        json_decref(vals);
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    json_t *o = json_pack("{s:s, s:o, s:o, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                          jstr_safe(model), "usage", "prompt_tokens", (json_int_t)tokens,
                          "total_tokens", (json_int_t)tokens);
    char *s = dump(o);
    json_decref(o);
    return s;
}

static char *models_body(void)
{
    json_t *o = json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                          "mock-model", "object", "model", "created", 0, "owned_by", "mock");
    char *s = dump(o);
    json_decref(o);
    return s;
}

static char *completion_body(const struct mreq *st)
{
    if (st->shape != SH_OPENAI) return shape_body(st);
    json_t *o = json_object();
    json_t *choice = json_object();
    json_object_set_new(o, "id", json_string(st->id));
    json_object_set_new(o, "object",
                        json_string(st->ep == EP_CHAT ? "chat.completion" : "text_completion"));
    json_object_set_new(o, "created", json_integer(st->created));
    json_object_set_new(o, "model", jstr_safe(st->model));
    json_object_set_new(choice, "index", json_integer(0));
    if (st->ep == EP_CHAT) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        if (st->tool_mode) {
            json_object_set_new(msg, "content", json_null());
            json_object_set_new(msg, "tool_calls",
                                tool_calls_full(st->tool_name, TOOL_ARGS, false));
        } else {
            json_object_set_new(msg, "content", jstr_safe(st->content));
        }
        json_object_set_new(choice, "message", msg);
        json_object_set_new(choice, "finish_reason",
                            json_string(st->tool_mode ? "tool_calls" : "stop"));
    } else {
        json_object_set_new(choice, "text", jstr_safe(st->content));
        json_object_set_new(choice, "finish_reason", json_string("stop"));
        json_object_set_new(choice, "logprobs", json_null());
    }
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    json_object_set_new(o, "usage", usage_object(st));
    if (st->azure)
        json_object_set_new(o, "prompt_filter_results",
                            json_pack("[{s:i, s:o}]", "prompt_index", 0, "content_filter_results",
                                      azure_filter_results()));
    char *s = dump(o);
    json_decref(o);
    return s;
}

/* ------------------------------------------------ other provider shapes */

static const char *anthropic_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static const char *gemini_status(int status)
{
    switch (status) {
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT";
    }
}

/* The error reply body of a shape (malloc'd). */
static char *shape_error_body(enum shape shape, int status, const char *msg)
{
    json_t *e;
    if (shape == SH_ANTHROPIC)
        e = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                      anthropic_error_type(status), "message", msg);
    else if (shape == SH_GEMINI)
        e = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", msg, "status",
                      gemini_status(status));
    else if (shape == SH_OLLAMA)
        e = json_pack("{s:s}", "error", msg);
    else
        e = error_object(msg, error_type_for(status), NULL);
    char *s = dump(e);
    json_decref(e);
    return s;
}

static long long words_of_parts(const json_t *parts)
{
    long long n = 0;
    for (size_t i = 0; i < json_array_size(parts); i++) {
        const json_t *t = json_object_get(json_array_get(parts, i), "text");
        if (json_is_string(t)) n += count_words(json_string_value(t));
    }
    return n;
}

static void shape_prepare_gemini(struct mreq *st, const json_t *body, const struct script *sc)
{
    const json_t *contents = json_object_get(body, "contents");
    for (size_t i = 0; i < json_array_size(contents); i++)
        st->prompt_tokens += words_of_parts(json_object_get(json_array_get(contents, i), "parts"));
    st->prompt_tokens +=
        words_of_parts(json_object_get(json_object_get(body, "systemInstruction"), "parts"));
    const json_t *decl = json_array_get(
        json_object_get(json_array_get(json_object_get(body, "tools"), 0), "functionDeclarations"),
        0);
    const json_t *name = json_object_get(decl, "name");
    if (sc->tool_call == 1 && json_is_string(name)) {
        st->tool_mode = true;
        st->tool_name = xstrdup(json_string_value(name));
    }
}

static json_t *tool_args_object(void)
{
    return json_loads(TOOL_ARGS, 0, NULL);
}

static json_t *anthropic_usage(const struct mreq *st, long long output)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens",
                     (json_int_t)(st->prompt_tokens - st->cached_tokens), "output_tokens",
                     (json_int_t)output, "cache_read_input_tokens", (json_int_t)st->cached_tokens,
                     "cache_creation_input_tokens", (json_int_t)0);
}

static json_t *gemini_usage(const struct mreq *st, bool final)
{
    long long c = final ? st->completion_tokens : 0;
    json_t *u = json_pack("{s:I, s:I, s:I}", "promptTokenCount", (json_int_t)st->prompt_tokens,
                          "candidatesTokenCount", (json_int_t)c, "totalTokenCount",
                          (json_int_t)(st->prompt_tokens + c));
    if (st->cached_tokens > 0)
        json_object_set_new(u, "cachedContentTokenCount", json_integer(st->cached_tokens));
    return u;
}

/* A Gemini GenerateContentResponse; parts stolen (NULL = no content). */
static json_t *gemini_response(const struct mreq *st, json_t *parts, const char *finish, bool final)
{
    json_t *cand = json_pack("{s:i}", "index", 0);
    if (parts)
        json_object_set_new(cand, "content",
                            json_pack("{s:s, s:o}", "role", "model", "parts", parts));
    if (finish) json_object_set_new(cand, "finishReason", json_string(finish));
    if (finish && !strcmp(finish, "SAFETY"))
        json_object_set_new(cand, "safetyRatings",
                            json_pack("[{s:s, s:s, s:b}]", "category",
                                      "HARM_CATEGORY_DANGEROUS_CONTENT", "probability", "HIGH",
                                      "blocked", 1));
    return json_pack("{s:[o], s:o, s:o, s:s}", "candidates", cand, "usageMetadata",
                     gemini_usage(st, final), "modelVersion", jstr_safe(st->model), "responseId",
                     st->id);
}

static json_t *gemini_call_part(const struct mreq *st)
{
    return json_pack("{s:{s:o, s:o}}", "functionCall", "name", jstr_safe(st->tool_name), "args",
                     tool_args_object());
}

static json_t *ollama_message(const struct mreq *st, const char *text, bool call)
{
    json_t *m = json_pack("{s:s, s:o}", "role", "assistant", "content", jstr_safe(text));
    if (call)
        json_object_set_new(m, "tool_calls",
                            json_pack("[{s:{s:o, s:o}}]", "function", "name",
                                      jstr_safe(st->tool_name), "arguments", tool_args_object()));
    return m;
}

static json_t *ollama_line(const struct mreq *st, json_t *msg, bool done)
{
    json_t *o = json_pack("{s:o, s:s, s:o, s:b}", "model", jstr_safe(st->model), "created_at",
                          "2024-01-01T00:00:00Z", "message", msg, "done", done);
    if (done) {
        json_object_set_new(o, "done_reason", json_string("stop"));
        json_object_set_new(o, "total_duration", json_integer(1000000));
        json_object_set_new(o, "prompt_eval_count", json_integer(st->prompt_tokens));
        json_object_set_new(o, "eval_count", json_integer(st->completion_tokens));
    }
    return o;
}

static char *shape_body(const struct mreq *st)
{
    json_t *o;
    if (st->shape == SH_ANTHROPIC) {
        json_t *block =
            st->tool_mode
                ? json_pack("{s:s, s:s, s:o, s:o}", "type", "tool_use", "id", "toolu_mock_1",
                            "name", jstr_safe(st->tool_name), "input", tool_args_object())
                : json_pack("{s:s, s:o}", "type", "text", "text", jstr_safe(st->content));
        o = json_pack("{s:s, s:s, s:s, s:o, s:[o], s:s, s:n, s:o}", "id", st->id, "type", "message",
                      "role", "assistant", "model", jstr_safe(st->model), "content", block,
                      "stop_reason", st->tool_mode ? "tool_use" : "end_turn", "stop_sequence",
                      "usage", anthropic_usage(st, st->completion_tokens));
    } else if (st->shape == SH_GEMINI) {
        json_t *parts = st->safety      ? NULL
                        : st->tool_mode ? json_pack("[o]", gemini_call_part(st))
                                        : json_pack("[{s:o}]", "text", jstr_safe(st->content));
        o = gemini_response(st, parts, st->safety ? "SAFETY" : "STOP", true);
    } else {
        o = ollama_line(st, ollama_message(st, st->tool_mode ? "" : st->content, st->tool_mode),
                        true);
    }
    char *s = dump(o);
    json_decref(o);
    return s;
}

static size_t shape_total_events(const struct mreq *st)
{
    return st->npieces + (st->shape == SH_ANTHROPIC ? 5 : 1);
}

static char *shape_anthropic_event(const struct mreq *st, size_t idx)
{
    json_t *o;
    const char *name;
    size_t np = st->npieces;
    if (idx == 0) {
        name = "message_start";
        o = json_pack("{s:s, s:{s:s, s:s, s:s, s:o, s:[], s:n, s:n, s:o}}", "type", name, "message",
                      "id", st->id, "type", "message", "role", "assistant", "model",
                      jstr_safe(st->model), "content", "stop_reason", "stop_sequence", "usage",
                      anthropic_usage(st, 1));
    } else if (idx == 1) {
        name = "content_block_start";
        json_t *cb = st->tool_mode
                         ? json_pack("{s:s, s:s, s:o, s:{}}", "type", "tool_use", "id",
                                     "toolu_mock_1", "name", jstr_safe(st->tool_name), "input")
                         : json_pack("{s:s, s:s}", "type", "text", "text", "");
        o = json_pack("{s:s, s:i, s:o}", "type", name, "index", 0, "content_block", cb);
    } else if (idx < 2 + np) {
        name = "content_block_delta";
        char *p = piece_text(st, idx - 2);
        json_t *d =
            st->tool_mode
                ? json_pack("{s:s, s:o}", "type", "input_json_delta", "partial_json", jstr_safe(p))
                : json_pack("{s:s, s:o}", "type", "text_delta", "text", jstr_safe(p));
        free(p);
        o = json_pack("{s:s, s:i, s:o}", "type", name, "index", 0, "delta", d);
    } else if (idx == 2 + np) {
        name = "content_block_stop";
        o = json_pack("{s:s, s:i}", "type", name, "index", 0);
    } else if (idx == 3 + np) {
        name = "message_delta";
        o = json_pack("{s:s, s:{s:s, s:n}, s:{s:I}}", "type", name, "delta", "stop_reason",
                      st->tool_mode ? "tool_use" : "end_turn", "stop_sequence", "usage",
                      "output_tokens", (json_int_t)st->completion_tokens);
    } else {
        name = "message_stop";
        o = json_pack("{s:s}", "type", name);
    }
    char *js = dump(o);
    json_decref(o);
    char *ev = xasprintf("event: %s\ndata: %s\n\n", name, js);
    free(js);
    return ev;
}

static char *shape_event(const struct mreq *st, size_t idx)
{
    if (st->shape == SH_ANTHROPIC) return shape_anthropic_event(st, idx);
    bool last = idx >= st->npieces;
    json_t *o;
    if (st->shape == SH_GEMINI) {
        json_t *parts;
        if (last) {
            parts = st->safety ? NULL : json_pack("[{s:s}]", "text", "");
        } else if (st->tool_mode) {
            parts = json_pack("[o]", gemini_call_part(st));
        } else {
            char *p = piece_text(st, idx);
            parts = json_pack("[{s:o}]", "text", jstr_safe(p));
            free(p);
        }
        o = gemini_response(st, parts, last ? (st->safety ? "SAFETY" : "STOP") : NULL, last);
    } else if (last) {
        o = ollama_line(st, ollama_message(st, "", false), true);
    } else if (st->tool_mode) {
        o = ollama_line(st, ollama_message(st, "", true), false);
    } else {
        char *p = piece_text(st, idx);
        o = ollama_line(st, ollama_message(st, p, false), false);
        free(p);
    }
    char *js = dump(o);
    json_decref(o);
    char *ev = st->shape == SH_GEMINI ? xasprintf("data: %s\r\n\r\n", js) : xasprintf("%s\n", js);
    free(js);
    return ev;
}

/* Fill st for a chat or completions request. */
#define COUNT_PER_TOOL 10 /* tokens a tool definition counts for */

/* The body of a token count, or NULL with *why set when the request is not
 * one the real API takes (400). Anthropic: fields other than these are
 * refused, as Anthropic does ("Extra inputs are not permitted"). */
static char *count_body(enum shape shape, const json_t *body, const char **why)
{
    long long n = 0;
    if (shape == SH_ANTHROPIC) {
        static const char *const ok[] = {"model", "messages",    "system",
                                         "tools", "tool_choice", "thinking"};
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)body, key, v)
        {
            bool known = false;
            for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) known |= !strcmp(key, ok[k]);
            if (!known) {
                *why = "Extra inputs are not permitted";
                return NULL;
            }
        }
        const json_t *msgs = json_object_get(body, "messages");
        if (!json_is_string(json_object_get(body, "model")) || !json_is_array(msgs)) {
            *why = "model and messages are required";
            return NULL;
        }
        for (size_t i = 0; i < json_array_size(msgs); i++)
            n += words_of_content(json_object_get(json_array_get(msgs, i), "content"));
        n += words_of_content(json_object_get(body, "system"));
        n += COUNT_PER_TOOL * (long long)json_array_size(json_object_get(body, "tools"));
        json_t *o = json_pack("{s:I}", "input_tokens", (json_int_t)n);
        char *s = dump(o);
        json_decref(o);
        return s;
    }
    const json_t *gr = json_object_get(body, "generateContentRequest");
    const json_t *contents = json_object_get(gr ? gr : body, "contents");
    if (!json_is_array(contents)) {
        *why = "contents is required";
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(contents); i++)
        n += words_of_parts(json_object_get(json_array_get(contents, i), "parts"));
    n += words_of_parts(json_object_get(json_object_get(gr, "systemInstruction"), "parts"));
    const json_t *tools = json_object_get(gr, "tools");
    for (size_t i = 0; i < json_array_size(tools); i++)
        n += COUNT_PER_TOOL * (long long)json_array_size(json_object_get(json_array_get(tools, i),
                                                                         "functionDeclarations"));
    json_t *o = json_pack("{s:I}", "totalTokens", (json_int_t)n);
    char *s = dump(o);
    json_decref(o);
    return s;
}

static void prepare_generation(struct mreq *st, const json_t *body, const struct script *sc)
{
    const json_t *model = json_object_get(body, "model");
    const json_t *so = json_object_get(body, "stream_options");
    long chunks = sc->chunks >= 0 ? sc->chunks : DEFAULT_CHUNKS;

    st->model = xstrdup(json_is_string(model) ? json_string_value(model) : "mock-model");
    st->created = (long long)time(NULL);
    st->id = xasprintf("%s-mock-%llu", st->ep == EP_CHAT ? "chatcmpl" : "cmpl", ++g.seq);
    st->include_usage = json_is_object(so) && json_is_true(json_object_get(so, "include_usage"));

    if (st->shape == SH_GEMINI) {
        shape_prepare_gemini(st, body, sc);
    } else if (st->ep == EP_CHAT) {
        const json_t *msgs = json_object_get(body, "messages");
        const json_t *tools = json_object_get(body, "tools");
        for (size_t i = 0; i < json_array_size(msgs); i++)
            st->prompt_tokens +=
                words_of_content(json_object_get(json_array_get(msgs, i), "content"));
        if (st->shape == SH_ANTHROPIC)
            st->prompt_tokens += words_of_content(json_object_get(body, "system"));
        if (sc->tool_call == 1 && json_is_array(tools) && json_array_size(tools) > 0) {
            const json_t *fn = json_object_get(json_array_get(tools, 0), "function");
            if (st->shape == SH_ANTHROPIC) fn = json_array_get(tools, 0);
            const json_t *name = json_object_get(fn, "name");
            st->tool_mode = true;
            st->tool_name = xstrdup(json_is_string(name) ? json_string_value(name) : "tool");
        }
    } else {
        st->prompt_tokens = words_of_prompt(json_object_get(body, "prompt"));
    }

    if (st->tool_mode) {
        st->content = xstrdup(TOOL_ARGS);
        split_content(st, chunks);
    } else if (sc->content) {
        st->content = xstrdup(sc->content);
        split_content(st, chunks);
    } else {
        st->content = default_content(chunks);
        st->default_content = true;
        st->npieces = (size_t)chunks;
    }
    if (st->safety) {
        free(st->content);
        st->content = xstrdup("");
        st->npieces = 0;
        st->default_content = false;
    } else if (st->tool_mode && (st->shape == SH_GEMINI || st->shape == SH_OLLAMA)) {
        st->npieces = 1; /* the call is sent whole */
    }
    st->completion_tokens = count_words(st->content);
    if (sc->cached_tokens >= 0)
        st->cached_tokens =
            sc->cached_tokens > st->prompt_tokens ? st->prompt_tokens : sc->cached_tokens;
}

/* ------------------------------------------------------------- handlers */

/* ------------------------------------------------------- the Azure shape */

static json_t *azure_filter_results(void)
{
    json_t *o = json_object();
    static const char *const cats[] = {"hate", "self_harm", "sexual", "violence"};
    for (size_t i = 0; i < 4; i++)
        json_object_set_new(o, cats[i], json_pack("{s:b, s:s}", "filtered", 0, "severity", "safe"));
    return o;
}

/* Azure's first stream event: prompt filter results, no choices, empty id. */
static char *azure_preamble(void)
{
    json_t *o = json_pack("{s:[], s:i, s:s, s:s, s:s, s:[{s:i, s:o}]}", "choices", "created", 0,
                          "id", "", "model", "", "object", "", "prompt_filter_results",
                          "prompt_index", 0, "content_filter_results", azure_filter_results());
    char *js = dump(o);
    json_decref(o);
    char *ev = xasprintf("data: %s\n\n", js);
    free(js);
    return ev;
}

static char *azure_error_body(int status, const char *code, const char *msg)
{
    char num[16];
    snprintf(num, sizeof num, "%d", status);
    json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", code ? code : num, "message", msg);
    char *s = dump(e);
    json_decref(e);
    return s;
}

static void azure_fail(struct evhttp_request *req, int status, const char *code, const char *msg)
{
    char *s = azure_error_body(status, code, msg);
    json_t *v = json_loads(s, 0, NULL);
    free(s);
    send_json_now(req, status, v);
}

static bool azure_version_ok(const char *v)
{
    static const char pat[] = "dddd-dd-dd";
    for (size_t i = 0; i < sizeof pat - 1; i++)
        if (pat[i] == 'd' ? !isdigit((unsigned char)v[i]) : v[i] != pat[i]) return false;
    return v[10] == '\0' || !strcmp(v + 10, "-preview");
}

/* The endpoint of an Azure path, after its checks; false when an error was sent. */
static bool azure_route(struct evhttp_request *req, const char *path, enum endpoint *ep,
                        enum evhttp_cmd_type *want)
{
    static const char dep[] = "/openai/deployments/";
    const char *name = NULL, *op = NULL;
    size_t name_len = 0;
    if (!strcmp(path, "/openai/models")) {
        *ep = EP_MODELS;
        *want = EVHTTP_REQ_GET;
    } else if (!strncmp(path, dep, sizeof dep - 1) && (op = strchr(path + sizeof dep - 1, '/'))) {
        name = path + sizeof dep - 1;
        name_len = (size_t)(op - name);
        *want = EVHTTP_REQ_POST;
        if (!strcmp(op, "/chat/completions"))
            *ep = EP_CHAT;
        else if (!strcmp(op, "/completions"))
            *ep = EP_COMPLETIONS;
        else if (!strcmp(op, "/embeddings"))
            *ep = EP_EMBEDDINGS;
        else
            name = NULL;
    }
    if ((!name && *ep != EP_MODELS) || (name && name_len == 0)) {
        azure_fail(req, 404, NULL, "Resource not found");
        return false;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params = {0}; /* evhttp_parse_query_str initialises it again */
    if (q) evhttp_parse_query_str(q, &params);
    const char *version = evhttp_find_header(&params, "api-version");
    bool ok = true;
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    const char *key = evhttp_find_header(ih, "api-key");
    const char *authz = evhttp_find_header(ih, "authorization");
    if (!version) {
        azure_fail(req, 404, NULL, "Resource not found");
        ok = false;
    } else if (key ? strcmp(key, g.azure_key) != 0 : !authz) {
        azure_fail(req, 401, NULL,
                   key ? "Access denied due to invalid subscription key or wrong API endpoint. "
                         "Make sure to provide a valid key for an active subscription and use a "
                         "correct regional API endpoint for your resource."
                       : "Access denied due to missing subscription key. Make sure to include "
                         "subscription key when making requests to an API.");
        ok = false;
    } else if (!key && (strncmp(authz, "Bearer ", 7) != 0 || strcmp(authz + 7, g.azure_token))) {
        azure_fail(req, 401, NULL,
                   "Unauthorized. Access token is missing, invalid, audience is incorrect "
                   "(https://cognitiveservices.azure.com), or have expired.");
        ok = false;
    } else if (!azure_version_ok(version)) {
        azure_fail(req, 400, "BadRequest", "API version not supported");
        ok = false;
    } else if (name && name_len >= 7 && !strncmp(name, "missing", 7)) {
        azure_fail(req, 404, "DeploymentNotFound",
                   "The API deployment for this resource does not exist. If you created the "
                   "deployment within the last 5 minutes, please wait a moment and try again.");
        ok = false;
    }
    evhttp_clear_headers(&params);
    return ok;
}

static void handle_mock(struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!strcmp(path, "/_mock/stats")) {
        json_t *o = json_object();
        json_object_set_new(o, "requests", json_integer(g.requests));
        json_object_set_new(o, "by_path", json_deep_copy(g.by_path));
        json_object_set_new(o, "in_flight", json_integer(g.in_flight));
        json_object_set_new(o, "streams_completed", json_integer(g.streams_completed));
        json_object_set_new(o, "streams_cut", json_integer(g.streams_cut));
        json_object_set_new(o, "client_aborts", json_integer(g.client_aborts));
        json_object_set_new(o, "stalls", json_integer(g.stalls));
        json_object_set_new(o, "fails", json_integer(g.fails));
        json_object_set_new(o, "resets", json_integer(g.resets));
        json_object_set_new(o, "faults", json_integer(g.faults));
        json_t *aa = json_array();
        size_t na = g.n_abort_after < 256 ? g.n_abort_after : 256;
        for (size_t i = 0; i < na; i++) json_array_append_new(aa, json_real(g.abort_after_ms[i]));
        json_object_set_new(o, "abort_after_ms", aa);
        send_json_now(req, 200, o);
    } else if (!strcmp(path, "/_mock/last")) {
        send_json_now(req, 200, g.last ? json_incref(g.last) : json_null());
    } else if (!strcmp(path, "/_mock/prompts")) {
        send_json_now(req, 200, json_deep_copy(g.prompts));
    } else if (!strcmp(path, "/_mock/reset")) {
        if (cmd != EVHTTP_REQ_POST) {
            send_error_now(req, 405, "use POST", "method_not_allowed");
            return;
        }
        g.requests = g.streams_completed = g.streams_cut = g.client_aborts = g.stalls = 0;
        g.fails = g.resets = g.faults = 0;
        g.n_abort_after = 0;
        json_object_clear(g.by_path);
        json_object_clear(g.prompts);
        json_decref(g.last);
        g.last = NULL;
        send_json_now(req, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(path, "/_mock/config")) {
        if (cmd == EVHTTP_REQ_GET) {
            send_json_now(req, 200, json_incref(g.defaults));
            return;
        }
        if (cmd != EVHTTP_REQ_POST) {
            send_error_now(req, 405, "use GET or POST", "method_not_allowed");
            return;
        }
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        json_error_t err;
        json_t *v =
            len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err) : json_object();
        if (!json_is_object(v)) {
            json_decref(v);
            send_error_now(req, 400, "config must be a JSON object", "invalid_json");
            return;
        }
        json_decref(g.defaults);
        g.defaults = v;
        send_json_now(req, 200, json_incref(v));
    } else {
        send_error_now(req, 404, "unknown mock endpoint", "not_found");
    }
}

static void handle_v1(struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_t *body = NULL;
    json_error_t err;
    bool bad_json = false;
    enum endpoint ep;
    enum shape shape = SH_OPENAI;
    bool gemini_stream = false;
    enum evhttp_cmd_type want;

    g.requests++;
    {
        json_t *old = json_object_get(g.by_path, path);
        json_int_t n = json_is_integer(old) ? json_integer_value(old) : 0;
        json_t *key = jstr_safe(path);
        json_object_set_new(g.by_path, json_string_value(key), json_integer(n + 1));
        json_decref(key);
    }
    if (len > 0) {
        body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err);
        bad_json = body == NULL;
    }
    record_last(req, path, body);
    if (!strcmp(path, "/oauth2/token")) {
        json_decref(body);
        mvx_token(req);
        return;
    }

    bool azure = !strncmp(path, "/openai/", 8);
    if (azure) {
        if (!azure_route(req, path, &ep, &want)) {
            json_decref(body);
            return;
        }
    } else if (!strncmp(path, "/v1/projects/", 13)) {
        bool anth = false;
        if (!mvx_route(req, path, body, &anth, &gemini_stream)) {
            json_decref(body);
            return;
        }
        ep = EP_CHAT;
        shape = anth ? SH_ANTHROPIC : SH_GEMINI;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/v1/chat/completions")) {
        ep = EP_CHAT;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/v1/completions")) {
        ep = EP_COMPLETIONS;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/v1/embeddings")) {
        ep = EP_EMBEDDINGS;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/v1/models")) {
        ep = EP_MODELS;
        want = EVHTTP_REQ_GET;
    } else if (!strcmp(path, "/v1/messages")) {
        ep = EP_CHAT;
        shape = SH_ANTHROPIC;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/v1/messages/count_tokens")) {
        ep = EP_COUNT;
        shape = SH_ANTHROPIC;
        want = EVHTTP_REQ_POST;
    } else if (!strncmp(path, "/v1beta/models/", 15) && strstr(path, ":countTokens")) {
        ep = EP_COUNT;
        shape = SH_GEMINI;
        want = EVHTTP_REQ_POST;
    } else if (!strncmp(path, "/v1beta/models/", 15) && strstr(path, ":batchEmbedContents")) {
        ep = EP_EMBEDDINGS;
        shape = SH_GEMINI;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/api/embed")) {
        ep = EP_EMBEDDINGS;
        shape = SH_OLLAMA;
        want = EVHTTP_REQ_POST;
    } else if (!strcmp(path, "/api/chat")) {
        ep = EP_CHAT;
        shape = SH_OLLAMA;
        want = EVHTTP_REQ_POST;
    } else if (!strncmp(path, "/v1beta/models/", 15) &&
               (strstr(path, ":generateContent") || strstr(path, ":streamGenerateContent"))) {
        ep = EP_CHAT;
        shape = SH_GEMINI;
        gemini_stream = strstr(path, ":streamGenerateContent") != NULL;
        want = EVHTTP_REQ_POST;
    } else {
        char *msg = xasprintf("unknown path %s", path);
        json_t *e = error_object("", "invalid_request_error", "not_found");
        json_object_set_new(json_object_get(e, "error"), "message", jstr_safe(msg));
        free(msg);
        send_json_now(req, 404, e);
        json_decref(body);
        return;
    }
    if (cmd != want) {
        send_error_now(req, 405, want == EVHTTP_REQ_GET ? "use GET" : "use POST",
                       "method_not_allowed");
        json_decref(body);
        return;
    }
    if (bad_json) {
        char *msg = xasprintf("malformed JSON body: %s", err.text);
        json_t *e = error_object("", "invalid_request_error", "invalid_json");
        json_object_set_new(json_object_get(e, "error"), "message", jstr_safe(msg));
        free(msg);
        send_json_now(req, 400, e);
        return;
    }
    if (want == EVHTTP_REQ_POST && !json_is_object(body)) {
        send_error_now(req, 400, "the request body must be a JSON object", "invalid_json");
        json_decref(body);
        return;
    }
    if (ep == EP_CHAT && shape != SH_GEMINI) record_prompt(body);

    /* scripting: defaults < headers < body "mock" */
    struct script sc;
    script_init(&sc);
    script_apply(&sc, g.defaults);
    json_t *hs = header_script(evhttp_request_get_input_headers(req));
    script_apply(&sc, hs);
    json_decref(hs);
    if (body) script_apply(&sc, json_object_get(body, "mock"));

    int status = sc.status ? sc.status : 200;
    bool drew_fail = false;
    if (sc.fail_rate >= 0) {
        bool fail = sc.fail_rate > 0 && rng_double() < sc.fail_rate;
        if (fail) {
            status = status >= 400 ? status : 500;
            drew_fail = true;
            g.fails++;
        } else if (status >= 400) {
            status = 200;
        }
    }

    struct mreq *st = mreq_new(req);
    st->ep = ep;
    st->shape = shape;
    st->azure = azure;
    st->safety = shape == SH_GEMINI && sc.safety == 1;
    st->status = status;
    st->stall_ms = (long long)sc.stall_ms;
    bool drew_stall = false;
    if (sc.stall_rate >= 0) {
        drew_stall = sc.stall_rate > 0 && rng_double() < sc.stall_rate;
        if (!drew_stall) st->stall_ms = 0; /* only that share of requests stalls */
    }
    if (sc.reset_rate > 0 && rng_double() < sc.reset_rate) {
        st->reset = true;
        g.resets++;
    }
    if (st->stall_ms > 0) g.stalls++;
    if (drew_fail || (drew_stall && st->stall_ms > 0) || st->reset) g.faults++;
    st->gap_ms = (long long)sc.chunk_gap_ms;
    if (sc.retry_after) st->retry_after = xstrdup(sc.retry_after);

    if (status >= 400) {
        if (sc.error_body) {
            st->body = xstrdup(sc.error_body);
        } else {
            char *msg = xasprintf("mock error %d", status);
            st->body =
                azure ? azure_error_body(status, NULL, msg) : shape_error_body(shape, status, msg);
            free(msg);
        }
    } else if (ep == EP_CHAT || ep == EP_COMPLETIONS) {
        prepare_generation(st, body, &sc);
        const json_t *js = json_object_get(body, "stream");
        bool stream = shape == SH_GEMINI   ? gemini_stream
                      : shape == SH_OLLAMA ? !json_is_false(js)
                                           : json_is_true(js);
        if (stream) {
            st->streaming = true;
            st->cut_after = sc.cut_after;
            st->total_events = shape != SH_OPENAI
                                   ? shape_total_events(st)
                                   : role_events(st) + st->npieces + 1 +
                                         (st->include_usage ? 1 : 0) + 1 + (azure ? 1 : 0);
        } else {
            st->body = completion_body(st);
        }
    } else if (ep == EP_COUNT) {
        const char *why = NULL;
        st->body = count_body(shape, body, &why);
        if (!st->body) {
            st->status = 400;
            st->body = shape_error_body(shape, 400, why);
        }
    } else if (ep == EP_EMBEDDINGS && shape != SH_OPENAI) {
        const char *why = NULL;
        st->body =
            shape == SH_GEMINI ? gemini_embed_body(body, &why) : ollama_embed_body(body, &why);
        if (!st->body) {
            st->status = 400;
            st->body = shape_error_body(shape, 400, why);
        }
    } else if (ep == EP_EMBEDDINGS) {
        const json_t *input = json_object_get(body, "input");
        const json_t *model = json_object_get(body, "model");
        if (!json_is_string(input) && !json_is_array(input)) {
            mreq_destroy(st);
            send_error_now(req, 400, "'input' must be a string or an array", NULL);
            script_free(&sc);
            json_decref(body);
            return;
        }
        const char *fmt = json_string_value(json_object_get(body, "encoding_format"));
        const json_t *dims = json_object_get(body, "dimensions");
        if (dims && (!json_is_integer(dims) || json_integer_value(dims) < 1 ||
                     json_integer_value(dims) > EMBED_DIMS)) {
            mreq_destroy(st);
            send_error_now(req, 400, "'dimensions' must be an integer from 1 to 8", NULL);
            script_free(&sc);
            json_decref(body);
            return;
        }
        st->body = embedding_body(
            input, json_is_string(model) ? json_string_value(model) : "mock-model",
            fmt && !strcmp(fmt, "base64"), dims ? (long)json_integer_value(dims) : 0);
    } else {
        st->body = models_body();
    }
    script_free(&sc);
    json_decref(body);

    mreq_attach(st);
    if (sc.latency_ms > 0)
        arm(st, PH_LATENCY, (long long)sc.latency_ms);
    else
        start_reply(st);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    (void)arg;
    if (!path || !*path) path = "/";
    if (!strncmp(path, "/_mock/", 7))
        handle_mock(req, path);
    else if (!strcmp(path, "/v1") || !strncmp(path, "/v1/", 4) || !strncmp(path, "/v1beta/", 8) ||
             !strcmp(path, "/api/chat") || !strcmp(path, "/api/embed") ||
             !strncmp(path, "/openai/", 8) || !strcmp(path, "/oauth2/token"))
        handle_v1(req, path);
    else
        send_error_now(req, 404, "not found", "not_found");
}

/* ------------------------------------------------------------------ main */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(g.base);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    evconnlistener_enable(g.listener);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    (void)arg;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        struct timeval tv = {0, 100000};
        fprintf(stderr, "mock-upstream: accept: %s (pausing 100 ms)\n", strerror(err));
        evconnlistener_disable(lev);
        evtimer_add(g.accept_retry, &tv);
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && want == RLIM_INFINITY) {
        rl.rlim_cur = 1048576;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = 65536;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mock-upstream [--listen HOST:PORT] [--seed N] [--azure-key K] "
               "[--azure-token T] [--vertex-pubkey PEM] [--vertex-ttl S]\n");
}

int main(int argc, char **argv)
{
    const char *listen_arg = "127.0.0.1:0";
    g.azure_key = "mock-azure-key";
    g.azure_token = "mock-azure-token";
    unsigned long long seed = 1;
    const char *vertex_pubkey = NULL;
    long vertex_ttl = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen_arg = argv[++i];
        } else if (!strncmp(argv[i], "--listen=", 9)) {
            listen_arg = argv[i] + 9;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (!strncmp(argv[i], "--seed=", 7)) {
            seed = strtoull(argv[i] + 7, NULL, 10);
        } else if (!strcmp(argv[i], "--azure-key") && i + 1 < argc) {
            g.azure_key = argv[++i];
        } else if (!strcmp(argv[i], "--azure-token") && i + 1 < argc) {
            g.azure_token = argv[++i];
        } else if (!strcmp(argv[i], "--vertex-pubkey") && i + 1 < argc) {
            vertex_pubkey = argv[++i];
        } else if (!strcmp(argv[i], "--vertex-ttl") && i + 1 < argc) {
            vertex_ttl = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    if (mvx_init(vertex_pubkey, vertex_ttl) != 0) {
        fprintf(stderr, "mock-upstream: cannot read the public key %s\n", vertex_pubkey);
        return 2;
    }

    /* HOST:PORT, [V6]:PORT, :PORT or PORT */
    char *host, *port;
    {
        char *copy = xstrdup(listen_arg);
        char *colon = strrchr(copy, ':');
        if (!colon) {
            host = xstrdup("127.0.0.1");
            port = copy;
        } else {
            *colon = '\0';
            port = xstrdup(colon + 1);
            char *h = copy;
            size_t hl = strlen(h);
            if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
                h[hl - 1] = '\0';
                h++;
            }
            host = xstrdup(*h ? h : "127.0.0.1");
            free(copy);
        }
    }

    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    g.rng = seed;
    g.defaults = json_object();
    g.prompts = json_object();
    g.by_path = json_object();

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "mock-upstream: bad --listen %s: %s\n", listen_arg, gai_strerror(gai));
        free(host);
        free(port);
        return 2;
    }

    g.base = event_base_new();
    g.http = g.base ? evhttp_new(g.base) : NULL;
    if (!g.http) {
        fprintf(stderr, "mock-upstream: cannot create the event loop\n");
        return 1;
    }
    g.listener = evconnlistener_new_bind(
        g.base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
        ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    free(host);
    free(port);
    if (!g.listener) {
        fprintf(stderr, "mock-upstream: cannot listen on %s: %s\n", listen_arg, strerror(errno));
        return 1;
    }
    if (!evhttp_bind_listener(g.http, g.listener)) {
        fprintf(stderr, "mock-upstream: cannot bind the HTTP server\n");
        evconnlistener_free(g.listener);
        return 1;
    }
    g.accept_retry = evtimer_new(g.base, on_accept_retry, NULL);
    evconnlistener_set_error_cb(g.listener, on_accept_error);

    evhttp_set_gencb(g.http, on_request, NULL);
    evhttp_set_max_body_size(g.http, MAX_BODY);
    evhttp_set_timeout(g.http, 86400); /* long streams and stalls must not time out */
    evhttp_set_default_content_type(g.http, "application/json");

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int bound_port = 0;
    if (getsockname(evconnlistener_get_fd(g.listener), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }

    struct event *sigterm = evsignal_new(g.base, SIGTERM, on_signal, NULL);
    struct event *sigint = evsignal_new(g.base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);

    printf("LISTENING %d\n", bound_port);
    fflush(stdout);

    event_base_dispatch(g.base);

    /* The requests still in flight are freed with their connections. */
    while (g.active) {
        struct mreq *st = g.active;
        mreq_release(st);
        mreq_destroy(st);
    }
    evhttp_free(g.http); /* frees the listener too */
    event_free(sigterm);
    event_free(sigint);
    event_free(g.accept_retry);
    event_base_loop(g.base, EVLOOP_NONBLOCK); /* run deferred finalizers */
    event_base_free(g.base);
    json_decref(g.defaults);
    json_decref(g.last);
    json_decref(g.prompts);
    json_decref(g.by_path);
    libevent_global_shutdown();
    return 0;
}
