/*
 * redis — the gateway's one Redis connection manager: hiredis async
 * connections on each worker's libevent loop, for every user (policy
 * counters in src/policy, the response cache's Redis tier in src/cache).
 * Users keep their own command logic (scripts, key names, value formats);
 * this module owns the connections and the life of a command.
 *
 * Connection. One per client (a user: the policy, the cache) and worker id,
 * created lazily by the client's first command on that worker (on its
 * thread; only that thread touches it afterwards, until rds_close_all). A
 * client per connection keeps users apart: the policy's admissions, bounded
 * by redis.timeout, never queue behind a multi-megabyte cache value, and
 * the cache's fire-and-forget writes never use up the policy's share of the
 * bound on outstanding commands below. redis.url is
 * redis://[:PASSWORD@]HOST[:PORT][/DB]; AUTH and SELECT are sent first on
 * every new connection. Commands issued while the connection is being made
 * queue behind it (each bounded by its own timeout). A refused or lost
 * connection is retried in the background, 100 ms doubling to 2 s (reset by
 * a successful connect); meanwhile commands fail at once (-1), so the
 * gateway starts and serves with Redis down. A command issued with a
 * different redis.url (a reload changed it) fails and makes the connection
 * reopen to the new URL at once.
 *
 * Commands. rds_command() sends one command (argv form). With a call, done()
 * runs exactly once with late == false: with the reply, or with r == NULL on
 * an error reply, a lost connection, or when timeout_ms passed first (then
 * call->timed_out is set). A call that timed out gets exactly one more done()
 * with late == true when its real reply (or the NULL of a closed connection)
 * arrives — an admission that did happen in Redis can be released then. A
 * call still pending at rds_close_all() gets done(NULL, late == true) and
 * nobody waits for it any more. After its last done() the module never
 * touches the call again: the caller frees it there.
 *
 * Stalled server. A server that accepts and never answers (SIGSTOP, a hung
 * host) would let commands pile up. Two bounds, neither of which drops a
 * reply that is merely late:
 *   - at most RDS_MAX_OUTSTANDING (10,000) commands (timed out or not) wait
 *     for their reply per connection; beyond that new commands fail at once (-1), so a
 *     stall costs each later request nothing, not redis.timeout;
 *   - if no reply at all arrived for RDS_STALL_MS (10 s) while commands were
 *     outstanding, the next command drops the connection (pending calls get
 *     r == NULL: late ones just free themselves) and reconnects with the
 *     backoff above — a server stalled that long is treated as lost.
 * A short stall therefore delivers every late reply (the policy releases its
 * admissions); only a stall of RDS_STALL_MS loses them (their reservations
 * then expire with their counters).
 *
 * Failures. Every command counts in its client's failure counter when it
 * fails: unavailable (-1), error reply, lost connection, or timeout (a late
 * reply after a timeout is not counted again); metrics read rds_failures().
 */
#ifndef SKULD_CORE_REDIS_H
#define SKULD_CORE_REDIS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct redisReply;

#define RDS_MAX_WORKERS 256

/* A user of the connections: a static object, {.name = "..."} (the name is
 * used in log lines); the rest is the module's. */
typedef struct rds_client rds_client_t;
struct rds_client {
    const char *name;
    _Atomic uint64_t failures;
    struct rds_conn *conns[RDS_MAX_WORKERS]; /* by worker id */
    rds_client_t *next;                      /* clients with connections */
    bool listed;
};

typedef struct rds_call rds_call_t;
struct rds_call {
    /* set by the caller */
    void (*done)(rds_call_t *call, struct redisReply *r, bool late);
    /* set by rds_command */
    bool timed_out;
    struct event *timer;
    rds_client_t *client;
};

/* Send argv[0..argc) (lens[i] bytes each; lens NULL: strlen, for argc <=
 * 128) on client's connection of worker wid, whose loop is base.
 * url: the caller's redis.url; NULL uses the connection as it is and never
 * opens one (calls that outlive a request's config snapshot).
 * call == NULL: fire and forget (the reply is discarded; an error reply
 * still counts). timeout_ms == 0: no timer (done() runs when the reply or
 * the connection's end arrives).
 * 0: queued (done() runs later, never inside this call); -1: Redis
 * unavailable right now (done() never runs; counted as a failure). */
int rds_command(struct event_base *base, int wid, const char *url, rds_client_t *client,
                rds_call_t *call, uint64_t timeout_ms, int argc, const char *const *argv,
                const size_t *lens);

/* After the workers stopped (their loops no longer run, their bases still
 * exist): close every connection; pending calls get done(NULL, true). */
void rds_close_all(void);

uint64_t rds_failures(const rds_client_t *client);

#endif
