"""
`skuld pull` against a local HTTP server this test starts (http.server,
with Range support and a switch that cuts a transfer half-way): progress
lines (plain when not a terminal, a redrawn bar on a pty), resume with Range
after an interrupted transfer, a checksum mismatch rejected with no file left
under the final name, a server that ignores Range (restart from byte 0 with
the whole file's total), a 206 for the wrong range, redirects, HTTP errors
with and without a body (status, reason and the body's first line, capped;
no .part left, except an earlier run's bytes on a transient error), and
`--catalog FILE auto` picking by available memory.
"""
import hashlib
import http.server
import os
import pty
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

BLOB = os.urandom(3 * 1024 * 1024 + 12345)
SHA = hashlib.sha256(BLOB).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = {"cut_once": False, "ignore_range": False, "wrong_range": False, "ranges": [],
             "gets": 0}

    def log_message(self, *a):
        pass

    def answer(self, status, body, ctype="text/plain; charset=utf-8", extra=()):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.state
        st["gets"] += 1
        m = re.match(r"/error/(\d+)/(\w+)/", self.path)
        if m:  # /error/STATUS/KIND/name.gguf: an error answer with a body of that kind
            bodies = {
                "text": b"\r\n  first line of the error  \nsecond line\n",
                "html": b"<html><body>\n<h1>Not here</h1>\n</body></html>\n",
                "long": ("\u00e9" * 400).encode() + b"\n",  # 800 bytes of 2-byte UTF-8
                "ctrl": b"bad \x1b[31mred\x07 bytes\n",
                "big": b"x" * (1 << 20),
            }
            self.answer(int(m.group(1)), bodies[m.group(2)])
            return
        if self.path.startswith("/redirect/"):
            self.answer(302, b"<a href=...>moved</a>",
                        extra=[("Location", "/models/" + self.path.split("/")[-1])])
            return
        if not self.path.startswith("/models/"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = self.headers.get("Range")
        st["ranges"].append(rng)
        start = 0
        m = re.match(r"bytes=(\d+)-$", rng or "")
        if m and not st["ignore_range"]:
            start = int(m.group(1))
            if st["wrong_range"]:
                start = 0
            if start >= len(BLOB):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(BLOB))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(BLOB) - 1, len(BLOB)))
        else:
            self.send_response(200)
        body = BLOB[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if st["cut_once"]:
            st["cut_once"] = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the transfer dies half-way
            return
        for i in range(0, len(body), 256 * 1024):
            self.wfile.write(body[i:i + 256 * 1024])


class PullTest(H.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cls.srv.handle_error = lambda *a: None  # the cut transfer resets its connection
        cls.base = "http://127.0.0.1:%d" % cls.srv.server_address[1]
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()

    def setUp(self):
        Handler.state.update(cut_once=False, ignore_range=False, wrong_range=False, ranges=[],
                             gets=0)
        self.dir = H.mkdtemp("skuld-pull-")

    def path(self, name="model.gguf"):
        return os.path.join(self.dir, name)

    def read(self, p):
        with open(p, "rb") as f:
            return f.read()

    def test_download_with_checksum_and_plain_progress(self):
        rc, out, err = H.run_skuld(["pull", self.base + "/models/model.gguf?x=1", "-o", self.dir,
                                    "--sha256", SHA])
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.read(self.path()), BLOB)
        self.assertFalse(os.path.exists(self.path() + ".part"))
        self.assertIn("sha256 verified", out)
        # not a terminal: plain lines, no carriage returns
        lines = err.splitlines()
        self.assertIn("model.gguf: 100% (3.0 MiB of 3.0 MiB)", lines)
        for l in lines:
            self.assertRegex(l, r"^model.gguf: \d+% \(\d+\.\d MiB of 3\.0 MiB\)$")
        self.assertNotIn("\r", err)
        # again: already there, nothing fetched
        gets = Handler.state["gets"]
        rc, out, err = H.run_skuld(["pull", self.base + "/models/model.gguf", "-o", self.dir])
        self.assertEqual(rc, 0, err)
        self.assertIn("already present", out)
        self.assertEqual(Handler.state["gets"], gets)

    def test_resume_after_interrupted_transfer(self):
        Handler.state["cut_once"] = True
        url = self.base + "/models/model.gguf"
        rc, out, err = H.run_skuld(["pull", url, "-o", self.dir, "--sha256", SHA])
        self.assertNotEqual(rc, 0)
        self.assertIn("interrupted", err)
        self.assertFalse(os.path.exists(self.path()))
        part = self.read(self.path() + ".part")
        self.assertTrue(0 < len(part) < len(BLOB))
        self.assertEqual(part, BLOB[:len(part)])
        rc, out, err = H.run_skuld(["pull", url, "-o", self.dir, "--sha256", SHA])
        self.assertEqual(rc, 0, err)
        self.assertEqual(Handler.state["ranges"][-1], "bytes=%d-" % len(part))
        self.assertIn("resuming at byte %d" % len(part), err)
        self.assertEqual(self.read(self.path()), BLOB)
        self.assertFalse(os.path.exists(self.path() + ".part"))

    def test_server_ignoring_range_restarts(self):
        # 2 MiB of garbage: with its length counted, totals would read 5.0 MiB
        with open(self.path() + ".part", "wb") as f:
            f.write(b"garbage that must not survive" * 72316)
        Handler.state["ignore_range"] = True
        rc, out, err = H.run_skuld(["pull", self.base + "/models/model.gguf", "-o", self.dir,
                                    "--sha256", SHA])
        self.assertEqual(rc, 0, err)
        self.assertEqual(Handler.state["ranges"], ["bytes=2097164-"])
        self.assertEqual(self.read(self.path()), BLOB)
        self.assertIn("resuming at byte 2097164", err)
        self.assertIn("fetched whole from byte 0", err)
        progress = [l for l in err.splitlines() if re.match(r"^model.gguf: \d+%", l)]
        self.assertTrue(progress, err)
        for l in progress:  # the whole file's total, counted from zero
            self.assertRegex(l, r"^model.gguf: \d+% \(\d+\.\d MiB of 3\.0 MiB\)$")
        self.assertEqual(progress[-1], "model.gguf: 100% (3.0 MiB of 3.0 MiB)")
        self.assertIn("%s: %d bytes, sha256 verified" % (self.path(), len(BLOB)), out)
        self.assertFalse(os.path.exists(self.path() + ".part"))

    def test_wrong_range_is_refused(self):
        with open(self.path() + ".part", "wb") as f:
            f.write(BLOB[:1000])
        Handler.state["wrong_range"] = True
        rc, out, err = H.run_skuld(["pull", self.base + "/models/model.gguf", "-o", self.dir])
        self.assertEqual(rc, 1)
        self.assertIn("a range from byte 0, not the 1000 asked for", err)
        self.assertEqual(self.read(self.path() + ".part"), BLOB[:1000])  # untouched
        self.assertFalse(os.path.exists(self.path()))

    def test_redirect_followed(self):
        rc, out, err = H.run_skuld(["pull", self.base + "/redirect/model.gguf", "-o", self.dir])
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.read(self.path()), BLOB)  # not the redirect's own body

    def pull_error(self, url):
        rc, out, err = H.run_skuld(["pull", self.base + url, "-o", self.dir])
        self.assertEqual(rc, 1, err)
        msg = [l for l in err.splitlines() if "answered HTTP" in l]
        self.assertEqual(len(msg), 1, err)
        return msg[0], err

    def test_http_error_with_a_body(self):
        cases = [
            ("/error/404/text/model.gguf", "HTTP 404 Not Found: first line of the error"),
            ("/error/403/html/model.gguf", "HTTP 403 Forbidden: <html><body>"),
            ("/error/500/ctrl/model.gguf",
             "HTTP 500 Internal Server Error: bad ?[31mred? bytes"),
            ("/error/401/big/model.gguf", "HTTP 401 Unauthorized: " + "x" * 200),
        ]
        for url, want in cases:
            line, err = self.pull_error(url)
            self.assertTrue(line.endswith(want), (line, want))
            self.assertNotIn("second line", err)
            self.assertNotIn("\x1b", err)
            self.assertEqual(os.listdir(self.dir), [], url)  # no .part, no file
        # a long line is cut at 200 bytes, never inside a UTF-8 character
        line, _ = self.pull_error("/error/502/long/model.gguf")
        self.assertTrue(line.endswith("HTTP 502 Bad Gateway: " + "\u00e9" * 100), line)
        self.assertEqual(os.listdir(self.dir), [])

    def test_http_error_and_earlier_part(self):
        part = self.path() + ".part"
        # transient (503): an earlier run's bytes stay, to resume
        with open(part, "wb") as f:
            f.write(BLOB[:5000])
        line, err = self.pull_error("/error/503/text/model.gguf")
        self.assertIn("HTTP 503 Service Unavailable: first line of the error", line)
        self.assertIn("is kept (5000 bytes)", err)
        self.assertEqual(self.read(part), BLOB[:5000])
        # the file is gone (404): nothing is left
        line, err = self.pull_error("/error/404/text/model.gguf")
        self.assertNotIn("kept", err)
        self.assertEqual(os.listdir(self.dir), [])

    def test_checksum_mismatch_leaves_no_file(self):
        bad = "0" * 64
        rc, out, err = H.run_skuld(["pull", self.base + "/models/model.gguf", "-o", self.dir,
                                    "--sha256", bad])
        self.assertEqual(rc, 1)
        self.assertIn("checksum mismatch", err)
        self.assertIn(SHA, err)
        self.assertFalse(os.path.exists(self.path()))
        self.assertFalse(os.path.exists(self.path() + ".part"))
        self.assertEqual(os.listdir(self.dir), [])

    def test_http_error_and_usage(self):
        rc, out, err = H.run_skuld(["pull", self.base + "/nothing/model.gguf", "-o", self.dir])
        self.assertEqual(rc, 1)
        self.assertIn("answered HTTP 404 Not Found\n", err)  # no body: no text after it
        self.assertEqual(os.listdir(self.dir), [])
        rc, _, _ = H.run_skuld(["pull"])
        self.assertEqual(rc, 2)
        rc, _, _ = H.run_skuld(["pull", self.base + "/models/m.gguf", "--sha256", "xyz"])
        self.assertEqual(rc, 2)

    def test_progress_bar_on_a_terminal(self):
        master, slave = pty.openpty()
        p = subprocess.Popen([H.SKULD_BIN, "pull", self.base + "/models/model.gguf", "-o",
                              self.dir], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                d = os.read(master, 65536)
            except OSError:
                break
            if not d:
                break
            chunks.append(d)
        p.wait(30)
        p.stdout.close()
        os.close(master)
        tty = b"".join(chunks).decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, tty)
        self.assertIn("\r", tty)
        self.assertRegex(tty, r"\[#{30}\] 100%")

    def test_catalog_auto_picks_by_memory(self):
        cat = os.path.join(self.dir, "catalog.yaml")
        with open(cat, "w") as f:
            f.write("- name: llama-3-8b\n  url: %s/models/llama3.gguf\n  sha256: %s\n"
                    "  ram_gb: 8\n  kind: standard\n"
                    "- name: bitnet-2b\n  url: %s/models/bitnet.gguf\n  sha256: %s\n"
                    "  ram_gb: 1.5\n  kind: ternary\n" % (self.base, SHA, self.base, SHA))
        out_dir = os.path.join(self.dir, "m")
        rc, out, err = H.run_skuld(["pull", "--catalog", cat, "auto", "-o", out_dir],
                                   env={"SKULD_PULL_MEM_GB": "4"})
        self.assertEqual(rc, 0, err)
        self.assertIn("picking bitnet-2b", err)
        self.assertEqual(os.listdir(out_dir), ["bitnet.gguf"])
        rc, out, err = H.run_skuld(["pull", "--catalog", cat, "auto", "-o", out_dir],
                                   env={"SKULD_PULL_MEM_GB": "16"})
        self.assertEqual(rc, 0, err)
        self.assertIn("picking llama-3-8b", err)
        self.assertEqual(self.read(os.path.join(out_dir, "llama3.gguf")), BLOB)
        rc, out, err = H.run_skuld(["pull", "--catalog", cat, "auto", "-o", out_dir],
                                   env={"SKULD_PULL_MEM_GB": "0.5"})
        self.assertEqual(rc, 1)
        self.assertIn("no catalog entry fits", err)


if __name__ == "__main__":
    H.main()
