#!/usr/bin/env bash
# A list that arrives cut short (a truncated .gz download): the pipeline stops without
# publishing a short last shard, and the same pipeline on the whole list then finishes the job
# (finished shards are skipped; a shard that an older tool finished short would be redone).
# Usage: examples/cut_short.sh [OUTPUT_FOLDER]   (default: examples/out-cut-short)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out-cut-short}
source "$here/serve.sh" "$here/data"
rm -rf "$out"
# 60 rows (the example list four times), gzipped, and a copy cut at two thirds of its bytes.
"$python" - "$work" <<'PY'
import gzip, sys
work = sys.argv[1]
rows = open(f"{work}/urls.csv").read().splitlines()[1:]
urls = [row.split(",", 1)[0] for row in rows if row.startswith("http")]
text = "".join(f"{urls[i % len(urls)]}?copy={i}\n" for i in range(60)).encode()
whole = gzip.compress(text)
open(f"{work}/whole.txt.gz", "wb").write(whole)
open(f"{work}/cut.txt.gz", "wb").write(whole[: len(whole) * 2 // 3])
PY
pipeline() {
    a2d-read "$1" | a2d-shard --number-sample-per-shard 20 --skip-done "$out" \
        | a2d-fetch -j 8 | a2d-write "$out"
}

echo "== 1. the cut list: a2d-read fails mid-list, every stage after it stops"
pipeline "$work/cut.txt.gz" || echo "the pipeline failed with status $?"
ls "$out"

echo "== 2. the whole list, same pipeline: finished shards are skipped, the rest is written"
pipeline "$work/whole.txt.gz"
ls "$out"
a2d-stats "$out" | head -4
