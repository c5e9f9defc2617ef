#!/usr/bin/env bash
# fresh-check.sh -- the README's two set-up commands on a pristine Debian 12.
#
#   scripts/fresh-check.sh [--keep] [--steps run,install,test]   (as root; .ci/run calls it)
#
# What a new user has: a minimal Debian 12 with only what the README's
# "Before the first command" line names (git make sudo ca-certificates). This
# script builds exactly that root with debootstrap (variant minbase), clones
# this repository's HEAD into it with ../shared beside it, and inside it runs,
# as the README says:
#
#   1. `make run` in the background, until /healthz answers and a chat
#      completion on the default model answers (its time is printed: the
#      first request must be quick); then stops it (SIGTERM to its group).
#   2. `make install PREFIX=/opt/skuld`, deletes the build tree, and runs the
#      installed binary from another directory (version, check of the example
#      config, llama.cpp found in lib/skuld, serve + /healthz + one chat completion
#      on the demo model).
#   3. `make test` (every test; the ctest lines are what .ci/run counts).
#
# Mounts: proc, sysfs, /dev, /dev/pts, /dev/shm (bind) and ../shared
# (read-only bind) under the root; every one is unmounted on every exit path
# (the EXIT trap), after killing whatever still runs inside the root. The
# host's extra CA certificates (/usr/local/share/ca-certificates) are trusted
# inside too, so npm works behind a TLS-inspecting proxy. Packages come from
# the host's configured Debian mirror. The root lives under $FRESH_DIR
# (default /var/tmp) and is deleted at the end unless --keep.
#
# Port 8080 (the embedded default's listen address) must be free on the host:
# the root shares the host's network (it needs the archive and npm).
set -euo pipefail

keep=0 steps=run,install,test
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --steps) steps=${2:?--steps needs a list}; shift ;;
    *) echo "fresh-check: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
step() { case ",$steps," in *,$1,*) return 0 ;; esac; say "step $1 skipped (--steps $steps)"; return 1; }

[ "$(id -u)" = 0 ] || { echo "fresh-check: needs root (debootstrap, mount, chroot)" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/.." && pwd)/shared
[ -d "$shared" ] || { echo "fresh-check: $shared (../shared) is missing" >&2; exit 2; }

t0=$(date +%s)
say() { printf '[fresh-check %4ds] %s\n' $(($(date +%s) - t0)) "$*"; }

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap on the host"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The host's Debian mirror (deb822 sources or sources.list), else deb.debian.org.
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources \
           2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
                               /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  echo "fresh-check: 127.0.0.1:8080 is taken on the host; the default config listens there" >&2
  exit 2
fi

root=$(mktemp -d "${FRESH_DIR:-/var/tmp}/skuld-fresh.XXXXXX")
chmod 755 "$root" # mktemp makes it 0700: "/" of the new system must be traversable by its users
mounts=()
cleanup() {
  local rc=$?
  set +e
  # Whatever still runs inside the root (a server left by a failed step).
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  sleep 0.2
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
  done
  if grep -q " $root/" /proc/mounts; then
    echo "fresh-check: still mounted under $root:" >&2
    grep " $root/" /proc/mounts >&2
    rc=1
  elif [ $keep = 0 ]; then
    rm -rf --one-file-system "$root" "$root.debootstrap.log"
  else
    echo "fresh-check: kept $root"
  fi
  say "exit $rc"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# What the README asks a user to have before the first command; nothing else.
prereq="git,make,sudo,ca-certificates"
say "debootstrap bookworm (minbase + $prereq) from $mirror into $root"
debootstrap --variant=minbase --include="$prereq" bookworm "$root" "$mirror" \
  >"$root.debootstrap.log" 2>&1 || { tail -30 "$root.debootstrap.log" >&2; rm -f "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
# The same suites as the host (updates, security), from the same mirror.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF

mnt() { # mnt TARGET mount-args...
  local target=$1; shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounts+=("$target")
}
mnt "$root/proc" -t proc proc
mnt "$root/sys" -t sysfs sysfs
mnt "$root/dev" --bind /dev
mnt "$root/dev/pts" --bind /dev/pts
mnt "$root/dev/shm" -t tmpfs -o mode=1777 tmpfs
mnt "$root/work/shared" --bind "$shared"
mount -o remount,bind,ro "$root/work/shared"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/hosts "$root/etc/hosts" 2>/dev/null || true

if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  say "trusting the host's extra CA certificates"
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi

say "cloning $repo (HEAD) into the root"
git clone -q --no-local "$repo" "$root/work/skuld"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 bash -c "cd /work/skuld && $1"; }

# --- 1. make run ---------------------------------------------------------------
step_run() {
  say "make run (in the background, until /healthz and a chat completion answer)"
  setsid chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 bash -c 'cd /work/skuld && exec make run' >"$root/work/make-run.log" 2>&1 &
  run_pid=$!
  ready=0
  for _ in $(seq 1 3600); do # up to an hour: apt, npm, the build, the demo model
    if ! kill -0 $run_pid 2>/dev/null; then break; fi
    if curl -fsS -m 2 http://127.0.0.1:8080/healthz >/dev/null 2>&1; then ready=1; break; fi
    sleep 1
  done
  if [ $ready = 0 ]; then
    echo "fresh-check: make run did not answer /healthz; its output:" >&2
    tail -60 "$root/work/make-run.log" >&2
    exit 1
  fi
  say "/healthz answers"
  # The README's first request, as written there (the default model, no max_tokens).
  first=$(curl -sS -m 60 -o "$root/work/first.json" -w '%{http_code} %{time_total}' \
    http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model":"demo","messages":[{"role":"user","content":"Say hello"}]}' || true)
  say "first chat completion: HTTP ${first% *} in ${first#* } s"
  if [ "${first% *}" != 200 ] || ! grep -q '"chat.completion"' "$root/work/first.json"; then
    echo "fresh-check: the first chat completion failed:" >&2
    cat "$root/work/first.json" >&2
    exit 1
  fi
  kill -TERM -- -$run_pid 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 $run_pid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $run_pid 2>/dev/null; then
    echo "fresh-check: make run did not stop on SIGTERM" >&2
    exit 1
  fi
  say "make run stopped"
}

# --- 2. make install, then the installed tree alone -------------------------------
step_install() {
  say "make install PREFIX=/opt/skuld, then the build tree is deleted"
  in_root "make install PREFIX=/opt/skuld >/work/make-install.log 2>&1" ||
    { tail -40 "$root/work/make-install.log" >&2; exit 1; }
  in_root "rm -rf build"
  in_root 'cd /tmp && /opt/skuld/bin/skuld version && /opt/skuld/bin/skuld check -c /opt/skuld/etc/skuld/skuld.yaml &&
    ldd /opt/skuld/bin/skuld | grep -q "=> /opt/skuld/bin/../lib/skuld/libllama"' ||
    { echo "fresh-check: the installed binary does not run on its own" >&2; exit 1; }
  # The embedded default from /tmp: it writes the demo model there and loads
  # llama.cpp from /opt/skuld/lib/skuld (the build tree that linked it is gone).
  setsid chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin bash -c \
    'cd /tmp && exec /opt/skuld/bin/skuld serve' >"$root/work/installed.log" 2>&1 &
  inst_pid=$!
  ready=0
  for _ in $(seq 1 300); do
    if curl -fsS -m 2 http://127.0.0.1:8080/healthz >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
  done
  code=000
  [ $ready = 1 ] && code=$(curl -sS -m 30 -o "$root/work/installed.json" -w '%{http_code}' \
    http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model":"demo","messages":[{"role":"user","content":"hi"}]}' || true)
  kill -TERM -- -$inst_pid 2>/dev/null || true
  wait $inst_pid 2>/dev/null || true
  if [ "$code" != 200 ] || ! grep -q '"chat.completion"' "$root/work/installed.json"; then
    echo "fresh-check: the installed skuld did not serve (ready=$ready, HTTP $code):" >&2
    tail -30 "$root/work/installed.log" >&2
    exit 1
  fi
  say "the installed skuld serves from /tmp with the build tree gone"
}

# --- 3. make test ------------------------------------------------------------------
step_test() {
  say "make test"
  # The output goes to stdout: .ci/run counts ctest's closing lines in it.
  in_root "make test"
  say "make test passed"
}

! step run || step_run
! step install || step_install
! step test || step_test
