/*
 * loopcall — run a function on another thread's event loop.
 *
 * loopcall(base, fn, arg) may be called from any thread; fn(arg) then runs
 * once on the thread dispatching base, from its own event callback (never
 * inside the caller's frame). It relies on libevent's thread support
 * (evthread_use_pthreads() before the base is created), which makes
 * event_new/event_active safe across threads. Returns 0, or -1 when out of
 * memory (fn will not run).
 */
#ifndef SKULD_LOOPCALL_H
#define SKULD_LOOPCALL_H

struct event_base;

int loopcall(struct event_base *base, void (*fn)(void *arg), void *arg);

#endif
