#!/usr/bin/env bash
# Scale out over several machines with GNU parallel and ssh. This machine reads the URL list and
# gives the records their keys (a2d-shard emits whole shards in order, PER_SHARD rows each but
# the last); `parallel --pipe -N PER_SHARD` sends each shard's records over ssh to a free job
# slot on one of the hosts, which runs `a2d-fetch | a2d-write OUT` on them. One job per shard.
#
# Usage: HOSTS=8/node1,8/node2 examples/parallel_many_hosts.sh [URL_LIST] [OUTPUT_FOLDER]
#   URL_LIST       anything a2d-read reads on this machine (default: serve examples/data on
#                  127.0.0.1, 15 rows, for trying the recipe with HOSTS=: or SSH=local_ssh.sh)
#   OUTPUT_FOLDER  storage that every host writes and this machine reads: s3://bucket/out
#                  (with credentials on every host) or a folder on a shared filesystem, at the
#                  same path everywhere (default: examples/out-hosts)
# Environment:
#   HOSTS       parallel's --sshlogin: SLOTS/HOST,... (default ":", this machine without ssh).
#               Give each host as many slots as cores: each job is one a2d-fetch process.
#   SSH         the ssh command parallel uses (default: ssh). To try the recipe on one machine:
#               SSH=examples/local_ssh.sh HOSTS=2/hostA,2/hostB examples/parallel_many_hosts.sh
#   PER_SHARD   rows per shard (default 10000; 4 for the example data)
#   FETCH_OPTS  more a2d-fetch options, e.g. "-j 128 --timeout 10"
#   WRITE_OPTS  more a2d-write options, e.g. "--format files"
#
# The hosts need ssh logins without a password, bash, and a2d-fetch and a2d-write on the PATH of
# a non-interactive login (pip install any2dataset on each). A job that fails is given to another
# host (parallel --retries 3). Run the same command again to resume: `a2d-shard --skip-done OUT`
# leaves out the shards already finished in OUT. The job log is OUTPUT_FOLDER.joblog (for an
# s3:// output, ./NAME.joblog) and names the host of every shard.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/recipe.sh" "${1:-}"
out=${2:-$here/out-hosts}
out=${out%/}
case $out in
    *://*) joblog=$PWD/$(basename "$out").joblog ;;
    /*) joblog=$out.joblog ;;
    *) out=$PWD/$out; joblog=$out.joblog ;;  # the hosts see the same absolute path
esac
[ -z "$from_scratch" ] || rm -rf "$out" "$joblog"
PER_SHARD=${PER_SHARD:-10000}
HOSTS=${HOSTS:-:}
SSH=${SSH:-ssh}
export FETCH_OPTS=${FETCH_OPTS:-} WRITE_OPTS=${WRITE_OPTS:-} out

# The job, run by bash on a host: one shard's records on stdin -> that shard finished in $out.
# (parallel -q passes it to bash as one argument; --env sends the variables it uses.)
# shellcheck disable=SC2016  # expanded on the host
job='a2d-fetch --workers 1 $FETCH_OPTS | a2d-write $WRITE_OPTS "$out"'

echo "== a2d-read | a2d-shard | parallel --pipe -N $PER_SHARD --sshlogin $HOSTS: a2d-fetch | a2d-write $out"
# --block: room for a whole shard in one read (parallel grows it, with a warning, if too small).
if ! a2d-read "$urls" | a2d-shard --number-sample-per-shard "$PER_SHARD" --skip-done "$out" \
        | parallel --pipe -N "$PER_SHARD" --block "$((PER_SHARD * 2 + 1024))k" \
            --sshlogin "$HOSTS" --ssh "$SSH" --env out --env FETCH_OPTS --env WRITE_OPTS \
            --retries 3 --joblog "$joblog" -q bash -o pipefail -c "$job"; then
    echo "== some shards failed (see $joblog); run the same command again to redo them" >&2
    exit 1
fi

echo "== a2d-stats $out"
a2d-stats "$out"
