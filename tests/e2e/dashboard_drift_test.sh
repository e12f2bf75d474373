#!/bin/sh
# Proves `dashboards/generate.py --check` can fail: on a copy of the committed JSON with one
# panel title edited by hand, and with one file missing, it must exit 1 and name the files.
set -u
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$src"/dashboards/*.json "$tmp"/
python3 "$src/dashboards/generate.py" --check --dir "$tmp" || { echo "FAIL: a verbatim copy does not pass"; exit 1; }
sed -i 's/"title": "Phase latencies"/"title": "Phase latencies (edited by hand)"/' "$tmp/pacs-ae-detail.json"
rm "$tmp/pacs-storage-capacity.json"
echo '{}' > "$tmp/stray.json"
out=$(python3 "$src/dashboards/generate.py" --check --dir "$tmp" 2>&1)
rc=$?
echo "$out"
fail=0
[ "$rc" -eq 1 ] || { echo "FAIL: --check exited $rc on edited JSON, expected 1"; fail=1; }
for want in "pacs-ae-detail.json: differs from what generate.py produces" \
            "Phase latencies (edited by hand)" \
            "pacs-storage-capacity.json: missing" \
            "stray.json: not produced by generate.py" \
            "run \`python3 dashboards/generate.py\` and commit the JSON"; do
  printf '%s\n' "$out" | grep -qF -- "$want" || { echo "FAIL: expected: $want"; fail=1; }
done
[ "$fail" -eq 0 ] && echo "dashboard drift: hand edits and missing files reported"
exit $fail
