#!/usr/bin/env bash
# Fetch once, write the same records in every output format, and summarise the result.
# Usage: examples/formats.sh [OUTPUT_FOLDER]   (default: examples/out-formats)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out-formats}
source "$here/serve.sh" "$here/data"
rm -rf "$out"
mkdir -p "$out"

echo "== fetch once, keep the records (a2d-stats --tee reports on stderr and passes them on)"
a2d-read "$work/urls.csv" | a2d-shard --number-sample-per-shard 10 | a2d-fetch -j 16 \
    | a2d-stats --tee > "$out/fetched.jsonl"

tfrecord=tfrecord
"$python" -c "import google_crc32c" 2>/dev/null || tfrecord=""  # the tfrecord extra is optional
for format in webdataset files parquet $tfrecord; do
    echo "== a2d-write --format $format $out/$format"
    a2d-write --format "$format" "$out/$format" "$out/fetched.jsonl"
    ls "$out/$format"
done

echo "== every format holds the same samples: keys and payload digests, read back by a2d-read"
for format in webdataset files parquet $tfrecord; do
    a2d-read "$out/$format" | "$python" -c '
import sys, hashlib, base64, json
rows = sorted((r["key"], r["status"], hashlib.sha256(base64.b64decode(next(iter(r["files"].values())))).hexdigest()[:12]
               if r.get("files") else "-") for r in map(json.loads, sys.stdin))
print(hashlib.sha256(repr(rows).encode()).hexdigest()[:16], len(rows), "rows")' | sed "s/^/$format: /"
done

echo "== a2d-stats $out/webdataset --html $out/report.html"
a2d-stats --html "$out/report.html" "$out/webdataset"
