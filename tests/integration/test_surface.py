"""
API surface of issue 17: GET /v1/models/{id} (OpenAI's model object, 404 in
OpenAI's shape, percent-encoded ids, the same visibility as GET /v1/models
for keys restricted to some models); POST /v1/messages/count_tokens on
every kind of deployment: the upstream's counting endpoint (Anthropic- and
Gemini-shaped mocks), the local tokenizer (llama.cpp demo model, the echo
model), the gateway's estimate (OpenAI-compatible, Ollama) flagged by
x-skuld-token-count; errors in Anthropic's shape with the right status;
embeddings with encoding_format float/base64 and dimensions on every path
(OpenAI-compatible passed through, echo, llama.cpp, Gemini
batchEmbedContents, Ollama /api/embed), and their errors.
"""
import base64
import json
import math
import os
import struct
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
            (dict(base, system=[{"type": "image", "source": {}}]), "system"),
            (dict(base, tool_choice={"type": "sometimes"}), "tool_choice"),
            (dict(base, tool_choice={"type": "tool"}), "tool_choice"),
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


    # ------------------------------------------------------------ embeddings

    def embed(self, model, **extra):
        body = {"model": model, "input": ["hello world", "bye"]}
        body.update(extra)
        return H.post_json(self.port, "/v1/embeddings", body, timeout=60)

    def vectors(self, r):
        self.assertEqual(r.status, 200, r.body)
        b = r.json()
        self.assertEqual(b["object"], "list")
        self.assertEqual([d["index"] for d in b["data"]], list(range(len(b["data"]))))
        out = []
        for d in b["data"]:
            self.assertEqual(d["object"], "embedding")
            e = d["embedding"]
            if isinstance(e, str):  # little-endian float32
                raw = base64.b64decode(e)
                e = list(struct.unpack("<%df" % (len(raw) // 4), raw))
            out.append(e)
        return out

    def test_embeddings_encodings_and_dimensions(self):
        f32 = lambda xs: [struct.unpack("<f", struct.pack("<f", x))[0] for x in xs]
        native = {"gpt": 8, "echo": 8, "tiny": 64, "gem": 8, "oll": 8}
        for model, n in native.items():
            flt = self.vectors(self.embed(model, encoding_format="float"))
            dflt = self.vectors(self.embed(model))
            b64 = self.vectors(self.embed(model, encoding_format="base64"))
            self.assertEqual([len(v) for v in flt], [n, n], model)
            self.assertEqual(dflt, flt, model)
            for a, b in zip(b64, flt):
                if model == "gpt":  # the mock prints 6 digits, its base64 is exact
                    for x, y in zip(a, b):
                        self.assertAlmostEqual(x, y, places=5)
                else:  # ours: 9 digits, the same float32 exactly
                    self.assertEqual(a, f32(b), model)
            cut = self.vectors(self.embed(model, dimensions=4))
            cut64 = self.vectors(self.embed(model, dimensions=4, encoding_format="base64"))
            for v, full, v64 in zip(cut, flt, cut64):
                self.assertEqual(len(v), 4, model)
                self.assertAlmostEqual(math.sqrt(sum(x * x for x in v)), 1.0, places=5)
                norm = math.sqrt(sum(x * x for x in full[:4]))
                for x, y in zip(v, full[:4]):  # the first 4, renormalised
                    self.assertAlmostEqual(x, y / norm, places=5, msg=model)
                for x, y in zip(v64, v):
                    self.assertAlmostEqual(x, y, places=5)

    def test_embeddings_openai_pass_through(self):
        r = self.embed("gpt", dimensions=3, encoding_format="base64", user="u-1")
        self.assertEqual([len(v) for v in self.vectors(r)], [3, 3])
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/embeddings")
        self.assertEqual((last["body"]["dimensions"], last["body"]["encoding_format"],
                          last["body"]["user"], last["body"]["model"]), (3, "base64", "u-1", "up-gpt"))
        # the upstream's own refusal comes back as it is
        e = H.check_error_shape(self, self.embed("gpt", dimensions=99), 400)
        self.assertIn("dimensions", e["message"])

    def test_embeddings_gemini(self):
        r = self.embed("gem", dimensions=5)
        self.assertEqual([len(v) for v in self.vectors(r)], [5, 5])
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1beta/models/up-gem:batchEmbedContents")
        self.assertEqual(last["body"], {"requests": [
            {"model": "models/up-gem", "content": {"parts": [{"text": "hello world"}]},
             "outputDimensionality": 5},
            {"model": "models/up-gem", "content": {"parts": [{"text": "bye"}]},
             "outputDimensionality": 5}]})
        b = r.json()
        self.assertEqual(b["model"], "up-gem")
        # Gemini reports no count: the estimate, bytes / 4 + 1 per input = 14 / 4 + 2
        self.assertEqual(b["usage"], {"prompt_tokens": 5, "total_tokens": 5})
        self.assertEqual(r.headers.get("x-skuld-model"), "gem")
        # a single string input
        one = self.vectors(H.post_json(self.port, "/v1/embeddings",
                                       {"model": "gem", "input": "bye"}))
        self.assertEqual(one[0], self.vectors(self.embed("gem"))[1])
        # more dimensions than the model has: 400 naming dimensions
        e = H.check_error_shape(self, self.embed("gem", dimensions=9), 400, "invalid_value")
        self.assertEqual(e["param"], "dimensions")
        # the upstream's errors keep their status, in OpenAI's shape
        self.mock.set_config({"status": 429, "retry_after": 3})
        r = self.embed("gem")
        H.check_error_shape(self, r, 429)
        self.assertEqual(r.headers.get("retry-after"), "3")

    def test_embeddings_ollama(self):
        r = self.embed("oll", dimensions=2)
        self.assertEqual([len(v) for v in self.vectors(r)], [2, 2])
        last = self.mock.last()
        self.assertEqual(last["path"], "/api/embed")
        self.assertEqual(last["body"], {"model": "up-oll", "input": ["hello world", "bye"],
                                        "dimensions": 2})
        self.assertEqual(r.json()["usage"], {"prompt_tokens": 3, "total_tokens": 3})
        self.mock.set_config({"status": 500})
        H.check_error_shape(self, self.embed("oll"), 500)

    def test_embeddings_local_usage_and_limits(self):
        b = self.embed("tiny", dimensions=64).json()
        each = [self.embed("tiny", input=t).json()["usage"]["prompt_tokens"]
                for t in ("hello world", "bye")]
        self.assertEqual(each[0], 3)  # <s> ▁hello ▁world
        self.assertEqual(b["usage"]["prompt_tokens"], sum(each))
        for model, n in (("tiny", 64), ("echo", 8)):
            e = H.check_error_shape(self, self.embed(model, dimensions=n + 1), 400,
                                    "invalid_value")
            self.assertEqual(e["param"], "dimensions")
            self.assertIn(str(n), e["message"])

    def test_embeddings_bad_input(self):
        for model in ("echo", "tiny", "gem", "oll"):
            before = self.mock.stats()["requests"]
            cases = [
                ({"encoding_format": "hex"}, "invalid_value", "encoding_format"),
                ({"encoding_format": 5}, "invalid_value", "encoding_format"),
                ({"dimensions": "4"}, "invalid_type", "dimensions"),
                ({"dimensions": 0}, "invalid_value", "dimensions"),
                ({"dimensions": 1.5}, "invalid_type", "dimensions"),
                ({"truncate": True}, "unsupported_parameter", "truncate"),
                ({"input": [[1, 2, 3]]}, "invalid_type", "input"),
                ({"input": [1, 2]}, "invalid_type", "input"),
                ({"input": []}, "invalid_value", "input"),
                ({"input": ["x"] * 2049}, "invalid_value", "input"),
                ({"user": 5}, "invalid_type", "user"),
            ]
            for extra, code, param in cases:
                e = H.check_error_shape(self, self.embed(model, **extra), 400, code)
                self.assertEqual(e["param"], param, (model, extra))
            self.assertEqual(self.mock.stats()["requests"], before, model)  # nothing sent
        # missing input: the gateway's own check, as for every endpoint
        r = H.post_json(self.port, "/v1/embeddings", {"model": "gem"})
        H.check_error_shape(self, r, 400, "missing_required_parameter")


if __name__ == "__main__":
    H.main()
