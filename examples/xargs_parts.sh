#!/usr/bin/env bash
# Scale out on one machine with xargs -P and no shard files: start PARTS pipelines at once;
# pipeline I reads the whole URL list and keeps only its shards (shard % PARTS == I):
#   a2d-read URL_LIST | a2d-shard --part I/PARTS | a2d-fetch | a2d-write OUT
# All write into the same output folder (their shards are disjoint). The same line runs
# unchanged on several machines sharing OUT (s3://... or a shared filesystem), one part each.
#
# Usage: examples/xargs_parts.sh [URL_LIST] [OUTPUT_FOLDER]
#   URL_LIST       anything a2d-read reads (default: serve examples/data on 127.0.0.1, 15 rows)
#   OUTPUT_FOLDER  local folder or s3://... (default: examples/out-parts)
# Environment:
#   PER_SHARD   rows per shard (default 10000; 4 for the example data)
#   PARTS       pipelines at once (default: one per core; each runs one a2d-fetch process)
#   FETCH_OPTS  more a2d-fetch options, e.g. "-j 128 --timeout 10"
#   WRITE_OPTS  more a2d-write options, e.g. "--format files"
#
# Run the same command again to resume: `a2d-shard --skip-done OUT` leaves out the shards that
# are finished in OUT. Keep PER_SHARD the same between runs (PARTS may change).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/recipe.sh" "${1:-}"
out=${2:-$here/out-parts}
[ -z "$from_scratch" ] || rm -rf "$out"
PER_SHARD=${PER_SHARD:-10000}
PARTS=${PARTS:-$(getconf _NPROCESSORS_ONLN)}
export FETCH_OPTS=${FETCH_OPTS:-} WRITE_OPTS=${WRITE_OPTS:-} urls out PER_SHARD PARTS

part_pipeline() {  # part $1 of $PARTS, from the URL list to its finished shards in $out
    set -o pipefail
    # shellcheck disable=SC2086  # the options are meant to be split into words
    a2d-read "$urls" \
        | a2d-shard --number-sample-per-shard "$PER_SHARD" --skip-done "$out" --part "$1/$PARTS" \
        | a2d-fetch --workers 1 $FETCH_OPTS | a2d-write $WRITE_OPTS "$out"
}
export -f part_pipeline

echo "== xargs -P $PARTS: a2d-read | a2d-shard --part I/$PARTS | a2d-fetch | a2d-write $out"
# shellcheck disable=SC2016  # "$1" is bash -c's argument: the part number from xargs
if ! seq 0 $((PARTS - 1)) | xargs -P "$PARTS" -n 1 bash -c 'part_pipeline "$1"' part; then
    echo "== some parts failed; run the same command again to redo their unfinished shards" >&2
    exit 1
fi

echo "== a2d-stats $out"
a2d-stats "$out"
