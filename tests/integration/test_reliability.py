"""
Reliability holes of issue 26 in the request path, each shown on the real
binary (every case failed on main before its fix):

  1. a route whose ranked candidates are all unhealthy is served by its
     healthy fallbacks; when nothing can serve, 503 with Retry-After (422
     stays for a capability no deployment has);
  2. budgets reserve every answer a request asks for (n, best_of): 200
     concurrent n=50 requests spend at most the budget plus one request's
     worst case, locally and on Redis;
  3. local budgets are rebuilt from the spend log at start: a restart
     changes nothing; the 429 message prints the budget as it is ($0.004);
  4. alerts fire on actual spend only (not at 0% when an estimate does not
     fit); without max_tokens the reservation is the deployment's observed
     output p99, so a small budget stays usable;
  5. the cache's byte cap covers the de-dup window's copies too;
  6. HTTP/1.0 with a body framed by Transfer-Encoding closes the connection.
"""
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from redisserver import RedisServer  # noqa: E402

MASTER = "mk-reliability-0123456789"
ADMIN = {"Authorization": "Bearer " + MASTER}
PRICE = 1000.0  # USD per 1M tokens: $0.001 a token


def chat_body(n=None, max_tokens=None, model="gpt-test", **mock):
    b = {"model": model, "messages": [{"role": "user", "content": "hi there"}]}
    if n is not None:
        b["n"] = n
    if max_tokens is not None:
        b["max_tokens"] = max_tokens
    if mock:
        b["mock"] = mock
    return b


def new_key(port, **opts):
    r = H.request(port, "POST", "/admin/keys", opts, ADMIN)
    assert r.status == 201, r.body
    return {"Authorization": "Bearer " + r.json()["key"]}, r.json()["id"]


def key_usage(port, kid):
    r = H.request(port, "GET", "/admin/keys/%s/usage" % kid, headers=ADMIN)
    assert r.status == 200, r.body
    return r.json()


def priced(mock, **extra):
    cfg = {
        "server": {"workers": 2, "master_key": "env:SKULD_MK"},
        "providers": [{"name": "mock", "type": "openai", "base_url": mock.base_url}],
        "models": [{"name": "gpt-test", "provider": "mock", "model": "m1",
                    "price": {"input": PRICE, "output": PRICE}}],
    }
    cfg.update(extra)
    return cfg


class FallbackChain(unittest.TestCase):
    """routes: [{name: r, candidates: [bad], fallbacks: [gone, good]}]: bad
    answers 500 (its health probe fails), gone refuses connections."""

    @classmethod
    def setUpClass(cls):
        cls.bad, cls.good = H.Mock(), H.Mock()
        cls.bad.set_config({"status": 500})
        gone = "http://127.0.0.1:%d/v1" % H.free_port()
        cls.s = H.Skuld({
            "server": {"workers": 2, "health_interval": "200ms"},
            "providers": [{"name": "pbad", "type": "openai", "base_url": cls.bad.base_url},
                          {"name": "pgone", "type": "openai", "base_url": gone},
                          {"name": "pgood", "type": "openai", "base_url": cls.good.base_url}],
            "models": [{"name": "bad", "provider": "pbad"}, {"name": "gone", "provider": "pgone"},
                       {"name": "good", "provider": "pgood"},
                       {"name": "text-only", "provider": "pgood", "capabilities": ["chat"]}],
            "routes": [{"name": "r", "candidates": ["bad"], "fallbacks": ["gone", "good"]},
                       {"name": "down", "candidates": ["bad"], "fallbacks": ["gone"]},
                       {"name": "blind", "candidates": ["text-only"]}],
        })
        # the probes have marked bad and gone unhealthy
        H.wait_until(lambda: H.chat(cls.s.port, model="down").status == 503, 10,
                     what="bad and gone probed unhealthy")

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        cls.bad.stop()
        cls.good.stop()

    def test_healthy_fallback_serves(self):
        for _ in range(100):
            r = H.chat(self.s.port, model="r")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["x-skuld-model"], "good")

    def test_total_outage_is_503_with_retry_after(self):
        r = H.chat(self.s.port, model="down")
        err = H.check_error_shape(self, r, 503, "no_deployment_available")
        self.assertIn("bad: unhealthy", err["message"])
        self.assertIn("gone: unhealthy", err["message"])
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)

    def test_capability_nobody_has_stays_422(self):
        img = {"model": "blind", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]}
        r = H.request(self.s.port, "POST", "/v1/chat/completions", img)
        H.check_error_shape(self, r, 422, "no_eligible_deployment")


class BudgetMultipliers:
    """n asks for n answers, each billed: the mock bills 200 completion
    tokens (chunks) for n=50, max_tokens=4 — as an upstream would."""

    def config(self, mock):
        raise NotImplementedError

    def test_n_cannot_overspend(self):
        mock = H.Mock()
        s = H.Skuld(self.config(mock), env={"SKULD_MK": MASTER})
        try:
            budget = 0.5
            h, kid = new_key(s.port, budget_usd=budget, period="daily")
            b = chat_body(n=50, max_tokens=4, chunks=200, latency_ms=300)  # all in flight at once
            est = len(json.dumps(b)) // 4 + 8
            worst = (est + 200) * PRICE / 1e6  # one request's reservation
            actual = (2 + 200) * PRICE / 1e6   # "hi there" + 200 tokens
            statuses = []
            lock = threading.Lock()

            def one():
                r = H.request(s.port, "POST", "/v1/chat/completions", b, h)
                with lock:
                    statuses.append(r.status)
            H.run_threads(one, [()] * 200, timeout=60)
            self.assertEqual(len(statuses), 200)
            ok = statuses.count(200)
            self.assertGreater(ok, 0)
            self.assertEqual(ok + statuses.count(429), 200, statuses)
            H.wait_until(lambda: key_usage(s.port, kid)["reserved_usd"] == 0, 5,
                         what="reservations settled")
            spent = key_usage(s.port, kid)["spend_usd"]
            self.assertAlmostEqual(spent, ok * actual, places=6)
            self.assertLessEqual(spent, budget + worst + 1e-9,
                                 "%d admitted, $%.4f spent of $%.2f" % (ok, spent, budget))
            # best_of counts the same way (completions)
            h2, kid2 = new_key(s.port, budget_usd=0.05, period="daily")
            cb = {"model": "gpt-test", "prompt": "hi there", "max_tokens": 5, "best_of": 20}
            r = H.request(s.port, "POST", "/v1/completions", cb, h2)
            err = H.check_error_shape(self, r, 429, "budget_exceeded")
            self.assertIn("may cost up to $0.1", err["message"])
        finally:
            s.stop()
            mock.stop()


class BudgetMultipliersLocal(BudgetMultipliers, unittest.TestCase):
    def config(self, mock):
        return priced(mock, auth={"required": True})


class BudgetMultipliersRedis(BudgetMultipliers, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def config(self, mock):
        return priced(mock, auth={"required": True}, redis={"url": self.redis.url})


class BudgetsSurviveRestart(unittest.TestCase):
    def test_restart_changes_nothing(self):
        mock = H.Mock()
        d = H.mkdtemp()
        cfg = priced(mock, store={"url": "sqlite://" + os.path.join(d, "s.db")},
                     auth={"required": True},
                     budgets={"teams": [{"name": "t1", "budget_usd": 0.5, "period": "monthly"}]})
        b = chat_body(max_tokens=1)  # reserves ~$0.02; costs 7 tokens = $0.007
        s = H.Skuld(cfg, env={"SKULD_MK": MASTER})
        try:
            h, kid = new_key(s.port, budget_usd=0.05, period="monthly", team="t1")
            tiny, _ = new_key(s.port, budget_usd=0.004, period="monthly")
            n = 0
            while H.request(s.port, "POST", "/v1/chat/completions", b, h).status == 200:
                n += 1
                self.assertLess(n, 20)
            self.assertGreater(n, 1)
            spent = key_usage(s.port, kid)["spend_usd"]
            self.assertAlmostEqual(spent, n * 0.007, places=9)
            r = H.request(s.port, "GET", "/admin/budgets", headers=ADMIN).json()["data"]
            team0 = [x for x in r if x.get("team") == "t1" and x["scope"] == "team"][0]
            self.assertAlmostEqual(team0["spend_usd"], spent, places=9)
        finally:
            self.assertEqual(s.stop(), 0)
        for _ in range(2):  # two restarts: the spend is still there, and no more is allowed
            s = H.Skuld(cfg, env={"SKULD_MK": MASTER})
            try:
                self.assertAlmostEqual(key_usage(s.port, kid)["spend_usd"], spent, places=9)
                r = H.request(s.port, "GET", "/admin/budgets", headers=ADMIN).json()["data"]
                team = [x for x in r if x.get("team") == "t1" and x["scope"] == "team"][0]
                self.assertAlmostEqual(team["spend_usd"], spent, places=9)
                r = H.request(s.port, "POST", "/v1/chat/completions", b, h)
                H.check_error_shape(self, r, 429, "budget_exceeded")
                r = H.request(s.port, "POST", "/v1/chat/completions", b, tiny)
                err = H.check_error_shape(self, r, 429, "budget_exceeded")
                self.assertIn("key budget of $0.004 ", err["message"])
                self.assertIn("resets in", err["message"])
            finally:
                self.assertEqual(s.stop(), 0)
        mock.stop()


class ReservationAndAlerts(unittest.TestCase):
    def test_no_max_tokens_reserves_the_observed_p99(self):
        mock = H.Mock()
        s = H.Skuld(priced(mock, limits={"default_max_tokens": 1024}),
                    env={"SKULD_MK": MASTER})
        try:
            h, kid = new_key(s.port, budget_usd=0.1, period="daily")  # < 1,024 tokens' worth
            b = chat_body(chunks=5)
            r = H.request(s.port, "POST", "/v1/chat/completions", b, h)
            H.check_error_shape(self, r, 429, "budget_exceeded")  # nothing observed yet
            for _ in range(30):  # other traffic: answers of 5 tokens
                self.assertEqual(H.request(s.port, "POST", "/v1/chat/completions", b).status, 200)
            r = H.request(s.port, "POST", "/v1/chat/completions", b, h)
            self.assertEqual(r.status, 200, r.body)
            self.assertAlmostEqual(key_usage(s.port, kid)["spend_usd"], 0.007, places=9)
        finally:
            s.stop()
            mock.stop()

    def test_no_alert_before_spend(self):
        mock = H.Mock()
        s = H.Skuld(priced(mock, auth={"required": True}), env={"SKULD_MK": MASTER})
        try:
            h, kid = new_key(s.port, budget_usd=0.0001, period="daily")
            r = H.request(s.port, "POST", "/v1/chat/completions", chat_body(max_tokens=50), h)
            H.check_error_shape(self, r, 429, "budget_exceeded")
            m, _ = H.metrics_parse(s.metrics())
            for t in ("50", "80", "100"):
                self.assertEqual(H.metric(m, "skuld_budget_alerts_total", threshold=t), 0)
            self.assertNotIn("reached", s.stderr())
        finally:
            s.stop()
            mock.stop()


class CacheCap(unittest.TestCase):
    def test_window_copies_count_against_max_bytes(self):
        mock = H.Mock()
        cap = 64 * 1024
        s = H.Skuld(priced(mock, cache={"enabled": False, "max_bytes": cap, "shards": 1,
                                        "max_entry_bytes": 16384,
                                        "dedupe": {"enabled": True, "window": "60s"}}),
                    env={"SKULD_MK": MASTER})
        try:
            for i in range(300):  # unique bodies, ~4 KB answers, each kept for the window
                b = chat_body(content="x" * 4000)
                b["messages"][0]["content"] = "unique %d" % i
                self.assertEqual(H.request(s.port, "POST", "/v1/chat/completions", b).status, 200)
            m, _ = H.metrics_parse(s.metrics())
            held = H.metric(m, "skuld_cache_bytes", tier="memory")
            self.assertGreater(held, 0)  # the windows are counted
            self.assertLessEqual(held, cap)
        finally:
            s.stop()
            mock.stop()


class Http10Chunked(unittest.TestCase):
    def test_http10_with_transfer_encoding_closes(self):
        mock = H.Mock()
        s = H.Skuld(priced(mock), env={"SKULD_MK": MASTER})
        try:
            body = json.dumps(chat_body()).encode()
            req = (b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(req)
            got = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break  # the server closed: the test's point
                got += d
            c.close()
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
        finally:
            s.stop()
            mock.stop()


if __name__ == "__main__":
    H.main()
