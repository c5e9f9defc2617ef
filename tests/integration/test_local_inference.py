"""
Embedded llama.cpp (provider type `llamacpp`) on the random-weight demo model
written by `skuld demo-model`: streamed and whole answers with real token
counts, 8 concurrent requests over 4 slots, a cancelled stream freeing its
slot, fixed-seed determinism, stop strings, max_tokens, the context limit
(400 naming it), embeddings, the config rule that a llamacpp model needs a
path, the embedded default (`skuld serve` without -c writes and serves
the demo model), and `skuld demo-model` shape options (a model of another
shape and weight type loads and generates; bad shapes are refused).
"""
import json
import math
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

_DIR = H.mkdtemp("skuld-local-")
DEMO = os.path.join(_DIR, "demo.gguf")


def setUpModule():
    rc, out, err = H.run_skuld(["demo-model", "-o", DEMO])
    assert rc == 0, err
    assert os.path.getsize(DEMO) > 1 << 20


def local_config(parallel=4, context_window=None, extra_models=()):
    model = {"name": "tiny", "provider": "local", "path": DEMO, "parallel": parallel}
    if context_window:
        model["context_window"] = context_window
    return {
        "server": {"listen": "127.0.0.1:0", "default_model": "tiny", "workers": 2},
        "providers": [{"name": "local", "type": "llamacpp"}],
        "models": [model] + list(extra_models),
    }


def gen(port, content="hello world", **kw):
    body = {"model": "tiny", "messages": [{"role": "user", "content": content}]}
    body.update(kw)
    return H.post_json(port, "/v1/chat/completions", body, timeout=120)


class LocalTest(H.GatewayTest):
    """skuld alone (no mock) with the demo model; subclasses give local_config()."""

    mock_names = ()
    skuld_kw = {"ready_timeout": 60}


class LocalChatTest(LocalTest):
    @classmethod
    def config(cls):
        return local_config(parallel=4)

    def test_non_stream(self):
        r = gen(self.port, max_tokens=12, temperature=0)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-skuld-model"), "tiny")
        self.assertEqual(r.headers.get("x-skuld-provider"), "local")
        b = r.json()
        self.assertEqual(b["object"], "chat.completion")
        msg = b["choices"][0]["message"]
        self.assertEqual(msg["role"], "assistant")
        self.assertTrue(msg["content"])
        u = b["usage"]
        # random weights never pick end-of-text within 12 tokens of 32,000
        self.assertEqual(b["choices"][0]["finish_reason"], "length")
        self.assertEqual(u["completion_tokens"], 12)
        self.assertGreater(u["prompt_tokens"], 3)  # chat template + text
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + 12)

    def test_completion_token_count_is_exact(self):
        # SPM llama vocabulary: <s> ▁hello ▁world
        r = H.post_json(self.port, "/v1/completions",
                        {"model": "tiny", "prompt": "hello world", "max_tokens": 3,
                         "temperature": 0})
        self.assertEqual(r.status, 200, r.body)
        b = r.json()
        self.assertEqual(b["object"], "text_completion")
        self.assertEqual(b["usage"]["prompt_tokens"], 3)
        self.assertEqual(b["usage"]["completion_tokens"], 3)
        self.assertTrue(b["choices"][0]["text"])

    def test_stream(self):
        res = H.sse_request(self.port, {"model": "tiny", "stream": True, "max_tokens": 16,
                                        "temperature": 0,
                                        "stream_options": {"include_usage": True},
                                        "messages": [{"role": "user", "content": "hi"}]},
                            timeout=120)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.done, res.events[-3:])
        self.assertTrue(res.complete)
        objs = res.json_events()
        self.assertEqual(objs[0]["choices"][0]["delta"].get("role"), "assistant")
        finals = [o for o in objs if o.get("choices") and o["choices"][0].get("finish_reason")]
        self.assertEqual(len(finals), 1)
        self.assertEqual(finals[0]["choices"][0]["finish_reason"], "length")
        usage = [o for o in objs if o.get("choices") == []]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0]["usage"]["completion_tokens"], 16)
        # same text as the whole answer for the same greedy request
        whole = gen(self.port, "hi", max_tokens=16, temperature=0).json()
        self.assertEqual(res.content(), whole["choices"][0]["message"]["content"])
        # content arrives in several chunks, not one
        self.assertGreater(len([o for o in objs if o.get("choices") and
                                o["choices"][0]["delta"].get("content")]), 3)

    def test_eight_concurrent(self):
        results = [None] * 8
        errors = []

        def one(i):
            try:
                if i % 2:
                    results[i] = gen(self.port, "request %d" % i, max_tokens=40)
                else:
                    results[i] = H.sse_request(
                        self.port, {"model": "tiny", "stream": True, "max_tokens": 40,
                                    "messages": [{"role": "user", "content": "request %d" % i}]},
                        timeout=120)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        H.run_threads(one, [(i,) for i in range(8)], 180)
        self.assertFalse(errors)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, i)
            self.assertEqual(r.status, 200, i)
            if i % 2:
                self.assertEqual(r.json()["usage"]["completion_tokens"], 40)
            else:
                self.assertTrue(r.done, i)
                self.assertTrue(r.content())

    def test_fixed_seed_is_deterministic(self):
        a = gen(self.port, "tell me", max_tokens=24, temperature=0, seed=42).json()
        b = gen(self.port, "tell me", max_tokens=24, temperature=0, seed=42).json()
        self.assertEqual(a["choices"][0]["message"]["content"],
                         b["choices"][0]["message"]["content"])
        # sampling (temperature > 0) with a fixed seed repeats too, and the seed matters
        s1 = gen(self.port, "tell me", max_tokens=24, temperature=1.0, seed=7).json()
        s2 = gen(self.port, "tell me", max_tokens=24, temperature=1.0, seed=7).json()
        s3 = gen(self.port, "tell me", max_tokens=24, temperature=1.0, seed=8).json()
        c1, c2, c3 = (x["choices"][0]["message"]["content"] for x in (s1, s2, s3))
        self.assertEqual(c1, c2)
        self.assertNotEqual(c1, c3)

    def test_stop_string(self):
        full = gen(self.port, "stop test", max_tokens=30, temperature=0).json()
        text = full["choices"][0]["message"]["content"]
        self.assertGreater(len(text), 12)
        stop = text[8:12]
        cut = text.index(stop)
        r = gen(self.port, "stop test", max_tokens=30, temperature=0, stop=[stop]).json()
        self.assertEqual(r["choices"][0]["message"]["content"], text[:cut])
        self.assertEqual(r["choices"][0]["finish_reason"], "stop")
        # streamed: the stop string never reaches the client, not even in part
        res = H.sse_request(self.port, {"model": "tiny", "stream": True, "max_tokens": 30,
                                        "temperature": 0, "stop": stop,
                                        "messages": [{"role": "user", "content": "stop test"}]},
                            timeout=120)
        self.assertTrue(res.done)
        self.assertEqual(res.content(), text[:cut])

    def test_bad_sampling_parameter(self):
        r = gen(self.port, temperature="hot")
        H.check_error_shape(self, r, 400)
        self.assertEqual(r.json()["error"]["param"], "temperature")

    def test_embeddings(self):
        r = H.post_json(self.port, "/v1/embeddings",
                        {"model": "tiny", "input": ["hello world", "goodbye", "hello world"]})
        self.assertEqual(r.status, 200, r.body)
        b = r.json()
        self.assertEqual(len(b["data"]), 3)
        vs = [d["embedding"] for d in b["data"]]
        self.assertEqual(len(vs[0]), 64)
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in vs[0])), 1.0, places=4)
        self.assertEqual(vs[0], vs[2])
        self.assertNotEqual(vs[0], vs[1])
        self.assertEqual(b["usage"]["prompt_tokens"], 3 + 3 + 3)  # <s> + 2 tokens each

    def test_metrics_count_real_tokens(self):
        gen(self.port, "metrics", max_tokens=5, temperature=0)
        m = self.gw.metrics()
        self.assertRegex(m, r'skuld_tokens_total\{[^}]*model="tiny"[^}]*type="completion"[^}]*\} \d+')


class LocalSlotTest(LocalTest):
    """One slot and a long context: a request can only run when the slot is free."""

    @classmethod
    def config(cls):
        return local_config(parallel=1, context_window=32768)

    def test_cancel_frees_slot(self):
        # ~30,000 tokens would keep the only slot busy for many seconds
        res = H.sse_request(self.port, {"model": "tiny", "stream": True, "max_tokens": 30000,
                                        "messages": [{"role": "user", "content": "go on"}]},
                            stop_after=4, timeout=60)
        self.assertTrue(res.closed_early)
        t0 = time.monotonic()
        r = gen(self.port, "next", max_tokens=8)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 8)
        self.assertLess(elapsed, 5.0, "the cancelled stream kept its slot")
        line = H.wait_until(lambda: [e for e in self.gw.access_log() if e.get("status") == 499],
                            5, what="499 in the access log")
        self.assertTrue(line)

    def test_queued_request_waits_for_the_slot(self):
        out = {}

        def first():
            out["a"] = gen(self.port, "first", max_tokens=200)

        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.05)
        b = gen(self.port, "second", max_tokens=5)
        t.join(120)
        self.assertEqual(out["a"].status, 200)
        self.assertEqual(b.status, 200)
        self.assertEqual(b.json()["usage"]["completion_tokens"], 5)


class LocalLimitsTest(LocalTest):
    @classmethod
    def config(cls):
        return local_config(parallel=2, context_window=64)

    def test_prompt_longer_than_context(self):
        r = gen(self.port, "word " * 200, max_tokens=4)
        H.check_error_shape(self, r, 400, "context_length_exceeded")
        self.assertIn("64 tokens", r.json()["error"]["message"])
        res = H.sse_request(self.port, {"model": "tiny", "stream": True,
                                        "messages": [{"role": "user", "content": "word " * 200}]})
        self.assertEqual(res.status, 400)
        self.assertEqual(json.loads(res.body)["error"]["code"], "context_length_exceeded")

    def test_generation_stops_at_context(self):
        r = H.post_json(self.port, "/v1/completions",
                        {"model": "tiny", "prompt": "a b c", "max_tokens": 1000})
        self.assertEqual(r.status, 200, r.body)
        b = r.json()
        self.assertEqual(b["choices"][0]["finish_reason"], "length")
        self.assertEqual(b["usage"]["prompt_tokens"] + b["usage"]["completion_tokens"], 64)


class LocalDefaultMaxTokensTest(LocalTest):
    """A request without max_tokens is capped by the model's default_max_tokens
    (512 unless set; 0 = to the end of the context)."""

    @classmethod
    def config(cls):
        c = local_config(parallel=2, context_window=1024)
        c["models"][0]["default_max_tokens"] = 9
        unset = dict(c["models"][0], name="unset", id="unset")
        del unset["default_max_tokens"]
        nocap = dict(c["models"][0], name="nocap", id="nocap", default_max_tokens=0)
        c["models"] += [unset, nocap]
        return c

    def test_request_without_max_tokens_gets_the_default(self):
        r = gen(self.port, temperature=0)
        self.assertEqual(r.status, 200, r.body)
        b = r.json()
        self.assertEqual(b["usage"]["completion_tokens"], 9)
        self.assertEqual(b["choices"][0]["finish_reason"], "length")
        # streamed too: the cap is in the body the engine gets
        res = H.sse_request(self.port, {"model": "tiny", "stream": True, "temperature": 0,
                                        "stream_options": {"include_usage": True},
                                        "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(res.status, 200)
        self.assertTrue(res.done)
        usage = [o["usage"] for o in res.json_events() if o.get("choices") == []]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0]["completion_tokens"], 9)

    def test_explicit_max_tokens_wins(self):
        r = gen(self.port, max_tokens=20, temperature=0)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 20)
        r = gen(self.port, max_completion_tokens=3, temperature=0)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 3)

    def test_llamacpp_default_is_512_and_zero_means_the_context(self):
        r = gen(self.port, model="unset", temperature=0)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 512)
        r = gen(self.port, model="nocap", temperature=0)
        u = r.json()["usage"]
        self.assertEqual(u["prompt_tokens"] + u["completion_tokens"], 1024)


class LocalConfigTest(H.unittest.TestCase):
    def test_default_max_tokens_only_for_llamacpp(self):
        bad = H.write_temp("bad.yaml", "providers:\n  - name: up\n    type: openai\n"
                           "    base_url: http://127.0.0.1:9\n"
                           "models:\n  - name: m\n    provider: up\n    default_max_tokens: 5\n")
        rc, out, err = H.run_skuld(["check", "-c", bad])
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"bad\.yaml:8:5: default_max_tokens is only for llamacpp models")

    def test_path_required(self):
        bad = H.write_temp("bad.yaml", "providers:\n  - name: local\n    type: llamacpp\n"
                           "models:\n  - name: m\n    provider: local\n")
        rc, out, err = H.run_skuld(["check", "-c", bad])
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"bad\.yaml:5:\d+: .*llamacpp needs 'path'")

    def test_unloadable_model_fails_at_start(self):
        d = H.mkdtemp()
        junk = os.path.join(d, "junk.gguf")
        with open(junk, "wb") as f:
            f.write(b"not a model")
        cfg = os.path.join(d, "c.yaml")
        with open(cfg, "w") as f:
            f.write(H.to_yaml({"providers": [{"name": "local", "type": "llamacpp"}],
                               "models": [{"name": "m", "provider": "local", "path": junk}]}))
        rc, out, err = H.run_skuld(["serve", "-c", cfg, "--listen", "127.0.0.1:0"], timeout=30)
        self.assertEqual(rc, 1)
        self.assertIn("could not load", err)

    def test_demo_model_is_reproducible(self):
        d = H.mkdtemp()
        p = os.path.join(d, "again.gguf")
        rc, out, err = H.run_skuld(["demo-model", "-o", p])
        self.assertEqual(rc, 0, err)
        with open(p, "rb") as f1, open(DEMO, "rb") as f2:
            a, b = f1.read(), f2.read()
        self.assertEqual(a[:4], b"GGUF")
        self.assertEqual(a, b)
        self.assertFalse(os.path.exists(p + ".tmp"))
        rc, _, err = H.run_skuld(["demo-model"])
        self.assertEqual(rc, 2)


class LocalReloadTest(H.unittest.TestCase):
    """A reload loads, replaces and unloads local models without a restart; a
    stream running on a replaced model finishes on it; a model file that does
    not load rejects the reload and the old model keeps serving."""

    MASTER = "test-master-local-reload"

    def write(self, sk, models):
        cfg = local_config(parallel=2)
        cfg["server"]["master_key"] = "env:SKULD_TEST_MASTER"
        cfg["models"] = [{"name": n, "provider": "local", "path": p, "parallel": 2}
                         for n, p in models]
        tmp = sk.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(H.to_yaml(cfg))
        os.rename(tmp, sk.config_path)

    def reload(self, sk):
        return H.request(sk.port, "POST", "/admin/reload",
                         headers={"Authorization": "Bearer " + self.MASTER}, timeout=120)

    def answer(self, sk, model):
        r = H.post_json(sk.port, "/v1/chat/completions",
                        {"model": model, "max_tokens": 12, "temperature": 0,
                         "messages": [{"role": "user", "content": "the same question"}]},
                        timeout=120)
        self.assertEqual(r.status, 200, r.body)
        return r.json()["choices"][0]["message"]["content"]

    def test_registered_models_restored_once(self):
        # local models registered through the admin API come back from the
        # store after a restart, each engine loaded once at start
        cfg = local_config(parallel=2)
        cfg["server"]["master_key"] = "env:SKULD_TEST_MASTER"
        cfg["store"] = {"url": "sqlite://" + os.path.join(H.mkdtemp(), "s.db")}
        env = {"SKULD_TEST_MASTER": self.MASTER}
        names = ("r1", "r2", "r3")
        sk = H.Skuld(cfg, env=env, ready_timeout=60)
        try:
            for n in names:
                r = H.request(sk.port, "POST", "/admin/models", json.dumps(
                    {"name": n, "provider": "local", "path": DEMO, "parallel": 2}).encode(),
                    headers={"Authorization": "Bearer " + self.MASTER}, timeout=120)
                self.assertEqual(r.status, 201, r.body)
        finally:
            self.assertEqual(sk.stop(), 0)
        sk = H.Skuld(cfg, env=env, ready_timeout=60)
        try:
            for n in names + ("tiny",):
                self.answer(sk, n)
            for n in names:
                self.assertEqual(sk.stderr().count("engine %s:" % n), 1, sk.stderr())
        finally:
            rc = sk.stop()
        self.assertEqual(rc, 0, sk.describe())

    def test_reload_local_models(self):
        other = os.path.join(H.mkdtemp(), "other.gguf")
        rc, _, err = H.run_skuld(["demo-model", "-o", other, "--layers", "3", "--width", "96"])
        self.assertEqual(rc, 0, err)
        missing = os.path.join(H.mkdtemp(), "missing.gguf")
        cfg = local_config(parallel=2)
        cfg["server"]["master_key"] = "env:SKULD_TEST_MASTER"
        sk = H.Skuld(cfg, env={"SKULD_TEST_MASTER": self.MASTER}, ready_timeout=60)
        try:
            first = self.answer(sk, "tiny")
            # a stream on tiny that is still running while tiny is replaced
            started = threading.Event()
            holder = {}

            def stream():
                holder["res"] = H.sse_request(
                    sk.port, {"model": "tiny", "stream": True, "max_tokens": 1900,
                              "temperature": 0, "stream_options": {"include_usage": True},
                              "messages": [{"role": "user", "content": "go on"}]},
                    timeout=120, on_event=on_event)

            def on_event(res, ev):
                holder["last"] = time.monotonic()
                started.set()
            t = threading.Thread(target=stream)
            t.start()
            self.assertTrue(started.wait(60), "the stream did not start")
            # tiny now comes from another file; tiny2 is the old file
            self.write(sk, [("tiny", other), ("tiny2", DEMO)])
            r = self.reload(sk)
            reloaded = time.monotonic()
            self.assertEqual(r.status, 200, r.body)
            t.join(120)
            self.assertGreater(holder["last"], reloaded, "the stream ended before the reload")
            res = holder["res"]
            self.assertTrue(res.done, res)  # [DONE]: not cut by the reload
            self.assertFalse(any("error" in (ev.json() or {}) for ev in res.events
                                 if ev.data != "[DONE]"), res)
            usage = [ev.json()["usage"] for ev in res.events
                     if ev.data != "[DONE]" and (ev.json() or {}).get("usage")]
            self.assertEqual(usage[-1]["completion_tokens"], 1900, usage)
            self.assertIn("local model tiny: reloaded from " + other, sk.stderr())
            self.assertEqual(self.answer(sk, "tiny2"), first)  # same file, same settings
            second = self.answer(sk, "tiny")
            self.assertNotEqual(second, first)  # another model answers under the name
            # a file that does not load: rejected whole, the old models keep serving
            self.write(sk, [("tiny", missing), ("tiny2", DEMO)])
            r = self.reload(sk)
            H.check_error_shape(self, r, 400, "invalid_config")
            self.assertIn("model tiny", r.json()["error"]["message"])
            self.assertEqual(self.answer(sk, "tiny"), second)
            # a model removed from the file is unloaded
            self.write(sk, [("tiny", other)])
            self.assertEqual(self.reload(sk).status, 200)
            r = H.post_json(sk.port, "/v1/chat/completions",
                            {"model": "tiny2", "messages": [{"role": "user", "content": "x"}]})
            H.check_error_shape(self, r, 404)
            self.assertIn("local model tiny2: unloaded", sk.stderr())
            self.assertEqual(self.answer(sk, "tiny"), second)
            # registered through the admin API: loaded, served, and removed again
            admin = {"Authorization": "Bearer " + self.MASTER}
            r = H.request(sk.port, "POST", "/admin/models", json.dumps(
                {"name": "tiny3", "provider": "local", "path": DEMO, "parallel": 2}).encode(),
                headers=admin, timeout=120)
            self.assertEqual(r.status, 201, r.body)
            self.assertEqual(self.answer(sk, "tiny3"), first)
            r = H.request(sk.port, "POST", "/admin/models", json.dumps(
                {"name": "tiny4", "provider": "local", "path": missing}).encode(),
                headers=admin, timeout=120)
            H.check_error_shape(self, r, 400)
            self.assertIn("model tiny4", r.json()["error"]["message"])
            r = H.request(sk.port, "DELETE", "/admin/models/tiny3", headers=admin)
            self.assertEqual(r.status, 200, r.body)
            self.assertIn("local model tiny3: unloaded", sk.stderr())
        finally:
            rc = sk.stop()
        self.assertEqual(rc, 0, sk.describe())


def gguf_metadata(path):
    """The key/value section of a GGUF file (v2/v3), scalars and arrays of scalars/strings."""
    import struct
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def rstr():
            return f.read(rd("<Q")).decode("utf-8", "replace")

        def rval(t):
            if t == 8:
                return rstr()
            if t == 9:
                et, n = rd("<I"), rd("<Q")
                return [rval(et) for _ in range(n)]
            return rd(scalar[t])
        assert f.read(4) == b"GGUF"
        rd("<I")  # version
        rd("<Q")  # tensors
        kv = {}
        for _ in range(rd("<Q")):
            k = rstr()
            kv[k] = rval(rd("<I"))
        return kv


class DemoModelShapeTest(H.unittest.TestCase):
    def test_other_shape_loads_and_generates(self):
        d = H.mkdtemp()
        p = os.path.join(d, "shaped.gguf")
        rc, out, err = H.run_skuld(["demo-model", "-o", p, "--layers", "3", "--width", "96",
                                    "--ff", "160", "--heads", "6", "--type", "q8_0"])
        self.assertEqual(rc, 0, err)
        self.assertIn("3 layers, 96 wide, ff 160, 6 heads, q8_0", out)
        kv = gguf_metadata(p)
        self.assertEqual(kv["llama.block_count"], 3)
        self.assertEqual(kv["llama.embedding_length"], 96)
        self.assertEqual(kv["llama.feed_forward_length"], 160)
        self.assertEqual(kv["llama.attention.head_count"], 6)
        self.assertEqual(kv["llama.rope.dimension_count"], 16)
        default = gguf_metadata(DEMO)
        self.assertEqual((default["llama.block_count"], default["llama.embedding_length"],
                          default["llama.feed_forward_length"],
                          default["llama.attention.head_count"]), (2, 64, 256, 4))
        cfg = local_config(parallel=2)
        cfg["models"][0]["path"] = p
        gw = H.Skuld(cfg, ready_timeout=60)
        try:
            r = gen(gw.port, max_tokens=10, temperature=0)
            self.assertEqual(r.status, 200, r.body)
            b = r.json()
            self.assertEqual(b["usage"]["completion_tokens"], 10)
            self.assertEqual(b["choices"][0]["finish_reason"], "length")
            e = H.post_json(gw.port, "/v1/embeddings", {"model": "tiny", "input": "hello"})
            self.assertEqual(e.status, 200, e.body)
            self.assertEqual(len(e.json()["data"][0]["embedding"]), 96)  # the model's width
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_bad_shapes_are_refused(self):
        p = os.path.join(H.mkdtemp(), "bad.gguf")
        for args, msg in ((["--width", "100"], "multiple of 32"),
                          (["--heads", "3"], "heads must divide"),
                          (["--width", "64", "--heads", "64"], "even size"),
                          (["--layers", "0"], "positive whole number"),
                          (["--layers", "2x"], "positive whole number"),
                          (["--ff", "100", "--type", "q4_0"], "multiple of 32"),
                          (["--type", "q5_k"], "--type is f32, q8_0 or q4_0"),
                          (["--layers", "128", "--width", "8192"], "GiB"),
                          (["--width"], "unexpected argument")):
            rc, out, err = H.run_skuld(["demo-model", "-o", p] + args)
            self.assertEqual(rc, 2, (args, err))
            self.assertIn(msg, err, args)
            self.assertFalse(os.path.exists(p), args)


class EmbeddedDefaultLocalTest(H.unittest.TestCase):
    def test_serve_without_config_writes_and_serves_demo(self):
        cwd = H.mkdtemp("skuld-cwd-")
        gw = H.Skuld(None, cwd=cwd, ready_timeout=60)
        try:
            self.assertTrue(os.path.exists(os.path.join(cwd, "skuld-data", "demo.gguf")))
            r = H.post_json(gw.port, "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers.get("x-skuld-model"), "demo")
            self.assertEqual(r.json()["usage"]["completion_tokens"], 6)
            # the README's first request (no max_tokens): the demo's cap of 64
            r = H.post_json(gw.port, "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "hello"}]})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["usage"]["completion_tokens"], 64)
        finally:
            self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    H.main()
