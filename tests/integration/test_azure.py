"""
The azure provider through the real gateway to mock-upstream's Azure shape:
the deployment URL with api-version built from the config, the api-key
header or an Entra ID bearer token, OpenAI bodies and streams (Azure's
prompt-filter preamble chunk dropped), and Azure's errors (401, 404
DeploymentNotFound) turned into OpenAI's error object. Also: a bad azure
config is refused by `skuld check`, and the health probe is the resource's
models list with the same api-version and key.
"""
import os

import harness as H

KEY = "mock-azure-key"      # what mock-upstream accepts by default
TOKEN = "mock-azure-token"
ENV = {"SKULD_T_AZ_KEY": KEY, "SKULD_T_AZ_TOKEN": TOKEN, "SKULD_T_AZ_BAD": "wrong-key"}
CLIENT = {"Authorization": "Bearer client-key-never-upstream"}


def root(mock):
    return "http://%s:%d" % (H.HOST, mock.port)


def azure_config(mock, server=None):
    def prov(name, key, **kw):
        p = {"name": name, "type": "azure", "base_url": root(mock), "api_key": "env:" + key,
             "health_check": "none"}
        p.update(kw)
        return p
    return H.base_config(server=server, providers=[
        prov("az", "SKULD_T_AZ_KEY"),
        prov("az-entra", "SKULD_T_AZ_TOKEN", auth="entra"),
        prov("az-bad", "SKULD_T_AZ_BAD"),
        prov("az-preview", "SKULD_T_AZ_KEY", api_version="2025-01-01-preview"),
    ], models=[
        {"name": "azure-chat", "provider": "az", "model": "gpt4o-dep"},
        {"name": "azure-entra", "provider": "az-entra", "model": "gpt4o-dep"},
        {"name": "azure-bad", "provider": "az-bad", "model": "gpt4o-dep"},
        {"name": "azure-missing", "provider": "az", "model": "missing-dep"},
        {"name": "azure-preview", "provider": "az-preview", "model": "gpt4o-dep"},
        {"name": "azure-embed", "provider": "az", "model": "embed-dep",
         "capabilities": ["embeddings"]},
    ])


CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


class AzureTest(H.GatewayTest):
    env = ENV

    @classmethod
    def config(cls):
        return azure_config(cls.mock)

    def chat(self, model, **extra):
        body = dict(CHAT, model=model, **extra)
        return H.post_json(self.port, "/v1/chat/completions", body, headers=CLIENT)

    def test_chat_api_key(self):
        r = self.chat("azure-chat")
        self.assertEqual(r.status, 200, r.body)
        o = r.json()
        self.assertEqual(o["choices"][0]["message"]["content"], "c0 c1 c2 c3 c4")
        self.assertEqual(o["usage"]["prompt_tokens"], 2)
        self.assertIn("prompt_filter_results", o)  # Azure's extras pass through
        self.assertEqual(r.headers["x-skuld-provider"], "az")
        last = self.mock.last()
        self.assertEqual(last["path"], "/openai/deployments/gpt4o-dep/chat/completions")
        self.assertEqual(last["query"], "api-version=2024-10-21")
        self.assertEqual(last["headers"]["api-key"], KEY)
        self.assertNotIn("authorization", last["headers"])  # the client's key stays here
        self.assertEqual(last["body"]["model"], "gpt4o-dep")

    def test_chat_entra_bearer(self):
        r = self.chat("azure-entra")
        self.assertEqual(r.status, 200, r.body)
        last = self.mock.last()
        self.assertEqual(last["headers"]["authorization"], "Bearer " + TOKEN)
        self.assertNotIn("api-key", last["headers"])

    def test_api_version_from_config(self):
        r = self.chat("azure-preview")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.last()["query"], "api-version=2025-01-01-preview")

    def test_stream(self):
        res = H.sse_request(self.port, dict(CHAT, model="azure-chat", stream=True), headers=CLIENT)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.complete and res.done, res.events)
        self.assertEqual(res.content(), "c0 c1 c2 c3 c4 ")
        chunks = res.json_events()
        # the preamble (choices [] and an empty id) is not passed on; nor the
        # usage chunk the gateway asked for and the client did not
        for c in chunks:
            self.assertTrue(c["id"], c)
            self.assertTrue(c["choices"], c)
        last = self.mock.last()
        self.assertEqual(last["headers"]["accept"], "text/event-stream")
        self.assertTrue(last["body"]["stream_options"]["include_usage"])

    def test_stream_usage_for_client(self):
        body = dict(CHAT, model="azure-chat", stream=True, stream_options={"include_usage": True})
        res = H.sse_request(self.port, body, headers=CLIENT)
        self.assertEqual(res.status, 200)
        usage = [c["usage"] for c in res.json_events() if c.get("usage")]
        self.assertEqual(usage[-1]["completion_tokens"], 5)

    def test_anthropic_messages_stream(self):
        # the inbound Anthropic shape over an Azure stream
        body = {"model": "azure-chat", "max_tokens": 20, "stream": True,
                "messages": [{"role": "user", "content": "hello there"}]}
        res = H.sse_request(self.port, body, path="/v1/messages", headers=CLIENT)
        self.assertEqual(res.status, 200)
        start = [e for e in res.events if e.event == "message_start"]
        self.assertEqual(len(start), 1, res.events)
        self.assertTrue(start[0].json()["message"]["id"], start[0].data)
        text = "".join(e.json()["delta"].get("text", "") for e in res.events
                       if e.event == "content_block_delta")
        self.assertEqual(text, "c0 c1 c2 c3 c4 ")

    def test_completions(self):
        r = H.post_json(self.port, "/v1/completions",
                        {"model": "azure-chat", "prompt": "once upon", "max_tokens": 5},
                        headers=CLIENT)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["text"], "c0 c1 c2 c3 c4")
        self.assertEqual(self.mock.last()["path"], "/openai/deployments/gpt4o-dep/completions")

    def test_embeddings(self):
        r = H.post_json(self.port, "/v1/embeddings", {"model": "azure-embed", "input": ["a b", "c"]},
                        headers=CLIENT)
        self.assertEqual(r.status, 200, r.body)
        o = r.json()
        self.assertEqual(len(o["data"]), 2)
        self.assertEqual(len(o["data"][0]["embedding"]), 8)
        last = self.mock.last()
        self.assertEqual(last["path"], "/openai/deployments/embed-dep/embeddings")
        self.assertEqual(last["query"], "api-version=2024-10-21")

    def assert_openai_error(self, r, status, type_, code, message):
        self.assertEqual(r.status, status, r.body)
        e = r.json()["error"]
        self.assertEqual(sorted(e), ["code", "message", "param", "type"])
        self.assertEqual(e["type"], type_)
        self.assertEqual(e["code"], code)
        self.assertIsNone(e["param"])
        self.assertIn(message, e["message"])

    def test_wrong_key_401(self):
        self.assert_openai_error(self.chat("azure-bad"), 401, "authentication_error",
                                 "invalid_api_key", "Access denied due to invalid subscription key")
        self.assertEqual(self.mock.last()["headers"]["api-key"], "wrong-key")

    def test_wrong_key_401_stream(self):
        res = H.sse_request(self.port, dict(CHAT, model="azure-bad", stream=True), headers=CLIENT)
        self.assertEqual(res.status, 401)
        e = H.json.loads(res.body)["error"]
        self.assertEqual((e["type"], e["code"]), ("authentication_error", "invalid_api_key"))

    def test_missing_deployment_404(self):
        self.assert_openai_error(self.chat("azure-missing"), 404, "invalid_request_error",
                                 "DeploymentNotFound", "deployment for this resource does not exist")

    def test_scripted_429(self):
        r = self.chat("azure-chat", mock={"status": 429, "retry_after": "0"})
        self.assertEqual(r.status, 429, r.body)
        self.assertEqual(r.json()["error"]["code"], "rate_limit_exceeded")


class AzureProbeTest(H.unittest.TestCase):
    def test_health_probe_is_models_list(self):
        def cfg(mock):
            c = azure_config(mock, server={"health_interval": "200ms"})
            c["providers"] = c["providers"][:1]
            del c["providers"][0]["health_check"]
            c["models"] = c["models"][:1]
            return c
        with H.gateway(cfg, env=ENV) as (gw, mock):
            H.wait_until(lambda: mock.stats()["by_path"].get("/openai/models", 0) >= 2, 15,
                         what="two azure probes")
            last = mock.last()
            self.assertEqual(last["query"], "api-version=2024-10-21")
            self.assertEqual(last["headers"]["api-key"], KEY)
            self.assertRegex(gw.metrics(), r'skuld_deployment_up\{model="azure-chat",provider="az"\} 1')


class AzureConfigTest(H.unittest.TestCase):
    def check(self, provider):
        path = H.write_temp("c.yaml", {"providers": [provider],
                                       "models": [{"name": "m", "provider": "a"}]})
        return H.run_skuld(["check", "-c", path], env=ENV)

    def test_bad_configs(self):
        ok = {"name": "a", "type": "azure", "base_url": "https://r.openai.azure.com",
              "api_key": "env:SKULD_T_AZ_KEY"}
        rc, out, err = self.check(ok)
        self.assertEqual(rc, 0, out + err)
        for change, msg in (({"api_key": None}, "needs api_key"),
                            ({"api_version": "v1"}, "not an Azure OpenAI API version"),
                            ({"base_url": "https://r.openai.azure.com/openai"}, "without /openai"),
                            ({"base_url": "r.openai.azure.com"}, "must start with http"),
                            ({"auth": "managed"}, "auth must be api-key or entra")):
            p = dict(ok, **change)
            p = {k: v for k, v in p.items() if v is not None}
            rc, out, err = self.check(p)
            self.assertEqual(rc, 1, (change, out, err))
            self.assertIn(msg, out + err)
            self.assertNotIn(KEY, out + err)


if __name__ == "__main__":
    H.main()
