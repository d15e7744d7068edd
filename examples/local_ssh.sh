#!/usr/bin/env bash
# A stand-in for ssh that runs the command on this machine, to try the many-hosts recipe without
# remote hosts: `parallel --ssh examples/local_ssh.sh --sshlogin 2/hostA,2/hostB ...` then sees
# two "hosts" (the job log names them) that are both this machine.
# Usage (as ssh): local_ssh.sh [SSH_OPTIONS] HOST [--] COMMAND...
set -euo pipefail

while [ $# -gt 0 ]; do  # skip ssh's options, and the value of those that take one
    case $1 in
        --) shift; break ;;
        -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
shift  # the host name
[ "${1:-}" = -- ] && shift
# sshd starts the command with SHELL set to the login shell; parallel's remote worker runs the job
# with $SHELL and, when it is unset, silently runs nothing (seen when CI ran without SHELL).
SHELL=$(getent passwd "$(id -u)" | cut -d: -f7)
export SHELL=${SHELL:-/bin/sh}
exec bash -c "$*"  # as ssh does: the words joined by spaces, run by a shell
