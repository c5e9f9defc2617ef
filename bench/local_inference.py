#!/usr/bin/env python3
"""
Local inference benchmark: embedded llama.cpp through skuld vs a raw libllama
decode loop, on the same demo model, in one run.

  python3 bench/local_inference.py [--build DIR] [--tokens N] [--runs N]

1. raw:     bench/llama-raw (built by CMake next to skuld): greedy decode loop,
            one llama_decode per token, n_threads = cores; tokens/s from the
            first generated token to the last. Also with --parallel 8 (8
            sequences per llama_decode): what batching can give on this model.
2. single:  one streamed chat request through skuld (parallel 8 slots,
            temperature 0, max_tokens N); tokens/s from the first content
            chunk to the last, counted with the usage chunk.
3. 8 conc.: 8 such streams at once; aggregate tokens/s = all completion
            tokens / wall time from sending the first request to the last
            [DONE] (prompt processing included).
Medians over --runs. Prints a table and a JSON line; exits 1 if a target is
missed (skuld single within 10% of raw; 8 streams >= 3x single).
Python standard library only.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stream(port, content, max_tokens, out):
    """One streamed chat request; records send time, first/last content chunk, tokens."""
    body = json.dumps({"model": "demo", "stream": True, "max_tokens": max_tokens,
                       "temperature": 0, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": content}]}).encode()
    s = socket.create_connection(("127.0.0.1", port))
    t_send = time.monotonic()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: "
              b"application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body)
    buf, first, last, tokens, done = b"", None, None, 0, False
    while not done:
        d = s.recv(65536)
        if not d:
            break
        now = time.monotonic()
        buf += d
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            i = ev.find(b"data: ")
            if i < 0:
                continue
            data = ev[i + 6:]
            if data == b"[DONE]":
                done = True
                break
            if b'"content":"' in data and b'"role"' not in data:
                first = first or now
                last = now
            if b'"usage"' in data:
                tokens = json.loads(data)["usage"]["completion_tokens"]
    s.close()
    out.append({"send": t_send, "first": first, "last": last, "end": time.monotonic(),
                "tokens": tokens, "done": done})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    skuld = os.path.join(a.build, "skuld")
    raw = os.path.join(a.build, "bench", "llama-raw")
    tmp = tempfile.mkdtemp(prefix="skuld-bench-local-")
    model = os.path.join(tmp, "demo.gguf")
    subprocess.run([skuld, "demo-model", "-o", model], check=True, stdout=subprocess.DEVNULL)

    # 1. raw libllama loop
    p = subprocess.run([raw, model, "--tokens", str(a.tokens), "--runs", str(a.runs + 1)],
                       check=True, capture_output=True, text=True)
    raw_runs = [json.loads(l)["tokens_per_s"] for l in p.stdout.splitlines()][1:]  # skip warm-up
    raw_tps = statistics.median(raw_runs)
    # the same loop with 8 sequences in one batch: the batching ceiling of this model
    p = subprocess.run([raw, model, "--tokens", str(a.tokens), "--runs", str(a.runs + 1),
                        "--parallel", "8"], check=True, capture_output=True, text=True)
    raw8_runs = [json.loads(l)["tokens_per_s"] for l in p.stdout.splitlines()][1:]
    raw8_tps = statistics.median(raw8_runs)

    # 2./3. through skuld
    cfg = os.path.join(tmp, "skuld.yaml")
    with open(cfg, "w") as f:
        f.write("server:\n  access_log: false\n  default_model: demo\n"
                "providers:\n  - name: local\n    type: llamacpp\n"
                "models:\n  - name: demo\n    provider: local\n    path: %s\n    parallel: 8\n"
                % model)
    port = free_port()
    gw = subprocess.Popen([skuld, "serve", "-c", cfg, "--listen", "127.0.0.1:%d" % port],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "err"), "w"))
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        warm = []
        stream(port, "warm up", 32, warm)
        single = []
        for r in range(a.runs):
            out = []
            stream(port, "Hello, tell me a story about a gateway.", a.tokens, out)
            o = out[0]
            assert o["done"] and o["tokens"] == a.tokens, o
            single.append((o["tokens"] - 1) / (o["last"] - o["first"]))
        single_tps = statistics.median(single)
        agg = []
        for r in range(a.runs):
            out = []
            ts = [threading.Thread(target=stream, args=(port, "story number %d" % i, a.tokens, out))
                  for i in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert len(out) == 8 and all(o["done"] for o in out), out
            wall = max(o["end"] for o in out) - min(o["send"] for o in out)
            agg.append(sum(o["tokens"] for o in out) / wall)
        agg_tps = statistics.median(agg)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)

    ratio_single = single_tps / raw_tps
    ratio_agg = agg_tps / single_tps
    print("local inference, demo model (2 layers, 64 wide, 32k vocab), %d tokens, "
          "median of %d runs, %d cores" % (a.tokens, a.runs, os.cpu_count()))
    print("  raw libllama loop, single stream   %8.0f tokens/s" % raw_tps)
    print("  raw libllama loop, 8 seqs batched  %8.0f tokens/s  (%.2fx raw single)"
          % (raw8_tps, raw8_tps / raw_tps))
    print("  skuld, single stream               %8.0f tokens/s  (%.2fx raw)" % (single_tps,
                                                                               ratio_single))
    print("  skuld, 8 concurrent streams, total %8.0f tokens/s  (%.2fx single)" % (agg_tps,
                                                                                  ratio_agg))
    print(json.dumps({"raw_tps": round(raw_tps, 1), "raw_8_batched_tps": round(raw8_tps, 1),
                      "skuld_single_tps": round(single_tps, 1),
                      "skuld_8_streams_tps": round(agg_tps, 1),
                      "single_vs_raw": round(ratio_single, 3),
                      "eight_vs_single": round(ratio_agg, 2),
                      "raw_runs": raw_runs, "single_runs": [round(x, 1) for x in single],
                      "agg_runs": [round(x, 1) for x in agg]}))
    ok = ratio_single >= 0.9 and ratio_agg >= 3.0
    if not ok:
        print("TARGET MISSED: single >= 0.9x raw and 8 streams >= 3x single", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
