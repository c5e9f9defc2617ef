#!/usr/bin/env python3
"""
bench/clients/sse_load.py -- N concurrent SSE streams (chat completions with
"stream": true) against one HTTP/1.1 endpoint, with per-chunk latency.

    python3 sse_load.py --port P --path /v1/chat/completions --body FILE \
        [--header 'Name: value' ...] [--streams 1000] [--ramp 1.0] \
        [--timeout 60] [--expect-chunks 200]

The upstream (bench/run's nginx) stamps every content chunk with the time it
wrote it: `"t":<nginx $msec>` (wall clock, seconds, millisecond resolution).
For every chunk that arrives, the latency is the arrival time (time.time()
right after the read that completed the event) minus that stamp. Absolute
values therefore carry nginx's truncation to the millisecond (0..1 ms, 0.5 ms
on average, the same on every path); the difference between two paths does
not.

Streams start spread evenly over --ramp seconds so that the paced chunks of
different streams do not fall on the same instant. One thread, a bare epoll
loop (no asyncio): at 1,000 streams x 20 chunks/s the client must not be what
adds the latency; its own CPU use is reported ("client_cpu") so a saturated
client shows. Prints one JSON object on stdout. Standard library only.
"""
import argparse
import errno
import json
import resource
import select
import socket
import sys
import time
from array import array


class Stream:
    __slots__ = ("sock", "buf", "head_done", "chunked", "need", "sse", "chunks", "saw_done",
                 "sent_at", "sent", "req")

    def __init__(self, sock, req):
        self.sock = sock
        self.req = req
        self.sent = 0
        self.buf = bytearray()
        self.head_done = False
        self.chunked = False
        self.need = -1  # chunked: bytes left in the current chunk incl. its CRLF; -1: size line
        self.sse = bytearray()
        self.chunks = 0
        self.saw_done = False
        self.sent_at = 0.0


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--ramp", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--expect-chunks", type=int, default=200)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.streams + 256)), hard))

    body = open(a.body, "rb").read()
    hdrs = "".join("%s\r\n" % h for h in a.header)
    req = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
           "Accept: text/event-stream\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n"
           % (a.path, a.host, a.port, hdrs, len(body))).encode() + body

    lat = array("d")
    ttfc = array("d")
    results = {}
    ep = select.epoll()
    live = {}
    t0 = time.time()
    deadline = t0 + a.ramp + a.timeout
    started = 0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)

    def finish(st, why):
        ep.unregister(st.sock.fileno())
        del live[st.sock.fileno()]
        st.sock.close()
        results[why] = results.get(why, 0) + 1

    def events(st, now):
        sse = st.sse
        start = 0
        while True:
            end = sse.find(b"\n\n", start)
            if end < 0:
                break
            i = sse.find(b'"t":', start, end)
            if i >= 0:
                j = i + 4
                k = j
                while k < end and sse[k] in b"0123456789.":
                    k += 1
                try:
                    t = float(sse[j:k])
                except ValueError:
                    t = None
                if t is not None:
                    if st.chunks == 0:
                        ttfc.append(now - st.sent_at)
                    st.chunks += 1
                    lat.append(now - t)
            elif sse.find(b"[DONE]", start, end) >= 0:
                st.saw_done = True
            elif sse.find(b'"error"', start, end) >= 0:
                return "error event"
            start = end + 2
        if start:
            del sse[:start]
        return None

    def outcome(st):
        if st.saw_done and st.chunks >= a.expect_chunks:
            return "ok"
        return "ended early" if st.head_done else "no answer"

    def on_data(st, data, now):
        buf = st.buf
        buf += data
        if not st.head_done:
            e = buf.find(b"\r\n\r\n")
            if e < 0:
                return None
            head = bytes(buf[:e]).decode("latin-1")
            del buf[: e + 4]
            st.head_done = True
            line, _, rest = head.partition("\r\n")
            try:
                status = int(line.split()[1])
            except (IndexError, ValueError):
                return "bad status line"
            if status != 200:
                return "status %d" % status
            st.chunked = "transfer-encoding: chunked" in rest.lower()
        if not st.chunked:
            st.sse += buf
            buf.clear()
        else:
            while buf:
                if st.need < 0:
                    e = buf.find(b"\r\n")
                    if e < 0:
                        break
                    size = int(bytes(buf[:e]).split(b";")[0], 16)
                    del buf[: e + 2]
                    if size == 0:
                        why = events(st, now)
                        return why or outcome(st)
                    st.need = size + 2
                take = min(st.need, len(buf))
                payload = max(0, min(take, st.need - 2))  # the rest is the chunk's CRLF
                if payload:
                    st.sse += buf[:payload]
                st.need -= take
                del buf[:take]
                if st.need == 0:
                    st.need = -1
        return events(st, now)

    while True:
        now = time.time()
        # Start the streams whose time has come.
        while started < a.streams and now >= t0 + a.ramp * started / a.streams:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = s.connect_ex((a.host, a.port))
            started += 1
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                results["connect: %s" % errno.errorcode.get(rc, rc)] = \
                    results.get("connect: %s" % errno.errorcode.get(rc, rc), 0) + 1
                continue
            st = Stream(s, req)
            live[s.fileno()] = st
            ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN)
        if started >= a.streams and not live:
            break
        if now > deadline:
            for st in list(live.values()):
                finish(st, "timeout")
            break
        wait = 0.05
        if started < a.streams:
            wait = max(0.0, min(wait, t0 + a.ramp * started / a.streams - now))
        for fd, ev in ep.poll(wait):
            st = live.get(fd)
            if st is None:
                continue
            if st.sent < len(st.req) and ev & select.EPOLLOUT:
                try:
                    n = st.sock.send(st.req[st.sent:])
                except OSError as e:
                    finish(st, "send: %s" % errno.errorcode.get(e.errno, e.errno))
                    continue
                if st.sent == 0:
                    st.sent_at = time.time()
                st.sent += n
                if st.sent >= len(st.req):
                    ep.modify(fd, select.EPOLLIN)
                continue
            if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                try:
                    data = st.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    finish(st, "recv: %s" % errno.errorcode.get(e.errno, e.errno))
                    continue
                now = time.time()
                if not data:
                    finish(st, outcome(st))
                    continue
                why = on_data(st, data, now)
                if why:
                    finish(st, why)

    wall = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = sorted(lat)
    ttfc = sorted(ttfc)
    ms = lambda v: None if v is None else round(v * 1000.0, 3)
    out = {
        "streams": a.streams,
        "ok": results.get("ok", 0),
        "failures": {k: v for k, v in results.items() if k != "ok"},
        "chunks": len(lat),
        "wall_s": round(wall, 3),
        "chunk_ms": {p: ms(pct(lat, float(p))) for p in ("50", "90", "99", "99.9")},
        "chunk_max_ms": ms(lat[-1] if lat else None),
        "ttfc_ms": {p: ms(pct(ttfc, float(p))) for p in ("50", "99")},
        "client_cpu": round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall, 3),
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
