#include "obs/accesslog.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/jsonw.h"

#define ACCESSLOG_FLUSH_BYTES (16 * 1024)

struct accesslog {
    int fd;
    bool enabled;
    buf_t buf;
    struct event *timer;
    time_t ts_sec;    /* the second ts_text was formatted for */
    char ts_text[64]; /* "YYYY-MM-DDTHH:MM:SS." (sized for any int fields) */
};

static void accesslog__tick(evutil_socket_t fd, short what, void *arg)
{
    accesslog_flush(arg);
}

accesslog_t *accesslog_create(struct event_base *base, int fd, bool enabled)
{
    accesslog_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->fd = fd;
    l->enabled = enabled;
    buf_init(&l->buf, 0);
    if (enabled) {
        l->timer = event_new(base, -1, EV_PERSIST, accesslog__tick, l);
        struct timeval tv = {0, 100000};
        if (l->timer) event_add(l->timer, &tv);
    }
    return l;
}

void accesslog_write(accesslog_t *l, const accesslog_rec_t *r)
{
    if (!l || !l->enabled) return;
    buf_t *b = &l->buf;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != l->ts_sec) { /* the date and time change once a second: format them then */
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(l->ts_text, sizeof l->ts_text, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        l->ts_sec = ts.tv_sec;
    }
    char ms[3] = {(char)('0' + ts.tv_nsec / 100000000), (char)('0' + ts.tv_nsec / 10000000 % 10),
                  (char)('0' + ts.tv_nsec / 1000000 % 10)};
    buf_appends(b, "{\"ts\":\"");
    buf_appends(b, l->ts_text);
    buf_append(b, ms, 3);
    buf_appends(b, "Z\",\"request_id\":");
    jsonw_cstr(b, r->request_id);
    buf_appends(b, ",\"method\":");
    jsonw_str(b, r->method ? r->method : "", r->method ? r->method_len : 0);
    buf_appends(b, ",\"path\":");
    jsonw_str(b, r->path ? r->path : "", r->path ? r->path_len : 0);
    buf_appends(b, ",\"status\":");
    buf_append_i64(b, r->status);
    if (r->model) buf_appends(b, ",\"model\":"), jsonw_cstr(b, r->model);
    if (r->deployment) buf_appends(b, ",\"deployment\":"), jsonw_cstr(b, r->deployment);
    if (r->provider) buf_appends(b, ",\"provider\":"), jsonw_cstr(b, r->provider);
    buf_appends(b, r->stream ? ",\"stream\":true,\"duration_ms\":"
                             : ",\"stream\":false,\"duration_ms\":");
    /* milliseconds with three decimals, from microseconds */
    char frac[4] = {'.', (char)('0' + r->duration_us / 100 % 10),
                    (char)('0' + r->duration_us / 10 % 10), (char)('0' + r->duration_us % 10)};
    buf_append_u64(b, r->duration_us / 1000);
    buf_append(b, frac, 4);
    buf_appends(b, ",\"bytes_in\":");
    buf_append_u64(b, r->bytes_in);
    buf_appends(b, ",\"bytes_out\":");
    buf_append_u64(b, r->bytes_out);
    if (r->prompt_tokens >= 0) {
        buf_appends(b, ",\"prompt_tokens\":");
        buf_append_i64(b, r->prompt_tokens);
    }
    if (r->completion_tokens >= 0) {
        buf_appends(b, ",\"completion_tokens\":");
        buf_append_i64(b, r->completion_tokens);
    }
    if (r->cost_usd >= 0) {
        char t[BUF_FIXED_MAX];
        buf_appends(b, ",\"cost_usd\":");
        buf_append(b, t, buf_fmt_fixed(t, r->cost_usd, 10));
    }
    if (r->attempts > 0) {
        buf_appends(b, ",\"attempts\":");
        buf_append_i64(b, r->attempts);
    }
    if (r->cache) buf_appends(b, ",\"cache\":"), jsonw_cstr(b, r->cache);
    if (r->key_id) buf_appends(b, ",\"key_id\":"), jsonw_cstr(b, r->key_id);
    if (r->team) buf_appends(b, ",\"team\":"), jsonw_cstr(b, r->team);
    if (r->user) buf_appends(b, ",\"user\":"), jsonw_cstr(b, r->user);
    if (r->error) buf_appends(b, ",\"error\":"), jsonw_cstr(b, r->error);
    buf_appends(b, "}\n");
    if (b->len >= ACCESSLOG_FLUSH_BYTES) accesslog_flush(l);
}

void accesslog_flush(accesslog_t *l)
{
    if (!l || !l->buf.len) return;
    /* stdout is a pipe or file; a short write keeps the rest for the next tick. */
    ssize_t n = write(l->fd, buf_data(&l->buf), l->buf.len);
    if (n > 0) buf_consume(&l->buf, (size_t)n);
    if (l->buf.len > 4 * 1024 * 1024) buf_reset(&l->buf); /* reader stuck: drop, never grow */
}

void accesslog_destroy(accesslog_t *l)
{
    if (!l) return;
    accesslog_flush(l);
    if (l->timer) event_free(l->timer);
    buf_free(&l->buf);
    free(l);
}
