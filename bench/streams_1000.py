#!/usr/bin/env python3
"""
bench/streams_1000.py -- N concurrent streaming chat requests through skuld
to tools/mock-upstream, with skuld's RSS before / at peak / after the load.

    python3 bench/streams_1000.py [--streams 1000] [--chunks 20] [--gap-ms 100]
                                  [--settle 5] [--build-dir build] [--header]

Builds skuld and mock-upstream first if they are missing (cmake, in
--build-dir). Prints the measurements, then one markdown table row for
bench/BENCHMARKS.md:

| date | machine | streams | chunks | wall | RSS before | RSS peak | RSS after | result |

"result" is pass when every stream completed in order with [DONE] and the
after-load RSS is within 10% of the before-load RSS (the memory target of the
gateway-core issue; tests/integration/test_streams_1000.py checks the stream
correctness part in ctest); otherwise fail with the reason.
Standard library only.
"""
import argparse
import datetime
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

HEADER = ("| date | machine | streams | chunks | wall | RSS before | RSS peak | RSS after | result |\n"
          "|---|---|---|---|---|---|---|---|---|")


def machine():
    model = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d x %s" % (os.cpu_count() or 0, " ".join(model.split()))


def ensure_built(build_dir):
    skuld = os.path.join(build_dir, "skuld")
    mock = os.path.join(build_dir, "tools", "mock-upstream", "mock-upstream")
    if not (os.path.exists(skuld) and os.path.exists(mock)):
        print("building in %s ..." % build_dir, file=sys.stderr)
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DSKULD_ALLOW_NO_E2E=ON",
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=sys.stderr)
        subprocess.run(["cmake", "--build", build_dir, "-j%d" % (os.cpu_count() or 1),
                        "--target", "skuld", "mock-upstream"], check=True, stdout=sys.stderr)
    return skuld, mock


def mib(kb):
    return "%.1f MiB" % (kb / 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--gap-ms", type=int, default=100)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after the load")
    ap.add_argument("--build-dir", default=os.environ.get("SKULD_BUILD_DIR",
                                                          os.path.join(ROOT, "build")))
    ap.add_argument("--header", action="store_true", help="print the table header first")
    a = ap.parse_args()

    if not (os.environ.get("SKULD_BIN") and os.environ.get("MOCK_UPSTREAM_BIN")):
        skuld, mock = ensure_built(os.path.abspath(a.build_dir))
        os.environ["SKULD_BIN"], os.environ["MOCK_UPSTREAM_BIN"] = skuld, mock

    import streams_load as L  # after SKULD_BIN is set: harness reads it at import

    r = L.measure(n=a.streams, chunks=a.chunks, gap_ms=a.gap_ms, settle=a.settle,
                  log=lambda s: print(s, file=sys.stderr, flush=True))
    problems = []
    if r["failures"]:
        problems.append("%d streams failed" % len(r["failures"]))
    if r["rss_after_kb"] > r["rss_before_kb"] * 1.10:
        problems.append("RSS after %+.0f%%" % (100.0 * (r["rss_after_kb"] - r["rss_before_kb"]) /
                                                r["rss_before_kb"]))
    if r["exit_code"] != 0:
        problems.append("exit code %s" % r["exit_code"])
    result = "pass" if not problems else "fail (%s)" % ", ".join(problems)
    print("idle upstream keep-alive connections after the load: %d; skuld open fds: %d; "
          "peak concurrent streams: %d" % (r["idle_upstream_conns"], r["skuld_fds_after"],
                                           r["peak_active"]), file=sys.stderr)
    if a.header:
        print(HEADER)
    print("| %s | %s | %d | %d (gap %d ms) | %.2f s | %s | %s | %s | %s |" % (
        datetime.date.today().isoformat(), machine(), a.streams, a.chunks, a.gap_ms, r["wall_s"],
        mib(r["rss_before_kb"]), mib(r["rss_peak_kb"]), mib(r["rss_after_kb"]), result))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
