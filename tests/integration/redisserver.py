"""
redisserver — a real, throw-away redis-server for tests (issue 8: shared
limits and budgets).

    r = RedisServer()          # started: r.port, r.url ("redis://127.0.0.1:PORT")
    r.cli("HGETALL", "k")      # one command via redis-cli, output as text
    r.freeze(); r.thaw()       # SIGSTOP / SIGCONT
    r.stop()

Runs `redis-server` (env REDIS_SERVER_BIN, else from PATH) on 127.0.0.1 and
a free port, with a temporary directory, no persistence, as our child with
PR_SET_PDEATHSIG (via harness's child setup). A test that needs Redis fails
when it cannot start (CI installs redis-server).
"""

import os
import shutil
import signal
import subprocess
import time

import harness

REDIS_BIN = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, start=True):
        self.dir = harness.mkdtemp("skuld-redis-")
        self.port = None
        self.proc = None
        if start:
            self.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, port=None):
        self.port = port or self.port or harness.free_port()
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--protected-mode", "no"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=harness._child_setup)
        log.close()
        harness._live.append(self.proc)
        harness.wait_until(lambda: self.cli("PING").strip() == "PONG", 10, what="redis-server up")
        return self

    def cli(self, *args):
        p = subprocess.run([REDIS_CLI, "-p", str(self.port)] + [str(a) for a in args],
                           capture_output=True, timeout=10)
        return p.stdout.decode()

    def hget_int(self, key, field):
        v = self.cli("HGET", key, field).strip()
        return int(v) if v else 0

    def keys(self, pattern="*"):
        return [k for k in self.cli("--scan", "--pattern", pattern).split("\n") if k]

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
