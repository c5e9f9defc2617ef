/*
 * route classify — which task a request is: vision, long_context, code,
 * reasoning, else chat (checked in that order; the first match wins).
 * A configured task with no match criteria (only candidates / weights)
 * keeps the built-in rule.
 *
 * A task's rule matches when ANY of its criteria does: a keyword occurs in
 * the user text (case-insensitive substring), the estimated prompt tokens
 * reach min_tokens, a content part of a listed type is present, or tools are
 * present (tools: true). A route that configures a task replaces that task's
 * built-in rule with its own; the others keep theirs. Pure.
 */
#include <string.h>

#include "route/router.h"

static const char *const cls_code_kw[] = {
    "```",     "code", "function",    "python", "javascript", "typescript", "rust ",  "golang",
    "compile", "bug",  "stack trace", "regex",  "sql",        "def ",       "class ", "#include"};
static const char *const cls_reason_kw[] = {"step by step", "prove",       "proof",     "reason",
                                            "why does",     "explain why", "calculate", "solve",
                                            "math",         "logic",       "derive",    "puzzle"};

/* kw is lower case (built-in): the text is lower-cased already */
static bool cls_keyword(const route_features_t *f, const char *kw)
{
    return f->text && kw[0] && strstr(f->text, kw) != NULL;
}

/* a configured keyword: any case */
static bool cls_keyword_any(const route_features_t *f, const char *kw)
{
    return f->text && kw[0] && strcasestr(f->text, kw) != NULL;
}

static bool cls_builtin(const route_features_t *f, int task)
{
    switch (task) {
    case ROUTE_TASK_VISION:
        return f->image;
    case ROUTE_TASK_LONG_CONTEXT:
        return f->prompt_tokens >= ROUTE_LONG_CONTEXT_TOKENS;
    case ROUTE_TASK_CODE:
        for (size_t i = 0; i < sizeof cls_code_kw / sizeof *cls_code_kw; i++)
            if (cls_keyword(f, cls_code_kw[i])) return true;
        return false;
    case ROUTE_TASK_REASONING:
        for (size_t i = 0; i < sizeof cls_reason_kw / sizeof *cls_reason_kw; i++)
            if (cls_keyword(f, cls_reason_kw[i])) return true;
        return false;
    default:
        return false;
    }
}

static bool cls_rule(const route_features_t *f, const cfg_task_rule_t *t)
{
    for (size_t i = 0; i < t->keywords.n; i++)
        if (cls_keyword_any(f, t->keywords.v[i])) return true;
    if (t->min_tokens > 0 && f->prompt_tokens >= t->min_tokens) return true;
    for (size_t i = 0; i < t->content_types.n; i++) {
        const char *ct = t->content_types.v[i];
        if ((!strcmp(ct, "image") && f->image) || (!strcmp(ct, "audio") && f->audio) ||
            (!strcmp(ct, "file") && f->file))
            return true;
    }
    if (t->tools == 1 && f->tools) return true;
    return false;
}

int route_classify(const route_features_t *f, const cfg_route_t *r)
{
    static const int order[] = {ROUTE_TASK_VISION, ROUTE_TASK_LONG_CONTEXT, ROUTE_TASK_CODE,
                                ROUTE_TASK_REASONING};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        int t = order[i];
        const cfg_task_rule_t *rule = r ? &r->tasks[t] : NULL;
        bool own =
            rule && rule->set &&
            (rule->keywords.n || rule->min_tokens > 0 || rule->content_types.n || rule->tools >= 0);
        bool hit = own ? cls_rule(f, rule) : cls_builtin(f, t);
        if (hit) return t;
    }
    return ROUTE_TASK_CHAT;
}
