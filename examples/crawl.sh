#!/usr/bin/env bash
# A crawl, on a simulated internet: 300 hosts on their own loopback addresses (127.1.x.y), each
# with its own round trip, think time and bandwidth, small servers among them, and 404s, 500s,
# stalls and resets in the mix (benchmarks/siminet.py). 3,000 URLs with crawl settings:
# many downloads in flight, the per-host cap and ramp-up on, short timeouts, one retry.
# Usage: examples/crawl.sh [OUTPUT_FOLDER]   (default: examples/out-crawl)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out-crawl}
command -v a2d-read >/dev/null || PATH="$here/../bin:$PATH"
python=$(command -v python3 || command -v python)
siminet="$here/../benchmarks/siminet.py"
work=$(mktemp -d)
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" "$siminet" serve --hosts 300 --port "$port" --ready-file "$work/ready" 2>"$work/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do [ -e "$work/ready" ] && break; sleep 0.1; done
"$python" "$siminet" urls --hosts 300 --port "$port" --count 3000 >"$work/urls.txt"
rm -rf "$out"

a2d-read "$work/urls.txt" \
    | a2d-shard --number-sample-per-shard 1000 --skip-done "$out" \
    | a2d-fetch -j 512 --per-host 16 --timeout 4 --retries 1 \
    | a2d-write --format webdataset "$out"
a2d-stats "$out"
