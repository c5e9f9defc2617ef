"""
Chaos (e): 50 reloads during load, each of a config file that really changed.

Each round rewrites the file (atomically, by rename) with a new model
`extra-<i>` and a new price on gpt-test, sends SIGHUP, and waits until
/v1/models lists the new model (so 50 distinct configs are served in turn;
the file change is also seen by inotify). 16 keep-alive clients (one request
in five streamed) run throughout: 0 client errors, at least 50 successful
reloads counted, and the spend log (SQLite) has exactly one row per request.
"""
import os
import signal
import time
import unittest

import chaos as C
from chaos import H

ROUNDS = 50


class Reloads(unittest.TestCase):
    def test_50_reloads_under_load(self):
        primary, backup = H.Mock(), H.Mock()
        primary.set_config({"latency_ms": 2})
        db = os.path.join(H.mkdtemp(), "spend.db")

        def config(i):
            cfg = C.chain_config([primary, backup], "sqlite://" + db)
            cfg["models"][0]["price"] = {"input": 1.0 + i / 100.0, "output": 2.0}
            if i:
                cfg["models"].append({"name": "extra-%d" % i, "provider": "p1"})
            return H.to_yaml(cfg) + "\n"

        gw = H.Skuld(config(0))
        load = C.Load(gw.port, "reload", min_requests=10000)
        try:
            s0 = H.metrics_parse(gw.metrics())[0]
            load.start()
            load.wait_done(500, 60)
            t0 = time.monotonic()
            for i in range(1, ROUNDS + 1):
                tmp = gw.config_path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(config(i))
                os.rename(tmp, gw.config_path)
                gw.signal(signal.SIGHUP)
                want = "extra-%d" % i
                H.wait_until(lambda: want in H.request(gw.port, "GET", "/v1/models").text(), 10,
                             what="model %s served after reload %d" % (want, i))
                time.sleep(0.05)
            reload_s = time.monotonic() - t0
            load.wait_done(load.done + 500, 60)
            load.stop()
            load.join(120)
            print(load.summary())
            s1 = H.metrics_parse(gw.metrics())[0]
            ok = (H.metric(s1, "skuld_config_reloads_total", result="ok") -
                  H.metric(s0, "skuld_config_reloads_total", result="ok"))
            failed = (H.metric(s1, "skuld_config_reloads_total", result="failed") -
                      H.metric(s0, "skuld_config_reloads_total", result="failed"))
            print("%d rounds in %.1f s: %d reloads ok, %d failed" % (ROUNDS, reload_s, ok, failed))
            self.assertEqual(load.errors, [], load.error_report())
            self.assertGreaterEqual(ok, ROUNDS)
            self.assertEqual(failed, 0)
            C.check_spend(self, load, lambda: C.sqlite_spend(db))
        finally:
            load.stop()
            rc = gw.stop()
            primary.stop()
            backup.stop()
        self.assertEqual(rc, 0)
        C.check_spend(self, load, lambda: C.sqlite_spend(db), settle=0)


if __name__ == "__main__":
    C.main()
