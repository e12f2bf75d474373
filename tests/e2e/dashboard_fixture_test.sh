#!/bin/sh
# Proves scripts/check-dashboards can fail: a dashboard with every planted mistake must be
# rejected with one message per mistake.
set -u
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(python3 "$src/scripts/check-dashboards" --expect-dashboards 1 "$src/alerts/tests/fixtures/dashboard-bad/bad.json" 2>&1)
rc=$?
echo "$out"
fail=0
[ "$rc" -ne 0 ] || { echo "FAIL: check-dashboards accepted a broken dashboard"; fail=1; }
while IFS= read -r want; do
  [ -n "$want" ] || continue
  printf '%s\n' "$out" | grep -qF -- "$want" || { echo "FAIL: expected a problem containing: $want"; fail=1; }
done <<'WANT'
has __inputs
uses ${DS_...} placeholders
uid must be stable and equal to the file name stem
missing template variable $target
variable site: needs includeAll with allValue
'C-FIND matches' query A: does not filter on $site
annotation PACS alerts: does not filter on $site
'Phase latencies': missing description
'Phase latencies': missing unit
'Phase latencies': datasource must be ${datasource}
rate() over [5m], must be [$__rate_interval]
counter pacs_probe_failures_total outside rate()/increase()
'C-FIND matches' query A: does not filter on $job
WANT
[ "$fail" -eq 0 ] && echo "dashboard fixture: all planted problems reported"
exit $fail
