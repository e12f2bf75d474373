# Shared by scripts/demo and scripts/test. Sourced, not run.
set -euo pipefail

PACS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian 12 packages the build, the tests and the demo need.
PACS_PACKAGES=(
  g++ cmake ninja-build pkg-config git python3 curl openssl ca-certificates
  prometheus-cpp-dev libdcmtk-dev dcmtk libboost-dev libcurl4-openssl-dev
  libtoml11-dev libgtest-dev nlohmann-json3-dev zlib1g-dev libssl-dev
  orthanc orthanc-dicomweb prometheus prometheus-alertmanager python3-yaml victoria-metrics nodejs
  libcrypt-dev dpkg-dev file systemd
  python3-matplotlib chromium   # pacs-capacity-report's charts; its e2e test and the status page test render HTML
  clang-14 libclang-rt-14-dev ccache util-linux
)

# Each line carries the seconds since the script started, so a run shows where its time goes.
log() { printf '\033[1m==> [%4ds] %s\033[0m\n' "$SECONDS" "$*" >&2; }

# Installs what is missing (idempotent: does nothing when all are present).
install_packages() {
  local missing=()
  for p in "${PACS_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm installs the pinned HL7 test peer (node-hl7-server). Debian ships it apart from
  # nodejs; a nodejs from elsewhere (NodeSource) brings its own npm and conflicts with
  # Debian's, so the package is only asked for when there is no npm at all.
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#PACS_PACKAGES[@]} Debian packages present"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} -- run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # policy-rc.d keeps package scripts from starting services (orthanc,
  # prometheus) on their default ports: tests start their own on free ports.
  local prc=/usr/sbin/policy-rc.d had_prc=0
  [ -e "$prc" ] && had_prc=1
  [ $had_prc -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$prc"; chmod +x "$prc"; }
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ $had_prc -eq 1 ] || rm -f "$prc"
}

# ccache, when installed, makes rebuilds (and a second tree) cheap; CCACHE_DISABLE=1 turns it off.
pacs_launcher() {
  if command -v ccache >/dev/null; then echo "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
}

# Configures and builds everything into $1 with extra cmake args. Built as a unity build with
# line tables only (docs/building.md): on 2 cores that takes each tree from about 13 to 7
# minutes; a plain cmake configure (what a developer gets) compiles file by file with -g.
configure_tree() {
  local dir=$1; shift
  cmake -S "$PACS_ROOT" -B "$dir" -G Ninja -DPACS_WERROR=ON -DCMAKE_UNITY_BUILD=ON \
    -DPACS_LINE_TABLES_ONLY=ON $(pacs_launcher) "$@" >/dev/null
}
build_tree() {
  configure_tree "$@"
  ninja -C "$1"
}


# The demo's tree ($1): only the agent (no tests, no benchmarks), built for speed: build type
# "Demo" has no flags of its own, so no optimisation and no debug info (half the compile
# time of RelWithDebInfo), a unity build, and no -Werror (a new compiler's warning must not
# stop a demo).
build_demo_agent() {
  local dir=$1
  cmake -S "$PACS_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Demo -DCMAKE_UNITY_BUILD=ON \
    -DPACS_BUILD_TESTS=OFF -DPACS_BUILD_BENCH=OFF $(pacs_launcher) >/dev/null
  ninja -C "$dir" pacs-agent
}
