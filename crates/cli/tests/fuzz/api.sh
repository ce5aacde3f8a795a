#!/usr/bin/env bash
# A fuzz pass of `dualsync serve`'s API from its own OpenAPI document:
# schemathesis (pinned in requirements.txt, in a venv of its own) sends
# generated requests to every operation, with an admin token, on the demo's
# apps. It fails on any 5xx, on a panic in the service's log, and on a
# service that does not exit 0 on SIGTERM. Bounded: 25 examples per operation.
# Usage: crates/cli/tests/fuzz/api.sh PATH/TO/dualsync
set -euo pipefail
bin="$(realpath "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'kill "$serve" 2>/dev/null || true; rm -rf "$work"' EXIT

venv="${DUALSYNC_FUZZ_VENV:-$HOME/.cache/dualsync-fuzz-venv}"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi

cd "$work"
"$bin" demo --dir demo --rows 100 --quiet > demo.log
token="$("$bin" --config demo/dualsync.toml token create --name fuzz --role admin 2>/dev/null)"
"$bin" --config demo/dualsync.toml start customers --skip-initial --quiet > /dev/null
"$bin" --config demo/dualsync.toml serve --listen 127.0.0.1:0 > serve.out 2> serve.err &
serve=$!
for _ in $(seq 100); do grep -q "^listening on" serve.out && break; sleep 0.1; done
url="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' serve.out)"
[ -n "$url" ] || { echo "FAIL: serve did not listen"; cat serve.err; exit 1; }

timeout 600 "$venv/bin/schemathesis" run "$url/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" --checks not_a_server_error --max-examples 25 --seed 1 --no-color

kill -TERM "$serve"
status=0
wait "$serve" || status=$?
[ "$status" = 0 ] || { echo "FAIL: serve exited $status on SIGTERM"; tail -20 serve.err; exit 1; }
if grep -q "panicked" serve.err; then echo "FAIL: serve panicked"; grep -A5 panicked serve.err; exit 1; fi
echo "api fuzz: ok"
