"""Runtime routing weights (route/overlay.h) through /admin/weights: a model
group's share changes at once, on every worker, without a reload, and goes
back to the config's weights on DELETE. Bad ids and weights are refused
with the reason; only the master key may change them."""
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

MASTER = "weights-master-1"
AUTH = {"Authorization": "Bearer " + MASTER}


class WeightsTest(H.GatewayTest):
    mock_names = ()
    env = {"SKULD_TEST_MASTER": MASTER}

    @classmethod
    def config(cls):
        return ("server:\n  workers: 2\n  master_key: env:SKULD_TEST_MASTER\n"
                "providers:\n  - {name: b1, type: echo}\n  - {name: b2, type: echo}\n"
                "models:\n  - {name: grp, provider: b1, weight: 1}\n"
                "  - {name: grp, provider: b2, weight: 1}\n")

    def split(self, n=40):
        seen = collections.Counter()
        for _ in range(n):  # a new connection each: both workers answer
            r = H.chat(self.port, model="grp")
            self.assertEqual(r.status, 200, r.body)
            seen[r.headers["x-skuld-model"]] += 1
        return seen

    def admin(self, method, body=None, headers=AUTH):
        return H.request(self.port, method, "/admin/weights", body=body, headers=headers)

    def test_weights_change_the_split_without_a_reload(self):
        before = self.split()
        self.assertGreater(before["grp@b1"], 5, before)
        self.assertGreater(before["grp@b2"], 5, before)
        gen0 = self.admin("GET").json()["generation"]
        r = self.admin("PUT", {"weights": {"grp@b1": 0, "grp@b2": 1}})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["weights"], {"grp@b1": 0, "grp@b2": 1})
        self.assertEqual(r.json()["generation"], gen0 + 1)
        self.assertEqual(self.split(), {"grp@b2": 40})
        r = self.admin("PUT", {"weights": {"grp@b1": 3, "grp@b2": 0.0}})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.split(), {"grp@b1": 40})
        r = self.admin("DELETE")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["weights"], {})
        after = self.split()
        self.assertGreater(after["grp@b1"], 5, after)
        self.assertGreater(after["grp@b2"], 5, after)
        # nothing was reloaded: still the first snapshot
        models = H.request(self.port, "GET", "/admin/models", headers=AUTH).json()
        self.assertEqual(models["generation"], 1)

    def test_bad_requests(self):
        for body, where in (({"weights": {"nope": 1}}, "nope: no deployment has this id"),
                            ({"weights": {"grp@b1": -1}}, "grp@b1: the weight must be"),
                            ({"weights": {"grp@b1": "x"}}, "grp@b1: the weight must be"),
                            ({"weights": [1]}, "the body must be"),
                            ("not json", "the body must be")):
            r = self.admin("PUT", body)
            err = H.check_error_shape(self, r, 400, "invalid_weights")
            self.assertIn(where, err["message"])
        self.assertEqual(self.admin("POST", {}).status, 405)
        self.assertEqual(self.admin("PUT", {"weights": {}}, headers={}).status, 401)
        self.assertEqual(self.admin("GET").json()["weights"], {})  # nothing was published


if __name__ == "__main__":
    H.main()
