"""
Chaos (a): 30% of upstream calls fail at random behind a fallback chain.

gpt-test -> fallbacks [fb1, fb2]: the primary and the first fallback each
fail 30% of the calls they get (mock-upstream, seeded: a 500, a TCP reset
instead of an answer, or a 5 s stall past the 300 ms per-try / first-chunk
timeout, each drawn at p = 1 - 0.7^(1/3), so 30% get at least one); the last
fallback is healthy. 10,000 requests (one in five streamed) from 16
keep-alive clients: 0 client errors, and the spend log (SQLite) has exactly
one row per request with the client's status.
"""
import os
import unittest

import chaos as C
from chaos import H

N = 10000
P = 1 - 0.7 ** (1 / 3)  # three independent faults at p: 30% of calls fail
FAULTS = {"fail_rate": P, "reset_rate": P, "stall_rate": P, "stall_ms": 5000}


class Faults(unittest.TestCase):
    def test_30pct_faults_zero_client_errors(self):
        mocks = [H.Mock(["--seed", "26"]), H.Mock(["--seed", "27"]), H.Mock()]
        for m in mocks[:2]:
            m.set_config(FAULTS)
        db = os.path.join(H.mkdtemp(), "spend.db")
        gw = H.Skuld(C.chain_config(mocks, "sqlite://" + db))
        try:
            load = C.Load(gw.port, "faults", total=N, threads=32).run(timeout=400)
            print(load.summary())
            self.assertEqual(load.errors, [], load.error_report())
            self.assertEqual(len(load.ok), N)
            rows = C.check_spend(self, load, lambda: C.sqlite_spend(db))
            self.assertEqual(sum(1 for r in rows if r[1] == 200), N)
            # the faults did happen: 30% of the calls to each faulty mock
            for m in mocks[:2]:
                st = m.stats()
                calls = st["by_path"].get("/v1/chat/completions", 0)
                print("mock :%d: %d calls, %d faults (%d 500s, %d resets, %d stalls)" %
                      (m.port, calls, st["faults"], st["fails"], st["resets"], st["stalls"]))
                self.assertGreater(calls, N * 0.15)
                self.assertGreater(st["faults"], 0.27 * calls, st)
                self.assertLess(st["faults"], 0.33 * calls, st)
                for k in ("fails", "resets", "stalls"):
                    self.assertGreater(st[k], 0.05 * calls, (k, st))
            self.assertGreater(mocks[2].stats()["requests"], N * 0.05)
        finally:
            rc = gw.stop()
            for m in mocks:
                m.stop()
        self.assertEqual(rc, 0)
        C.check_spend(self, load, lambda: C.sqlite_spend(db), settle=0)  # after the exit too


if __name__ == "__main__":
    C.main()
