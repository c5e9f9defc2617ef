"""
The install layout (issue 15, item 4): `cmake --install BUILD --prefix DIR`
(what `make install PREFIX=DIR` runs) into a temporary prefix, then the
installed tree on its own, from another directory:

- the files the README's Install table lists, nothing of the npm package
  skuld does not load;
- bin/skuld's RUNPATH is $ORIGIN/../lib/skuld, and the dynamic linker
  resolves libllama and libggml there (not in the build's .deps);
- the example config passes `skuld check`, and served with the unit's own
  ExecStartPre/ExecStart commands (prefix and working directory as the unit
  says) answers a chat completion on the demo model through the installed
  llama.cpp backends; SIGHUP reloads (ExecReload), SIGTERM exits 0;
- the unit names the install prefix, a dedicated user, Restart=on-failure,
  ExecReload sending SIGHUP, ProtectSystem=strict, a stop timeout longer than
  the example config's drain_timeout, and `systemd-analyze verify` accepts it.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

BUILD = os.path.dirname(os.path.abspath(H.SKULD_BIN))
PREFIX = os.path.join(H.mkdtemp("skuld-install-"), "opt", "skuld")


def setUpModule():
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", PREFIX],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def unit_lines():
    with open(os.path.join(PREFIX, "lib/systemd/system/skuld.service")) as f:
        return [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith("#")]


def unit_value(key):
    vals = [ln.split("=", 1)[1] for ln in unit_lines() if ln.split("=", 1)[0] == key]
    if not vals:
        raise AssertionError("the unit has no %s=" % key)
    return vals[-1]


def installed_env():
    # Nothing of the build environment: no LD_LIBRARY_PATH, no SKULD_LLAMA_LIB_DIR.
    return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}


class LayoutTest(unittest.TestCase):
    def test_files(self):
        for rel in ("bin/skuld", "etc/skuld/skuld.yaml", "lib/systemd/system/skuld.service",
                    "share/doc/skuld/README.md"):
            self.assertTrue(os.path.isfile(os.path.join(PREFIX, rel)), rel)
        libs = sorted(os.listdir(os.path.join(PREFIX, "lib/skuld")))
        self.assertIn("libggml-base.so", libs)
        self.assertTrue(any(re.match(r"libllama(\.v[0-9.]+)?\.so$", n) for n in libs), libs)
        self.assertTrue(any(n.startswith("libggml-cpu-") for n in libs), libs)  # backends
        for n in libs:
            self.assertTrue(n.endswith(".so"), n)
        self.assertNotIn("libllama-common.so", libs)
        self.assertNotIn("llama-addon.node", libs)

    def test_runpath_and_resolution(self):
        binary = os.path.join(PREFIX, "bin/skuld")
        dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
        m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[([^\]]*)\]", dyn)
        self.assertIsNotNone(m, dyn)
        self.assertEqual(m.group(1), "$ORIGIN/../lib/skuld")
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True,
                             env=installed_env()).stdout
        self.assertNotIn("not found", ldd)
        libdir = os.path.realpath(os.path.join(PREFIX, "lib/skuld"))
        for lib in ("libllama", "libggml-base", "libggml."):
            line = [ln for ln in ldd.splitlines() if ln.strip().startswith(lib)]
            self.assertTrue(line, (lib, ldd))
            got = re.search(r"=> (/\S+)", line[0])  # e.g. PREFIX/bin/../lib/skuld/libllama...
            self.assertIsNotNone(got, line[0])
            self.assertEqual(os.path.dirname(os.path.realpath(got.group(1))), libdir, line[0])

    def test_version_from_elsewhere(self):
        p = subprocess.run([os.path.join(PREFIX, "bin/skuld"), "version"], capture_output=True,
                           text=True, cwd="/", env=installed_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("skuld "), p.stdout)


class UnitTest(unittest.TestCase):
    def test_unit_fields(self):
        self.assertEqual(unit_value("ExecStart"),
                         "%s/bin/skuld serve -c %s/etc/skuld/skuld.yaml" % (PREFIX, PREFIX))
        self.assertEqual(unit_value("User"), "skuld")
        self.assertEqual(unit_value("DynamicUser"), "yes")
        self.assertEqual(unit_value("Restart"), "on-failure")
        self.assertEqual(unit_value("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(unit_value("KillSignal"), "SIGTERM")
        self.assertEqual(unit_value("ProtectSystem"), "strict")
        self.assertEqual(unit_value("NoNewPrivileges"), "yes")
        self.assertEqual(unit_value("WorkingDirectory"), "/var/lib/skuld")
        self.assertEqual(unit_value("StateDirectory"), "skuld")
        with open(os.path.join(PREFIX, "etc/skuld/skuld.yaml")) as f:
            m = re.search(r"^\s+drain_timeout:\s*(\d+)s\b", f.read(), re.M)
        self.assertIsNotNone(m)
        self.assertGreater(int(unit_value("TimeoutStopSec")), int(m.group(1)))

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze missing")
    def test_systemd_analyze_verify(self):
        # verify wants the unit's name to end in .service and its binaries to exist.
        unit = os.path.join(PREFIX, "lib/systemd/system/skuld.service")
        p = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                           timeout=60)
        # Lines about the host's own units (not ours) are not this test's business.
        ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "skuld.service" in ln]
        self.assertEqual(ours, [], p.stdout + p.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_verify_catches_a_broken_unit(self):
        """The check above can fail: a unit naming a missing binary is refused."""
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze missing")
        d = H.mkdtemp("skuld-unit-")
        bad = os.path.join(d, "skuld.service")
        with open(os.path.join(PREFIX, "lib/systemd/system/skuld.service")) as f:
            text = f.read().replace(PREFIX + "/bin/skuld serve", d + "/missing serve")
        with open(bad, "w") as f:
            f.write(text)
        p = subprocess.run(["systemd-analyze", "verify", bad], capture_output=True, text=True,
                           timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)


class InstalledServeTest(unittest.TestCase):
    """The unit's commands, run by hand: its working directory, its ExecStartPre, its ExecStart."""

    def test_serve_example_config(self):
        work = H.mkdtemp("skuld-varlib-")
        pre = unit_value("ExecStartPre")
        self.assertTrue(pre.startswith("/bin/sh -c "), pre)
        for _ in range(2):  # the second start finds the model and writes nothing
            p = subprocess.run(shlex.split(pre), cwd=work, env=installed_env(),
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.isfile(os.path.join(work, "skuld-data/demo.gguf")))

        cfg = os.path.join(PREFIX, "etc/skuld/skuld.yaml")
        rc = subprocess.run([os.path.join(PREFIX, "bin/skuld"), "check", "-c", cfg],
                            capture_output=True, text=True, env=installed_env(), cwd=work)
        self.assertEqual(rc.returncode, 0, rc.stderr)

        port = H.free_port()
        cmd = shlex.split(unit_value("ExecStart")) + ["--listen", "127.0.0.1:%d" % port]
        err = open(os.path.join(work, "stderr"), "wb")
        proc = subprocess.Popen(cmd, cwd=work, env=installed_env(), stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL)
        err.close()
        try:
            def healthy():
                try:
                    return H.request(port, "GET", "/healthz", timeout=2).status == 200
                except OSError:
                    return proc.poll() is not None
            H.wait_until(healthy, 30, what="/healthz")
            self.assertIsNone(proc.poll(), open(os.path.join(work, "stderr")).read())
            r = H.chat(port, "hello", model="demo")
            self.assertEqual(r.status, 200, r.body)
            body = r.json()
            self.assertEqual(body["model"], "demo")
            # the example gives the demo model default_max_tokens: 64
            self.assertLessEqual(body["usage"]["completion_tokens"], 64)
            self.assertTrue(os.path.isfile(os.path.join(work, "skuld.db")))  # store in the cwd
            proc.send_signal(signal.SIGHUP)  # ExecReload
            H.wait_until(lambda: "reloading configuration" in
                         open(os.path.join(work, "stderr")).read(), 10, what="reload log")
            self.assertEqual(H.chat(port, "again", model="echo").status, 200)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
