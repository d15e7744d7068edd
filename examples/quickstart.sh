#!/usr/bin/env bash
# Build a small webdataset from the files in examples/data, served over HTTP on 127.0.0.1.
# Usage: examples/quickstart.sh [OUTPUT_FOLDER]   (default: examples/out)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out}
work=$(mktemp -d)
# Prefer installed commands; fall back to this checkout's launchers.
command -v a2d-read >/dev/null || PATH="$here/../bin:$PATH"
python=$(command -v python3 || command -v python)

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m http.server "$port" --bind 127.0.0.1 --directory "$here/data" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do  # wait until the server answers
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.1
done

sed "s|@BASE@|http://127.0.0.1:$port|" "$here/urls.template.csv" >"$work/urls.csv"
rm -rf "$out"

echo "== a2d-read urls.csv | a2d-fetch -j 16 | a2d-write --format webdataset $out"
a2d-read "$work/urls.csv" | a2d-fetch -j 16 | a2d-write --format webdataset --number-sample-per-shard 10 "$out"

echo "== written:"
ls -l "$out"
echo "== first shard (GNU tar):"
tar -tvf "$out/00000.tar"
echo "== every row, failures included ($out/*.parquet):"
"$python" - "$out" <<'PY'
import sys, pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet", exclude_invalid_files=True).to_table(
    columns=["key", "status", "error_kind", "mime", "size", "caption"]).sort_by("key")
for row in table.to_pylist():
    print(f"{row['key']}  {row['status']:<18} {row['error_kind'] or '':<14} {row['mime'] or '':<10} "
          f"{row['size'] or '':>5}  {row['caption']}")
PY
