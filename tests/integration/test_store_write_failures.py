"""
test_store_write_failures — store writes that fail must not vanish (issue 26,
hole 5).

An SQLite store whose files are made immutable (`chattr +i` on the database,
its WAL and their directory: the tests run as root, for whom chmod changes
nothing) while the gateway serves. Requests are still served, but every spend
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

Skips (with the reason) only when the filesystem does not support chattr.
"""

import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 23


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag] + list(paths), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT).returncode == 0


def metric(text, name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class StoreWriteFailures(H.MockTest):
    def setUp(self):
        self.dir = H.mkdtemp("skuld-ro-")
        self.db = os.path.join(self.dir, "skuld.db")
        cfg = H.base_config(self.mock, server={"health_interval": "0s"})
        cfg["store"] = {"url": "sqlite://" + self.db, "timeout": "1s"}
        cfg["cache"] = {"enabled": True, "persistent": True, "dedupe": {"window": "0s"}}
        self.gw = H.Skuld(cfg)
        self.locked = []
        self.addCleanup(self.unlock)

    def lock(self):
        paths = [p for p in (self.db, self.db + "-wal") if os.path.exists(p)] + [self.dir]
        if not chattr("+i", *paths):
            chattr("-i", *paths)
            self.skipTest("chattr +i is not supported here (needs root and ext2/3/4, xfs, "
                          "btrfs...): cannot make the store read-only for root")
        self.locked = paths

    def unlock(self):
        if self.locked:
            chattr("-i", *self.locked)
            self.locked = []

    def rows(self, table):
        c = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        try:
            return c.execute("SELECT COUNT(*) FROM %s" % table).fetchone()[0]
        finally:
            c.close()

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
