"""
Containers and clusters (issue 15, item 5): the Dockerfile, deploy/compose.yaml
and deploy/k8s/ checked against the code, since no container engine or cluster
exists on the development machine (nothing here builds an image or applies a
manifest).

What the code says is read from the code and the real binary, not restated:
- the liveness and readiness paths from the request dispatch in src/api/api.c
  (readiness: the branch that answers 503 while draining);
- the signals that drain and reload from src/server/gateway.c, the default
  drain_timeout and listen address from src/config/server.c;
- the drain timeout the shipped cluster config gives, from the log line of the
  real gateway when it gets SIGTERM;
- the Debian 12 runtime packages of every library bin/skuld and the installed
  lib/skuld/*.so link directly (readelf NEEDED, resolved by ldd, dpkg -S);
- the packages "Set up" asks for beforehand, from the README.

Then, with checker functions that return a list of problems:
- every YAML file under deploy/ parses (multi-document too);
- Dockerfile (parsed here: continuations, comments, stages): FROM debian:12
  then FROM debian:12-slim; the build stage installs exactly the README's
  packages and runs `make install PREFIX=...` (the Makefile's install target
  runs install-deps.sh and cmake --install); the runtime stage copies that
  prefix, installs every runtime package, runs as a numeric non-root uid
  created by useradd, works in and declares as VOLUME the unit's
  WorkingDirectory, EXPOSEs the configs' port, STOPSIGNAL drains,
  HEALTHCHECK fetches the liveness path on that port, CMD writes the demo
  model where the example config wants it and serves the config it COPYs;
  .dockerignore keeps build trees, .deps and node_modules out;
- compose: two replicas built from the Dockerfile, the cluster config mounted
  at the image's config path, a data volume each, the container port the
  config listens on, every env:NAME of the config (and libpq's PG* variables,
  the store url naming no host) set from ${...} (no secret in the file), both
  pointing at the compose PostgreSQL and Redis, which have healthchecks and
  are waited for (service_healthy); SIGTERM and a stop grace longer than the
  drain timeout;
- Kubernetes: the ConfigMap holds the cluster config's exact text, mounted
  so it is the image's config path; the Deployment (2+ replicas, selector
  matching, runAsNonRoot as the image's uid, read-only root with the data
  directory writable) probes readiness and liveness on the code's paths and
  the config's port, takes every secret from secretKeyRef of one Secret
  (whose creation command the README gives with every key), and its grace
  period exceeds preStop + drain timeout; the Service, PDB and HPA select and
  target it; no Secret with data is committed;
- negative: a mutated copy of each file (a wrong path, port, signal, grace,
  user, base image, missing library or secret...) is rejected by the checker;
- live: two real gateways on the ConfigMap's config, unchanged, with a real
  PostgreSQL and Redis the test starts and the environment the manifests
  give (values pointing at them): `skuld check` passes (and names the unset
  variables without them), the Dockerfile's CMD writes the demo model, both
  probe paths answer 200 (a path not in the code 404), a key created on one
  replica works on the other (shared store) and its rpm 1 is spent across
  both (shared Redis: 429 on the second) with no Redis command failing, /readyz turns 503 and /healthz
  stays 200 when PostgreSQL goes away, and SIGTERM exits 0 after logging
  the drain timeout the manifests' grace periods are checked against.
"""

import copy
import glob
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from pgserver import PgServer  # noqa: E402
from redisserver import RedisServer  # noqa: E402

import yaml  # noqa: E402  python3-yaml (scripts/install-deps.sh --test)

ROOT = H.ROOT
BUILD = os.path.dirname(os.path.abspath(H.SKULD_BIN))
# make test also runs this file on the sanitizer build (build-asan). The image ships the
# release build (make install); a sanitized binary also needs libasan/libubsan and, as the
# sanitizer keeps code --as-needed would drop, libevent's other libraries.
with open(os.path.join(BUILD, "CMakeCache.txt")) as _f:
    SANITIZED = "SKULD_SANITIZE:BOOL=ON" in _f.read()


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def load_yaml(rel):
    return yaml.safe_load(read(rel))


def load_k8s():
    docs = []
    for p in sorted(glob.glob(os.path.join(ROOT, "deploy/k8s/*.yaml"))):
        with open(p) as f:
            docs += [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def duration_s(v):
    """A config or compose duration (30s, 250ms, 1m30s, 1h; a bare number is seconds)."""
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise ValueError("not a duration: %r" % v)
    mult = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(a) * mult[b] for a, b in parts)


def listen_host_port(s):
    m = re.fullmatch(r"(\[[^\]]*\]|[^:]*):(\d+)", s)
    if not m:
        raise ValueError("not HOST:PORT: %r" % s)
    return m.group(1), int(m.group(2))


def env_refs(node):
    """Every NAME of an `env:NAME` value anywhere in a parsed config."""
    out = set()
    if isinstance(node, dict):
        for v in node.values():
            out |= env_refs(v)
    elif isinstance(node, list):
        for v in node:
            out |= env_refs(v)
    elif isinstance(node, str) and node.startswith("env:"):
        out.add(node[4:])
    return out


PG_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD")


def store_needs_pg_env(cfg):
    """A postgres url that names no host takes it (and the rest) from libpq's PG* variables."""
    url = (cfg.get("store") or {}).get("url", "")
    m = re.match(r"postgres(?:ql)?://([^/?]*)", url)
    return bool(m) and "@" not in m.group(1) and m.group(1) == ""


def secret_env_names(cfg):
    """Variables that carry secrets: every env:NAME, and PGPASSWORD when libpq reads the env."""
    return env_refs(cfg) | ({"PGPASSWORD"} if store_needs_pg_env(cfg) else set())


def required_env_names(cfg):
    return env_refs(cfg) | (set(PG_VARS) if store_needs_pg_env(cfg) else set())


# ---------------------------------------------------------------- Dockerfile parser

class Instr:
    def __init__(self, op, args, line):
        self.op, self.args, self.line = op, args, line

    def json_args(self):
        """The exec form ["a","b"] as a list, or None for the shell form."""
        if self.args.startswith("["):
            try:
                v = json.loads(self.args)
                if isinstance(v, list) and all(isinstance(x, str) for x in v):
                    return v
            except ValueError:
                pass
        return None

    def __repr__(self):
        return "%d: %s %s" % (self.line, self.op, self.args)


def parse_dockerfile(text):
    """Instructions of a Dockerfile: backslash continuations joined, comment
    lines dropped (also inside a continuation, as docker does), keywords upper-cased."""
    out, buf, start = [], None, None
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if s.startswith("#") or (not s and buf is None):
            continue
        if buf is None:
            buf, start = "", n
        if s.endswith("\\"):
            buf += s[:-1].rstrip() + " "
            continue
        buf += s
        op, _, rest = buf.partition(" ")
        if not re.fullmatch(r"[A-Za-z]+", op):
            raise ValueError("line %d: not an instruction: %r" % (start, buf))
        out.append(Instr(op.upper(), rest.strip(), start))
        buf = None
    if buf is not None:
        raise ValueError("line %d: continuation runs past the end" % start)
    return out


def stages(instrs):
    """[{'base','name','instrs'}] per FROM."""
    st = []
    for i in instrs:
        if i.op == "FROM":
            w = i.args.split()
            flags = [x for x in w if x.startswith("--")]
            w = [x for x in w if not x.startswith("--")]
            name = w[2] if len(w) == 3 and w[1].lower() == "as" else None
            st.append({"base": w[0], "name": name, "instrs": [], "flags": flags})
        elif not st:
            if i.op != "ARG":
                raise ValueError("%r before the first FROM" % i)
        else:
            st[-1]["instrs"].append(i)
    return st


def apt_installs(instrs):
    """Packages of every `apt-get install` in the RUN instructions."""
    pkgs = []
    for i in instrs:
        if i.op != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", i.args):
            w = shlex.split(cmd)
            w = [x for x in w if "=" not in x or x.startswith("-")]  # VAR=value prefixes
            if len(w) >= 2 and w[0] == "apt-get" and "install" in w:
                pkgs += [x for x in w[w.index("install") + 1:] if not x.startswith("-")]
    return pkgs


def docker_facts(text):
    """What the Dockerfile itself decides and the other files must agree with."""
    st = stages(parse_dockerfile(text))
    rt = st[-1]["instrs"] if st else []
    f = {"config_path": None, "uid": None, "workdir": None, "prefix": None}
    for i in rt:
        if i.op == "COPY" and not i.args.startswith("--from") and "deploy/skuld.yaml" in i.args:
            f["config_path"] = i.args.split()[-1]
        if i.op == "WORKDIR":
            f["workdir"] = i.args
        if i.op == "USER":
            f["uid"] = i.args.split(":")[0]
        if i.op == "COPY" and i.args.startswith("--from"):
            f["prefix"] = i.args.split()[-1]
    return f


# ---------------------------------------------------------------- facts from the code

def code_facts():
    api = read("src/api/api.c")
    live = ready = None
    for m in re.finditer(r'else if \(http_slice_eq\(req->path, "(/[^"]+)"\) &&\s*\((.*?)\n    \}',
                         api, re.S):
        path, body = m.group(1), m.group(2)
        if "draining" in body and "503" in body:
            ready = path
        elif re.search(r"api_send\(c, 200,", body) and "503" not in body:
            live = live or path
    gw = read("src/server/gateway.c")
    blocked = set(re.findall(r"sigaddset\(&sigs, (SIG[A-Z0-9]+)\)", gw))
    reload_sigs = set(re.findall(r"ssi_signo == (SIG[A-Z0-9]+)", gw))
    srv = read("src/config/server.c")
    drain = re.search(r"s->drain_timeout_ms = (\d+);", srv)
    listen = re.search(r's->listen = strdup\("([^"]+)"\);', srv)
    readme = read("README.md")
    setup = re.search(r"^apt-get install ([a-z0-9 .+-]+?)\s+#", readme, re.M)
    facts = {
        "live": live, "ready": ready,
        "drain_signals": blocked - reload_sigs, "reload_signals": reload_sigs,
        "default_drain_s": int(drain.group(1)) / 1000 if drain else None,
        "default_listen": listen.group(1) if listen else None,
        "setup_pkgs": setup.group(1).split() if setup else None,
    }
    missing = [k for k, v in facts.items() if not v]
    if missing:
        raise AssertionError("could not read %s from the code/README" % missing)
    unit = read("deploy/skuld.service.in")
    facts["unit_workdir"] = re.search(r"^WorkingDirectory=(.*)$", unit, re.M).group(1)
    return facts


def config_drain_s(cfg, facts):
    v = (cfg.get("server") or {}).get("drain_timeout")
    return duration_s(v) if v is not None else facts["default_drain_s"]


def runtime_packages(prefix):
    """Debian packages of every library that bin/skuld and lib/skuld/*.so need
    directly and that is not installed with them (libc6 left out: essential)."""
    objs = [os.path.join(prefix, "bin/skuld")] + sorted(glob.glob(os.path.join(prefix, "lib/skuld/*.so")))
    ours = set(os.listdir(os.path.join(prefix, "lib/skuld")))
    needed = set()
    for o in objs:
        d = subprocess.run(["readelf", "-d", o], capture_output=True, text=True, check=True).stdout
        needed |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", d))
    needed -= ours
    paths = {}
    for o in objs:
        ldd = subprocess.run(["ldd", o], capture_output=True, text=True).stdout
        for m in re.finditer(r"^\s*(\S+) => (/\S+)", ldd, re.M):
            paths.setdefault(m.group(1), m.group(2))
    pkgs, unresolved = {}, []
    for so in sorted(needed):
        if so.startswith("ld-linux"):
            pkgs[so] = "libc6"
            continue
        p = paths.get(so)
        if not p:
            unresolved.append(so)
            continue
        owner = None
        for cand in (p, os.path.realpath(p), p.replace("/lib/", "/usr/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0].strip()
                break
        if not owner:
            unresolved.append(so)
        else:
            pkgs[so] = owner
    if unresolved:
        raise AssertionError("no Debian package found for %s" % unresolved)
    return {so: p for so, p in pkgs.items() if p != "libc6"}


# ---------------------------------------------------------------- checkers

def check_dockerfile(text, facts):
    """Problems of the Dockerfile against the facts (an empty list: none)."""
    bad = []
    try:
        st = stages(parse_dockerfile(text))
    except ValueError as e:
        return ["does not parse: %s" % e]
    if len(st) != 2:
        return ["%d FROM stages, want 2 (build, runtime)" % len(st)]
    b, r = st
    if b["base"] != "debian:12" or not b["name"]:
        bad.append("build stage FROM %s AS %s, want debian:12 AS NAME" % (b["base"], b["name"]))
    if r["base"] != "debian:12-slim":
        bad.append("runtime stage FROM %s, want debian:12-slim" % r["base"])
    if apt_installs(b["instrs"]) != facts["setup_pkgs"]:
        bad.append("build stage installs %s, the README's Set up asks for %s" %
                   (apt_installs(b["instrs"]), facts["setup_pkgs"]))
    prefix = None
    for i in b["instrs"]:
        m = i.op == "RUN" and re.search(r"(?:^|&&|;)\s*make install PREFIX=(/\S+)\s*$", i.args)
        if m:
            prefix = m.group(1)
    if not prefix:
        bad.append("build stage does not RUN `make install PREFIX=...`")
    if not any(i.op == "COPY" and i.args.split()[:1] == ["."] for i in b["instrs"]):
        bad.append("build stage does not COPY the source tree")

    ri = r["instrs"]

    def ops(op):
        return [i for i in ri if i.op == op]

    copies = [i.args.split() for i in ops("COPY") if i.args.startswith("--from=")]
    if not any(c == ["--from=%s" % b["name"], prefix, prefix] for c in copies if prefix):
        bad.append("runtime stage does not COPY --from=%s %s %s" % (b["name"], prefix, prefix))
    have = set(apt_installs(ri))
    for so, pkg in sorted(facts["runtime_pkgs"].items()):
        if pkg not in have:
            bad.append("runtime stage lacks %s (for %s)" % (pkg, so))
    for pkg in ("ca-certificates", "curl"):
        if pkg not in have:
            bad.append("runtime stage lacks %s" % pkg)
    uid = None
    for i in ri:
        if i.op == "RUN":
            m = re.search(r"useradd\b[^&;]*--uid (\d+)[^&;]*\bskuld\b", i.args)
            uid = m.group(1) if m else uid
    users = ops("USER")
    if not users:
        bad.append("no USER: the gateway would run as root")
    else:
        u = users[-1].args.split(":")[0]
        if not u.isdigit() or int(u) == 0:
            bad.append("USER %s: want a numeric non-root uid (Kubernetes runAsNonRoot)" % users[-1].args)
        elif u != uid:
            bad.append("USER %s is not the uid useradd gives skuld (%s)" % (u, uid))
    wd = ops("WORKDIR")[-1].args if ops("WORKDIR") else None
    if wd != facts["unit_workdir"]:
        bad.append("WORKDIR %s, the unit's WorkingDirectory is %s" % (wd, facts["unit_workdir"]))
    vols = [v for i in ops("VOLUME") for v in (i.json_args() or i.args.split())]
    if wd not in vols:
        bad.append("the working directory %s is not a VOLUME (%s)" % (wd, vols))
    ports = [p.split("/")[0] for i in ops("EXPOSE") for p in i.args.split()]
    if str(facts["port"]) not in ports:
        bad.append("EXPOSE %s, the configs listen on %d" % (ports, facts["port"]))
    sig = ops("STOPSIGNAL")
    if not sig or sig[-1].args not in facts["drain_signals"]:
        bad.append("STOPSIGNAL %s does not drain (%s do)" %
                   (sig[-1].args if sig else None, sorted(facts["drain_signals"])))
    hc = ops("HEALTHCHECK")
    want = "http://127.0.0.1:%d%s" % (facts["port"], facts["live"])
    if not hc or not re.search(r"\bCMD\b.*\bcurl\b.*\s%s(\s|$)" % re.escape(want), hc[-1].args):
        bad.append("HEALTHCHECK does not curl %s" % want)
    cfg_copy = [i.args.split() for i in ops("COPY") if not i.args.startswith("--from")]
    cfg_dest = [c[-1] for c in cfg_copy if c[:1] == ["deploy/skuld.yaml"]]
    cmd = ops("CMD")[-1].json_args() if ops("CMD") else None
    if not cmd or cmd[:2] != ["/bin/sh", "-c"] or len(cmd) != 3:
        bad.append("CMD is not [\"/bin/sh\", \"-c\", SCRIPT]: %s" % cmd)
    else:
        script = cmd[2]
        m = re.search(r"exec (\S+) serve -c (\S+)$", script)
        if not m or m.group(1) != "%s/bin/skuld" % prefix:
            bad.append("CMD does not end in `exec %s/bin/skuld serve -c CONFIG`" % prefix)
        elif not cfg_dest or m.group(2) != cfg_dest[0]:
            bad.append("CMD serves %s, the config is COPYed to %s" % (m.group(2), cfg_dest))
        demo = [mm["path"] for mm in facts["example_cfg"]["models"] if mm.get("provider") == "local"]
        for p in demo:
            if ("test -e %s ||" % p) not in script or ("demo-model -o %s" % p) not in script:
                bad.append("CMD does not write the demo model %s when absent" % p)
    return bad


def check_dockerignore(text):
    pats = {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}
    bad = []
    for want in ("build*", ".deps", "**/node_modules"):
        if want not in pats:
            bad.append(".dockerignore lacks %s" % want)
    return bad


def check_compose(doc, facts, dockerf, compose_dir):
    bad = []
    svcs = doc.get("services") or {}
    ctx_ok = lambda s: isinstance(s.get("build"), dict) and os.path.realpath(  # noqa: E731
        os.path.join(compose_dir, s["build"].get("context", "."))) == os.path.realpath(ROOT) \
        and s["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    gws = {n: s for n, s in svcs.items() if ctx_ok(s)}
    if len(gws) < 2:
        bad.append("%d skuld services built from the Dockerfile, want 2" % len(gws))
    ccfg = facts["cluster_cfg"]
    drain = config_drain_s(ccfg, facts)
    port = listen_host_port(ccfg["server"]["listen"])[1]
    envs = []
    data_vols = []
    for n, s in gws.items():
        vols = s.get("volumes") or []
        mounts = {}
        for v in vols:
            parts = v.split(":")
            mounts[parts[1]] = parts[0]
        src = mounts.get(dockerf["config_path"])
        if not src or os.path.realpath(os.path.join(compose_dir, src)) != \
                os.path.realpath(os.path.join(ROOT, "deploy/skuld-cluster.yaml")):
            bad.append("%s: deploy/skuld-cluster.yaml is not mounted at %s" % (n, dockerf["config_path"]))
        if dockerf["workdir"] not in mounts:
            bad.append("%s: no volume at %s" % (n, dockerf["workdir"]))
        else:
            data_vols.append(mounts[dockerf["workdir"]])
        cports = [str(p).split(":")[-1].split("/")[0] for p in s.get("ports") or []]
        if cports != [str(port)]:
            bad.append("%s: container ports %s, the config listens on %d" % (n, cports, port))
        if s.get("stop_signal", "SIGTERM") not in facts["drain_signals"]:
            bad.append("%s: stop_signal %s does not drain" % (n, s.get("stop_signal")))
        g = s.get("stop_grace_period")
        if g is None or duration_s(g) <= drain:
            bad.append("%s: stop_grace_period %s is not longer than drain_timeout %gs" % (n, g, drain))
        dep = s.get("depends_on") or {}
        for want in ("postgres", "redis"):
            if not isinstance(dep, dict) or (dep.get(want) or {}).get("condition") != "service_healthy":
                bad.append("%s: does not wait for %s to be healthy" % (n, want))
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        envs.append(env)
        for name in sorted(required_env_names(ccfg) - set(env)):
            bad.append("%s: %s (used by the config) is not set" % (n, name))
        for name in sorted(secret_env_names(ccfg) & set(env)):
            if not re.search(r"\$\{[A-Z_]+:\?[^}]*\}", str(env[name])):
                bad.append("%s: %s is written in the file, not taken from ${VAR:?...}" % (n, name))
    if len(set(data_vols)) != len(data_vols):
        bad.append("the replicas share a data volume: %s" % data_vols)
    if envs and any(e != envs[0] for e in envs):
        bad.append("the replicas' environments differ (they must share one store and Redis)")
    for want, img in (("postgres", "postgres:"), ("redis", "redis:")):
        s = svcs.get(want)
        if not s or not str(s.get("image", "")).startswith(img):
            bad.append("no %s service from image %s*" % (want, img))
        elif not (s.get("healthcheck") or {}).get("test"):
            bad.append("%s has no healthcheck" % want)
    if envs:
        e = envs[0]
        if store_needs_pg_env(ccfg):
            pg = (svcs.get("postgres") or {}).get("environment") or {}
            if e.get("PGHOST") != "postgres":
                bad.append("PGHOST %s is not the postgres service" % e.get("PGHOST"))
            if e.get("PGUSER") != pg.get("POSTGRES_USER") or e.get("PGDATABASE") != pg.get("POSTGRES_DB"):
                bad.append("PGUSER/PGDATABASE do not match the postgres service's")
            if e.get("PGPASSWORD") != pg.get("POSTGRES_PASSWORD"):
                bad.append("PGPASSWORD is not the postgres service's password")
        ru = ccfg.get("redis", {}).get("url", "")
        rv = e.get(ru[4:], "") if ru.startswith("env:") else ru
        if not re.match(r"redis://(:[^@]*@)?redis:6379(/\d+)?$", rv):
            bad.append("the redis url %r is not the redis service" % rv)
    return bad


def _by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d.get("kind"), []).append(d)
    return out


def _sel_ok(sel, labels):
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def check_k8s(docs, facts, dockerf, readme):
    bad = []
    k = _by_kind(docs)
    want = {"ConfigMap": "v1", "Deployment": "apps/v1", "Service": "v1",
            "PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2"}
    for kind, api in want.items():
        if len(k.get(kind, [])) != 1:
            bad.append("%d %s, want 1" % (len(k.get(kind, [])), kind))
        elif k[kind][0].get("apiVersion") != api:
            bad.append("%s apiVersion %s, want %s" % (kind, k[kind][0].get("apiVersion"), api))
    for s in k.get("Secret", []):
        if s.get("data") or s.get("stringData"):
            bad.append("a Secret with data is committed (%s)" % s["metadata"]["name"])
    if bad:
        return bad
    cm, dep, svc, pdb, hpa = (k[x][0] for x in want)
    ccfg = facts["cluster_cfg"]
    drain = config_drain_s(ccfg, facts)
    port = listen_host_port(ccfg["server"]["listen"])[1]

    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels") or {}
    if not _sel_ok(spec["selector"].get("matchLabels"), labels):
        bad.append("the Deployment's selector does not match its pods")
    if spec.get("replicas", 1) < 2:
        bad.append("Deployment replicas %s, want at least 2" % spec.get("replicas"))
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        bad.append("pods do not set runAsNonRoot: true")
    if str(psc.get("runAsUser")) != dockerf["uid"]:
        bad.append("runAsUser %s is not the image's uid %s" % (psc.get("runAsUser"), dockerf["uid"]))
    cs = pod.get("containers") or []
    if len(cs) != 1:
        return bad + ["%d containers, want 1" % len(cs)]
    c = cs[0]
    cports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if cports.get("http") != port:
        bad.append("containerPort http %s, the config listens on %d" % (cports.get("http"), port))

    def resolve(p):
        return cports.get(p) if isinstance(p, str) else p

    for probe, path in (("readinessProbe", facts["ready"]), ("livenessProbe", facts["live"])):
        g = (c.get(probe) or {}).get("httpGet") or {}
        if g.get("path") != path:
            bad.append("%s path %s, the code's is %s" % (probe, g.get("path"), path))
        if resolve(g.get("port")) != port:
            bad.append("%s port %s is not %d" % (probe, g.get("port"), port))
    sp = (c.get("startupProbe") or {}).get("httpGet")
    if sp and sp.get("path") not in (facts["live"], facts["ready"]):
        bad.append("startupProbe path %s is not a health path" % sp.get("path"))
    if c.get("command") or c.get("args"):
        bad.append("the container overrides the image's CMD")
    csc = c.get("securityContext") or {}
    if csc.get("readOnlyRootFilesystem") is not True or csc.get("allowPrivilegeEscalation") is not False:
        bad.append("the container is not readOnlyRootFilesystem without privilege escalation")
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
    cfg_dir, cfg_file = os.path.split(dockerf["config_path"])
    v = vols.get(mounts.get(cfg_dir), {})
    cmv = v.get("configMap") or {}
    if cmv.get("name") != cm["metadata"]["name"]:
        bad.append("ConfigMap %s is not mounted at %s" % (cm["metadata"]["name"], cfg_dir))
    else:
        items = cmv.get("items")
        names = [it["path"] for it in items] if items else list(cm.get("data", {}))
        if cfg_file not in names:
            bad.append("the ConfigMap volume has no %s" % cfg_file)
    if cm.get("data", {}).get(cfg_file) != facts["cluster_text"]:
        bad.append("the ConfigMap's %s is not deploy/skuld-cluster.yaml's text" % cfg_file)
    dv = vols.get(mounts.get(dockerf["workdir"]), {})
    if "emptyDir" not in dv and "persistentVolumeClaim" not in dv:
        bad.append("%s is not a writable volume (the root filesystem is read-only)" % dockerf["workdir"])
    env = {e["name"]: e for e in c.get("env") or []}
    for name in sorted(required_env_names(ccfg) - set(env)):
        bad.append("env %s (used by the config) is not set" % name)
    refs = set()
    for name in sorted(secret_env_names(ccfg) & set(env)):
        ref = (env[name].get("valueFrom") or {}).get("secretKeyRef")
        if not ref or "value" in env[name]:
            bad.append("env %s is not taken from a secretKeyRef" % name)
        else:
            refs.add((ref["name"], ref["key"]))
    snames = {n for n, _ in refs}
    if len(snames) > 1:
        bad.append("secrets come from several Secrets: %s" % sorted(snames))
    elif snames:
        sname = snames.pop()
        m = re.search(r"kubectl create secret generic %s((?:\s*\\\n|\s)+--from-literal=[^\n]*)+" %
                      re.escape(sname), readme)
        given = set(re.findall(r"--from-literal=([A-Za-z_][A-Za-z0-9_]*)=", m.group(0))) if m else set()
        for _, key in sorted(refs):
            if key not in given:
                bad.append("the README's `kubectl create secret generic %s` lacks %s" % (sname, key))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
    pre_s = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0.0
    if not pre_s:
        bad.append("no preStop sleep: the endpoint may still get requests after SIGTERM")
    if grace <= pre_s + drain:
        bad.append("terminationGracePeriodSeconds %s is not longer than preStop %gs + drain_timeout %gs"
                   % (grace, pre_s, drain))
    req = (c.get("resources") or {}).get("requests") or {}
    if "cpu" not in req:
        bad.append("no cpu request (the HPA scales on CPU utilization of it)")

    if not _sel_ok(svc["spec"].get("selector"), labels):
        bad.append("the Service does not select the pods")
    for p in svc["spec"].get("ports") or []:
        if resolve(p.get("targetPort", p.get("port"))) != port:
            bad.append("Service targetPort %s does not reach %d" % (p.get("targetPort"), port))
    if not _sel_ok((pdb["spec"].get("selector") or {}).get("matchLabels"), labels):
        bad.append("the PodDisruptionBudget does not select the pods")
    t = hpa["spec"].get("scaleTargetRef") or {}
    if (t.get("kind"), t.get("name"), t.get("apiVersion")) != ("Deployment", dep["metadata"]["name"], "apps/v1"):
        bad.append("the HPA does not target Deployment %s" % dep["metadata"]["name"])
    mn = hpa["spec"].get("minReplicas", 1)
    if mn < 2:
        bad.append("HPA minReplicas %s, want at least 2" % mn)
    ma = pdb["spec"].get("minAvailable")
    if not isinstance(ma, int) or not 1 <= ma < min(mn, spec.get("replicas", 1)):
        bad.append("PDB minAvailable %s: want at least 1 and fewer than the replicas" % ma)
    if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
               for m in hpa["spec"].get("metrics") or []):
        bad.append("the HPA does not scale on cpu")
    return bad


# ---------------------------------------------------------------- the tests

FACTS = {}
DOCKERF = {}


def setUpModule():
    FACTS.update(code_facts())
    FACTS["example_cfg"] = load_yaml("deploy/skuld.yaml")
    FACTS["cluster_text"] = read("deploy/skuld-cluster.yaml")
    FACTS["cluster_cfg"] = yaml.safe_load(FACTS["cluster_text"])
    ports = {listen_host_port(FACTS[c]["server"]["listen"])[1] for c in ("example_cfg", "cluster_cfg")}
    assert len(ports) == 1, "the example and cluster configs listen on different ports: %s" % ports
    FACTS["port"] = ports.pop()
    prefix = os.path.join(H.mkdtemp("skuld-deploy-"), "opt", "skuld")
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    FACTS["runtime_pkgs"] = runtime_packages(prefix)
    DOCKERF.update(docker_facts(read("Dockerfile")))


class FactsTest(unittest.TestCase):
    def test_facts_from_code(self):
        self.assertEqual(FACTS["live"], "/healthz")
        self.assertEqual(FACTS["ready"], "/readyz")
        self.assertEqual(FACTS["drain_signals"], {"SIGTERM", "SIGINT"})
        self.assertEqual(FACTS["reload_signals"], {"SIGHUP"})
        self.assertEqual(FACTS["default_drain_s"], 30)
        # The code's default listens on loopback only: a container must say where.
        self.assertTrue(FACTS["default_listen"].startswith("127.0.0.1:"))
        for c in ("example_cfg", "cluster_cfg"):
            host, _ = listen_host_port(FACTS[c]["server"]["listen"])
            self.assertIn(host, ("0.0.0.0", "[::]", ""), c)
        # What a build stage links: libevent, curl, ... (dpkg -S of each NEEDED).
        self.assertIn("libhiredis0.14", FACTS["runtime_pkgs"].values())
        self.assertIn("libstdc++6", FACTS["runtime_pkgs"].values())

    def test_makefile_install_runs_deps(self):
        mk = read("Makefile")
        self.assertRegex(mk, r"(?m)^install: build$")
        self.assertRegex(mk, r"(?m)^build: configure-run$")
        self.assertRegex(mk, r"(?m)^configure-run: deps$")
        self.assertRegex(mk, r"(?m)^deps:\n\tscripts/install-deps.sh$")
        self.assertRegex(mk, r"cmake --install \$\(BUILD\) --prefix \$\(PREFIX\)")


class FilesTest(unittest.TestCase):
    def test_yaml_parses(self):
        files = sorted(glob.glob(os.path.join(ROOT, "deploy/**/*.yaml"), recursive=True))
        self.assertGreaterEqual(len(files), 8, files)
        for p in files:
            with open(p) as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            self.assertTrue(docs, p)
            for d in docs:
                self.assertIsInstance(d, dict, p)

    def test_dockerfile(self):
        bad = check_dockerfile(read("Dockerfile"), FACTS)
        if SANITIZED:  # its NEEDED list is not the image's; the release build's run checks it
            bad = [b for b in bad if not b.startswith("runtime stage lacks ")]
        self.assertEqual(bad, [])
        self.assertEqual(DOCKERF["config_path"], "/etc/skuld/skuld.yaml")
        self.assertEqual(DOCKERF["workdir"], "/var/lib/skuld")

    def test_dockerignore(self):
        self.assertEqual(check_dockerignore(read(".dockerignore")), [])

    def test_compose(self):
        self.assertEqual(check_compose(load_yaml("deploy/compose.yaml"), FACTS, DOCKERF,
                                       os.path.join(ROOT, "deploy")), [])

    def test_k8s(self):
        self.assertEqual(check_k8s(load_k8s(), FACTS, DOCKERF, read("README.md")), [])

    def test_cluster_config_passes_check(self):
        env = {n: "dummy-" + n.lower() for n in env_refs(FACTS["cluster_cfg"])}
        env.update({n: "redis://127.0.0.1:6379/0" for n in env if "REDIS" in n})
        rc, out, err = H.run_skuld(["check", "-c", os.path.join(ROOT, "deploy/skuld-cluster.yaml")], env=env)
        self.assertEqual(rc, 0, err)
        rc, out, err = H.run_skuld(["check", "-c", os.path.join(ROOT, "deploy/skuld.yaml")])
        self.assertEqual(rc, 0, err)
        # Without its variables it is refused, naming each one.
        clean = {k: v for k, v in os.environ.items() if k not in env}
        p = subprocess.run([H.SKULD_BIN, "check", "-c", os.path.join(ROOT, "deploy/skuld-cluster.yaml")],
                           capture_output=True, text=True, env=clean)
        self.assertEqual(p.returncode, 1)
        for n in env:
            self.assertIn("environment variable %s is not set" % n, p.stderr)


class CheckersCatchMistakesTest(unittest.TestCase):
    """Each checker rejects a copy with one thing wrong."""

    def dockerfile_rejects(self, old, new, what):
        text = read("Dockerfile")
        self.assertIn(old, text)
        bad = check_dockerfile(text.replace(old, new, 1), FACTS)
        self.assertTrue(any(what in b for b in bad), (what, bad))

    def test_dockerfile_mutations(self):
        self.dockerfile_rejects("USER 10001:10001", "USER 0", "non-root")
        self.dockerfile_rejects("USER 10001:10001", "USER skuld", "numeric")
        self.dockerfile_rejects("USER 10001:10001\n", "", "no USER")
        self.dockerfile_rejects("8080/healthz", "8080/health", "HEALTHCHECK")
        self.dockerfile_rejects("EXPOSE 8080", "EXPOSE 9090", "EXPOSE")
        self.dockerfile_rejects("FROM debian:12 AS build", "FROM debian:11 AS build", "build stage FROM")
        self.dockerfile_rejects("FROM debian:12-slim", "FROM debian:12", "runtime stage FROM")
        self.dockerfile_rejects("RUN make install PREFIX=/opt/skuld", "RUN cmake --build build",
                                "make install")
        self.dockerfile_rejects("git make sudo ca-certificates", "git make ca-certificates", "Set up")
        self.dockerfile_rejects("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "STOPSIGNAL")
        self.dockerfile_rejects("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGHUP", "STOPSIGNAL")
        self.dockerfile_rejects("serve -c /etc/skuld/skuld.yaml", "serve -c /etc/skuld.yaml", "CMD serves")
        self.dockerfile_rejects(" libhiredis0.14 ", " ", "libhiredis0.14")
        self.dockerfile_rejects("VOLUME /var/lib/skuld", "VOLUME /data", "VOLUME")
        self.dockerfile_rejects("WORKDIR /var/lib/skuld", "WORKDIR /srv", "WORKDIR")
        self.dockerfile_rejects("test -e skuld-data/demo.gguf ||", "", "demo model")
        self.dockerfile_rejects("COPY --from=build /opt/skuld /opt/skuld", "COPY --from=build /opt/skuld /usr",
                                "COPY --from")
        bad = check_dockerfile(read("Dockerfile") + "RUN true \\\n", FACTS)
        self.assertTrue(any("does not parse" in b for b in bad), bad)

    def test_dockerignore_mutation(self):
        self.assertTrue(check_dockerignore(read(".dockerignore").replace(".deps\n", "")))

    def compose_rejects(self, mutate, what):
        doc = copy.deepcopy(load_yaml("deploy/compose.yaml"))
        mutate(doc)
        bad = check_compose(doc, FACTS, DOCKERF, os.path.join(ROOT, "deploy"))
        self.assertTrue(any(what in b for b in bad), (what, bad))

    def test_compose_mutations(self):
        s1 = lambda d: d["services"]["skuld-1"]  # noqa: E731
        self.compose_rejects(lambda d: s1(d).update(stop_grace_period="20s"), "stop_grace_period")
        self.compose_rejects(lambda d: s1(d).update(stop_signal="SIGKILL"), "stop_signal")
        self.compose_rejects(lambda d: s1(d)["depends_on"]["redis"].update(condition="service_started"),
                             "redis to be healthy")
        self.compose_rejects(lambda d: s1(d).update(environment=dict(s1(d)["environment"],
                                                                     SKULD_MASTER_KEY="sk-literal")),
                             "written in the file")
        self.compose_rejects(lambda d: s1(d)["environment"].pop("SKULD_STORE_KEY"), "SKULD_STORE_KEY")
        self.compose_rejects(lambda d: s1(d).update(ports=["8081:9090"]), "container ports")
        self.compose_rejects(lambda d: s1(d).update(volumes=[v.replace("/etc/skuld/skuld.yaml", "/etc/skuld.yaml")
                                                             for v in s1(d)["volumes"]]), "not mounted")
        self.compose_rejects(lambda d: s1(d).update(volumes=[v.replace("skuld-1-data", "skuld-2-data")
                                                             for v in s1(d)["volumes"]]), "share a data volume")
        self.compose_rejects(lambda d: d["services"].pop("skuld-2"), "want 2")
        self.compose_rejects(lambda d: d["services"]["redis"].pop("healthcheck"), "redis has no healthcheck")
        self.compose_rejects(lambda d: s1(d).update(environment=dict(s1(d)["environment"], PGHOST="db")),
                             "differ")

    def k8s_rejects(self, mutate, what, readme=None):
        docs = copy.deepcopy(load_k8s())
        by = {d["kind"]: d for d in docs}
        mutate(by)
        bad = check_k8s(docs, FACTS, DOCKERF, readme if readme is not None else read("README.md"))
        self.assertTrue(any(what in b for b in bad), (what, bad))

    def test_k8s_mutations(self):
        pod = lambda b: b["Deployment"]["spec"]["template"]["spec"]  # noqa: E731
        ctr = lambda b: pod(b)["containers"][0]  # noqa: E731
        env = lambda b, n: [e for e in ctr(b)["env"] if e["name"] == n][0]  # noqa: E731

        self.k8s_rejects(lambda b: ctr(b)["readinessProbe"]["httpGet"].update(path="/healthz"), "readinessProbe path")
        self.k8s_rejects(lambda b: ctr(b)["livenessProbe"]["httpGet"].update(path="/readyz"), "livenessProbe path")
        self.k8s_rejects(lambda b: ctr(b)["livenessProbe"]["httpGet"].update(port=9090), "livenessProbe port")
        self.k8s_rejects(lambda b: pod(b).update(terminationGracePeriodSeconds=30), "terminationGracePeriodSeconds")
        self.k8s_rejects(lambda b: ctr(b).pop("lifecycle"), "preStop")
        self.k8s_rejects(lambda b: pod(b)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot")
        self.k8s_rejects(lambda b: pod(b)["securityContext"].update(runAsUser=1000), "runAsUser")
        self.k8s_rejects(lambda b: ctr(b)["securityContext"].update(readOnlyRootFilesystem=False), "readOnly")
        self.k8s_rejects(lambda b: ctr(b)["ports"][0].update(containerPort=9090), "containerPort")
        self.k8s_rejects(lambda b: b["ConfigMap"]["data"].update({"skuld.yaml": FACTS["cluster_text"] + "#\n"}),
                         "text")
        self.k8s_rejects(lambda b: ctr(b)["volumeMounts"][0].update(mountPath="/etc"), "not mounted")
        self.k8s_rejects(lambda b: b["Service"]["spec"]["ports"][0].update(targetPort=9090), "targetPort")
        self.k8s_rejects(lambda b: b["Service"]["spec"].update(selector={"app": "other"}), "Service does not")
        self.k8s_rejects(lambda b: b["PodDisruptionBudget"]["spec"]["selector"].update(matchLabels={"a": "b"}),
                         "PodDisruptionBudget")
        self.k8s_rejects(lambda b: b["PodDisruptionBudget"]["spec"].update(minAvailable=2), "minAvailable")
        self.k8s_rejects(lambda b: b["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"].update(name="x"), "HPA")
        self.k8s_rejects(lambda b: b["HorizontalPodAutoscaler"].update(apiVersion="autoscaling/v1"), "apiVersion")
        self.k8s_rejects(lambda b: ctr(b).update(env=[e for e in ctr(b)["env"] if e["name"] != "SKULD_REDIS_URL"]),
                         "SKULD_REDIS_URL")
        self.k8s_rejects(lambda b: (env(b, "PGPASSWORD").pop("valueFrom"), env(b, "PGPASSWORD").update(value="pw")),
                         "PGPASSWORD is not taken from a secretKeyRef")
        self.k8s_rejects(lambda b: env(b, "SKULD_STORE_KEY")["valueFrom"]["secretKeyRef"].update(name="other"),
                         "several Secrets")
        self.k8s_rejects(lambda b: ctr(b)["resources"]["requests"].pop("cpu"), "cpu request")
        self.k8s_rejects(lambda b: ctr(b).update(args=["serve"]), "overrides")
        self.k8s_rejects(lambda b: None, "lacks SKULD_STORE_KEY",
                         readme=read("README.md").replace("--from-literal=SKULD_STORE_KEY=", "--x="))

    def test_committed_secret_rejected(self):
        docs = load_k8s() + [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                              "stringData": {"PGPASSWORD": "pw"}}]
        bad = check_k8s(docs, FACTS, DOCKERF, read("README.md"))
        self.assertTrue(any("Secret with data" in b for b in bad), bad)


class LiveClusterTest(unittest.TestCase):
    """Two real gateways on the ConfigMap's config, a real PostgreSQL and Redis."""

    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer().start()
        cls.redis = RedisServer()
        cm = [d for d in load_k8s() if d["kind"] == "ConfigMap"][0]
        cls.config_text = cm["data"][os.path.basename(DOCKERF["config_path"])]
        cls.master = "mk-" + secrets.token_hex(12)
        # The Deployment's environment, its values pointing at the servers started here.
        cls.env = {"SKULD_MASTER_KEY": cls.master, "SKULD_STORE_KEY": secrets.token_hex(16),
                   "SKULD_REDIS_URL": cls.redis.url, "PGHOST": "127.0.0.1", "PGPORT": str(cls.pg.port),
                   "PGUSER": cls.pg.user, "PGDATABASE": cls.pg.dbname, "PGPASSWORD": cls.pg.password}
        dep = [d for d in load_k8s() if d["kind"] == "Deployment"][0]
        names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert names == set(cls.env), (names, set(cls.env))
        cls.gws = []
        for _ in range(2):
            work = H.mkdtemp("skuld-varlib-")
            cls.run_cmd_prelude(work)
            cls.gws.append(H.Skuld(cls.config_text, env=cls.env, cwd=work, ready_timeout=30))

    @classmethod
    def run_cmd_prelude(cls, work):
        """The Dockerfile's CMD up to its `exec ... serve`, binary path mapped to the build."""
        cmd = [i for i in parse_dockerfile(read("Dockerfile")) if i.op == "CMD"][-1].json_args()
        pre = cmd[2].rsplit("; exec ", 1)[0].replace(DOCKERF["prefix"] + "/bin/skuld", H.SKULD_BIN)
        for _ in range(2):  # the second run finds the model and writes nothing
            p = subprocess.run(["/bin/sh", "-c", pre], cwd=work, capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
        assert os.path.isfile(os.path.join(work, "skuld-data/demo.gguf"))

    @classmethod
    def tearDownClass(cls):
        for g in cls.gws:
            if g.alive():
                g.proc.kill()
                g.proc.wait()
        cls.redis.stop()
        cls.pg.stop()

    def test_1_probes(self):
        dep = [d for d in load_k8s() if d["kind"] == "Deployment"][0]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        hc = [i for i in parse_dockerfile(read("Dockerfile")) if i.op == "HEALTHCHECK"][-1]
        hc_path = re.search(r"http://127\.0\.0\.1:\d+(/\S*)", hc.args).group(1)
        for g in self.gws:
            for path in (c["readinessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["path"],
                         c["startupProbe"]["httpGet"]["path"], hc_path):
                r = H.request(g.port, "GET", path)
                self.assertEqual(r.status, 200, (path, r.body))
            self.assertEqual(H.request(g.port, "GET", "/readyz-not-a-path").status, 404)
            self.assertIn("store: postgres", g.stderr())

    def test_2_replicas_share_store_and_redis(self):
        a, b = self.gws
        adm = {"Authorization": "Bearer " + self.master}
        r = H.post_json(a.port, "/admin/keys", {"name": "deploy-test", "rpm": 1}, headers=adm)
        self.assertEqual(r.status, 201, r.body)
        key = r.json()["key"]
        auth = {"Authorization": "Bearer " + key}
        r = H.chat(a.port, "hello", model="echo", headers=auth)
        self.assertEqual(r.status, 200, r.body)
        # Replica b learns the key from the shared store (refresh every 5 s) ...
        H.wait_until(lambda: H.request(b.port, "GET", "/v1/key/usage", headers=auth).status == 200, 12,
                     interval=0.2, what="the key created on replica a known on replica b")
        u = H.request(b.port, "GET", "/v1/key/usage", headers=auth).json()
        self.assertEqual(u["source"], "redis", u)
        # ... and the one request per minute was spent on a: the counter is in Redis.
        r = H.chat(b.port, "hello", model="echo", headers=auth)
        self.assertEqual(r.status, 429, r.body)
        self.assertEqual(r.json()["error"]["code"], "rate_limit_exceeded")
        # The models are free: settling a zero cost in Redis must not fail (it did: "-0").
        H.wait_until(lambda: H.request(a.port, "GET", "/v1/key/usage", headers=auth).json()
                     ["instance"]["requests"] >= 1, 5, what="the request settled on a")
        for g in (a, b):
            self.assertNotIn("command failed", g.stderr())

    def test_3_readiness_follows_the_store(self):
        a, b = self.gws
        # b stops first, with the store up: SIGTERM drains and exits 0, logging its drain timeout.
        self.assertEqual(b.stop(timeout=40), 0, b.stderr())
        m = re.search(r"signal 15: draining \(timeout (\d+)ms\)", b.stderr())
        self.assertIsNotNone(m, b.stderr())
        drain = int(m.group(1)) / 1000
        self.assertEqual(drain, config_drain_s(FACTS["cluster_cfg"], FACTS))
        k8s = {d["kind"]: d for d in load_k8s()}
        pod = k8s["Deployment"]["spec"]["template"]["spec"]
        pre = float(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertGreater(pod["terminationGracePeriodSeconds"], pre + drain)
        for n, s in load_yaml("deploy/compose.yaml")["services"].items():
            if "build" in s:
                self.assertGreater(duration_s(s["stop_grace_period"]), drain, n)
        # PostgreSQL goes away: a is not ready (out of the Service) but alive (not restarted).
        self.pg.stop()
        H.wait_until(lambda: H.request(a.port, "GET", FACTS["ready"]).status == 503, 12, interval=0.2,
                     what="/readyz 503 without the store")
        self.assertEqual(H.request(a.port, "GET", FACTS["live"]).status, 200)
        self.assertIn("store_unreachable", H.request(a.port, "GET", FACTS["ready"]).body.decode())
        self.assertEqual(a.stop(timeout=60), 0, a.stderr())


if __name__ == "__main__":
    H.main(timeout=280)
