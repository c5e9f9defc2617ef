"""
auth.jwt.jwks_url: the key set is fetched from an issuer's URL (a real HTTP
server on loopback here) at start, kept fresh every jwks_refresh, fetched
early when a token names an unknown kid (at most once per 10 s), and kept
when a fetch fails, answers an error or is over 1 MiB. Config errors: both or
neither of keys_file and jwks_url, a URL that is not http(s).
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SECRETS = {"a": b"jwks-key-a-0123456789abcdef0123456789", "b": b"jwks-key-b-0123456789abcdef01234567",
           "c": b"jwks-key-c-0123456789abcdef01234567"}


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def token(kid, secret=None):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps({"sub": "user-" + kid, "exp": int(time.time()) + 600}).encode())
    sig = hmac.new(secret or SECRETS[kid], (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def jwks(*kids):
    return {"keys": [{"kty": "oct", "kid": k, "k": b64(SECRETS[k])} for k in kids]}


class Issuer:
    """A JWKS endpoint whose answer the test changes: a document, a status, or a size."""

    def __init__(self):
        self.doc, self.status, self.raw, self.fetches = jwks("a"), 200, None, 0
        self.vary = False  # a document that differs at every fetch (same keys)
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                issuer.fetches += 1
                doc = dict(issuer.doc, fetch=issuer.fetches) if issuer.vary else issuer.doc
                body = issuer.raw if issuer.raw is not None else json.dumps(doc).encode()
                self.send_response(issuer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway stops reading an oversized set

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/.well-known/jwks.json" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def config(mock, url, refresh=None):
    cfg = H.base_config(mock)
    cfg["auth"] = {"required": True, "jwt": {"algorithms": ["HS256"], "jwks_url": url}}
    if refresh:
        cfg["auth"]["jwt"]["jwks_refresh"] = refresh
    return cfg


def status(sk, tok):
    return H.post_json(sk.port, "/v1/chat/completions",
                       {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
                       headers={"Authorization": "Bearer " + tok}).status


class JwksUrlTest(H.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = H.Mock()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def test_rotation_by_unknown_kid(self):
        iss = Issuer()
        sk = H.Skuld(config(self.mock, iss.url))  # refresh 10m: only kid misses fetch early
        try:
            self.assertEqual(iss.fetches, 1)  # at start, before serving
            self.assertEqual(status(sk, token("a")), 200)
            self.assertEqual(status(sk, token("a", b"not-the-key-0123456789abcdef")), 401)
            iss.doc = jwks("a", "b")  # the issuer rotates
            self.assertEqual(status(sk, token("b")), 401)  # not known yet: asks for a fetch
            H.wait_until(lambda: status(sk, token("b")) == 200, 10, what="kid b accepted")
            self.assertEqual(iss.fetches, 2)
            # more unknown kids within 10 s: no more fetches (a token cannot drive load)
            for _ in range(20):
                self.assertEqual(status(sk, token("c")), 401)
            time.sleep(0.5)
            self.assertEqual(iss.fetches, 2)
            self.assertEqual(status(sk, token("a")), 200)
        finally:
            rc = sk.stop()
            iss.stop()
        self.assertEqual(rc, 0)

    def test_failures_keep_the_last_set(self):
        iss = Issuer()
        iss.status = 500  # down at start: the gateway starts, JWTs are refused
        sk = H.Skuld(config(self.mock, iss.url, refresh="1s"))
        try:
            self.assertEqual(status(sk, token("a")), 401)
            self.assertIn("cannot fetch the key set", sk.stderr())
            iss.status = 200  # up: the retry (1 s, then 2 s...) picks it up
            H.wait_until(lambda: status(sk, token("a")) == 200, 10, what="first set")
            iss.status = 503  # failing fetches keep the last good set
            n = iss.fetches
            H.wait_until(lambda: iss.fetches >= n + 2, 10, what="two failed refreshes")
            self.assertEqual(status(sk, token("a")), 200)
            iss.status, iss.raw = 200, b"{\"keys\":[" + b" " * (1 << 20) + b"]}"  # over 1 MiB
            n = iss.fetches
            H.wait_until(lambda: iss.fetches >= n + 1 and "larger than" in sk.stderr(), 10,
                         what="an oversized set refused")
            self.assertEqual(status(sk, token("a")), 200)
            iss.raw, iss.doc = None, jwks("b")  # key a retired: refreshes drop it
            H.wait_until(lambda: status(sk, token("b")) == 200, 10, what="kid b by refresh")
            self.assertEqual(status(sk, token("a")), 401)
        finally:
            rc = sk.stop()
            iss.stop()
        self.assertEqual(rc, 0)
        self.assertNotIn(b64(SECRETS["a"]), sk.stdout() + sk.stderr())

    def test_unchanged_and_changing_documents(self):
        # the same document at every refresh keeps its set (logged once); one
        # that differs every time replaces it each time and frees the old one
        # (the ASan build's leak check at exit would catch a set kept forever)
        iss = Issuer()
        sk = H.Skuld(config(self.mock, iss.url, refresh="1s"))
        try:
            H.wait_until(lambda: iss.fetches >= 4, 15, what="three refreshes")
            self.assertEqual(sk.stderr().count("auth.jwt: key set from"), 1)
            self.assertEqual(status(sk, token("a")), 200)
            iss.vary = True
            n = iss.fetches
            H.wait_until(lambda: iss.fetches >= n + 3, 15, what="three changing documents")
            self.assertGreaterEqual(sk.stderr().count("auth.jwt: key set from"), 3)
            for _ in range(20):  # verifications interleaved with replacements
                self.assertEqual(status(sk, token("a")), 200)
        finally:
            rc = sk.stop()
            iss.stop()
        self.assertEqual(rc, 0, sk.describe())

    def test_config_errors(self):
        d = H.mkdtemp()
        keyfile = os.path.join(d, "k")
        with open(keyfile, "w") as f:
            f.write("secret-0123456789\n")
        cases = [
            ({"algorithms": ["HS256"], "keys_file": keyfile, "jwks_url": "http://127.0.0.1:1/"},
             "exactly one of keys_file and jwks_url"),
            ({"algorithms": ["HS256"]}, "exactly one of keys_file and jwks_url"),
            ({"algorithms": ["HS256"], "jwks_url": "file:///etc/passwd"},
             "must be an http:// or https:// URL"),
            ({"algorithms": ["HS256"], "jwks_url": "http://127.0.0.1:1/", "jwks_refresh": "10ms"},
             "jwks_refresh must be at least 1s"),
        ]
        for i, (jwt, want) in enumerate(cases):
            path = os.path.join(d, "c%d.yaml" % i)
            cfg = H.base_config(self.mock)
            cfg["auth"] = {"jwt": jwt}
            with open(path, "w") as f:
                f.write(H.to_yaml(cfg))
            rc, out, err = H.run_skuld(["check", "-c", path])
            self.assertEqual(rc, 1, (jwt, out, err))
            self.assertIn(want, out + err, jwt)


if __name__ == "__main__":
    H.main()
