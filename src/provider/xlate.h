/*
 * xlate — helpers shared by the translating providers (anthropic, gemini,
 * ollama): they turn a provider's answer into OpenAI chat.completion(.chunk)
 * JSON and its errors into the OpenAI error object, and hold the request-side
 * pieces the three build()s have in common (refusing non-chat endpoints, the
 * function declarations, merged role turns, tool calls with their id -> name
 * map, and the end of build(): body, headers and translator state, described
 * per provider by a static xl_wire_t). xl_call and xl_error_type also serve
 * the API layer (api/anthropic_shape.c, api/api.c), so an OpenAI tool call
 * and an OpenAI error type are built in one place.
 *
 * xl_stream_t is the part of a per-call translator state that every stream
 * needs: the chunk id/model/created stamp, whether the role chunk went out,
 * the finish reason and the usage seen so far. It lives in the request arena
 * with the rest of the translator state; strings are copied into that arena.
 * Chunks are emitted as compact JSON, so the relay's usage sniffing applies.
 */
#ifndef SKULD_PROVIDER_XLATE_H
#define SKULD_PROVIDER_XLATE_H

#include <jansson.h>
#include <stdbool.h>

#include "core/arena.h"
#include "core/buf.h"
#include "provider/provider.h"

typedef struct xl_stream {
    arena_t *a;
    endpoint_t ep; /* what the call is (xl_build_end): the answer is translated as that */
    const char *id, *model;
    long long created;
    bool role_sent, done;
    int tools;               /* tool calls started so far (next OpenAI tool_calls index) */
    const char *finish;      /* OpenAI finish_reason once known */
    long prompt, completion; /* -1 unknown; prompt includes cached */
    long cached;
} xl_stream_t;

void xl_stream_init(xl_stream_t *s, arena_t *a, const char *id_prefix);
void xl_stream_set_id(xl_stream_t *s, const char *id, const char *model);

/* Emit one chunk with this delta (stolen; NULL = {}) and finish reason (NULL = null).
 * The first call also carries role "assistant". */
int xl_emit_delta(xl_stream_t *s, json_t *delta, const char *finish, prov_emit_fn emit, void *ud);
/* The finish chunk, the usage chunk (choices: []) and [DONE]; once. */
int xl_emit_end(xl_stream_t *s, prov_emit_fn emit, void *ud);
/* An OpenAI error object as a stream payload. */
int xl_emit_error(int status, const char *code, const char *message, prov_emit_fn emit, void *ud);

/* {"prompt_tokens","completion_tokens","total_tokens"[,"prompt_tokens_details"]} */
json_t *xl_usage(long prompt, long completion, long cached);
/* The assistant message {"role","content"[,"tool_calls"]} of a whole answer:
 * content is the text (len bytes), or when there is none null if there are
 * tool calls or null_when_empty, else ""; calls (stolen) are attached when
 * not empty. */
json_t *xl_message(const char *text, size_t len, json_t *calls, bool null_when_empty);
/* A whole chat.completion; message is stolen. */
json_t *xl_completion(const char *id, long long created, const char *model, json_t *message,
                      const char *finish, json_t *usage);
/* OpenAI error object into out; type derived from status. */
void xl_error(buf_t *out, int status, const char *code, const char *message);
/* The OpenAI error "type" of an HTTP status: the one map, also used by the
 * gateway's own errors (xl_error_json). */
const char *xl_error_type(int status);
/* The OpenAI error object {"error":{"message","type","param","code"}} into o;
 * type NULL = xl_error_type(status); param and code may be NULL (null). The
 * one writer of that shape (api/, the local provider, the control plane). */
void xl_error_json(buf_t *o, int status, const char *type, const char *code, const char *param,
                   const char *message);
/* Dump v compactly into out; 0 or -1. */
int xl_dump(buf_t *out, const json_t *v);
/* Serialise the translated answer c into out, then release c and the parsed
 * upstream answer src. Returns status, or -1 when serialising failed. */
int xl_finish(buf_t *out, json_t *c, json_t *src, int status);
/* An OpenAI tool call's function name (*name, borrowed), id (*id, may be NULL)
 * and arguments parsed into an object ({} when they are not a JSON object),
 * which the caller owns. NULL when the call has no function name. */
json_t *xl_tool_call(const json_t *tc, json_t **name, const char **id);
/* Parse data as a JSON object; NULL when it is not one. */
json_t *xl_load_object(const char *data, size_t len);
/* An OpenAI tool call {"id","type":"function","function":{"name","arguments"}}:
 * id stolen (NULL = ""), name borrowed (NULL = ""), args the arguments as
 * JSON text (NULL = "{}"). */
json_t *xl_call(json_t *id, json_t *name, const char *args);

/* ---------- request side (OpenAI chat -> the provider's shape) ---------- */

/* What a translating provider's calls carry besides the body. */
typedef struct xl_wire {
    const char *type;          /* provider type, named in the chat-only refusal */
    const char *stream_accept; /* the Accept header of a streamed call */
    const char *version;       /* a header every call carries, or NULL */
    const char *key_header;    /* the API key header up to the key ("x-api-key: "), or NULL */
    const char *id_prefix;     /* chunk id until the upstream names one */
    unsigned endpoints;        /* XL_EP() of each endpoint served; 0 = chat only */
} xl_wire_t;

#define XL_EP(ep) (1u << (ep))

/* build() for an endpoint w does not serve: PROV_EBADREQ with out->error set;
 * 0 for one it serves. */
int xl_serves(arena_t *a, endpoint_t ep, const xl_wire_t *w, prov_call_t *out);
/* A count answer: the integer `key` (>= 0) of the upstream's object o as
 * {"input_tokens": N} into out. Returns status, or -1 when o has none. */
int xl_count_answer(buf_t *out, const json_t *o, const char *key, int status);
/* The end of every translating build(): req serialised as out->body, then
 * released; out->headers = Content-Type: application/json, Accept
 * (w->stream_accept when streaming, else application/json), w->version, the
 * key (when the provider has one); out->xlate = a zeroed state of xsize bytes
 * from the arena whose first member is an xl_stream_t, initialised with
 * w->id_prefix, m's upstream model and ep. out->url is the caller's. 0 or -1. */
int xl_build_end(arena_t *a, json_t *req, const cfg_model_t *m, endpoint_t ep, bool stream,
                 const xl_wire_t *w, size_t xsize, prov_call_t *out);
/* The headers of a health probe: w->version and the key (when the provider has one). */
const char **xl_probe_headers(arena_t *a, const cfg_model_t *m, const xl_wire_t *w);
/* Append items (stolen) as the turn {"role": role, key: items} to turns,
 * merged into the last turn when that has the same role (the APIs want roles
 * alternating). Empty items add nothing. */
void xl_turn(json_t *turns, const char *role, const char *key, json_t *items);
/* OpenAI tools (a non-empty array) as function declarations {"name",
 * "description", params_key: parameters}; tools without a function name are
 * left out. parameters that are not an object are left out, or with
 * params_required given as {"type":"object"}. New reference. */
json_t *xl_tool_decls(const json_t *tools, const char *params_key, bool params_required);
/* Append each OpenAI tool call of calls that has a function name to out as
 * {wrap: {"name", args_key: arguments parsed}}, and note id -> name in names. */
void xl_calls_append(json_t *out, const json_t *calls, json_t *names, const char *wrap,
                     const char *args_key);

/* Text of an OpenAI message content (string, or text parts joined by "\n"); arena copy. */
const char *xl_content_text(arena_t *a, const json_t *content);
/* "data:<mime>;base64,<data>" -> mime and data (arena copies); false if not a data URL. */
bool xl_data_url(arena_t *a, const char *url, const char **mime, const char **data);
/* Image URL of an OpenAI content part {"type":"image_url","image_url":{"url"}} or NULL. */
const char *xl_image_url(const json_t *part);
/* OpenAI "stop" (string or array) as a JSON array, or NULL. New reference. */
json_t *xl_stop_list(const json_t *stop);
/* Integer field of an object, or dflt. */
long xl_int(const json_t *obj, const char *key, long dflt);

#endif
