"""
API surface of issue 17: GET /v1/models/{id} (OpenAI's model object, 404 in
OpenAI's shape, percent-encoded ids, the same visibility as GET /v1/models
for keys restricted to some models) and POST /v1/messages/count_tokens on
every kind of deployment: the upstream's counting endpoint (Anthropic- and
Gemini-shaped mocks), the local tokenizer (llama.cpp demo model, the echo
model), the gateway's estimate (OpenAI-compatible, Ollama) flagged by
x-skuld-token-count; errors in Anthropic's shape with the right status.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

MASTER = "mk-surface-0123456789"
ADMIN = {"Authorization": "Bearer " + MASTER}
_DIR = H.mkdtemp("skuld-surface-")
DEMO = os.path.join(_DIR, "demo.gguf")

TOOL = {"name": "get_weather", "description": "the weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def setUpModule():
    rc, out, err = H.run_skuld(["demo-model", "-o", DEMO])
    assert rc == 0, err


def count_body(model, **extra):
    b = {"model": model, "system": "be brief",
         "messages": [{"role": "user", "content": "hello there world"},
                      {"role": "assistant", "content": "hi"},
                      {"role": "user", "content": [{"type": "text", "text": "how are you"}]}]}
    b.update(extra)
    return b


def estimate(texts, n_msgs, tools_json=None):
    """The gateway's estimate (README "Token counts"): bytes of message text / 4
    + 4 per message, + bytes of the OpenAI tools' compact JSON / 4."""
    n = sum(len(t.encode()) for t in texts) // 4 + 4 * n_msgs
    if tools_json is not None:
        n += len(tools_json.encode()) // 4
    return n


def anthropic_error(tc, r, status, etype):
    tc.assertEqual(r.status, status, r.body)
    o = r.json()
    tc.assertEqual(o["type"], "error", o)
    tc.assertEqual(o["error"]["type"], etype, o)
    tc.assertTrue(o["error"]["message"])
    return o["error"]["message"]


class Surface(H.GatewayTest):
    skuld_kw = {"ready_timeout": 60}
    env = {"SKULD_MK": MASTER}

    @classmethod
    def config(cls):
        base = cls.mock.base_url  # http://127.0.0.1:PORT/v1
        root = base[:-3]
        return {
            "server": {"workers": 2, "master_key": "env:SKULD_MK"},
            "store": {"url": "sqlite://" + os.path.join(_DIR, "skuld.db")},
            "providers": [
                {"name": "mock", "type": "openai", "base_url": base},
                {"name": "anth", "type": "anthropic", "base_url": base},
                {"name": "gem", "type": "gemini", "base_url": root + "/v1beta"},
                {"name": "oll", "type": "ollama", "base_url": root},
                {"name": "builtin", "type": "echo"},
                {"name": "local", "type": "llamacpp"},
            ],
            "models": [
                {"name": "gpt", "provider": "mock", "model": "up-gpt"},
                {"name": "org/slashed", "provider": "mock", "model": "up-slashed"},
                {"name": "claude", "provider": "anth", "model": "up-claude"},
                {"name": "gem", "provider": "gem", "model": "up-gem"},
                {"name": "oll", "provider": "oll", "model": "up-oll"},
                {"name": "echo", "provider": "builtin"},
                {"name": "tiny", "provider": "local", "path": DEMO},
                {"name": "grp", "id": "grp-a", "provider": "mock", "model": "a"},
                {"name": "grp", "id": "grp-b", "provider": "anth", "model": "b"},
            ],
            "routes": [{"name": "auto", "candidates": ["gpt", "claude"]}],
        }

    def setUp(self):
        self.mock.set_config({})

    def count(self, body, headers=None):
        return H.post_json(self.port, "/v1/messages/count_tokens", body, headers)

    def key(self, **opts):
        r = H.request(self.port, "POST", "/admin/keys", opts, ADMIN)
        self.assertEqual(r.status, 201, r.body)
        return {"Authorization": "Bearer " + r.json()["key"]}

    # ------------------------------------------------------------ GET /v1/models/{id}

    def test_model_object(self):
        for mid, owner in (("gpt", "mock"), ("claude", "anth"), ("tiny", "local"),
                           ("auto", "skuld-route"), ("grp", "mock")):
            r = H.request(self.port, "GET", "/v1/models/" + mid)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json(), {"id": mid, "object": "model", "created": 0,
                                        "owned_by": owner})
        # every id the list shows retrieves to the same object
        listed = H.request(self.port, "GET", "/v1/models").json()["data"]
        for m in listed:
            one = H.request(self.port, "GET", "/v1/models/" + m["id"].replace("/", "%2F"))
            self.assertEqual(one.json(), m)

    def test_model_percent_encoded(self):
        r = H.request(self.port, "GET", "/v1/models/org%2Fslashed")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["id"], "org/slashed")
        self.assertEqual(H.request(self.port, "GET", "/v1/models/org/slashed").json()["id"],
                         "org/slashed")
        r = H.request(self.port, "HEAD", "/v1/models/gpt")
        self.assertEqual(r.status, 200)

    def test_model_errors(self):
        r = H.request(self.port, "GET", "/v1/models/nope")
        e = H.check_error_shape(self, r, 404, "model_not_found")
        self.assertEqual((e["type"], e["param"]), ("invalid_request_error", "model"))
        self.assertIn("nope", e["message"])
        # a deployment id is not a listed model name
        H.check_error_shape(self, H.request(self.port, "GET", "/v1/models/grp-a"), 404,
                            "model_not_found")
        for bad in ("/v1/models/a%zz", "/v1/models/a%2", "/v1/models/a%00b",
                    "/v1/models/" + "x" * 1100):
            e = H.check_error_shape(self, H.request(self.port, "GET", bad), 400, "invalid_value")
            self.assertEqual(e["param"], "model")
        for method in ("POST", "DELETE", "PUT"):
            H.check_error_shape(self, H.request(self.port, method, "/v1/models/gpt", b"{}"), 405,
                                "method_not_allowed")

    def test_model_visibility_of_restricted_keys(self):
        h = self.key(name="narrow", models=["claude", "auto"])
        ids = [m["id"] for m in H.request(self.port, "GET", "/v1/models", None, h).json()["data"]]
        self.assertEqual(ids, ["claude", "auto"])
        self.assertEqual(H.request(self.port, "GET", "/v1/models/claude", None, h).status, 200)
        self.assertEqual(H.request(self.port, "GET", "/v1/models/auto", None, h).status, 200)
        for hidden in ("gpt", "tiny", "grp"):
            H.check_error_shape(self, H.request(self.port, "GET", "/v1/models/" + hidden, None, h),
                                404, "model_not_found")
        # an unrestricted key and the master key see everything
        wide = self.key(name="wide")
        for hh in (wide, ADMIN):
            ids = [m["id"] for m in
                   H.request(self.port, "GET", "/v1/models", None, hh).json()["data"]]
            self.assertEqual(ids, ["gpt", "org/slashed", "claude", "gem", "oll", "echo", "tiny",
                                   "grp", "auto"])
            self.assertEqual(H.request(self.port, "GET", "/v1/models/tiny", None, hh).status,
                             200)
        # a count on a model the key may not use: 403 in Anthropic's shape
        anthropic_error(self, self.count(count_body("gpt"), h), 403, "permission_error")
        self.assertEqual(self.count(count_body("claude"), h).status, 200)

    # ------------------------------------------------------------ count_tokens

    def test_count_anthropic_upstream(self):
        r = self.count(count_body("claude", tools=[TOOL], tool_choice={"type": "auto"}))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-token-count"), "provider")
        self.assertEqual(r.headers.get("x-skuld-model"), "claude")
        # mock: words of system + messages (2 + 3 + 1 + 3) + 10 per tool
        self.assertEqual(r.json(), {"input_tokens": 19})
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/messages/count_tokens")
        self.assertEqual(last["headers"].get("anthropic-version"), "2023-06-01")
        body = last["body"]
        self.assertEqual(sorted(body), ["messages", "model", "system", "tool_choice", "tools"])
        self.assertEqual(body["model"], "up-claude")
        self.assertEqual(body["tools"][0]["name"], "get_weather")
        self.assertEqual(body["tools"][0]["input_schema"], TOOL["input_schema"])
        self.assertEqual(len(body["messages"]), 3)

    def test_count_anthropic_upstream_errors(self):
        self.mock.set_config({"status": 529})
        msg = anthropic_error(self, self.count(count_body("claude")), 503, "overloaded_error")
        self.assertIn("mock error 529", msg)
        self.mock.set_config({"status": 429, "retry_after": 7})
        r = self.count(count_body("claude"))
        anthropic_error(self, r, 429, "rate_limit_error")
        self.assertEqual(r.headers.get("retry-after"), "7")

    def test_count_gemini_upstream(self):
        r = self.count(count_body("gem", tools=[TOOL]))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-token-count"), "provider")
        self.assertEqual(r.json(), {"input_tokens": 19})
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1beta/models/up-gem:countTokens")
        gr = last["body"]["generateContentRequest"]
        self.assertEqual(gr["model"], "models/up-gem")
        self.assertEqual(gr["systemInstruction"], {"parts": [{"text": "be brief"}]})
        self.assertEqual([c["role"] for c in gr["contents"]], ["user", "model", "user"])
        self.assertNotIn("generationConfig", gr)

    def test_count_estimate(self):
        texts = ["be brief", "hello there world", "hi", "how are you"]
        for model in ("gpt", "oll"):
            before = self.mock.stats()["requests"]
            r = self.count(count_body(model))
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers.get("x-skuld-token-count"), "estimate")
            self.assertEqual(r.headers.get("x-skuld-attempts"), "0")
            self.assertEqual(r.json(), {"input_tokens": estimate(texts, 4)})
            self.assertEqual(self.mock.stats()["requests"], before)  # nothing asked upstream
        # tools count as their OpenAI JSON
        tools = [{"type": "function", "function": {"name": TOOL["name"],
                                                   "description": TOOL["description"],
                                                   "parameters": TOOL["input_schema"]}}]
        r = self.count(count_body("gpt", tools=[TOOL]))
        self.assertEqual(r.json(), {"input_tokens": estimate(
            texts, 4, json.dumps(tools, separators=(",", ":")))})

    def test_count_local_exact(self):
        # the local tokenizer over the chat template: what a chat reports as prompt_tokens
        chat = H.post_json(self.port, "/v1/chat/completions", {
            "model": "tiny", "max_tokens": 1,
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": "hello there world"},
                         {"role": "assistant", "content": "hi"},
                         {"role": "user", "content": "how are you"}]}, timeout=60)
        self.assertEqual(chat.status, 200, chat.body)
        r = self.count(count_body("tiny"))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-token-count"), "exact")
        self.assertEqual(r.json()["input_tokens"], chat.json()["usage"]["prompt_tokens"])
        with_tools = self.count(count_body("tiny", tools=[TOOL])).json()["input_tokens"]
        self.assertGreater(with_tools, r.json()["input_tokens"])
        # echo: words, as its usage counts them (9), + the words of the tools' JSON
        # ('[{"type":"function",..."description":"the' and 'weather",...}]': 2)
        r = self.count(count_body("echo"))
        self.assertEqual((r.headers.get("x-skuld-token-count"), r.json()),
                         ("exact", {"input_tokens": 9}))
        self.assertEqual(self.count(count_body("echo", tools=[TOOL])).json(),
                         {"input_tokens": 11})

    def test_count_route_and_group(self):
        r = self.count(count_body("auto"))
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(r.headers.get("x-skuld-token-count"), ("estimate", "provider"))
        r = self.count(count_body("grp-b"))
        self.assertEqual((r.headers.get("x-skuld-model"), r.headers.get("x-skuld-token-count")),
                         ("grp-b", "provider"))

    def test_count_bad_input(self):
        base = count_body("claude")
        cases = [
            (dict(base, max_tokens=10), "max_tokens"),
            (dict(base, stream=True), "stream"),
            (dict(base, thinking={"type": "enabled", "budget_tokens": 1024}), "thinking"),
            (dict(base, tools=[{"type": "web_search_20250305", "name": "web_search"}]),
             "tools.0"),
            (dict(base, tools={"name": "x"}), "tools"),
            (dict(base, system=5), "system"),
            ({"model": "claude"}, "messages"),
            ({"model": "claude", "messages": []}, "messages"),
            ({"model": "claude", "messages": [{"role": "system", "content": "x"}]},
             "messages.0.role"),
            ({"model": "claude", "messages": [{"role": "user",
                                               "content": [{"type": "document"}]}]},
             "messages.0.content.0"),
            ({"model": 5, "messages": base["messages"]}, "model"),
        ]
        for body, needle in cases:
            msg = anthropic_error(self, self.count(body), 400, "invalid_request_error")
            self.assertIn(needle, msg, body)
        anthropic_error(self, self.count("{not json"), 400, "invalid_request_error")
        anthropic_error(self, self.count("[1]"), 400, "invalid_request_error")
        anthropic_error(self, self.count(count_body("nope")), 404, "not_found_error")
        r = H.request(self.port, "GET", "/v1/messages/count_tokens")
        anthropic_error(self, r, 405, "invalid_request_error")

    def test_count_not_cached_not_billed(self):
        r = self.count(count_body("claude"))
        self.assertEqual(r.status, 200)
        self.assertNotIn("x-skuld-cost-usd", r.headers)
        samples, _ = H.metrics_parse(H.request(self.port, "GET", "/metrics").text())
        self.assertEqual(H.metric_sum(samples, "skuld_tokens_total", model="claude"), 0)
        self.assertGreater(H.metric_sum(samples, "skuld_requests_total", model="claude"), 0)


if __name__ == "__main__":
    H.main()
