#!/bin/sh
# Proves scripts/check-deploy can fail: a unit with NoNewPrivileges=no and a misspelt key
# (which systemd-analyze verify only warns about) must be rejected with both messages.
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
[ "$fail" -eq 0 ] && echo "deploy fixture: broken unit rejected"
exit $fail
