/*
 * anthropic_shape — Anthropic's Messages API as a client-side wire shape
 * (POST /v1/messages), translated to and from the OpenAI chat shape that the
 * relay and every provider speak. Pure functions over JSON text and buffers:
 * no request, no socket, so the golden tests drive them directly.
 *
 * In: an Anthropic request becomes an OpenAI chat request (system, turns,
 * text/image blocks, tool_use -> tool_calls, tool_result -> tool messages,
 * tools, tool_choice, stop_sequences, max_tokens, stream); a count_tokens
 * body becomes the same without max_tokens.
 * Out: a chat.completion becomes a message; a stream of chat.completion.chunk
 * payloads becomes message_start, content_block_start / _delta / _stop per
 * text or tool_use block, message_delta (stop_reason, usage), message_stop.
 * Errors are {"type":"error","error":{"type","message"}} with the type taken
 * from the status.
 */
#ifndef SKULD_API_ANTHROPIC_SHAPE_H
#define SKULD_API_ANTHROPIC_SHAPE_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"

/* NULL on a client error: err holds the message, *param the field. */
json_t *ashape_request(const json_t *in, char *err, size_t errlen, const char **param);
/* A POST /v1/messages/count_tokens body (model, messages, system, tools,
 * tool_choice; any other field, or a server tool, is refused) -> the OpenAI
 * chat request whose input is counted (no max_tokens). NULL as above. */
json_t *ashape_count_request(const json_t *in, char *err, size_t errlen, const char **param);
/* chat.completion -> message; model is the name the client asked for. 0 or -1. */
int ashape_response(const char *body, size_t len, const char *model, buf_t *out);

const char *ashape_error_type(int status);
void ashape_error(buf_t *out, int status, const char *message);

typedef struct ashape_stream {
    bool started, ended;
    int nblocks;   /* blocks started so far */
    int open;      /* 0 none, 1 text, 2 tool_use */
    int open_tool; /* OpenAI tool_calls index of the open tool_use block */
    const char *stop_reason;
    char id[96];
    char model[160];
} ashape_stream_t;

void ashape_stream_init(ashape_stream_t *s, const char *model);
/* One chat.completion.chunk payload -> framed Anthropic events appended to out. 0 or -1. */
int ashape_stream_chunk(ashape_stream_t *s, const char *data, size_t len, buf_t *out);
/* After [DONE]: close the open block, message_delta with usage, message_stop. */
void ashape_stream_end(ashape_stream_t *s, long prompt, long cached, long completion, buf_t *out);
/* A framed "event: error". */
void ashape_stream_error(buf_t *out, int status, const char *message);

#endif
