#!/bin/sh
# Proves scripts/check-deploy can fail: a unit with NoNewPrivileges=no and a misspelt key
# (which systemd-analyze verify only warns about) must be rejected with both messages, and
# so must each planted mistake in the fleet fixture (vmagent/vmalert configs).
set -u
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(python3 "$src/scripts/check-deploy" --only unit --unit "$src/alerts/tests/fixtures/deploy-bad/pacs-agent.service" 2>&1)
rc=$?
echo "$out"
fail=0
[ "$rc" -ne 0 ] || { echo "FAIL: check-deploy accepted a broken unit"; fail=1; }
printf '%s\n' "$out" | grep -qF 'missing directive matching ^NoNewPrivileges=yes$' || { echo "FAIL: NoNewPrivileges=no not reported"; fail=1; }
if command -v systemd-analyze >/dev/null 2>&1; then
  printf '%s\n' "$out" | grep -qF "Unknown key 'ProtectSytem'" || { echo "FAIL: misspelt key not reported"; fail=1; }
fi

# deploy/fleet (vmagent/vmalert): every planted mistake in the fleet fixture is reported.
out=$(python3 "$src/scripts/check-deploy" --only fleet --fleet-dir "$src/alerts/tests/fixtures/deploy-bad/fleet" 2>&1)
rc=$?
echo "$out"
[ "$rc" -ne 0 ] || { echo "FAIL: check-deploy accepted a broken fleet config"; fail=1; }
while IFS= read -r want; do
  [ -n "$want" ] || continue
  printf '%s\n' "$out" | grep -qF -- "$want" || { echo "FAIL: expected a problem containing: $want"; fail=1; }
done <<'WANT'
vmagent.yml: global.external_labels.site must be set
vmagent.yml: vmagent -promscrape.config.dryRun failed
field refresh_interval not found
vmagent.default: ARGS lacks -remoteWrite.tmpDataPath
vmagent.default: -remoteWrite.maxDiskUsagePerURL must cap the buffer
flag provided but not defined: -remoteWrite.flushIntervall
vmalert.default: -rule must be /etc/vmalert/rules/*.rules.yml
vmalert.default: -datasource.url needs nocache=1
WANT
if command -v systemd-analyze >/dev/null 2>&1; then
  printf '%s\n' "$out" | grep -qF "Unknown key 'RestartSecs'" || { echo "FAIL: misspelt key in vmagent.service not reported"; fail=1; }
fi
[ "$fail" -eq 0 ] && echo "deploy fixture: broken unit and fleet configs rejected"
exit $fail
