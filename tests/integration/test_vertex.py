"""
The vertex provider through the real gateway to mock-upstream's token
endpoint and Vertex AI paths: a service-account key (a throwaway test key in
tests/fixtures/vertex) signs the JWT-bearer grant, the mock verifies its RS256
signature and claims and issues a token, and the gateway calls
.../publishers/google/models/M:generateContent (Gemini's body) and
.../publishers/anthropic/models/M:rawPredict (Anthropic's body with
anthropic_version and no model) with it. The token is fetched once and reused,
refreshed before it expires (a mock with a 2 s lifetime), a token endpoint that
refuses the key gives the client a 503 in OpenAI's shape, and a bad key file
is a config error.
"""
import json
import os
import time

import harness as H

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "vertex")
PUB = os.path.join(FIX, "test-sa-public.pem")
CLIENT = {"Authorization": "Bearer client-key-never-upstream"}
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


def sa_file(key_name="test-sa-private.pem", **drop):
    with open(os.path.join(FIX, key_name)) as f:
        key = f.read()
    sa = {"type": "service_account", "project_id": "test-proj",
          "client_email": "skuld-test@test-proj.iam.gserviceaccount.com",
          "private_key": key, "token_uri": "https://oauth2.googleapis.com/token"}
    for k in drop:
        sa.pop(k, None)
    return H.write_temp("sa.json", json.dumps(sa, indent=2))


def vertex_config(mock, key_name="test-sa-private.pem"):
    root = "http://%s:%d" % (H.HOST, mock.port)
    sa = sa_file(key_name)

    def prov(name, publisher):
        return {"name": name, "type": "vertex", "project": "test-proj", "location": "us-east5",
                "publisher": publisher, "credentials": "file:" + sa, "base_url": root,
                "token_url": root + "/oauth2/token", "health_check": "none"}
    return H.base_config(providers=[prov("vx-google", "google"),
                                    prov("vx-anthropic", "anthropic")],
                         models=[{"name": "vgem", "provider": "vx-google",
                                  "model": "gemini-2.0-flash"},
                                 {"name": "vclaude", "provider": "vx-anthropic",
                                  "model": "claude-sonnet-4@20250514"}])


class VertexBase(H.GatewayTest):
    mock_names = ()
    mock_args = ["--vertex-pubkey", PUB]
    key_name = "test-sa-private.pem"

    @classmethod
    def setUpClass(cls):
        cls.mock = H.Mock(args=cls.mock_args)
        super().setUpClass()
        cls.mocks = [cls.mock]

    @classmethod
    def config(cls):
        return vertex_config(cls.mock, cls.key_name)

    def chat(self, model, **extra):
        return H.post_json(self.port, "/v1/chat/completions", dict(CHAT, model=model, **extra),
                           headers=CLIENT)

    def tokens(self):
        return self.mock.stats()["by_path"].get("/oauth2/token", 0)


class VertexTest(VertexBase):
    def test_gemini_chat(self):
        r = self.chat("vgem")
        self.assertEqual(r.status, 200, r.body)
        o = r.json()
        self.assertEqual(o["object"], "chat.completion")
        self.assertEqual(o["choices"][0]["message"]["content"].strip(), "c0 c1 c2 c3 c4")
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/projects/test-proj/locations/us-east5/publishers/"
                                       "google/models/gemini-2.0-flash:generateContent")
        self.assertRegex(last["headers"]["authorization"], r"^Bearer mvt\.\d+\.\d+$")
        self.assertIn("contents", last["body"])
        self.assertNotIn("x-goog-api-key", last["headers"])

    def test_gemini_stream(self):
        res = H.sse_request(self.port, dict(CHAT, model="vgem", stream=True), headers=CLIENT)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.complete and res.done, res.events)
        self.assertEqual(res.content().strip(), "c0 c1 c2 c3 c4")
        last = self.mock.last()
        self.assertTrue(last["path"].endswith("gemini-2.0-flash:streamGenerateContent"), last)
        self.assertEqual(last["query"], "alt=sse")

    def test_anthropic_chat(self):
        r = self.chat("vclaude")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "c0 c1 c2 c3 c4")
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/projects/test-proj/locations/us-east5/publishers/"
                                       "anthropic/models/claude-sonnet-4@20250514:rawPredict")
        self.assertEqual(last["body"]["anthropic_version"], "vertex-2023-10-16")
        self.assertNotIn("model", last["body"])
        self.assertNotIn("anthropic-version", last["headers"])
        self.assertNotIn("x-api-key", last["headers"])

    def test_anthropic_stream(self):
        res = H.sse_request(self.port, dict(CHAT, model="vclaude", stream=True), headers=CLIENT)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.complete and res.done, res.events)
        self.assertEqual(res.content().strip(), "c0 c1 c2 c3 c4")
        self.assertTrue(self.mock.last()["path"].endswith(":streamRawPredict"))

    def test_token_fetched_once_and_reused(self):
        before = self.tokens()
        self.assertGreaterEqual(before, 1)  # fetched at start, off the request path
        for _ in range(4):
            self.assertEqual(self.chat("vgem").status, 200)
            self.assertEqual(self.chat("vclaude").status, 200)
        self.assertEqual(self.tokens(), before)
        self.assertEqual(before, 1)  # one key (one account, one endpoint): one token


class VertexRefreshTest(VertexBase):
    mock_args = ["--vertex-pubkey", PUB, "--vertex-ttl", "2"]

    def test_refreshed_before_expiry(self):
        self.assertEqual(self.tokens(), 1)
        self.assertEqual(self.chat("vgem").status, 200)
        first = self.mock.last()["headers"]["authorization"]
        H.wait_until(lambda: self.tokens() >= 3, 10, what="two refreshes")
        for _ in range(3):  # never a request with an expired token
            r = self.chat("vgem")
            self.assertEqual(r.status, 200, r.body)
        self.assertNotEqual(self.mock.last()["headers"]["authorization"], first)


class VertexTokenFailureTest(VertexBase):
    key_name = "other-private.pem"  # a key the mock's public key does not verify

    def test_clear_503(self):
        for model in ("vgem", "vclaude"):
            r = self.chat(model)
            self.assertEqual(r.status, 503, r.body)
            e = r.json()["error"]
            self.assertEqual(e["code"], "upstream_auth_unavailable")
            self.assertIn("Vertex AI access token", e["message"])
            self.assertIn("HTTP 400: invalid_grant", e["message"])
            self.assertNotIn("PRIVATE KEY", r.body.decode() if isinstance(r.body, bytes)
                             else r.body)
        self.assertEqual(self.mock.stats()["by_path"].get(
            "/v1/projects/test-proj/locations/us-east5/publishers/google/models/"
            "gemini-2.0-flash:generateContent", 0), 0)

    def test_stream_clear_503(self):
        res = H.sse_request(self.port, dict(CHAT, model="vgem", stream=True), headers=CLIENT)
        self.assertEqual(res.status, 503)


class VertexConfigTest(H.unittest.TestCase):
    def check(self, provider):
        path = H.write_temp("c.yaml", {"providers": [provider],
                                       "models": [{"name": "m", "provider": "v", "model": "x"}]})
        return H.run_skuld(["check", "-c", path])

    def test_bad_configs(self):
        ok = {"name": "v", "type": "vertex", "project": "p1", "location": "us-central1",
              "publisher": "google", "credentials": "file:" + sa_file()}
        rc, out, err = self.check(ok)
        self.assertEqual(rc, 0, out + err)
        notjson = H.write_temp("bad.json", "{not json")
        for change, msg in (({"project": None}, "needs 'project'"),
                            ({"location": None}, "needs 'location'"),
                            ({"credentials": None}, "needs 'credentials'"),
                            ({"publisher": "meta"}, "publisher must be google"),
                            ({"location": "us central"}, "not a Vertex AI region"),
                            ({"credentials": "file:/nonexistent/sa.json"},
                             "cannot read the service-account key"),
                            ({"credentials": "file:" + notjson},
                             "cannot read the service-account key"),
                            ({"credentials": "file:" + sa_file(client_email=1)},
                             "no string 'client_email'"),
                            ({"credentials": "file:" + sa_file(private_key=1)},
                             "no string 'private_key'"),
                            ({"credentials": "file:" + sa_file(token_uri=1)},
                             "no string 'token_uri'"),
                            ({"credentials": "/plain/path.json"}, "credentials must be file:"),
                            ({"api_key": "k"}, "not api_key")):
            p = dict(ok, **change)
            p = {k: v for k, v in p.items() if v is not None}
            rc, out, err = self.check(p)
            self.assertEqual(rc, 1, (change, out, err))
            self.assertIn(msg, out + err)
            self.assertRegex(out + err, r":\d+:\d+")  # line:col
            self.assertNotIn("BEGIN PRIVATE KEY", out + err)

    def test_vertex_keys_refused_elsewhere(self):
        p = {"name": "v", "type": "openai", "base_url": "https://x", "project": "p"}
        rc, out, err = self.check(p)
        self.assertEqual(rc, 1)
        self.assertIn("project is only for provider type 'vertex'", out + err)


if __name__ == "__main__":
    H.main()
