"""
1,000 concurrent streaming chat requests through skuld to the mock (20
chunks each, 100 ms apart), on asyncio raw sockets. Every stream must
complete with every chunk in order and [DONE]; all 1,000 must be open at
once at some point; skuld exits cleanly afterwards.

skuld's RSS before, at peak and after the load is printed here, but the
memory target (within 10% of the pre-load level) is checked by
bench/streams_1000.py and recorded in bench/BENCHMARKS.md: the project keeps
speed and memory targets in bench/, not in ctest.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import streams_load as L  # noqa: E402

N = int(os.environ.get("SKULD_STREAMS_N", "1000"))
CHUNKS = 20
GAP_MS = 100
SETTLE_S = 5.0


class Streams1000Test(H.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.r = L.measure(n=N, chunks=CHUNKS, gap_ms=GAP_MS, settle=SETTLE_S,
                          log=lambda s: print("  " + s, flush=True))

    def test_every_stream_complete_and_in_order(self):
        f = self.r["failures"]
        reasons = {}
        for x in f:
            reasons[x] = reasons.get(x, 0) + 1
        self.assertEqual(len(f), 0, "%d of %d streams failed: %r" % (len(f), N, reasons))
        self.assertEqual(self.r["events"], N * (CHUNKS + 3))  # role + chunks + finish + [DONE]

    def test_all_streams_concurrent(self):
        self.assertGreaterEqual(self.r["peak_active"], int(N * 0.95),
                                "the streams did not overlap: peak %d" % self.r["peak_active"])

    def test_clean_exit(self):
        self.assertEqual(self.r["exit_code"], 0)


if __name__ == "__main__":
    H.main()
