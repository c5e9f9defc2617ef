"""
Upstream HTTP/1.1 client behaviour on the wire (the native client, src/upstream/h1.c;
with SKULD_UPSTREAM=curl the same tests check libcurl's path).

The upstream here is a raw socket server in this file, so each test scripts
exactly what a connection does: answer with Content-Length, chunked or
close-delimited bodies, Connection: close, oversized headers, or read a request
and close without answering (a stale keep-alive connection). One worker and
max_attempts 1, so the gateway's own retries never hide what the client did.

  1. The request on the wire: POST, path, Host, Content-Length, the provider's
     headers, the body.
  2. Sequential calls reuse one keep-alive connection.
  3. A reused connection closed by the upstream before any response byte is
     retried once on a fresh connection: the client gets 200, one attempt.
  4. Connection: close is honoured: the next call opens a new connection.
  5. A close-delimited body is complete at EOF; oversized response headers and
     a fresh connection closed without a reply are 502s.
  6. A chunked event stream flows event by event (the first event reaches the
     client while the upstream still holds the rest).
  7. Connect timeout (a listener whose accept queue is full drops the SYN):
     504 upstream_timeout after ~connect_timeout; a refused connect: 502
     upstream_unreachable at once.
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

COMPLETION = json.dumps({
    "id": "x", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()


def ok_response(extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (len(COMPLETION), extra)) + COMPLETION


class RawUpstream:
    """Accepts connections; for each request calls handler(req, nth_on_conn, conn_id),
    which returns the bytes to send (then keeps reading) or None (close now), or a
    callable(sock) that writes the answer itself and returns True to keep the
    connection."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind((H.HOST, 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []  # (conn_id, method, path, headers, body)
        self.connections = 0
        self.next_cid = 0
        self.handler = lambda req, nth, cid: ok_response()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self, handler):
        """New script; counts restart (connection ids keep growing)."""
        with self.lock:
            self.requests = []
            self.connections = 0
            self.handler = handler

    def last_cid(self):
        with self.lock:
            return self.requests[-1][0]

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.next_cid += 1
                cid = self.next_cid
            threading.Thread(target=self._serve, args=(s, cid), daemon=True).start()

    def _serve(self, s, cid):
        buf = b""
        nth = 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for ln in lines[1:]:
                    k, v = ln.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                nth += 1
                with self.lock:
                    self.requests.append((cid, method, path, headers, body))
                    handler = self.handler
                if path == "/v1/models":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"data\":[]}")
                    continue
                out = handler((method, path, headers, body), nth, cid)
                if out is None:
                    return
                if callable(out):
                    if not out(s):
                        return
                    continue
                s.sendall(out)
        except OSError:
            return
        finally:
            s.close()

    def chat_requests(self):
        with self.lock:
            return [r for r in self.requests if r[2] != "/v1/models"]


class UpstreamH1Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = RawUpstream()
        # A listener that never accepts, its queue filled: further SYNs are dropped.
        cls.hole = socket.socket()
        cls.hole.bind((H.HOST, 0))
        cls.hole.listen(0)
        hole_port = cls.hole.getsockname()[1]
        cls.fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect((H.HOST, hole_port))
            except BlockingIOError:
                pass
            cls.fillers.append(f)
        closed_port = H.free_port()
        cfg = {
            "server": {"workers": 1, "resilience": {"max_attempts": 1},
                       "connect_timeout": "300ms"},
            "providers": [{"name": "raw", "type": "openai",
                           "base_url": "http://127.0.0.1:%d/v1" % cls.up.port,
                           "api_key": "env:SKULD_IT_H1_KEY"},
                          {"name": "hole", "type": "openai",
                           "base_url": "http://127.0.0.1:%d/v1" % hole_port},
                          {"name": "closed", "type": "openai",
                           "base_url": "http://127.0.0.1:%d/v1" % closed_port}],
            "models": [{"name": "gpt-test", "provider": "raw", "model": "up-model"},
                       {"name": "gpt-hole", "provider": "hole", "model": "m"},
                       {"name": "gpt-closed", "provider": "closed", "model": "m"}],
        }
        cls.gw = H.Skuld(cfg, env={"SKULD_IT_H1_KEY": "sk-h1-test"})

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def setUp(self):
        # Start every test on fresh connections: the previous test's pooled one
        # belongs to its own handler's script.
        self.up.reset(lambda req, nth, cid: ok_response())
        r = H.chat(self.gw.port)  # the gateway's pool now holds this live connection
        self.assertEqual(r.status, 200, r)
        self.pooled = self.up.last_cid()

    def test_1_request_on_the_wire(self):
        self.up.reset(lambda req, nth, cid: ok_response())
        r = H.chat(self.gw.port, content="wire check")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "hi there")
        (cid, method, path, hd, body), = self.up.chat_requests()
        self.assertEqual(method, "POST")
        self.assertEqual(path, "/v1/chat/completions")
        self.assertEqual(hd["host"], "127.0.0.1:%d" % self.up.port)
        self.assertEqual(int(hd["content-length"]), len(body))
        self.assertEqual(hd["content-type"], "application/json")
        self.assertEqual(hd["authorization"], "Bearer sk-h1-test")
        self.assertNotIn("expect", hd)
        sent = json.loads(body)
        self.assertEqual(sent["model"], "up-model")
        self.assertEqual(sent["messages"][0]["content"], "wire check")

    def test_2_keepalive_reused(self):
        self.up.reset(lambda req, nth, cid: ok_response())
        for _ in range(5):
            r = H.chat(self.gw.port)
            self.assertEqual(r.status, 200, r)
        reqs = self.up.chat_requests()
        self.assertEqual(len(reqs), 5)
        self.assertEqual(self.up.connections, 0, "the pooled connection from setUp is reused")

    def test_3_stale_reuse_retried_on_fresh_connection(self):
        # The pooled connection (opened in setUp) reads the next request and
        # closes without a byte: the client must retry on a new connection.
        self.up.reset(lambda req, nth, cid: None if cid == self.pooled else ok_response())
        r = H.chat(self.gw.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-skuld-attempts"), "1")
        reqs = self.up.chat_requests()
        self.assertEqual(len(reqs), 2, reqs)
        self.assertEqual(self.up.connections, 1)

    def test_4_connection_close_honoured(self):
        self.up.reset(lambda req, nth, cid: ok_response(b"Connection: close\r\n"))
        for _ in range(3):
            r = H.chat(self.gw.port)
            self.assertEqual(r.status, 200, r)
        # setUp's pooled connection answered the first with close; the next two
        # each needed a new connection.
        self.assertEqual(self.up.connections, 2)
        cids = [r[0] for r in self.up.chat_requests()]
        self.assertEqual(cids[0], self.pooled)
        self.assertEqual(len(set(cids)), 3)

    def test_5a_close_delimited_body(self):
        def answer(req, nth, cid):
            def w(s):
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
                s.sendall(COMPLETION[:20])
                time.sleep(0.05)
                s.sendall(COMPLETION[20:])
                return False  # close: that ends the body
            return w
        self.up.reset(answer)
        r = H.chat(self.gw.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "hi there")

    def test_5b_oversized_headers_rejected(self):
        big = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(80))
        self.up.reset(lambda req, nth, cid: ok_response(big))
        r = H.chat(self.gw.port)
        self.assertEqual(r.status, 502, r)

    def test_5c_fresh_connection_closed_without_reply(self):
        self.up.reset(lambda req, nth, cid: None)
        r = H.chat(self.gw.port)  # the pooled one closes, the fresh one too: no retry loop
        self.assertEqual(r.status, 502, r)
        self.assertEqual(len(self.up.chat_requests()), 2)

    def test_6_chunked_stream_flows_event_by_event(self):
        release = threading.Event()

        def answer(req, nth, cid):
            def w(s):
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
                for i in range(3):
                    ev = json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 1,
                                     "model": "m", "choices": [{"index": 0, "delta":
                                                                {"content": "t%d" % i},
                                                                "finish_reason": None}]})
                    data = ("data: %s\n\n" % ev).encode()
                    s.sendall(b"%x;ext=1\r\n%s\r\n" % (len(data), data))
                    if i == 0:
                        release.wait(10)
                s.sendall(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
                return True
            return w
        self.up.reset(answer)
        seen_first = []

        def on_event(res, ev):
            if not seen_first:
                seen_first.append(time.monotonic())
                release.set()  # only now does the upstream send the rest

        r = H.sse_request(self.gw.port, {"model": "gpt-test", "stream": True,
                                         "messages": [{"role": "user", "content": "x"}]},
                          on_event=on_event, timeout=20)
        self.assertEqual(r.status, 200)
        self.assertTrue(seen_first, "no event before the upstream was released")
        texts = [json.loads(d)["choices"][0]["delta"].get("content") for d in r.data
                 if d != "[DONE]" and json.loads(d).get("choices")]
        self.assertEqual([t for t in texts if t], ["t0", "t1", "t2"])
        self.assertTrue(r.complete)

    def test_7_connect_timeout_and_refused(self):
        t0 = time.monotonic()
        r = H.chat(self.gw.port, model="gpt-hole", timeout=20)
        took = time.monotonic() - t0
        H.check_error_shape(self, r, 504, "upstream_timeout")
        self.assertGreater(took, 0.25)
        self.assertLess(took, 5.0)
        t0 = time.monotonic()
        r = H.chat(self.gw.port, model="gpt-closed", timeout=20)
        H.check_error_shape(self, r, 502, "upstream_unreachable")
        self.assertLess(time.monotonic() - t0, 5.0)


if __name__ == "__main__":
    H.main()
