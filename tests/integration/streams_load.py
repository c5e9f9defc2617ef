"""
N concurrent streaming chat requests through skuld to the mock upstream,
on asyncio raw sockets, with skuld's RSS measured before, during and after.

Used by tests/integration/test_streams_1000.py and bench/streams_1000.py.
Standard library only.

Every stream must answer 200 with an event stream whose content pieces are
exactly "c0 " .. "c<chunks-1> " in order, then a finish chunk, then
"data: [DONE]", then the chunked terminator. Anything else is a failure and
is reported with its reason.
"""
import asyncio
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class StreamFailure(Exception):
    pass


async def _read_head(reader):
    line = await reader.readline()
    if not line:
        raise StreamFailure("connection closed before the status line")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    if not m:
        raise StreamFailure("bad status line %r" % line[:80])
    status = int(m.group(1))
    headers = {}
    while True:
        h = await reader.readline()
        if not h:
            raise StreamFailure("connection closed in the head")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


async def one_stream(port, request_bytes, chunks, stats, timeout):
    """One streamed request; returns None on success, or a failure reason."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(H.HOST, port), timeout)
        writer.write(request_bytes)
        await writer.drain()

        async def body():
            status, headers = await _read_head(reader)
            if status != 200:
                rest = await reader.read(500)
                raise StreamFailure("status %d: %r" % (status, rest[:200]))
            if "chunked" not in headers.get("transfer-encoding", ""):
                raise StreamFailure("not chunked: %r" % headers)
            stats["active"] += 1
            stats["peak_active"] = max(stats["peak_active"], stats["active"])
            try:
                buf = b""
                events = []
                while True:
                    size_line = await reader.readline()
                    if not size_line.endswith(b"\n"):
                        raise StreamFailure("connection closed mid-stream after %d events"
                                            % len(events))
                    size = int(size_line.split(b";")[0].strip() or b"x", 16)
                    if size == 0:
                        trailer = await reader.readline()
                        if trailer not in (b"\r\n", b"\n"):
                            raise StreamFailure("bad chunked terminator")
                        break
                    data = await reader.readexactly(size + 2)
                    buf += data[:-2]
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        for line in block.split(b"\n"):
                            if line.startswith(b"data: "):
                                events.append(line[6:])
                if buf.strip():
                    raise StreamFailure("trailing bytes after the last event")
                return events
            finally:
                stats["active"] -= 1

        events = await asyncio.wait_for(body(), timeout)
        if not events or events[-1] != b"[DONE]":
            raise StreamFailure("no [DONE] at the end (last %r)" % (events[-1:],))
        pieces, finish = [], None
        for e in events[:-1]:
            o = json.loads(e)
            if "error" in o:
                raise StreamFailure("error event %r" % e[:200])
            for ch in o.get("choices") or []:
                c = (ch.get("delta") or {}).get("content")
                if c:
                    if finish:
                        raise StreamFailure("content after finish")
                    pieces.append(c)
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
        want = ["c%d " % i for i in range(chunks)]
        if pieces != want:
            raise StreamFailure("content out of order or incomplete: %d pieces, first diff at %s"
                                % (len(pieces), next((i for i, (a, b) in
                                                      enumerate(zip(pieces, want)) if a != b),
                                                     min(len(pieces), len(want)))))
        if finish != "stop":
            raise StreamFailure("finish_reason %r" % finish)
        stats["events"] += len(events)
        return None
    except StreamFailure as e:
        return str(e)
    except asyncio.TimeoutError:
        return "timed out"
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:
                pass


async def _run(port, n, chunks, gap_ms, timeout, model):
    body = {"model": model, "stream": True,
            "messages": [{"role": "user", "content": "load test"}],
            "mock": {"chunks": chunks, "chunk_gap_ms": gap_ms}}
    req = H.http_request_bytes("POST", "/v1/chat/completions", body)
    stats = {"active": 0, "peak_active": 0, "events": 0}
    results = await asyncio.gather(*(one_stream(port, req, chunks, stats, timeout)
                                     for _ in range(n)))
    return results, stats


def run_streams(port, n, chunks, gap_ms, timeout=120, model="gpt-test"):
    """Run n streams at once; returns (failures: [reason], stats, wall seconds)."""
    t0 = time.monotonic()
    results, stats = asyncio.run(_run(port, n, chunks, gap_ms, timeout, model))
    wall = time.monotonic() - t0
    return [r for r in results if r is not None], stats, wall


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread."""

    def __init__(self, pid, interval=0.02):
        self.pid, self.interval = pid, interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, H.rss_kb(self.pid))
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def established_to(port):
    """Established TCP connections (IPv4 loopback) whose remote port is `port`."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    rem, st = parts[2], parts[3]
                    if st == "01" and int(rem.rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def measure(n=1000, chunks=20, gap_ms=100, settle=5.0, warmup=20, workers=None, log=print):
    """Start a mock and skuld, warm up, run the load, and measure.

    Returns a dict with every figure; raises nothing for stream failures
    (they are in result["failures"]).
    """
    H.raise_nofile(4 * n + 1024)
    mock = H.Mock()
    gw = None
    try:
        server = {"access_log": False}
        if workers:
            server["workers"] = workers
        cfg = H.base_config(mock, server=server)
        gw = H.Skuld(cfg)
        # warm-up: a few streams, so the first-use allocations are behind us
        fails, _, _ = run_streams(gw.port, warmup, chunks, 0)
        if fails:
            raise AssertionError("warm-up streams failed: %r" % fails[:3])
        time.sleep(1.0)
        rss_before = gw.rss_kb()
        log("rss before: %d KiB (after %d warm-up streams)" % (rss_before, warmup))
        with RssSampler(gw.pid) as sampler:
            failures, stats, wall = run_streams(gw.port, n, chunks, gap_ms)
        # VmHWM is the kernel's own high-water mark (sampling can miss a spike)
        rss_peak = max(sampler.peak, _status_kb(gw.pid, "VmHWM"))
        log("load: %d streams x %d chunks (gap %d ms) in %.2f s, peak concurrency %d, "
            "failures %d" % (n, chunks, gap_ms, wall, stats["peak_active"], len(failures)))
        time.sleep(settle)
        rss_after = gw.rss_kb()
        idle_upstream = established_to(mock.port)
        fds = open_fds(gw.pid)
        ms = mock.stats()
        log("rss peak: %d KiB, after %.0f s: %d KiB (%+.1f%% vs before); idle upstream "
            "keep-alive connections: %d; skuld open fds: %d" %
            (rss_peak, settle, rss_after, 100.0 * (rss_after - rss_before) / rss_before,
             idle_upstream, fds))
        rc = gw.stop()
        return {
            "streams": n, "chunks": chunks, "gap_ms": gap_ms, "wall_s": wall,
            "failures": failures, "peak_active": stats["peak_active"],
            "events": stats["events"],
            "rss_before_kb": rss_before, "rss_peak_kb": rss_peak, "rss_after_kb": rss_after,
            "idle_upstream_conns": idle_upstream, "skuld_fds_after": fds,
            "mock_streams_completed": ms["streams_completed"], "exit_code": rc,
        }
    finally:
        if gw is not None and gw.alive():
            gw.stop()
        mock.stop()


def _status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
