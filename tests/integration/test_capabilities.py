"""
Honest capabilities (README "Capabilities"; issue 17 item 4): a deployment's
default capabilities are its provider type's (openai everything; anthropic
chat, vision, tools; echo and llamacpp plain text), an explicit
`capabilities:` list replaces them, and a request that needs one the chosen
deployment lacks goes to one that has it or gets an error naming it, never a
200 with the field dropped: 400 model_capability_missing for a model named
directly, 422 no_eligible_deployment for a route without a capable candidate.
The same rule on the Anthropic /v1/messages front end, in its error shape.
n and best_of are validated, and n > 1 only reaches providers that ask the
upstream for several answers.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
MSG = [{"role": "user", "content": "hello"}]


class CapabilitiesTest(H.GatewayTest):
    mock_names = ("mock", "mock2")

    @classmethod
    def config(cls):
        dead = "http://127.0.0.1:%d/v1" % H.free_port()
        return {
            "server": {"workers": 1},
            "providers": [
                {"name": "up", "type": "openai", "base_url": cls.mock.base_url},
                {"name": "up2", "type": "openai", "base_url": cls.mock2.base_url},
                {"name": "dead", "type": "openai", "base_url": dead},
                {"name": "anth", "type": "anthropic", "base_url": cls.mock.base_url,
                 "api_key": "sk-ant-test"},
                {"name": "loc", "type": "echo"},
            ],
            "models": [
                {"name": "gpt", "provider": "up", "model": "up-gpt", "quality": 0.5},
                {"name": "gpt-text", "provider": "up2", "model": "up-text",
                 "capabilities": ["chat"], "quality": 0.95},
                {"name": "local", "provider": "loc", "quality": 0.9},
                {"name": "local-tools", "provider": "loc", "capabilities": ["chat", "tools"]},
                {"name": "claude", "provider": "anth", "model": "up-claude"},
                {"name": "mixed", "id": "mixed-local", "provider": "loc"},
                {"name": "mixed", "id": "mixed-gpt", "provider": "up", "model": "up-mixed"},
                {"name": "flaky", "provider": "dead", "model": "up-dead",
                 "fallbacks": ["local", "gpt"]},
                {"name": "flaky-local", "provider": "dead", "model": "up-dead",
                 "fallbacks": ["local"]},
            ],
            "routes": [
                {"name": "auto", "candidates": ["local", "gpt"]},
                {"name": "textual", "candidates": ["local", "gpt-text"]},
            ],
        }

    def setUp(self):
        self.mock.reset()
        self.mock2.reset()

    def chat(self, **body):
        body.setdefault("messages", MSG)
        return H.post_json(self.port, "/v1/chat/completions", body)

    def refused(self, r, cap, param, model):
        err = H.check_error_shape(self, r, 400, "model_capability_missing")
        self.assertIn("'%s'" % cap, err["message"])
        self.assertIn(model, err["message"])
        self.assertEqual(err["param"], param, err)
        self.assertEqual(err["type"], "invalid_request_error")
        return err

    # ---- a model named directly

    def test_tools_to_local_model_refused(self):
        for extra in ({"tools": TOOLS}, {"functions": [TOOLS[0]["function"]]},
                      {"tools": TOOLS, "stream": True}):
            r = self.chat(model="local", **extra)
            self.refused(r, "tools", "tools", "local")
        # an empty tools list asks for nothing
        r = self.chat(model="local", tools=[])
        self.assertEqual(r.status, 200, r.body)
        # an escaped key is parsed, not missed by the scan
        raw = '{"model":"local","messages":[{"role":"user","content":"x"}],"t\\u006fols":%s}' % (
            json.dumps(TOOLS))
        r = H.request(self.port, "POST", "/v1/chat/completions", raw.encode(),
                      {"Content-Type": "application/json"})
        self.refused(r, "tools", "tools", "local")

    def test_tools_to_openai_pass_through(self):
        r = self.chat(model="gpt", tools=TOOLS)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.last()["body"]["tools"], TOOLS)

    def test_json_response_format(self):
        for rf in ({"type": "json_object"},
                   {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}):
            r = self.chat(model="local", response_format=rf)
            self.refused(r, "json", "response_format", "local")
            r = self.chat(model="claude", response_format=rf)
            self.refused(r, "json", "response_format", "claude")
        r = self.chat(model="local", response_format={"type": "text"})
        self.assertEqual(r.status, 200, r.body)
        r = self.chat(model="gpt", response_format={"type": "json_object"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.last()["body"]["response_format"], {"type": "json_object"})

    def test_content_parts_need_their_capability(self):
        parts = (({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                  "vision"),
                 ({"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
                  "audio"),
                 ({"type": "file", "file": {"file_id": "file-1"}}, "files"))
        for part, cap in parts:
            msgs = [{"role": "user", "content": [{"type": "text", "text": "what is it"}, part]}]
            r = self.chat(model="local", messages=msgs)
            self.refused(r, cap, "messages", "local")
            r = self.chat(model="gpt-text", messages=msgs)
            self.refused(r, cap, "messages", "gpt-text")
            r = self.chat(model="gpt", messages=msgs)
            self.assertEqual(r.status, 200, r.body)
        # images to anthropic are translated (it has vision), audio is not
        msgs = [{"role": "user", "content": [parts[1][0]]}]
        self.refused(self.chat(model="claude", messages=msgs), "audio", "messages", "claude")

    def test_n_only_where_served(self):
        for model in ("local", "claude", "gpt-text"):
            r = self.chat(model=model, n=2)
            self.refused(r, "n", "n", model)
        r = H.post_json(self.port, "/v1/completions", {"model": "local", "prompt": "x",
                                                       "best_of": 3})
        self.refused(r, "n", "best_of", "local")  # the field that asked
        r = self.chat(model="gpt", n=3)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.last()["body"]["n"], 3)
        for model in ("local", "claude"):
            r = self.chat(model=model, n=1)
            self.assertEqual(r.status, 200, r.body)

    def test_n_validated(self):
        for v, code in ((0, "invalid_value"), (129, "invalid_value"), (-1, "invalid_value"),
                        ("2", "invalid_type"), (1.5, "invalid_type"), (True, "invalid_type")):
            for model in ("gpt", "local"):
                err = H.check_error_shape(self, self.chat(model=model, n=v), 400, code)
                self.assertEqual(err["param"], "n")
        err = H.check_error_shape(
            self, H.post_json(self.port, "/v1/completions",
                              {"model": "gpt", "prompt": "x", "best_of": 21}), 400,
            "invalid_value")
        self.assertEqual(err["param"], "best_of")
        r = self.chat(model="local", n=None)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.stats().get("requests", 0), 0)

    def test_explicit_capabilities_override_defaults(self):
        r = self.chat(model="local-tools", tools=TOOLS)
        self.assertEqual(r.status, 200, r.body)
        r = self.chat(model="gpt-text", tools=TOOLS)
        self.refused(r, "tools", "tools", "gpt-text")
        self.assertEqual(self.mock2.stats().get("requests", 0), 0)

    def test_model_group_serves_from_capable_deployment(self):
        for _ in range(4):  # round robin would alternate; the incapable one never gets it
            r = self.chat(model="mixed", tools=TOOLS)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers.get("x-skuld-model"), "mixed-gpt")
        seen = {self.chat(model="mixed").headers.get("x-skuld-model") for _ in range(4)}
        self.assertEqual(seen, {"mixed-gpt", "mixed-local"})

    def test_fallbacks_lacking_capability_skipped(self):
        r = self.chat(model="flaky", tools=TOOLS)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt")
        self.assertEqual(self.mock.last()["body"]["tools"], TOOLS)
        # the only fallback cannot: the upstream's failure, not a local answer without tools
        r = self.chat(model="flaky-local", tools=TOOLS)
        self.assertGreaterEqual(r.status, 500, r.body)
        self.assertNotEqual(r.headers.get("x-skuld-model"), "local")
        r = self.chat(model="flaky-local")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "local")

    # ---- routes

    def test_route_goes_to_capable_candidate(self):
        r = self.chat(model="auto")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "local")  # quality 0.9 > 0.5
        r = self.chat(model="auto", tools=TOOLS)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt")
        self.assertEqual(self.mock.last()["body"]["tools"], TOOLS)
        r = self.chat(model="auto", n=2)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt")
        self.assertEqual(self.mock.last()["body"]["n"], 2)

    def test_route_without_capable_candidate(self):
        r = self.chat(model="textual", tools=TOOLS)
        err = H.check_error_shape(self, r, 422, "no_eligible_deployment")
        self.assertIn("lacks capability 'tools'", err["message"])
        self.assertIn("gpt-text", err["message"])
        self.assertEqual(self.mock2.stats().get("requests", 0), 0)

    # ---- the Anthropic front end

    def messages(self, **body):
        body.setdefault("max_tokens", 16)
        body.setdefault("messages", MSG)
        return H.post_json(self.port, "/v1/messages", body,
                           {"anthropic-version": "2023-06-01"})

    def test_anthropic_front_end_same_rule(self):
        tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
        r = self.messages(model="local", tools=tools)
        self.assertEqual(r.status, 400, r.body)
        obj = r.json()
        self.assertEqual(obj["type"], "error", obj)
        self.assertEqual(obj["error"]["type"], "invalid_request_error", obj)
        self.assertIn("'tools'", obj["error"]["message"])
        self.assertIn("local", obj["error"]["message"])
        r = self.messages(model="auto", tools=tools)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt")
        self.assertEqual(self.mock.last()["body"]["tools"][0]["function"]["name"], "get_weather")
        r = self.messages(model="local")
        self.assertEqual(r.status, 200, r.body)

    def test_count_tokens_needs_no_tools(self):
        r = H.post_json(self.port, "/v1/messages/count_tokens",
                        {"model": "local", "messages": MSG,
                         "tools": [{"name": "f", "input_schema": {"type": "object"}}]},
                        {"anthropic-version": "2023-06-01"})
        self.assertEqual(r.status, 200, r.body)


if __name__ == "__main__":
    H.main()
