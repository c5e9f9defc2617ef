"""
Client disconnects: a client that leaves mid-stream (or while waiting for a
non-streamed answer) makes skuld cancel the upstream transfer at once (the
mock counts it in client_aborts), skuld keeps serving, the in-flight gauge
returns to 0, and the access log records status 499.
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROMPT = 1.5  # seconds allowed for the upstream cancel to reach the mock ("~1 s")


class DisconnectTest(H.GatewayTest):  # config: H.base_config(cls.mock)
    def setUp(self):
        # earlier tests' upstream calls must be over before counters are read
        H.wait_until(lambda: self.mock.stats()["in_flight"] == 0, 10, what="mock idle")
        self.mock.reset()

    def in_flight(self):
        s, _ = H.metrics_parse(self.gw.metrics())
        return H.metric(s, "skuld_requests_in_flight", None, model="gpt-test", provider="mock")

    def wait_aborts(self, n, since):
        st = H.wait_until(lambda: (lambda s: s if s["client_aborts"] >= n else None)(self.mock.stats()),
                          10, interval=0.01, what="%d client_aborts at the mock" % n)
        return st, time.monotonic() - since

    def test_disconnect_mid_stream_cancels_upstream(self):
        rid = "disc-stream-1"
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 100, "chunk_gap_ms": 100}),
                            headers={"X-Request-Id": rid}, stop_after=2)
        t_close = time.monotonic()
        self.assertTrue(res.closed_early)
        self.assertEqual(len(res.events), 2)
        st, took = self.wait_aborts(1, t_close)
        self.assertLess(took, PROMPT, "upstream transfer not cancelled promptly")
        self.assertEqual(st["streams_completed"], 0)
        self.assertEqual(st["client_aborts"], 1)
        # nothing left in flight, and still serving
        H.wait_until(lambda: self.mock.stats()["in_flight"] == 0, 5, what="mock in_flight 0")
        H.wait_until(lambda: self.in_flight() == 0, 5, what="skuld in-flight gauge back to 0")
        self.assertEqual(H.chat(self.port).status, 200)
        res = H.sse_request(self.port, H.stream_body())
        self.assertTrue(res.done)
        # the access log says the client left
        lines = self.gw.log_for(rid)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["status"], 499)
        self.assertTrue(lines[0]["stream"])

    def test_disconnect_with_rst(self):
        # abortive close (RST) instead of FIN
        c = H.RawConn(self.port)
        try:
            res = H.sse_request(self.port, H.stream_body(mock={"chunks": 100, "chunk_gap_ms": 100}),
                                stop_after=2, conn=c)
            self.assertTrue(res.closed_early)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            c.close()
        t_close = time.monotonic()
        _, took = self.wait_aborts(1, t_close)
        self.assertLess(took, PROMPT)
        H.wait_until(lambda: self.in_flight() == 0, 5, what="skuld in-flight gauge back to 0")
        self.assertEqual(H.chat(self.port).status, 200)

    def test_disconnect_waiting_for_non_stream_answer(self):
        rid = "disc-nonstream-1"
        s = socket.create_connection((H.HOST, self.port))
        s.sendall(H.http_request_bytes("POST", "/v1/chat/completions",
                                       {"model": "gpt-test",
                                        "messages": [{"role": "user", "content": "x"}],
                                        "mock": {"latency_ms": 5000}},
                                       {"X-Request-Id": rid}))
        H.wait_until(lambda: self.mock.stats()["in_flight"] == 1, 5, what="request at the mock")
        self.assertEqual(self.in_flight(), 1)
        s.close()
        t_close = time.monotonic()
        _, took = self.wait_aborts(1, t_close)
        self.assertLess(took, PROMPT)
        H.wait_until(lambda: self.in_flight() == 0, 5, what="skuld in-flight gauge back to 0")
        self.assertEqual(self.gw.log_for(rid)[0]["status"], 499)

    def test_many_disconnects(self):
        n = 20
        done = []

        def one(i):
            r = H.sse_request(self.port, H.stream_body(mock={"chunks": 100, "chunk_gap_ms": 100}),
                              stop_after=2 + i % 3)
            done.append((r.closed_early, time.monotonic()))

        H.run_threads(one, [(i,) for i in range(n)], 30)
        self.assertEqual(len(done), n)
        self.assertTrue(all(c for c, _ in done))
        t_last = max(t for _, t in done)
        st, took = self.wait_aborts(n, t_last)
        self.assertLess(took, PROMPT)
        self.assertEqual(st["client_aborts"], n)
        self.assertEqual(st["streams_completed"], 0)
        H.wait_until(lambda: self.in_flight() == 0, 5, what="skuld in-flight gauge back to 0")
        # keep-alive upstream connections are fine afterwards
        for _ in range(5):
            self.assertEqual(H.chat(self.port).status, 200)
            self.assertTrue(H.sse_request(self.port, H.stream_body()).done)

    def test_half_close_after_request(self):
        # A client may shut down its write side once the request is sent
        # (curl --no-keepalive does not, but some load balancers do). skuld
        # treats that as the client leaving; it must at least not wedge.
        s = socket.create_connection((H.HOST, self.port))
        s.settimeout(10)
        s.sendall(H.http_request_bytes("GET", "/healthz"))
        s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        except socket.timeout:
            self.fail("connection neither answered nor closed")
        s.close()
        self.assertEqual(H.request(self.port, "GET", "/healthz").status, 200)


if __name__ == "__main__":
    H.main()
