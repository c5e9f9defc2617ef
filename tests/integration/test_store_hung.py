"""
test_store_hung — a PostgreSQL server that stops answering (every postgres
process SIGSTOPped: connections stay open, nothing replies) must not freeze
the gateway (issue 26, hole 4).

With store.timeout: 1s, while the server is frozen:
  - /readyz turns 503 `store_unreachable` within a few seconds (the store's
    monitor thread pings it; the control thread never does);
  - POST /admin/reload answers (200) promptly: the control thread is free;
  - POST /admin/keys answers within a bounded time (503 store_unavailable:
    the writer's statement hits its deadline, the connection is dropped);
  - chat requests are still served.
After SIGCONT: /readyz is 200 again and a key can be created. Frozen once
more, SIGTERM makes the gateway exit promptly.

Needs a real PostgreSQL server (pgserver.py); fails, not skips, without one.
"""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import pgserver  # noqa: E402

MASTER = "mk-store-hung-0123456789"
ADMIN = {"Authorization": "Bearer " + MASTER}


class StoreHung(H.MockTest):

    def setUp(self):
        self.pg = pgserver.PgServer()
        self.pg.start()
        self.addCleanup(self.pg.stop)
        self.addCleanup(self.pg.thaw)
        cfg = H.base_config(self.mocks[0], server={"master_key": "env:SKULD_MK",
                                                   "drain_timeout": "2s",
                                                   "health_interval": "0s"})
        cfg["store"] = {"url": self.pg.url, "timeout": "1s"}
        self.gw = H.Skuld(cfg, env={"SKULD_MK": MASTER})
        self.addCleanup(lambda: self.gw.alive() and self.gw.proc.kill())

    def readyz(self):
        return H.request(self.gw.port, "GET", "/readyz", timeout=5)

    def timed(self, method, path, body=None, timeout=30):
        t0 = time.monotonic()
        r = H.request(self.gw.port, method, path, body, ADMIN, timeout=timeout)
        return r, time.monotonic() - t0

    def test_hung_postgres_does_not_freeze_the_gateway(self):
        self.assertEqual(self.readyz().status, 200)
        r, _ = self.timed("POST", "/admin/keys", {"name": "before"})
        self.assertEqual(r.status, 201, r.body)

        self.pg.freeze()
        t0 = time.monotonic()
        H.wait_until(lambda: self.readyz().status == 503, 8, interval=0.2,
                     what="/readyz 503 with the store frozen")
        took = time.monotonic() - t0
        r = self.readyz()
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["error"]["code"], "store_unreachable", r.body)
        self.assertLess(took, 6.0, "readiness took %.1fs to notice" % took)

        r, dt = self.timed("POST", "/admin/reload", timeout=10)
        self.assertEqual(r.status, 200, r.body)
        self.assertLess(dt, 3.0, "reload took %.1fs with the store frozen" % dt)

        r, dt = self.timed("POST", "/admin/keys", {"name": "frozen"}, timeout=30)
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.json()["error"]["code"], "store_unavailable", r.body)
        self.assertLess(dt, 15.0, "key creation took %.1fs with the store frozen" % dt)

        self.assertEqual(H.chat(self.gw.port, timeout=10).status, 200)
        # the reload and the key creation did not wait for the monitor either
        r, dt = self.timed("POST", "/admin/reload", timeout=10)
        self.assertEqual(r.status, 200, r.body)
        self.assertLess(dt, 3.0)

        self.pg.thaw()
        H.wait_until(lambda: self.readyz().status == 200, 20, interval=0.2,
                     what="/readyz 200 after SIGCONT")
        r = H.wait_until(lambda: (lambda r: r if r.status == 201 else None)(
            self.timed("POST", "/admin/keys", {"name": "after"})[0]), 20, interval=0.5,
            what="a key created after SIGCONT")
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(H.chat(self.gw.port, headers={"Authorization": "Bearer " +
                                                       r.json()["key"]}).status, 200)

        # frozen again: SIGTERM is acted on promptly
        self.pg.freeze()
        H.wait_until(lambda: self.readyz().status == 503, 8, interval=0.2,
                     what="/readyz 503 with the store frozen again")
        t0 = time.monotonic()
        self.gw.signal(signal.SIGTERM)
        try:
            rc = self.gw.wait(20)
        except Exception:
            self.fail("skuld did not exit within 20 s of SIGTERM with the store frozen\n"
                      + self.gw.describe())
        dt = time.monotonic() - t0
        self.assertEqual(rc, 0, self.gw.describe())
        self.assertLess(dt, 12.0, "exit took %.1fs after SIGTERM" % dt)
        self.assertIn("signal 15", self.gw.stderr())


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, pgserver._on_sigterm)
    unittest.main(verbosity=2)
