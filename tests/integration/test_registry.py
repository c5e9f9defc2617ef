"""
Model registry, store and health checker at the gateway level (issue 3):

- `skuld check` prints every error of a file with three distinct errors as
  FILE:LINE:COL and exits 1; a valid file exits 0.
- A model registered through POST /admin/models survives a restart;
  registering it twice changes nothing; filters (provider, capability, tag)
  return the right sets; deleting works, and a model from the file cannot be
  deleted through the API.
- kill -9 during a burst of registrations loses nothing that was
  acknowledged (2xx) to the client.
- The health checker probes every deployment, reports availability and
  uptime in /admin/models and metrics, and persists them.
Every registry case runs on SQLite and on a real PostgreSQL server started
on a temporary directory and free port.
"""
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import pgserver  # noqa: E402

MASTER = "registry-master-4242"
AUTH = {"Authorization": "Bearer " + MASTER}


def config(mock, store_url, extra=""):
    return ("server:\n  workers: 2\n  master_key: env:SKULD_TEST_MASTER\n  health_interval: 200ms\n"
            "store:\n  url: '%s'\n"
            "providers:\n  - {name: mock, type: openai, base_url: '%s'}\n"
            "  - {name: other, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
            "  - {name: chatprobe, type: openai, base_url: '%s', health_check: chat}\n"
            "  - {name: noprobe, type: openai, base_url: 'http://127.0.0.1:1/v1', health_check: none}\n"
            "models:\n  - {name: filemodel, provider: mock, tags: [file]}\n%s"
            % (store_url, mock.base_url, mock.base_url, extra))


class RegistryCases:
    """Mixed into one H.MockTest per backend; subclasses set store_url()."""

    def start(self, extra=""):
        return H.Skuld(config(self.mock, self.store_url(), extra),
                       env={"SKULD_TEST_MASTER": MASTER})

    def admin(self, sk, method, path, body=None):
        return H.request(sk.port, method, path, body=body, headers=AUTH)

    def names(self, sk, query=""):
        r = self.admin(sk, "GET", "/admin/models" + query)
        self.assertEqual(r.status, 200, r.text())
        return sorted(m["name"] for m in r.json()["data"])

    def test_register_survives_restart_and_is_idempotent(self):
        sk = self.start()
        spec = {"name": "rt-a", "provider": "mock", "model": "mock-model-1",
                "capabilities": ["chat", "vision"], "tags": ["fast"], "price": {"input": 1.5},
                "context_window": 8192, "region": "eu-west"}
        r = self.admin(sk, "POST", "/admin/models", spec)
        self.assertEqual(r.status, 201, r.text())
        self.assertTrue(r.json()["persisted"])
        r = self.admin(sk, "POST", "/admin/models", spec)  # again: nothing changes
        self.assertEqual(r.status, 200, r.text())
        self.assertEqual(r.json(), {"changed": False})
        self.assertEqual(self.names(sk), ["filemodel", "rt-a"])
        # it serves traffic like a file model
        self.assertEqual(H.chat(sk.port, model="rt-a").status, 200)
        self.assertEqual(sk.stop(), 0)

        sk = self.start()  # restart: restored from the store
        self.assertEqual(self.names(sk), ["filemodel", "rt-a"])
        m = self.admin(sk, "GET", "/admin/models/rt-a").json()
        self.assertEqual(m["source"], "runtime")
        self.assertEqual(m["capabilities"], ["chat", "vision"])
        self.assertEqual(m["price"]["input"], 1.5)
        self.assertEqual(m["context_window"], 8192)
        self.assertEqual(m["region"], "eu-west")
        self.assertEqual(H.chat(sk.port, model="rt-a").status, 200)
        # a changed spec is an update, not a duplicate
        spec["tags"] = ["slow"]
        r = self.admin(sk, "POST", "/admin/models", spec)
        self.assertEqual(r.status, 200, r.text())
        self.assertEqual(self.admin(sk, "GET", "/admin/models/rt-a").json()["tags"], ["slow"])
        # delete; a file model cannot be deleted through the API
        self.assertEqual(self.admin(sk, "DELETE", "/admin/models/filemodel").status, 409)
        self.assertEqual(self.admin(sk, "DELETE", "/admin/models/nope").status, 404)
        self.assertEqual(self.admin(sk, "DELETE", "/admin/models/rt-a").status, 200)
        self.assertEqual(self.names(sk), ["filemodel"])
        self.assertEqual(H.chat(sk.port, model="rt-a").status, 404)
        self.assertEqual(sk.stop(), 0)
        sk = self.start()
        self.assertEqual(self.names(sk), ["filemodel"])  # the delete persisted
        self.assertEqual(sk.stop(), 0)

    def test_filters_and_validation(self):
        sk = self.start()
        specs = [
            {"name": "f-1", "provider": "mock", "capabilities": ["chat", "tools"], "tags": ["a"]},
            {"name": "f-2", "provider": "mock", "capabilities": ["embeddings"], "tags": ["a", "b"]},
            {"name": "f-3", "provider": "other", "capabilities": ["chat", "vision"], "tags": ["b"]},
        ]
        for s in specs:
            self.assertIn(self.admin(sk, "POST", "/admin/models", s).status, (200, 201))
        self.assertEqual(self.names(sk, "?provider=other"), ["f-3"])
        self.assertEqual(self.names(sk, "?provider=mock"), ["f-1", "f-2", "filemodel"])
        self.assertEqual(self.names(sk, "?capability=vision"), ["f-3", "filemodel"])  # file: all
        self.assertEqual(self.names(sk, "?capability=tools&tag=a"), ["f-1"])
        self.assertEqual(self.names(sk, "?tag=b"), ["f-2", "f-3"])
        self.assertEqual(self.names(sk, "?tag=file"), ["filemodel"])
        H.check_error_shape(self, self.admin(sk, "GET", "/admin/models?capability=telepathy"), 400)
        # invalid registrations are refused with a positioned error; nothing stored
        r = self.admin(sk, "POST", "/admin/models", {"name": "bad", "provider": "nowhere"})
        H.check_error_shape(self, r, 400)
        self.assertIn("registry:1:", r.json()["error"]["message"])
        r = self.admin(sk, "POST", "/admin/models", {"name": "bad", "provider": "mock", "qualty": 1})
        H.check_error_shape(self, r, 400)
        self.assertIn("unknown key 'qualty'", r.json()["error"]["message"])
        r = self.admin(sk, "POST", "/admin/models", {"name": "filemodel", "provider": "mock"})
        H.check_error_shape(self, r, 400)  # a file name cannot be registered again
        H.check_error_shape(self, self.admin(sk, "POST", "/admin/models", "[1,2]"), 400)
        self.assertNotIn("bad", self.names(sk))
        for s in specs:
            self.assertEqual(self.admin(sk, "DELETE", "/admin/models/" + s["name"]).status, 200)
        self.assertEqual(sk.stop(), 0)

    def test_kill9_during_burst_loses_nothing_acknowledged(self):
        sk = self.start()
        acked, lock, stop = [], threading.Lock(), threading.Event()

        def writer(k):
            i = 0
            while not stop.is_set():
                name = "burst-%d-%d" % (k, i)
                i += 1
                try:
                    r = self.admin(sk, "POST", "/admin/models", {"name": name, "provider": "mock"})
                except OSError:
                    return  # the gateway died mid-request: not acknowledged
                if r.status in (200, 201):
                    with lock:
                        acked.append(name)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        H.wait_until(lambda: len(acked) >= 40, 30, what="40 acknowledged registrations")
        os.kill(sk.pid, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(30)
        sk.proc.wait(10)
        sk2 = self.start()
        have = set(self.names(sk2))
        missing = [n for n in acked if n not in have]
        self.assertEqual(missing, [], "acknowledged but lost after kill -9")
        for n in have - {"filemodel"}:  # clean up for the other tests
            self.admin(sk2, "DELETE", "/admin/models/" + n)
        self.assertEqual(sk2.stop(), 0)

    def test_health_checker(self):
        sk = self.start()
        # 'filemodel' is reachable; a model on a closed port is not
        self.assertEqual(self.admin(sk, "POST", "/admin/models",
                                    {"name": "deadend", "provider": "other"}).status, 201)

        def health(name):
            return self.admin(sk, "GET", "/admin/models/" + name).json()["health"]

        H.wait_until(lambda: health("deadend")["probes"] >= 3 and health("filemodel")["probes"] >= 3,
                     15, what="three probes each")
        good, bad = health("filemodel"), health("deadend")
        self.assertTrue(good["up"])
        self.assertEqual(good["uptime_pct"], 100.0)
        self.assertFalse(bad["up"])
        self.assertEqual(bad["successes"], 0)
        self.assertEqual(bad["uptime_pct"], 0.0)
        probes = self.mock.stats()["by_path"].get("/v1/models", 0)
        self.assertGreaterEqual(probes, 3)  # the probe is the models list
        m = sk.metrics()
        self.assertRegex(m, r'skuld_deployment_up\{model="deadend",provider="other"\} 0')
        self.assertRegex(m, r'skuld_deployment_up\{model="filemodel",provider="mock"\} 1')
        # method "chat": a one-token completion; method "none": never probed, reported up
        for spec in ({"name": "viachat", "provider": "chatprobe", "model": "probe-model"},
                     {"name": "unprobed", "provider": "noprobe"}):
            self.assertEqual(self.admin(sk, "POST", "/admin/models", spec).status, 201)
        H.wait_until(lambda: health("viachat")["probes"] >= 2, 15, what="chat probes")
        self.assertTrue(health("viachat")["up"])
        prompts = self.mock.prompts()
        self.assertGreaterEqual(prompts.get("ping", 0), 2)
        time.sleep(0.5)
        self.assertEqual(health("unprobed")["probes"], 0)
        self.assertTrue(health("unprobed")["up"])
        for n in ("viachat", "unprobed"):
            self.assertEqual(self.admin(sk, "DELETE", "/admin/models/" + n).status, 200)
        self.assertEqual(sk.stop(), 0)
        sk = self.start("")  # persisted: counts continue from the stored values
        self.assertGreaterEqual(self.admin(sk, "GET", "/admin/models/deadend").json()
                                ["health"]["probes"], bad["probes"])
        self.assertEqual(self.admin(sk, "DELETE", "/admin/models/deadend").status, 200)
        self.assertEqual(sk.stop(), 0)


class SqliteRegistryTest(RegistryCases, H.MockTest):
    def store_url(self):
        if not hasattr(self.__class__, "_db"):
            self.__class__._db = os.path.join(H.mkdtemp("skuld-reg-"), "skuld.db")
        return "sqlite://" + self._db


class PostgresRegistryTest(RegistryCases, H.MockTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = pgserver.PgServer()
        cls.pg.start()  # fails (not skips) when PostgreSQL cannot start: CI installs it

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()
        super().tearDownClass()

    def store_url(self):
        return self.pg.url


class CheckCommandTest(H.unittest.TestCase):
    def test_three_errors_with_positions(self):
        d = H.mkdtemp("skuld-check-")
        bad = H.write_temp("bad.yaml", "server:\n  lisen: 127.0.0.1:1\n  connect_timeout: soon\n"
                           "providers:\n  - {name: p, type: openai, base_url: 'http://h/v1'}\n"
                           "models:\n  - {name: m, provider: nowhere}\n", d)
        rc, out, err = H.run_skuld(["check", "-c", bad])
        self.assertEqual(rc, 1)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 3, err)
        self.assertEqual(lines[0], bad + ":2:3: unknown key 'lisen' in server (did you mean 'listen'?)")
        self.assertTrue(lines[1].startswith(bad + ":3:20: connect_timeout: invalid duration 'soon'"),
                        lines[1])
        self.assertEqual(lines[2], bad + ":7:25: provider 'nowhere' is not defined in providers")
        good = H.write_temp("good.yaml",
                            "providers:\n  - {name: p, type: openai, base_url: 'http://h/v1'}\n"
                            "models:\n  - {name: m, provider: p}\n", d)
        rc, out, err = H.run_skuld(["check", "-c", good])
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")


if __name__ == "__main__":
    H.unittest.main()
