"""
Virtual API keys (issue 8): admin API and CLI, auth.required, key sources
(Authorization: Bearer, x-api-key), revoke, rotate, expiry, model allowlist,
persistence across restart, self-service usage, attribution in the access log.
"""

import json
import os
import sqlite3
import time
import unittest

import harness
from harness import Mock, Skuld, request, run_skuld, wait_until

MASTER = "mk-keys-test-0123456789"
ADMIN = {"Authorization": "Bearer " + MASTER}


def chat_body(model="gpt-test"):
    return {"model": model, "messages": [{"role": "user", "content": "hi there"}],
            "max_tokens": 16}


class Keys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.dir = harness.mkdtemp("skuld-keys-")
        cls.db = os.path.join(cls.dir, "skuld.db")
        cls.cfg = {
            "server": {"workers": 2, "master_key": "env:SKULD_MK"},
            "store": {"url": "sqlite://" + cls.db},
            "auth": {"required": True},
            "providers": [{"name": "mock", "type": "openai", "base_url": cls.mock.base_url}],
            "models": [
                {"name": "gpt-test", "provider": "mock", "model": "mock-model-1",
                 "price": {"input": 2, "output": 4}},
                {"name": "gpt-other", "provider": "mock", "model": "mock-model-2"},
            ],
            "budgets": {"teams": [{"name": "growth", "budget_usd": 50, "period": "monthly"}]},
        }
        cls.env = {"SKULD_MK": MASTER}
        cls.s = Skuld(cls.cfg, env=cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        cls.mock.stop()

    def create(self, **opts):
        r = request(self.s.port, "POST", "/admin/keys", opts, ADMIN)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def chat(self, headers, model="gpt-test"):
        return request(self.s.port, "POST", "/v1/chat/completions", chat_body(model), headers)

    def test_required_and_sources(self):
        r = self.chat({})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["error"]["type"], "authentication_error")
        self.assertEqual(self.chat({"Authorization": "Bearer sk-nope"}).status, 401)
        k = self.create(name="sources")
        self.assertTrue(k["key"].startswith("sk-"))
        self.assertEqual(self.chat({"Authorization": "Bearer " + k["key"]}).status, 200)
        self.assertEqual(self.chat({"x-api-key": k["key"]}).status, 200)
        # Anthropic clients: x-api-key on /v1/messages
        r = request(self.s.port, "POST", "/v1/messages",
                    {"model": "gpt-test", "max_tokens": 8,
                     "messages": [{"role": "user", "content": "hi"}]}, {"x-api-key": k["key"]})
        self.assertEqual(r.status, 200, r.body)
        r = request(self.s.port, "POST", "/v1/messages",
                    {"model": "gpt-test", "max_tokens": 8,
                     "messages": [{"role": "user", "content": "hi"}]}, {})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["type"], "error")  # Anthropic's error shape there
        self.assertEqual(request(self.s.port, "GET", "/v1/models", None,
                                 {"Authorization": "Bearer " + k["key"]}).status, 200)
        self.assertEqual(request(self.s.port, "GET", "/v1/models").status, 401)
        # health and metrics stay open
        self.assertEqual(request(self.s.port, "GET", "/healthz").status, 200)

    def test_list_get_revoke(self):
        k = self.create(name="lister", team="t1", user="u1", rpm=7)
        r = request(self.s.port, "GET", "/admin/keys", None, ADMIN)
        self.assertEqual(r.status, 200)
        ids = [x["id"] for x in r.json()["data"]]
        self.assertIn(k["id"], ids)
        self.assertNotIn(k["key"], r.text())
        one = request(self.s.port, "GET", "/admin/keys/" + k["id"], None, ADMIN).json()
        self.assertEqual(one["rpm"], 7)
        self.assertEqual(one["team"], "t1")
        self.assertEqual(one["prefix"], k["key"][:11])
        h = {"Authorization": "Bearer " + k["key"]}
        self.assertEqual(self.chat(h).status, 200)
        r = request(self.s.port, "POST", "/admin/keys/%s/revoke" % k["id"], None, ADMIN)
        self.assertEqual(r.status, 200, r.body)
        r = self.chat(h)
        self.assertEqual(r.status, 401)
        self.assertIn("revoked", r.json()["error"]["message"])
        self.assertEqual(request(self.s.port, "GET", "/admin/keys/key_doesnotexist", None,
                                 ADMIN).status, 404)

    def test_rotate(self):
        k = self.create(name="rot")
        old = {"Authorization": "Bearer " + k["key"]}
        self.assertEqual(self.chat(old).status, 200)
        r = request(self.s.port, "POST", "/admin/keys/%s/rotate" % k["id"], None, ADMIN)
        self.assertEqual(r.status, 200, r.body)
        new = r.json()
        self.assertEqual(new["id"], k["id"])
        self.assertNotEqual(new["key"], k["key"])
        self.assertEqual(self.chat(old).status, 401)
        self.assertEqual(self.chat({"Authorization": "Bearer " + new["key"]}).status, 200)

    def test_expiry_and_models(self):
        k = self.create(expires_at=int(time.time()) - 1)
        self.assertEqual(self.chat({"Authorization": "Bearer " + k["key"]}).status, 401)
        k = self.create(models=["gpt-other"])
        h = {"Authorization": "Bearer " + k["key"]}
        r = self.chat(h, "gpt-test")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()["error"]["code"], "model_not_allowed")
        self.assertEqual(self.chat(h, "gpt-other").status, 200)
        bad = request(self.s.port, "POST", "/admin/keys", {"rpm": "lots"}, ADMIN)
        self.assertEqual(bad.status, 400)

    def test_usage_and_attribution(self):
        k = self.create(team="growth", user="ann", budget_usd=5)
        h = {"Authorization": "Bearer " + k["key"]}
        r = self.chat(h)
        self.assertEqual(r.status, 200)
        rid = r.headers["x-request-id"]
        u = request(self.s.port, "GET", "/v1/key/usage", None, h)
        self.assertEqual(u.status, 200, u.body)
        usage = u.json()
        self.assertEqual(usage["id"], k["id"])
        self.assertEqual(usage["budget_usd"], 5)
        self.assertGreater(usage["spend_usd"], 0)
        self.assertEqual(usage["reserved_usd"], 0)
        self.assertEqual(usage["instance"]["requests"], 1)
        admin_view = request(self.s.port, "GET", "/admin/keys/%s/usage" % k["id"], None,
                             ADMIN).json()
        self.assertEqual(admin_view["spend_usd"], usage["spend_usd"])
        # GET /admin/budgets: the key's and the team's budget with this period's spend
        b = request(self.s.port, "GET", "/admin/budgets", None, ADMIN)
        self.assertEqual(b.status, 200, b.body)
        self.assertEqual(b.json()["source"], "local")
        rows = b.json()["data"]
        krow = [x for x in rows if x["scope"] == "key" and x["id"] == k["id"]]
        self.assertEqual(len(krow), 1, rows)
        self.assertEqual((krow[0]["team"], krow[0]["budget_usd"], krow[0]["period"]),
                         ("growth", 5, "monthly"))
        self.assertEqual(krow[0]["spend_usd"], usage["spend_usd"])
        self.assertEqual(krow[0]["reserved_usd"], 0)
        self.assertAlmostEqual(krow[0]["remaining_usd"], 5 - usage["spend_usd"], places=8)
        self.assertEqual(krow[0]["reset_at"], usage["reset_at"])
        trow = [x for x in rows if x["scope"] == "team" and x["team"] == "growth"]
        self.assertEqual(len(trow), 1, rows)
        self.assertEqual(trow[0]["budget_usd"], 50)
        self.assertGreaterEqual(trow[0]["spend_usd"], usage["spend_usd"])
        self.assertNotIn(k["key"], b.text())
        self.assertEqual(request(self.s.port, "GET", "/admin/budgets", None, h).status, 403)
        self.assertEqual(request(self.s.port, "GET", "/admin/budgets", None, None).status, 401)
        line = self.s.log_for(rid)[0]
        self.assertEqual(line["key_id"], k["id"])
        self.assertEqual(line["team"], "growth")
        self.assertEqual(line["user"], "ann")
        self.assertAlmostEqual(line["cost_usd"], usage["spend_usd"], places=9)
        # the spend log row, through the store writer
        def row():
            con = sqlite3.connect(self.db, timeout=10)
            try:
                return con.execute("SELECT key_id, team, user_name, model, prompt_tokens, "
                                   "completion_tokens, cost_usd, status FROM spend_log "
                                   "WHERE request_id = ?", (rid,)).fetchone()
            finally:
                con.close()
        rw = wait_until(row, 5, what="spend row")
        self.assertEqual(rw[:4], (k["id"], "growth", "ann", "gpt-test"))
        self.assertEqual(rw[7], 200)
        self.assertAlmostEqual(rw[6], usage["spend_usd"], places=9)

    def test_cli_and_restart(self):
        rc, out, err = run_skuld(["keys", "create", "-c", self.s.config_path, "--name", "cli",
                                  "--team", "ops", "--rpm", "50"], env=self.env)
        self.assertEqual(rc, 0, err)
        k = json.loads(out)
        rc, out, err = run_skuld(["keys", "list", "-c", self.s.config_path], env=self.env)
        self.assertEqual(rc, 0, err)
        listed = [json.loads(x) for x in out.splitlines()]
        self.assertIn(k["id"], [x["id"] for x in listed])
        self.assertNotIn(k["key"], out)
        # the running instance picks CLI changes up (periodic refresh)
        h = {"Authorization": "Bearer " + k["key"]}
        wait_until(lambda: self.chat(h).status == 200, 12, what="CLI key usable")
        admin_made = self.create(name="survivor")
        # restart: keys come back from the store
        self.s.stop()
        self.s.start()
        self.assertEqual(self.chat(h).status, 200)
        self.assertEqual(self.chat({"Authorization": "Bearer " + admin_made["key"]}).status, 200)
        rc, out, err = run_skuld(["keys", "revoke", k["id"], "-c", self.s.config_path],
                                 env=self.env)
        self.assertEqual(rc, 0, err)
        wait_until(lambda: self.chat(h).status == 401, 12, what="CLI revoke effective")


if __name__ == "__main__":
    harness.main()
