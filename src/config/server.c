/*
 * server.c — the server section: the listen address, workers, body and
 * header caps, timeouts, default_model (checked against models and routes
 * at the end of the load, config.c), the access log, the admin master_key (a
 * secret), health probes, the PM QoS request and server.resilience. Its
 * defaults are set before anything is parsed (config__set_server_defaults).
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_LISTEN,
    S_WORKERS,
    S_MAX_BODY,
    S_MAX_HEADER,
    S_MAX_UPSTREAM_BODY,
    S_CONNECT_TIMEOUT,
    S_REQUEST_TIMEOUT,
    S_STREAM_IDLE_TIMEOUT,
    S_CLIENT_IDLE_TIMEOUT,
    S_DRAIN_TIMEOUT,
    S_DEFAULT_MODEL,
    S_ACCESS_LOG,
    S_MASTER_KEY,
    S_HEALTH_INTERVAL,
    S_CPU_LATENCY,
    S_RESILIENCE,
};

#define SRV(f) offsetof(cfg_server_t, f)
static const field_t server_fields[] = {
    [S_LISTEN] = {.key = "listen", .type = FT_STRING, .off = SRV(listen)},
    [S_WORKERS] = {.key = "workers", .type = FT_INT, .off = SRV(workers), .min = 0, .max = 256},
    [S_MAX_BODY] = {.key = "max_body_bytes", .type = FT_SIZE, .off = SRV(max_body_bytes), .min = 1},
    [S_MAX_HEADER] = {.key = "max_header_bytes",
                      .type = FT_SIZE,
                      .off = SRV(max_header_bytes),
                      .min = 1024},
    [S_MAX_UPSTREAM_BODY] = {.key = "max_upstream_body_bytes",
                             .type = FT_SIZE,
                             .off = SRV(max_upstream_body_bytes),
                             .min = 1},
    [S_CONNECT_TIMEOUT] = {.key = "connect_timeout",
                           .type = FT_DURATION,
                           .off = SRV(connect_timeout_ms),
                           .min = 1},
    [S_REQUEST_TIMEOUT] = {.key = "request_timeout",
                           .type = FT_DURATION,
                           .off = SRV(request_timeout_ms),
                           .min = 1},
    [S_STREAM_IDLE_TIMEOUT] = {.key = "stream_idle_timeout",
                               .type = FT_DURATION,
                               .off = SRV(stream_idle_timeout_ms),
                               .min = 1},
    [S_CLIENT_IDLE_TIMEOUT] = {.key = "client_idle_timeout",
                               .type = FT_DURATION,
                               .off = SRV(client_idle_timeout_ms),
                               .min = 1},
    [S_DRAIN_TIMEOUT] = {.key = "drain_timeout",
                         .type = FT_DURATION,
                         .off = SRV(drain_timeout_ms),
                         .min = 0},
    [S_DEFAULT_MODEL] = {.key = "default_model", .type = FT_STRING, .off = SRV(default_model)},
    [S_ACCESS_LOG] = {.key = "access_log", .type = FT_BOOL, .off = SRV(access_log)},
    [S_MASTER_KEY] = {.key = "master_key", .type = FT_STRING, .off = SRV(master_key)},
    [S_HEALTH_INTERVAL] = {.key = "health_interval",
                           .type = FT_DURATION,
                           .off = SRV(health_interval_ms),
                           .min = 0},
    [S_CPU_LATENCY] = {.key = "cpu_latency_us",
                       .type = FT_INT,
                       .off = SRV(cpu_latency_us),
                       .min = 0,
                       .max = 1000000},
    [S_RESILIENCE] = {.key = "resilience", .type = FT_MAPPING},
};
#undef SRV

int config__set_server_defaults(cfg_server_t *s)
{
    s->listen = strdup("127.0.0.1:8080");
    s->workers = 0;
    s->max_body_bytes = 4u << 20;
    s->max_header_bytes = 16u << 10;
    s->max_upstream_body_bytes = 32u << 20;
    s->connect_timeout_ms = 5000;
    s->request_timeout_ms = 600000;
    s->stream_idle_timeout_ms = 120000;
    s->client_idle_timeout_ms = 75000;
    s->drain_timeout_ms = 30000;
    s->default_model = NULL;
    s->access_log = true;
    s->master_key = NULL;
    s->health_interval_ms = 30000;
    s->cpu_latency_us = -1;
    config__set_resilience_defaults(&s->resilience);
    return s->listen ? 0 : -1;
}

/* HOST:PORT, [IPV6]:PORT or :PORT; port 0..65535 (0 = any free port). */
static bool listen_ok(const char *s)
{
    const char *port;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        char host[INET6_ADDRSTRLEN];
        struct in6_addr a;
        size_t hlen = close ? (size_t)(close - s - 1) : 0;
        if (!close || close[1] != ':' || hlen == 0 || hlen >= sizeof(host)) return false;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (inet_pton(AF_INET6, host, &a) != 1) return false;
        port = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':')) return false;
        for (const char *h = s; h < colon; h++)
            if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-') return false;
        port = colon + 1;
    }
    uint64_t p;
    if (strlen(port) > 5 || config__parse_digits(&port, &p) < 0 || *port || p > 65535) return false;
    return true;
}

void config__parse_server(loader_t *L, config_t *c, const ynode_t *map,
                          const ynode_t **default_model_at)
{
    const ynode_t *keys[COUNTOF(server_fields)], *vals[COUNTOF(server_fields)];
    config__walk_map(L, map, "server", server_fields, COUNTOF(server_fields), &c->server, keys,
                     vals);
    if (vals[S_LISTEN] && c->server.listen && !listen_ok(c->server.listen))
        config__err_at(L, vals[S_LISTEN],
                       "invalid listen address '%s' (expected HOST:PORT, [IPV6]:PORT or :PORT with "
                       "port 0..65535)",
                       SHOWN(vals[S_LISTEN]));
    *default_model_at = vals[S_DEFAULT_MODEL];
    if (vals[S_RESILIENCE]) config__parse_resilience(L, vals[S_RESILIENCE], &c->server.resilience);
    /* The raw master_key is replaced by its resolution (env:/file:/literal). */
    char *raw_key = c->server.master_key;
    c->server.master_key = raw_key ? config__resolve_secret(L, vals[S_MASTER_KEY], raw_key) : NULL;
    config__free_secret(raw_key);
}

void config__server_free(config_t *c)
{
    free(c->server.listen);
    free(c->server.default_model);
    config__free_secret(c->server.master_key);
}
