"""
The embedded default config (`skuld serve` without -c, run in an empty
working directory) answers chat through the demo model on embedded llama.cpp
by default (tests/integration/test_local_inference.py goes deeper) and keeps
the built-in echo model, streamed and not; and the command line: version, check (ok / FILE:LINE:COL errors,
exit 1), usage errors (exit 2).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class EmbeddedDefaultTest(H.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cwd = H.mkdtemp("skuld-cwd-")
        cls.gw = H.Skuld(None, cwd=cls.cwd)
        cls.port = cls.gw.port

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        assert rc == 0, "skuld exited with %s" % rc

    def test_chat_without_model(self):
        r = H.chat(self.port, "hello from the default config", model=None, max_tokens=64)
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["choices"][0]["message"]["role"], "assistant")
        self.assertIsInstance(body["choices"][0]["message"]["content"], str)
        self.assertGreater(body["usage"]["prompt_tokens"], 5)  # real tokens, chat template
        self.assertEqual(r.headers.get("x-skuld-model"), "demo")

    def test_echo_model(self):
        r = H.chat(self.port, "hello from the default config", model="echo")
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["choices"][0]["message"]["content"], "hello from the default config")
        self.assertEqual(body["usage"]["prompt_tokens"], 5)
        self.assertTrue(r.headers.get("x-skuld-model"))
        self.assertTrue(r.headers.get("x-skuld-provider"))

    def test_chat_with_listed_model(self):
        models = [m["id"] for m in H.request(self.port, "GET", "/v1/models").json()["data"]]
        self.assertTrue(models)
        for m in models:
            r = H.chat(self.port, "named model", model=m, max_tokens=64)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers.get("x-skuld-model"), m)

    def test_stream(self):
        res = H.sse_request(self.port, {"stream": True, "model": "echo",
                                        "messages": [{"role": "user", "content": "one two three"}]})
        self.assertEqual(res.status, 200)
        self.assertTrue(res.done)
        self.assertTrue(res.complete)
        self.assertEqual(res.content(), "one two three")
        self.assertFalse([o for o in res.json_events() if o.get("choices") == []])
        res = H.sse_request(self.port, {"stream": True, "model": "echo",
                                        "stream_options": {"include_usage": True},
                                        "messages": [{"role": "user", "content": "a b"}]})
        usage = [o for o in res.json_events() if o.get("choices") == []]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0]["usage"]["completion_tokens"], 2)

    def test_completions_and_embeddings(self):
        r = H.post_json(self.port, "/v1/completions", {"prompt": "echo me", "model": "echo"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["text"], "echo me")
        r = H.post_json(self.port, "/v1/embeddings", {"input": ["a", "b"], "model": "echo"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(r.json()["data"]), 2)

    def test_health(self):
        self.assertEqual(H.request(self.port, "GET", "/healthz").status, 200)
        self.assertEqual(H.request(self.port, "GET", "/readyz").status, 200)
        self.assertIn("skuld_requests_total", self.gw.metrics())

    def test_clean_start_log(self):
        # stderr after a start holds our own lines only: no library noise
        # (the workers' fd-slot prewarm once printed 4,000 libevent warnings)
        err = self.gw.stderr()
        self.assertIn("listening on", err)
        for line in err.splitlines():
            self.assertRegex(line, r"^(INFO|WARN|ERROR|DEBUG) \d{4}-", line)
        self.assertNotIn("[warn]", err)


class CpuLatencyTest(H.unittest.TestCase):
    """server.cpu_latency_us holds a PM QoS request on /dev/cpu_dma_latency
    while skuld serves (as root, as CI runs), or says why it cannot; absent,
    skuld never opens the device."""

    def qos_fds(self, pid):
        out = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "/dev/cpu_dma_latency":
                    out.append(fd)
            except OSError:
                pass
        return out

    def test_held_while_serving(self):
        with H.gateway(lambda m: H.base_config(m, server={"cpu_latency_us": 0})) as (gw, _):
            self.assertEqual(H.chat(gw.port).status, 200)
            held = self.qos_fds(gw.pid)
            if os.geteuid() == 0 and os.path.exists("/dev/cpu_dma_latency"):
                self.assertEqual(len(held), 1, gw.stderr())
                self.assertIn("holding idle CPUs to 0 us", gw.stderr())
            else:
                self.assertEqual(held, [])
                self.assertIn("cannot hold a CPU latency request", gw.stderr())
        with H.gateway(lambda m: H.base_config(m)) as (gw, _):
            self.assertEqual(H.chat(gw.port).status, 200)
            self.assertEqual(self.qos_fds(gw.pid), [])
            self.assertNotIn("cpu_latency_us", gw.stderr())

    def test_bounds(self):
        d = H.mkdtemp()
        for bad in ("-1", "1000001", "fast"):
            path = os.path.join(d, "c.yaml")
            with open(path, "w") as f:
                f.write("server:\n  cpu_latency_us: %s\n" % bad)
            rc, out, err = H.run_skuld(["check", "-c", path])
            self.assertEqual(rc, 1, (bad, out, err))
            self.assertIn("cpu_latency_us", out + err)


class CliTest(H.unittest.TestCase):
    def test_version(self):
        rc, out, err = H.run_skuld(["version"])
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^skuld \d+\.\d+\.\d+")

    def test_usage_errors(self):
        rc, out, err = H.run_skuld([])
        self.assertEqual(rc, 2)
        self.assertIn("usage", err)
        rc, _, err = H.run_skuld(["frobnicate"])
        self.assertEqual(rc, 2)
        rc, _, err = H.run_skuld(["check"])
        self.assertEqual(rc, 2)
        rc, _, err = H.run_skuld(["serve", "--bogus"])
        self.assertEqual(rc, 2)

    def test_check(self):
        d = H.mkdtemp()
        good = H.write_temp("good.yaml", {
            "server": {"listen": "127.0.0.1:0", "request_timeout": "30s", "max_body_bytes": "1MiB"},
            "providers": [{"name": "p", "type": "openai", "base_url": "http://127.0.0.1:9/v1"}],
            "models": [{"name": "m", "provider": "p"}]}, d)
        rc, out, err = H.run_skuld(["check", "-c", good])
        self.assertEqual(rc, 0, err)
        bad = H.write_temp("bad.yaml", "server:\n  listen: 127.0.0.1:0\n  request_timeout: soon\n"
                           "  bogus: 1\nmodels:\n  - name: m\n    provider: nowhere\n", d)
        rc, out, err = H.run_skuld(["check", "-c", bad])
        self.assertEqual(rc, 1)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertGreaterEqual(len(lines), 3, err)  # every error, not just the first
        for l in lines:
            self.assertRegex(l, r"^%s:\d+:\d+: " % H.re.escape(bad))
        self.assertTrue(any(l.startswith(bad + ":3:") for l in lines), err)
        self.assertTrue(any(l.startswith(bad + ":4:") for l in lines), err)
        rc, out, err = H.run_skuld(["check", "-c", os.path.join(d, "missing.yaml")])
        self.assertEqual(rc, 1)
        # serve refuses the bad config too
        rc, out, err = H.run_skuld(["serve", "-c", bad], timeout=10)
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    H.main()
