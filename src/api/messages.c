/*
 * api messages — POST /v1/messages, Anthropic's Messages API in front of any
 * deployment. The request is translated to the OpenAI chat shape
 * (api/anthropic_shape.c) and goes through the same stages as
 * /v1/chat/completions; r->shape = PL_SHAPE_ANTHROPIC makes the front end
 * translate the answer back (message, or the message_* / content_block_*
 * event sequence) and every error into Anthropic's shape.
 */
#include "api/anthropic_shape.h"
#include "api/internal.h"

pl_rc_t api_messages_parse(pl_req_t *r)
{
    json_error_t jerr;
    json_t *in = json_loadb(r->raw, r->raw_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(in)) {
        pl_rc_t rc;
        if (in)
            rc = pl_fail(r, 400, NULL, "invalid_json", NULL, "request body must be a JSON object");
        else /* jansson's text may quote the body: keep it out of logs */
            rc = pl_fail(r, 400, NULL, "invalid_json", NULL,
                         "request body is not valid JSON (line %d, column %d)", jerr.line,
                         jerr.column);
        json_decref(in);
        return rc;
    }
    char err[256];
    const char *param = NULL;
    json_t *body = ashape_request(in, err, sizeof err, &param);
    json_decref(in);
    if (!body) return pl_fail(r, 400, NULL, "invalid_request", param, "%s", err);
    r->body = body; /* raw stays the Anthropic body: never spliced */
    return PL_NEXT;
}
