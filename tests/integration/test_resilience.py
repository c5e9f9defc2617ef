"""
Resilience (issue 7) against two mock upstreams, A and B (tools/mock-upstream,
scripted process-wide through /_mock/config so each deployment fails its own
way while the request body is the same for every attempt).

Must show, each test well under a minute:
 1. A fails 30% with 500, B healthy: 5,000 requests, zero client errors; A's
    breaker opens within 5 consecutive failures and A comes back through
    half-open once it recovers.
 2. Every upstream answers 503: upstream attempts <= 1.2 x client requests +
    the retry budget minimum; every client gets its error before its deadline
    (x-skuld-deadline-ms).
 3. 10% of A's requests stall 5 s, hedge after 200 ms: client p99 < 1 s, one
    response per request (x-request-id echoed on a keep-alive connection), the
    losing connections closed (A's in-flight back to 0 long before the stalls
    would end; the mock saw each loser abort shortly after the hedge delay).
 4. A stream cut after 5 chunks: an error event and no [DONE]; a stall before
    the first chunk fails over to B and the client sees a normal stream.
 5. Under saturation (max_concurrency 1) high-priority requests finish before
    low-priority ones; overflow and queue timeout get 429 with Retry-After.
"""
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

MASTER = "resilience-test-master-key"


def chats(stats):
    """Chat requests a mock saw (not the gateway's health probes)."""
    return stats["by_path"].get("/v1/chat/completions", 0)


def config(a, b, resil_a=None, server_resil=None, extra_models=(), workers=2, routes=None):
    ma = {"name": "gpt-a", "provider": "a", "model": "mock-a", "fallbacks": ["gpt-b"]}
    if resil_a:
        ma["resilience"] = resil_a
    srv = {"workers": workers, "master_key": MASTER, "request_timeout": "20s",
           "health_interval": "0s"}  # no probes: the mocks count only chat requests
    if server_resil:
        srv["resilience"] = server_resil
    cfg = {
        "server": srv,
        "providers": [{"name": "a", "type": "openai", "base_url": a.base_url},
                      {"name": "b", "type": "openai", "base_url": b.base_url}],
        "models": [ma, {"name": "gpt-b", "provider": "b", "model": "mock-b"}] + list(extra_models),
    }
    if routes:
        cfg["routes"] = routes
    return cfg


BODY = json.dumps({"model": "gpt-a", "messages": [{"role": "user", "content": "hi there"}]})


def load(port, n, conc, body=BODY, headers=None, timeout=30):
    """n POSTs over conc keep-alive connections; [(status, headers, elapsed, rid_ok)]."""
    out = []
    lock = threading.Lock()
    counter = iter(range(n))
    errors = []

    def worker(wi):
        conn = H.http.client.HTTPConnection(H.HOST, port, timeout=timeout)
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                rid = "r%d-%d" % (wi, i)
                h = {"Content-Type": "application/json", "x-request-id": rid}
                h.update(headers or {})
                t0 = time.monotonic()
                conn.request("POST", "/v1/chat/completions", body=body, headers=h)
                r = conn.getresponse()
                data = r.read()
                el = time.monotonic() - t0
                hd = {k.lower(): v for k, v in r.getheaders()}
                with lock:
                    out.append((r.status, hd, el, hd.get("x-request-id") == rid, data))
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = H.http.client.HTTPConnection(H.HOST, port, timeout=timeout)
        except Exception as e:  # reported by the caller
            errors.append(repr(e))
        finally:
            conn.close()

    H.run_threads(worker, [(i,) for i in range(conc)])
    if errors:
        raise AssertionError("client errors: %s" % errors[:5])
    return out


def metric(gw, name, model):
    samples = H.metrics_parse(H.request(gw.port, "GET", "/metrics").text())[0]
    return H.metric_sum(samples, name, model=model)


def breaker(gw, model):
    return metric(gw, "skuld_breaker_state", model)


def admin_model(gw, model):
    r = H.request(gw.port, "GET", "/admin/models/" + model,
                  headers={"Authorization": "Bearer " + MASTER})
    assert r.status == 200, r
    return r.json()


class FailoverAndBreaker(H.GatewayTest):
    """Must show 1."""

    mock_names = ("a", "b")

    @classmethod
    def config(cls):
        return config(cls.a, cls.b, server_resil={
            "ejection_time": "100ms", "max_ejection_time": "400ms"})

    def test_1_30pct_failures_zero_client_errors(self):
        self.a.set_config({"fail_rate": 0.3, "status": 500})
        self.a.reset()
        self.b.reset()
        t0 = time.monotonic()
        res = load(self.gw.port, 5000, 3)
        took = time.monotonic() - t0
        statuses = {}
        for st, hd, _, rid_ok, _ in res:
            statuses[st] = statuses.get(st, 0) + 1
            self.assertTrue(rid_ok)
        self.assertEqual(statuses, {200: 5000}, "client errors")
        by_model = {}
        for _, hd, _, _, _ in res:
            by_model[hd["x-skuld-model"]] = by_model.get(hd["x-skuld-model"], 0) + 1
        sa, sb = self.a.stats(), self.b.stats()
        failed_a = round(chats(sa) * 0.3)
        # A served most of what it got; B took A's failures (and A's ejected time)
        # A answers while its breaker is closed; it is ejected (100-400 ms)
        # after each run of 5 failures, which at 30% comes every few hundred
        # requests, and comes back through a half-open probe each time
        self.assertGreater(by_model.get("gpt-a", 0), 100, by_model)
        self.assertGreater(by_model.get("gpt-b", 0), 300, by_model)
        self.assertGreaterEqual(metric(self.gw, "skuld_breaker_opens_total", "gpt-a"), 1)
        self.assertEqual(chats(sa) + chats(sb),
                         sum(int(hd["x-skuld-attempts"]) for _, hd, _, _, _ in res))
        print("\n  5000 requests in %.1fs; answered by %s; A got %d (~%d failed), B got %d; "
              "A breaker opened %d times" % (took, by_model, chats(sa), failed_a,
                                             chats(sb),
                                             metric(self.gw, "skuld_breaker_opens_total",
                                                    "gpt-a")), file=sys.stderr)

    def test_2_breaker_opens_within_5_then_half_open(self):
        gw, a = self.gw, self.a
        # Start from a closed breaker with A healthy.
        a.set_config({})
        H.wait_until(lambda: (H.chat(gw.port, model="gpt-a").status == 200 and
                              breaker(gw, "gpt-a") == 0) or None, 15, interval=0.05,
                     what="A's breaker closed")
        a.set_config({"status": 500})
        a.reset()
        seen = 0
        for i in range(20):
            r = H.chat(gw.port, model="gpt-a")
            self.assertEqual(r.status, 200, r)  # B answers every failure of A
            self.assertEqual(r.headers["x-skuld-model"], "gpt-b")
            if breaker(gw, "gpt-a") == 1:
                seen = chats(a.stats())
                break
        self.assertTrue(0 < seen <= 5, "A's breaker opened after %d failures" % seen)
        self.assertEqual(admin_model(gw, "gpt-a")["resilience"]["breaker"], "open")
        # ejected: A gets nothing while open
        for _ in range(10):
            r = H.chat(gw.port, model="gpt-a")
            self.assertEqual((r.status, r.headers["x-skuld-model"]), (200, "gpt-b"))
            self.assertEqual(r.headers["x-skuld-attempts"], "1")
        self.assertEqual(chats(a.stats()), seen, "an open breaker let requests through")
        # A recovers, slowly enough (300 ms) that the half-open probe can be seen.
        a.set_config({"latency_ms": 300})
        states, answered = [], []
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                r = H.chat(gw.port, model="gpt-a")
                answered.append((r.status, r.headers.get("x-skuld-model")))
                time.sleep(0.02)

        t = threading.Thread(target=traffic)
        t.start()
        try:
            def watch():
                s = breaker(gw, "gpt-a")
                if not states or states[-1] != s:
                    states.append(s)
                return s == 0 and 2 in states
            H.wait_until(watch, 15, interval=0.02, what="open -> half-open -> closed")
        finally:
            stop.set()
            t.join()
        self.assertEqual(states[:1], [1])
        self.assertIn(2, states)
        self.assertEqual(states[-1], 0)
        self.assertTrue(all(st == 200 for st, _ in answered), answered)
        self.assertIn(("gpt-a"), [m for _, m in answered])
        self.assertEqual(admin_model(gw, "gpt-a")["resilience"]["breaker"], "closed")


class BudgetAndDeadline(H.unittest.TestCase):
    """Must show 2."""

    def test_all_503(self):
        with H.gateway(lambda a, b: config(a, b, server_resil={
                "max_attempts": 3, "retries_per_deployment": 1}), 2) as (gw, a, b):
            a.set_config({"status": 503})
            b.set_config({"status": 503})
            n, deadline_ms = 600, 800
            res = load(gw.port, n, 20, headers={"x-skuld-deadline-ms": str(deadline_ms)})
            self.assertEqual(len(res), n)
            for st, hd, el, rid_ok, body in res:
                self.assertGreaterEqual(st, 500, body)
                self.assertIn("error", json.loads(body))
                self.assertLess(el, deadline_ms / 1000.0, "an error came after the deadline")
            attempts = chats(a.stats()) + chats(b.stats())
            self.assertEqual(attempts, sum(int(hd["x-skuld-attempts"]) for _, hd, _, _, _ in res))
            bound = 1.2 * n + 3
            print("\n  all-503: %d client requests -> %d upstream attempts (bound %.0f); "
                  "slowest error %.0f ms (deadline %d ms)" %
                  (n, attempts, bound, 1000 * max(r[2] for r in res), deadline_ms),
                  file=sys.stderr)
            self.assertLessEqual(attempts, bound)
            # A slow upstream: the deadline cuts it short with 504, before the deadline.
            a.set_config({"latency_ms": 3000})
            b.set_config({"latency_ms": 3000})
            t0 = time.monotonic()
            r = H.chat(gw.port, model="gpt-a", headers={"x-skuld-deadline-ms": "600"})
            took = time.monotonic() - t0
            self.assertEqual(r.status, 504, r)
            self.assertEqual(r.json()["error"]["code"], "deadline_exceeded")
            self.assertLess(took, 0.6)
            self.assertGreater(took, 0.4)


    def test_all_503_budget_alone(self):
        """The same with breakers off: the retry budget alone keeps retries in
        flight under 20% of active requests (attempts would be 3x without it)."""
        with H.gateway(lambda a, b: config(a, b, server_resil={
                "max_attempts": 3, "retries_per_deployment": 1,
                "breaker_failures": 0, "breaker_failure_rate": 0}), 2) as (gw, a, b):
            a.set_config({"status": 503})
            b.set_config({"status": 503})
            n, deadline_ms = 600, 800
            res = load(gw.port, n, 20, headers={"x-skuld-deadline-ms": str(deadline_ms)})
            for st, hd, el, rid_ok, body in res:
                self.assertGreaterEqual(st, 500, body)
                self.assertIn("error", json.loads(body))
                self.assertLess(el, deadline_ms / 1000.0, "an error came after the deadline")
            attempts = chats(a.stats()) + chats(b.stats())
            print("\n  all-503, breakers off: %d client requests -> %d upstream attempts "
                  "(bound %.0f)" % (n, attempts, 1.2 * n + 3), file=sys.stderr)
            self.assertLessEqual(attempts, 1.2 * n + 3)
            self.assertGreater(attempts, n)  # retries did happen, within the budget


class Hedging(H.unittest.TestCase):
    """Must show 3."""

    def test_hedge_10pct_stalls(self):
        with H.gateway(lambda a, b: config(a, b, resil_a={"hedge_delay": "200ms"}),
                       2) as (gw, a, b):
            a.set_config({"stall_rate": 0.1, "stall_ms": 5000})
            n = 400
            t0 = time.monotonic()
            res = load(gw.port, n, 8)
            took = time.monotonic() - t0
            t_done = time.monotonic()
            self.assertEqual(len(res), n)
            self.assertTrue(all(r[0] == 200 for r in res), [r[0] for r in res if r[0] != 200])
            self.assertTrue(all(r[3] for r in res), "a response did not match its request")
            lat = sorted(r[2] for r in res)
            p99 = lat[int(len(lat) * 0.99) - 1]
            hedged = [r for r in res if r[1]["x-skuld-attempts"] == "2"]
            sa = a.stats()
            # every stalled request was hedged and answered by B
            self.assertGreaterEqual(sa["stalls"], 15)
            slow = [(r[2], r[1]["x-skuld-attempts"], r[1]["x-skuld-model"]) for r in res
                    if r[2] > 0.15]
            self.assertEqual(len(hedged), sa["stalls"], (slow, sa))
            self.assertTrue(all(r[1]["x-skuld-model"] == "gpt-b" for r in hedged))
            # the losers' connections were closed: A has nothing in flight long
            # before the 5 s stalls would have ended
            H.wait_until(lambda: a.stats()["in_flight"] == 0, 1.0, interval=0.02,
                         what="A's stalled requests closed")
            self.assertLess(time.monotonic() - t_done, 2.0)
            sa = a.stats()
            self.assertEqual(sa["client_aborts"], sa["stalls"])
            aborts = sa["abort_after_ms"]
            med = statistics.median(aborts)
            print("\n  hedge: %d requests in %.1fs, p99 %.0f ms, %d hedged; loser closed "
                  "%.0f ms (median) / %.0f ms (max) after its start (hedge delay 200 ms)" %
                  (n, took, p99 * 1000, len(hedged), med, max(aborts)), file=sys.stderr)
            self.assertLess(p99, 1.0)
            # each loser is closed as soon as B answered (in the same loop turn):
            # A sees its client leave at ~the hedge delay + B's answer time.
            # Bounds leave room for a noisy 2-core machine; measured ~200 ms.
            self.assertLess(med, 200 + 60)
            self.assertLess(max(aborts), 200 + 400)
            # a stream is hedged before its first byte
            a.set_config({"stall_ms": 5000})
            res = H.sse_request(gw.port, H.stream_body(model="gpt-a"), timeout=10)
            self.assertEqual(res.status, 200)
            self.assertTrue(res.done)
            self.assertEqual(res.headers["x-skuld-model"], "gpt-b")
            self.assertEqual(res.headers["x-skuld-attempts"], "2")
            self.assertLess(res.events[-1].t, 1.0)


class RouteSettings(H.unittest.TestCase):
    """A route's own resilience: settings (the per-route hedge delay)."""

    def test_route_hedge_delay(self):
        routes = [{"name": "fast", "candidates": ["gpt-a"], "strategy": "score",
                   "fallbacks": ["gpt-b"], "resilience": {"hedge_delay": "150ms"}}]
        with H.gateway(lambda a, b: config(a, b, routes=routes), 2) as (gw, a, b):
            a.set_config({"stall_ms": 3000})
            t0 = time.monotonic()
            r = H.chat(gw.port, content="x", model="fast")
            took = time.monotonic() - t0
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["x-skuld-model"], "gpt-b")  # hedged to B
            self.assertEqual(r.headers["x-skuld-attempts"], "2")
            self.assertLess(took, 1.5)
            # the model itself has no hedge: the same request by model name waits
            # for A's stall (then A answers)
            a.set_config({"stall_ms": 800})
            t0 = time.monotonic()
            r = H.chat(gw.port, content="x", model="gpt-a")
            took = time.monotonic() - t0
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["x-skuld-model"], "gpt-a")
            self.assertEqual(r.headers["x-skuld-attempts"], "1")
            self.assertGreater(took, 0.7)


class RouteTimeouts(H.unittest.TestCase):
    """A route's per-try timeout applies to the attempts of requests to it."""

    def test_route_per_try_timeout(self):
        routes = [{"name": "quick", "candidates": ["gpt-a"], "fallbacks": ["gpt-b"],
                   "resilience": {"per_try_timeout": "200ms"}}]
        with H.gateway(lambda a, b: config(a, b, routes=routes), 2) as (gw, a, b):
            a.set_config({"latency_ms": 1500})
            t0 = time.monotonic()
            r = H.chat(gw.port, content="x", model="quick")
            took = time.monotonic() - t0
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["x-skuld-model"], "gpt-b")  # A timed out at 200 ms
            self.assertLess(took, 1.0)
            # by model name (no per-try timeout), A is waited for
            r = H.chat(gw.port, content="x", model="gpt-a")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["x-skuld-model"], "gpt-a")


class Streams(H.GatewayTest):
    """Must show 4."""

    mock_names = ("a", "b")

    @classmethod
    def config(cls):
        return config(cls.a, cls.b, resil_a={"first_chunk_timeout": "300ms",
                                             "idle_gap_timeout": "500ms"},
                      extra_models=[{"name": "gpt-s", "provider": "a"}])

    def setUp(self):
        self.a.reset()
        self.b.reset()

    def test_cut_after_5_chunks(self):
        self.a.set_config({"chunks": 10, "cut_after": 5})
        res = H.sse_request(self.gw.port, H.stream_body(model="gpt-a"), timeout=10)
        self.assertEqual(res.status, 200)
        self.assertNotIn("[DONE]", res.data)
        self.assertEqual(res.content(), "c0 c1 c2 c3 c4 ")
        errs = res.errors()
        self.assertEqual(len(errs), 1, res.events)
        self.assertEqual(res.json_events()[-1], errs[0])  # the error is the last event
        self.assertEqual(res.headers["x-skuld-model"], "gpt-a")
        self.assertEqual(self.b.stats()["requests"], 0, "a started stream must not fail over")

    def test_stall_before_first_chunk_fails_over(self):
        self.a.set_config({"stall_ms": 5000})
        res = H.sse_request(self.gw.port, H.stream_body(model="gpt-a"), timeout=10)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.done)
        self.assertEqual(res.errors(), [])
        self.assertEqual(res.content(), "c0 c1 c2 c3 c4 ")
        self.assertEqual(res.headers["x-skuld-model"], "gpt-b")
        self.assertEqual(res.headers["x-skuld-attempts"], "2")
        self.assertLess(res.events[-1].t, 2.0)
        H.wait_until(lambda: self.a.stats()["in_flight"] == 0, 2, what="A's call closed")

    def test_stream_failures_count_for_the_breaker(self):
        # gpt-s: A alone (its own breaker). Streams cut mid-way are failures.
        self.a.set_config({"chunks": 10, "cut_after": 2})
        for i in range(5):
            self.assertEqual(breaker(self.gw, "gpt-s"), 0, "opened after %d cut streams" % i)
            res = H.sse_request(self.gw.port, H.stream_body(model="gpt-s"), timeout=10)
            self.assertEqual(len(res.errors()), 1)
        self.assertEqual(breaker(self.gw, "gpt-s"), 1)

    def test_idle_gap_after_first_chunk(self):
        self.a.set_config({"chunks": 4, "chunk_gap_ms": 2000})
        res = H.sse_request(self.gw.port, H.stream_body(model="gpt-a"), timeout=10)
        self.assertEqual(res.status, 200)
        self.assertNotIn("[DONE]", res.data)
        self.assertEqual(len(res.errors()), 1)
        self.assertEqual(res.errors()[0]["error"]["code"], "upstream_timeout")
        self.assertLess(res.events[-1].t, 2.0)


class FallbackKinds(H.GatewayTest):
    """Context length -> a larger window; content policy -> the alternate;
    cloud failure and rate limit -> a local model; other client errors pass."""

    mock_names = ("a", "b")

    @classmethod
    def config(cls):
        return {
            "server": {"workers": 1, "health_interval": "0s"},
            "providers": [{"name": "a", "type": "openai", "base_url": cls.a.base_url},
                          {"name": "b", "type": "openai", "base_url": cls.b.base_url},
                          {"name": "builtin", "type": "echo"}],
            "models": [
                {"name": "small", "provider": "a", "context_window": 4000,
                 "fallbacks": ["tiny", "big", "local"], "on_content_policy": "alt",
                 "resilience": {"max_attempts": 4}},
                {"name": "tiny", "provider": "b", "context_window": 2000},
                {"name": "big", "provider": "b", "context_window": 128000},
                {"name": "alt", "provider": "b"},
                {"name": "local", "provider": "builtin"},
                {"name": "pt", "provider": "a", "fallbacks": ["big"],
                 "resilience": {"per_try_timeout": "200ms"}},
                {"name": "solo", "provider": "a",
                 "resilience": {"retries_per_deployment": 2, "breaker_failures": 0,
                                "breaker_failure_rate": 0}},
            ],
        }

    def setUp(self):
        self.a.set_config({})
        self.b.set_config({})

    def error_body(self, code):
        return json.dumps({"error": {"message": "no", "type": "invalid_request_error",
                                     "param": None, "code": code}})

    def test_context_length_goes_to_larger_window(self):
        self.a.set_config({"status": 400, "error_body": self.error_body("context_length_exceeded")})
        r = H.chat(self.gw.port, model="small")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["x-skuld-model"], "big")  # not "tiny" (2000 < 4000)
        self.assertEqual(r.headers["x-skuld-attempts"], "2")

    def test_content_policy_goes_to_alternate(self):
        self.a.set_config({"status": 400,
                           "error_body": self.error_body("content_policy_violation")})
        r = H.chat(self.gw.port, model="small")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["x-skuld-model"], "alt")

    def test_cloud_failures_fall_back_to_local(self):
        self.a.set_config({"status": 429, "retry_after": "1"})
        self.b.set_config({"status": 503})
        r = H.chat(self.gw.port, model="small")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["x-skuld-model"], "local")
        self.assertEqual(r.headers["x-skuld-attempts"], "4")  # small, tiny, big, local
        self.assertEqual(r.headers["x-skuld-provider"], "builtin")

    def test_per_try_timeout_then_fallback(self):
        self.a.set_config({"latency_ms": 3000})
        t0 = time.monotonic()
        r = H.chat(self.gw.port, model="pt")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["x-skuld-model"], "big")
        self.assertEqual(r.headers["x-skuld-attempts"], "2")
        self.assertLess(took, 1.5)
        self.assertGreater(took, 0.18)

    def test_retry_same_deployment_honours_retry_after(self):
        self.a.reset()
        self.a.set_config({"status": 503, "retry_after": "1"})
        t0 = time.monotonic()
        r = H.chat(self.gw.port, model="solo")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 503)  # the upstream's answer, after 3 attempts
        self.assertEqual(r.headers["x-skuld-attempts"], "3")
        self.assertEqual(r.headers.get("retry-after"), "1")
        self.assertEqual(chats(self.a.stats()), 3)
        # two waits of Retry-After: 1 (libevent schedules timers from the loop's
        # cached time, which can be a few ms old: allow that much)
        self.assertGreaterEqual(took, 1.95)
        self.assertLess(took, 4.0)
        # a Retry-After over retry_after_max (2s): not retried
        self.a.set_config({"status": 503, "retry_after": "30"})
        t0 = time.monotonic()
        r = H.chat(self.gw.port, model="solo")
        self.assertEqual((r.status, r.headers["x-skuld-attempts"]), (503, "1"))
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_other_client_error_passes_through(self):
        self.a.set_config({"status": 400})
        r = H.chat(self.gw.port, model="small")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.headers["x-skuld-model"], "small")
        self.assertEqual(r.headers["x-skuld-attempts"], "1")


class PriorityQueue(H.unittest.TestCase):
    """Must show 5."""

    def test_priority_and_overflow(self):
        def queue_config(q):
            return {
                "server": {"workers": 1},
                "providers": [{"name": "q", "type": "openai", "base_url": q.base_url}],
                "models": [
                    {"name": "slow", "provider": "q",
                     "resilience": {"max_concurrency": 1, "queue_size": 8,
                                    "queue_timeout": "20s"}},
                    {"name": "tiny", "provider": "q",
                     "resilience": {"max_concurrency": 1, "queue_size": 4,
                                    "queue_timeout": "300ms"}},
                ],
            }

        with H.gateway(queue_config) as (gw, q):
            done = {}
            lock = threading.Lock()

            def send(name, model, latency, prio=None):
                h = {"x-skuld-priority": prio} if prio else {}
                r = H.chat(gw.port, model=model, mock={"latency_ms": latency}, headers=h)
                with lock:
                    done[name] = (time.monotonic(), r)

            def waiting(model):
                return metric(gw, "skuld_queue_waiting", model)

            blocker = threading.Thread(target=send, args=("blocker", "slow", 1500))
            blocker.start()
            H.wait_until(lambda: q.stats()["in_flight"] == 1, 5, what="blocker at the mock")
            threads = []
            order = [("low%d" % i, "low") for i in range(4)] + \
                    [("high%d" % i, "high") for i in range(4)]
            for k, (name, prio) in enumerate(order):
                t = threading.Thread(target=send, args=(name, "slow", 60, prio))
                t.start()
                threads.append(t)
                H.wait_until(lambda: waiting("slow") == k + 1, 5, what="%s queued" % name)
            # another deployment with a free slot does not wait behind them
            r = H.chat(gw.port, model="tiny", mock={"latency_ms": 10})
            self.assertEqual(r.status, 200)
            self.assertEqual(waiting("slow"), 8)
            # the queue is full (8): one more is refused at once
            r = H.chat(gw.port, model="slow", mock={"latency_ms": 60})
            H.check_error_shape(self, r, 429, "queue_full")
            self.assertTrue(r.headers.get("retry-after"), r.headers)
            for t in threads + [blocker]:
                t.join()
            self.assertTrue(all(v[1].status == 200 for v in done.values()),
                            {k: v[1].status for k, v in done.items()})
            highs = [done["high%d" % i][0] for i in range(4)]
            lows = [done["low%d" % i][0] for i in range(4)]
            self.assertLess(max(highs), min(lows), "a low-priority request finished first")
            # FIFO within a class
            self.assertEqual(sorted(highs), highs)
            self.assertEqual(sorted(lows), lows)
            # queue timeout: 429 with Retry-After too
            blocker = threading.Thread(target=send, args=("b2", "tiny", 1500))
            blocker.start()
            H.wait_until(lambda: q.stats()["in_flight"] == 1, 5, what="blocker at the mock")
            t0 = time.monotonic()
            r = H.chat(gw.port, model="tiny", mock={"latency_ms": 10})
            took = time.monotonic() - t0
            H.check_error_shape(self, r, 429, "queue_timeout")
            self.assertTrue(r.headers.get("retry-after"))
            self.assertGreater(took, 0.25)
            self.assertLess(took, 1.2)
            blocker.join()
            self.assertEqual(metric(gw, "skuld_queue_rejected_total", "slow"), 1)
            self.assertEqual(metric(gw, "skuld_queue_rejected_total", "tiny"), 1)
            self.assertEqual(waiting("slow") + waiting("tiny"), 0)
            # the gateway's own 429s never count against the deployment
            self.assertEqual(metric(gw, "skuld_breaker_opens_total", "slow"), 0)
            self.assertEqual(metric(gw, "skuld_breaker_opens_total", "tiny"), 0)


if __name__ == "__main__":
    H.main()
