"""
Chaos (d): the PostgreSQL store frozen (SIGSTOP of the server and its
backends: connections open, nothing answers) and resumed, then shut down
(fast shutdown: every connection terminated) and started again on the same
port and data, during load.

The request path never waits on the database (README: one writer thread;
event loops never wait on it), so every request is still served: 0 client
errors. Every request that reached admission writes a spend row through the
store writer: after the store is back and the log has settled, exactly one
row per request with the client's status — nothing lost while the database
was away, nothing written twice when its connection was lost. A write that
someone waits for (creating a key) still fails fast while the database is
down, rather than waiting behind the spend rows held for it.
"""
import time
import unittest

import chaos as C
from chaos import H
from pgserver import PgServer

MASTER = "mk-chaos-pg-0123456789"
ADMIN = {"Authorization": "Bearer " + MASTER}


class PgOutage(unittest.TestCase):
    def test_postgres_frozen_then_restarted(self):
        pg = PgServer().start()
        primary, backup = H.Mock(), H.Mock()
        cfg = C.chain_config([primary, backup], pg.url)
        cfg["server"]["master_key"] = "env:SKULD_MK"
        gw = H.Skuld(cfg, env={"SKULD_MK": MASTER})
        load = C.Load(gw.port, "pg", min_requests=10000)
        rows = lambda: C.pg_spend(pg)  # noqa: E731
        try:
            load.start()
            load.wait_done(1500, 60)
            H.wait_until(lambda: len(rows()) > 0, 10, what="spend rows in PostgreSQL")

            print("%s freeze at request %d" % (time.strftime("%H:%M:%S"), load.done))
            pg.freeze()
            t, n0 = time.monotonic(), load.done
            while time.monotonic() - t < 3.0:
                time.sleep(0.1)
            frozen = load.done - n0
            pg.thaw()
            print("%s thawed at request %d" % (time.strftime("%H:%M:%S"), load.done))
            load.wait_done(load.done + 1500, 60)

            print("%s halt at request %d" % (time.strftime("%H:%M:%S"), load.done))
            pg.halt()
            t, n0 = time.monotonic(), load.done
            while time.monotonic() - t < 3.0:
                time.sleep(0.1)
            down = load.done - n0
            r = H.request(gw.port, "POST", "/admin/keys", {"name": "during-outage"}, ADMIN,
                          timeout=20)
            print("POST /admin/keys with PostgreSQL down: %d in %.2f s %r" %
                  (r.status, r.elapsed, r.body[:200]))
            self.assertNotEqual(r.status, 201, r.body)
            self.assertLess(r.elapsed, 6.0)
            pg.resume()
            print("%s resumed at request %d" % (time.strftime("%H:%M:%S"), load.done))
            H.wait_until(lambda: "writer reconnected" in gw.stderr(), 30,
                         what="the store writer reconnected")
            load.wait_done(load.done + 1500, 60)
            load.stop()
            load.join(120)
            print(load.summary())
            print("answered while PostgreSQL was frozen for 3 s: %d; down for 3 s: %d" %
                  (frozen, down))
            self.assertEqual(load.errors, [], load.error_report())
            self.assertGreater(frozen, 1000)
            self.assertGreater(down, 1000)
            C.check_spend(self, load, rows, settle=30)
        finally:
            load.stop()
            rc = gw.stop()
            primary.stop()
            backup.stop()
        self.assertEqual(rc, 0)
        try:
            C.check_spend(self, load, rows, settle=0)
        finally:
            pg.stop()


if __name__ == "__main__":
    C.main()
