"""
Proxy basics against the mock upstream: non-streamed chat, completions and
embeddings; response headers; model name mapping; provider key injection
(and the client's own Authorization never forwarded); unknown request fields
forwarded untouched; /v1/models; default_model; health endpoints.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROVIDER_KEY = "sk-provider-key-7f3a9c"
CLIENT_KEY = "sk-client-own-key-41d2"


class ProxyTest(H.GatewayTest):
    env = {"SKULD_IT_PROVIDER_KEY": PROVIDER_KEY}

    @classmethod
    def config(cls):
        return {
            "server": {"workers": 2, "default_model": "gpt-test"},
            "providers": [
                {"name": "mock", "type": "openai", "base_url": cls.mock.base_url,
                 "api_key": "env:SKULD_IT_PROVIDER_KEY"},
                {"name": "mock-nokey", "type": "openai", "base_url": cls.mock.base_url},
            ],
            "models": [
                {"name": "gpt-test", "provider": "mock", "model": "mock-model-1"},
                {"name": "embed-test", "provider": "mock", "model": "mock-embed-1"},
                {"name": "same-name", "provider": "mock"},
                {"name": "nokey-model", "provider": "mock-nokey", "model": "mock-model-2"},
            ],
        }

    def test_chat_non_stream(self):
        r = H.chat(self.port, "hello there world")
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.headers["content-type"].startswith("application/json"))
        body = r.json()
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["choices"][0]["message"]["role"], "assistant")
        self.assertEqual(body["choices"][0]["message"]["content"], "c0 c1 c2 c3 c4")
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        self.assertEqual(body["usage"]["prompt_tokens"], 3)
        self.assertEqual(body["usage"]["completion_tokens"], 5)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt-test")
        self.assertEqual(r.headers.get("x-skuld-provider"), "mock")
        last = self.mock.last()
        self.assertEqual(last["method"], "POST")
        self.assertEqual(last["path"], "/v1/chat/completions")
        self.assertEqual(last["body"]["messages"], [{"role": "user", "content": "hello there world"}])

    def test_scripted_content_passes_through(self):
        r = H.chat(self.port, "x", mock={"content": "Grüße, 世界 \u2713 \"quoted\"\n", "chunks": 3})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["message"]["content"],
                         "Grüße, 世界 \u2713 \"quoted\"\n")

    def test_request_id_generated(self):
        a = H.chat(self.port)
        b = H.chat(self.port)
        ida, idb = a.headers.get("x-request-id"), b.headers.get("x-request-id")
        self.assertTrue(ida and idb, a.headers)
        self.assertNotEqual(ida, idb)
        self.assertRegex(ida, r"^[A-Za-z0-9._:-]{8,128}$")
        # error answers carry one too
        e = H.request(self.port, "GET", "/nope")
        self.assertTrue(e.headers.get("x-request-id"))

    def test_request_id_echoed(self):
        rid = "client-req_42.a:b"
        r = H.chat(self.port, headers={"X-Request-Id": rid})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("x-request-id"), rid)
        # also on errors and on other endpoints
        r = H.request(self.port, "GET", "/v1/models", headers={"x-request-id": "models-1"})
        self.assertEqual(r.headers.get("x-request-id"), "models-1")
        r = H.post_json(self.port, "/v1/chat/completions", {"model": "nope", "messages": []},
                        headers={"x-request-id": "err-1"})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.headers.get("x-request-id"), "err-1")

    def test_request_id_length_limit(self):
        ok = "r" * 128
        r = H.chat(self.port, headers={"x-request-id": ok})
        self.assertEqual(r.headers.get("x-request-id"), ok)
        r = H.chat(self.port, headers={"x-request-id": "r" * 129})
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.headers.get("x-request-id"), "r" * 129)
        self.assertTrue(r.headers.get("x-request-id"))

    def test_request_id_unsafe_not_echoed(self):
        bad = "<script>alert(1)</script>"
        r = H.chat(self.port, headers={"x-request-id": bad})
        self.assertEqual(r.status, 200)
        rid = r.headers.get("x-request-id")
        self.assertTrue(rid)
        self.assertNotEqual(rid, bad)
        self.assertRegex(rid, r"^[A-Za-z0-9._:-]+$")

    def test_model_spliced_into_raw_bytes(self):
        # The common case skips the parse-and-dump: the upstream gets the
        # client's bytes with only the model value replaced. Whitespace and key
        # order stay as sent; a string that merely mentions "model" is untouched.
        raw = ('{ "messages" : [{"role":"user","content":"say \\"model\\": \\"gpt-test\\""}],'
               '\n  "model"  :  "gpt-test" ,"temperature":0.5}')
        r = H.request(self.port, "POST", "/v1/chat/completions", raw.encode(),
                      {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.text())
        last = self.mock.last()
        self.assertEqual(last["body"]["model"], "mock-model-1")
        self.assertEqual(last["body"]["messages"][0]["content"], 'say "model": "gpt-test"')
        self.assertEqual(last["body"]["temperature"], 0.5)
        self.assertEqual(list(last["body"].keys()), ["messages", "model", "temperature"])
        # spliced, not re-serialised: every byte the client sent is there, whitespace included
        want = len(raw.encode()) - len("gpt-test") + len("mock-model-1")
        self.assertEqual(int(last["headers"]["content-length"]), want)

    def test_nested_model_key_takes_the_general_path(self):
        # A second "model" key (here inside a JSON schema) must not be touched:
        # the request goes through the parse-and-dump path instead.
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                    "type": "object", "properties": {"model": {"type": "string"}}}}}}
        r = H.post_json(self.port, "/v1/chat/completions", body)
        self.assertEqual(r.status, 200, r.text())
        got = self.mock.last()["body"]
        self.assertEqual(got["model"], "mock-model-1")
        self.assertEqual(got["response_format"], body["response_format"])

    def test_stream_without_usage_still_gets_include_usage(self):
        res = H.sse_request(self.port, H.stream_body(model="gpt-test", mock={"chunks": 2}))
        self.assertTrue(res.done)
        so = self.mock.last()["body"].get("stream_options")
        self.assertEqual(so, {"include_usage": True})
        self.assertEqual(self.mock.last()["body"]["model"], "mock-model-1")

    def test_model_mapping(self):
        r = H.chat(self.port, model="gpt-test")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.mock.last()["body"]["model"], "mock-model-1")
        r = H.chat(self.port, model="nokey-model")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("x-skuld-model"), "nokey-model")
        self.assertEqual(r.headers.get("x-skuld-provider"), "mock-nokey")
        self.assertEqual(self.mock.last()["body"]["model"], "mock-model-2")
        # without "model:" the upstream id is the public name
        r = H.chat(self.port, model="same-name")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.mock.last()["body"]["model"], "same-name")

    def test_default_model(self):
        r = H.chat(self.port, model=None)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt-test")
        self.assertEqual(self.mock.last()["body"]["model"], "mock-model-1")
        r = H.post_json(self.port, "/v1/chat/completions",
                        {"model": None, "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.last()["body"]["model"], "mock-model-1")

    def test_provider_key_injected_client_auth_dropped(self):
        r = H.chat(self.port, headers={"Authorization": "Bearer " + CLIENT_KEY,
                                       "X-Api-Key": "other-" + CLIENT_KEY})
        self.assertEqual(r.status, 200)
        last = self.mock.last()
        self.assertEqual(last["headers"].get("authorization"), "Bearer " + PROVIDER_KEY)
        dump = H.json.dumps(last)
        self.assertNotIn(CLIENT_KEY, dump)
        self.assertNotIn(PROVIDER_KEY, r.text())
        self.assertNotIn(PROVIDER_KEY, str(r.header_list))

    def test_no_provider_key_no_authorization(self):
        r = H.chat(self.port, model="nokey-model",
                   headers={"Authorization": "Bearer " + CLIENT_KEY})
        self.assertEqual(r.status, 200)
        last = self.mock.last()
        self.assertNotIn("authorization", last["headers"])
        self.assertNotIn(CLIENT_KEY, H.json.dumps(last))

    def test_unknown_fields_forwarded_untouched(self):
        body = {
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "Be terse. Ünïcödé ✓ 日本語 \u0001 \"q\" \\ /"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is in this image?"},
                    {"type": "image_url",
                     "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==",
                                   "detail": "low"}},
                ]},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "lookup", "description": "find things",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                               "required": ["q"], "additionalProperties": False}}}],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "strict": True,
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
            "temperature": 0.3,
            "top_p": 1,
            "max_tokens": 128,
            "seed": 12345678901234,
            "logit_bias": {"50256": -100},
            "stop": ["\n\n", "END"],
            "n": 1,
            "user": "user-1234",
            "metadata": {"k": "v"},
            "x_vendor_extension": {"nested": [1, 2.5, None, True, {"deep": []}], "empty": {}},
        }
        r = H.post_json(self.port, "/v1/chat/completions", body)
        self.assertEqual(r.status, 200, r.body)
        got = self.mock.last()["body"]
        want = dict(body)
        want["model"] = "mock-model-1"
        self.assertEqual(got, want)
        self.assertNotIn("stream_options", got)  # only added to streams

    def test_tool_call_answer_relayed(self):
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "call it"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "mock": {"tool_call": True}}
        r = H.post_json(self.port, "/v1/chat/completions", body)
        self.assertEqual(r.status, 200, r.body)
        ch = r.json()["choices"][0]
        self.assertEqual(ch["finish_reason"], "tool_calls")
        self.assertEqual(ch["message"]["tool_calls"][0]["function"]["name"], "f")

    def test_completions(self):
        r = H.post_json(self.port, "/v1/completions",
                        {"model": "gpt-test", "prompt": "say something nice", "max_tokens": 5})
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["object"], "text_completion")
        self.assertEqual(body["choices"][0]["text"], "c0 c1 c2 c3 c4")
        self.assertEqual(body["usage"]["prompt_tokens"], 3)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt-test")
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/completions")
        self.assertEqual(last["body"]["model"], "mock-model-1")
        self.assertEqual(last["body"]["max_tokens"], 5)

    def test_embeddings(self):
        r = H.post_json(self.port, "/v1/embeddings",
                        {"model": "embed-test", "input": ["one two", "three"],
                         "encoding_format": "float", "dimensions": 8})
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["object"], "list")
        self.assertEqual(len(body["data"]), 2)
        for i, d in enumerate(body["data"]):
            self.assertEqual(d["index"], i)
            self.assertEqual(len(d["embedding"]), 8)
        self.assertEqual(body["usage"]["prompt_tokens"], 3)
        self.assertEqual(r.headers.get("x-skuld-model"), "embed-test")
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/embeddings")
        self.assertEqual(last["body"],
                         {"model": "mock-embed-1", "input": ["one two", "three"],
                          "encoding_format": "float", "dimensions": 8})
        # a single string input too
        r = H.post_json(self.port, "/v1/embeddings", {"model": "embed-test", "input": "solo"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(r.json()["data"]), 1)

    def test_embeddings_stream_flag_not_streamed(self):
        # embeddings have no stream mode: the answer is a plain JSON body
        r = H.post_json(self.port, "/v1/embeddings",
                        {"model": "embed-test", "input": "x", "stream": True})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.headers["content-type"].startswith("application/json"))
        self.assertEqual(len(r.json()["data"]), 1)

    def test_models_list(self):
        r = H.request(self.port, "GET", "/v1/models")
        self.assertEqual(r.status, 200)
        body = r.json()
        self.assertEqual(body["object"], "list")
        ids = [m["id"] for m in body["data"]]
        self.assertEqual(sorted(ids), sorted(["gpt-test", "embed-test", "same-name", "nokey-model"]))
        for m in body["data"]:
            self.assertEqual(m["object"], "model")
        # upstream ids are not exposed
        self.assertNotIn("mock-model-1", r.text())

    def test_health_and_ready(self):
        r = H.request(self.port, "GET", "/healthz")
        self.assertEqual(r.status, 200)
        r = H.request(self.port, "GET", "/readyz")
        self.assertEqual(r.status, 200)

    def test_upstream_sees_json_content_type(self):
        H.chat(self.port)
        last = self.mock.last()
        self.assertIn("application/json", last["headers"].get("content-type", ""))
        # the mock scripting headers are the client's own business; hop-by-hop
        # and client identity headers must not leak upstream
        r = H.chat(self.port, headers={"Cookie": "session=abc", "X-Forwarded-For": "1.2.3.4"})
        self.assertEqual(r.status, 200)
        self.assertNotIn("cookie", self.mock.last()["headers"])


if __name__ == "__main__":
    H.main()
