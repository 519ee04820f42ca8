#!/usr/bin/env bash
# Stops the one-node Slurm cluster that scripts/slurm-up.sh started (the packages and config stay).
set -uo pipefail

stop() {
    local pidfile="$1"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")"
    fi
}
stop /run/slurmd.pid
stop /run/slurmctld.pid
stop /run/munge/munged.pid
echo "slurm-down: stopped" >&2
