#!/usr/bin/env python3
"""
bench/soak.py -- a long run of mixed traffic through skuld with its RSS
sampled (issue 26, item 3): memory after the run equals memory after the
warm-up, within 5%.

    python3 bench/soak.py [--requests 1000000] [--warmup 50000] [--threads 16]
                          [--sample-every 10000] [--settle 5] [--build-dir build]
                          [--record]

Builds skuld and mock-upstream (RelWithDebInfo, in --build-dir) when they are
missing. Starts tools/mock-upstream and skuld (2 workers, access log on, a
SQLite store taking a spend row per request, the response cache on) on
loopback, then sends --requests chat requests from --threads client threads,
each on its own keep-alive connection. Of every 100 requests (in a fixed
shuffled order):

  45     plain        non-streamed, temperature 0.7 (not cacheable), unique prompt
  20     stream       streamed (10 chunks), temperature 0.7, unique prompt
  10     abort        streamed, 20 chunks 2 ms apart; the client reads the
                      first 3 events and closes its socket (skuld cancels the
                      upstream call)
  20     cache hit    temperature 0, one of 50 fixed prompts, whole or
                      streamed (100 cache entries: answered from the cache
                      after their first time)
  5      error        the upstream answers 500 or 429 (mock script in the
                      body); the client gets that status

Every answer is checked (status, a complete body or a stream ending in
[DONE], `x-skuld-cache: hit` on a repeated prompt); any other outcome counts
as a failure. skuld's VmRSS is read from /proc every --sample-every
requests. "before" is the RSS once --warmup requests are done (buffers,
pools, the cache's 100 entries and the allocator's arenas have reached their
working size); "after" is the RSS --settle seconds after the last answer.
Pass: no failure, and |after - before| <= 5% of before.

--record appends a dated section (command, machine, commit, figures, the RSS
samples) to bench/BENCHMARKS.md. Standard library only.
"""
import argparse
import datetime
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
BENCHMARKS = os.path.join(ROOT, "bench", "BENCHMARKS.md")

KINDS = ["plain"] * 45 + ["stream"] * 20 + ["abort"] * 10 + ["hit"] * 20 + ["error"] * 5
random.Random(26).shuffle(KINDS)  # spread out: no five errors in a row
HIT_SLOTS = [r for r, k in enumerate(KINDS) if k == "hit"]
HIT_PROMPTS = 50  # x2 modes (whole, streamed): 100 cache entries


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
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = ", %.0f GiB" % (kb / 1048576.0)
    except (OSError, ValueError, IndexError):
        pass
    return "%d x %s%s" % (os.cpu_count() or 0, " ".join(model.split()), mem)


def ensure_built(build_dir):
    skuld = os.path.join(build_dir, "skuld")
    mock = os.path.join(build_dir, "tools", "mock-upstream", "mock-upstream")
    if not (os.path.exists(skuld) and os.path.exists(mock)):
        print("building in %s ..." % build_dir, file=sys.stderr)
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DSKULD_ALLOW_NO_E2E=ON",
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=sys.stderr)
        subprocess.run(["cmake", "--build", build_dir, "-j2", "--target", "skuld",
                        "mock-upstream"], check=True, stdout=sys.stderr)
    return skuld, mock


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def mib(kb):
    return "%.1f MiB" % (kb / 1024.0)


class Soak:
    def __init__(self, H, port, total, threads, sample_every, warmup, pid, procs):
        self.H, self.port, self.total, self.nthreads = H, port, total, threads
        self.procs = procs      # {name: Popen}: a run stops when one of them exits
        self.died = None
        self.sample_every, self.warmup, self.pid = sample_every, warmup, pid
        self.lock = threading.Lock()
        self.next = 0
        self.done = 0
        self.counts = {k: 0 for k in set(KINDS)}
        self.failures = []
        self.nfail = 0
        self.samples = []       # (requests done, seconds since start, VmRSS kB)
        self.warm_rss = None
        self.t0 = None

    def body(self, i, kind):
        b = {"model": "gpt-soak", "messages": [{"role": "user", "content": "soak %d" % i}],
             "temperature": 0.7}
        if kind == "stream":
            b["stream"] = True
            b["mock"] = {"chunks": 10}
        elif kind == "abort":
            b["stream"] = True
            b["mock"] = {"chunks": 20, "chunk_gap_ms": 2}
        elif kind == "hit":
            h = self.hit_index(i)
            b["temperature"] = 0
            b["messages"][0]["content"] = "repeated prompt %d" % (h % HIT_PROMPTS)
            if (h // HIT_PROMPTS) % 2:
                b["stream"] = True
        elif kind == "error":
            b["mock"] = {"status": 500 if i % 2 else 429}
        return b

    @staticmethod
    def hit_index(i):
        """The how-manieth cache-hit request i is (0, 1, ...)."""
        return (i // 100) * len(HIT_SLOTS) + HIT_SLOTS.index(i % 100)

    def one(self, conn, i):
        kind = KINDS[i % 100]
        b = self.body(i, kind)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(b),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if kind == "abort":
            if r.status != 200:
                return "abort: status %d %r" % (r.status, r.read()[:200]), False
            got = b""
            while got.count(b"\n\n") < 3:
                d = r.read1(4096) if hasattr(r, "read1") else r.read(64)
                if not d:
                    return "abort: stream ended after %r" % got[-200:], False
                got += d
            return None, False  # leave mid-stream: the connection is closed
        data = r.read()
        if kind == "error":
            want = b["mock"]["status"]
            if r.status != want:
                return "error: status %d, wanted %d: %r" % (r.status, want, data[:200]), True
            return None, True
        if r.status != 200:
            return "%s: status %d %r" % (kind, r.status, data[:200]), True
        if b.get("stream"):
            if not data.rstrip().endswith(b"data: [DONE]") or b'"error"' in data:
                return "%s: stream not complete: %r" % (kind, data[-200:]), True
        elif not data.startswith(b"{") or b'"chat.completion"' not in data:
            return "%s: not a completion: %r" % (kind, data[:200]), True
        if kind == "hit" and self.hit_index(i) >= 4 * HIT_PROMPTS and \
                r.getheader("x-skuld-cache") != "hit":
            return "hit: x-skuld-cache %r on a repeated prompt" % r.getheader("x-skuld-cache"), True
        return None, True

    def sample(self, n):
        kb = self.H.rss_kb(self.pid)
        self.samples.append((n, time.monotonic() - self.t0, kb))
        if self.warm_rss is None and n >= self.warmup:
            self.warm_rss = kb
        return kb

    def worker(self):
        H = self.H
        conn = http.client.HTTPConnection(H.HOST, self.port, timeout=60)
        while True:
            with self.lock:
                i = self.next
                if i >= self.total or self.died:
                    break
                self.next += 1
            try:
                err, keep = self.one(conn, i)
            except (OSError, http.client.HTTPException) as e:
                err, keep = "%s: %s: %s" % (KINDS[i % 100], type(e).__name__, e), False
            if not keep:
                conn.close()
                conn = http.client.HTTPConnection(H.HOST, self.port, timeout=60)
            with self.lock:
                self.done += 1
                self.counts[KINDS[i % 100]] += 1
                if err:
                    self.nfail += 1
                    if len(self.failures) < 20:
                        self.failures.append((i, err))
                n = self.done
                due = n % self.sample_every == 0 or n == self.warmup
            if due:
                for name, p in self.procs.items():
                    if p.poll() is not None and not self.died:
                        self.died = "%s exited (status %s) after %d requests" % (
                            name, p.returncode, n)
                        print("soak: " + self.died, file=sys.stderr, flush=True)
                kb = self.sample(n)
                if n % (self.sample_every * 10) == 0:
                    el = time.monotonic() - self.t0
                    print("%9d requests  %6.0f s  %7.0f req/s  RSS %s  failures %d" %
                          (n, el, n / el, mib(kb), self.nfail), file=sys.stderr, flush=True)
        conn.close()

    def run(self):
        self.t0 = time.monotonic()
        self.sample(0)
        ts = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.nthreads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.wall = time.monotonic() - self.t0


def config(mock, store_path):
    return {
        "server": {"workers": 2, "access_log": True},
        "providers": [{"name": "mock", "type": "openai", "base_url": mock.base_url,
                       "health_check": "none"}],
        "models": [{"name": "gpt-soak", "provider": "mock", "model": "mock-model",
                    "price": {"input": 1.0, "output": 2.0}}],
        "store": {"url": "sqlite://" + store_path},
        "cache": {"enabled": True, "ttl": "1h"},
    }


def record(a, res):
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = ["", "## Soak: %s mixed requests, RSS sampled — %s — %s" % (
        "{:,}".format(a.requests), now.strftime("%Y-%m-%d %H:%M UTC"), git_rev()), ""]
    lines.append("Command: `%s`" % res["command"])
    lines.append("")
    lines.append("Machine: %s; load average at start %s (a shared VM: other engineers' "
                 "builds and tests may run). skuld RelWithDebInfo, 2 workers, access log on "
                 "(to a file), SQLite store (a spend row per request), response cache on; "
                 "%d client threads (Python, keep-alive) and tools/mock-upstream on the same "
                 "machine. Mix per 100 requests: 45 plain, 20 streamed, 10 streams the client "
                 "leaves after 3 events, 20 repeated prompts answered from the cache (half "
                 "streamed), 5 upstream errors (500/429 passed through)." %
                 (res["machine"], res["load"], a.threads))
    lines.append("")
    lines.append("| requests | wall | rate | failures | RSS at start | RSS after warm-up (%s) "
                 "| RSS min / max after warm-up | RSS end (+%g s) | peak (VmHWM) | change | result |"
                 % ("{:,}".format(a.warmup), a.settle))
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    lines.append("| %s | %.0f s | %.0f req/s | %d | %s | %s | %s / %s | %s | %s | %+.2f%% | **%s** |" % (
        "{:,}".format(res["done"]), res["wall"], res["done"] / res["wall"], res["failures"],
        mib(res["rss0"]), mib(res["warm"]), mib(res["min_after"]), mib(res["max_after"]),
        mib(res["end"]), mib(res["hwm"]), res["change"], res["result"]))
    lines.append("")
    lines.append("RSS samples (requests done: MiB): " + ", ".join(
        "%s: %.1f" % ("{:,}".format(n), kb / 1024.0) for n, _, kb in res["table"]))
    if res["failure_list"]:
        lines.append("")
        lines.append("First failures: " + "; ".join("#%d %s" % f for f in res["failure_list"][:5]))
    if res.get("note"):
        lines.append("")
        lines.append(res["note"])
    with open(BENCHMARKS, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("appended to %s" % BENCHMARKS, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000000)
    ap.add_argument("--warmup", type=int, default=50000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--sample-every", type=int, default=10000)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds idle before the last sample")
    ap.add_argument("--build-dir", default=os.environ.get("SKULD_BUILD_DIR",
                                                          os.path.join(ROOT, "build")))
    ap.add_argument("--record", action="store_true", help="append a section to bench/BENCHMARKS.md")
    ap.add_argument("--note", default="", help="a sentence for the record")
    a = ap.parse_args()
    if a.warmup >= a.requests:
        a.warmup = max(1, a.requests // 20)

    if not (os.environ.get("SKULD_BIN") and os.environ.get("MOCK_UPSTREAM_BIN")):
        skuld, mock = ensure_built(os.path.abspath(a.build_dir))
        os.environ["SKULD_BIN"], os.environ["MOCK_UPSTREAM_BIN"] = skuld, mock
    import harness as H  # after SKULD_BIN is set: harness reads it at import
    H.raise_nofile()

    load = open("/proc/loadavg").read().split()[:3]
    mock = H.Mock()
    d = H.mkdtemp("skuld-soak-")
    gw = H.Skuld(config(mock, os.path.join(d, "soak.db")))
    try:
        s = Soak(H, gw.port, a.requests, a.threads, a.sample_every, a.warmup, gw.pid,
                 {"mock-upstream": mock.proc, "skuld": gw.proc})
        s.run()
        time.sleep(a.settle)
        end = H.rss_kb(gw.pid)
        hwm = 0
        with open("/proc/%d/status" % gw.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        alive = gw.alive()
    finally:
        rc = gw.stop(60)
        mock.stop()
    warm = s.warm_rss or s.samples[-1][2]
    after = [kb for n, _, kb in s.samples if n >= a.warmup]
    change = 100.0 * (end - warm) / warm
    ok = s.nfail == 0 and abs(change) <= 5.0 and alive and rc == 0 and not s.died
    step = max(1, len(s.samples) // 10)
    table = s.samples[::step]
    if table[-1] != s.samples[-1]:
        table.append(s.samples[-1])
    table.append((s.done, None, end))
    res = {
        "command": " ".join(["python3", "bench/soak.py"] + sys.argv[1:]),
        "machine": machine(), "load": " ".join(load), "done": s.done, "wall": s.wall,
        "failures": s.nfail, "rss0": s.samples[0][2], "warm": warm, "min_after": min(after),
        "max_after": max(after), "end": end, "hwm": hwm, "change": change,
        "result": "pass" if ok else "FAIL", "table": table, "failure_list": s.failures,
        "note": (a.note + " " if a.note else "") + (
            "The run was cut short: %s." % s.died if s.died else ""),
    }
    print("%d requests in %.0f s (%.0f req/s): %s" % (s.done, s.wall, s.done / s.wall,
          ", ".join("%s %d" % kv for kv in sorted(s.counts.items()))))
    print("failures: %d %s" % (s.nfail, s.failures[:5]))
    print("RSS: start %s, after warm-up (%d) %s, min/max after warm-up %s/%s, end (+%gs) %s, "
          "peak %s: %+.2f%% -> %s" % (mib(res["rss0"]), a.warmup, mib(warm), mib(min(after)),
                                      mib(max(after)), a.settle, mib(end), mib(hwm), change,
                                      res["result"]))
    if rc != 0:
        print("skuld exited with %s" % rc)
    if s.died:
        print("run cut short: %s" % s.died)
    if a.record:
        record(a, res)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
