"""
pgserver — start a real, throw-away PostgreSQL server for tests.

    with PgServer() as pg:          # or pg = PgServer(); pg.start(); ...; pg.stop()
        url = pg.url                # postgres://skuld:<pw>@127.0.0.1:<port>/skuld

What it does
  - finds the server binaries: env PG_BIN, else the newest
    /usr/lib/postgresql/<N>/bin with initdb and postgres in it (Debian's
    `postgresql` package; scripts/install-deps.sh --test installs it);
  - makes a temporary directory, runs `initdb` in it (user `skuld`, a random
    password, scram-sha-256 auth: the tests exercise a real password), then
    runs `postgres` listening on 127.0.0.1 only, on a free port, with no
    Unix socket, fsync on (durability is what the store tests are about);
  - waits until the server accepts connections (pg_isready), creates the
    database `skuld`, and on stop (or at exit, or on SIGTERM) shuts it down
    (SIGINT = fast shutdown, SIGKILL after 10 s) and deletes the directory.

Root: initdb and postgres refuse to run as root. When this runs as root it
uses a dedicated unprivileged system user, `skuldtest` (created with
`useradd --system` if missing; falls back to `nobody` if it cannot be
created; env PG_TEST_USER overrides), owns the temporary directory to it and
runs initdb as `runuser -u USER -- initdb ...`. The server itself is started
with subprocess's user=/group= switch rather than runuser, so that it is our
direct child and gets PR_SET_PDEATHSIG: if the test process dies, so does
the server. As a normal user nothing is switched.

Any failure raises PgServerError with the server log: a test that needs
PostgreSQL must fail, not skip, when it cannot be started (CI installs it).

Python 3 standard library only. Run it directly to get a server for manual
use: `python3 tests/integration/pgserver.py` prints the URL and waits.
"""

import atexit
import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class PgServerError(RuntimeError):
    pass


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find_bin():
    env = os.environ.get("PG_BIN")
    if env:
        return env
    cands = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(
                os.path.join(d, "postgres"), os.X_OK):
            try:
                cands.append((int(d.split("/")[-2]), d))
            except ValueError:
                pass
    if not cands:
        raise PgServerError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; set PG_BIN): "
            "install the `postgresql` package (scripts/install-deps.sh --test)")
    return max(cands)[1]


def _test_user():
    """The unprivileged user to run the server as when we are root."""
    name = os.environ.get("PG_TEST_USER")
    if name:
        pwd.getpwnam(name)
        return name
    try:
        pwd.getpwnam("skuldtest")
        return "skuldtest"
    except KeyError:
        pass
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", "skuldtest"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        pwd.getpwnam("skuldtest")
        return "skuldtest"
    except KeyError:
        sys.stderr.write("pgserver: cannot create user skuldtest (%s); using nobody\n"
                         % r.stdout.decode(errors="replace").strip())
        return "nobody"


def _pdeathsig():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_running = []


def _stop_all():
    for s in list(_running):
        s.stop()


atexit.register(_stop_all)


class PgServer:
    def __init__(self, dbname="skuld", user="skuld"):
        self.dbname = dbname
        self.user = user
        self.password = "pw-" + secrets.token_hex(8)
        self.port = None
        self.dir = None
        self.proc = None
        self.url = None
        self.bin = None

    # -- helpers -----------------------------------------------------------
    def _as_user(self, argv):
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--"] + argv
        return argv

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()[-6000:]
        except Exception:
            return ""

    def _run(self, argv, what):
        r = subprocess.run(self._as_user(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           cwd=self.dir, timeout=120)
        if r.returncode != 0:
            raise PgServerError("%s failed (exit %d):\n%s" % (
                what, r.returncode, r.stdout.decode(errors="replace")[-4000:]))

    # -- lifecycle -----------------------------------------------------------
    def start(self):
        self.bin = _find_bin()
        self.run_as = _test_user() if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="skuld-pg-")
        data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        _running.append(self)
        self._run([os.path.join(self.bin, "initdb"), "-D", data, "-U", self.user,
                   "--pwfile=" + pwfile, "--auth=scram-sha-256", "-E", "UTF8",
                   "--locale=C", "--no-sync"], "initdb")
        os.unlink(pwfile)

        last = None
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            self._spawn()
            if self._wait_ready(30):
                break
            last = self.log()
            self._kill()
        else:
            raise PgServerError("postgres did not start:\n" + (last or ""))

        self.url = "postgres://%s:%s@127.0.0.1:%d/%s" % (self.user, self.password, self.port,
                                                        self.dbname)
        env = dict(os.environ, PGPASSWORD=self.password)
        r = subprocess.run([os.path.join(self.bin, "createdb"), "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", self.user, self.dbname],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise PgServerError("createdb failed: %s\n%s" % (r.stdout.decode(errors="replace"),
                                                            self.log()))
        return self

    def _spawn(self):
        kw = {}
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            kw = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        logf = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", os.path.join(self.dir, "data"),
             "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
             "-c", "fsync=on", "-c", "max_connections=50"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.dir, preexec_fn=_pdeathsig, **kw)
        logf.close()

    # -- outages (the chaos suite) -------------------------------------------
    def _tree(self):
        """The postmaster and every process it forked (backends, writers)."""
        pids = [self.proc.pid]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid:
                pids.append(int(d))
        return pids

    def freeze(self):
        """SIGSTOP the server and its backends: connections stay open, nothing
        answers (a hung database)."""
        self._frozen = self._tree()
        for pid in self._frozen:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def thaw(self):
        for pid in getattr(self, "_frozen", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self._frozen = []

    def halt(self):
        """Fast shutdown (every connection terminated), keeping the data."""
        self._kill()

    def resume(self, timeout=30):
        """Start again on the same port and data after halt()."""
        self._spawn()
        if not self._wait_ready(timeout):
            raise PgServerError("postgres did not start again:\n" + self.log())
        return self

    def _wait_ready(self, timeout):
        isready = os.path.join(self.bin, "pg_isready")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            r = subprocess.run([isready, "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def _kill(self):
        if getattr(self, "_frozen", None):
            self.thaw()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def stop(self):
        self._kill()
        if self in _running:
            _running.remove(self)
        if self.dir and not os.environ.get("SKULD_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _on_sigterm(signum, frame):
    _stop_all()
    os._exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)  # also when started in the background
    with PgServer() as pg:
        print(pg.url, flush=True)
        signal.pause()
