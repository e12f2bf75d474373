#!/bin/sh
# Proves scripts/lint-alerts can fail: run it on alerts/tests/fixtures/lint-bad and require
# a non-zero exit plus one specific message per planted violation.
# Usage: tests/e2e/lint_fixture_test.sh [SOURCE_DIR]
set -u
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
fx=$src/alerts/tests/fixtures/lint-bad
out=$(python3 "$src/scripts/lint-alerts" --runbook "$fx/runbook.md" --tests "$fx/tests" \
        --dashboards "$src/dashboards" "$fx/bad.rules.yml" "$fx/broken.rules.yml" "$fx/duplicate.rules.yml" 2>&1)
rc=$?
echo "$out"
fail=0
if [ "$rc" -eq 0 ]; then echo "FAIL: lint-alerts exited 0 on a broken fixture"; fail=1; fi
while IFS= read -r want; do
  [ -n "$want" ] || continue
  if ! printf '%s\n' "$out" | grep -qF -- "$want"; then
    echo "FAIL: expected a violation containing: $want"; fail=1
  fi
done <<'WANT'
record pacs_success_avg: name must be pacs:<metric>
pacs:probe_success:max_by_instance: by(job, instance) keeps instance but not site
alert pacs_echo_down: name must be CamelCase starting with 'Pacs'
alert pacs_echo_down: labels.severity must be one of critical|warning|info, got 'page'
alert pacs_echo_down: needs a non-zero 'for:' duration
alert pacs_echo_down: summary must not contain a template
alert pacs_echo_down: summary must start with a capital letter
alert pacs_echo_down: summary must end with '.'
alert pacs_echo_down: description must name the series
alert pacs_echo_down: description must show the value
alert pacs_echo_down: runbook_url anchor must be '#pacs_echo_down', got '#echo'
alert PacsUntested: dashboard annotation points to unknown dashboard uid 'no-such-dashboard'
no '## PacsUntested' section for alert PacsUntested
section '## PacsRemovedLongAgo' has no alert of that name
alert PacsUntested (severity warning): firing case must assert all annotations
alert PacsUntested: no quiet case
alert pacs_echo_down (severity page): no test case that fires it
broken.rules.yml:7: expected <block end>, but found '<block mapping start>'
duplicate.rules.yml:7: duplicate key 'expr' (first at line 6)
WANT
[ "$fail" -eq 0 ] && echo "lint fixture: all planted violations reported"
exit $fail
