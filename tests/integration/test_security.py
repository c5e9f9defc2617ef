"""
Security of keys and auth (issue 8, must-show 4):
  - a planted virtual key and a planted provider secret appear nowhere in the
    database files or the logs (after successes, upstream errors, bad
    credentials, revocation, rotation);
  - a user key on /admin/* gets 403; key A reading key B's usage gets 404
    (its own: 200);
  - JWTs with alg none, the wrong key, expired, the wrong audience (or an
    algorithm outside the allowlist) get 401; a valid one maps team and user;
  - optional HMAC request signing: unsigned, stale or tampered -> 401.
"""

import base64
import glob
import hashlib
import hmac
import json
import os
import time
import unittest

import harness
from harness import Mock, Skuld, request, wait_until

MASTER = "mk-security-test-0123456789"
ADMIN = {"Authorization": "Bearer " + MASTER}
PROVIDER_SECRET = "prov-PLANTED-5ecret-7f3a9c1d2e4b"
JWT_SECRET = "jwt-hs256-secret-for-tests-0123456789abcdef"
HMAC_SECRET = "hmac-signing-secret-0123456789"


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def jwt(claims, key=JWT_SECRET, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    msg = (head + "." + body).encode()
    if alg == "none":
        return head + "." + body + "."
    dig = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return head + "." + body + "." + b64(hmac.new(key.encode(), msg, dig).digest())


def chat_body():
    return {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8}


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.dir = harness.mkdtemp("skuld-sec-")
        cls.db = os.path.join(cls.dir, "skuld.db")
        keyfile = os.path.join(cls.dir, "jwt.key")
        with open(keyfile, "w") as f:
            f.write(JWT_SECRET + "\n")
        cls.cfg = {
            "server": {"workers": 2, "master_key": "env:SKULD_MK"},
            "store": {"url": "sqlite://" + cls.db, "encryption_key": "env:STORE_KEY"},
            "auth": {"required": True,
                     "jwt": {"algorithms": ["HS256"], "issuer": "https://idp.test",
                             "audience": "skuld", "keys_file": keyfile}},
            "providers": [{"name": "mock", "type": "openai", "base_url": cls.mock.base_url,
                           "api_key": "env:PROV_SECRET"}],
            "models": [{"name": "gpt-test", "provider": "mock", "model": "m1",
                        "price": {"input": 1, "output": 1}}],
        }
        cls.env = {"SKULD_MK": MASTER, "PROV_SECRET": PROVIDER_SECRET,
                   "STORE_KEY": "store-encryption-passphrase-0123456789"}
        cls.s = Skuld(cls.cfg, env=cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        cls.mock.stop()

    def key(self, **opts):
        r = request(self.s.port, "POST", "/admin/keys", opts, ADMIN)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def chat(self, headers, b=None):
        return request(self.s.port, "POST", "/v1/chat/completions", b or chat_body(), headers)

    def test_1_planted_secrets_nowhere(self):
        k = self.key(name="planted", team="sec")
        planted = k["key"]
        h = {"Authorization": "Bearer " + planted}
        self.assertEqual(self.chat(h).status, 200)
        # the provider secret did reach the upstream (so it was really in use)
        self.assertIn(PROVIDER_SECRET, json.dumps(self.mock.last()["headers"]))
        b = chat_body()
        b["mock"] = {"status": 401}
        self.assertEqual(self.chat(h, b).status, 401)  # upstream auth error, relayed
        self.assertEqual(self.chat({"x-api-key": planted + "x"}).status, 401)
        self.assertEqual(self.chat({"Authorization": "Bearer " + planted[:-1]}).status, 401)
        self.assertEqual(request(self.s.port, "GET", "/admin/models", None, h).status, 403)
        r = request(self.s.port, "POST", "/admin/keys/%s/rotate" % k["id"], None, ADMIN)
        rotated = r.json()["key"]
        self.assertEqual(self.chat({"Authorization": "Bearer " + rotated}).status, 200)
        request(self.s.port, "POST", "/admin/keys/%s/revoke" % k["id"], None, ADMIN)
        self.assertEqual(self.chat({"Authorization": "Bearer " + rotated}).status, 401)
        self.s.stop()  # flush logs and the store; then read every file
        self.s.start()
        files = glob.glob(os.path.join(self.dir, "*")) + glob.glob(os.path.join(self.s.dir, "*"))
        self.assertTrue(any(f.endswith("skuld.db") for f in files))
        needles = [planted.encode(), rotated.encode(), PROVIDER_SECRET.encode(),
                   planted[3:].encode(), MASTER.encode()]
        scanned = 0
        for f in files:
            if not os.path.isfile(f) or f.endswith((".key", ".yaml")):
                continue
            with open(f, "rb") as fh:
                data = fh.read()
            scanned += len(data)
            for n in needles:
                self.assertNotIn(n, data, "%s found in %s" % (n[:12], f))
        self.assertGreater(scanned, 10000)
        # what the store does hold: the SHA-256 and the display prefix
        with open(self.db, "rb") as fh:
            data = fh.read()
        for extra in glob.glob(self.db + "-wal"):
            with open(extra, "rb") as fh:
                data += fh.read()
        self.assertIn(hashlib.sha256(rotated.encode()).hexdigest().encode(), data)

    def test_1b_provider_key_sealed_and_rotated(self):
        rotated = "prov-ROTATED-5ecret-0c0ffee0c0ffee"
        k = self.key()
        h = {"Authorization": "Bearer " + k["key"]}
        r = request(self.s.port, "PUT", "/admin/providers/mock/api_key", {"api_key": rotated}, h)
        self.assertEqual(r.status, 403)  # user keys cannot
        r = request(self.s.port, "PUT", "/admin/providers/nope/api_key", {"api_key": "x"}, ADMIN)
        self.assertEqual(r.status, 404)
        r = request(self.s.port, "PUT", "/admin/providers/mock/api_key", {"api_key": rotated},
                    ADMIN)
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["rotated"])
        # live without a restart: the next upstream call carries the new key
        self.assertEqual(self.chat(h).status, 200)
        self.assertIn(rotated, json.dumps(self.mock.last()["headers"]))
        self.assertNotIn(PROVIDER_SECRET, json.dumps(self.mock.last()["headers"]))
        # and after a restart (unsealed from the store)
        self.s.stop()
        for f in glob.glob(self.db + "*"):
            with open(f, "rb") as fh:
                self.assertNotIn(rotated.encode(), fh.read(), f)
        self.s.start()
        self.assertEqual(self.chat(h).status, 200)
        self.assertIn(rotated, json.dumps(self.mock.last()["headers"]))
        self.assertNotIn(rotated, self.s.stdout() + self.s.stderr())
        # back to the planted one, for the other tests
        r = request(self.s.port, "PUT", "/admin/providers/mock/api_key",
                    {"api_key": PROVIDER_SECRET}, ADMIN)
        self.assertEqual(r.status, 200, r.body)

    def test_2_user_key_on_admin_403(self):
        k = self.key()
        h = {"Authorization": "Bearer " + k["key"]}
        for method, path in (("GET", "/admin/models"), ("POST", "/admin/reload"),
                             ("GET", "/admin/keys"), ("POST", "/admin/keys"),
                             ("POST", "/admin/keys/%s/rotate" % k["id"])):
            r = request(self.s.port, method, path, {} if method == "POST" else None, h)
            self.assertEqual(r.status, 403, (method, path, r.body))
            self.assertEqual(r.json()["error"]["type"], "permission_error")
        # unknown credentials still get 401
        r = request(self.s.port, "GET", "/admin/models", None, {"Authorization": "Bearer nope"})
        self.assertEqual(r.status, 401)

    def test_3_usage_isolation(self):
        a, b = self.key(name="A"), self.key(name="B")
        ha = {"Authorization": "Bearer " + a["key"]}
        r = request(self.s.port, "GET", "/admin/keys/%s/usage" % b["id"], None, ha)
        self.assertEqual(r.status, 404)
        self.assertNotIn(b["id"], r.text())
        r = request(self.s.port, "GET", "/admin/keys/key_0000000000000000/usage", None, ha)
        self.assertEqual(r.status, 404)
        r = request(self.s.port, "GET", "/admin/keys/%s/usage" % a["id"], None, ha)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["id"], a["id"])
        r = request(self.s.port, "GET", "/admin/keys/%s" % b["id"], None, ha)
        self.assertEqual(r.status, 403)
        r = request(self.s.port, "GET", "/v1/key/usage", None, ha)
        self.assertEqual(r.json()["id"], a["id"])

    def test_4_jwt(self):
        now = int(time.time())
        good = {"iss": "https://idp.test", "aud": "skuld", "sub": "alice", "team": "red",
                "exp": now + 300}
        r = self.chat({"Authorization": "Bearer " + jwt(good)})
        self.assertEqual(r.status, 200, r.body)
        line = self.s.log_for(r.headers["x-request-id"])[0]
        self.assertEqual((line.get("team"), line.get("user")), ("red", "alice"))
        cases = {
            "alg none": jwt(good, alg="none"),
            "wrong key": jwt(good, key="not-the-right-secret-0123456789abcdef"),
            "expired": jwt(dict(good, exp=now - 5)),
            "wrong audience": jwt(dict(good, aud="someone-else")),
            "wrong issuer": jwt(dict(good, iss="https://evil.test")),
            "alg not allowed": jwt(good, alg="HS512"),
            "no exp": jwt({k: v for k, v in good.items() if k != "exp"}),
        }
        for name, tok in cases.items():
            r = self.chat({"Authorization": "Bearer " + tok})
            self.assertEqual(r.status, 401, name)
            self.assertEqual(r.json()["error"]["code"], "invalid_api_key", name)
        # a JWT is no admin credential
        r = request(self.s.port, "GET", "/admin/models", None,
                    {"Authorization": "Bearer " + jwt(good)})
        self.assertEqual(r.status, 403)

    def test_5_hmac_signing(self):
        cfg = dict(self.cfg)
        cfg["auth"] = {"required": False, "hmac_secret": "env:HMAC_SECRET", "hmac_window": "60s"}
        cfg["store"] = {"url": "sqlite://" + os.path.join(self.dir, "hmac.db")}
        s = Skuld(cfg, env=dict(self.env, HMAC_SECRET=HMAC_SECRET))
        try:
            body = json.dumps(chat_body())

            def signed(ts, b=body, path="/v1/chat/completions"):
                msg = "%s\nPOST\n%s\n%s" % (ts, path, b)
                sig = hmac.new(HMAC_SECRET.encode(), msg.encode(), hashlib.sha256).hexdigest()
                return {"x-skuld-timestamp": str(ts), "x-skuld-signature": sig,
                        "Content-Type": "application/json"}

            def post(h, b=body):
                return request(s.port, "POST", "/v1/chat/completions", b, h)

            now = int(time.time())
            self.assertEqual(post({}).status, 401)
            self.assertEqual(post(signed(now)).status, 200)
            self.assertEqual(post(signed(now - 3600)).status, 401)  # stale
            tampered = body.replace("hi", "ho")
            self.assertEqual(post(signed(now), tampered).status, 401)
        finally:
            s.stop()


if __name__ == "__main__":
    harness.main()
