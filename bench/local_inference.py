#!/usr/bin/env python3
"""
Local inference benchmark: embedded llama.cpp through skuld vs a raw libllama
decode loop, on the same model, in one run.

  python3 bench/local_inference.py [--build DIR] [--model bench|demo] [--tokens N] [--runs N]
                                   [--threads N] [--shape L,W,FF,HEADS,TYPE] [--keep]

Models (written with `skuld demo-model` to a temporary directory, deleted after):
  bench (default): --layers 10 --width 1024 --ff 2816 --heads 16 (F32 layer
         matrices), ~575 MB, random weights: decode of one sequence is bound
         by reading the weights (as with any real model), so batching 8
         sequences into one step pays off. Override with
         --shape LAYERS,WIDTH,FF,HEADS,TYPE (e.g. 16,1536,4096,24,q8_0).
  demo:  the default demo model (2 layers, 64 wide, ~5.6 MB): per-token
         overheads dominate and batching cannot help; kept for comparison.

Each round measures, one after the other, with nothing else of ours running:
1. raw:     bench/llama-raw (built by CMake next to skuld): greedy decode loop,
            one llama_decode per token, n_threads = cores; tokens/s from the
            first generated token to the last (a fresh process per round).
2. single:  one streamed chat request through skuld (parallel 8 slots,
            temperature 0, max_tokens N); tokens/s from the first content
            chunk to the last, counted with the usage chunk.
3. raw 8:   llama-raw --parallel 8: 8 sequences per llama_decode, the
            batching ceiling of this model without the gateway.
4. 8 conc.: 8 such streams at once through skuld; aggregate tokens/s = all
            completion tokens / wall time from sending the first request to the
            last [DONE] (prompt processing included).
Interleaving the four per round makes load from other processes hit all of
them alike; ratios are taken per round, then the median over --runs rounds
(also printed: the best round of each figure, since load only slows down).
Prints a table and a JSON line; exits 1 if a target is missed (median of
skuld single / raw single >= 0.9; of skuld 8 streams / skuld single >= 3).
Python standard library only.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_SHAPE = "10,1024,2816,16,f32"


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


def raw_tps(raw, model, tokens, parallel, threads):
    args = [raw, model, "--tokens", str(tokens), "--runs", "1", "--warmup", "16"]
    if threads > 0:
        args += ["--threads", str(threads)]
    if parallel > 1:
        args += ["--parallel", str(parallel)]
    p = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(p.stdout.splitlines()[-1])["tokens_per_s"]


def skuld_single(port, tokens):
    out = []
    stream(port, "Hello, tell me a story about a gateway.", tokens, out)
    o = out[0]
    assert o["done"] and o["tokens"] == tokens, o
    return (o["tokens"] - 1) / (o["last"] - o["first"])


def skuld_concurrent(port, tokens, n):
    out = []
    ts = [threading.Thread(target=stream, args=(port, "story number %d" % i, tokens, out))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == n and all(o["done"] for o in out), out
    wall = max(o["end"] for o in out) - min(o["send"] for o in out)
    return sum(o["tokens"] for o in out) / wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--model", choices=("bench", "demo"), default="bench")
    ap.add_argument("--shape", default=BENCH_SHAPE,
                    help="bench model: LAYERS,WIDTH,FF,HEADS,TYPE (default %s)" % BENCH_SHAPE)
    ap.add_argument("--tokens", type=int, default=0,
                    help="tokens per stream (default 256 bench, 512 demo)")
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians over them)")
    ap.add_argument("--threads", type=int, default=0,
                    help="compute threads on both sides (llama-raw --threads, skuld "
                         "SKULD_LLAMA_THREADS); default: the cores available")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    tokens = a.tokens or (256 if a.model == "bench" else 512)
    skuld = os.path.join(a.build, "skuld")
    raw = os.path.join(a.build, "bench", "llama-raw")
    tmp = tempfile.mkdtemp(prefix="skuld-bench-local-")
    model = os.path.join(tmp, "model.gguf")
    cmd = [skuld, "demo-model", "-o", model]
    if a.model == "bench":
        L, W, F, H, T = a.shape.split(",")
        cmd += ["--layers", L, "--width", W, "--ff", F, "--heads", H, "--type", T]
        shape = "%s layers, %s wide, ff %s, %s heads, %s layer weights, Q8_0 vocab matrices" % (
            L, W, F, H, T)
    else:
        shape = "2 layers, 64 wide, ff 256, 4 heads, f32 layer weights, Q8_0 vocab matrices"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    size_mb = os.path.getsize(model) / 1e6

    cfg = os.path.join(tmp, "skuld.yaml")
    with open(cfg, "w") as f:
        f.write("server:\n  access_log: false\n  default_model: demo\n"
                "providers:\n  - name: local\n    type: llamacpp\n"
                "models:\n  - name: demo\n    provider: local\n    path: %s\n    parallel: 8\n"
                % model)
    port = free_port()
    load_before = os.getloadavg()
    env = dict(os.environ)
    if a.threads > 0:
        env["SKULD_LLAMA_THREADS"] = str(a.threads)
    else:
        env.pop("SKULD_LLAMA_THREADS", None)
    gw = subprocess.Popen([skuld, "serve", "-c", cfg, "--listen", "127.0.0.1:%d" % port],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "err"), "w"),
                          env=env)
    rounds = []
    try:
        for _ in range(1200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if gw.poll() is not None:
                    sys.exit("skuld exited: " + open(os.path.join(tmp, "err")).read())
                time.sleep(0.05)
        out = []
        stream(port, "warm up", 16, out)      # first touches of weights and buffers
        skuld_concurrent(port, 16, 8)         # every slot's KV cells once
        for r in range(a.runs):
            x = {"raw": raw_tps(raw, model, tokens, 1, a.threads)}
            x["single"] = skuld_single(port, tokens)
            x["raw8"] = raw_tps(raw, model, tokens, 8, a.threads)
            x["agg"] = skuld_concurrent(port, tokens, 8)
            x["single_vs_raw"] = x["single"] / x["raw"]
            x["eight_vs_single"] = x["agg"] / x["single"]
            x["eight_vs_raw8"] = x["agg"] / x["raw8"]
            x["raw8_vs_raw"] = x["raw8"] / x["raw"]
            rounds.append(x)
            print("round %d: raw %.1f, skuld %.1f (%.2fx), raw 8 %.1f, skuld 8 %.1f (%.2fx single)"
                  % (r + 1, x["raw"], x["single"], x["single_vs_raw"], x["raw8"], x["agg"],
                     x["eight_vs_single"]), file=sys.stderr, flush=True)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(60)
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    def med(k):
        return statistics.median(x[k] for x in rounds)

    print("local inference, %s model (%s, %.0f MB), %d tokens per stream, median of %d rounds, "
          "%d cores, %s compute threads, load average %.1f before / %.1f after"
          % (a.model, shape, size_mb, tokens, a.runs, os.cpu_count(),
             a.threads if a.threads > 0 else "all", load_before[0], load_after[0]))
    print("  raw libllama loop, single stream   %8.1f tokens/s" % med("raw"))
    print("  raw libllama loop, 8 seqs batched  %8.1f tokens/s  (%.2fx raw single)"
          % (med("raw8"), med("raw8_vs_raw")))
    print("  skuld, single stream               %8.1f tokens/s  (%.2fx raw)"
          % (med("single"), med("single_vs_raw")))
    print("  skuld, 8 concurrent streams, total %8.1f tokens/s  (%.2fx single, %.2fx raw batched)"
          % (med("agg"), med("eight_vs_single"), med("eight_vs_raw8")))
    # Load from other processes only ever slows a measurement down: the best
    # round of each figure is the other robust view on a shared machine.
    best = {k: max(x[k] for x in rounds) for k in ("raw", "raw8", "single", "agg")}
    print("  best round of each: raw %.1f, raw 8 %.1f, skuld %.1f (%.2fx raw), skuld 8 %.1f "
          "(%.2fx skuld single)" % (best["raw"], best["raw8"], best["single"],
                                    best["single"] / best["raw"], best["agg"],
                                    best["agg"] / best["single"]))
    print(json.dumps({"model": a.model, "shape": shape, "tokens": tokens,
                      "raw_tps": round(med("raw"), 1), "raw_8_batched_tps": round(med("raw8"), 1),
                      "skuld_single_tps": round(med("single"), 1),
                      "skuld_8_streams_tps": round(med("agg"), 1),
                      "single_vs_raw": round(med("single_vs_raw"), 3),
                      "eight_vs_single": round(med("eight_vs_single"), 2),
                      "eight_vs_raw8": round(med("eight_vs_raw8"), 2),
                      "raw8_vs_raw": round(med("raw8_vs_raw"), 2),
                      "best": {k: round(v, 1) for k, v in best.items()},
                      "load_avg": [round(load_before[0], 2), round(load_after[0], 2)],
                      "rounds": [{k: round(v, 3 if "_vs_" in k else 1) for k, v in x.items()}
                                 for x in rounds]}))
    ok = med("single_vs_raw") >= 0.9 and med("eight_vs_single") >= 3.0
    if not ok:
        print("TARGET MISSED: single >= 0.9x raw and 8 streams >= 3x single", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
