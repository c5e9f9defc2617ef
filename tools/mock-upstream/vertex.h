/* mock-upstream vertex — see vertex.c. */
#ifndef MOCK_VERTEX_H
#define MOCK_VERTEX_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>

/* The public key assertions must verify with (NULL: none verify), and the
 * lifetime of the tokens issued (<= 0: 3600 s). 0, or -1 when the key cannot be read. */
int mvx_init(const char *pubkey_path, long ttl);
/* POST /oauth2/token. */
void mvx_token(struct evhttp_request *req);
/* A Vertex AI model path: which shape, streamed or not; false after an error
 * reply was sent (unknown path, bad token, bad anthropic body). */
bool mvx_route(struct evhttp_request *req, const char *path, const json_t *body, bool *anthropic,
               bool *stream);

#endif
