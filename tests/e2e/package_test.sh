#!/bin/sh
# Builds the .deb with CPack from a build directory, installs it with dpkg -i, checks the
# files landed and the binary works with the shipped example config, then removes it.
# Needs root (dpkg). Usage: tests/e2e/package_test.sh BUILD_DIR
set -eu
build=${1:?usage: package_test.sh BUILD_DIR}
build=$(cd "$build" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "package_test: needs root for dpkg -i" >&2; exit 1; }
[ -x "$build/pacs-agent" ] || [ -x "$build/agent/pacs-agent" ] || { echo "package_test: build pacs-agent first" >&2; exit 1; }

out=$(mktemp -d)
installed=0
cleanup() {
  if [ "$installed" -eq 1 ]; then dpkg -r pacs-agent >/dev/null 2>&1 || true; fi
  rm -rf "$out"
}
trap cleanup EXIT INT TERM

if [ ! -f "$build/CPackConfig.cmake" ]; then
  echo "== $build was configured before deploy/packaging.cmake existed: re-running cmake"
  cmake "$build" >/dev/null
fi
echo "== cpack -G DEB ($build)"
(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log"; exit 1; }
deb=$(ls "$out"/pacs-agent_*.deb)
echo "built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{print $6}'

fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

ctrl=$(mktemp -d "$out/ctrl.XXXX")
dpkg-deb --control "$deb" "$ctrl"
check "Depends names libdcmtk, prometheus-cpp core, libcurl" \
  "grep -q 'libdcmtk' '$ctrl/control' && grep -q 'libprometheus-cpp-core' '$ctrl/control' && grep -q 'libcurl' '$ctrl/control'"
check "conffiles lists the example config" "grep -qx /etc/pacs-agent/pacs-agent.toml '$ctrl/conffiles'"
check "Depends names python3, Recommends python3-matplotlib (pacs-capacity-report)" \
  "grep -q '^Depends:.*python3' '$ctrl/control' && grep -q '^Recommends:.*python3-matplotlib' '$ctrl/control'"

echo "== dpkg -i"
# Dependencies are already present where the agent was built; --force-depends is not used.
dpkg -i "$deb"
installed=1

for f in /usr/bin/pacs-agent /usr/bin/pacs-capacity-report /usr/share/doc/pacs-agent/capacity-report.md \
         /usr/share/pacs-agent/alerts/pacs-capacity.rules.yml \
         /lib/systemd/system/pacs-agent.service /etc/pacs-agent/pacs-agent.toml \
         /etc/default/pacs-agent /usr/lib/sysusers.d/pacs-agent.conf \
         /usr/share/pacs-agent/alerts/pacs-agent.rules.yml /usr/share/pacs-agent/alerts/pacs-recording.rules.yml \
         /usr/share/pacs-agent/alerts/runbook.md \
         /usr/share/pacs-agent/dashboards/pacs-fleet-overview.json \
         /usr/share/pacs-agent/dashboards/pacs-ae-detail.json \
         /usr/share/pacs-agent/dashboards/pacs-storage-capacity.json \
         /usr/share/pacs-agent/examples/prometheus/prometheus.yml \
         /usr/share/pacs-agent/examples/alertmanager/alertmanager.yml \
         /usr/share/pacs-agent/examples/grafana/provisioning/dashboards/pacs.yml \
         /usr/share/pacs-agent/examples/fleet/vmagent.yml /usr/share/pacs-agent/examples/fleet/vmalert.default; do
  check "installed $f" "[ -s '$f' ]"
done
check "user pacs-agent exists" "getent passwd pacs-agent >/dev/null"
check "config readable by group pacs-agent only" \
  "[ \"\$(stat -c '%U:%G %a' /etc/pacs-agent/pacs-agent.toml)\" = 'root:pacs-agent 640' ]"
check "/etc/default/pacs-agent (secrets) readable by root only" \
  "[ \"\$(stat -c '%U:%G %a' /etc/default/pacs-agent)\" = 'root:root 600' ]"
check "unit enabled on first installation" "systemctl is-enabled --quiet pacs-agent.service"
echo "== admin disables the unit; the package is upgraded (reinstalled)"
systemctl disable pacs-agent.service >/dev/null 2>&1
dpkg -i "$deb" >/dev/null
check "an admin's disable survives an upgrade" "! systemctl is-enabled --quiet pacs-agent.service"
check "pacs-agent --version" "/usr/bin/pacs-agent --version"
check "pacs-capacity-report --help" "/usr/bin/pacs-capacity-report --help >/dev/null"
check "example config passes --config.check" \
  "/usr/bin/pacs-agent --config.check --config.file=/etc/pacs-agent/pacs-agent.toml"
if command -v systemd-analyze >/dev/null 2>&1; then
  check "systemd-analyze verify (installed unit)" \
    "[ -z \"\$(systemd-analyze verify /lib/systemd/system/pacs-agent.service 2>&1)\" ]"
fi
check "promtool check rules (installed rules)" \
  "promtool check rules /usr/share/pacs-agent/alerts/*.rules.yml >/dev/null"

echo "== dpkg -r"
dpkg -r pacs-agent
installed=0
check "binary removed" "[ ! -e /usr/bin/pacs-agent ]"
check "conffile kept until purge" "[ -e /etc/pacs-agent/pacs-agent.toml ]"
dpkg -P pacs-agent >/dev/null
check "purge removes the config" "[ ! -e /etc/pacs-agent/pacs-agent.toml ]"

[ "$fail" -eq 0 ] && echo "package_test: OK" || echo "package_test: FAILED"
exit $fail
