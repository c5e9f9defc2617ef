"""
Model selection (issue 6) end to end: three mock-upstream instances with
different latency and price behind the route `auto`.

- Cold start: every deployment is tried (explored) until it has samples.
- Then most traffic goes to the best-scoring one (the fast mock).
- Its latency is raised at runtime (POST /_mock/config on that mock): traffic
  shifts away within SHIFT_WITHIN_S seconds (it takes ~3 slow answers for
  the latency EWMA to cross over; the bound leaves a wide margin).
- x-skuld-max-cost and x-skuld-min-quality are honoured; nothing eligible is
  a 422 in the OpenAI error shape naming the reason per candidate.
- Explanations: the x-skuld-explain header, POST /admin/route/explain and
  `skuld route explain`.
- A model group (two deployments sharing a name) is balanced and
  x-skuld-model names the deployment that answered; /v1/models lists routes;
  /v1/messages goes through the same resolution.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

MASTER = "mk-routing-test-5b1e"
ENV = {"SKULD_IT_MASTER": MASTER}
SHIFT_WITHIN_S = 15.0
FAST_MS, CHEAP_MS, PREMIUM_MS, SLOWED_MS = 20, 150, 300, 700


class RoutingTest(H.GatewayTest):
    mock_names = ("fast", "cheap", "premium")
    env = ENV

    @classmethod
    def config(cls):
        cls.fast.set_config({"latency_ms": FAST_MS})
        cls.cheap.set_config({"latency_ms": CHEAP_MS})
        cls.premium.set_config({"latency_ms": PREMIUM_MS})
        return {
            "server": {"workers": 2, "master_key": "env:SKULD_IT_MASTER", "health_interval": "0s"},
            "providers": [
                {"name": "pfast", "type": "openai", "base_url": cls.fast.base_url},
                {"name": "pcheap", "type": "openai", "base_url": cls.cheap.base_url},
                {"name": "ppremium", "type": "openai", "base_url": cls.premium.base_url},
            ],
            "models": [
                {"name": "m-fast", "provider": "pfast", "quality": 0.8,
                 "price": {"input": 3, "output": 3}},
                {"name": "m-cheap", "provider": "pcheap", "quality": 0.8,
                 "price": {"input": 1, "output": 1}},
                {"name": "m-premium", "provider": "ppremium", "quality": 0.95,
                 "price": {"input": 10, "output": 10}},
                {"name": "grp", "provider": "pfast"},
                {"name": "grp", "provider": "pcheap"},
            ],
            "routes": [
                {"name": "auto", "candidates": ["m-fast", "m-cheap", "m-premium"]},
            ],
        }

    def ask(self, headers=None, model="auto", content="hello routing", **extra):
        r = H.chat(self.port, content, model=model, headers=headers, max_tokens=10, **extra)
        return r

    def warm_up(self):
        """Until every candidate of auto is warm (3 samples each, explored first)."""
        seen = []
        for _ in range(12):
            r = self.ask()
            self.assertEqual(r.status, 200, r.body)
            seen.append(r.headers["x-skuld-model"])
        for m in ("m-fast", "m-cheap", "m-premium"):
            self.assertGreaterEqual(seen.count(m), 3, seen)
        return seen

    def test_1_traffic_follows_the_score_and_shifts(self):
        self.fast.set_config({"latency_ms": FAST_MS})
        self.warm_up()
        picks = [self.ask().headers["x-skuld-model"] for _ in range(30)]
        self.assertGreaterEqual(picks.count("m-fast"), 27, picks)  # most: the best-scoring

        # the fast deployment becomes the slowest: traffic leaves it
        self.fast.set_config({"latency_ms": SLOWED_MS})
        t0 = time.monotonic()
        streak, shifted_at, log = 0, None, []
        while time.monotonic() - t0 < SHIFT_WITHIN_S + 5:
            r = self.ask()
            self.assertEqual(r.status, 200, r.body)
            m = r.headers["x-skuld-model"]
            log.append(m)
            streak = streak + 1 if m != "m-fast" else 0
            if streak == 5:
                shifted_at = time.monotonic() - t0
                break
        self.assertIsNotNone(shifted_at, "traffic never left m-fast: %s" % log)
        self.assertLess(shifted_at, SHIFT_WITHIN_S, log)
        later = [self.ask().headers["x-skuld-model"] for _ in range(20)]
        self.assertLessEqual(later.count("m-fast"), 2, later)
        self.assertGreaterEqual(later.count("m-cheap"), 15, later)  # next best: fast and cheap
        sys.stderr.write("shift: %.2fs after the latency change (%d requests: %s)\n"
                         % (shifted_at, len(log), log))
        self.fast.set_config({"latency_ms": FAST_MS})

    def test_2_cost_and_quality_headers(self):
        # estimated tokens ~ 7 prompt + 10 out: cheap $1.7e-5, fast $5.1e-5, premium $1.7e-4
        for _ in range(5):
            r = self.ask({"x-skuld-max-cost": "0.00003"})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["x-skuld-model"], "m-cheap")
        for _ in range(5):
            r = self.ask({"x-skuld-min-quality": "0.9"})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["x-skuld-model"], "m-premium")
        r = self.ask({"x-skuld-max-latency-ms": "1"})
        err = H.check_error_shape(self, r, 422, "no_eligible_deployment")
        self.assertIn("x-skuld-max-latency-ms", err["message"])
        r = self.ask({"x-skuld-min-quality": "0.9", "x-skuld-max-cost": "0.00003"})
        err = H.check_error_shape(self, r, 422, "no_eligible_deployment")
        self.assertEqual(err["param"], "model")
        for dep, why in (("m-fast", "x-skuld-min-quality"), ("m-cheap", "x-skuld-min-quality"),
                         ("m-premium", "x-skuld-max-cost")):
            self.assertIn("%s: " % dep, err["message"])
        self.assertRegex(err["message"], r"m-premium: estimated cost \$[0-9.e-]+ > x-skuld-max-cost")
        r = self.ask({"x-skuld-max-cost": "cheap"})
        H.check_error_shape(self, r, 400, "invalid_header")
        # explicit names win: no constraint filters them
        r = self.ask({"x-skuld-min-quality": "0.99"}, model="m-cheap")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["x-skuld-model"], "m-cheap")

    def test_3_explain(self):
        r = self.ask({"x-skuld-explain": "1"})
        self.assertEqual(r.status, 200, r.body)
        ex = json.loads(r.headers["x-skuld-explain"])
        self.assertEqual(ex["target"], "auto")
        self.assertEqual(ex["choice"], r.headers["x-skuld-model"])
        self.assertEqual(sorted(c["id"] for c in ex["candidates"]),
                         ["m-cheap", "m-fast", "m-premium"])
        for c in ex["candidates"]:
            self.assertEqual(set(c["factors"]), {"quality", "latency", "cost", "reliability",
                                                 "size", "hardware", "distance"})
        self.assertNotIn("x-skuld-explain", self.ask().headers)
        # the 422 carries it too
        r = self.ask({"x-skuld-explain": "1", "x-skuld-min-quality": "0.99"})
        self.assertEqual(r.status, 422)
        ex = json.loads(r.headers["x-skuld-explain"])
        self.assertIsNone(ex["choice"])
        self.assertTrue(all(not c["eligible"] and c["reason"] for c in ex["candidates"]))

        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        r = H.post_json(self.port, "/admin/route/explain", body)
        self.assertEqual(r.status, 401)
        r = H.post_json(self.port, "/admin/route/explain", body,
                        {"Authorization": "Bearer " + MASTER, "x-skuld-min-quality": "0.9"})
        self.assertEqual(r.status, 200, r.body)
        ex = r.json()
        self.assertEqual(ex["choice"], "m-premium")
        self.assertEqual(len(ex["candidates"]), 3)

        rc, out, err = H.run_skuld(env=ENV, args=["route", "explain", "-c", self.gw.config_path, "--model",
                                    "auto", "--prompt", "write a python function"])
        self.assertEqual(rc, 0, err)
        self.assertIn("task: code", out)
        self.assertIn("choice: ", out)
        for dep in ("m-fast", "m-cheap", "m-premium"):
            self.assertIn(dep, out)
        rc, out, err = H.run_skuld(env=ENV, args=["route", "explain", "-c", self.gw.config_path, "--model",
                                    "auto", "--prompt", "x", "--min-quality", "0.99"])
        self.assertEqual(rc, 1)
        self.assertIn("filtered: quality 0.80 < x-skuld-min-quality 0.99", out)
        rc, out, err = H.run_skuld(env=ENV, args=["route", "explain", "-c", self.gw.config_path, "--model",
                                    "nope", "--prompt", "x"])
        self.assertEqual(rc, 1)
        self.assertIn("neither a route nor a model", err)

    def test_4_model_group_and_listing(self):
        ids = [self.ask(model="grp").headers["x-skuld-model"] for _ in range(10)]
        self.assertEqual(sorted(set(ids)), ["grp@pcheap", "grp@pfast"], ids)
        self.assertEqual(ids.count("grp@pfast"), 5, ids)  # weights 1:1, smooth round-robin
        r = self.ask(model="grp@pcheap")  # a deployment id pins it
        self.assertEqual(r.headers["x-skuld-model"], "grp@pcheap")
        r = H.request(self.port, "GET", "/v1/models")
        names = [m["id"] for m in r.json()["data"]]
        self.assertIn("auto", names)
        self.assertEqual(names.count("grp"), 1, names)  # a model group is listed once
        r = H.post_json(self.port, "/v1/messages",
                        {"model": "auto", "max_tokens": 10,
                         "messages": [{"role": "user", "content": "hi"}]},
                        {"anthropic-version": "2023-06-01"})
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(r.headers["x-skuld-model"], ("m-fast", "m-cheap", "m-premium"))
        # metrics tell the deployments of one model apart
        text = H.request(self.port, "GET", "/metrics").text()
        self.assertIn('model="grp@pfast"', text)
        self.assertIn('model="grp@pcheap"', text)


if __name__ == "__main__":
    H.main()
