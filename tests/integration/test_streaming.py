"""
Streaming through skuld: events relayed in order and ended with [DONE];
stream_options.include_usage added upstream and the usage chunk shown only
to clients that asked for it; events arrive incrementally (not buffered);
streamed completions; stalls past stream_idle_timeout end with an SSE error
event, never a clean [DONE].
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class StreamingTest(H.GatewayTest):
    env = {"SKULD_IT_KEY": "sk-stream-test"}

    @classmethod
    def config(cls):
        return H.base_config(cls.mock, api_key="env:SKULD_IT_KEY",
                             server={"stream_idle_timeout": "1s"})

    def assert_clean_chat_stream(self, res, n_chunks):
        self.assertEqual(res.status, 200, res.body)
        self.assertTrue(res.headers.get("content-type", "").startswith("text/event-stream"),
                        res.headers)
        self.assertTrue(res.complete, "chunked stream did not end cleanly")
        self.assertTrue(res.done, res.events[-3:])
        self.assertEqual(res.data.count("[DONE]"), 1)
        self.assertEqual(res.errors(), [])
        objs = res.json_events()
        for o in objs:
            self.assertEqual(o["object"], "chat.completion.chunk", o)
        self.assertEqual(objs[0]["choices"][0]["delta"].get("role"), "assistant")
        pieces = [o["choices"][0]["delta"]["content"] for o in objs
                  if o["choices"] and o["choices"][0]["delta"].get("content")]
        self.assertEqual(pieces, ["c%d " % i for i in range(n_chunks)])
        finishes = [o["choices"][0].get("finish_reason") for o in objs if o["choices"]]
        self.assertEqual(finishes[-1], "stop")
        self.assertEqual([f for f in finishes if f], ["stop"])
        return objs

    def test_stream_in_order_with_done(self):
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 50}))
        objs = self.assert_clean_chat_stream(res, 50)
        self.assertEqual(res.headers.get("x-skuld-model"), "gpt-test")
        self.assertEqual(res.headers.get("x-skuld-provider"), "mock")
        self.assertTrue(res.headers.get("x-request-id"))
        self.assertIn("chunked", res.headers.get("transfer-encoding", ""))
        # the client did not ask for usage: no usage-only chunk
        self.assertFalse([o for o in objs if o.get("choices") == []], objs[-2:])
        self.assertFalse([o for o in objs if o.get("usage")], objs[-2:])

    def test_include_usage_added_upstream_hidden_from_client(self):
        res = H.sse_request(self.port, H.stream_body())
        objs = self.assert_clean_chat_stream(res, 5)
        last = self.mock.last()
        self.assertIs(last["body"]["stream"], True)
        self.assertEqual(last["body"]["stream_options"], {"include_usage": True})
        self.assertEqual(last["body"]["model"], "mock-model-1")
        self.assertFalse([o for o in objs if o.get("choices") == []])

    def test_include_usage_false_keeps_other_options(self):
        res = H.sse_request(self.port, H.stream_body(
            stream_options={"include_usage": False, "x_vendor_opt": 7}))
        objs = self.assert_clean_chat_stream(res, 5)
        self.assertEqual(self.mock.last()["body"]["stream_options"],
                         {"include_usage": True, "x_vendor_opt": 7})
        self.assertFalse([o for o in objs if o.get("choices") == []])

    def test_usage_shown_when_client_asked(self):
        res = H.sse_request(self.port, H.stream_body(content="one two three four",
                                                     stream_options={"include_usage": True}))
        objs = self.assert_clean_chat_stream(res, 5)
        usage = [o for o in objs if o.get("choices") == []]
        self.assertEqual(len(usage), 1, objs)
        self.assertIs(objs[-1], usage[0], "the usage chunk comes last, before [DONE]")
        self.assertEqual(usage[0]["usage"]["prompt_tokens"], 4)
        self.assertEqual(usage[0]["usage"]["completion_tokens"], 5)

    def test_incremental_delivery(self):
        gap = 0.2
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 5, "chunk_gap_ms": 200}))
        self.assert_clean_chat_stream(res, 5)
        times = [e.t for e in res.events]
        content_times = [e.t for e in res.events if '"content":"c' in e.data]
        self.assertEqual(len(content_times), 5)
        # role, c0..c4, finish, [DONE]: the mock spends >= 7 gaps (1.4 s) on it.
        span = times[-1] - times[0]
        self.assertGreaterEqual(span, 5 * gap, times)
        # The first content chunk must reach the client long before the
        # last one is even sent (>= 4 gaps later at the mock).
        self.assertLess(content_times[0], content_times[-1] - 3 * gap, times)
        # And the events come spread out, not in one burst: most consecutive
        # arrivals are separated by a good part of the gap.
        spaced = sum(1 for a, b in zip(times, times[1:]) if b - a >= gap / 2)
        self.assertGreaterEqual(spaced, 4, times)

    def test_completions_stream(self):
        body = {"model": "gpt-test", "prompt": "tell me", "stream": True, "mock": {"chunks": 7}}
        res = H.sse_request(self.port, body, path="/v1/completions")
        self.assertEqual(res.status, 200, res.body)
        self.assertTrue(res.complete)
        self.assertTrue(res.done)
        objs = res.json_events()
        self.assertTrue(all(o["object"] == "text_completion" for o in objs), objs)
        self.assertEqual(res.content(), "".join("c%d " % i for i in range(7)))
        self.assertEqual(self.mock.last()["body"]["stream_options"], {"include_usage": True})
        self.assertFalse([o for o in objs if o.get("choices") == []])

    def test_stream_false_is_a_json_body(self):
        r = H.chat(self.port, stream=False)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("application/json"))
        self.assertNotIn("stream_options", self.mock.last()["body"])

    def test_stream_tool_call_deltas(self):
        body = H.stream_body(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
                             mock={"tool_call": True})
        res = H.sse_request(self.port, body)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.done)
        objs = res.json_events()
        calls = [o for o in objs if o["choices"] and o["choices"][0]["delta"].get("tool_calls")]
        self.assertTrue(calls, objs)
        self.assertEqual(objs[-1]["choices"][0]["finish_reason"], "tool_calls")

    def test_large_stream_events(self):
        # a 300 KB reply in 3 events: each event is relayed whole
        content = "".join("w%05d " % i for i in range(43000))
        res = H.sse_request(self.port, H.stream_body(mock={"content": content, "chunks": 3}))
        self.assertEqual(res.status, 200)
        self.assertTrue(res.done)
        self.assertEqual(res.content(), content)

    def test_oversized_event_ends_with_error(self):
        # one event of ~1.5 MB: over the relay's 1 MiB per-event cap
        content = "x" * (1536 * 1024)
        res = H.sse_request(self.port, H.stream_body(mock={"content": content, "chunks": 1}))
        self.assertEqual(res.status, 200)
        self.assertFalse(res.done)
        errs = res.errors()
        self.assertEqual(len(errs), 1, [e.data[:100] for e in res.events])
        self.assertEqual(errs[0]["error"]["code"], "upstream_event_too_large")
        self.assertEqual(H.chat(self.port).status, 200)

    def test_slow_reader_backpressure_keeps_stream_intact(self):
        # A fast 21 MB stream to a client that does not read for a while:
        # skuld must pause the upstream (bounded memory) and, on resume,
        # relay every byte exactly once and in order.
        mock = H.Mock()  # its own: the scripting defaults below are global
        gw = None
        try:
            # stream_idle_timeout 5s with a 7 s pause below: a stream paused for a
            # slow reader is not idle. (5 s, not less: building this 21 MB stream
            # takes the sanitizer-built mock ~1.5 s before its first byte.)
            gw = H.Skuld(H.base_config(mock, server={"workers": 1, "stream_idle_timeout": "5s"}))
            content = "".join("w%06d " % i for i in range(2500000))
            mock.set_config({"content": content, "chunks": 20000})
            rss0 = gw.rss_kb()
            with H.RawConn(gw.port, timeout=60) as c:
                c.send(H.http_request_bytes("POST", "/v1/chat/completions", H.stream_body()))
                H.time.sleep(7.0)  # the client reads nothing: buffers fill, skuld pauses
                rss_paused = gw.rss_kb()
                parser = H.SSEParser()
                r = c.read_response(on_data=lambda d: parser.feed(d, 0))
            self.assertEqual(r.status, 200)
            self.assertTrue(r.complete)
            self.assertEqual(parser.events[-1].data, "[DONE]")
            objs = [e.json() for e in parser.events[:-1]]
            self.assertFalse([o for o in objs if "error" in o])
            got = "".join(o["choices"][0]["delta"].get("content") or ""
                          for o in objs if o.get("choices"))
            self.assertEqual(len(parser.events), 20003,
                             "events duplicated or lost (%d, want 20003)" % len(parser.events))
            if got != content:
                i = next((i for i, (a, b) in enumerate(zip(got, content)) if a != b),
                         min(len(got), len(content)))
                self.fail("stream content corrupted at byte %d of %d: got %r, want %r" %
                          (i, len(content), got[i - 20:i + 40], content[i - 20:i + 40]))
            # the paused stream is not buffered whole in skuld's memory
            self.assertLess(rss_paused - rss0, 8 * 1024, "skuld buffered %d KiB for a slow reader"
                            % (rss_paused - rss0))
        finally:
            if gw:
                gw.stop()
            mock.stop()

    # stream_idle_timeout is 1s in this config. The upstream goes silent for
    # 4 s; the gateway must give up after about 1 s (allow 3 s on a loaded
    # machine), not wait it out. Nothing reached the client yet (the client
    # stream starts at the first event, so a failure before it can fail over
    # invisibly -- issue 7), so with no fallback it gets a plain 504.
    def test_stall_before_first_event_ends_with_error(self):
        t0 = H.time.monotonic()
        res = H.sse_request(self.port, H.stream_body(mock={"stall_ms": 4000}), timeout=15)
        took = H.time.monotonic() - t0
        self.assertEqual(res.status, 504, res.body)
        self.assertEqual(H.json.loads(res.body)["error"]["code"], "upstream_timeout")
        self.assertLess(took, 3.0, "idle timeout fired too late")

    def test_stall_mid_stream_ends_with_error(self):
        res = H.sse_request(self.port, H.stream_body(mock={"chunks": 2, "chunk_gap_ms": 3500}),
                            timeout=30)
        self.assertEqual(res.status, 200)
        self.assertNotIn("[DONE]", res.data, "3.5s gaps outlasted stream_idle_timeout (1s) yet "
                         "the stream ended cleanly after %.2fs" % res.events[-1].t)
        errs = res.errors()
        self.assertEqual(len(errs), 1, res.events)
        self.assertIn("error", res.events[-1].json())
        self.assertEqual(errs[0]["error"]["code"], "upstream_timeout", errs)
        # the role chunk comes at once; the error about 1s after it
        self.assertLess(res.events[-1].t - res.events[-2].t, 3.0, res.events)


if __name__ == "__main__":
    H.main()
