#!/usr/bin/env python3
"""
bench/streams_added.py -- the latency a gateway adds to each relayed SSE chunk,
measured so that the run-to-run spread is smaller than the difference between
gateways (issue 27 item 4).

    python3 bench/streams_added.py [--skuld build-bench/skuld] [--runs 7]
        [--streams 20] [--chunks 100] [--gap-ms 20] [--record]

Why the suite's streams scenario could not show it: there 1,000 streams of
nginx-paced chunks are stamped with nginx's cached `$msec` (millisecond
resolution, taken at the start of an event-loop pass that writes hundreds of
chunks), and client and upstream share a core at 20,000 chunks/s; each path
is measured in its own time slot, so the machine's noise in one slot is not
the noise in the other. Per-run "added" values came out negative.

Method here:
- One upstream process (this script, `--upstream`) stamps every chunk with
  `time.monotonic_ns()` taken just before its `send()`; the client stamps each
  arrival with the same clock right after `recv()`. Latency = arrival - stamp,
  nanosecond resolution, no cached time.
- The three paths run **at the same time**, interleaved: direct (client ->
  upstream), nginx proxy_pass (proxy_buffering off, upstream keep-alive) and
  skuld. Stream j belongs to path j mod 3 and its chunks are due at phase
  j x gap / (3 x streams), so no two sends fall on the same instant and every
  path sees the same phases and the same noise of the machine.
- Low rate (default 60 streams x 50 chunks/s = 3,000 chunks/s): neither the
  Python client nor the upstream is ever the bottleneck.
- Per run: the median latency of each path; added = median(path) -
  median(direct). Over --runs runs: the median of the per-run values and their
  spread (max - min), beside the skuld - nginx difference the figures must
  resolve. Gateways on core 0, upstream and client on core 1 (when there are
  two cores).

Standard library only; needs nginx (scripts/install-deps.sh --bench).
--record appends a section to bench/BENCHMARKS.md.
"""
import argparse
import datetime
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "bench", "BENCHMARKS.md")
PATHS = ("direct", "nginx", "skuld")

PRE = (b'data: {"id":"chatcmpl-bench0003","object":"chat.completion.chunk",'
       b'"created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench",'
       b'"choices":[{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}],'
       b'"t":')
TAIL = (b'data: {"id":"chatcmpl-bench0003","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":24,'
        b'"completion_tokens":1,"total_tokens":25}}\n\ndata: [DONE]\n\n')
STAMP = re.compile(rb'"t":(\d+)')


def chunk(payload):
    return b"%x\r\n%s\r\n" % (len(payload), payload)


# ------------------------------------------------------------------ upstream

class UpConn:
    __slots__ = ("sock", "buf", "stream", "left", "due", "gap")

    def __init__(self, sock):
        self.sock, self.buf, self.stream, self.left, self.due, self.gap = sock, b"", False, 0, 0, 0


def upstream(port, chunks, gap_ns, phase_ns):
    """The paced SSE upstream. "phase K" in a request's body places its first chunk
    at the next multiple of the gap plus K x phase_ns (in the body, not a header:
    a gateway forwards the body, not the client's headers)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1024)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    conns = []
    while True:
        now = time.monotonic_ns()
        due = [c for c in conns if c.stream and c.due <= now]
        for c in sorted(due, key=lambda c: c.due):
            if c.left > 0:
                payload = PRE + b"%d}\n\n" % time.monotonic_ns()
                c.sock.sendall(chunk(payload))
                c.left -= 1
                c.due += c.gap
            else:
                c.sock.sendall(chunk(TAIL) + b"0\r\n\r\n")
                c.stream = False
        nxt = min((c.due for c in conns if c.stream), default=None)
        timeout = None if nxt is None else max(0, (nxt - time.monotonic_ns()) / 1e9)
        if timeout is not None and timeout < 0.002:
            # epoll waits in whole milliseconds: sends 0.3 ms apart would go out in bursts
            # (and measure the gateways' queueing, not their latency); sleep to the ns
            time.sleep(timeout)
            timeout = 0
        elif timeout is not None:
            timeout -= 0.001
        for key, _ in sel.select(timeout):
            if key.data is None:
                s, _ = ls.accept()
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.setblocking(True)
                c = UpConn(s)
                conns.append(c)
                sel.register(s, selectors.EVENT_READ, c)
                continue
            c = key.data
            try:
                d = c.sock.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(c.sock)
                c.sock.close()
                conns.remove(c)
                continue
            c.buf += d
            while True:
                h = c.buf.find(b"\r\n\r\n")
                if h < 0:
                    break
                head = c.buf[:h].decode("latin-1").lower()
                m = re.search(r"content-length:\s*(\d+)", head)
                n = int(m.group(1)) if m else 0
                if len(c.buf) < h + 4 + n:
                    break
                m = re.search(rb"phase (\d+)", c.buf[h + 4:h + 4 + n])
                k = int(m.group(1)) if m else 0
                c.buf = c.buf[h + 4 + n:]
                c.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                t = time.monotonic_ns()
                c.stream, c.left, c.gap = True, chunks, gap_ns
                c.due = (t // gap_ns + 2) * gap_ns + k * phase_ns


# ------------------------------------------------------------------ client

class Stream:
    __slots__ = ("path", "sock", "buf", "lat", "saw_done", "done", "chunks")


def request(port_path, phase, extra):
    port, path = port_path
    body = json.dumps({"model": "bench-stream", "stream": True, "messages": [
        {"role": "user", "content": "Count to a hundred, phase %d." % phase}]}).encode()
    h = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
         "Content-Length: %d\r\n%s\r\n" % (path, port, len(body), extra))
    return h.encode() + body


def one_run(targets, streams_per_path, extra, timeout_s):
    sel = selectors.DefaultSelector()
    all_streams = []
    for j in range(streams_per_path * len(PATHS)):
        st = Stream()
        st.path = PATHS[j % len(PATHS)]
        st.sock = socket.create_connection(("127.0.0.1", targets[st.path][0]))
        st.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st.buf, st.lat, st.saw_done, st.done, st.chunks = b"", [], False, False, 0
        st.sock.sendall(request(targets[st.path], j, extra.get(st.path, "")))
        st.sock.setblocking(False)
        sel.register(st.sock, selectors.EVENT_READ, st)
        all_streams.append(st)
    deadline = time.monotonic() + timeout_s
    open_n = len(all_streams)
    while open_n and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            st = key.data
            try:
                d = st.sock.recv(65536)
            except BlockingIOError:
                continue
            now = time.monotonic_ns()
            if not d:
                sel.unregister(st.sock)
                open_n -= 1
                continue
            st.buf += d
            st.saw_done = st.saw_done or b"[DONE]" in st.buf
            if st.saw_done and st.buf.endswith(b"\r\n0\r\n\r\n"):  # the last chunk
                st.done = True
                sel.unregister(st.sock)
                open_n -= 1
            end = st.buf.rfind(b"\n\n")  # stamps of whole events only (a read may split one)
            if end >= 0:
                for m in STAMP.finditer(st.buf, 0, end):
                    st.lat.append(now - int(m.group(1)))
                    st.chunks += 1
                st.buf = st.buf[end:]
    for st in all_streams:
        st.sock.close()
    return all_streams


# ------------------------------------------------------------------ servers

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit("streams_added: %s exited (%d)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("streams_added: %s did not listen on %d" % (what, port))


def nginx_conf(d, port, up_port):
    for sub in ("logs", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = f"""{user}daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  access_log {d}/logs/access.log combined buffer=64k flush=100ms;
  upstream up {{ server 127.0.0.1:{up_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    p = os.path.join(d, "nginx.conf")
    with open(p, "w") as f:
        f.write(conf)
    return p


def skuld_conf(d, port, up_port):
    p = os.path.join(d, "skuld.yaml")
    with open(p, "w") as f:
        f.write(f"""server:
  listen: 127.0.0.1:{port}
  workers: 1
  access_log: true
providers:
  - name: up
    type: openai
    base_url: http://127.0.0.1:{up_port}/v1
models:
  - name: bench-stream
    provider: up
    model: gpt-4o-mini
""")
    return p


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skuld", default=os.path.join(ROOT, "build-bench", "skuld"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--streams", type=int, default=20, help="streams per path")
    ap.add_argument("--chunks", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--phase-ns", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    gap_ns = int(a.gap_ms * 1e6)
    if a.upstream:
        upstream(a.upstream, a.chunks, gap_ns, a.phase_ns)
        return
    if not os.path.exists(a.skuld):
        sys.exit("streams_added: no skuld at %s (bench/run builds build-bench/skuld; or --skuld)"
                 % a.skuld)
    tmp = tempfile.mkdtemp(prefix="skuld-streams-")
    up_port, ng_port, sk_port = free_port(), free_port(), free_port()
    phase_ns = gap_ns // (a.streams * len(PATHS))
    procs = []
    try:
        up = subprocess.Popen(pin(1) + [sys.executable, os.path.abspath(__file__), "--upstream",
                                        str(up_port), "--chunks", str(a.chunks), "--gap-ms",
                                        str(a.gap_ms), "--phase-ns", str(phase_ns)])
        procs.append(up)
        wait_port(up_port, up, "upstream")
        ng = subprocess.Popen(pin(0) + ["nginx", "-p", tmp, "-c", nginx_conf(os.path.join(
            tmp, "nginx"), ng_port, up_port)], stderr=subprocess.DEVNULL)
        procs.append(ng)
        wait_port(ng_port, ng, "nginx")
        sk = subprocess.Popen(pin(0) + [a.skuld, "serve", "-c", skuld_conf(tmp, sk_port, up_port)],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "skuld.log"), "w"),
                              cwd=tmp)
        procs.append(sk)
        wait_port(sk_port, sk, "skuld")
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        targets = {"direct": (up_port, "/v1/chat/completions"),
                   "nginx": (ng_port, "/v1/chat/completions"),
                   "skuld": (sk_port, "/v1/chat/completions")}
        timeout = a.chunks * a.gap_ms / 1000 + 30
        one_run(targets, 2, {}, timeout)  # warm-up: connections, pools
        runs = []
        for i in range(a.runs):
            ss = one_run(targets, a.streams, {}, timeout)
            r = {}
            for p in PATHS:
                lat = sorted(x for s in ss if s.path == p for x in s.lat)
                ok = sum(1 for s in ss if s.path == p and s.done and s.chunks == a.chunks)
                r[p] = {"ok": ok, "n": len(lat), "p50_us": statistics.median(lat) / 1e3 if lat else None,
                        "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e3 if lat else None}
            for p in ("nginx", "skuld"):
                r[p]["added_p50_us"] = r[p]["p50_us"] - r["direct"]["p50_us"]
                r[p]["added_p99_us"] = r[p]["p99_us"] - r["direct"]["p99_us"]
            runs.append(r)
            print("run %d: direct p50 %.1f us; nginx +%.1f us; skuld +%.1f us (streams ok %d/%d/%d)"
                  % (i, r["direct"]["p50_us"], r["nginx"]["added_p50_us"], r["skuld"]["added_p50_us"],
                     r["direct"]["ok"], r["nginx"]["ok"], r["skuld"]["ok"]), flush=True)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    report(a, runs)


def report(a, runs):
    ng = [r["nginx"]["added_p50_us"] for r in runs]
    sk = [r["skuld"]["added_p50_us"] for r in runs]
    ng99 = [r["nginx"]["added_p99_us"] for r in runs]
    sk99 = [r["skuld"]["added_p99_us"] for r in runs]
    diff = [s - n for s, n in zip(sk, ng)]
    ratio = [s / n if n > 0 else float("nan") for s, n in zip(sk, ng)]
    bad = sum(r[p]["ok"] != a.streams for r in runs for p in PATHS)
    lines = [
        "| added per-chunk latency, p50 (µs) | median of runs | spread (max − min) | per run |",
        "|---|---|---|---|",
        "| nginx proxy_pass | %.1f | %.1f | %s |" % (statistics.median(ng), max(ng) - min(ng),
                                                    ", ".join("%.1f" % x for x in ng)),
        "| skuld | %.1f | %.1f | %s |" % (statistics.median(sk), max(sk) - min(sk),
                                         ", ".join("%.1f" % x for x in sk)),
        "| skuld − nginx | %.1f | %.1f | %s |" % (statistics.median(diff), max(diff) - min(diff),
                                                 ", ".join("%.1f" % x for x in diff)),
        "| skuld / nginx | %.2f | | %s |" % (statistics.median(ratio),
                                             ", ".join("%.2f" % x for x in ratio)),
        "| added p99, nginx proxy_pass (noisier: one core's scheduling) | %.1f | %.1f | %s |" % (
            statistics.median(ng99), max(ng99) - min(ng99), ", ".join("%.1f" % x for x in ng99)),
        "| added p99, skuld | %.1f | %.1f | %s |" % (
            statistics.median(sk99), max(sk99) - min(sk99), ", ".join("%.1f" % x for x in sk99)),
        "",
        "direct p50 per run (µs): %s; incomplete streams: %d" % (
            ", ".join("%.1f" % r["direct"]["p50_us"] for r in runs), bad),
    ]
    print("\n".join(lines))
    if a.record:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(BENCHMARKS, "a") as f:
            f.write("\n## Added per-chunk latency of streams, paths side by side — %s — %s\n\n"
                    "    python3 bench/streams_added.py --runs %d --streams %d --chunks %d "
                    "--gap-ms %g\n\n%s\n" % (now, rev, a.runs, a.streams, a.chunks, a.gap_ms,
                                            "\n".join(lines)))


if __name__ == "__main__":
    main()
