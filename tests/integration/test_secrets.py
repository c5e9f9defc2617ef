"""
Secrets never leak: a provider key given as env:SKULD_TEST_KEY (and file:)
must not appear in skuld's stdout, stderr, or any response (body or
headers), whatever happens -- successes, refused upstreams, upstream errors,
timeouts, cut streams, bad requests -- nor in `skuld check` / `skuld serve`
output for configs with errors next to the key. The mock sees the key (so
the test would notice a key that is never used).
"""
import os
import secrets as pysecrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

KEY = "sk-SKULDCANARY-" + pysecrets.token_hex(12)
KEY2 = "sk-FILECANARY-" + pysecrets.token_hex(12)
# fragments that must not appear either (a truncated or partly masked key)
FRAGMENTS = [KEY, KEY[3:], KEY[-16:], KEY2, KEY2[-16:]]


class SecretsTest(H.unittest.TestCase):
    def assert_clean(self, text, where):
        for f in FRAGMENTS:
            self.assertNotIn(f, text, "secret found in %s" % where)

    def test_serve_never_shows_key(self):
        mock = H.Mock()
        gw = None
        d = H.mkdtemp()
        keyfile = os.path.join(d, "key2")
        with open(keyfile, "w") as f:
            f.write(KEY2 + "\n")
        cfg = {
            "server": {"workers": 2, "request_timeout": "1s", "max_body_bytes": 8192,
                       "max_header_bytes": 4096, "stream_idle_timeout": "1s"},
            "providers": [
                {"name": "mock", "type": "openai", "base_url": mock.base_url,
                 "api_key": "env:SKULD_TEST_KEY"},
                {"name": "mockfile", "type": "openai", "base_url": mock.base_url,
                 "api_key": "file:" + keyfile},
                {"name": "dead", "type": "openai",
                 "base_url": "http://127.0.0.1:%d/v1" % H.free_port(), "api_key": "env:SKULD_TEST_KEY"},
            ],
            "models": [
                {"name": "gpt-test", "provider": "mock", "model": "mock-model-1"},
                {"name": "file-model", "provider": "mockfile"},
                {"name": "dead-model", "provider": "dead"},
            ],
        }
        responses = []
        try:
            gw = H.Skuld(cfg, env={"SKULD_TEST_KEY": KEY})
            p = gw.port
            responses.append(H.chat(p))
            last = mock.last()
            self.assertEqual(last["headers"]["authorization"], "Bearer " + KEY,
                             "the key from env: was not used")
            responses.append(H.chat(p, model="file-model"))
            self.assertEqual(mock.last()["headers"]["authorization"], "Bearer " + KEY2,
                             "the key from file: was not used")
            responses.append(H.chat(p, model="dead-model"))
            responses.append(H.chat(p, mock={"status": 500}))
            responses.append(H.chat(p, mock={"status": 401}))
            responses.append(H.chat(p, mock={"status": 403, "error_body": "forbidden"}))
            responses.append(H.chat(p, mock={"status": 429, "retry_after": 1}))
            responses.append(H.chat(p, mock={"latency_ms": 3000}))
            responses.append(H.chat(p, model="nope"))
            responses.append(H.chat(p, "x" * 10000))
            responses.append(H.request(p, "POST", "/v1/chat/completions", b"{bad json"))
            responses.append(H.request(p, "GET", "/healthz", headers={"X-Big": "b" * 5000}))
            responses.append(H.request(p, "GET", "/v1/models"))
            responses.append(H.request(p, "GET", "/metrics"))
            responses.append(H.request(p, "GET", "/readyz"))
            responses.append(H.request(p, "GET", "/nope"))
            responses.append(H.post_json(p, "/v1/embeddings", {"model": "dead-model", "input": "x"}))
            for body in (H.stream_body(), H.stream_body(model="dead-model"),
                         H.stream_body(mock={"chunks": 5, "cut_after": 2}),
                         H.stream_body(mock={"stall_ms": 3000}),
                         H.stream_body(mock={"status": 500}),
                         H.stream_body(model="file-model", mock={"chunks": 3, "cut_after": 1})):
                res = H.sse_request(p, body, timeout=20)
                self.assert_clean(res.body.decode("utf-8", "replace"), "stream body")
                self.assert_clean("\n".join(res.data), "stream events")
                self.assert_clean(repr(res.headers), "stream headers")
            with H.RawConn(p) as c:
                c.send(b"GARBAGE\r\n\r\n")
                responses.append(c.read_response())
        finally:
            rc = gw.stop() if gw else None
            mock.stop()
        self.assertEqual(rc, 0)
        for r in responses:
            self.assert_clean(r.body.decode("utf-8", "replace"), "a response body")
            self.assert_clean(repr(r.header_list), "response headers")
        self.assert_clean(gw.stdout(), "skuld stdout")
        self.assert_clean(gw.stderr(), "skuld stderr")
        # the upstream error bodies were relayed (a sanity check of the mix)
        self.assertEqual([r.status for r in responses[2:8]], [502, 500, 401, 403, 429, 504])

    def bad_configs(self, keyfile_ctl):
        mock_url = "http://127.0.0.1:%d/v1" % H.free_port()
        return {
            # env: key on a provider type that takes none, plus an unknown key next to it
            "env-on-echo": """
server:
  listen: 127.0.0.1:0
providers:
  - name: local
    type: echo
    api_key: env:SKULD_TEST_KEY
    api_kee: env:SKULD_TEST_KEY
models:
  - name: m
    provider: local
""",
            # an inline key on a provider that takes none
            "inline-on-echo": """
providers:
  - name: local
    type: echo
    api_key: %s
models:
  - name: m
    provider: local
""" % KEY,
            # inline key, wrong types and unknown keys around it
            "inline-with-errors": """
server:
  workers: many
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: %s
    timeout: %s
    retries: [%s]
models:
  - name: m
    provider: nowhere
    model: %s
""" % (mock_url, KEY, KEY, KEY, "x"),
            # the usual typos of the key's name, with an inline value
            "typo-names": """
providers:
  - name: up
    type: openai
    base_url: %s
    api-key: %s
  - name: up2
    type: openai
    base_url: %s
    apikey: %s
    token: %s
models:
  - name: m
    provider: up
""" % (mock_url, KEY, mock_url, KEY, KEY),
            # the key as a sequence / mapping instead of a string
            "key-as-list": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: [%s, %s]
models:
  - name: m
    provider: up
""" % (mock_url, KEY, KEY),
            "key-as-map": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: {%s: 1}
models:
  - name: m
    provider: up
""" % (mock_url, KEY),
            # duplicate api_key
            "duplicate-key": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: %s
    api_key: env:SKULD_TEST_KEY
models:
  - name: m
    provider: up
""" % (mock_url, KEY),
            # the key with a control character (env value and file)
            "env-ctl": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: env:SKULD_TEST_KEY_CTL
models:
  - name: m
    provider: up
""" % mock_url,
            "file-ctl": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: file:%s
models:
  - name: m
    provider: up
""" % (mock_url, keyfile_ctl),
            # a YAML syntax error on the key's line
            "yaml-error": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: "%s
models:
  - name: m
    provider: up
""" % (mock_url, KEY),
            "yaml-error-2": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: %s: : [
""" % (mock_url, KEY),
            # missing environment variable next to a good one
            "env-missing": """
providers:
  - name: up
    type: openai
    base_url: %s
    api_key: env:SKULD_TEST_KEY_MISSING_%s
  - name: up
    type: openai
    base_url: %s
    api_key: env:SKULD_TEST_KEY
models:
  - name: m
    provider: up
""" % (mock_url, pysecrets.token_hex(4).upper(), mock_url),
            # the key where a name or URL belongs
            "key-as-url": """
providers:
  - name: up
    type: openai
    base_url: env:SKULD_TEST_KEY
    api_key: env:SKULD_TEST_KEY
models:
  - name: m
    provider: up
""",
        }

    def test_check_and_serve_with_bad_configs(self):
        d = H.mkdtemp()
        keyfile_ctl = os.path.join(d, "ctl")
        with open(keyfile_ctl, "w") as f:
            f.write(KEY2 + "\x01tail\n")
        env = {"SKULD_TEST_KEY": KEY, "SKULD_TEST_KEY_CTL": KEY + "\x07"}
        for name, text in self.bad_configs(keyfile_ctl).items():
            path = os.path.join(d, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            with self.subTest(config=name):
                rc, out, err = H.run_skuld(["check", "-c", path], env=env)
                self.assertEqual(rc, 1, "skuld check accepted %s:\n%s%s" % (name, out, err))
                self.assertRegex(err + out, r"%s:\d+:\d+: " % H.re.escape(path),
                                 "errors are FILE:LINE:COL")
                self.assert_clean(out, "skuld check stdout (%s)" % name)
                self.assert_clean(err, "skuld check stderr (%s)" % name)
                rc, out, err = H.run_skuld(["serve", "-c", path, "--listen", "127.0.0.1:0"],
                                           env=env, timeout=10)
                self.assertEqual(rc, 1)
                self.assert_clean(out + err, "skuld serve output (%s)" % name)

    def test_check_ok_does_not_print_key(self):
        path = H.write_temp("ok.yaml", "providers:\n  - name: up\n    type: openai\n"
                            "    base_url: http://127.0.0.1:9/v1\n"
                            "    api_key: env:SKULD_TEST_KEY\n"
                            "models:\n  - name: m\n    provider: up\n")
        rc, out, err = H.run_skuld(["check", "-c", path], env={"SKULD_TEST_KEY": KEY})
        self.assertEqual(rc, 0, err)
        self.assert_clean(out + err, "skuld check output")


if __name__ == "__main__":
    H.main()
