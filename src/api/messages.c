/*
 * api messages — POST /v1/messages, Anthropic's Messages API in front of any
 * deployment. The request is translated to the OpenAI chat shape
 * (api/anthropic_shape.c) and goes through the same model resolution and
 * relay as /v1/chat/completions; c->shape = API_SHAPE_ANTHROPIC makes the
 * relay translate the answer back (message, or the message_* /
 * content_block_* event sequence) and every error into Anthropic's shape.
 */
#include "api/anthropic_shape.h"
#include "api/internal.h"

void api_messages(api_ctx_t *c)
{
    const http_req_t *req = c->req;
    json_error_t jerr;
    json_t *in = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(in)) {
        api_ctx_set_model(c, NULL);
        if (in)
            api_send_error(c, 400, NULL, "invalid_json", NULL,
                           "request body must be a JSON object");
        else
            api_send_error(
                c, 400, NULL, "invalid_json", NULL,
                "request body is not valid JSON (line %d, column %d)", jerr.line,
                jerr.column); /* jansson's text may quote the body: keep it out of logs */
        json_decref(in);
        return;
    }
    char err[256];
    const char *param = NULL;
    json_t *body = ashape_request(in, err, sizeof err, &param);
    json_decref(in);
    if (!body) {
        api_ctx_set_model(c, NULL);
        api_send_error(c, 400, NULL, "invalid_request", param, "%s", err);
        return;
    }
    api_openai_dispatch(c, EP_CHAT, body);
}
