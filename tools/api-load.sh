#!/usr/bin/env bash
# The service's API under load: 1,000 companies synced between two SQLite apps,
# 1,000,000 rows in the error log, `dualsync serve`, then wrk on loopback
# (GET /api/v1/maps, error-log pages) and the whole CSV export, with the
# service's peak memory before and after it. Needs wrk and python3.
# Usage: tools/api-load.sh [path/to/dualsync (release)] [seconds per endpoint]
set -euo pipefail
bin="$(realpath "${1:-target/release/dualsync}")"
seconds="${2:-10}"
work="$(mktemp -d)"
trap 'kill "$serve" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

python3 - <<'PY'
import sqlite3
for name in ("a.db", "b.db"):
    db = sqlite3.connect(name)
    db.execute("CREATE TABLE item (co TEXT NOT NULL, k TEXT NOT NULL, name TEXT, qty INTEGER, PRIMARY KEY (co, k))")
    if name == "a.db":
        db.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", ((f"C{c:04}", f"k{i}", f"name {i}", i) for c in range(1000) for i in range(10)))
    db.commit()
PY
cat > dualsync.toml <<'TOML'
[state]
url = "sqlite://state.db"
[apps.a]
url = "sqlite://a.db"
[apps.b]
url = "sqlite://b.db"
[[maps]]
name = "items"
master = "a"
[maps.a]
table = "item"
key = "k"
company = "co"
[maps.b]
table = "item"
key = "k"
company = "co"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
[[maps.columns]]
a = "qty"
b = "qty"
TOML
"$bin" --quiet sync > /dev/null
"$bin" --quiet start items --skip-initial > /dev/null
python3 - <<'PY'
import sqlite3
db = sqlite3.connect("state.db")
run = db.execute("SELECT max(id) FROM runs").fetchone()[0]
at = db.execute("SELECT max(started_at) FROM runs").fetchone()[0]
rows = ((run, "items", f"C{i % 1000:04}", "a", "b", f'["e{i}"]', "name", f"value {i}",
         f"b refused the row: CHECK constraint failed: length(name) <= 10 (row {i})", at, at) for i in range(1_000_000))
db.executemany("INSERT INTO errors (run_id, map, company, source_app, target_app, key, column_name, value, message, first_seen, last_seen)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
token="$("$bin" token create --name load --role viewer 2>/dev/null)"
RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 > serve.out 2> serve.err &
serve=$!
for _ in $(seq 100); do grep -q "^listening on" serve.out && break; sleep 0.1; done
url="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' serve.out)"
sleep 2  # the maps' figures are read once at start
echo "1,000 companies, $(python3 -c "import sqlite3; print(sqlite3.connect('state.db').execute('SELECT count(*) FROM errors').fetchone()[0])") errors; $url"
for path in "/api/v1/maps" "/api/v1/errors?limit=100" "/api/v1/errors?limit=100&after=900000" "/api/v1/errors?map=items&company=C0500&limit=100"; do
  echo "== GET $path"
  wrk -t2 -c4 -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$url$path" | grep -E "^ +(50|99)%|Requests/sec|Non-2xx"
done
echo "service peak RSS before the export: $(grep VmHWM /proc/$serve/status | awk '{print $2, $3}')"
start=$(date +%s.%N)
curl -sf -H "Authorization: Bearer $token" -o export.csv "$url/api/v1/errors/export?format=csv"
echo "export: $(($(wc -l < export.csv) - 1)) errors, $(du -m export.csv | cut -f1) MB in $(echo "$(date +%s.%N) - $start" | bc) s"
echo "service peak RSS after the export: $(grep VmHWM /proc/$serve/status | awk '{print $2, $3}')"
