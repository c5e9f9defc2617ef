/*
 * counters.c — see counters.h.
 */
#include "policy/counters.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/* What bucket i adds to the sum at second now. */
static int64_t pc__live(const pc_window_t *w, int i, int64_t now)
{
    int64_t s = w->sec[i];
    return s > now - PC_WINDOW_S && s <= now && w->cnt[i] > 0 ? w->cnt[i] : 0;
}

int64_t pc_window_sum(pc_window_t *w, int64_t now, int64_t *oldest)
{
    if (!w->memo_now || w->memo_now != now) {
        int64_t sum = 0, old = 0;
        for (int i = 0; i < PC_WINDOW_S; i++) {
            if (!pc__live(w, i, now)) continue;
            sum += w->cnt[i];
            if (!old || w->sec[i] < old) old = w->sec[i];
        }
        w->memo_now = now;
        w->memo_sum = sum;
        w->memo_old = old;
    }
    if (oldest) *oldest = w->memo_old;
    return w->memo_sum;
}

/* Bucket i changed at second now (its contribution was `before`): the memo follows, or
 * is dropped where it cannot (another second; the oldest bucket emptied). */
static void pc__memo_update(pc_window_t *w, int i, int64_t now, int64_t before)
{
    if (w->memo_now != now) {
        w->memo_now = 0;
        return;
    }
    int64_t after = pc__live(w, i, now);
    w->memo_sum += after - before;
    if (after && (!w->memo_old || w->sec[i] < w->memo_old)) w->memo_old = w->sec[i];
    if (!after && before && w->sec[i] == w->memo_old) w->memo_now = 0;
}

void pc_window_add(pc_window_t *w, int64_t now, int64_t amount)
{
    int i = (int)(now % PC_WINDOW_S);
    int64_t before = pc__live(w, i, now);
    if (w->sec[i] != now) {
        w->sec[i] = now;
        w->cnt[i] = 0;
    }
    w->cnt[i] += amount;
    pc__memo_update(w, i, now, before);
}

void pc_window_adjust(pc_window_t *w, int64_t now, int64_t slot, int64_t delta)
{
    if (slot <= now - PC_WINDOW_S) return;
    int i = (int)(slot % PC_WINDOW_S);
    if (w->sec[i] != slot) return;
    int64_t before = pc__live(w, i, now);
    w->cnt[i] += delta;
    if (w->cnt[i] < 0) w->cnt[i] = 0;
    pc__memo_update(w, i, now, before);
}

static void pc_period_bounds_calc(int period, time_t now, int64_t *start, int64_t *end);

void pc_period_bounds(int period, time_t now, int64_t *start, int64_t *end)
{
    /* gmtime_r and timegm cost 1,700 instructions per budget check; a period lasts a day
     * at least, so each thread keeps the last bounds of each period kind */
    static _Thread_local struct {
        int64_t start, end;
    } last[3];
    if (period >= 0 && period < 3 && last[period].end && now >= last[period].start &&
        now < last[period].end) {
        *start = last[period].start;
        *end = last[period].end;
        return;
    }
    pc_period_bounds_calc(period, now, start, end);
    if (period >= 0 && period < 3 && now >= *start && now < *end) {
        last[period].start = *start;
        last[period].end = *end;
    }
}

static void pc_period_bounds_calc(int period, time_t now, int64_t *start, int64_t *end)
{
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = 0;
    if (period == BUDGET_DAILY) {
        int64_t s = (int64_t)timegm(&tm);
        *start = s;
        *end = s + 86400;
        return;
    }
    if (period == BUDGET_WEEKLY) {
        int back = (tm.tm_wday + 6) % 7; /* days since Monday */
        int64_t s = (int64_t)timegm(&tm) - (int64_t)back * 86400;
        *start = s;
        *end = s + 7 * 86400;
        return;
    }
    tm.tm_mday = 1;
    *start = (int64_t)timegm(&tm);
    tm.tm_mon += 1; /* timegm normalises December + 1 */
    *end = (int64_t)timegm(&tm);
}

int64_t pc_nusd(double usd)
{
    if (!(usd > 0)) return 0;
    double n = usd * 1e9;
    return n > 9e18 ? INT64_MAX : (int64_t)llround(n);
}

/* ------------------------------------------------------------------------ */
/* in-process store: a chained hash table of counters under one mutex */

typedef struct pc_entry {
    struct pc_entry *next;
    char kind;
    pc_window_t w;           /* 'r' */
    int64_t spent, reserved; /* 'b' */
    char name[];
} pc_entry_t;

#define PC_BUCKETS 4096
static pthread_mutex_t pc_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_entry_t *pc_tab[PC_BUCKETS];

static uint64_t pc_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* With pc_mu held. create: allocate when absent (NULL on OOM). */
static pc_entry_t *pc_get(const char *name, char kind, bool create)
{
    uint64_t h = pc_hash(name) % PC_BUCKETS;
    for (pc_entry_t *e = pc_tab[h]; e; e = e->next)
        if (e->kind == kind && strcmp(e->name, name) == 0) return e;
    if (!create) return NULL;
    size_t nl = strlen(name) + 1;
    pc_entry_t *e = calloc(1, sizeof *e + nl);
    if (!e) return NULL;
    memcpy(e->name, name, nl);
    e->kind = kind;
    e->next = pc_tab[h];
    pc_tab[h] = e;
    return e;
}

int pc_local_admit(pc_check_t *v, size_t n, int64_t now_ms, size_t *failed)
{
    int64_t now = now_ms / 1000;
    pc_entry_t *es[32];
    if (n > 32) n = 32;
    pthread_mutex_lock(&pc_mu);
    for (size_t i = 0; i < n; i++) {
        pc_entry_t *e = es[i] = pc_get(v[i].name, v[i].kind, true);
        if (!e) continue; /* out of memory: this check does not limit */
        if (v[i].kind == 'r') {
            int64_t oldest;
            v[i].used = pc_window_sum(&e->w, now, &oldest);
            v[i].reset_ms = oldest ? (oldest + PC_WINDOW_S) * 1000 - now_ms : 0;
            if (v[i].reset_ms < 0) v[i].reset_ms = 0;
        } else {
            v[i].used = e->spent + e->reserved;
            v[i].reset_ms = v[i].period_end * 1000 - now_ms;
        }
        if (v[i].limit > 0 && v[i].used + v[i].amount > v[i].limit) {
            pthread_mutex_unlock(&pc_mu);
            *failed = i;
            return 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!es[i]) continue;
        if (v[i].kind == 'r') {
            pc_window_add(&es[i]->w, now, v[i].amount);
            v[i].slot = now;
        } else {
            es[i]->reserved += v[i].amount;
        }
    }
    pthread_mutex_unlock(&pc_mu);
    return 1;
}

void pc_local_settle(const pc_check_t *v, size_t n, int64_t now_ms, int64_t *before, int64_t *after)
{
    int64_t now = now_ms / 1000;
    pthread_mutex_lock(&pc_mu);
    for (size_t i = 0; i < n && i < 32; i++) {
        pc_entry_t *e = pc_get(v[i].name, v[i].kind, false);
        if (before) before[i] = 0;
        if (after) after[i] = 0;
        if (!e) continue;
        if (v[i].kind == 'r') {
            if (v[i].actual != v[i].amount)
                pc_window_adjust(&e->w, now, v[i].slot, v[i].actual - v[i].amount);
        } else {
            if (before) before[i] = e->spent;
            e->reserved -= v[i].amount;
            if (e->reserved < 0) e->reserved = 0;
            e->spent += v[i].actual;
            if (after) after[i] = e->spent;
        }
    }
    pthread_mutex_unlock(&pc_mu);
}

void pc_local_budget(const char *name, int64_t *spent, int64_t *reserved)
{
    pthread_mutex_lock(&pc_mu);
    pc_entry_t *e = pc_get(name, 'b', false);
    *spent = e ? e->spent : 0;
    *reserved = e ? e->reserved : 0;
    pthread_mutex_unlock(&pc_mu);
}

void pc_local_restore(const char *name, int64_t spent)
{
    pthread_mutex_lock(&pc_mu);
    pc_entry_t *e = pc_get(name, 'b', true);
    if (e) e->spent += spent;
    pthread_mutex_unlock(&pc_mu);
}
