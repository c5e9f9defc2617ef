"""
GET /metrics: Prometheus text format, every name prefixed skuld_, labelled
by model and provider; counters move by exactly what known requests should
add: requests by status, the duration histogram, the in-flight gauge (1
during a slow stream, 0 after), upstream calls and upstream errors by kind,
and tokens from upstream usage. `promtool check metrics` runs when promtool
is on PATH.
"""
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

M = {"model": "gpt-test", "provider": "mock"}
D = {"model": "dead-model", "provider": "dead"}


class MetricsTest(H.GatewayTest):
    @classmethod
    def config(cls):
        return {
            "server": {"workers": 2, "request_timeout": "1s"},
            "providers": [
                {"name": "mock", "type": "openai", "base_url": cls.mock.base_url},
                {"name": "dead", "type": "openai",
                 "base_url": "http://127.0.0.1:%d/v1" % H.free_port()},
            ],
            "models": [
                {"name": "gpt-test", "provider": "mock", "model": "mock-model-1"},
                {"name": "dead-model", "provider": "dead"},
            ],
        }

    def scrape(self):
        r = H.request(self.port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"), r.headers)
        text = r.text()
        samples, types = H.metrics_parse(text)
        return text, samples, types

    def test_format(self):
        H.chat(self.port)
        text, samples, types = self.scrape()
        self.assertTrue(text.endswith("\n"))
        for (name, _labels) in samples:
            self.assertTrue(name.startswith("skuld_"), name)
            base = name
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and name[:-len(suf)] in types:
                    base = name[:-len(suf)]
            self.assertIn(base, types, "sample %s has no # TYPE" % name)
        self.assertEqual(types.get("skuld_requests_total"), "counter")
        self.assertEqual(types.get("skuld_request_duration_seconds"), "histogram")
        self.assertEqual(types.get("skuld_requests_in_flight"), "gauge")
        self.assertEqual(types.get("skuld_upstream_requests_total"), "counter")
        self.assertEqual(types.get("skuld_upstream_errors_total"), "counter")
        self.assertEqual(types.get("skuld_tokens_total"), "counter")
        # each family's TYPE appears once
        type_lines = [l for l in text.splitlines() if l.startswith("# TYPE ")]
        self.assertEqual(len(type_lines), len(set(type_lines)))

    @H.unittest.skipUnless(shutil.which("promtool"), "promtool not on PATH")
    def test_promtool(self):
        H.chat(self.port)
        H.chat(self.port, model="nope")
        text, _, _ = self.scrape()
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode()
        # exit 1 means a parse error or a lint problem (naming, help text)
        self.assertEqual(p.returncode, 0, out)

    def test_counters_follow_requests(self):
        _, s0, _ = self.scrape()

        def delta(s1, name, **labels):
            return H.metric(s1, name, **labels) - H.metric(s0, name, **labels)

        # 3 chat OK ("a b c": 3 prompt tokens; 5 completion tokens each)
        for _ in range(3):
            self.assertEqual(H.chat(self.port, "a b c").status, 200)
        # 1 stream OK (2 prompt, 4 completion tokens, via include_usage)
        res = H.sse_request(self.port, H.stream_body(content="d e", mock={"chunks": 4}))
        self.assertTrue(res.done)
        # 1 embeddings OK (4 prompt tokens, 0 completion)
        self.assertEqual(H.post_json(self.port, "/v1/embeddings",
                                     {"model": "gpt-test", "input": "f g h i"}).status, 200)
        # upstream 500 (status error), upstream timeout (504), unreachable (502)
        self.assertEqual(H.chat(self.port, mock={"status": 500}).status, 500)
        self.assertEqual(H.chat(self.port, mock={"latency_ms": 3000}).status, 504)
        self.assertEqual(H.chat(self.port, model="dead-model").status, 502)
        # a stream cut mid-way (protocol error, stream error; the client saw 200)
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 10, "cut_after": 2}))
        self.assertTrue(res.errors())
        # a request for an unknown model and a bad body never reach an upstream
        self.assertEqual(H.chat(self.port, model="nope").status, 404)
        self.assertEqual(H.request(self.port, "POST", "/v1/chat/completions", b"{").status, 400)

        def settled():
            _, s, _ = self.scrape()
            return s if H.metric(s, "skuld_requests_in_flight", **M) == 0 else None

        s1 = H.wait_until(settled, 5, what="in-flight 0")

        self.assertEqual(delta(s1, "skuld_requests_total", status="200", **M), 6)  # 3+1+1+cut
        self.assertEqual(delta(s1, "skuld_requests_total", status="500", **M), 1)
        self.assertEqual(delta(s1, "skuld_requests_total", status="504", **M), 1)
        self.assertEqual(delta(s1, "skuld_requests_total", status="502", **D), 1)
        # unrouted requests are counted too, under some series, by status
        self.assertEqual(H.metric_sum(s1, "skuld_requests_total", status="404") -
                         H.metric_sum(s0, "skuld_requests_total", status="404"), 1)
        self.assertEqual(H.metric_sum(s1, "skuld_requests_total", status="400") -
                         H.metric_sum(s0, "skuld_requests_total", status="400"), 1)

        self.assertEqual(delta(s1, "skuld_upstream_requests_total", **M), 8)
        self.assertEqual(delta(s1, "skuld_upstream_requests_total", **D), 1)
        self.assertEqual(delta(s1, "skuld_upstream_errors_total", kind="status", **M), 1)
        self.assertEqual(delta(s1, "skuld_upstream_errors_total", kind="timeout", **M), 1)
        self.assertEqual(delta(s1, "skuld_upstream_errors_total", kind="protocol", **M), 1)
        self.assertEqual(delta(s1, "skuld_upstream_errors_total", kind="connect", **M), 0)
        self.assertEqual(delta(s1, "skuld_upstream_errors_total", kind="connect", **D), 1)
        self.assertEqual(delta(s1, "skuld_stream_errors_total", **M), 1)

        # tokens: chats 3*3 + stream 2 + embeddings 4 + cut stream 0 (no usage)
        self.assertEqual(delta(s1, "skuld_tokens_total", type="prompt", **M), 3 * 3 + 2 + 4)
        self.assertEqual(delta(s1, "skuld_tokens_total", type="completion", **M), 3 * 5 + 4)

        # the histogram: count == sum of statuses; buckets cumulative; +Inf == count
        n = delta(s1, "skuld_request_duration_seconds_count", **M)
        self.assertEqual(n, 8)
        buckets = sorted(((float(dict(ls)["le"]), v) for (name, ls), v in s1.items()
                          if name == "skuld_request_duration_seconds_bucket" and
                          dict(ls).get("model") == "gpt-test"), key=lambda x: x[0])
        self.assertGreaterEqual(len(buckets), 5)
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual(buckets[-1][1], H.metric(s1, "skuld_request_duration_seconds_count", **M))
        vals = [v for _, v in buckets]
        self.assertEqual(vals, sorted(vals), "buckets are not cumulative")
        # the 504 took >= 1 s: it is above the 0.5 s bucket, within 2.5 s or more
        d_half = delta(s1, "skuld_request_duration_seconds_bucket", le="0.5", **M)
        d_inf = delta(s1, "skuld_request_duration_seconds_bucket", le="+Inf", **M)
        self.assertEqual(d_inf, n)
        self.assertLessEqual(d_half, n - 1)
        sum_delta = delta(s1, "skuld_request_duration_seconds_sum", **M)
        self.assertGreaterEqual(sum_delta, 0.9)  # the timeout alone
        self.assertLess(sum_delta, 30)

    def test_in_flight_gauge(self):
        body = H.stream_body(mock={"chunks": 10, "chunk_gap_ms": 100})
        started = threading.Event()
        results = []

        def run():
            results.append(H.sse_request(self.port, body,
                                         on_event=lambda r, e: started.set()))

        ts = [threading.Thread(target=run) for _ in range(3)]
        for t in ts:
            t.start()
        try:
            self.assertTrue(started.wait(10))
            H.wait_until(lambda: H.metric(self.scrape()[1], "skuld_requests_in_flight", **M) == 3,
                         5, what="3 in flight")
        finally:
            for t in ts:
                t.join(30)
        self.assertTrue(all(r.done for r in results))
        H.wait_until(lambda: H.metric(self.scrape()[1], "skuld_requests_in_flight", **M) == 0,
                     5, what="0 in flight")
        _, s, _ = self.scrape()
        for (name, labels), v in s.items():
            if name == "skuld_requests_in_flight":
                self.assertEqual(v, 0, dict(labels))


if __name__ == "__main__":
    H.main()
