"""
Chaos suite helpers (issue 26, item 2): load through the real skuld while a
test breaks what it depends on, then the spend log counted against what the
client saw.

Every scenario (tests/chaos/test_*.py, one ctest each, label `chaos`) runs
skuld against tools/mock-upstream, and real redis-server / PostgreSQL where it
needs them, on loopback; it uses tests/integration/harness.py (imported by
path) to start them.

What is here
  Load(port, ...)        N client threads, each with its own keep-alive
                         http.client connection, sending chat requests (a
                         share of them streamed) with a unique x-request-id
                         each; a request is a success only if it is a 200 and
                         complete (a stream ends with `data: [DONE]` and has
                         no error event). Run for `total` requests, or until
                         stop() when total is None.
  sqlite_spend(path)     the spend_log rows (request_id, status) of a SQLite
                         store
  pg_spend(pg)           the same from a PostgreSQL server (psql)
  check_spend(tc, load, rows_fn)
                         waits (bounded) for the spend log to settle, then
                         asserts: every request the client sent has exactly
                         one row, with the status the client got; no row
                         for a request it did not send. Nothing lost, nothing
                         duplicated.
"""
import collections
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness as H  # noqa: E402,F401  (re-exported for the scenarios)

# resilience for every scenario: a fallback chain, no consecutive-failure
# breaker (it would eject a 30%-failing primary for good and the faults would
# stop reaching it), short per-try timeouts so stalls fail over quickly, and
# a retry budget that admits the retries 30% faults need (at the default 0.2
# it refuses some by design: "over it, the client gets the failure").
RESILIENCE = {
    "max_attempts": 3,
    "per_try_timeout": "300ms",
    "first_chunk_timeout": "300ms",
    "breaker_failures": 0,
    "retry_budget": 1.0,
    "retry_budget_min": 64,
}


def chain_config(mocks, store_url=None, extra=None, resilience=None, ejection=None):
    """Model gpt-test on mocks[0] with fallbacks to the others, in order."""
    names = ["p%d" % i for i in range(len(mocks))]
    res = dict(RESILIENCE)
    if resilience:
        res.update(resilience)
    cfg = {
        "server": {"workers": 2, "resilience": res},
        "providers": [{"name": n, "type": "openai", "base_url": m.base_url,
                       "health_check": "none"} for n, m in zip(names, mocks)],
        "models": [],
    }
    for i, n in enumerate(names):
        m = {"name": "gpt-test" if i == 0 else "fb%d" % i, "provider": n,
             "model": "mock-model-%d" % i,
             "price": {"input": 1.0, "output": 2.0}}
        if i == 0 and len(names) > 1:
            m["fallbacks"] = ["fb%d" % j for j in range(1, len(names))]
        cfg["models"].append(m)
    if store_url:
        cfg["store"] = {"url": store_url}
    if extra:
        cfg.update(extra)
    return cfg


class Load:
    """Client load through skuld. total=None: until stop()."""

    def __init__(self, port, tag, total=None, threads=16, stream_every=5, timeout=30,
                 headers=None, body_extra=None, min_requests=0):
        self.port, self.tag, self.total, self.nthreads = port, tag, total, threads
        self.stream_every, self.timeout = stream_every, timeout
        self.headers = dict(headers or {})
        self.body_extra = body_extra or {}
        self.min_requests = min_requests
        self.lock = threading.Lock()
        self.next = 0
        self.sent = {}           # request id -> "plain" | "stream"
        self.ok = []             # request ids answered 200 and complete
        self.errors = []         # (request id, what happened)
        self.status = {}         # request id -> HTTP status (None: no answer)
        self._stop = threading.Event()
        self._threads = []
        self.t0 = self.t1 = None

    # -- one request ---------------------------------------------------------
    def _body(self, i):
        stream = self.stream_every and i % self.stream_every == self.stream_every - 1
        b = {"model": "gpt-test", "messages": [{"role": "user", "content": "chaos %d" % i}]}
        if stream:
            b["stream"] = True
        b.update(self.body_extra)
        return b, stream

    def _one(self, conn, i):
        rid = "chaos-%s-%06d" % (self.tag, i)
        body, stream = self._body(i)
        h = {"Content-Type": "application/json", "x-request-id": rid}
        h.update(self.headers)
        with self.lock:
            self.sent[rid] = "stream" if stream else "plain"
        try:
            conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers=h)
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            with self.lock:
                self.status[rid] = None
                self.errors.append((rid, "%s: %s" % (type(e).__name__, e)))
            return False
        bad = None
        if r.status != 200:
            bad = "status %d: %r" % (r.status, data[:300])
        elif stream:
            text = data.decode("utf-8", "replace")
            if not text.rstrip().endswith("data: [DONE]"):
                bad = "stream without [DONE]: %r" % text[-300:]
            elif '"error"' in text:
                bad = "stream with an error event: %r" % text[-300:]
        else:
            try:
                obj = json.loads(data)
                if obj.get("object") != "chat.completion":
                    bad = "not a chat.completion: %r" % data[:300]
            except ValueError:
                bad = "not JSON: %r" % data[:300]
        got = r.getheader("x-request-id")
        if got != rid and bad is None:
            bad = "x-request-id %r, sent %r" % (got, rid)
        with self.lock:
            self.status[rid] = r.status
            if bad:
                self.errors.append((rid, bad))
            else:
                self.ok.append(rid)
        return bad is None

    def _worker(self):
        conn = http.client.HTTPConnection(H.HOST, self.port, timeout=self.timeout)
        while True:
            with self.lock:
                i = self.next
                if self.total is not None:
                    if i >= self.total:
                        break
                elif self._stop.is_set() and i >= self.min_requests:
                    break
                self.next += 1
            if not self._one(conn, i):
                conn.close()
                conn = http.client.HTTPConnection(H.HOST, self.port, timeout=self.timeout)
        conn.close()

    # -- control -------------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._worker, daemon=True)
                         for _ in range(self.nthreads)]
        for t in self._threads:
            t.start()
        return self

    @property
    def done(self):
        with self.lock:
            return len(self.status)

    def wait_done(self, n, timeout):
        H.wait_until(lambda: self.done >= n, timeout, interval=0.01,
                     what="%d requests answered (have %d)" % (n, self.done))

    def stop(self):
        self._stop.set()

    def join(self, timeout=120):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise AssertionError("client threads still running after %ss" % timeout)
        self.t1 = time.monotonic()
        return self

    def run(self, timeout=300):
        return self.start().join(timeout)

    def summary(self):
        kinds = collections.Counter(self.sent.values())
        return ("%d requests (%d plain, %d streamed) in %.1f s, %d ok, %d errors" %
                (len(self.sent), kinds["plain"], kinds["stream"],
                 (self.t1 or time.monotonic()) - self.t0, len(self.ok), len(self.errors)))

    def error_report(self, n=10):
        by = collections.Counter(e[1][:80] for e in self.errors)
        return "%s\nfirst errors:\n  %s\nby kind:\n  %s" % (
            self.summary(), "\n  ".join("%s %s" % e for e in self.errors[:n]),
            "\n  ".join("%5d  %s" % (c, k) for k, c in by.most_common(n)))


# ------------------------------------------------------------------ the log

def sqlite_spend(path):
    """[(request_id, status)] of the spend_log (read-only, WAL-safe)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return db.execute("SELECT request_id, status FROM spend_log").fetchall()
    finally:
        db.close()


def pg_spend(pg):
    """[(request_id, status)] of the spend_log on a pgserver.PgServer."""
    env = dict(os.environ, PGPASSWORD=pg.password)
    p = subprocess.run([os.path.join(pg.bin, "psql"), "-h", "127.0.0.1", "-p", str(pg.port),
                        "-U", pg.user, "-d", pg.dbname, "-At", "-F", "\t", "-c",
                        "SELECT request_id, status FROM spend_log"],
                       env=env, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("psql: %s" % p.stderr.decode(errors="replace"))
    out = []
    for line in p.stdout.decode().splitlines():
        if line:
            rid, st = line.split("\t")
            out.append((rid, int(st)))
    return out


def spend_diff(load, rows):
    """(lost, duplicated, foreign, wrong_status) between the client and the log."""
    count = collections.Counter(r[0] for r in rows)
    lost = [rid for rid in load.sent if count[rid] == 0]
    dup = [rid for rid, c in count.items() if c > 1]
    foreign = [rid for rid in count if rid not in load.sent]
    wrong = [(rid, st, load.status.get(rid)) for rid, st in rows
             if rid in load.status and load.status[rid] is not None and st != load.status[rid]]
    return lost, dup, foreign, wrong


def check_spend(tc, load, rows_fn, settle=15.0):
    """The spend log has one row per request the client sent, with the status
    the client got. Waits up to `settle` s for the writer to catch up (until
    the log matches, or stops changing for 3 s); returns the rows."""
    deadline = time.monotonic() + settle
    last_n, last_change = -1, time.monotonic()
    while True:
        rows = rows_fn()
        lost, dup, foreign, wrong = spend_diff(load, rows)
        if not (lost or dup or foreign or wrong):
            break
        now = time.monotonic()
        if len(rows) != last_n:
            last_n, last_change = len(rows), now
        if now >= deadline or now - last_change >= 3.0:
            break
        time.sleep(0.2)
    no_answer = sum(1 for v in load.status.values() if v is None)
    msg = ("spend log vs client: %d rows for %d requests sent (%d answered 200 and complete, "
           "%d without an answer); lost %d %s, duplicated %d %s, not sent %d %s, "
           "status differs %d %s" %
           (len(rows), len(load.sent), len(load.ok), no_answer, len(lost), lost[:5], len(dup),
            dup[:5], len(foreign), foreign[:5], len(wrong), wrong[:5]))
    if lost or dup or foreign or wrong or len(rows) != len(load.sent):
        tc.fail(msg)
    return rows


def main(timeout=540):
    H.main(timeout)


def kill_mock(m):
    """SIGKILL a mock-upstream: its connections are reset, nothing more is answered."""
    m.proc.kill()
    m.proc.wait(10)


def restart_mock(m, timeout=10):
    """Start a killed mock again on the same port (same base_url)."""
    port = m.port
    args, i = [], 0
    while i < len(m.args):
        if m.args[i] == "--listen":
            i += 2
            continue
        args.append(m.args[i])
        i += 1
    m.args = args + ["--listen", "%s:%d" % (H.HOST, port)]
    deadline = time.monotonic() + timeout
    while True:
        try:
            m.start()
            break
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    assert m.port == port, (m.port, port)
    return m
