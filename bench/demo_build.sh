#!/usr/bin/env bash
# What ./scripts/demo waits for before its URLs: a cold build of pacs-agent in the demo's
# settings (build type Demo, unity build; scripts/lib.sh build_demo_agent), beside the
# anchor measured in the same run: the same build file by file (a plain configure). No
# ccache, both cores. Prints figures; nothing passes or fails on them.
# Usage: bench/demo_build.sh [SOURCE_DIR]
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CCACHE_DISABLE=1
run() {  # label, tree, cmake args...
  local label=$1 dir=$tmp/$2; shift 2
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Demo -DPACS_BUILD_TESTS=OFF \
    -DPACS_BUILD_BENCH=OFF "$@" >/dev/null
  local t0 ms compiles
  t0=$(date +%s%N)
  ninja -C "$dir" pacs-agent >/dev/null
  ms=$((($(date +%s%N) - t0) / 1000000))
  compiles=$(awk 'NR>1 && $4 ~ /\.o$/' "$dir/.ninja_log" | wc -l)
  printf '%-28s %4d.%d s  %3d compiles\n' "$label" $((ms / 1000)) $((ms % 1000 / 100)) "$compiles"
}
echo "cold build of pacs-agent (no ccache, $(nproc) cores)"
run "demo: unity" unity -DCMAKE_UNITY_BUILD=ON
run "anchor: file by file" plain -DCMAKE_UNITY_BUILD=OFF
