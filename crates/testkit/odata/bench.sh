#!/usr/bin/env bash
# Serves the OData bench's service (SAP CAP, an Item set deployed anew at each start) on
# 127.0.0.1:${PORT:-4004}/odata/v4/s, for `dualsync bench --odata http://127.0.0.1:4004/odata/v4/s`.
# FILL=N loads N rows straight into its SQLite file once it listens (for the reads).
# Needs `npm ci --prefix crates/testkit/odata` first. Stop it with Ctrl-C.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
node="$here/node_modules/node/bin/node"
cd "$here/bench"
rm -rf srv bench.sqlite*
PORT="${PORT:-4004}" "$node" "$here/server.js" &
server=$!
trap 'kill $server 2>/dev/null' EXIT INT TERM
for _ in $(seq 60); do
  curl -fs "http://127.0.0.1:${PORT:-4004}/odata/v4/s/\$metadata" >/dev/null 2>&1 && break
  sleep 0.5
done
if [ "${FILL:-0}" -gt 0 ]; then "$node" --no-warnings fill.js bench.sqlite "$FILL"; fi
echo "bench service ready: http://127.0.0.1:${PORT:-4004}/odata/v4/s"
wait $server
