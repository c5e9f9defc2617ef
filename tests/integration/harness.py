"""
Integration test harness: start the real skuld binary against
tools/mock-upstream on loopback and talk to it over HTTP.

Python 3 standard library only. Every test module is a unittest script run
as `python3 tests/integration/test_x.py` (ctest registers each test_*.py);
call harness.main() at the bottom of it.

Binaries: env SKULD_BIN and MOCK_UPSTREAM_BIN (ctest sets both), defaulting
to build/skuld and build/tools/mock-upstream/mock-upstream in the checkout.

What is here
  free_port()                      a port nobody listens on right now
  Mock()                           mock-upstream on 127.0.0.1:<random>
  Skuld(config)                    skuld serve -c <temp yaml> --listen ...
  base_config(mock)                a config dict with one model at the mock
  GatewayTest                      TestCase base: mocks + one skuld per class
                                   from its config(), clean exit asserted
  MockTest                         TestCase base: mocks only (per class)
  gateway(make_config, n)          the same as a `with` block inside one test
  to_yaml(obj)                     a tiny YAML emitter for configs
  write_temp(name, content)        a file (text or YAML from a dict) in a temp dir
  request()/post_json()            one request over http.client
  RawConn / read_response()        raw sockets: keep-alive, pipelining,
                                   malformed requests, 100-continue
  sse_request()                    a streamed request read event by event
                                   (arrival times, clean chunked end)
  metrics_parse()/metric()         Prometheus text exposition
  run_threads(fn, args_list)       fn(*args) on a thread each, started, then joined
  main()                           unittest.main + a watchdog + log dumps

Processes are killed at exit even when a test fails (atexit), and children
get PR_SET_PDEATHSIG so a killed test run does not leave them behind.
"""

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKULD_BIN = os.environ.get("SKULD_BIN") or os.path.join(ROOT, "build", "skuld")
MOCK_BIN = os.environ.get("MOCK_UPSTREAM_BIN") or os.path.join(
    ROOT, "build", "tools", "mock-upstream", "mock-upstream")
HOST = "127.0.0.1"
KEEP = bool(os.environ.get("SKULD_TEST_KEEP"))  # keep temp dirs for inspection

_live = []      # every process started, for the atexit sweep
_tmpdirs = []
_servers = []   # Skuld and Mock instances, for log dumps on failure


def _cleanup():
    for p in _live:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass
    if not KEEP:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_sigterm(signum, frame):
    _cleanup()
    os._exit(128 + signum)


try:
    signal.signal(signal.SIGTERM, _on_sigterm)
except ValueError:  # not the main thread
    pass

_libc = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    pass


def _child_setup():
    # Die with the test process (PR_SET_PDEATHSIG = 1).
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def mkdtemp(prefix="skuld-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def write_temp(name, content, dir=None):
    """Write content (a str, or a dict written as YAML) to <dir>/name, dir
    being a new temp dir by default; returns the path."""
    path = os.path.join(dir or mkdtemp(), name)
    with open(path, "w") as f:
        f.write(content if isinstance(content, str) else to_yaml(content) + "\n")
    return path


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _listen_inodes(port):
    """Socket inodes of TCP listeners on `port` (any address)."""
    out = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        out.add(p[9])
        except OSError:
            pass
    return out


def _owned_inodes(pid):
    out = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                out.add(t[8:-1])
    except OSError:
        pass
    return out


def port_is_ours(port, pid):
    """Every listener on `port` belongs to `pid`. skuld listens with
    SO_REUSEPORT, so two processes could share a port picked by free_port()
    in a race; the kernel would then spread connections over both."""
    listeners = _listen_inodes(port)
    if not os.path.isdir("/proc/net"):
        return True
    return bool(listeners) and listeners <= _owned_inodes(pid)


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; return it, or raise."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" %
                                 (timeout, what, last))
        time.sleep(interval)


def run_threads(target, args_list, timeout=None):
    """Run target(*args) on one thread per entry of args_list, all started
    before any is joined; join each (up to `timeout` s); returns the threads."""
    ts = [threading.Thread(target=target, args=tuple(a)) for a in args_list]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    return ts


def raise_nofile(want=65536):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, want), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- YAML

def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                first = True
                for k, v in item.items():
                    lead = pad + ("- " if first else "  ")
                    first = False
                    if isinstance(v, (dict, list)) and v:
                        out.append("%s%s:" % (lead, k))
                        out.append(to_yaml(v, indent + 2))
                    else:
                        out.append("%s%s: %s" % (lead, k, _yaml_scalar(v)))
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(item)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


# ---------------------------------------------------------------- processes

def _tail(path, n=60):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no file)"


class Mock:
    """tools/mock-upstream on 127.0.0.1, port chosen by the kernel."""

    def __init__(self, args=(), start=True):
        self.args = list(args)
        self.dir = mkdtemp("skuld-mock-")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.proc = None
        self.port = None
        _servers.append(self)
        if start:
            self.start()

    def start(self, timeout=10):
        if not os.path.exists(MOCK_BIN):
            raise RuntimeError("mock-upstream binary not found: %s (build first)" % MOCK_BIN)
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([MOCK_BIN, "--listen", "%s:0" % HOST] + self.args,
                                     stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                     preexec_fn=_child_setup)
        out.close()
        err.close()
        _live.append(self.proc)

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError("mock-upstream exited with %s:\n%s" %
                                   (self.proc.returncode, _tail(self.stderr_path)))
            with open(self.stdout_path) as f:
                m = re.search(r"^LISTENING (\d+)$", f.read(), re.M)
            return int(m.group(1)) if m else None

        self.port = wait_until(listening, timeout, what="mock-upstream LISTENING line")
        return self

    @property
    def base_url(self):
        return "http://%s:%d/v1" % (HOST, self.port)

    def _call(self, method, path, body=None):
        r = request(self.port, method, path, body)
        if r.status != 200:
            raise AssertionError("mock %s %s -> %d %r" % (method, path, r.status, r.body))
        return r.json() if r.body else None

    def stats(self):
        return self._call("GET", "/_mock/stats")

    def last(self):
        return self._call("GET", "/_mock/last")

    def prompts(self):
        return self._call("GET", "/_mock/prompts")

    def reset(self):
        return self._call("POST", "/_mock/reset", {})

    def set_config(self, cfg):
        return self._call("POST", "/_mock/config", cfg)

    def stop(self, timeout=10):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("mock-upstream did not exit on SIGTERM")

    def describe(self):
        return "mock-upstream :%s\n--- stderr ---\n%s" % (self.port, _tail(self.stderr_path))


def base_config(mock=None, api_key=None, models=None, server=None, providers=None):
    """A config dict: provider "mock" at the mock, model "gpt-test" -> "mock-model-1"."""
    cfg = {"server": {"workers": 2}}
    if server:
        cfg["server"].update(server)
    if providers is None:
        providers = []
        if mock is not None:
            p = {"name": "mock", "type": "openai", "base_url": mock.base_url}
            if api_key:
                p["api_key"] = api_key
            providers.append(p)
    cfg["providers"] = providers
    if models is None:
        models = [{"name": "gpt-test", "provider": "mock", "model": "mock-model-1"}]
    cfg["models"] = models
    return cfg


class Skuld:
    """skuld serve with a temporary config file, on 127.0.0.1:<free port>.

    config: a dict (written as YAML), a YAML string, or None for no -c.
    stdout (the access log) and stderr go to files in a temp dir.
    """

    def __init__(self, config=None, env=None, cwd=None, args=(), start=True, ready_timeout=15):
        self.dir = mkdtemp("skuld-gw-")
        self.config = config
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.dir, "skuld.yaml")
            with open(self.config_path, "w") as f:
                f.write(config if isinstance(config, str) else to_yaml(config) + "\n")
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.cwd = cwd or self.dir
        self.args = list(args)
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.proc = None
        self.port = None
        self.ready_timeout = ready_timeout
        _servers.append(self)
        if start:
            self.start()

    def command(self, port):
        cmd = [SKULD_BIN, "serve"]
        if self.config_path:
            cmd += ["-c", self.config_path]
        return cmd + ["--listen", "%s:%d" % (HOST, port)] + self.args

    def start(self):
        if not os.path.exists(SKULD_BIN):
            raise RuntimeError("skuld binary not found: %s (build first)" % SKULD_BIN)
        for attempt in range(5):
            port = free_port()
            out = open(self.stdout_path, "ab")
            err = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen(self.command(port), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                         preexec_fn=_child_setup)
            out.close()
            err.close()
            _live.append(self.proc)
            self.port = port
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    r = request(port, "GET", "/healthz", timeout=2)
                    if r.status == 200:
                        if port_is_ours(port, self.proc.pid):
                            return self
                        break  # another process listens there too: pick another port
                except OSError:
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None and attempt < 4 and not port_is_ours(port, self.proc.pid):
                self.proc.kill()
                self.proc.wait()
                continue
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("skuld did not become healthy:\n" + self.describe())
            if "cannot listen" in self.stderr() and attempt < 4:
                continue  # someone took the port between free_port() and bind
            raise RuntimeError("skuld exited with %s at start:\n%s" %
                               (self.proc.returncode, self.describe()))
        raise RuntimeError("could not start skuld")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code (kills and raises on a hang)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("skuld did not exit within %ss of SIGTERM" % timeout)
        return self.proc.returncode

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self):
        """Every stdout line parsed as JSON (a non-JSON line raises)."""
        out = []
        for line in self.stdout().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def log_for(self, request_id, timeout=5):
        """The access log lines of one request id, waiting for the flush."""
        return wait_until(lambda: [e for e in self.access_log() if e.get("request_id") == request_id],
                          timeout, what="access log line for %s" % request_id)

    def rss_kb(self):
        return rss_kb(self.proc.pid)

    def metrics(self):
        r = request(self.port, "GET", "/metrics")
        if r.status != 200:
            raise AssertionError("/metrics -> %d" % r.status)
        return r.body.decode()

    def describe(self):
        return "skuld :%s (%s)\n--- stderr ---\n%s\n--- stdout (tail) ---\n%s" % (
            self.port, self.config_path or "embedded config", _tail(self.stderr_path),
            _tail(self.stdout_path, 20))


def run_skuld(args, env=None, cwd=None, timeout=30):
    """Run a skuld subcommand to completion: (exit code, stdout, stderr)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([SKULD_BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       env=e, cwd=cwd, timeout=timeout, preexec_fn=_child_setup)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- gateway fixtures

def start_mocks(n):
    """n mock-upstreams; if one fails to start, those already started are stopped."""
    mocks = []
    try:
        for _ in range(n):
            mocks.append(Mock())
    except Exception:
        for m in mocks:
            m.stop()
        raise
    return mocks


def stop_gateway(gw, mocks):
    """Stop skuld (SIGTERM), then the mocks; skuld's exit code (0 without one)."""
    try:
        rc = gw.stop() if gw else 0
    finally:
        for m in mocks:
            m.stop()
    return rc


@contextlib.contextmanager
def gateway(make_config, n_mocks=1, env=None, **skuld_kw):
    """Within a test: `with gateway(lambda a, b: cfg, 2) as (gw, a, b):`.

    Starts n_mocks mock-upstreams and skuld with make_config(*mocks); on leaving
    the block stops them all and asserts that skuld exited 0 (not checked when
    the block raised: its own error is the one reported)."""
    mocks = start_mocks(n_mocks)
    try:
        gw = Skuld(make_config(*mocks), env=env, **skuld_kw)
    except Exception:
        stop_gateway(None, mocks)
        raise
    try:
        yield (gw,) + tuple(mocks)
    finally:
        rc = stop_gateway(gw, mocks)
    assert rc == 0, "skuld exited with %s" % rc


class MockTest(unittest.TestCase):
    """A TestCase class with mock-upstreams for all its tests, started in
    setUpClass and stopped in tearDownClass. mock_names names them: each is a
    class attribute (cls.mock by default) and cls.mocks lists them in order."""

    mock_names = ("mock",)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mocks = start_mocks(len(cls.mock_names))
        for name, m in zip(cls.mock_names, cls.mocks):
            setattr(cls, name, m)

    @classmethod
    def tearDownClass(cls):
        stop_gateway(None, cls.mocks)
        super().tearDownClass()


class GatewayTest(MockTest):
    """MockTest plus one skuld for the whole class: cls.gw, cls.port.

    A subclass gives its config as the classmethod config(cls) (called once the
    mocks run, so it can use cls.mock.base_url), skuld's extra environment as
    `env` and other Skuld() arguments as `skuld_kw`. A skuld that fails to
    start stops the mocks and fails the class; tearDownClass stops skuld and
    the mocks and asserts that skuld exited 0. mock_names = () for none."""

    env = None
    skuld_kw = {}

    @classmethod
    def config(cls):
        return base_config(cls.mock)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gw = None
        try:
            cls.gw = Skuld(cls.config(), env=cls.env, **cls.skuld_kw)
        except Exception:
            super().tearDownClass()  # unittest skips tearDownClass after this
            raise
        cls.port = cls.gw.port

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.gw.stop() if cls.gw else 0
        finally:
            super().tearDownClass()  # the mocks
        assert rc == 0, "skuld exited with %s\n%s" % (rc, cls.gw.describe())


# ---------------------------------------------------------------- HTTP (http.client)

class Resp:
    def __init__(self, status, reason, headers, body, elapsed=0.0):
        self.status = status
        self.reason = reason
        self.header_list = headers                 # [(name, value)] as received
        self.headers = {}                          # lowercased name -> value (joined)
        for k, v in headers:
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.body[:300])


def request(port, method, path, body=None, headers=None, timeout=30, conn=None):
    """One request; body may be bytes, str, or a JSON-able object."""
    h = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    own = conn is None
    c = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    t0 = time.monotonic()
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, r.reason, r.getheaders(), data, time.monotonic() - t0)
    finally:
        if own:
            c.close()


def post_json(port, path, obj, headers=None, timeout=30):
    return request(port, "POST", path, obj, headers, timeout)


def chat(port, content="hello world", model="gpt-test", mock=None, headers=None, timeout=30,
         **extra):
    body = {"messages": [{"role": "user", "content": content}]}
    if model is not None:
        body["model"] = model
    if mock:
        body["mock"] = mock
    body.update(extra)
    return post_json(port, "/v1/chat/completions", body, headers, timeout)


def check_error_shape(tc, resp, status, code=None):
    """Assert an OpenAI error object with exactly message/type/param/code."""
    tc.assertEqual(resp.status, status, resp.body)
    tc.assertTrue(resp.headers.get("content-type", "").startswith("application/json"),
                  resp.headers)
    obj = resp.json()
    tc.assertEqual(set(obj), {"error"}, obj)
    err = obj["error"]
    tc.assertEqual(set(err), {"message", "type", "param", "code"}, err)
    tc.assertIsInstance(err["message"], str)
    tc.assertTrue(err["message"])
    tc.assertIsInstance(err["type"], str)
    if code is not None:
        tc.assertEqual(err["code"], code, err)
    return err


# ---------------------------------------------------------------- raw sockets

class RawResponse:
    def __init__(self):
        self.status = None
        self.reason = ""
        self.version = ""
        self.header_list = []
        self.headers = {}
        self.body = b""
        self.chunked = False
        self.complete = False   # framing ended properly (length met / last chunk)
        self.informational = []  # 1xx status codes seen before the final one

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<RawResponse %s %r>" % (self.status, self.body[:300])


class RawConn:
    """A plain TCP connection with a buffered HTTP/1.1 response reader."""

    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed in the middle of a line: %r" % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed with %d of %d bytes" % (len(self.buf), n))
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_available(self, wait=0.2):
        """Whatever arrives within `wait` seconds (for 'nothing more came' checks)."""
        self.sock.settimeout(wait)
        try:
            while self._fill():
                pass
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(self.timeout)
        d, self.buf = self.buf, b""
        return d

    def closed_by_peer(self, wait=2.0):
        """True if the peer closes (EOF/RST) within `wait` seconds with no more data."""
        self.sock.settimeout(wait)
        try:
            while True:
                try:
                    d = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def read_head(self):
        line = self.read_line()
        m = re.match(rb"^(HTTP/1\.[01]) (\d{3}) ?(.*)$", line)
        if not m:
            raise AssertionError("bad status line %r" % line)
        headers = []
        while True:
            h = self.read_line()
            if not h:
                break
            k, _, v = h.partition(b":")
            headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
        return m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1"), headers

    def read_response(self, on_data=None, head_only_1xx=False, method="GET"):
        """Read one response. on_data(bytes) is called for each body piece as it arrives."""
        r = RawResponse()
        while True:
            version, status, reason, headers = self.read_head()
            if 100 <= status < 200:
                r.informational.append(status)
                if head_only_1xx:
                    r.status = status
                    return r
                continue
            break
        r.version, r.status, r.reason, r.header_list = version, status, reason, headers
        for k, v in headers:
            k = k.lower()
            r.headers[k] = r.headers[k] + ", " + v if k in r.headers else v
        te = r.headers.get("transfer-encoding", "").lower()
        body = []

        def got(d):
            body.append(d)
            if on_data:
                on_data(d)

        try:
            if method == "HEAD" or status in (204, 304):
                r.complete = True
            elif "chunked" in te:
                r.chunked = True
                while True:
                    size_line = self.read_line()
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.read_line():  # trailers
                            pass
                        r.complete = True
                        break
                    got(self.read_exact(size))
                    if self.read_exact(2) != b"\r\n":
                        raise AssertionError("chunk not followed by CRLF")
            elif "content-length" in r.headers:
                n = int(r.headers["content-length"])
                got(self.read_exact(n))
                r.complete = True
            else:
                while self._fill():
                    pass
                got(self.buf)
                self.buf = b""
                r.complete = True
        except EOFError:
            r.complete = False
        r.body = b"".join(body)
        return r


def http_request_bytes(method, path, body=None, headers=None, version="HTTP/1.1"):
    """Serialise a request; body may be bytes/str/JSON-able. Content-Length added."""
    h = [("Host", HOST)]
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h.append(("Content-Type", "application/json"))
    if isinstance(body, str):
        body = body.encode()
    for k, v in (headers or {}).items():
        h.append((k, v))
    names = {k.lower() for k, _ in h}
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        h.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version) + "".join("%s: %s\r\n" % kv for kv in h) + "\r\n"
    return head.encode() + (body or b"")


def raw_exchange(port, data, timeout=10):
    """Send raw bytes, read one response (RawResponse)."""
    with RawConn(port, timeout) as c:
        c.send(data)
        return c.read_response()


# ---------------------------------------------------------------- SSE

class SSEEvent:
    __slots__ = ("event", "data", "t")

    def __init__(self, event, data, t):
        self.event, self.data, self.t = event, data, t

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return "<SSE %s%r @%.3f>" % (self.event + " " if self.event else "", self.data[:120], self.t)


class SSEResult:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.events = []
        self.complete = False  # the chunked body ended with its last chunk
        self.body = b""        # raw body (for non-stream answers)
        self.t_start = 0.0     # request sent (monotonic)
        self.closed_early = False

    @property
    def data(self):
        return [e.data for e in self.events]

    @property
    def done(self):
        """The last event is [DONE]."""
        return bool(self.events) and self.events[-1].data == "[DONE]"

    def json_events(self):
        return [e.json() for e in self.events if e.data != "[DONE]"]

    def errors(self):
        out = []
        for e in self.events:
            if e.data != "[DONE]":
                try:
                    o = json.loads(e.data)
                except ValueError:
                    continue
                if isinstance(o, dict) and "error" in o:
                    out.append(o)
        return out

    def content(self):
        """Concatenated delta.content (chat) or text (completions)."""
        s = []
        for o in self.json_events():
            for ch in o.get("choices") or []:
                d = ch.get("delta")
                if d and d.get("content"):
                    s.append(d["content"])
                elif "text" in ch and ch["text"]:
                    s.append(ch["text"])
        return "".join(s)


class SSEParser:
    def __init__(self):
        self.buf = b""
        self.events = []

    def feed(self, data, t):
        self.buf += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self.buf:
            block, self.buf = self.buf.split(b"\n\n", 1)
            ev, datas = "", []
            for line in block.decode("utf-8").split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(":")
                if v.startswith(" "):
                    v = v[1:]
                if k == "event":
                    ev = v
                elif k == "data":
                    datas.append(v)
            if datas or ev:
                self.events.append(SSEEvent(ev, "\n".join(datas), t))


def sse_request(port, body, path="/v1/chat/completions", headers=None, timeout=30,
                stop_after=None, on_event=None, conn=None):
    """POST body and read the answer as an event stream.

    stop_after=N: close the socket once N events have arrived (client leaves).
    on_event(result, event) is called as each event arrives.
    Event times are seconds since the request was sent.
    """
    res = SSEResult()
    own = conn is None
    c = conn or RawConn(port, timeout)
    parser = SSEParser()

    class _Stop(Exception):
        pass

    def on_data(d):
        n0 = len(parser.events)
        parser.feed(d, time.monotonic() - res.t_start)
        for ev in parser.events[n0:]:
            res.events.append(ev)
            if on_event:
                on_event(res, ev)
            if stop_after is not None and len(res.events) >= stop_after:
                raise _Stop()

    try:
        res.t_start = time.monotonic()
        c.send(http_request_bytes("POST", path, body, headers))
        try:
            r = c.read_response(on_data=on_data)
            res.status, res.headers, res.complete, res.body = r.status, r.headers, r.complete, r.body
            if not r.headers.get("content-type", "").startswith("text/event-stream"):
                res.events = []
        except _Stop:
            res.closed_early = True
            res.status = 200
    finally:
        if own:
            c.close()
    return res


def stream_body(model="gpt-test", content="hello world", mock=None, **extra):
    b = {"model": model, "stream": True, "messages": [{"role": "user", "content": content}]}
    if mock:
        b["mock"] = mock
    b.update(extra)
    return b


# ---------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def metrics_parse(text):
    """Prometheus text format -> ({(name, frozenset(labels)): value}, {family: type})."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("unparsable metrics line: %r" % line)
        labels = {}
        if m.group(3):
            pos = 0
            s = m.group(3)
            while pos < len(s):
                lm = _LABEL.match(s, pos)
                if not lm:
                    raise AssertionError("bad labels in %r" % line)
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return samples, types


def metric(samples, name, default=0.0, **labels):
    """The value of the sample with exactly these labels (default if absent)."""
    return samples.get((name, frozenset(labels.items())), default)


def metric_sum(samples, name, **labels):
    """Sum over samples of `name` whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


# ---------------------------------------------------------------- running

def _watchdog(seconds):
    def fire():
        sys.stderr.write("\nWATCHDOG: test run exceeded %ss; thread stacks:\n" % seconds)
        for tid, frame in sys._current_frames().items():
            sys.stderr.write("".join(traceback.format_stack(frame)) + "\n")
        for s in _servers:
            sys.stderr.write(s.describe() + "\n")
        sys.stderr.flush()
        _cleanup()
        os._exit(3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main(timeout=280):
    """unittest.main for a test script: exit 1 on failure, with server logs."""
    _watchdog(timeout)
    prog = unittest.main(exit=False, verbosity=2)
    ok = prog.result.wasSuccessful()
    if not ok or os.environ.get("SKULD_TEST_VERBOSE"):
        for s in _servers:
            sys.stderr.write("\n==== %s\n" % s.describe())
    _cleanup()
    sys.exit(0 if ok else 1)
