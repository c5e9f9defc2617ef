/*
 * curl — the libcurl upstream engine (internal.h): the multi-socket API
 * driven by the worker's libevent loop (one multi handle per worker, so
 * each keeps its own keep-alive pool), for https, hosts that need DNS, and
 * every call when SKULD_UPSTREAM=curl. Worker-loop thread only.
 *
 * curl forbids removing a handle from inside its callbacks: a call
 * cancelled there is marked (in_callback: its callback returns an error;
 * in_action: up_sweep removes it once curl returns).
 */
#include "upstream/client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "upstream/internal.h"

typedef struct up_sock {
    struct event *ev;
    upstream_t *up;
    curl_socket_t fd;
} up_sock_t;

static void up_check_done(upstream_t *u);
static void up_idle_arm(up_call_t *c);
static void up_call_unlink_free(up_call_t *c);

/* Calls cancelled (from another call's callback) while curl was running: curl
 * forbids removing a handle from inside its callbacks, so they go now. */
static void up_sweep(upstream_t *u)
{
    if (u->in_action || !u->n_deferred) return;
    up_call_t *c = u->calls;
    while (c && u->n_deferred) {
        up_call_t *next = c->next;
        if (c->deferred && !c->in_callback) {
            u->n_deferred--;
            curl_multi_remove_handle(u->multi, c->easy);
            up_call_unlink_free(c);
        }
        c = next;
    }
}

/* ---------- libevent <-> curl glue ---------- */

static void up_on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    up_sock_t *s = arg;
    upstream_t *u = s->up;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    u->in_action++;
    curl_multi_socket_action(u->multi, fd, action, &running);
    u->in_action--;
    up_sweep(u);
    up_check_done(u);
    up_sweep(u);
}

static int up_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    upstream_t *u = userp;
    up_sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(u->multi, fd, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->up = u;
        s->fd = fd;
        curl_multi_assign(u->multi, fd, s);
    } else {
        event_free(s->ev);
    }
    s->ev = event_new(u->base, fd, kind, up_on_socket_event, s);
    event_add(s->ev, NULL);
    return 0;
}

static void up_on_timer(evutil_socket_t fd, short what, void *arg)
{
    upstream_t *u = arg;
    int running;
    u->in_action++;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    u->in_action--;
    up_sweep(u);
    up_check_done(u);
    up_sweep(u);
}

static int up_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    upstream_t *u = userp;
    if (timeout_ms < 0) {
        evtimer_del(u->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(u->timer, &tv);
    return 0;
}

/* ---------- calls ---------- */

static void up_call_unlink_free(up_call_t *c)
{
    upstream_t *u = c->up;
    up_unlink(u, c);
    curl_slist_free_all(c->headers);
    buf_free(&c->resp_head);
    if (c->idle_ev) event_free(c->idle_ev);
    if (u->n_pool < UP_EASY_POOL_MAX) {
        curl_easy_reset(c->easy);
        u->pool[u->n_pool++] = c->easy;
    } else {
        curl_easy_cleanup(c->easy);
    }
    free(c);
}

static size_t up_header_cb(char *data, size_t size, size_t n, void *arg)
{
    up_call_t *c = arg;
    size_t len = size * n;
    if (c->cancelled) return 0;
    up_idle_arm(c);
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new status line: a 1xx or a redirect before the final answer resets. */
        buf_reset(&c->resp_head);
        const char *sp = memchr(data, ' ', len);
        c->status = sp ? atoi(sp + 1) : 0;
        return len;
    }
    if (len == 2 && data[0] == '\r' && data[1] == '\n') {
        if (c->status >= 200 && !c->head_done) {
            c->head_done = true;
            if (c->cb.on_head) {
                c->in_callback++;
                c->cb.on_head(c->ud, c->status);
                c->in_callback--;
                if (c->cancelled) return 0;
            }
        }
        return len;
    }
    if (buf_append(&c->resp_head, data, len) != BUF_OK) return 0; /* header flood */
    return len;
}

static size_t up_write_cb(char *data, size_t size, size_t n, void *arg)
{
    up_call_t *c = arg;
    size_t len = size * n;
    if (c->cancelled) return 0;
    up_idle_arm(c);
    if (!c->cb.on_data) return len;
    c->in_callback++;
    int r = c->cb.on_data(c->ud, data, len);
    c->in_callback--;
    if (c->cancelled) return 0;
    if (r == UP_PAUSE) {
        c->paused = true;
        if (c->idle_ev) event_del(c->idle_ev); /* we are the slow side, not the upstream */
        return CURL_WRITEFUNC_PAUSE;
    }
    return len;
}

static up_result_t up_map_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return UP_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return UP_CONNECT_FAILED;
    case CURLE_OPERATION_TIMEDOUT:
        return UP_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
        return UP_INTERNAL;
    default:
        return UP_PROTOCOL_ERROR;
    }
}

static void up_check_done(upstream_t *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        up_call_t *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(u->multi, m->easy_handle);
        if (c->deferred) {
            c->deferred = false;
            u->n_deferred--;
        }
        if (!c->cancelled && c->cb.on_done) {
            up_result_t res = up_map_result(rc);
            /* A response without a final head is not a complete response. */
            if (res == UP_OK && !c->head_done) res = UP_PROTOCOL_ERROR;
            c->in_callback++;
            c->cb.on_done(c->ud, res,
                          res == UP_OK ? NULL
                                       : (c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc)));
            c->in_callback--;
        }
        up_call_unlink_free(c);
    }
}

static void up_idle_arm(up_call_t *c)
{
    if (!c->idle_ev) return;
    struct timeval tv = {(time_t)(c->idle_ms / 1000), (suseconds_t)(c->idle_ms % 1000) * 1000};
    evtimer_add(c->idle_ev, &tv);
}

/* Our own timer, so never inside a curl callback: the call can end here. */
static void up_on_idle(evutil_socket_t fd, short what, void *arg)
{
    up_call_t *c = arg;
    if (c->cancelled) return;
    curl_multi_remove_handle(c->up->multi, c->easy);
    if (c->cb.on_done) {
        char detail[96];
        snprintf(detail, sizeof detail, "no data from the upstream for %llu ms",
                 (unsigned long long)c->idle_ms);
        c->in_callback++;
        c->cb.on_done(c->ud, UP_TIMEOUT, detail);
        c->in_callback--;
    }
    up_call_unlink_free(c);
}

static up_call_t *curl_call_start(upstream_t *u, const up_request_t *req, const up_callbacks_t *cb,
                                  void *ud)
{
    up_call_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->up = u;
    c->engine = &up_engine_curl;
    c->cb = *cb;
    c->ud = ud;
    buf_init(&c->resp_head, UP_MAX_RESPONSE_HEAD);
    c->easy = u->n_pool ? u->pool[--u->n_pool] : curl_easy_init();
    if (!c->easy) {
        free(c);
        return NULL;
    }
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, up_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, up_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (req->connect_timeout_ms)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    if (req->total_timeout_ms) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->total_timeout_ms);

    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    struct curl_slist *h = NULL;
    for (const char *const *p = req->headers; p && *p; p++) {
        struct curl_slist *nh = curl_slist_append(h, *p);
        if (!nh) goto fail;
        h = nh;
    }
    /* No "Expect: 100-continue" round trip on large bodies. */
    struct curl_slist *nh = curl_slist_append(h, "Expect:");
    if (!nh) goto fail;
    h = nh;
    c->headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (req->idle_timeout_ms) {
        c->idle_ms = req->idle_timeout_ms;
        c->idle_ev = evtimer_new(u->base, up_on_idle, c);
        if (!c->idle_ev) goto fail;
        up_idle_arm(c);
    }

    up_link(u, c);
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        up_call_unlink_free(c);
        return NULL;
    }
    return c;
fail:
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    buf_free(&c->resp_head);
    free(c);
    return NULL;
}

static void curl_call_cancel(up_call_t *c)
{
    c->cancelled = true;
    if (c->in_callback) {
        /* Inside a callback: it returns an error to curl, and the done handler
         * frees the call without reporting. */
        return;
    }
    if (c->up->in_action) {
        /* Inside another call's callback: curl is running; up_sweep removes it. */
        c->deferred = true;
        c->up->n_deferred++;
        if (c->idle_ev) event_del(c->idle_ev);
        return;
    }
    curl_multi_remove_handle(c->up->multi, c->easy);
    up_call_unlink_free(c);
}

static void curl_call_resume(up_call_t *c)
{
    c->paused = false;
    up_idle_arm(c);
    upstream_t *u = c->up;
    c->in_callback++;
    u->in_action++;
    curl_easy_pause(c->easy, CURLPAUSE_CONT);
    u->in_action--;
    c->in_callback--;
    if (c->cancelled && !c->deferred) {
        /* Cancelled from a callback fired synchronously by the unpause. */
        curl_multi_remove_handle(u->multi, c->easy);
        up_call_unlink_free(c);
    }
    up_sweep(u);
}

/* ---------- upstream ---------- */

static CURLM *up_multi_new(upstream_t *u)
{
    CURLM *m = curl_multi_init();
    if (!m) return NULL;
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, up_socket_cb);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, up_timer_cb);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, u->max_idle);
    return m;
}

static int curl_init(upstream_t *u)
{
    u->multi = up_multi_new(u);
    u->timer = evtimer_new(u->base, up_on_timer, u);
    if (u->multi && u->timer) return 0;
    if (u->multi) curl_multi_cleanup(u->multi);
    if (u->timer) event_free(u->timer);
    u->multi = NULL;
    u->timer = NULL;
    return -1;
}

/* No call is running: a fresh multi handle closes every idle connection. */
static void curl_close_idle(upstream_t *u)
{
    CURLM *fresh = up_multi_new(u);
    if (fresh) {
        curl_multi_cleanup(u->multi);
        u->multi = fresh;
        evtimer_del(u->timer);
    }
    for (int i = 0; i < u->n_pool; i++) curl_easy_cleanup(u->pool[i]);
    u->n_pool = 0;
}

static void curl_fini(upstream_t *u)
{
    for (int i = 0; i < u->n_pool; i++) curl_easy_cleanup(u->pool[i]);
    u->n_pool = 0;
    if (u->multi) curl_multi_cleanup(u->multi);
    if (u->timer) event_free(u->timer);
}

/* Everything the native engine does not take. */
static bool curl_takes(const upstream_t *u, const char *url)
{
    (void)u;
    (void)url;
    return true;
}

const up_engine_t up_engine_curl = {
    .name = "curl",
    .init = curl_init,
    .fini = curl_fini,
    .takes = curl_takes,
    .start = curl_call_start,
    .cancel = curl_call_cancel,
    .resume = curl_call_resume,
    .close_idle = curl_close_idle,
};
