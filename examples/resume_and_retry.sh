#!/usr/bin/env bash
# Resume an interrupted run, then fetch again only the rows that failed.
# Usage: examples/resume_and_retry.sh [OUTPUT_FOLDER]   (default: examples/out-resume)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out-resume}
work=$(mktemp -d)
# Serve a copy of examples/data with one file missing, so its row fails the first time.
cp -r "$here/data" "$work/served"
mv "$work/served/blue-gradient.png" "$work/blue-gradient.png"
source "$here/serve.sh" "$work/served"
rm -rf "$out"
pipeline() {  # the same command every time: a2d-shard --skip-done makes it resumable
    a2d-read "$work/urls.csv" | a2d-shard --number-sample-per-shard 5 --skip-done "$out" "$@" \
        | a2d-fetch -j 8 | a2d-write "$out"
}

echo "== 1. a run cut short: only the first 8 records reach a2d-fetch"
a2d-read "$work/urls.csv" | a2d-shard --number-sample-per-shard 5 | head -n 8 \
    | a2d-fetch -j 8 | a2d-write "$out" || echo "a2d-write exited with $? (shard 00001 was incomplete, so not written)"
ls "$out"

echo "== 2. the same pipeline again: finished shards are skipped, the rest is done"
pipeline
ls "$out"

echo "== 3. put the missing file in place and fetch again only what failed"
mv "$work/blue-gradient.png" "$work/served/"
a2d-read "$out" | a2d-fetch -j 8 --retry-failed | a2d-write "$out"

echo "== every row now:"
"$python" - "$out" <<'PY'
import sys, pyarrow.dataset as ds
rows = ds.dataset(sys.argv[1], format="parquet", exclude_invalid_files=True).to_table(
    columns=["key", "status", "error_kind", "caption"]).sort_by("key").to_pylist()
for row in rows:
    print(f"{row['key']}  {row['status']:<18} {row['error_kind'] or '':<14} {row['caption']}")
PY
