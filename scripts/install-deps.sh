#!/usr/bin/env bash
# Install what Skuld needs on Debian 12, and only what is missing.
#   scripts/install-deps.sh          build + run dependencies (apt)
#   scripts/install-deps.sh --test   also test dependencies (apt, npm ci in tests/e2e)
#   scripts/install-deps.sh --bench  also benchmark peers (nginx, wrk, h2load, Node) and profilers
# Safe to run again: it checks before installing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0 want_bench=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --bench) want_bench=1 ;;
    *) echo "install-deps: unknown option $a" >&2; exit 2 ;;
  esac
done

pkgs=(build-essential cmake pkg-config git ca-certificates curl
      libevent-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev
      libsqlite3-dev libpq-dev libhiredis-dev libjwt-dev libxxhash-dev)
[ $want_test = 1 ] && pkgs+=(libcmocka-dev python3 python3-yaml procps postgresql redis-server) # postgresql, redis-server: tests start real servers; python3-yaml: test_deploy reads the manifests
# systemd: `systemd-analyze verify` checks the installed unit (test_install.py); nothing is started
[ $want_test = 1 ] && pkgs+=(systemd)
# clang + libclang-rt-14-dev: libFuzzer and the sanitizer runtimes for `make test-fuzz`
[ $want_test = 1 ] && pkgs+=(clang libclang-rt-14-dev)
# nginx-light pulls in the echo module bench/run's upstream uses; valgrind, strace and
# linux-perf profile skuld when a benchmark target is missed.
[ $want_bench = 1 ] && pkgs+=(nginx-light wrk nghttp2-client python3 valgrind strace linux-perf postgresql)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js: any install that provides node and npm will do (Debian's, or NodeSource's,
# which bundles npm and conflicts with Debian's npm package).
if [ $want_test = 1 ] || [ $want_bench = 1 ]; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Embedded llama.cpp, pinned (prebuilt libraries + headers from npm), for every build.
command -v npm >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
}
scripts/install-llama.sh

if [ $want_test = 1 ]; then
  # The official SDKs, pinned by tests/e2e/package-lock.json.
  if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
