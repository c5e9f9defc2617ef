"""
SIGTERM drain: streams in flight finish with [DONE], new connections are
refused right after the signal, in-flight plain requests are answered (with
Connection: close), idle keep-alive connections are closed, and skuld exits 0
once idle -- well within server.drain_timeout. Past the drain timeout the
rest is aborted and skuld still exits 0. A client that abandoned a half-sent
request body must not hold the drain up.
"""
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def refused(port):
    try:
        s = socket.create_connection((H.HOST, port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


class DrainTest(H.MockTest):
    def start(self, drain="10s", workers=2):
        return H.Skuld(H.base_config(self.mock, server={"drain_timeout": drain,
                                                        "workers": workers}))

    def test_sigterm_drains_streams(self):
        gw = self.start("10s")
        n, chunks = 5, 20
        results = [None] * n
        progress = [threading.Event() for _ in range(n)]

        def run(i):
            def on_event(res, ev):
                if len(res.events) >= 3:
                    progress[i].set()
            results[i] = H.sse_request(gw.port, H.stream_body(mock={"chunks": chunks,
                                                                    "chunk_gap_ms": 100}),
                                       on_event=on_event, timeout=30)

        ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        try:
            for e in progress:
                self.assertTrue(e.wait(10), "streams did not start")
            t_sig = time.monotonic()
            gw.signal(signal.SIGTERM)
            # new connections are refused from (almost) right after the signal
            H.wait_until(lambda: refused(gw.port), 2.0, what="connections refused after SIGTERM")
            t_refused = time.monotonic() - t_sig
            for _ in range(5):
                self.assertTrue(refused(gw.port), "a new connection was accepted while draining")
                time.sleep(0.05)
            self.assertTrue(gw.alive(), "skuld exited before its streams finished")
        finally:
            for t in ts:
                t.join(30)
        rc = gw.wait(12)
        t_exit = time.monotonic() - t_sig
        for i, r in enumerate(results):
            self.assertIsNotNone(r, "stream %d did not return" % i)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.done, "stream %d ended without [DONE]: %r" % (i, r.events[-2:]))
            self.assertTrue(r.complete, "stream %d: chunked body not terminated" % i)
            self.assertEqual(r.errors(), [])
            self.assertEqual(r.content(), "".join("c%d " % k for k in range(chunks)))
        self.assertEqual(rc, 0)
        self.assertLess(t_refused, 2.0)
        # the streams need ~2.3 s from their start; exit soon after they end
        self.assertLess(t_exit, 6.0, "skuld lingered after its streams finished")
        self.assertNotIn("drain timeout", gw.stderr())

    def test_inflight_request_and_idle_connection(self):
        gw = self.start("10s")
        idle = H.RawConn(gw.port)
        busy = H.RawConn(gw.port)
        try:
            idle.send(H.http_request_bytes("GET", "/healthz"))
            self.assertEqual(idle.read_response().status, 200)  # now idle, kept alive
            busy.send(H.http_request_bytes("POST", "/v1/chat/completions",
                                           {"model": "gpt-test",
                                            "messages": [{"role": "user", "content": "x"}],
                                            "mock": {"latency_ms": 1000}}))
            H.wait_until(lambda: self.mock.stats()["in_flight"] >= 1, 5, what="request at mock")
            t_sig = time.monotonic()
            gw.signal(signal.SIGTERM)
            self.assertTrue(idle.closed_by_peer(3), "idle keep-alive connection not closed")
            r = busy.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["object"], "chat.completion")
            self.assertEqual(r.headers.get("connection", "").lower(), "close")
            self.assertTrue(busy.closed_by_peer(3))
            rc = gw.wait(10)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t_sig, 4.0)
        finally:
            idle.close()
            busy.close()

    def test_idle_server_exits_at_once(self):
        gw = self.start("10s")
        H.chat(gw.port)
        t = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assertEqual(gw.wait(10), 0)
        self.assertLess(time.monotonic() - t, 2.0)

    def test_sigint_same_as_sigterm(self):
        gw = self.start("10s")
        t = time.monotonic()
        gw.signal(signal.SIGINT)
        self.assertEqual(gw.wait(10), 0)
        self.assertLess(time.monotonic() - t, 2.0)

    def test_sighup_keeps_serving(self):
        gw = self.start("10s")
        res = []
        t = threading.Thread(target=lambda: res.append(H.sse_request(
            gw.port, H.stream_body(mock={"chunks": 5, "chunk_gap_ms": 100}))))
        t.start()
        time.sleep(0.2)
        gw.signal(signal.SIGHUP)
        t.join(15)
        self.assertTrue(res and res[0].done, "a stream in flight did not survive SIGHUP")
        self.assertTrue(gw.alive())
        self.assertEqual(H.chat(gw.port).status, 200)
        self.assertEqual(gw.stop(), 0)

    def test_drain_timeout_aborts_the_rest(self):
        gw = self.start("1s")
        started = threading.Event()
        out = []

        def run():
            out.append(H.sse_request(gw.port, H.stream_body(mock={"chunks": 100,
                                                                  "chunk_gap_ms": 100}),
                                     on_event=lambda r, e: started.set(), timeout=30))

        t = threading.Thread(target=run)
        t.start()
        try:
            self.assertTrue(started.wait(10))
            t_sig = time.monotonic()
            gw.signal(signal.SIGTERM)
            rc = gw.wait(10)
            took = time.monotonic() - t_sig
        finally:
            t.join(15)
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(took, 0.9, "exited before the drain timeout")
        self.assertLess(took, 3.5)
        self.assertTrue(out)
        self.assertFalse(out[0].done, "an aborted stream must not end with [DONE]")
        self.assertFalse(out[0].complete and not out[0].errors(),
                         "an aborted stream must not look like a clean end")
        # the upstream transfer was cancelled with it
        H.wait_until(lambda: self.mock.stats()["in_flight"] == 0, 5, what="mock in_flight 0")

    def test_abandoned_upload_does_not_hold_drain(self):
        # A client sends a head and part of the body, then gives up. Nothing
        # is in flight after that, so SIGTERM must exit at once -- not wait
        # for the whole drain_timeout (10 s here).
        gw = self.start("10s", workers=1)
        s = socket.create_connection((H.HOST, gw.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo")
        time.sleep(0.1)
        s.close()
        time.sleep(0.2)
        self.assertEqual(H.request(gw.port, "GET", "/healthz").status, 200)
        t = time.monotonic()
        gw.signal(signal.SIGTERM)
        rc = gw.wait(15)
        took = time.monotonic() - t
        self.assertEqual(rc, 0)
        self.assertNotIn("drain timeout", gw.stderr())
        self.assertLess(took, 2.0, "SIGTERM with nothing in flight took %.1fs" % took)

    def test_abandoned_chunked_upload_does_not_hold_drain(self):
        gw = self.start("10s", workers=1)
        s = socket.create_connection((H.HOST, gw.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n")
        time.sleep(0.1)
        s.close()
        time.sleep(0.2)
        t = time.monotonic()
        gw.signal(signal.SIGTERM)
        rc = gw.wait(15)
        took = time.monotonic() - t
        self.assertEqual(rc, 0)
        self.assertLess(took, 2.0, "SIGTERM with nothing in flight took %.1fs" % took)


if __name__ == "__main__":
    H.main()
