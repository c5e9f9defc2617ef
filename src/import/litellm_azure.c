/*
 * litellm_azure.c — the azure/ part of a LiteLLM model_list entry (see
 * litellm_internal.h for who owns what).
 *
 * LiteLLM's `model: azure/DEPLOYMENT` with api_base, api_key and api_version
 * becomes an azure provider (base_url = api_base, api_version) and a model
 * whose upstream model: is DEPLOYMENT. litellm_models.c reads api_base and
 * api_key as for every prefix; this file makes the checks skuld's loader
 * makes for the azure type (config_azure_deployment_ok,
 * config_azure_api_version_ok, the base_url rules of src/config/providers.c)
 * and resolves api_version, so that what is written always loads. Anything
 * that fails is one not-converted line and the entry is skipped: a different
 * endpoint or api-version than the one LiteLLM would call is never written.
 *
 * api_version: absent, LiteLLM sends its own default (or $AZURE_API_VERSION);
 * skuld's default (CONFIG_AZURE_API_VERSION) is written explicitly, with a
 * warning, so the file says which version is called. azure_ad_token without
 * api_key becomes the provider's api_key with auth: entra (a bearer token,
 * as LiteLLM sends it); with api_key, the key wins as in LiteLLM.
 */
#include "import/litellm_internal.h"

#include <string.h>

#include "config/config.h"

/* azure_ad_token: with no api_key, the key, sent as a bearer token (auth:
 * entra), as LiteLLM sends it; api_key wins when both are given, as in
 * LiteLLM. false when the token is given but cannot be converted. */
static bool ad_token(imp_conv_t *c, const imp_azure_in_t *in, const char **key, bool *entra)
{
    const ynode_t *t = in->ad_token;
    if (!t) return true;
    if (in->api_key) {
        imp__nc(c, t, in->ad_token_path, "api_key is used, as in LiteLLM");
        return true;
    }
    if (t->kind == YNODE_SCALAR && strncmp(t->str, "oidc/", 5) == 0) {
        imp__nc(c, t, in->ad_token_path,
                "an OIDC token exchange: skuld's azure type takes a token (auth: entra) from "
                "env:NAME or file:PATH; entry skipped");
        return false;
    }
    *key = imp__secret(c, t, in->ad_token_path, "Entra ID token");
    *entra = true;
    if (!*key) {
        imp__nc(c, t, in->ad_token_path, "skuld's azure type needs the token; entry skipped");
        return false;
    }
    return true;
}

bool imp__azure(imp_conv_t *c, const imp_azure_in_t *in, const char **key, const char **api_version,
                bool *entra)
{
    const ynode_t *mv = in->model;
    if (!config_azure_deployment_ok(in->deployment)) {
        imp__nc(c, mv, in->model_path,
                "the azure deployment name '%s' must have letters, digits, '.', '_' and '-' only "
                "(at most 64), as skuld's azure type requires; entry skipped",
                imp__show(c, in->deployment, strlen(in->deployment)));
        return false;
    }
    size_t bl = strlen(in->base);
    if (strpbrk(in->base, "?#")) {
        imp__nc(c, in->api_base, in->api_base_path,
                "skuld's azure base_url is the resource endpoint without a query or fragment "
                "(api_version sets the api-version); entry skipped");
        return false;
    }
    if (bl >= 7 && strcmp(in->base + bl - 7, "/openai") == 0) {
        imp__nc(c, in->api_base, in->api_base_path,
                "skuld's azure base_url is the resource endpoint without /openai (e.g. "
                "https://NAME.openai.azure.com; skuld appends /openai/deployments/...); entry "
                "skipped");
        return false;
    }
    if (!ad_token(c, in, key, entra)) return false;
    if (!*key) {
        imp__nc(c, in->api_key ? in->api_key : mv, in->api_key ? in->api_key_path : in->model_path,
                "skuld's azure type needs an api_key; entry skipped");
        return false;
    }
    const ynode_t *v = in->api_version;
    if (!v) {
        imp__warn(c, mv,
                  "%s: no api_version; LiteLLM sends its default (or $AZURE_API_VERSION), "
                  "skuld's azure type sends %s, written as api_version",
                  in->params_path, CONFIG_AZURE_API_VERSION);
        *api_version = CONFIG_AZURE_API_VERSION;
        return true;
    }
    if (v->kind != YNODE_SCALAR) {
        imp__err(c, v, "%s: expected an API version, got %s", in->api_version_path,
                 ytree_kind_name(v));
        return false;
    }
    bool bad;
    const char *env = imp__env_ref(c, v, &bad);
    if (env || bad) {
        imp__nc(c, v, in->api_version_path,
                "read from the environment variable %s; skuld's api_version is written in the "
                "file: write the version; entry skipped",
                env ? env : "(invalid name)");
        return false;
    }
    if (imp__has_nul(v) || !config_azure_api_version_ok(v->str)) {
        imp__nc(c, v, in->api_version_path,
                "'%s' is not an Azure OpenAI API version skuld takes (YYYY-MM-DD or "
                "YYYY-MM-DD-preview); entry skipped",
                imp__show(c, v->str, v->len));
        return false;
    }
    *api_version = v->str;
    return true;
}
