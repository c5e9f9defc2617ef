"""
Access log: exactly one JSON line per request on stdout with request_id,
status, model (when resolved), stream flag, tokens; never prompt or reply
text; nothing on stdout but those lines; server.access_log: false turns it
off.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROMPT_CANARY = "PROMPTCANARY-9d1f a secret prompt sentence"
REPLY_CANARY = "REPLYCANARY-77ab generated text"


class AccessLogTest(H.GatewayTest):
    @classmethod
    def config(cls):
        return H.base_config(cls.mock, server={"request_timeout": "1s"})

    def test_one_line_per_request(self):
        pfx = "al-%d-" % int(time.time() * 1000)
        expect = {}  # request id -> (status, model, stream)

        def rid(name):
            return pfx + name

        hdr = lambda n: {"X-Request-Id": rid(n)}  # noqa: E731
        r = H.chat(self.port, PROMPT_CANARY, mock={"content": REPLY_CANARY}, headers=hdr("chat"))
        self.assertEqual(r.status, 200)
        expect[rid("chat")] = (200, "gpt-test", False)
        res = H.sse_request(self.port, H.stream_body(content=PROMPT_CANARY,
                                                     mock={"content": REPLY_CANARY}),
                            headers=hdr("stream"))
        self.assertTrue(res.done)
        expect[rid("stream")] = (200, "gpt-test", True)
        H.post_json(self.port, "/v1/completions", {"model": "gpt-test", "prompt": PROMPT_CANARY},
                    headers=hdr("cmpl"))
        expect[rid("cmpl")] = (200, "gpt-test", False)
        H.post_json(self.port, "/v1/embeddings", {"model": "gpt-test", "input": PROMPT_CANARY},
                    headers=hdr("emb"))
        expect[rid("emb")] = (200, "gpt-test", False)
        H.chat(self.port, PROMPT_CANARY, model="unknown-model-x",
               headers=hdr("unknown"))
        expect[rid("unknown")] = (404, None, False)
        H.request(self.port, "POST", "/v1/chat/completions",
                  ('{"model":"gpt-test","messages":[{"content":"%s"' % PROMPT_CANARY).encode(),
                  headers=hdr("badjson"))
        expect[rid("badjson")] = (400, None, False)
        H.chat(self.port, PROMPT_CANARY, mock={"status": 500}, headers=hdr("up500"))
        expect[rid("up500")] = (500, "gpt-test", False)
        H.chat(self.port, PROMPT_CANARY, mock={"latency_ms": 3000}, headers=hdr("timeout"))
        expect[rid("timeout")] = (504, "gpt-test", False)
        res = H.sse_request(self.port, H.stream_body(content=PROMPT_CANARY,
                                                     mock={"content": REPLY_CANARY, "chunks": 6,
                                                           "cut_after": 2}),
                            headers=hdr("cut"))
        expect[rid("cut")] = (200, "gpt-test", True)
        H.request(self.port, "GET", "/v1/models", headers=hdr("models"))
        expect[rid("models")] = (200, None, False)
        H.request(self.port, "GET", "/nope", headers=hdr("404"))
        expect[rid("404")] = (404, None, False)
        H.request(self.port, "GET", "/v1/chat/completions", headers=hdr("405"))
        expect[rid("405")] = (405, None, False)
        res = H.sse_request(self.port, H.stream_body(content=PROMPT_CANARY,
                                                     mock={"chunks": 100, "chunk_gap_ms": 50}),
                            headers=hdr("left"), stop_after=2)
        expect[rid("left")] = (499, "gpt-test", True)

        def all_there():
            got = [e for e in self.gw.access_log() if e.get("request_id", "").startswith(pfx)]
            return got if len({e["request_id"] for e in got}) >= len(expect) else None

        H.wait_until(all_there, 10, what="every access log line")
        time.sleep(0.3)  # a duplicate would arrive within a flush period
        lines = [e for e in self.gw.access_log() if e.get("request_id", "").startswith(pfx)]
        by_id = {}
        for e in lines:
            by_id.setdefault(e["request_id"], []).append(e)
        self.assertEqual(set(by_id), set(expect))
        for k, (status, model, stream) in expect.items():
            self.assertEqual(len(by_id[k]), 1, by_id[k])
            e = by_id[k][0]
            self.assertEqual(e["status"], status, e)
            self.assertEqual(e.get("model"), model, e)
            if model:
                self.assertEqual(e.get("provider"), "mock", e)
            self.assertEqual(e.get("stream"), stream, e)
            for field in ("ts", "method", "path", "duration_ms"):
                self.assertIn(field, e)
            self.assertIsInstance(e["duration_ms"], (int, float))
        chat = by_id[rid("chat")][0]
        self.assertEqual(chat["method"], "POST")
        self.assertEqual(chat["path"], "/v1/chat/completions")
        self.assertEqual(chat["prompt_tokens"], len(PROMPT_CANARY.split()))
        self.assertEqual(chat["completion_tokens"], len(REPLY_CANARY.split()))
        self.assertEqual(by_id[rid("stream")][0]["completion_tokens"], len(REPLY_CANARY.split()))
        self.assertGreaterEqual(by_id[rid("timeout")][0]["duration_ms"], 900)
        self.assertEqual(chat.get("attempts"), 1, chat)
        for k in ("unknown", "badjson", "models", "404", "405"):
            self.assertNotIn("attempts", by_id[rid(k)][0], k)
        for e in lines:  # no cache configured, no model group here
            self.assertNotIn("cache", e)
            self.assertNotIn("deployment", e)
        for k in ("cut", "timeout", "up500", "left"):
            self.assertTrue(by_id[k if k.startswith(pfx) else rid(k)][0].get("error"), k)

        out = self.gw.stdout()
        err = self.gw.stderr()
        for canary in (PROMPT_CANARY, PROMPT_CANARY.split()[0], REPLY_CANARY.split()[0]):
            self.assertNotIn(canary, out)
            self.assertNotIn(canary, err)

    def test_malformed_json_prompt_not_logged(self):
        # A client that forgets to escape a tab or newline inside its prompt
        # sends invalid JSON. The parser's message quotes the text "near" the
        # error; the client may see that, the access log must not.
        secret = "PRIVATECANARY my card is 4111"
        bodies = [
            ('{"model":"gpt-test","messages":[{"role":"user","content":"%s\t1111"}]}' % secret),
            ('{"model":"gpt-test","messages":[{"role":"user","content":"%s\n1111"}]}' % secret),
            # an unescaped Windows path: invalid escape
            ('{"model":"gpt-test","messages":[{"role":"user","content":"%s C:\\qdir"}]}' % secret),
            # raw control byte copied from a terminal
            ('{"model":"gpt-test","messages":[{"role":"user","content":"%s\x01"}]}' % secret),
            # short prompts (the parser quotes tokens of up to 20 bytes)
            '{"model":"gpt-test","messages":[{"role":"user","content":"PRIVATECANARY 42\t"}]}',
            '{"model":"gpt-test","messages":[{"role":"user","content":"PRIVATECANARY\n"}]}',
            '{"model":"gpt-test","messages":[{"role":"user","content":"PRIVATECANARY\\q"}]}',
            '{"model":"gpt-test","messages":[{"role":"user","content":PRIVATECANARY}]}',
            # invalid UTF-8 in the prompt
            ('{"model":"gpt-test","messages":[{"role":"user","content":"%s \xff"}]}' % secret),
        ]
        ids = []
        for i, b in enumerate(bodies):
            rid = "al-badjson-%d-%d" % (i, int(time.time() * 1000))
            r = H.request(self.port, "POST", "/v1/chat/completions", b.encode("latin-1"),
                          headers={"X-Request-Id": rid})
            self.assertEqual(r.status, 400)
            ids.append(rid)
        for rid in ids:
            self.gw.log_for(rid)
        out = self.gw.stdout()
        self.assertNotIn("PRIVATECANARY", out,
                         "prompt text from an invalid JSON body reached the access log")
        self.assertNotIn("PRIVATECANARY", self.gw.stderr())

    def test_every_stdout_line_is_json(self):
        H.chat(self.port)
        H.request(self.port, "GET", "/healthz")
        time.sleep(0.3)
        raw = self.gw.stdout()
        self.assertTrue(raw.endswith("\n"))
        for line in raw.splitlines():
            obj = H.json.loads(line)
            self.assertIsInstance(obj, dict)
            self.assertIn("request_id", obj)
            self.assertIn("status", obj)

    def test_generated_id_matches_header(self):
        r = H.chat(self.port)
        rid = r.headers["x-request-id"]
        self.assertEqual(self.gw.log_for(rid)[0]["status"], 200)


class AccessLogCacheGroupTest(H.unittest.TestCase):
    """The deployment id of a model group, the upstream attempts and the cache
    outcome are in each line."""

    def test_deployment_attempts_cache(self):
        mock = H.Mock()
        gw = None
        try:
            cfg = H.base_config(mock, models=[
                {"name": "grp", "id": "grp-a", "provider": "mock", "model": "mock-model-1"},
                {"name": "grp", "id": "grp-b", "provider": "mock", "model": "mock-model-1"},
                {"name": "solo", "provider": "mock", "model": "mock-model-1"},
            ])
            cfg["cache"] = {"enabled": True, "ttl": "60s"}
            gw = H.Skuld(cfg)
            pfx = "alc-%d-" % int(time.time() * 1000)
            for name, model, hdrs in (("miss", "grp", {}), ("hit", "grp", {}),
                                      ("bypass", "grp", {"x-skuld-cache": "no-cache"}),
                                      ("solo", "solo", {})):
                hdrs = dict(hdrs, **{"X-Request-Id": pfx + name})
                r = H.chat(gw.port, "the same prompt", model=model, headers=hdrs)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers["x-skuld-cache"], name if name != "solo" else "miss")
            miss, hit, bypass, solo = (gw.log_for(pfx + n)[0]
                                       for n in ("miss", "hit", "bypass", "solo"))
            self.assertEqual(miss["cache"], "miss")
            self.assertEqual(hit["cache"], "hit")
            self.assertEqual(bypass["cache"], "bypass")
            self.assertIn(miss["deployment"], ("grp-a", "grp-b"))
            self.assertEqual(miss["model"], "grp")
            self.assertEqual(miss["attempts"], 1)
            self.assertEqual(bypass["attempts"], 1)
            self.assertNotIn("attempts", hit)  # served from the cache: no upstream call
            self.assertNotIn("deployment", solo)  # its id is its name
            self.assertEqual(solo["attempts"], 1)
        finally:
            rc = gw.stop() if gw else 0
            mock.stop()
        self.assertEqual(rc, 0)


class AccessLogOffTest(H.unittest.TestCase):
    def test_access_log_false(self):
        mock = H.Mock()
        gw = None
        try:
            gw = H.Skuld(H.base_config(mock, server={"access_log": False}))
            self.assertEqual(H.chat(gw.port).status, 200)
            self.assertEqual(H.request(gw.port, "GET", "/nope").status, 404)
            time.sleep(0.3)
            self.assertEqual(gw.stdout(), "")
        finally:
            rc = gw.stop() if gw else 0
            mock.stop()
        self.assertEqual(rc, 0)
        self.assertEqual(gw.stdout(), "")


if __name__ == "__main__":
    H.main()
