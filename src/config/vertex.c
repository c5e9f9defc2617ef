/*
 * vertex.c — the keys of a vertex provider (Vertex AI with a Google Cloud
 * service-account key): project, location (the region), publisher (google
 * for Gemini models, anthropic for Claude models; one provider per
 * publisher), credentials (file:/path/key.json or env:NAME holding the JSON)
 * and token_url (the OAuth2 token endpoint; defaults to the key's token_uri,
 * set only to point tests at a mock: it comes from this file, never from a
 * client). base_url defaults to https://{location}-aiplatform.googleapis.com.
 * The key is read and checked here, at load: it must be a JSON object with
 * string client_email, private_key (a PEM private key) and token_uri. Its
 * private key is kept as a secret (wiped when freed, never in a message).
 * For other provider types all these keys are refused.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { V_PROJECT, V_LOCATION, V_PUBLISHER, V_TOKEN_URL, V_CREDENTIALS, V__N };
static const char *const vertex_keys[V__N] = {"project", "location", "publisher", "token_url",
                                              "credentials"};

/* A project id or region: letters, digits, '-' (a URL path segment). */
static bool vertex_segment_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-') return false;
    return true;
}

/* The service-account key JSON from file:PATH or env:NAME; NULL after an error. */
static json_t *vertex_load_key(loader_t *L, const ynode_t *at, const char *ref)
{
    json_error_t je;
    json_t *o = NULL;
    if (strncmp(ref, "file:", 5) == 0 && ref[5]) {
        o = json_load_file(ref + 5, 0, &je);
        if (!o) {
            config__err_at(L, at, "credentials: cannot read the service-account key file:%s: %s",
                           ref + 5, je.text);
            return NULL;
        }
    } else if (strncmp(ref, "env:", 4) == 0 && ref[4]) {
        const char *v = getenv(ref + 4);
        if (!v || !*v) {
            config__err_at(L, at, "credentials: environment variable %s is not set", ref + 4);
            return NULL;
        }
        o = json_loads(v, 0, &je);
        if (!o) {
            config__err_at(L, at, "credentials: environment variable %s is not JSON: %s", ref + 4,
                           je.text);
            return NULL;
        }
    } else {
        config__err_at(L, at,
                       "credentials must be file:/path/key.json or env:NAME (a service-account "
                       "key)");
        return NULL;
    }
    if (!json_is_object(o)) {
        config__err_at(L, at, "credentials: the service-account key is not a JSON object");
        json_decref(o);
        return NULL;
    }
    return o;
}

static void vertex_key_fields(loader_t *L, const ynode_t *at, cfg_provider_t *p, json_t *o)
{
    const char *email = json_string_value(json_object_get(o, "client_email"));
    const char *key = json_string_value(json_object_get(o, "private_key"));
    const char *uri = json_string_value(json_object_get(o, "token_uri"));
    const char *missing = !email ? "client_email"
                          : !key ? "private_key"
                          : !uri ? "token_uri"
                                 : NULL;
    if (missing) {
        config__err_at(L, at, "credentials: the service-account key has no string '%s'", missing);
        return;
    }
    if (!strstr(key, "-----BEGIN PRIVATE KEY-----") &&
        !strstr(key, "-----BEGIN RSA PRIVATE KEY-----")) {
        config__err_at(L, at,
                       "credentials: private_key of the service-account key is not a PEM "
                       "private key");
        return;
    }
    if (strncmp(uri, "https://", 8) != 0 && strncmp(uri, "http://", 7) != 0) {
        config__err_at(L, at, "credentials: token_uri of the service-account key is not a URL");
        return;
    }
    p->sa_email = config__dup_str(L, at, email);
    p->sa_key = config__dup_str(L, at, key);
    if (!p->token_url) p->token_url = config__dup_str(L, at, uri);
}

void config__check_vertex(loader_t *L, const ynode_t *map, cfg_provider_t *p,
                          const char *credentials, const ynode_t **keys, const ynode_t **vals)
{
    if (strcmp(p->type, "vertex") != 0) {
        for (int f = 0; f < V__N; f++)
            if (keys[f])
                config__err_at(L, keys[f], "%s is only for provider type 'vertex'", vertex_keys[f]);
        return;
    }
    if (p->api_key)
        config__err_at(L, map,
                       "provider type 'vertex' takes credentials (a service-account key), not "
                       "api_key");
    for (int f = 0; f < V__N; f++)
        if (f != V_TOKEN_URL && !keys[f])
            config__err_at(L, map, "provider type 'vertex' needs '%s'", vertex_keys[f]);
    if (p->project && !vertex_segment_ok(p->project))
        config__err_at(L, vals[V_PROJECT], "project '%s' is not a Google Cloud project id",
                       SHOWN(vals[V_PROJECT]));
    if (p->location && !vertex_segment_ok(p->location))
        config__err_at(L, vals[V_LOCATION], "location '%s' is not a Vertex AI region",
                       SHOWN(vals[V_LOCATION]));
    if (p->publisher && strcmp(p->publisher, "google") != 0 &&
        strcmp(p->publisher, "anthropic") != 0)
        config__err_at(L, vals[V_PUBLISHER],
                       "publisher must be google (Gemini) or anthropic (Claude), not '%s'",
                       SHOWN(vals[V_PUBLISHER]));
    if (p->token_url && strncmp(p->token_url, "https://", 8) != 0 &&
        strncmp(p->token_url, "http://", 7) != 0)
        config__err_at(L, vals[V_TOKEN_URL], "token_url must start with http:// or https://");
    if (!p->base_url && p->location && vertex_segment_ok(p->location)) {
        size_t n = strlen(p->location) + 48;
        p->base_url = malloc(n);
        if (p->base_url)
            snprintf(p->base_url, n, "https://%s-aiplatform.googleapis.com", p->location);
        else
            config__err_at(L, map, "out of memory");
    }
    if (credentials) {
        json_t *o = vertex_load_key(L, vals[V_CREDENTIALS], credentials);
        if (o) vertex_key_fields(L, vals[V_CREDENTIALS], p, o);
        json_decref(o); /* jansson frees its copy of the key; ours is wiped when freed */
    }
}
