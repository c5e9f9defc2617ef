#!/usr/bin/env python3
"""
bench/clients/conn_hold.py -- open N keep-alive connections to one server,
make one request on each, and hold them all open.

    python3 conn_hold.py --port P --path /healthz [--body FILE] \
        [--header 'Name: value' ...] [--conns 10000] [--parallel 200] [--hold 60]

Each connection sends one request (GET, or POST of --body) and reads its whole
answer (Content-Length or chunked), then stays open and idle: the state a
gateway is in with many idle keep-alive clients. Any complete answer counts
as ok (a 404 from a server with nothing at the path is still a served request). When all are done it prints one JSON line (opened, ok,
failed, still_open) on stdout and holds the connections until stdin closes or
--hold seconds pass, then prints a second JSON line (still_open at the end:
a server may close idle connections on its own timer) and exits.
Standard library only.
"""
import argparse
import asyncio
import json
import resource
import sys
import threading


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, chunked = None, False
    for l in lines[1:]:
        k, _, v = l.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v.strip())
        elif k == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    return status


async def main_async(a):
    hdrs = "".join("%s\r\n" % h for h in a.header)
    if a.body:
        body = open(a.body, "rb").read()
        req = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n%s"
               "Content-Length: %d\r\n\r\n" % (a.path, a.host, a.port, hdrs, len(body))
               ).encode() + body
    else:
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n" % (a.path, a.host, a.port, hdrs)
               ).encode()
    sem = asyncio.Semaphore(a.parallel)
    conns = []
    stats = {"opened": 0, "ok": 0, "failed": 0}

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 30)
            except (OSError, asyncio.TimeoutError):
                stats["failed"] += 1
                return
            stats["opened"] += 1
            conns.append((r, w))
            try:
                w.write(req)
                st = await asyncio.wait_for(read_response(r), 30)
                stats["ok" if st < 500 else "failed"] += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                stats["failed"] += 1

    await asyncio.gather(*[one() for _ in range(a.conns)])
    await asyncio.sleep(0.2)
    stats["still_open"] = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    print(json.dumps(stats), flush=True)

    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def wait_stdin():  # a daemon thread: never keeps the process alive
        sys.stdin.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    try:
        await asyncio.wait_for(stdin_closed.wait(), a.hold)
    except asyncio.TimeoutError:
        pass
    still = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    print(json.dumps({"still_open_at_end": still}), flush=True)
    for r, w in conns:
        w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--body")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=200)
    ap.add_argument("--hold", type=float, default=60.0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.conns + 256)), hard))
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
