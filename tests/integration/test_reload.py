"""
Config reload under load (issue 3): while chat requests and SSE streams flow
steadily through skuld, the config is reloaded 50 times through
POST /admin/reload, alternating a valid file (with a new model each time) and
an invalid one. Expected: zero failed or truncated requests; every invalid
file rejected with its errors (FILE:LINE:COL) and counted in
skuld_config_reload_failures_total; each new model list visible right after
its reload, on every worker; SIGHUP and a file change (inotify) reload too.
"""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

MASTER = "test-master-key-7c1"


def config_text(mock, extra_model, valid=True):
    models = "  - {name: stable, provider: mock, model: mock-model-1}\n"
    if extra_model:
        models += "  - {name: %s, provider: mock}\n" % extra_model
    text = ("server:\n  workers: 2\n  master_key: env:SKULD_TEST_MASTER\n"
            "providers:\n  - {name: mock, type: openai, base_url: '%s'}\nmodels:\n%s"
            % (mock.base_url, models))
    if not valid:
        # three distinct errors: unknown key, bad duration, unknown provider
        text += "  - {name: broken, provider: nowhere}\nlimitz: 1\n"
        text = text.replace("workers: 2", "workers: 2\n  connect_timeout: soon")
    return text


class ReloadTest(H.MockTest):
    def admin(self, sk, method, path, body=None):
        return H.request(sk.port, method, path, body=body,
                         headers={"Authorization": "Bearer " + MASTER})

    def write(self, sk, text):
        tmp = sk.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, sk.config_path)  # atomic replace, as editors and deploy tools do

    def model_ids(self, sk):
        r = H.request(sk.port, "GET", "/v1/models")
        self.assertEqual(r.status, 200)
        return [m["id"] for m in r.json()["data"]]

    def test_reload_under_load(self):
        sk = H.Skuld(config_text(self.mock, None), env={"SKULD_TEST_MASTER": MASTER})
        stop = threading.Event()
        failures, counts = [], {"plain": 0, "stream": 0}
        lock = threading.Lock()

        def plain_loop():
            while not stop.is_set():
                try:
                    r = H.chat(sk.port, model="stable")
                    ok = r.status == 200 and r.json()["choices"][0]["message"]["content"]
                except Exception as e:  # noqa: BLE001
                    ok, r = False, e
                with lock:
                    counts["plain"] += 1
                    if not ok:
                        failures.append(("plain", repr(r)[:300]))

        def stream_loop():
            while not stop.is_set():
                try:
                    res = H.sse_request(sk.port, H.stream_body(
                        model="stable", mock={"chunks": 5, "chunk_gap_ms": 20}))
                    content = [e.json()["choices"][0]["delta"].get("content")
                               for e in res.events[:-1]]
                    ok = (res.status == 200 and res.done and res.complete and not res.errors()
                          and [c for c in content if c] == ["c%d " % i for i in range(5)])
                except Exception as e:  # noqa: BLE001
                    ok, res = False, e
                with lock:
                    counts["stream"] += 1
                    if not ok:
                        failures.append(("stream", repr(res)[:300]))

        threads = [threading.Thread(target=plain_loop) for _ in range(2)]
        threads += [threading.Thread(target=stream_loop) for _ in range(3)]
        for t in threads:
            t.start()
        rejected = 0
        try:
            time.sleep(0.3)
            for i in range(50):
                if i % 2 == 0:
                    name = "dyn%d" % i
                    self.write(sk, config_text(self.mock, name))
                    r = self.admin(sk, "POST", "/admin/reload")
                    self.assertEqual(r.status, 200, r.text())
                    # visible right away, on every worker: fresh connections land
                    # on either worker through SO_REUSEPORT
                    for _ in range(6):
                        ids = self.model_ids(sk)
                        self.assertIn(name, ids)
                        self.assertNotIn("dyn%d" % (i - 2), ids)
                else:
                    self.write(sk, config_text(self.mock, "never%d" % i, valid=False))
                    r = self.admin(sk, "POST", "/admin/reload")
                    self.assertEqual(r.status, 400, r.text())
                    msg = r.json()["error"]["message"]
                    base = os.path.basename(sk.config_path)
                    # all three errors, each with its position
                    self.assertRegex(msg, base + r":\d+:\d+: connect_timeout: invalid duration")
                    self.assertRegex(msg, base + r":\d+:\d+: unknown key 'limitz'")
                    self.assertRegex(msg, base + r":\d+:\d+: provider 'nowhere' is not defined")
                    rejected += 1
                    self.assertNotIn("never%d" % i, self.model_ids(sk))
                    self.assertIn("dyn%d" % (i - 1), self.model_ids(sk))
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(failures, [], "failed or truncated requests during reloads")
        self.assertGreater(counts["plain"], 100)
        self.assertGreater(counts["stream"], 30)
        self.assertEqual(rejected, 25)
        samples, _ = H.metrics_parse(sk.metrics())
        fails = samples[("skuld_config_reload_failures_total", frozenset())]
        self.assertGreaterEqual(fails, 25)  # inotify may also have seen the bad files
        gen = samples[("skuld_config_generation", frozenset())]
        self.assertGreaterEqual(gen, 26)
        self.assertIn("reload of", sk.stderr())  # rejections are logged
        self.assertEqual(sk.stop(), 0)

    def test_sighup_and_file_change(self):
        sk = H.Skuld(config_text(self.mock, None), env={"SKULD_TEST_MASTER": MASTER})
        # a file change alone (inotify) reloads
        self.write(sk, config_text(self.mock, "by_inotify"))
        H.wait_until(lambda: "by_inotify" in self.model_ids(sk), 5, what="inotify reload")
        # SIGHUP reloads (an in-place rewrite)
        with open(sk.config_path, "w") as f:
            f.write(config_text(self.mock, "by_sighup"))
        sk.signal(signal.SIGHUP)
        H.wait_until(lambda: "by_sighup" in self.model_ids(sk), 5, what="SIGHUP reload")
        # an invalid file keeps the old snapshot serving
        self.write(sk, config_text(self.mock, "bad", valid=False))
        time.sleep(0.5)
        self.assertIn("by_sighup", self.model_ids(sk))
        self.assertEqual(H.chat(sk.port, model="stable").status, 200)
        self.assertEqual(sk.stop(), 0)

    def test_admin_auth(self):
        sk = H.Skuld(config_text(self.mock, None), env={"SKULD_TEST_MASTER": MASTER})
        r = H.request(sk.port, "POST", "/admin/reload")
        H.check_error_shape(self, r, 401)
        r = H.request(sk.port, "POST", "/admin/reload", headers={"Authorization": "Bearer wrong"})
        H.check_error_shape(self, r, 401)
        r = H.request(sk.port, "POST", "/admin/reload",
                      headers={"Authorization": "Bearer " + MASTER + "x"})
        H.check_error_shape(self, r, 401)
        self.assertEqual(self.admin(sk, "POST", "/admin/reload").status, 200)
        self.assertNotIn(MASTER, sk.stdout() + sk.stderr())
        self.assertEqual(sk.stop(), 0)


if __name__ == "__main__":
    H.unittest.main()
