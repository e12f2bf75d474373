#!/bin/sh
# Proves scripts/check-page-budget can fail: copies the shipped configs, slows one timing at
# a time (or lets one failed probe page) and requires a non-zero exit with the reason; the
# unchanged copy must pass.
# Usage: tests/e2e/page_budget_fixture_test.sh [SOURCE_DIR]
set -u
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

fresh() {
  rm -rf "$tmp/root" && mkdir -p "$tmp/root" && cp -r "$src/deploy" "$src/alerts" "$tmp/root/"
}

# expect FILE SED-EXPRESSION WANTED-MESSAGE
expect() {
  fresh
  sed -i "$2" "$tmp/root/$1"
  if cmp -s "$src/$1" "$tmp/root/$1"; then echo "FAIL: '$2' changed nothing in $1"; fail=1; return; fi
  out=$(python3 "$src/scripts/check-page-budget" --root "$tmp/root" 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ]; then echo "FAIL: check-page-budget passed with $1: $2"; echo "$out"; fail=1; fi
  if ! printf '%s\n' "$out" | grep -qF -- "$3"; then
    echo "FAIL: with $1: $2 expected a message containing: $3"; echo "$out"; fail=1
  fi
}

fresh
if ! python3 "$src/scripts/check-page-budget" --root "$tmp/root"; then echo "FAIL: the shipped configs fail"; fail=1; fi

expect deploy/pacs-agent.toml 's/^interval = "10s"  /interval = "30s"  /' "exceeds the 90 s budget"
expect deploy/pacs-agent.toml '/^name = "ris-worklist"/,/^interval/s/^interval = "10s"/interval = "1m"/' "exceeds the 90 s budget"
expect alerts/pacs-agent.rules.yml 's/^          ) >= 2$/          ) >= 1/' "a single failed probe must never page"
expect alerts/pacs-agent.rules.yml '/alert: PacsDicomEchoFailing/,/for:/s/for: 10s/for: 1m/' "exceeds the 90 s budget"
expect alerts/pacs-agent.rules.yml '/name: pacs-probes/,/interval:/s/interval: 10s/interval: 1m/' "exceeds the 90 s budget"
expect deploy/alertmanager/alertmanager.yml '/receiver: pager/,/group_wait/s/group_wait: 10s/group_wait: 1m/' "exceeds the 90 s budget"
expect deploy/prometheus/prometheus.yml 's/^  scrape_interval: 10s/  scrape_interval: 1m/;s/^  scrape_timeout: 10s/  scrape_timeout: 10s/' "exceeds the 90 s budget"

expect deploy/fleet/vmagent.yml 's/^  scrape_interval: 15s/  scrape_interval: 1m/' "central vmagent -> VictoriaMetrics -> vmalert: worst case"

[ "$fail" -eq 0 ] && echo "page budget fixture: every slowed timing reported"
exit $fail
