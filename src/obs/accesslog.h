/*
 * accesslog — one JSON line per finished request, on stdout.
 *
 * Each worker owns one accesslog_t: lines are appended to its buffer and
 * written with one write(2) when the buffer passes 16 KiB or every 100 ms,
 * so a request never waits on the log. A record carries identifiers and
 * numbers only: never prompt text, never a key.
 */
#ifndef SKULD_ACCESSLOG_H
#define SKULD_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct accesslog accesslog_t;

typedef struct accesslog_rec {
    const char *request_id;
    const char *method; /* may be non-NUL-terminated: lengths given */
    size_t method_len;
    const char *path;
    size_t path_len;
    int status;
    const char *model;      /* public deployment name, or NULL */
    const char *deployment; /* its id when it differs from the name (model groups), or NULL */
    const char *provider;   /* or NULL */
    bool stream;
    uint64_t duration_us;
    uint64_t bytes_in, bytes_out;
    long prompt_tokens, completion_tokens; /* -1 when unknown */
    const char *error;                     /* short reason when the request failed, or NULL */
    const char *key_id, *team, *user;      /* attribution (issue 8); NULL = anonymous */
    double cost_usd;                       /* < 0 when unknown */
    int attempts;                          /* upstream attempts; 0 = none made */
    const char *cache;                     /* "hit", "miss", "bypass", or NULL */
} accesslog_rec_t;

accesslog_t *accesslog_create(struct event_base *base, int fd, bool enabled);
void accesslog_write(accesslog_t *l, const accesslog_rec_t *r);
void accesslog_flush(accesslog_t *l);
void accesslog_destroy(accesslog_t *l); /* flushes */

#endif
