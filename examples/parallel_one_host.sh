#!/usr/bin/env bash
# Scale out on one machine with GNU parallel: split the URL list into one file of records per
# shard, then run `a2d-fetch SHARD.jsonl | a2d-write OUT` on every file, JOBS at a time, all
# into the same output folder (a2d-write finishes each shard on its own, so jobs never touch the
# same files).
#
# Usage: examples/parallel_one_host.sh [URL_LIST] [OUTPUT_FOLDER]
#   URL_LIST       anything a2d-read reads (default: serve examples/data on 127.0.0.1, 15 rows)
#   OUTPUT_FOLDER  local folder or s3://... (default: examples/out-parallel)
# Environment:
#   PER_SHARD   rows per shard (default 10000; 4 for the example data)
#   JOBS        shards fetched at once (default: one per core; each job is one a2d-fetch process)
#   FETCH_OPTS  more a2d-fetch options, e.g. "-j 128 --timeout 10"
#   WRITE_OPTS  more a2d-write options, e.g. "--format files"
#
# The shard files and parallel's job log are kept in OUTPUT_FOLDER.jobs/ (a local folder; for an
# s3:// output, ./NAME.jobs/). Run the same command again to resume: the list is split only once,
# and `parallel --joblog ... --resume-failed` skips the shards whose job succeeded and runs again
# those that failed or never ran. Rows that failed to download are part of a finished shard; to
# fetch them again: a2d-read OUT | a2d-fetch --retry-failed | a2d-write OUT
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/recipe.sh" "${1:-}"
out=${2:-$here/out-parallel}
out=${out%/}
case $out in
    *://*) jobs=$PWD/$(basename "$out").jobs ;;
    *) jobs=$out.jobs ;;
esac
[ -z "$from_scratch" ] || rm -rf "$out" "$jobs"
PER_SHARD=${PER_SHARD:-10000}
JOBS=${JOBS:-100%}
export FETCH_OPTS=${FETCH_OPTS:-} WRITE_OPTS=${WRITE_OPTS:-} out

if [ ! -d "$jobs/shards" ]; then
    echo "== split $urls into one file per shard in $jobs/shards/"
    rm -rf "$jobs/shards.tmp" "$jobs/joblog"
    mkdir -p "$jobs"
    # --skip-done: shards already finished in OUT (by another run or recipe) get no file.
    a2d-read "$urls" | a2d-shard --number-sample-per-shard "$PER_SHARD" --skip-done "$out" \
        --split "$jobs/shards.tmp"
    mkdir -p "$jobs/shards.tmp"  # (no file at all when every shard is already done)
    mv "$jobs/shards.tmp" "$jobs/shards"
fi

fetch_shard() {  # one shard file -> that shard finished in $out
    set -o pipefail
    # shellcheck disable=SC2086  # the options are meant to be split into words
    a2d-fetch --workers 1 $FETCH_OPTS "$1" | a2d-write $WRITE_OPTS "$out"
}
export -f fetch_shard

shopt -s nullglob
files=("$jobs"/shards/*.jsonl)
echo "== parallel -j $JOBS: a2d-fetch | a2d-write $out, one job per shard file (${#files[@]} files)"
if [ ${#files[@]} -gt 0 ] && ! printf '%s\n' "${files[@]}" \
        | parallel -j "$JOBS" --joblog "$jobs/joblog" --resume-failed fetch_shard; then
    echo "== some shards failed (exit status in $jobs/joblog); run the same command again to redo them" >&2
    exit 1
fi

echo "== a2d-stats $out"
a2d-stats "$out"
