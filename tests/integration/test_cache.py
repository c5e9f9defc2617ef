"""
Response cache and in-flight de-duplication (issue 9), black-box against
tools/mock-upstream.

Must show 1 (test_load_500_clients): 500 concurrent clients send 1,000 chat
requests (two each). The prompts: 400 distinct, of which 30% (120) are
repeated — asked 6 times each by different clients, often at the same moment
— and the other 280 are asked once. Every request must succeed; the hit rate
(responses with x-skuld-cache: hit, whether from a stored answer, a joined
in-flight call or the 5 s window, over all requests) must be above 30%, and
the mock upstream must have seen exactly one call per distinct prompt
(GET /_mock/prompts).

Must show 3: the persistent tier keeps hits across a restart (SQLite store);
the Redis tier is shared by two instances (a real redis-server on a temporary
directory and a free port).

Also: a replayed stream is identical in shape, a late joiner of a stream gets
every event, a failure reaches every joiner, a leader whose client leaves
does not fail its joiners, the x-skuld-cache request header (no-cache,
no-store, ttl=), the temperature rule, purge, invalidation when a model's
config changes, Redis down, metrics, and joiners' own access-log lines.
"""

import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import unittest

import harness as h

MASTER = "cache-test-master-key"


def cache_cfg(mock, **cache):
    cfg = h.base_config(mock, server={"master_key": "env:SKULD_TEST_MASTER"})
    c = {"enabled": True, "ttl": "60s", "max_bytes": "32MiB"}
    c.update(cache)
    cfg["cache"] = c
    return cfg


def start(cfg, **kw):
    return h.Skuld(cfg, env={"SKULD_TEST_MASTER": MASTER}, **kw)


def admin(sk, method, path):
    return h.request(sk.port, method, path, b"{}", {"Authorization": "Bearer " + MASTER,
                                                   "Content-Type": "application/json"})


def xc(resp):
    return resp.headers.get("x-skuld-cache")


def events_of(res):
    return [(e.event, e.data) for e in res.events]


class CacheLoad(unittest.TestCase):
    maxDiff = None  # a failure shows every answer of the prompts answered twice
    @classmethod
    def setUpClass(cls):
        h.raise_nofile()

    def test_load_500_clients(self):
        mock = h.Mock()
        mock.set_config({"latency_ms": 150})
        sk = start(cache_cfg(mock))
        rnd = random.Random(9)
        hot = ["hot prompt %d" % i for i in range(120)]
        single = ["single prompt %d" % i for i in range(280)]
        prompts = single + hot * 6
        self.assertEqual(len(prompts), 1000)
        rnd.shuffle(prompts)
        results = [None] * len(prompts)
        barrier = threading.Barrier(500)

        def client(k):
            conn = None
            try:
                barrier.wait(60)
                for i in (2 * k, 2 * k + 1):
                    body = {"model": "gpt-test",
                            "messages": [{"role": "user", "content": prompts[i]}]}
                    for attempt in range(3):  # the client side may hit a transient EADDRNOTAVAIL
                        try:
                            results[i] = h.post_json(sk.port, "/v1/chat/completions", body,
                                                     timeout=60)
                            break
                        except (ConnectionError, socket.timeout) as e:
                            results[i] = e
                            time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - reported below
                results[2 * k] = results[2 * k] or e

        h.run_threads(client, [(k,) for k in range(500)], 120)
        errors = [(i, r) for i, r in enumerate(results)
                  if not isinstance(r, h.Resp) or r.status != 200]
        self.assertEqual(errors, [], "requests that failed")
        hits = sum(1 for r in results if xc(r) == "hit")
        by_src = {}
        for r in results:
            by_src[r.headers.get("x-skuld-cache-source", "-")] = \
                by_src.get(r.headers.get("x-skuld-cache-source", "-"), 0) + 1
        rate = hits / len(results)
        print("\nload: %d requests, hit rate %.1f%%, by source %s" % (len(results), 100 * rate,
                                                                     by_src))
        self.assertGreater(rate, 0.30)
        # the same prompt got the same answer every time (one upstream answer each)
        answers = {}
        for p, r in zip(prompts, results):
            answers.setdefault(p, []).append(
                (r.json()["choices"][0]["message"]["content"] + r.json()["id"],
                 xc(r), r.headers.get("x-skuld-cache-source"), r.headers.get("x-request-id")))
        split = {p: v for p, v in answers.items() if len({a[0] for a in v}) != 1}
        seen = mock.prompts()
        self.assertEqual(split, {}, "prompts answered differently (answer, cache, source, "
                         "request id); upstream calls for them: %s"
                         % {p: seen.get(p) for p in split})
        self.assertEqual(len(seen), 400)
        self.assertEqual({k: v for k, v in seen.items() if v != 1}, {},
                         "prompts the upstream saw more than once")
        self.assertEqual(set(seen), set(prompts))
        samples, _ = h.metrics_parse(sk.metrics())
        self.assertEqual(h.metric_sum(samples, "skuld_cache_hits_total"), hits)
        self.assertEqual(h.metric(samples, "skuld_cache_saved_upstream_calls_total"), 600)
        self.assertGreater(h.metric(samples, "skuld_dedupe_joined_total"), 0)
        sk.stop()


class CacheBehaviour(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = h.Mock()
        cls.sk = start(cache_cfg(cls.mock))

    def setUp(self):
        self.mock.set_config({})
        self.joined_before = h.metric(h.metrics_parse(self.sk.metrics())[0],
                                      "skuld_dedupe_joined_total")

    def test_non_stream_hit_and_headers(self):
        r1 = h.chat(self.sk.port, "plain hit")
        r2 = h.chat(self.sk.port, "plain hit", headers={"x-request-id": "cache-hit-1"})
        self.assertEqual((r1.status, xc(r1)), (200, "miss"))
        self.assertEqual((r2.status, xc(r2)), (200, "hit"))
        self.assertEqual(r2.headers.get("x-skuld-cache-source"), "memory")
        self.assertEqual(r1.body, r2.body)
        self.assertEqual(r2.headers.get("x-skuld-model"), "gpt-test")
        self.assertEqual(r2.headers.get("x-skuld-provider"), "mock")
        self.assertEqual(r2.headers.get("x-request-id"), "cache-hit-1")
        self.assertIsNone(r2.headers.get("x-skuld-cost-usd"))
        self.assertEqual(self.mock.prompts()["plain hit"], 1)
        line = self.sk.log_for("cache-hit-1")
        self.assertEqual(len(line), 1)
        self.assertEqual(line[0]["status"], 200)
        # key order and the stream/user fields do not change the key
        body = {"messages": [{"content": "plain hit", "role": "user"}], "user": "someone",
                "model": "gpt-test", "stream": False}
        r3 = h.post_json(self.sk.port, "/v1/chat/completions", body)
        self.assertEqual(xc(r3), "hit")
        # a parameter that changes the answer does
        r4 = h.chat(self.sk.port, "plain hit", max_tokens=5)
        self.assertEqual(xc(r4), "miss")

    def test_stream_replay_identical(self):
        body = h.stream_body(content="stream replay", mock={"chunks": 6})
        a = h.sse_request(self.sk.port, body)
        b = h.sse_request(self.sk.port, body)
        self.assertEqual((a.status, xc(a)), (200, "miss"))
        self.assertEqual((b.status, xc(b)), (200, "hit"))
        self.assertTrue(a.complete and b.complete)
        self.assertTrue(b.done)
        self.assertEqual(events_of(a), events_of(b))
        self.assertEqual(a.headers.get("content-type"), b.headers.get("content-type"))
        self.assertEqual(b.headers.get("x-skuld-model"), "gpt-test")
        # stream and non-stream keys are distinct; include_usage is part of the key
        r = h.chat(self.sk.port, "stream replay", mock={"chunks": 6})
        self.assertEqual(xc(r), "miss")
        self.assertEqual(r.headers.get("content-type"), "application/json")
        c = h.sse_request(self.sk.port, dict(body, stream_options={"include_usage": True}))
        self.assertEqual(xc(c), "miss")
        self.assertEqual(self.mock.prompts()["stream replay"], 3)

    def test_late_joiner_of_stream(self):
        body = h.stream_body(content="late joiner", mock={"chunks": 10, "chunk_gap_ms": 150})
        got = {}
        started = threading.Event()

        def on_event(res, ev):
            if len(res.events) == 4:
                started.set()

        def leader():
            got["leader"] = h.sse_request(self.sk.port, body, on_event=on_event)

        t = threading.Thread(target=leader)
        t.start()
        self.assertTrue(started.wait(10))
        j = h.sse_request(self.sk.port, body, headers={"x-request-id": "late-joiner-1"})
        t.join(20)
        a = got["leader"]
        self.assertEqual(j.headers.get("x-request-id"), "late-joiner-1")
        self.assertNotEqual(a.headers.get("x-request-id"), "late-joiner-1")
        self.assertEqual(j.headers.get("x-skuld-model"), a.headers.get("x-skuld-model"))
        self.assertEqual(j.headers.get("x-skuld-provider"), "mock")
        line = self.sk.log_for("late-joiner-1")
        self.assertEqual((len(line), line[0]["status"], line[0]["stream"]), (1, 200, True))
        self.assertEqual((xc(a), xc(j)), ("miss", "hit"))
        self.assertEqual(j.headers.get("x-skuld-cache-source"), "flight")
        self.assertTrue(j.complete and j.done)
        self.assertEqual(events_of(a), events_of(j))
        self.assertEqual(len(j.events), 13)  # role + 10 pieces + finish + [DONE]
        # the joiner got the first events at once (the stream had 7 x 150 ms to go),
        # the rest as they came
        self.assertLess(j.events[3].t, 0.5)
        self.assertGreater(j.events[-1].t, 0.6)
        self.assertEqual(self.mock.prompts()["late joiner"], 1)

    def test_failure_reaches_every_joiner(self):
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "fail all"}],
                "mock": {"status": 503, "latency_ms": 1500}}
        out = []
        h.run_threads(lambda: out.append(h.post_json(self.sk.port, "/v1/chat/completions", body)),
                      [()] * 8, 20)
        self.assertEqual(len(out), 8)
        self.assertEqual({r.status for r in out}, {503})
        self.assertEqual(len({r.body for r in out}), 1)
        self.assertEqual(self.mock.prompts()["fail all"], 1)
        # a failure is not cached
        r = h.post_json(self.sk.port, "/v1/chat/completions", body)
        self.assertEqual((r.status, xc(r)), (503, "miss"))

    def test_stream_failure_reaches_every_joiner(self):
        body = h.stream_body(content="cut stream", mock={"chunks": 8, "chunk_gap_ms": 100,
                                                           "cut_after": 3, "latency_ms": 1000})
        out = []
        h.run_threads(lambda: out.append(h.sse_request(self.sk.port, body)), [()] * 5, 20)
        self.assertEqual(len(out), 5)
        for r in out:
            self.assertEqual(r.status, 200)
            self.assertFalse(r.done, "a failed stream must not end with [DONE]")
            self.assertTrue(r.errors(), "every joiner gets the error event")
        self.assertEqual(self.mock.prompts()["cut stream"], 1)
        again = h.sse_request(self.sk.port, body)
        self.assertEqual(xc(again), "miss", "a stream that failed mid-way is never cached")
        self.assertEqual(self.mock.prompts()["cut stream"], 2)

    def test_leader_leaves(self):
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "leader leaves"}],
                "mock": {"latency_ms": 1500}}
        conn = h.RawConn(self.sk.port)
        conn.send(h.http_request_bytes("POST", "/v1/chat/completions", body))
        h.wait_until(lambda: self.mock.prompts().get("leader leaves") == 1, 5,
                     what="the leader's call")
        out = []
        ts = [threading.Thread(target=lambda: out.append(
            h.post_json(self.sk.port, "/v1/chat/completions", body))) for _ in range(3)]
        for t in ts:
            t.start()
        h.wait_until(lambda: h.metric(h.metrics_parse(self.sk.metrics())[0],
                                      "skuld_dedupe_joined_total") >= self.joined_before + 3, 10,
                     what="joins")
        conn.close()  # the leader's client leaves
        for t in ts:
            t.join(20)
        self.assertEqual([r.status for r in out], [200, 200, 200])
        self.assertEqual(len({r.body for r in out}), 1)
        self.assertEqual(self.mock.prompts()["leader leaves"], 2)  # cancelled, then re-led

    def test_stream_leader_leaves(self):
        """A stream joiner part-way through gets an error event; one that has
        received nothing yet starts over and gets the whole stream."""
        body = h.stream_body(content="stream leader leaves",
                             mock={"chunks": 10, "chunk_gap_ms": 150, "latency_ms": 300})
        conn = h.RawConn(self.sk.port)
        conn.send(h.http_request_bytes("POST", "/v1/chat/completions", body))
        first = threading.Event()
        got = {}

        def early(res, ev):
            first.set()

        def joiner():
            got["early"] = h.sse_request(self.sk.port, body, on_event=early)

        h.wait_until(lambda: self.mock.prompts().get("stream leader leaves") == 1, 5,
                     what="the leader's call")
        t = threading.Thread(target=joiner)
        t.start()
        self.assertTrue(first.wait(10))  # the shared stream is flowing
        conn.close()  # the leader's client leaves mid-stream
        t.join(20)
        early_res = got["early"]
        self.assertEqual(xc(early_res), "hit")
        self.assertFalse(early_res.done)
        self.assertTrue(early_res.errors(), early_res.events)
        # a joiner before the first event is re-led: it gets a complete stream
        body = h.stream_body(content="stream leader leaves early",
                             mock={"chunks": 10, "chunk_gap_ms": 20, "latency_ms": 2000})
        conn = h.RawConn(self.sk.port)
        conn.send(h.http_request_bytes("POST", "/v1/chat/completions", body))
        out = []
        t = threading.Thread(target=lambda: out.append(h.sse_request(self.sk.port, body)))
        h.wait_until(lambda: self.mock.prompts().get("stream leader leaves early") == 1, 5,
                     what="second leader's call")
        t.start()
        h.wait_until(lambda: h.metric(h.metrics_parse(self.sk.metrics())[0],
                                      "skuld_dedupe_joined_total") >= self.joined_before + 2, 10,
                     what="the second joiner joined")
        conn.close()  # before the upstream's first byte (latency 2 s)
        t.join(30)
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].done, out[0].events)
        self.assertEqual(xc(out[0]), "miss")  # it led the call that answered it
        self.assertEqual(self.mock.prompts()["stream leader leaves early"], 2)

    def test_slow_joiner(self):
        """A joiner that reads slowly is paused and resumed, and still gets every event."""
        n_chunks = 30000
        body = h.stream_body(content="slow joiner", mock={"chunks": n_chunks, "latency_ms": 200})
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("leader",
                                                           h.sse_request(self.sk.port, body)))
        t.start()
        h.wait_until(lambda: self.mock.prompts().get("slow joiner") == 1, 5,
                     what="the leader's call")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((h.HOST, self.sk.port))
        s.sendall(h.http_request_bytes("POST", "/v1/chat/completions", body))
        t.join(60)  # the leader finishes while the joiner reads nothing
        self.assertTrue(got["leader"].done)
        s.settimeout(30)
        data = bytearray()
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertIn(b"x-skuld-cache: hit", data[:2000].lower())
        self.assertEqual(data.count(b"data: "), len(got["leader"].events))
        self.assertIn(b"data: [DONE]", data[-200:])
        self.assertEqual(self.mock.prompts()["slow joiner"], 1)

    def test_request_header(self):
        h.chat(self.sk.port, "hdr")
        r = h.chat(self.sk.port, "hdr", headers={"x-skuld-cache": "no-cache"})
        self.assertEqual(xc(r), "bypass")
        self.assertEqual(self.mock.prompts()["hdr"], 2)
        r = h.chat(self.sk.port, "hdr nostore", headers={"x-skuld-cache": "no-store"})
        self.assertEqual(xc(r), "miss")
        r = h.chat(self.sk.port, "hdr nostore")
        self.assertEqual(xc(r), "miss", "no-store answers are not kept")
        r = h.chat(self.sk.port, "hdr ttl", headers={"x-skuld-cache": "ttl=1"})
        self.assertEqual(xc(h.chat(self.sk.port, "hdr ttl")), "hit")
        time.sleep(1.3)  # the entry's ttl is the condition under test
        self.assertEqual(xc(h.chat(self.sk.port, "hdr ttl")), "miss")
        bad = h.chat(self.sk.port, "hdr", headers={"x-skuld-cache": "forever"})
        h.check_error_shape(self, bad, 400, "invalid_header")

    def test_temperature_rule(self):
        h.chat(self.sk.port, "warm", temperature=0.7)
        r = h.chat(self.sk.port, "warm", temperature=0.7)
        self.assertEqual(xc(r), "bypass")
        self.assertEqual(self.mock.prompts()["warm"], 2)
        h.chat(self.sk.port, "cold", temperature=0)
        self.assertEqual(xc(h.chat(self.sk.port, "cold", temperature=0)), "hit")

    def test_purge(self):
        h.chat(self.sk.port, "purge me")
        self.assertEqual(xc(h.chat(self.sk.port, "purge me")), "hit")
        denied = h.request(self.sk.port, "POST", "/admin/cache/purge", b"{}")
        self.assertEqual(denied.status, 401)
        r = admin(self.sk, "POST", "/admin/cache/purge")
        self.assertEqual(r.status, 200, r.body)
        self.assertGreaterEqual(r.json()["purged"]["memory"], 1)
        self.assertEqual(xc(h.chat(self.sk.port, "purge me")), "miss")

    def test_messages_shape_has_its_own_entries(self):
        body = {"model": "gpt-test", "max_tokens": 50,
                "messages": [{"role": "user", "content": "anthropic shape"}]}
        a = h.post_json(self.sk.port, "/v1/messages", body)
        b = h.post_json(self.sk.port, "/v1/messages", body)
        self.assertEqual((a.status, xc(a), xc(b)), (200, "miss", "hit"))
        self.assertEqual(a.body, b.body)
        self.assertEqual(b.json()["type"], "message")
        c = h.chat(self.sk.port, "anthropic shape", max_tokens=50)
        self.assertEqual(xc(c), "miss")
        self.assertEqual(c.json()["object"], "chat.completion")
        sb = dict(body, stream=True)
        s1 = h.sse_request(self.sk.port, sb, path="/v1/messages")
        s2 = h.sse_request(self.sk.port, sb, path="/v1/messages")
        self.assertEqual((xc(s1), xc(s2)), ("miss", "hit"))
        self.assertEqual(events_of(s1), events_of(s2))
        self.assertEqual(s2.events[-1].event, "message_stop")

    def test_embeddings(self):
        body = {"model": "gpt-test", "input": ["embed me"]}
        a = h.post_json(self.sk.port, "/v1/embeddings", body)
        b = h.post_json(self.sk.port, "/v1/embeddings", body)
        self.assertEqual((a.status, xc(a), xc(b)), (200, "miss", "hit"))
        self.assertEqual(a.body, b.body)

    def test_metrics(self):
        samples, types = h.metrics_parse(self.sk.metrics())
        for fam in ("skuld_cache_hits_total", "skuld_cache_misses_total",
                    "skuld_cache_evictions_total", "skuld_dedupe_joined_total",
                    "skuld_cache_saved_cost_usd_total"):
            self.assertEqual(types.get(fam), "counter", fam)
        self.assertEqual(types.get("skuld_cache_bytes"), "gauge")
        self.assertGreater(h.metric(samples, "skuld_cache_bytes", tier="memory"), 0)


class CacheSampled(unittest.TestCase):
    def test_cache_sampled_and_dedupe_only(self):
        mock = h.Mock()
        sk = start(cache_cfg(mock, cache_sampled=True))
        h.chat(sk.port, "warm", temperature=0.7)
        self.assertEqual(xc(h.chat(sk.port, "warm", temperature=0.7)), "hit")
        sk.stop()
        # dedupe without the cache: concurrent requests share a call, nothing is stored
        cfg = cache_cfg(mock, enabled=False, dedupe={"enabled": True, "window": "1s"})
        sk = start(cfg)
        mock.set_config({"latency_ms": 1000})
        out = []
        h.run_threads(lambda: out.append(h.chat(sk.port, "dedupe only")), [()] * 6, 20)
        self.assertEqual(sorted(xc(r) for r in out), ["hit"] * 5 + ["miss"])
        self.assertEqual(mock.prompts()["dedupe only"], 1)
        r = h.chat(sk.port, "dedupe only")  # within the window
        self.assertEqual(r.headers.get("x-skuld-cache-source"), "window")
        h.wait_until(lambda: xc(h.chat(sk.port, "dedupe only")) == "miss", 5,
                     what="window over")
        sk.stop()


class CacheAndRouterStats(unittest.TestCase):
    """Answers served without an upstream attempt (hits) are not latency
    samples for the router: a deployment measured only once stays cold."""

    def test_hits_are_not_router_samples(self):
        mock = h.Mock()
        cfg = cache_cfg(mock)
        cfg["server"]["health_interval"] = "0s"
        cfg["routes"] = [{"name": "auto", "candidates": ["gpt-test"]}]
        sk = start(cfg)
        try:
            self.assertEqual(xc(h.chat(sk.port, "same question", model="auto")), "miss")
            for _ in range(6):
                self.assertEqual(xc(h.chat(sk.port, "same question", model="auto")), "hit")
            self.assertEqual(mock.prompts()["same question"], 1)
            r = h.request(sk.port, "POST", "/admin/route/explain",
                          {"model": "auto", "messages": [{"role": "user", "content": "q"}]},
                          {"Authorization": "Bearer " + MASTER})
            self.assertEqual(r.status, 200, r.body)
            cand = json.loads(r.body)["candidates"][0]
            # one real upstream sample (cold needs 3): the 6 hits did not count
            self.assertTrue(cand["cold"], cand)
        finally:
            sk.stop()
            mock.stop()


class CacheEntryCap(unittest.TestCase):
    def test_max_entry_bytes(self):
        mock = h.Mock()
        sk = start(cache_cfg(mock, max_bytes="1MiB", max_entry_bytes="2KiB"))
        small = h.stream_body(content="small stream", mock={"chunks": 3})
        big = h.stream_body(content="big stream", mock={"chunks": 200})
        big_body = {"model": "gpt-test", "messages": [{"role": "user", "content": "big body"}],
                    "mock": {"chunks": 400}}
        for b in (small, big):
            first = h.sse_request(sk.port, b)
            self.assertTrue(first.done)
        r = h.post_json(sk.port, "/v1/chat/completions", big_body)
        self.assertEqual(r.status, 200)
        self.assertGreater(len(r.body), 2048)
        self.assertEqual(xc(h.sse_request(sk.port, small)), "hit")
        again = h.sse_request(sk.port, big)
        self.assertEqual(xc(again), "miss")  # larger than max_entry_bytes: relayed, not stored
        self.assertTrue(again.done)
        self.assertEqual(len(again.events), 203)
        self.assertEqual(xc(h.post_json(sk.port, "/v1/chat/completions", big_body)), "miss")
        self.assertEqual(mock.prompts(), {"small stream": 1, "big stream": 2, "big body": 2})
        sk.stop()


class CacheJoinCap(unittest.TestCase):
    def test_max_joiners(self):
        mock = h.Mock()
        sk = start(cache_cfg(mock, dedupe={"max_joiners": 2}))
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "capped"}],
                "mock": {"latency_ms": 2000}}
        out = []
        conns = [h.RawConn(sk.port) for _ in range(3)]
        for c in conns:  # a leader and two joiners
            c.send(h.http_request_bytes("POST", "/v1/chat/completions", body))
        h.wait_until(lambda: h.metric(h.metrics_parse(sk.metrics())[0],
                                      "skuld_dedupe_joined_total") == 2, 10, what="two joins")
        extra = h.post_json(sk.port, "/v1/chat/completions", body)  # over the cap: own call
        self.assertEqual((extra.status, xc(extra)), (200, "miss"))
        for c in conns:
            r = c.read_response(method="POST")
            self.assertEqual(r.status, 200)
            c.close()
        samples, _ = h.metrics_parse(sk.metrics())
        self.assertEqual(h.metric(samples, "skuld_dedupe_rejected_total"), 1)
        self.assertEqual(mock.prompts()["capped"], 2)
        sk.stop()


class CacheReload(unittest.TestCase):
    def test_model_change_invalidates(self):
        mock = h.Mock()
        cfg = cache_cfg(mock)
        sk = start(cfg)
        h.chat(sk.port, "reload me")
        self.assertEqual(xc(h.chat(sk.port, "reload me")), "hit")
        cfg["models"][0]["model"] = "mock-model-2"
        with open(sk.config_path, "w") as f:
            f.write(h.to_yaml(cfg) + "\n")
        r = admin(sk, "POST", "/admin/reload")
        self.assertEqual(r.status, 200, r.body)
        r = h.chat(sk.port, "reload me")
        self.assertEqual(xc(r), "miss")
        self.assertEqual(mock.last()["body"]["model"], "mock-model-2")
        self.assertEqual(xc(h.chat(sk.port, "reload me")), "hit")
        sk.stop()


    def test_reload_turns_the_cache_on_and_off(self):
        mock = h.Mock()
        cfg = h.base_config(mock, server={"master_key": "env:SKULD_TEST_MASTER"})
        sk = start(cfg)
        r = h.chat(sk.port, "late cache")
        self.assertIsNone(xc(r))  # no cache section: no header, nothing stored
        cfg["cache"] = {"enabled": True}
        with open(sk.config_path, "w") as f:
            f.write(h.to_yaml(cfg) + "\n")
        self.assertEqual(admin(sk, "POST", "/admin/reload").status, 200)
        self.assertEqual(xc(h.chat(sk.port, "late cache")), "miss")
        self.assertEqual(xc(h.chat(sk.port, "late cache")), "hit")
        cfg["cache"] = {"enabled": False, "dedupe": {"enabled": False}}
        with open(sk.config_path, "w") as f:
            f.write(h.to_yaml(cfg) + "\n")
        self.assertEqual(admin(sk, "POST", "/admin/reload").status, 200)
        self.assertIsNone(xc(h.chat(sk.port, "late cache")))
        self.assertEqual(mock.prompts()["late cache"], 3)
        sk.stop()


class CacheTiers(unittest.TestCase):
    def test_persistent_tier_survives_restart(self):
        mock = h.Mock()
        d = h.mkdtemp("skuld-cache-store-")
        cfg = cache_cfg(mock, persistent=True)
        cfg["store"] = {"url": "sqlite://" + os.path.join(d, "skuld.db")}
        sk = start(cfg)
        a = h.chat(sk.port, "persist me")
        s = h.sse_request(sk.port, h.stream_body(content="persist stream"))
        self.assertEqual((xc(a), xc(s)), ("miss", "miss"))
        self.assertEqual(sk.stop(), 0)  # drains the store writer
        sk2 = start(cfg)
        b = h.chat(sk2.port, "persist me")
        s2 = h.sse_request(sk2.port, h.stream_body(content="persist stream"))
        self.assertEqual((xc(b), b.headers.get("x-skuld-cache-source")), ("hit", "store"))
        self.assertEqual(b.body, a.body)
        self.assertEqual(xc(s2), "hit")
        self.assertEqual(events_of(s), events_of(s2))
        self.assertEqual(mock.prompts(), {"persist me": 1, "persist stream": 1})
        samples, _ = h.metrics_parse(sk2.metrics())
        self.assertEqual(h.metric(samples, "skuld_cache_loaded_total", tier="store"), 2)
        # purge empties the table too
        self.assertEqual(admin(sk2, "POST", "/admin/cache/purge").status, 200)
        self.assertEqual(sk2.stop(), 0)
        sk3 = start(cfg)
        self.assertEqual(xc(h.chat(sk3.port, "persist me")), "miss")
        sk3.stop()

    def test_persistent_tier_on_postgres(self):
        import pgserver
        mock = h.Mock()
        with pgserver.PgServer() as pg:
            cfg = cache_cfg(mock, persistent=True)
            cfg["store"] = {"url": pg.url}
            sk = start(cfg)
            a = h.chat(sk.port, "persist on postgres")
            self.assertEqual(xc(a), "miss")
            self.assertEqual(sk.stop(), 0)
            sk2 = start(cfg)
            b = h.chat(sk2.port, "persist on postgres")
            self.assertEqual((xc(b), b.headers.get("x-skuld-cache-source")), ("hit", "store"))
            self.assertEqual(a.body, b.body)
            self.assertEqual(mock.prompts()["persist on postgres"], 1)
            self.assertNotIn(pg.password, sk2.stderr())
            sk2.stop()

    def test_redis_shared_by_two_instances(self):
        if not shutil.which("redis-server"):
            self.fail("redis-server is not installed")
        d = h.mkdtemp("skuld-redis-")
        port = h.free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--dir", d, "--save", "",
                                 "--appendonly", "no", "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=h._child_setup)
        h._live.append(proc)

        def redis_cmd(*args):
            return subprocess.run(["redis-cli", "-p", str(port)] + list(args),
                                  capture_output=True, text=True, timeout=5).stdout.strip()

        h.wait_until(lambda: redis_cmd("PING") == "PONG", 10, what="redis-server up")
        mock = h.Mock()
        cfg = cache_cfg(mock, redis=True)
        cfg["redis"] = {"url": "redis://127.0.0.1:%d" % port, "timeout": "200ms"}
        a = start(cfg)
        b = start(cfg)
        r1 = h.chat(a.port, "shared via redis")
        self.assertEqual(xc(r1), "miss")
        h.wait_until(lambda: redis_cmd("KEYS", "skuld:cache:*") != "", 5, what="key in redis")
        r2 = h.chat(b.port, "shared via redis")
        self.assertEqual((xc(r2), r2.headers.get("x-skuld-cache-source")), ("hit", "redis"))
        self.assertEqual(r1.body, r2.body)
        self.assertEqual(mock.prompts()["shared via redis"], 1)
        # then it is in b's memory tier
        self.assertEqual(h.chat(b.port, "shared via redis").headers.get("x-skuld-cache-source"),
                         "memory")
        # Redis down: the gateway keeps answering, fast
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        for i in range(5):
            r = h.chat(a.port, "redis down %d" % i)
            self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 5)
        samples, _ = h.metrics_parse(a.metrics())
        self.assertGreater(h.metric(samples, "skuld_cache_errors_total", tier="redis"), 0)
        a.stop()
        b.stop()

    def test_redis_password_and_db(self):
        d = h.mkdtemp("skuld-redis-")
        port = h.free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--dir", d, "--save", "",
                                 "--appendonly", "no", "--bind", "127.0.0.1",
                                 "--requirepass", "pw-9f3k"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=h._child_setup)
        h._live.append(proc)

        def redis_cmd(*args):
            return subprocess.run(["redis-cli", "--no-auth-warning", "-a", "pw-9f3k", "-p",
                                   str(port)] + list(args),
                                  capture_output=True, text=True, timeout=5).stdout.strip()

        h.wait_until(lambda: redis_cmd("PING") == "PONG", 10, what="redis-server up")
        mock = h.Mock()
        cfg = cache_cfg(mock, redis=True)
        cfg["redis"] = {"url": "env:SKULD_TEST_REDIS_URL", "timeout": "200ms"}
        sk = h.Skuld(cfg, env={"SKULD_TEST_MASTER": MASTER,
                               "SKULD_TEST_REDIS_URL": "redis://:pw-9f3k@127.0.0.1:%d/3" % port})
        self.assertEqual(xc(h.chat(sk.port, "authenticated")), "miss")
        h.wait_until(lambda: redis_cmd("-n", "3", "KEYS", "skuld:cache:*") != "", 5,
                     what="key in redis db 3")
        self.assertEqual(redis_cmd("-n", "0", "KEYS", "skuld:cache:*"), "")
        self.assertNotIn("pw-9f3k", sk.stderr())
        sk.stop()
        proc.kill()
        proc.wait()

    def test_redis_stalled(self):
        """A Redis that accepts and never answers costs a request redis.timeout, no more."""
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(64)
        held = []
        stop = threading.Event()

        def accept():
            lst.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(lst.accept()[0])
                except OSError:
                    pass

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            mock = h.Mock()
            cfg = cache_cfg(mock, redis=True)
            cfg["redis"] = {"url": "redis://127.0.0.1:%d" % lst.getsockname()[1],
                            "timeout": "100ms"}
            sk = start(cfg)
            for i in range(4):
                r = h.chat(sk.port, "stalled redis %d" % i)
                self.assertEqual((r.status, xc(r)), (200, "miss"))
                self.assertLess(r.elapsed, 2.0)
            self.assertEqual(xc(h.chat(sk.port, "stalled redis 0")), "hit")  # memory tier
            samples, _ = h.metrics_parse(sk.metrics())
            self.assertGreaterEqual(h.metric(samples, "skuld_cache_errors_total", tier="redis"),
                                    1)
            self.assertGreater(len(held), 0, "skuld never connected to the stalled server")
            sk.stop()
        finally:
            stop.set()
            t.join(2)
            for c in held:
                c.close()
            lst.close()


if __name__ == "__main__":
    h.main(timeout=290)
