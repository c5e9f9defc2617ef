"""
The fast path for plain pass-through requests (api/openai.c, core/jscan.c):
bodies that are only scanned, not parsed, must behave exactly like parsed
ones. Upstream body spliced byte for byte (only the model replaced), a
stream without include_usage still gets it added (the lazy parse in the
relay), the vision check (also with an escaped "image_url" type), a fallback
to a provider without build_raw (anthropic: the tree is parsed lazily for
that attempt), the validation errors in the same shape, and bodies the
scanner leaves to jansson (duplicates, escaped keys) answered as before.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class FastPathTest(H.GatewayTest):
    @classmethod
    def config(cls):
        dead = "http://127.0.0.1:%d/v1" % H.free_port()
        return {
            "server": {"workers": 1},
            "providers": [
                {"name": "mock", "type": "openai", "base_url": cls.mock.base_url},
                {"name": "dead", "type": "openai", "base_url": dead},
                {"name": "anth", "type": "anthropic", "base_url": cls.mock.base_url,
                 "api_key": "sk-ant-test"},
            ],
            "models": [
                {"name": "plain", "provider": "mock", "model": "up-plain"},
                {"name": "textonly", "provider": "mock", "model": "up-text",
                 "capabilities": ["chat"]},
                {"name": "flaky", "provider": "dead", "model": "up-dead",
                 "fallbacks": ["claude"]},
                {"name": "claude", "provider": "anth", "model": "up-claude"},
                {"name": "emb", "provider": "mock", "model": "up-emb"},
            ],
        }

    def post(self, raw, path="/v1/chat/completions", headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return H.request(self.port, "POST", path, raw, h)

    def test_splice_keeps_the_body(self):
        raw = ('{ "model" : "plain",\n "messages":[{"role":"user","content":"caf\u00e9 \\u00e9"}],'
               ' "x_vendor": {"deep": [1, 2.5e3, true, null]}, "max_tokens": 7 }')
        r = self.post(raw.encode())
        self.assertEqual(r.status, 200, r.body)
        last = self.mock.last()
        self.assertEqual(last["body"]["model"], "up-plain")
        self.assertEqual(last["body"]["x_vendor"], {"deep": [1, 2500.0, True, None]})
        self.assertEqual(last["body"]["messages"][0]["content"], "caf\u00e9 \u00e9")
        self.assertEqual(last["body"]["max_tokens"], 7)

    def test_stream_gets_include_usage(self):
        body = {"model": "plain", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}
        s = H.sse_request(self.port, body)
        self.assertEqual(s.status, 200)
        last = self.mock.last()
        self.assertEqual(last["body"]["stream_options"], {"include_usage": True})
        self.assertEqual(last["body"]["model"], "up-plain")

    def test_vision_check(self):
        for t in ("image_url", "\\u0069mage_url", "input_image", "image"):
            raw = ('{"model":"textonly","messages":[{"role":"user","content":'
                   '[{"type":"%s","src":{"url":"http://x/y.png"}}]}]}' % t)
            r = self.post(raw.encode())
            H.check_error_shape(self, r, 400, "model_capability_missing")
        # the word "image" alone in text is no image part
        r = self.post(json.dumps({"model": "textonly", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "an image"}]}]}))
        self.assertEqual(r.status, 200, r.body)
        r = self.post(json.dumps({"model": "plain", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]}))
        self.assertEqual(r.status, 200, r.body)

    def test_fallback_to_a_provider_without_splice(self):
        for stream in (False, True):
            body = {"model": "flaky", "messages": [{"role": "user", "content": "fb"}]}
            if stream:
                body["stream"] = True
                s = H.sse_request(self.port, body)
                self.assertEqual(s.status, 200)
            else:
                r = self.post(json.dumps(body))
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json()["object"], "chat.completion")
            last = self.mock.last()
            self.assertEqual(last["path"], "/v1/messages")
            self.assertEqual(last["body"]["model"], "up-claude")

    def test_validation_errors(self):
        cases = [
            ('{"model":"plain"}', 400, "missing_required_parameter", "messages"),
            ('{"model":"plain","messages":{}}', 400, "invalid_type", "messages"),
            ('{"model":"plain","messages":[],"stream":"yes"}', 400, "invalid_type", "stream"),
            ('{"model":"nope","messages":[]}', 404, "model_not_found", "model"),
            ('{"model":5,"messages":[]}', 400, "invalid_type", "model"),
            ('{"model":"plain","messages":[],"model":"plain"}', 400, "invalid_json", None),
            ('{"model":"plain","messages":[{"a":1,"a":2}]}', 400, "invalid_json", None),
            ('{"model":"plain","messages":[],}', 400, "invalid_json", None),
            ('{"model":"plain","messages":["\\ud800"]}', 400, "invalid_json", None),
            ('[{"model":"plain"}]', 400, "invalid_json", None),
        ]
        for raw, status, code, param in cases:
            r = self.post(raw.encode())
            err = H.check_error_shape(self, r, status, code)
            if param:
                self.assertEqual(err["param"], param, raw)
        r = self.post(b'{"model":"emb","input":5}', "/v1/embeddings")
        err = H.check_error_shape(self, r, 400, "invalid_type")
        self.assertEqual(err["param"], "input")
        r = self.post(b'{"model":"plain","prompt":null}', "/v1/completions")
        err = H.check_error_shape(self, r, 400, "invalid_type")

    def test_jansson_path_still_serves(self):
        # an escaped key and an escaped model name: the scanner defers
        raw = b'{"m\\u006fdel":"pl\\u0061in","messages":[{"role":"user","content":"x"}]}'
        r = self.post(raw)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.mock.last()["body"]["model"], "up-plain")


if __name__ == "__main__":
    H.main()
