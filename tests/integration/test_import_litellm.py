"""
`skuld import litellm FILE [--strict]` (src/import): LiteLLM proxy configs
written the way LiteLLM's documentation shows them (tests/integration/litellm/)
are converted, the output passes `skuld check`, and every construct maps to
the skuld key it should (providers and base URLs, env:NAME keys, prices per
1M tokens, rpm/tpm, model groups with weights and balance, the resilience
settings and breaker, fallbacks, the Redis cache, master_key, the store).
What cannot be mapped is listed on stderr as
`FILE:LINE:COL: not converted: KEY (reason)`, at the position of the LiteLLM
node; --strict then exits 1. Bad input (not YAML, wrong shapes, a missing
file) is an error with exit 1 and no output.

The SDK end-to-end run of an imported config is tests/e2e/import_litellm.test.mjs.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "litellm")


def cfg(name):
    return os.path.join(CONFIGS, name)


def run_import(path, *extra):
    return H.run_skuld(["import", "litellm", path] + list(extra))


# ---------------------------------------------------------------- reading the output

def _scalar(s):
    """A scalar as the importer's emitter writes it (src/import/emit.h)."""
    if s.startswith('"'):
        return json.loads(s)  # the tests' values use only the escapes JSON shares
    if s == "{}":
        return {}
    if s == "[]":
        return []
    if s in ("true", "false"):
        return s == "true"
    if re.fullmatch(r"-?[0-9]+", s):
        return int(s)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", s):
        return float(s)
    return s


def parse_emitted(text):
    """The block YAML subset the importer writes: mappings, sequences (of
    mappings or scalars), two spaces per level, no flow collections except
    {} and [], comments only on lines of their own. Stdlib only, so the test
    needs no PyYAML; anything outside the subset fails the test."""
    lines = []
    for raw in text.split("\n"):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        ind = len(raw) - len(raw.lstrip(" "))
        lines.append([ind, raw.strip()])
    pos = [0]

    def block(ind):
        if lines[pos[0]][1].startswith("- "):
            return seq(ind)
        return mapping(ind)

    def mapping(ind):
        out = {}
        while pos[0] < len(lines) and lines[pos[0]][0] == ind and not lines[pos[0]][1].startswith("- "):
            content = lines[pos[0]][1]
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?", content)
            if not m:
                raise AssertionError("not a key line: %r" % content)
            key, val = m.group(1), m.group(2)
            if key in out:
                raise AssertionError("duplicate key %r" % key)
            pos[0] += 1
            if val is None:
                if pos[0] >= len(lines) or lines[pos[0]][0] <= ind:
                    raise AssertionError("key %r without a value" % key)
                out[key] = block(lines[pos[0]][0])
            else:
                out[key] = _scalar(val)
        if pos[0] < len(lines) and lines[pos[0]][0] > ind:
            raise AssertionError("bad indentation at %r" % lines[pos[0]][1])
        return out

    def seq(ind):
        out = []
        while pos[0] < len(lines) and lines[pos[0]][0] == ind and lines[pos[0]][1].startswith("- "):
            rest = lines[pos[0]][1][2:]
            if re.match(r"[A-Za-z_][A-Za-z0-9_]*:( |$)", rest):
                lines[pos[0]] = [ind + 2, rest]  # "- key: v": a mapping one level in
                out.append(mapping(ind + 2))
            else:
                out.append(_scalar(rest))
                pos[0] += 1
        return out

    if lines == [[0, "{}"]]:
        return {}
    doc = mapping(0) if lines else {}
    if pos[0] != len(lines):
        raise AssertionError("unparsed output from %r" % lines[pos[0]][1])
    return doc


def env_refs(text):
    return sorted(set(re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", text)))


def not_converted(path, err):
    """[(line, col, key, reason)] of the not-converted lines; every stderr
    line must be a diagnostic or the summary."""
    out = []
    for line in err.splitlines():
        if line.startswith(path + ": ") and "setting(s) not converted" in line:
            continue
        m = re.fullmatch(re.escape(path) + r":(\d+):(\d+): not converted: (\S+) \((.+)\)", line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
            continue
        if re.fullmatch(re.escape(path) + r":\d+:\d+: warning: .+", line):
            continue
        raise AssertionError("unexpected stderr line: %r" % line)
    return out


def position(path, needle, after=None):
    """1-based line:col of the first `needle` in the file (after the first
    line containing `after`, when given): where the importer must point."""
    with open(path) as f:
        text = f.read().split("\n")
    start = 0
    if after is not None:
        start = next(i for i, l in enumerate(text) if after in l) + 1
    for i in range(start, len(text)):
        c = text[i].find(needle)
        if c >= 0:
            return i + 1, c + 1
    raise AssertionError("%r not in %s" % (needle, path))


class ImportTestBase(H.unittest.TestCase):
    def convert(self, name, strict=False, expect_rc=0):
        """Import tests/integration/litellm/NAME; assert the exit status, that
        the output passes `skuld check -c` (with every env:NAME it names set),
        and return (parsed output, text, stderr)."""
        path = cfg(name)
        rc, out, err = run_import(path, *(["--strict"] if strict else []))
        self.assertEqual(rc, expect_rc, "stderr:\n" + err)
        self.assertTrue(out.startswith("# skuld config converted by `skuld import litellm`"), out)
        self.check_ok(out)
        return parse_emitted(out), out, err

    def check_ok(self, text):
        p = H.write_temp("imported.yaml", text)
        env = {n: "redis://127.0.0.1:6379" if n == "REDIS_URL" else "x-" + n.lower()
               for n in env_refs(text)}
        rc, out, err = H.run_skuld(["check", "-c", p], env=env)
        self.assertEqual(rc, 0, "skuld check failed:\n%s%s\n--- config\n%s" % (out, err, text))
        self.assertRegex(out, r": ok \(")

    def provider(self, doc, name):
        ps = [p for p in doc["providers"] if p["name"] == name]
        self.assertEqual(len(ps), 1, doc["providers"])
        return ps[0]

    def models(self, doc, name):
        return [m for m in doc["models"] if m["name"] == name]

    def model(self, doc, name):
        ms = self.models(doc, name)
        self.assertEqual(len(ms), 1, ms)
        return ms[0]


class ProxyBasicTest(ImportTestBase):
    """proxy_basic.yaml: openai/, anthropic/, gemini/, env keys, prices, rpm/tpm,
    model_info mode and costs, master_key, database_url."""

    @classmethod
    def setUpClass(cls):
        cls.path = cfg("proxy_basic.yaml")

    def test_converted_cleanly(self):
        doc, text, err = self.convert("proxy_basic.yaml", strict=True)
        self.assertEqual(not_converted(self.path, err), [])
        self.assertEqual(err, "")  # no warning either: every secret from the environment

    def test_providers_and_keys(self):
        doc, text, _ = self.convert("proxy_basic.yaml")
        self.assertEqual([p["name"] for p in doc["providers"]], ["openai", "anthropic", "gemini"])
        self.assertEqual(self.provider(doc, "openai"),
                         {"name": "openai", "type": "openai",
                          "base_url": "https://api.openai.com/v1", "api_key": "env:OPENAI_API_KEY"})
        self.assertEqual(self.provider(doc, "anthropic"),
                         {"name": "anthropic", "type": "anthropic",
                          "base_url": "https://api.anthropic.com/v1",
                          "api_key": "env:ANTHROPIC_API_KEY"})
        self.assertEqual(self.provider(doc, "gemini"),
                         {"name": "gemini", "type": "gemini",
                          "base_url": "https://generativelanguage.googleapis.com/v1beta",
                          "api_key": "env:GEMINI_API_KEY"})
        self.assertNotIn("os.environ", text)

    def test_models_prices_limits(self):
        doc, _, _ = self.convert("proxy_basic.yaml")
        self.assertEqual(self.model(doc, "gpt-4o"),
                         {"name": "gpt-4o", "provider": "openai", "model": "gpt-4o",
                          "capacity": {"rpm": 480, "tpm": 800000},
                          "price": {"input": 2.5, "output": 10}})
        claude = self.model(doc, "claude-sonnet")
        self.assertEqual(claude["provider"], "anthropic")
        self.assertEqual(claude["model"], "claude-3-5-sonnet-20241022")
        self.assertEqual(claude["price"], {"input": 3, "output": 15})
        # costs from model_info count too
        gem = self.model(doc, "gemini-flash")
        self.assertEqual((gem["provider"], gem["model"]), ("gemini", "gemini-1.5-flash"))
        self.assertEqual(gem["price"], {"input": 0.075, "output": 0.3})
        emb = self.model(doc, "embedding")
        self.assertEqual(emb["price"], {"input": 0.02})
        self.assertEqual(emb["capabilities"], ["embeddings"])
        self.assertEqual(emb["provider"], "openai")  # shares the provider of gpt-4o (same key)

    def test_general_settings(self):
        doc, _, _ = self.convert("proxy_basic.yaml")
        self.assertEqual(doc["server"], {"master_key": "env:LITELLM_MASTER_KEY"})
        self.assertEqual(doc["auth"], {"required": True})
        self.assertEqual(doc["store"], {"url": "postgresql://litellm@db.internal:5432/litellm"})
        self.assertNotIn("resilience", doc["server"])
        self.assertNotIn("cache", doc)


class LoadBalancingTest(ImportTestBase):
    """load_balancing.yaml: one model_name, several deployments -> one group
    with weights (litellm_params.weight, else rpm), hosted_vllm/ base URLs."""

    def test_weighted_group(self):
        doc, _, err = self.convert("load_balancing.yaml", strict=True)
        self.assertEqual(err, "")
        gpt = self.models(doc, "gpt-3.5-turbo")
        self.assertEqual([(m["provider"], m["weight"], m["balance"]) for m in gpt],
                         [("openai", 9, "round_robin"), ("openai-2", 1, "round_robin")])
        self.assertEqual(self.provider(doc, "openai-2"),
                         {"name": "openai-2", "type": "openai",
                          "base_url": "https://openai-proxy.example.com/v1",
                          "api_key": "env:BACKUP_OPENAI_KEY"})
        self.assertEqual(len(doc["models"]), 4)

    def test_rpm_weights_and_vllm(self):
        doc, _, _ = self.convert("load_balancing.yaml")
        llama = self.models(doc, "llama-3")
        self.assertEqual([m["weight"] for m in llama], [600, 200])  # no weight: rpm, as LiteLLM
        self.assertEqual([m["capacity"] for m in llama],
                         [{"rpm": 600, "tpm": 100000}, {"rpm": 200, "tpm": 40000}])
        self.assertEqual({m["model"] for m in llama}, {"meta-llama/Meta-Llama-3-8B-Instruct"})
        bases = [self.provider(doc, m["provider"])["base_url"] for m in llama]
        self.assertEqual(bases, ["http://vllm-a.internal:8000/v1", "http://vllm-b.internal:8000/v1"])
        for m in llama:
            p = self.provider(doc, m["provider"])
            self.assertEqual(p["type"], "openai")
            self.assertNotIn("api_key", p)  # a vLLM server without a key


class FallbacksTest(ImportTestBase):
    """fallbacks.yaml: least-busy, num_retries, timeout, fallbacks,
    context_window_fallbacks, allowed_fails and cooldown_time."""

    def test_resilience_and_breaker(self):
        doc, _, err = self.convert("fallbacks.yaml")
        self.assertEqual(doc["server"]["resilience"], {
            # gpt-4o, then gpt-4o-mini (one deployment each) + 2 retries
            "max_attempts": 4,
            "retries_per_deployment": 2,
            "per_try_timeout": "30s",
            "breaker_failures": 4,      # allowed_fails 3: the 4th failure cools it down
            "ejection_time": "60s",
            "max_ejection_time": "60s",
        })
        self.assertEqual(not_converted(cfg("fallbacks.yaml"), err), [])

    def test_fallbacks(self):
        doc, _, err = self.convert("fallbacks.yaml")
        self.assertEqual(self.model(doc, "gpt-4o")["fallbacks"], ["gpt-4o-mini"])
        mini = self.model(doc, "gpt-4o-mini")
        self.assertEqual(mini["fallbacks"], ["claude-haiku"])  # context_window_fallbacks
        self.assertEqual(mini["context_window"], 128000)
        self.assertEqual(mini["price"], {"input": 0.15, "output": 0.6})
        self.assertEqual(self.model(doc, "claude-haiku")["context_window"], 200000)
        self.assertNotIn("fallbacks", self.model(doc, "claude-haiku"))
        # one fallbacks list per model in skuld: said as a warning at the LiteLLM key
        line, col = position(cfg("fallbacks.yaml"), "gpt-4o-mini:", after="context_window_fallbacks")
        self.assertIn("%s:%d:%d: warning: router_settings.context_window_fallbacks[0].gpt-4o-mini:"
                      % (cfg("fallbacks.yaml"), line, col), err)

    def test_least_busy_single_models(self):
        doc, _, _ = self.convert("fallbacks.yaml")
        # least-busy applies to groups; single deployments need no balance key
        for m in doc["models"]:
            self.assertNotIn("balance", m)


class CachingRedisTest(ImportTestBase):
    """caching_redis.yaml: cache type redis with host/port/password and ttl,
    litellm_settings fallbacks, num_retries, request_timeout, latency-based-routing."""

    def test_cache_and_redis(self):
        doc, _, err = self.convert("caching_redis.yaml", strict=True)  # warnings only: exit 0
        self.assertEqual(doc["cache"], {"enabled": True, "ttl": "600s", "redis": True})
        self.assertEqual(doc["redis"], {"url": "redis://:hunter2pw@cache.internal:6380"})
        # the literal password is carried with a warning pointing at it, never printed
        line, col = position(cfg("caching_redis.yaml"), "hunter2pw")
        self.assertIn("%s:%d:%d: warning: litellm_settings.cache_params.password is a literal password"
                      % (cfg("caching_redis.yaml"), line, col), err)
        self.assertNotIn("hunter2pw", err)
        self.assertEqual(not_converted(cfg("caching_redis.yaml"), err), [])

    def test_fallbacks_and_latency_routing(self):
        doc, _, _ = self.convert("caching_redis.yaml")
        gpt = self.models(doc, "gpt-4o")
        self.assertEqual([m["balance"] for m in gpt], ["p2c", "p2c"])
        self.assertEqual([m["fallbacks"] for m in gpt], [["claude"], ["claude"]])
        self.assertNotIn("weight", gpt[0])  # weights only for simple-shuffle
        self.assertEqual(doc["server"]["resilience"], {
            "max_attempts": 4,  # two gpt-4o deployments + claude + 1 retry
            "retries_per_deployment": 1,
            "per_try_timeout": "20s",
        })

    def test_redis_from_environment(self):
        # host/port/password from os.environ/: one env:REDIS_URL with what to set
        p = H.write_temp("env_redis.yaml", """\
model_list:
  - model_name: m
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
litellm_settings:
  cache: True
  cache_params:
    type: redis
    host: os.environ/REDIS_HOST
    port: os.environ/REDIS_PORT
    password: os.environ/REDIS_PASSWORD
    ttl: 30
""")
        rc, out, err = run_import(p, "--strict")
        self.assertEqual(rc, 0, err)
        doc = parse_emitted(out)
        self.assertEqual(doc["redis"], {"url": "env:REDIS_URL"})
        self.assertEqual(doc["cache"], {"enabled": True, "ttl": "30s", "redis": True})
        self.assertIn("REDIS_URL=redis://:$REDIS_PASSWORD@$REDIS_HOST:$REDIS_PORT", err)
        self.check_ok(out)


class ProvidersTest(ImportTestBase):
    """providers.yaml: ollama/, ollama_chat/, hosted_vllm/, lm_studio/,
    openai/ with api_base, groq/; usage-based-routing."""

    def test_provider_types_and_bases(self):
        doc, _, err = self.convert("providers.yaml", strict=True)
        want = {
            "llama3": ("ollama", "http://localhost:11434", "llama3", None),
            "mistral-chat": ("ollama", "http://gpu-box:11434", "mistral", None),
            "qwen": ("openai", "http://vllm.internal:8000/v1", "Qwen/Qwen2.5-7B-Instruct",
                     "env:VLLM_API_KEY"),
            "local-studio": ("openai", "http://127.0.0.1:1234/v1", "phi-3", None),
            "compat": ("openai", "https://llm.example.org/v1", "my-finetune", "env:COMPAT_KEY"),
            "groq-llama": ("openai", "https://api.groq.com/openai/v1", "llama3-8b-8192",
                           "env:GROQ_API_KEY"),
        }
        for name, (typ, base, upstream, key) in want.items():
            m = self.model(doc, name)
            p = self.provider(doc, m["provider"])
            self.assertEqual((p["type"], p["base_url"], m["model"], p.get("api_key")),
                             (typ, base, upstream, key), name)
        self.assertEqual(self.model(doc, "qwen")["capacity"], {"tpm": 200000})
        compat = self.model(doc, "compat")
        self.assertEqual(compat["capacity"], {"rpm": 100})
        self.assertEqual(compat["price"], {"input": 2, "output": 6})  # 0.000002/token = 2 per 1M

    def test_usage_based_routing_warns(self):
        _, _, err = self.convert("providers.yaml")
        line, col = position(cfg("providers.yaml"), "usage-based-routing")
        self.assertIn("%s:%d:%d: warning: router_settings.routing_strategy: skuld has no "
                      "usage-based balance" % (cfg("providers.yaml"), line, col), err)

    def test_usage_based_group(self):
        p = H.write_temp("ubr.yaml", """\
model_list:
  - model_name: m
    litellm_params: {model: openai/a, api_key: os.environ/K1, rpm: 10}
  - model_name: m
    litellm_params: {model: openai/b, api_key: os.environ/K2, rpm: 20}
router_settings:
  routing_strategy: usage-based-routing-v2
""")
        rc, out, err = run_import(p)
        self.assertEqual(rc, 0, err)
        doc = parse_emitted(out)
        self.assertEqual([(m["balance"], m.get("weight"), m["capacity"]) for m in doc["models"]],
                         [("round_robin", None, {"rpm": 10}), ("round_robin", None, {"rpm": 20})])
        self.check_ok(out)


class ServeMockConfigTest(ImportTestBase):
    """serve_mock.yaml (the e2e test's config): two deployments of one name
    on one provider get distinct ids; max_attempts reaches the fallback."""

    def test_convert(self):
        doc, _, err = self.convert("serve_mock.yaml", strict=True)
        self.assertEqual(err, "")
        self.assertEqual(len(doc["providers"]), 3)
        self.assertEqual(self.provider(doc, "openai")["base_url"], "http://127.0.0.1:4010/v1")
        self.assertEqual(self.provider(doc, "azure"),
                         {"name": "azure", "type": "azure", "base_url": "http://127.0.0.1:4010",
                          "api_key": "env:SKULD_E2E_UPSTREAM_KEY",
                          "api_version": "2025-01-01-preview"})
        self.assertEqual(self.model(doc, "azure-gpt")["model"], "mock-deployment")
        # anthropic/ api_base is the host: skuld posts to {base_url}/messages
        self.assertEqual(self.provider(doc, "anthropic")["base_url"], "http://127.0.0.1:4010/v1")
        gpt = self.models(doc, "gpt-4o")
        self.assertEqual([(m["model"], m.get("id"), m["weight"]) for m in gpt],
                         [("mock-model", None, 3), ("mock-model-b", "gpt-4o@openai#2", 1)])
        self.assertEqual(doc["server"]["resilience"]["max_attempts"], 3)
        self.assertEqual(doc["server"]["resilience"]["breaker_failures"], 6)
        self.assertEqual(doc["server"]["resilience"]["ejection_time"], "1s")


class AzureConvertTest(ImportTestBase):
    """azure.yaml: azure/DEPLOYMENT becomes an azure provider (api_base, the
    key, api_version; skuld's default api_version written when LiteLLM's is
    absent, AZURE_API_KEY when the key is) and a model whose upstream is the
    deployment; the converted config is served against mock-upstream's
    Azure shape. Values the azure type refuses are not-converted lines."""

    PATH = cfg("azure.yaml")

    def test_convert(self):
        doc, _, err = self.convert("azure.yaml", strict=True)
        self.assertEqual(not_converted(self.PATH, err), [])
        self.assertEqual(doc["providers"], [
            {"name": "azure", "type": "azure", "base_url": "https://my-endpoint.openai.azure.com",
             "api_key": "env:AZURE_EU_KEY", "api_version": "2025-01-01-preview"},
            {"name": "azure-2", "type": "azure", "base_url": "https://my-endpoint.openai.azure.com",
             "api_key": "env:AZURE_API_KEY", "api_version": "2024-10-21"},
            {"name": "azure-3", "type": "azure", "base_url": "https://my-endpoint.openai.azure.com",
             "api_key": "env:AZURE_EU_TOKEN", "api_version": "2025-01-01-preview",
             "auth": "entra"},
        ])
        self.assertEqual([(m["name"], m["provider"], m["model"]) for m in doc["models"]],
                         [("gpt-4o", "azure", "gpt4o-dep"), ("embed", "azure", "embed-dep"),
                          ("gpt-4o-default", "azure-2", "gpt4o-dep"),
                          ("gpt-4o-entra", "azure-3", "gpt4o-dep")])
        self.assertEqual(self.model(doc, "embed")["capabilities"], ["embeddings"])
        line, col = position(self.PATH, "azure/gpt4o-dep", after="gpt-4o-default")
        where = "%s:%d:%d: warning: model_list[2].litellm_params: " % (self.PATH, line, col)
        self.assertIn(where + "no api_key; LiteLLM reads AZURE_API_KEY from the environment", err)
        self.assertIn(where + "no api_version; LiteLLM sends its default (or $AZURE_API_VERSION), "
                      "skuld's azure type sends 2024-10-21", err)

    def test_served_against_mock_azure(self):
        with open(self.PATH) as f:
            text = f.read()
        mock = H.Mock(["--azure-token", "mock-azure-token"])
        gw = None
        try:
            root = "http://%s:%d" % (H.HOST, mock.port)
            src = H.write_temp("azure.yaml", text.replace("https://my-endpoint.openai.azure.com",
                                                          root))
            rc, out, err = run_import(src)
            self.assertEqual(rc, 0, err)
            self.check_ok(out)
            gw = H.Skuld(out, env={"AZURE_EU_KEY": "mock-azure-key",
                                   "AZURE_API_KEY": "mock-azure-key",
                                   "AZURE_EU_TOKEN": "mock-azure-token"})
            chat = {"messages": [{"role": "user", "content": "hello there"}]}
            for model, version in (("gpt-4o", "2025-01-01-preview"),
                                   ("gpt-4o-default", "2024-10-21")):
                r = H.post_json(gw.port, "/v1/chat/completions", dict(chat, model=model))
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json()["choices"][0]["message"]["content"], "c0 c1 c2 c3 c4")
                last = mock.last()
                self.assertEqual(last["path"], "/openai/deployments/gpt4o-dep/chat/completions")
                self.assertEqual(last["query"], "api-version=" + version)
                self.assertEqual(last["headers"]["api-key"], "mock-azure-key")
            r = H.post_json(gw.port, "/v1/chat/completions", dict(chat, model="gpt-4o-entra"))
            self.assertEqual(r.status, 200, r.body)
            last = mock.last()
            self.assertEqual(last["headers"]["authorization"], "Bearer mock-azure-token")
            self.assertNotIn("api-key", last["headers"])
            r = H.post_json(gw.port, "/v1/embeddings", {"model": "embed", "input": ["a b"]})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(mock.last()["path"], "/openai/deployments/embed-dep/embeddings")
        finally:
            rc = gw.stop() if gw else 0
            mock.stop()
        self.assertEqual(rc, 0)

    def test_refused_values(self):
        p = H.write_temp("azure_bad.yaml", """\
model_list:
  - model_name: no-base
    litellm_params: {model: azure/dep, api_key: os.environ/K}
  - model_name: slash-dep
    litellm_params: {model: azure/a/b, api_base: "https://r.openai.azure.com", api_key: os.environ/K}
  - model_name: long-dep
    litellm_params: {model: azure/%s, api_base: "https://r.openai.azure.com", api_key: os.environ/K}
  - model_name: with-openai
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com/openai/", api_key: os.environ/K}
  - model_name: with-query
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com?x=1", api_key: os.environ/K}
  - model_name: bad-version
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com", api_key: os.environ/K, api_version: "2024-10"}
  - model_name: env-version
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com", api_key: os.environ/K, api_version: os.environ/AZURE_API_VERSION}
  - model_name: bad-key
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com", api_key: "env:X"}
  - model_name: foundry
    litellm_params: {model: azure_ai/mistral, api_base: "https://r.services.ai.azure.com", api_key: os.environ/K}
  - model_name: ok
    litellm_params: {model: azure/dep-1.0_x, api_base: "https://r.openai.azure.com", api_key: os.environ/K, api_version: "2024-06-01"}
  - model_name: plain
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/K, api_version: "2024-06-01", azure_ad_token: os.environ/T}
  - model_name: oidc
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com", azure_ad_token: oidc/github/x}
  - model_name: key-and-token
    litellm_params: {model: azure/dep, api_base: "https://r.openai.azure.com", api_key: os.environ/K, azure_ad_token: os.environ/T, api_version: "2024-06-01"}
""" % ("d" * 65))
        rc, out, err = run_import(p)
        self.assertEqual(rc, 0, err)
        self.check_ok(out)
        got = [(g[2], g[3]) for g in not_converted(p, err)]
        lp = "model_list[%d].litellm_params."
        want = [
            (lp % 0 + "model", "azure/ needs api_base (the resource endpoint"),
            (lp % 1 + "model", "the azure deployment name 'a/b' must have letters, digits"),
            (lp % 2 + "model", "(at most 64)"),
            (lp % 3 + "api_base", "resource endpoint without /openai"),
            (lp % 4 + "api_base", "without a query or fragment"),
            (lp % 5 + "api_version", "'2024-10' is not an Azure OpenAI API version"),
            (lp % 6 + "api_version", "environment variable AZURE_API_VERSION"),
            (lp % 7 + "api_key", "starts with env: or file:"),
            (lp % 7 + "api_key", "skuld's azure type needs an api_key"),
            (lp % 8 + "model", "Azure AI Foundry"),
            (lp % 10 + "api_version", "only azure/ models have one"),
            (lp % 10 + "azure_ad_token", "only azure/ models take one"),
            (lp % 11 + "azure_ad_token", "an OIDC token exchange"),
            (lp % 12 + "azure_ad_token", "api_key is used, as in LiteLLM"),
        ]
        self.assertEqual([g[0] for g in got], [w[0] for w in want], err)
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertIn(w[1], g[1], g)
            if i not in (7, 10, 11, 13):  # the key's own line; keys of converted entries
                self.assertTrue(g[1].endswith("entry skipped"), g)
        doc = parse_emitted(out)
        self.assertEqual([m["name"] for m in doc["models"]], ["ok", "plain", "key-and-token"])
        # api_key wins over azure_ad_token (as in LiteLLM), so no auth: entra; same provider as ok
        self.assertEqual(self.model(doc, "key-and-token")["provider"],
                         self.model(doc, "ok")["provider"])
        self.assertNotIn("auth", self.provider(doc, self.model(doc, "ok")["provider"]))
        self.assertEqual(self.provider(doc, self.model(doc, "ok")["provider"])["api_version"],
                         "2024-06-01")
        self.assertEqual(self.model(doc, "ok")["model"], "dep-1.0_x")


class UnmappableTest(ImportTestBase):
    """unmappable.yaml: each construct skuld cannot express is one
    not-converted line at its LiteLLM position; --strict exits 1."""

    PATH = cfg("unmappable.yaml")

    def expected(self):
        P = self.PATH
        # (line, col) of the node, the key path, a fragment of the reason
        return [
            (position(P, "temperature:"), "model_list[0].litellm_params.temperature",
             "skuld forwards request parameters as the client sent them"),
            (position(P, "azure_ai/mistral-large-eu"), "model_list[1].litellm_params.model",
             "Azure AI Foundry"),
            (position(P, "bedrock/"), "model_list[2].litellm_params.model", "SigV4"),
            (position(P, '"*"'), "model_list[3].model_name", "wildcard model names"),
            (position(P, "os.environ/VLLM_API_BASE"), "model_list[4].litellm_params.api_base",
             "environment variable VLLM_API_BASE"),
            (position(P, "drop_params:"), "litellm_settings.drop_params", "skuld forwards every parameter"),
            (position(P, "success_callback:"), "litellm_settings.success_callback", "no callbacks in skuld"),
            (position(P, "s3", after="cache_params:"), "litellm_settings.cache_params.type",
             "cache type 's3' has no skuld equivalent"),
            (position(P, "s3_bucket_name:"), "litellm_settings.cache_params.s3_bucket_name",
             "no skuld equivalent"),
            (position(P, "cost-based-routing"), "router_settings.routing_strategy",
             "'cost-based-routing' has no skuld balance strategy"),
            (position(P, '"azure-gpt"'), "router_settings.fallbacks[0].gpt-4o[0]",
             "model 'azure-gpt' was not converted"),
            (position(P, "alerting:"), "general_settings.alerting", "budgets.alert_webhook"),
            (position(P, "guardrails:"), "guardrails", "no guardrails in skuld"),
            (position(P, "LANGFUSE_PUBLIC_KEY:"), "environment_variables.LANGFUSE_PUBLIC_KEY",
             "set it in skuld's environment"),
        ]

    def test_not_converted_lines(self):
        doc, text, err = self.convert("unmappable.yaml")
        got = not_converted(self.PATH, err)
        want = self.expected()
        self.assertEqual([(g[0], g[1], g[2]) for g in got],
                         [(w[0][0], w[0][1], w[1]) for w in want], err)
        for g, w in zip(got, want):
            self.assertIn(w[2], g[3], g)
        self.assertIn("%s: %d setting(s) not converted\n" % (self.PATH, len(want)), err)
        self.assertNotIn("pk-123", err)  # an environment_variables value is never shown
        # what could be converted still is
        self.assertEqual([m["name"] for m in doc["models"]], ["gpt-4o"])
        self.assertNotIn("fallbacks", doc["models"][0])
        self.assertNotIn("cache", doc)
        self.assertEqual(doc["server"]["master_key"], "env:LITELLM_MASTER_KEY")

    def test_strict(self):
        rc, out, err = run_import(self.PATH, "--strict")
        self.assertEqual(rc, 1, err)
        self.assertIn("(--strict: exit 1)", err)
        self.assertEqual(len(not_converted(self.PATH, err)), len(self.expected()))
        self.check_ok(out)  # the output is still written
        # --strict before the file works too
        rc2, out2, _ = H.run_skuld(["import", "litellm", "--strict", self.PATH])
        self.assertEqual((rc2, out2), (1, out))


class BadInputTest(ImportTestBase):
    """Bad input: an error naming the file (and position), exit 1, no output."""

    def bad(self, text, *fragments, name="bad.yaml"):
        p = H.write_temp(name, text)
        rc, out, err = run_import(p)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn("%s: nothing converted" % p, err)
        for f in fragments:
            self.assertIn(f.replace("FILE", p), err)
        return err

    def test_not_yaml(self):
        self.bad("model_list: [\n  - {model_name: x\n", "FILE:", "error: not a YAML document")
        self.bad("\tmodel_list:\n\t- x\n", "error: not a YAML document")

    def test_not_a_mapping(self):
        self.bad("- model_name: gpt-4o\n", "FILE:1:1: error: expected a mapping at top level")
        self.bad("just a string\n", "error: expected a mapping at top level")

    def test_model_list_not_a_list(self):
        self.bad("model_list:\n  model_name: gpt-4o\n",
                 "FILE:2:3: error: model_list: expected a list, got a mapping")
        self.bad("model_list: gpt-4o\n", "FILE:1:13: error: model_list: expected a list")

    def test_bad_entries(self):
        self.bad("model_list:\n  - gpt-4o\n", "FILE:2:5: error: model_list[0]: expected a mapping")
        self.bad("model_list:\n  - litellm_params: {model: openai/x}\n",
                 "error: model_list[0]: model_name is missing")
        self.bad("model_list:\n  - model_name: x\n    litellm_params: {api_key: k}\n",
                 "error: model_list[0].litellm_params: model is missing")
        self.bad("model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, rpm: lots}\n",
                 "error: model_list[0].litellm_params.rpm: expected a number, got 'lots'")
        self.bad("router_settings: [1, 2]\n", "FILE:1:18: error: router_settings: expected a mapping")
        self.bad("router_settings:\n  fallbacks: {gpt-4o: [x]}\n",
                 "error: router_settings.fallbacks: expected a list")

    def test_missing_file(self):
        d = H.mkdtemp()
        p = os.path.join(d, "nope.yaml")
        rc, out, err = run_import(p)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn(p, err)
        rc, out, err = run_import(d)  # a directory
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")

    def test_binary_garbage_no_crash(self):
        p = H.write_temp("garbage.yaml", "")
        with open(p, "wb") as f:
            f.write(bytes(range(256)) * 4)
        rc, out, err = run_import(p)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn("error:", err)

    def test_empty_file(self):
        p = H.write_temp("empty.yaml", "")
        rc, out, err = run_import(p, "--strict")
        self.assertEqual(rc, 0, err)
        self.assertEqual(parse_emitted(out), {})
        self.check_ok(out)

    def test_usage(self):
        for args in (["import"], ["import", "litellm"], ["import", "portkey", "x.yaml"],
                     ["import", "litellm", "--bogus", "x.yaml"],
                     ["import", "litellm", "a.yaml", "b.yaml"]):
            rc, out, err = H.run_skuld(args)
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, "")
            self.assertIn("usage: skuld import litellm FILE [--strict]", err)


class SelfTest(H.unittest.TestCase):
    """The helpers can fail: a wrong expectation is caught."""

    def test_parser_and_expectations_catch_mistakes(self):
        text = run_import(cfg("proxy_basic.yaml"))[1]
        doc = parse_emitted(text)
        self.assertNotEqual(doc["models"][0]["price"], {"input": 2.5, "output": 1.0})
        with self.assertRaises(AssertionError):
            parse_emitted("a:\n  b: 1\n c: 2\n")  # broken indentation
        with self.assertRaises(AssertionError):
            not_converted("f.yaml", "f.yaml:1:1: something else\n")
        with self.assertRaises(AssertionError):
            ImportTestBase("run").check_ok("models:\n  - name: x\n    provider: nope\n    model: y\n")


if __name__ == "__main__":
    H.main()
