"""
Chaos (c): Redis frozen (SIGSTOP) and resumed, then stopped (SIGTERM) and
started again on the same port, during load.

Config: every limit and budget counter in Redis (global rpm/tpm, and a
virtual key with its own rpm and budget that the clients use), the response
cache on with its Redis tier, redis.timeout 50 ms, on_failure: open (the
default). README, "Shared counters: Redis": a call that does not answer
within the timeout is decided by on_failure (open: admitted uncounted), Redis
down fails calls at once by policy and the connection is retried; the cache's
Redis tier counts an error and proceeds as a miss: "Redis down never fails or
stalls a request". So: 0 client errors, the outages are seen (policy
decisions and Redis failures counted), the counters are back in Redis after
the restart, and the spend log (SQLite) has exactly one row per request.
"""
import os
import time
import unittest

import chaos as C
from chaos import H
from redisserver import RedisServer

MASTER = "mk-chaos-redis-0123456789"


class RedisOutage(unittest.TestCase):
    def test_redis_frozen_then_restarted(self):
        redis = RedisServer()
        primary, backup = H.Mock(), H.Mock()
        db = os.path.join(H.mkdtemp(), "spend.db")
        cfg = C.chain_config([primary, backup], "sqlite://" + db, extra={
            "redis": {"url": redis.url, "timeout": "50ms", "on_failure": "open"},
            "limits": {"rpm": 10000000, "tpm": 1000000000},
            "cache": {"enabled": True, "redis": True},
        })
        cfg["server"]["master_key"] = "env:SKULD_MK"
        gw = H.Skuld(cfg, env={"SKULD_MK": MASTER})
        r = H.request(gw.port, "POST", "/admin/keys",
                      {"name": "chaos", "rpm": 10000000, "budget_usd": 1000000},
                      {"Authorization": "Bearer " + MASTER})
        self.assertEqual(r.status, 201, r.body)
        key = {"Authorization": "Bearer " + r.json()["key"]}
        load = C.Load(gw.port, "redis", headers=key, min_requests=10000)
        try:
            load.start()
            load.wait_done(1500, 60)
            self.assertTrue(redis.keys("skuld:rl:*"), "counters in Redis before the outage")
            s0 = H.metrics_parse(gw.metrics())[0]

            redis.freeze()                       # accepting, not answering
            t = time.monotonic()
            n0 = load.done
            while time.monotonic() - t < 3.0:
                time.sleep(0.1)
            frozen = load.done - n0
            redis.thaw()
            load.wait_done(load.done + 1500, 60)

            redis.stop()                         # down: refused
            t = time.monotonic()
            n0 = load.done
            while time.monotonic() - t < 2.0:
                time.sleep(0.1)
            down = load.done - n0
            redis.start()                        # same port, empty
            H.wait_until(lambda: redis.keys("skuld:rl:*"), 20,
                         what="counters back in the restarted Redis")
            load.wait_done(load.done + 1500, 60)
            load.stop()
            load.join(120)
            print(load.summary())
            print("answered while Redis was frozen for 3 s: %d; down for 2 s: %d" % (frozen, down))
            self.assertEqual(load.errors, [], load.error_report())
            self.assertGreater(frozen, 0)
            self.assertGreater(down, 0)
            s1 = H.metrics_parse(gw.metrics())[0]
            opened = (H.metric(s1, "skuld_redis_policy_total", on_failure="open") -
                      H.metric(s0, "skuld_redis_policy_total", on_failure="open"))
            failed = (H.metric(s1, "skuld_redis_failures_total") -
                      H.metric(s0, "skuld_redis_failures_total"))
            print("redis.on_failure open decisions: %d, Redis failures: %d" % (opened, failed))
            self.assertGreater(opened, 0)
            self.assertGreater(failed, 0)
            C.check_spend(self, load, lambda: C.sqlite_spend(db))
        finally:
            load.stop()
            rc = gw.stop()
            primary.stop()
            backup.stop()
            redis.stop()
        self.assertEqual(rc, 0)
        C.check_spend(self, load, lambda: C.sqlite_spend(db), settle=0)


if __name__ == "__main__":
    C.main()
