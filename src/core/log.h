/*
 * log — operational log lines on stderr, and small time helpers.
 *
 * Lines are "LEVEL ts message". A single write(2) per line keeps lines from
 * different threads whole. The access log (one JSON line per request) lives in
 * obs/accesslog, not here. Never pass a secret to these functions: callers log
 * names (provider, model, env var), never values.
 */
#ifndef SKULD_LOG_H
#define SKULD_LOG_H

#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_set_level(log_level_t lvl);
void log_msg(log_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Monotonic clock in nanoseconds / wall clock in milliseconds. */
uint64_t time_mono_ns(void);
uint64_t time_wall_ms(void);

#endif
