#!/usr/bin/env bash
# Build a small webdataset from the files in examples/data, served over HTTP on 127.0.0.1.
# Usage: examples/quickstart.sh [OUTPUT_FOLDER]   (default: examples/out)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out}
source "$here/serve.sh" "$here/data"
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
echo "== a2d-stats $out"
a2d-stats "$out"
