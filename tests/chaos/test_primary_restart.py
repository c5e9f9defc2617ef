"""
Chaos (b): the primary upstream is killed (SIGKILL: its connections reset,
then connection refused) and started again on the same port during load.

gpt-test -> fallbacks [fb1]; breaker defaults (5 consecutive failures) but a
1 s ejection so the primary comes back within the run. The primary answers
after 20 ms, so the kill catches requests in flight there (they fail over:
the mock sends a stream whole once the latency has passed, so a stream is
cut before its first event reaches the client, never after it, which no
gateway could hide: see README, Resilience, Streams). 16 keep-alive clients
(one request in five streamed) run throughout; the primary is killed twice:
0 client errors; it serves again after each restart; the spend log (SQLite)
has exactly one row per request.
"""
import os
import time
import unittest

import chaos as C
from chaos import H


class PrimaryRestart(unittest.TestCase):
    def test_primary_killed_and_restarted(self):
        primary, backup = H.Mock(), H.Mock()
        primary.set_config({"latency_ms": 20})
        db = os.path.join(H.mkdtemp(), "spend.db")
        gw = H.Skuld(C.chain_config([primary, backup], "sqlite://" + db, resilience={
            "breaker_failures": 5, "ejection_time": "1s", "max_ejection_time": "2s"}))
        load = C.Load(gw.port, "restart", min_requests=10000)
        try:
            load.start()
            for rnd in range(2):  # killed twice: once at rest, once between restarts
                load.wait_done(load.done + 1500, 60)
                H.wait_until(lambda: primary.stats()["in_flight"] >= 4, 10,
                             what="requests in flight on the primary")
                C.kill_mock(primary)
                t_kill = time.monotonic()
                load.wait_done(load.done + 2000, 60)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t_kill)))  # down at least 1 s
                C.restart_mock(primary)
                primary.set_config({"latency_ms": 20})
                # the breaker's probe finds it back; it serves again
                H.wait_until(lambda: primary.stats()["requests"] >= 200, 30,
                             what="restarted primary serving again")
            load.wait_done(load.done + 1500, 60)
            load.stop()
            load.join(120)
            print(load.summary())
            self.assertEqual(load.errors, [], load.error_report())
            self.assertGreater(backup.stats()["requests"], 0)
            C.check_spend(self, load, lambda: C.sqlite_spend(db))
        finally:
            load.stop()
            rc = gw.stop()
            primary.stop()
            backup.stop()
        self.assertEqual(rc, 0)
        C.check_spend(self, load, lambda: C.sqlite_spend(db), settle=0)


if __name__ == "__main__":
    C.main()
