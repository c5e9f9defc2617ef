#include "obs/accesslog.h"

#include <event2/event.h>
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
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    buf_printf(
        b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"request_id\":", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    jsonw_cstr(b, r->request_id);
    buf_appends(b, ",\"method\":");
    jsonw_str(b, r->method ? r->method : "", r->method ? r->method_len : 0);
    buf_appends(b, ",\"path\":");
    jsonw_str(b, r->path ? r->path : "", r->path ? r->path_len : 0);
    buf_printf(b, ",\"status\":%d", r->status);
    if (r->model) buf_appends(b, ",\"model\":"), jsonw_cstr(b, r->model);
    if (r->provider) buf_appends(b, ",\"provider\":"), jsonw_cstr(b, r->provider);
    buf_printf(b, ",\"stream\":%s,\"duration_ms\":%.3f,\"bytes_in\":%llu,\"bytes_out\":%llu",
               r->stream ? "true" : "false", (double)r->duration_us / 1000.0,
               (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out);
    if (r->prompt_tokens >= 0) buf_printf(b, ",\"prompt_tokens\":%ld", r->prompt_tokens);
    if (r->completion_tokens >= 0)
        buf_printf(b, ",\"completion_tokens\":%ld", r->completion_tokens);
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
