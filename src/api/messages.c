/*
 * api messages — POST /v1/messages, Anthropic's Messages API in front of any
 * deployment. The request is translated to the OpenAI chat shape
 * (api/anthropic_shape.c) and goes through the same stages as
 * /v1/chat/completions; r->shape = PL_SHAPE_ANTHROPIC makes the front end
 * translate the answer back (message, or the message_* / content_block_*
 * event sequence) and every error into Anthropic's shape.
 *
 * POST /v1/messages/count_tokens takes the same body without max_tokens
 * (model, messages, system, tools, tool_choice; nothing else) and becomes
 * an EP_COUNT_TOKENS request: the call stage asks the deployment to count
 * (the upstream's counting endpoint, or the local tokenizer) or estimates,
 * and the answer {"input_tokens": N} goes back as it is.
 */
#include "api/anthropic_shape.h"
#include "api/internal.h"

static pl_rc_t api_anthropic_parse(pl_req_t *r, bool count)
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
    json_t *body = count ? ashape_count_request(in, err, sizeof err, &param)
                         : ashape_request(in, err, sizeof err, &param);
    if (!body) param = param ? arena_strdup(r->arena, param) : NULL; /* may point into in */
    json_decref(in);
    if (!body) return pl_fail(r, 400, NULL, "invalid_request", param, "%s", err);
    r->body = body; /* raw stays the Anthropic body: never spliced */
    return PL_NEXT;
}

pl_rc_t api_messages_parse(pl_req_t *r)
{
    return api_anthropic_parse(r, false);
}

pl_rc_t api_count_tokens_parse(pl_req_t *r)
{
    return api_anthropic_parse(r, true);
}
