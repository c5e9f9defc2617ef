"""
test_store_pg — the store's registry suite against a real PostgreSQL server.

Starts a throw-away server with pgserver.py (temporary directory, free port,
password auth; as root it runs as the unprivileged `skuldtest` user), exports
its URL as SKULD_TEST_PG_URL and runs the test_store unit binary (env
TEST_STORE_BIN, set by ctest; default build/tests/test_store), which then runs
its store/postgres group — the same registry tests as store/sqlite — on top
of the SQLite ones. If PostgreSQL cannot be started this test FAILS: CI
installs the server (scripts/install-deps.sh --test), so a skip would only
hide a broken set-up.
"""

import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_STORE_BIN = os.environ.get("TEST_STORE_BIN") or os.path.join(ROOT, "build", "tests",
                                                                  "test_store")


class StorePg(unittest.TestCase):
    def test_registry_suite_on_postgres(self):
        self.assertTrue(os.access(TEST_STORE_BIN, os.X_OK), "no test_store binary at "
                        + TEST_STORE_BIN)
        with pgserver.PgServer() as pg:
            env = dict(os.environ, SKULD_TEST_PG_URL=pg.url)
            r = subprocess.run([TEST_STORE_BIN], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=240)
            out = r.stdout.decode(errors="replace")
            sys.stdout.write(out)
            if r.returncode != 0:
                sys.stdout.write("---- postgres log ----\n" + pg.log())
            self.assertEqual(r.returncode, 0, "test_store failed against PostgreSQL")
            # The PostgreSQL group really ran (not skipped).
            self.assertNotIn("SKULD_TEST_PG_URL not set", out)
            self.assertIn("test_pg_reconnect", out)
            # Nothing printed the server's password.
            self.assertNotIn(pg.password, out)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, pgserver._on_sigterm)
    unittest.main(verbosity=2)
