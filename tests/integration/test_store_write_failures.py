"""
test_store_write_failures — store writes that fail must not vanish (issue 26,
hole 5).

An SQLite store whose files are made immutable (`chattr +i` on the database,
its WAL and their directory: the tests run as root, for whom chmod changes
nothing), and a PostgreSQL server made read-only (default_transaction_read_
only for every session), while the gateway serves. Requests are still served, but every spend
row and persistent cache entry fails to commit. Then:
  - skuld_store_write_failures_total{table="spend_log"} and
    {table="cache_entries"} rise (at least one per write);
  - skuld_cache_stores_total{tier="store"} does not count entries that never
    landed;
  - the failures are logged, rate limited (one summary line per 10 s, not
    one per write or per retry);
  - /readyz is 503 `store_write_failing`, its message names the table;
and once the files are writable again the retried rows land: as many spend
rows as requests, as many cache rows as distinct answers, nothing given up,
/readyz 200 again.

The SQLite case skips (with the reason) only when the filesystem does not
support chattr; the PostgreSQL case needs a real server (pgserver.py) and
fails without one.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import pgserver  # noqa: E402

N = 23


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag] + list(paths), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT).returncode == 0


def metric(text, name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class WriteFailures:
    """The scenario; a subclass gives the store (store_url), lock() / unlock()
    (writes fail / work again) and rows(table)."""

    def setUp(self):
        self.locked = False
        self.addCleanup(self.unlock)
        cfg = H.base_config(self.mock, server={"health_interval": "0s"})
        cfg["store"] = {"url": self.store_url(), "timeout": "1s"}
        cfg["cache"] = {"enabled": True, "persistent": True, "dedupe": {"window": "0s"}}
        self.gw = H.Skuld(cfg)

    def m(self, name, labels):
        return metric(self.gw.metrics(), name, labels)

    def readyz(self):
        return H.request(self.gw.port, "GET", "/readyz", timeout=5)

    def test_failed_writes_are_retried_counted_logged_and_reported(self):
        self.assertEqual(H.chat(self.gw.port, content="first").status, 200)
        H.wait_until(lambda: self.rows("spend_log") == 1 and self.rows("cache_entries") == 1, 10,
                     what="the first spend row and cache entry")
        H.wait_until(lambda: self.m("skuld_cache_stores_total", 'tier="store"') == 1, 5,
                     what="one cache store counted")
        self.assertEqual(self.m("skuld_store_write_failures_total", 'table="spend_log"'), 0)
        self.assertEqual(self.readyz().status, 200)

        self.lock()
        t0 = time.monotonic()
        for i in range(N):
            r = H.chat(self.gw.port, content="request %d" % i, timeout=10)
            self.assertEqual(r.status, 200, r.body)
        H.wait_until(lambda: (self.m("skuld_store_write_failures_total", 'table="spend_log"') or 0)
                     >= N, 10, interval=0.1, what="%d spend_log failures counted" % N)
        H.wait_until(lambda: (self.m("skuld_store_write_failures_total",
                                     'table="cache_entries"') or 0) >= N, 10, interval=0.1,
                     what="%d cache_entries failures counted" % N)
        r = H.wait_until(lambda: (lambda r: r if r.status == 503 else None)(self.readyz()), 10,
                         interval=0.1, what="/readyz 503 while writes fail")
        err = r.json()["error"]
        self.assertEqual(err["code"], "store_write_failing", r.body)
        self.assertIn("spend_log", err["message"])
        self.assertIn("waiting for a retry", err["message"])
        # nothing that failed was counted as stored
        self.assertEqual(self.m("skuld_cache_stores_total", 'tier="store"'), 1)
        self.assertEqual(self.rows("spend_log"), 1)
        # let the retries run for a while: more failures, few log lines
        time.sleep(4)
        fails = self.m("skuld_store_write_failures_total", 'table="spend_log"')
        pending = re.search(r"^skuld_store_write_retry_pending (\d+)$", self.gw.metrics(), re.M)
        self.assertIsNotNone(pending)
        self.assertGreaterEqual(int(pending.group(1)), 2 * N)  # spend rows and cache entries
        lines = [l for l in self.gw.stderr().splitlines() if "write(s) failed" in l]
        elapsed = time.monotonic() - t0
        sys.stdout.write("failures: %s, log lines:\n%s\n" % (fails, "\n".join(lines)))
        self.assertGreaterEqual(len(lines), 1, self.gw.stderr())
        self.assertLessEqual(len(lines), int(elapsed / 10) + 2, "\n".join(lines))
        self.assertGreater(fails, len(lines) * 5, "failures %s vs log lines %d" % (fails, len(lines)))
        self.assertIn("spend_log", "\n".join(lines) + err["message"])

        self.unlock()
        H.wait_until(lambda: self.rows("spend_log") == N + 1, 30, interval=0.2,
                     what="the retried spend rows landing (%d)" % (N + 1))
        H.wait_until(lambda: self.rows("cache_entries") == N + 1, 10, interval=0.2,
                     what="the retried cache entries landing")
        H.wait_until(lambda: self.readyz().status == 200, 10, interval=0.2,
                     what="/readyz 200 once writes succeed")
        self.assertEqual(self.m("skuld_cache_stores_total", 'tier="store"'), N + 1)
        for t in ("spend_log", "cache_entries"):
            self.assertEqual(self.m("skuld_store_writes_dropped_total", 'table="%s"' % t), 0)
        time.sleep(0.5)
        self.assertEqual(self.rows("spend_log"), N + 1, "a retried row was written twice")
        self.assertEqual(self.gw.stop(), 0, self.gw.describe())


class Sqlite(WriteFailures, H.MockTest):
    """SQLite: the database, its WAL and their directory made immutable."""

    def store_url(self):
        self.dir = H.mkdtemp("skuld-ro-")
        self.db = os.path.join(self.dir, "skuld.db")
        self.paths = []
        return "sqlite://" + self.db

    def lock(self):
        paths = [p for p in (self.db, self.db + "-wal") if os.path.exists(p)] + [self.dir]
        if not chattr("+i", *paths):
            chattr("-i", *paths)
            self.skipTest("chattr +i is not supported here (needs root and ext2/3/4, xfs, "
                          "btrfs...): cannot make the store read-only for root")
        self.paths = paths
        self.locked = True

    def unlock(self):
        if self.locked:
            chattr("-i", *self.paths)
            self.locked = False

    def rows(self, table):
        c = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        try:
            return c.execute("SELECT COUNT(*) FROM %s" % table).fetchone()[0]
        finally:
            c.close()


class Postgres(WriteFailures, H.MockTest):
    """PostgreSQL made read-only for every session: ALTER SYSTEM SET
    default_transaction_read_only, pg_reload_conf()."""

    def store_url(self):
        self.pg = pgserver.PgServer()
        self.pg.start()
        self.addCleanup(self.pg.stop)
        return self.pg.url

    def psql(self, sql):
        env = dict(os.environ, PGPASSWORD=self.pg.password)
        p = subprocess.run([os.path.join(self.pg.bin, "psql"), "-h", "127.0.0.1", "-p",
                            str(self.pg.port), "-U", self.pg.user, "-d", self.pg.dbname, "-At",
                            "-v", "ON_ERROR_STOP=1", "-c", sql],
                           env=env, capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("psql: %s" % p.stderr.decode(errors="replace"))
        return p.stdout.decode().strip()

    def set_read_only(self, on):
        self.psql("ALTER SYSTEM SET default_transaction_read_only = %s" % ("on" if on else "off"))
        self.psql("SELECT pg_reload_conf()")

    def lock(self):
        self.set_read_only(True)
        self.locked = True
        time.sleep(0.5)  # the backends take the reloaded setting between statements

    def unlock(self):
        if self.locked:
            self.set_read_only(False)
            self.locked = False

    def rows(self, table):
        return int(self.psql("SELECT COUNT(*) FROM %s" % table))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, pgserver._on_sigterm)
    unittest.main(verbosity=2)
