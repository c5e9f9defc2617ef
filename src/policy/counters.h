/*
 * counters — the arithmetic of rate limits and budgets, and the in-process
 * counter store (used when no redis.url is configured; policy/redis.c runs
 * the same arithmetic as Lua inside Redis otherwise).
 *
 * Two kinds of counter, each identified by a name:
 *  - a rate window ('r'): requests or tokens admitted in the last 60 seconds,
 *    kept as 60 one-second buckets. A request is admitted when
 *    used + amount <= limit, where used sums the buckets younger than 60 s:
 *    at most `limit` units in any 60 s span (1 s granularity), so N requests
 *    within a minute admit exactly min(N, limit). Tokens are reserved at
 *    admission (max_tokens + the prompt estimate) in the admission second's
 *    bucket and settled there to the actual count (if that bucket is still
 *    in the window).
 *  - a budget ('b'): nano-USD spent and reserved in one period (the period's
 *    start is part of the name, so a new period starts at zero). Admission
 *    needs spent + reserved + max_cost <= limit and adds max_cost to
 *    reserved; settlement moves it: reserved -= max_cost, spent += actual.
 *    Concurrent requests therefore cannot overspend: the sum of admitted
 *    maximum costs never passes the limit. limit 0 = track only.
 *
 * All checks of one request are admitted or rejected together (one mutex
 * here, one Lua script in Redis). The local store's mutex is held for a few
 * hundred nanoseconds per request (no I/O, no allocation except the first
 * time a name is seen); entries are never freed (bounded by the number of
 * keys, teams, deployments and periods).
 */
#ifndef SKULD_POLICY_COUNTERS_H
#define SKULD_POLICY_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PC_WINDOW_S 60

enum { PC_SCOPE_KEY = 0, PC_SCOPE_TEAM, PC_SCOPE_DEPLOYMENT, PC_SCOPE_GLOBAL, PC_NSCOPE };
enum { PC_REQ = 0, PC_TOK, PC_USD };

typedef struct pc_check {
    char name[192];     /* e.g. "rl:key:key_ab12:req", "bg:team:research:1764547200" */
    char kind;          /* 'r' window, 'b' budget */
    int scope;          /* PC_SCOPE_* */
    int unit;           /* PC_REQ, PC_TOK (windows), PC_USD (budgets) */
    int64_t limit;      /* per 60 s, or nano-USD per period; 0 = track only */
    int64_t amount;     /* reserved at admission */
    int64_t ttl_s;      /* budgets: how long the counter must live */
    int64_t period_end; /* budgets: next reset, unix seconds */
    /* set by admission */
    int64_t used;     /* before this request */
    int64_t reset_ms; /* windows: until the oldest bucket leaves the window */
    int64_t slot;     /* windows: the bucket (unix second) the amount went into */
    /* set before settlement */
    int64_t actual;
} pc_check_t;

/* ---- pure arithmetic (unit-tested) ---- */
typedef struct pc_window {
    int64_t sec[PC_WINDOW_S];
    int64_t cnt[PC_WINDOW_S];
    /* The sum and oldest bucket at second memo_now (0: none), kept up to date by add and
     * adjust at that second: a window is read thousands of times a second, and the
     * 60-bucket scan cost ~500 instructions a read. Any change at another second drops it. */
    int64_t memo_now, memo_sum, memo_old;
} pc_window_t;
/* Units in the window at unix second now; *oldest the oldest live bucket's
 * second with a positive count (0 if none). */
int64_t pc_window_sum(pc_window_t *w, int64_t now, int64_t *oldest);
void pc_window_add(pc_window_t *w, int64_t now, int64_t amount);
/* Adjust the bucket of second slot by delta if it is still live (>= 0 after). */
void pc_window_adjust(pc_window_t *w, int64_t now, int64_t slot, int64_t delta);

/* [start, end) of the period containing now, UTC: days start at 00:00,
 * weeks on Monday 00:00, months on the 1st at 00:00. */
void pc_period_bounds(int period, time_t now, int64_t *start, int64_t *end);
/* USD -> nano-USD (rounded). */
int64_t pc_nusd(double usd);

/* ---- the in-process store ---- */
/* 1 admitted (amounts added, used/reset_ms/slot set), 0 rejected (*failed =
 * index of the first check that did not fit; nothing changed). now: unix ms. */
int pc_local_admit(pc_check_t *v, size_t n, int64_t now_ms, size_t *failed);
/* Settle admitted checks to their `actual`. For budget checks, before[i]
 * and after[i] receive the period's spent before and after (may be NULL). */
void pc_local_settle(const pc_check_t *v, size_t n, int64_t now_ms, int64_t *before,
                     int64_t *after);
/* A budget counter's spent and reserved (0 when unknown). */
void pc_local_budget(const char *name, int64_t *spent, int64_t *reserved);
/* Start-up: spend already made this period (from the spend log) added to a
 * budget counter. */
void pc_local_restore(const char *name, int64_t spent);

#endif
