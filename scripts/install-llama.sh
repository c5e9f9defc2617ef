#!/usr/bin/env bash
# Install the pinned llama.cpp that Skuld embeds (DESIGN.md "Local inference").
#
# Debian 12 has no llama.cpp. The npm package node-llama-cpp@3.22.1 carries a
# pinned llama.cpp release: prebuilt shared libraries in its platform package
# @node-llama-cpp/linux-x64 and the matching source as a git bundle. This
# script installs both with `npm install --ignore-scripts` (no install script
# of theirs runs, nothing is built or downloaded besides the two packages),
# takes the headers and the llama SPM vocabulary out of the bundle with
# `git archive`, and lays them out for CMake:
#
#   .deps/llama/include/            llama.h, llama-cpp.h
#   .deps/llama/ggml/include/       ggml*.h, gguf.h
#   .deps/llama/models/ggml-vocab-llama-spm.gguf   (embedded in skuld for the demo model)
#   .deps/llama/lib -> node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
#                                   libllama*.so, libggml*.so, one libggml-cpu-*.so per CPU family
#
# The skuld binary links the libraries with an rpath to that lib directory and
# loads the CPU backends from it at run time; nothing is downloaded when it runs.
# Safe to run again: a stamp file records what was installed.
#   scripts/install-llama.sh [DEST]      (default .deps/llama)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.22.1
DEST=${1:-.deps/llama}
STAMP="$DEST/.installed-$VERSION"
[ -f "$STAMP" ] && exit 0

arch=$(uname -m)
if [ "$arch" != x86_64 ]; then
  echo "install-llama: only linux-x64 is wired up (this machine is $arch)" >&2
  exit 1
fi

echo "install-llama: node-llama-cpp@$VERSION (prebuilt llama.cpp) into $DEST"
rm -rf "$DEST"
mkdir -p "$DEST"
# package.json keeps npm from walking up to the repository's root.
printf '{"name":"skuld-llama","private":true}\n' >"$DEST/package.json"
(cd "$DEST" && npm install --ignore-scripts --omit=optional --no-audit --no-fund \
  --loglevel=error "node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION")

bundle="$DEST/node_modules/node-llama-cpp/llama/gitRelease.bundle"
bins="node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
[ -f "$bundle" ] || { echo "install-llama: $bundle missing" >&2; exit 1; }
[ -f "$DEST/$bins/libggml-base.so" ] || { echo "install-llama: $DEST/$bins missing" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git init -q --bare "$tmp/repo"
git -C "$tmp/repo" fetch -q "$(realpath "$bundle")" HEAD
git -C "$tmp/repo" archive FETCH_HEAD include ggml/include models/ggml-vocab-llama-spm.gguf |
  tar -x -C "$DEST"
ln -sfn "$bins" "$DEST/lib"
# libllama.v0.5.0.so etc.: give the linker plain names to find.
for l in "$DEST/lib"/lib*.v*.so; do
  plain=$(basename "$l" | sed -E 's/\.v[0-9.]+\.so$/.so/')
  [ -e "$DEST/lib/$plain" ] || ln -s "$(basename "$l")" "$DEST/lib/$plain"
done
touch "$STAMP"
echo "install-llama: done"
