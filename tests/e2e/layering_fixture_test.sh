#!/bin/sh
# scripts/check-layering must pass on the tree and catch each kind of
# violation on a copy with one bad #include added.
set -eu
ROOT=$1
CHECK="python3 $ROOT/scripts/check-layering"
$CHECK "$ROOT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
try() {  # file, include line, what
  rm -rf "$tmp/t"; mkdir -p "$tmp/t"; cp -r "$ROOT/agent" "$ROOT/probes" "$tmp/t/"
  case $2 in
    \<*) printf '#include %s\n' "$2" >> "$tmp/t/$1" ;;
    *) printf '#include "%s"\n' "$2" >> "$tmp/t/$1" ;;
  esac
  if $CHECK "$tmp/t" 2>"$tmp/err"; then
    echo "not caught: $3 ($1 includes $2)" >&2; exit 1
  fi
  grep -q "$1" "$tmp/err" || { echo "message does not name $1:" >&2; cat "$tmp/err" >&2; exit 1; }
}
try agent/agent.cpp probes/dicom/dicom.h "agent includes a kind"
try agent/agent.cpp probes/lib/http/http_client.h "agent includes a kind library"
try probes/probe.h probes/queue/queue.h "framework includes a kind"
try probes/config_table.cpp agent/config.h "framework includes the agent"
try probes/queue/queue.h probes/dicom/dicom.h "kind includes another kind"
try probes/queue/queue.h agent/config.h "kind includes the agent"
try probes/lib/http/http_client.h probes/queue/queue.h "library includes a kind"
try probes/dicom/dicom.h probes/registry.h "kind includes the registry"
try probes/kind.h "<toml.hpp>" "a header includes toml11"
try agent/http_server.h "<boost/beast/http.hpp>" "a header includes Boost.Beast"
echo "layering check catches every violation, and heavy headers in headers"
