"""
Error answers and HTTP/1.1 handling.

Errors: malformed JSON, bad field types, missing/unknown model (404
model_not_found), body over max_body_bytes (413), head over max_header_bytes
(431), unknown path (404), wrong method (405), upstream refused (502),
upstream timeout (504), upstream 429 with Retry-After and 500 passed through,
a stream cut mid-way (SSE error event, no [DONE]) -- always the OpenAI error
object.

HTTP: chunked request bodies, Expect: 100-continue, keep-alive reuse,
pipelining, HTTP/1.0, malformed request lines and smuggling-shaped heads.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

MAX_BODY = 4096
MAX_HEADER = 4096


class ErrorsTest(H.GatewayTest):
    @classmethod
    def config(cls):
        dead_port = H.free_port()  # nothing listens there
        return {
            "server": {"workers": 2, "max_body_bytes": MAX_BODY, "max_header_bytes": MAX_HEADER,
                       "request_timeout": "1s", "connect_timeout": "1s",
                       "drain_timeout": "5s", "client_idle_timeout": "2s",
                       "max_upstream_body_bytes": "64KiB"},
            "providers": [
                {"name": "mock", "type": "openai", "base_url": cls.mock.base_url},
                {"name": "dead", "type": "openai", "base_url": "http://127.0.0.1:%d/v1" % dead_port},
            ],
            "models": [
                {"name": "gpt-test", "provider": "mock", "model": "mock-model-1"},
                {"name": "dead-model", "provider": "dead"},
            ],
        }

    def err(self, resp, status, code=None):
        return H.check_error_shape(self, resp, status, code)

    # ------------------------------------------------------------ request errors

    def test_malformed_json(self):
        for body in (b'{"model": "gpt-test", "messages": [', b"not json at all", b"",
                     b'{"model":"gpt-test","messages":[]} trailing'):
            r = H.request(self.port, "POST", "/v1/chat/completions", body,
                          headers={"Content-Type": "application/json"})
            e = self.err(r, 400, "invalid_json")
            self.assertEqual(e["type"], "invalid_request_error")

    def test_json_not_an_object(self):
        r = H.request(self.port, "POST", "/v1/chat/completions", b'[1,2,3]')
        self.err(r, 400, "invalid_json")

    def test_bad_field_types(self):
        r = H.post_json(self.port, "/v1/chat/completions", {"model": 42, "messages": []})
        e = self.err(r, 400)
        self.assertEqual(e["param"], "model")
        r = H.post_json(self.port, "/v1/chat/completions", {"model": "gpt-test"})
        e = self.err(r, 400)
        self.assertEqual(e["param"], "messages")
        r = H.post_json(self.port, "/v1/chat/completions",
                        {"model": "gpt-test", "messages": "hi"})
        self.assertEqual(self.err(r, 400)["param"], "messages")
        r = H.post_json(self.port, "/v1/chat/completions",
                        {"model": "gpt-test", "messages": [], "stream": "yes"})
        self.assertEqual(self.err(r, 400)["param"], "stream")
        r = H.post_json(self.port, "/v1/embeddings", {"model": "gpt-test"})
        self.assertEqual(self.err(r, 400)["param"], "input")
        r = H.post_json(self.port, "/v1/completions", {"model": "gpt-test", "prompt": 5})
        self.assertEqual(self.err(r, 400)["param"], "prompt")

    def test_missing_model_no_default(self):
        r = H.chat(self.port, model=None)
        e = self.err(r, 404, "model_not_found")
        self.assertEqual(e["param"], "model")
        self.assertEqual(e["type"], "invalid_request_error")

    def test_unknown_model(self):
        r = H.chat(self.port, model="no-such-model")
        e = self.err(r, 404, "model_not_found")
        self.assertIn("no-such-model", e["message"])
        self.assertIsNone(r.headers.get("x-skuld-model"))
        r = H.post_json(self.port, "/v1/embeddings", {"model": "nope", "input": "x"})
        self.err(r, 404, "model_not_found")

    def test_body_too_large(self):
        big = "x" * (MAX_BODY + 10)
        r = H.chat(self.port, big)
        self.err(r, 413)
        # exactly at the limit is fine (the gateway reads it; the model answers)
        body = H.json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": ""}]})
        pad = MAX_BODY - len(body)
        body = body.replace('"content": ""', '"content": "%s"' % ("y" * pad))
        self.assertEqual(len(body), MAX_BODY)
        r = H.request(self.port, "POST", "/v1/chat/completions", body)
        self.assertEqual(r.status, 200, r.body)

    def test_body_too_large_chunked(self):
        with H.RawConn(self.port) as c:
            head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            c.send(head)
            chunk = b"z" * 1000
            try:
                for _ in range(10):
                    c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                c.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before the rest is sent
            r = c.read_response()
        self.assertEqual(r.status, 413, r)
        self.assertEqual(set(r.json()["error"]), {"message", "type", "param", "code"})

    def test_headers_too_large(self):
        r = H.request(self.port, "GET", "/healthz", headers={"X-Big": "h" * (MAX_HEADER + 100)})
        self.err(r, 431)
        many = {"X-H-%d" % i: "v" * 60 for i in range(80)}  # ~6 KB of small headers
        r = H.request(self.port, "GET", "/healthz", headers=many)
        self.err(r, 431)

    def test_unknown_path(self):
        for path in ("/v1/nothing", "/", "/v2/chat/completions", "/v1/chat/completions/extra"):
            r = H.request(self.port, "GET", path)
            self.err(r, 404)
        r = H.post_json(self.port, "/v1/unknown", {"model": "gpt-test"})
        self.err(r, 404)

    def test_wrong_method(self):
        r = H.request(self.port, "GET", "/v1/chat/completions")
        self.err(r, 405)
        r = H.request(self.port, "PUT", "/v1/embeddings", b"{}")
        self.err(r, 405)
        r = H.request(self.port, "POST", "/v1/models", b"{}")
        self.err(r, 405)
        r = H.request(self.port, "DELETE", "/healthz")
        self.err(r, 405)

    def test_query_string_ignored_for_routing(self):
        r = H.request(self.port, "GET", "/v1/models?limit=5")
        self.assertEqual(r.status, 200)

    # ------------------------------------------------------------ upstream errors

    def test_upstream_refused(self):
        r = H.chat(self.port, model="dead-model")
        e = self.err(r, 502)
        self.assertEqual(e["type"], "server_error")
        self.assertEqual(r.headers.get("x-skuld-model"), "dead-model")
        # the same for a stream request: nothing started, so a plain status
        res = H.sse_request(self.port, H.stream_body(model="dead-model"))
        self.assertEqual(res.status, 502)
        self.assertIn("error", H.json.loads(res.body))

    def test_upstream_timeout(self):
        t0 = time.monotonic()
        r = H.chat(self.port, mock={"latency_ms": 4000})
        took = time.monotonic() - t0
        e = self.err(r, 504)
        self.assertEqual(e["type"], "server_error")
        self.assertLess(took, 3.0, "request_timeout is 1s")
        self.assertGreaterEqual(took, 0.9)

    def test_upstream_stall_after_headers_times_out(self):
        # headers come at once, the body only after 4 s: request_timeout (1s)
        # covers the whole call
        t0 = time.monotonic()
        r = H.chat(self.port, mock={"stall_ms": 4000})
        self.err(r, 504)
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_upstream_429_passed_through(self):
        r = H.chat(self.port, mock={"status": 429, "retry_after": 3})
        self.assertEqual(r.status, 429)
        self.assertEqual(r.headers.get("retry-after"), "3")
        self.assertEqual(r.json(), {"error": {"message": "mock error 429", "type": "rate_limit_error",
                                              "param": None, "code": None}})
        self.assertEqual(r.headers.get("x-skuld-model"), "gpt-test")
        # a stream request that the upstream refuses the same way
        res = H.sse_request(self.port, H.stream_body(mock={"status": 429, "retry_after": "7"}))
        self.assertEqual(res.status, 429)
        self.assertEqual(res.headers.get("retry-after"), "7")
        self.assertEqual(H.json.loads(res.body)["error"]["type"], "rate_limit_error")

    def test_upstream_500_passed_through(self):
        r = H.chat(self.port, mock={"status": 500})
        self.assertEqual(r.status, 500)
        self.assertEqual(r.json()["error"]["message"], "mock error 500")
        self.assertIsNone(r.headers.get("retry-after"))
        r = H.chat(self.port, mock={"status": 503, "retry_after": 5})
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers.get("retry-after"), "5")

    def test_upstream_non_openai_error_body(self):
        r = H.chat(self.port, mock={"status": 502, "error_body": "<html>Bad Gateway</html>"})
        e = self.err(r, 502)
        self.assertNotIn("<html>", e["message"])
        r = H.chat(self.port, mock={"status": 400, "error_body": "plain text"})
        self.err(r, 400)

    def test_upstream_body_too_large(self):
        # "c0 c1 ... c19999" is ~110 KB, over max_upstream_body_bytes (64 KiB)
        r = H.chat(self.port, mock={"chunks": 20000})
        e = self.err(r, 502)
        self.assertEqual(e["code"], "upstream_response_too_large")
        self.assertEqual(H.chat(self.port, mock={"chunks": 2000}).status, 200)  # ~10 KB
        # streams are not collected, so the cap does not apply to them
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 20000}))
        self.assertTrue(res.done)
        self.assertEqual(res.content(), "".join("c%d " % i for i in range(20000)))

    def test_stream_cut_mid_way(self):
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 10, "cut_after": 3}))
        self.assertEqual(res.status, 200)
        self.assertNotIn("[DONE]", res.data)
        objs = res.json_events()
        pieces = [o["choices"][0]["delta"]["content"] for o in objs
                  if o.get("choices") and o["choices"][0]["delta"].get("content")]
        self.assertEqual(pieces, ["c0 ", "c1 ", "c2 "])
        last = objs[-1]
        self.assertIn("error", last, objs)
        self.assertEqual(set(last["error"]), {"message", "type", "param", "code"})
        self.assertEqual(len(res.errors()), 1)

    def test_stream_cut_before_first_chunk(self):
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 10, "cut_after": 0}))
        # either a plain 502 or a started stream with an error event; never [DONE]
        if res.status == 200:
            self.assertNotIn("[DONE]", res.data)
            self.assertEqual(len(res.errors()), 1, res.events)
        else:
            self.assertEqual(res.status, 502)
        self.assertTrue(H.chat(self.port).status == 200)

    # ------------------------------------------------------------ HTTP handling

    def test_chunked_request_body(self):
        body = H.json.dumps({"model": "gpt-test",
                             "messages": [{"role": "user", "content": "chunked body here"}]}).encode()
        with H.RawConn(self.port) as c:
            c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                c.send(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                if i == 14:
                    time.sleep(0.05)
            c.send(b"0\r\nX-Trailer: t\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "c0 c1 c2 c3 c4")
        self.assertEqual(self.mock.last()["body"]["messages"][0]["content"], "chunked body here")

    def test_malformed_chunked_body(self):
        r = H.raw_exchange(self.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(r.status, 400, r)

    def test_expect_100_continue(self):
        body = H.json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
        with H.RawConn(self.port, timeout=10) as c:
            c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            interim = c.read_response(head_only_1xx=True)
            self.assertEqual(interim.status, 100)
            c.send(body)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["object"], "chat.completion")

    def test_expect_100_continue_too_large(self):
        # refused at once on the declared length, without a 100 Continue
        with H.RawConn(self.port, timeout=10) as c:
            c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY * 10))
            r = c.read_response()
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.informational, [])

    def test_keep_alive_reuse(self):
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "k"}]}
        with H.RawConn(self.port) as c:
            local = c.sock.getsockname()
            seq = [("POST", "/v1/chat/completions", body, 200),
                   ("GET", "/healthz", None, 200),
                   ("GET", "/v1/models", None, 200),
                   ("GET", "/nope", None, 404),
                   ("POST", "/v1/chat/completions", {"model": "nope", "messages": []}, 404),
                   ("POST", "/v1/chat/completions", b"{bad", 400),
                   ("POST", "/v1/chat/completions", H.stream_body(), 200),
                   ("POST", "/v1/chat/completions", body, 200)]
            for method, path, b, want in seq:
                c.send(H.http_request_bytes(method, path, b))
                r = c.read_response()
                self.assertEqual(r.status, want, (path, r))
                self.assertTrue(r.complete)
                self.assertNotEqual(r.headers.get("connection", "").lower(), "close", r.headers)
            self.assertEqual(c.sock.getsockname(), local)
            # and http.client over one connection
        conn = H.http.client.HTTPConnection(H.HOST, self.port, timeout=10)
        try:
            for _ in range(5):
                r = H.request(self.port, "POST", "/v1/chat/completions", body, conn=conn)
                self.assertEqual(r.status, 200)
            self.assertIsNotNone(conn.sock, "connection was not kept open")
        finally:
            conn.close()

    def test_connection_close_honoured(self):
        with H.RawConn(self.port) as c:
            c.send(H.http_request_bytes("GET", "/healthz", headers={"Connection": "close"}))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("connection", "").lower(), "close")
            self.assertTrue(c.closed_by_peer(5))

    def test_pipelined_requests_in_order(self):
        slow = {"model": "gpt-test", "messages": [{"role": "user", "content": "a"}],
                "mock": {"latency_ms": 300}}
        fast = {"model": "gpt-test", "messages": [{"role": "user", "content": "b"}]}
        reqs = [H.http_request_bytes("POST", "/v1/chat/completions", slow, {"X-Request-Id": "p1"}),
                H.http_request_bytes("GET", "/healthz", None, {"X-Request-Id": "p2"}),
                H.http_request_bytes("POST", "/v1/chat/completions", fast, {"X-Request-Id": "p3"}),
                H.http_request_bytes("GET", "/nope", None, {"X-Request-Id": "p4"}),
                H.http_request_bytes("POST", "/v1/chat/completions", H.stream_body(),
                                     {"X-Request-Id": "p5"}),
                H.http_request_bytes("GET", "/v1/models", None, {"X-Request-Id": "p6"})]
        with H.RawConn(self.port) as c:
            c.send(b"".join(reqs))
            got = []
            for _ in reqs:
                r = c.read_response()
                got.append((r.headers.get("x-request-id"), r.status))
                self.assertTrue(r.complete)
        self.assertEqual(got, [("p1", 200), ("p2", 200), ("p3", 200), ("p4", 404), ("p5", 200),
                               ("p6", 200)])

    def test_pipelined_split_across_writes(self):
        data = (H.http_request_bytes("GET", "/healthz", None, {"X-Request-Id": "s1"}) +
                H.http_request_bytes("POST", "/v1/chat/completions", H.stream_body(),
                                     {"X-Request-Id": "s2"}) +
                H.http_request_bytes("GET", "/healthz", None, {"X-Request-Id": "s3"}))
        with H.RawConn(self.port) as c:
            for i in range(0, len(data), 13):
                c.send(data[i:i + 13])
            ids = [c.read_response().headers.get("x-request-id") for _ in range(3)]
        self.assertEqual(ids, ["s1", "s2", "s3"])

    def test_head_has_no_body(self):
        # RFC 9110 9.3.2: a HEAD response carries no content. Body bytes after
        # the head would be read as the start of the next response.
        for path in ("/healthz", "/v1/models", "/metrics"):
            with H.RawConn(self.port) as c:
                c.send(H.http_request_bytes("HEAD", path))
                r = c.read_response(method="HEAD")
                self.assertEqual(r.status, 200)
                extra = c.read_available(0.3)
                self.assertEqual(extra, b"", "HEAD %s: body bytes sent after the head" % path)
                c.send(H.http_request_bytes("GET", "/healthz", headers={"X-Request-Id": "after-head"}))
                r2 = c.read_response()
                self.assertEqual(r2.headers.get("x-request-id"), "after-head")

    def test_http10(self):
        with H.RawConn(self.port) as c:
            c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertTrue(c.closed_by_peer(5))
        # an HTTP/1.0 stream is close-delimited (no chunked encoding)
        with H.RawConn(self.port) as c:
            c.send(H.http_request_bytes("POST", "/v1/chat/completions", H.stream_body(),
                                        version="HTTP/1.0"))
            r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertFalse(r.chunked)
        self.assertTrue(r.body.rstrip().endswith(b"data: [DONE]"), r.body[-80:])

    def test_malformed_requests(self):
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /healthz\r\n\r\n", 400),
            (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", 400),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
            (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
             b"123456", 400),
            (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ]
        for data, want in cases:
            with H.RawConn(self.port, timeout=10) as c:
                c.send(data)
                r = c.read_response()
                self.assertEqual(r.status, want, (data, r))
                self.assertEqual(set(r.json()["error"]), {"message", "type", "param", "code"})
                # a framing error closes the connection
                self.assertTrue(c.closed_by_peer(5), data)
        # and the server still works
        self.assertEqual(H.request(self.port, "GET", "/healthz").status, 200)

    def test_deeply_nested_json(self):
        r = H.request(self.port, "POST", "/v1/chat/completions", b"[" * 4000)
        self.err(r, 400)
        r = H.request(self.port, "POST", "/v1/chat/completions",
                      b'{"model":"gpt-test","messages":' + b"[" * 1900 + b"]" * 1900 + b"}")
        self.assertIn(r.status, (400, 200))
        self.assertEqual(H.request(self.port, "GET", "/healthz").status, 200)

    def test_duplicate_keys_rejected(self):
        r = H.request(self.port, "POST", "/v1/chat/completions",
                      b'{"model":"gpt-test","model":"other","messages":[]}')
        self.err(r, 400, "invalid_json")

    def test_client_idle_timeout(self):
        # client_idle_timeout is 2s: an idle keep-alive connection is closed...
        with H.RawConn(self.port) as c:
            c.send(H.http_request_bytes("GET", "/healthz"))
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            self.assertTrue(c.closed_by_peer(6))
            self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        # ...a head that never completes gets 408...
        with H.RawConn(self.port) as c:
            c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertTrue(c.closed_by_peer(3))
        # ...and so does a body that never completes
        with H.RawConn(self.port) as c:
            c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertEqual(set(r.json()["error"]), {"message", "type", "param", "code"})

    def test_incomplete_head_then_close(self):
        s = socket.create_connection((H.HOST, self.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"mo")
        s.close()
        time.sleep(0.1)
        self.assertEqual(H.request(self.port, "GET", "/healthz").status, 200)


if __name__ == "__main__":
    H.main()
