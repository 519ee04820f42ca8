#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine, for the Slurm executor's tests (and demos).
#
# Idempotent: installs Debian's munge/slurmctld/slurmd when missing, writes a
# slurm.conf naming this machine, two fake GPUs as gres (character devices
# made with mknod), one partition, starts munge, slurmctld and slurmd, and
# waits until `sinfo` shows the node idle. Needs root. Undo: scripts/slurm-down.sh.
# No accounting daemon: finished jobs are read from slurmctld's memory (squeue
# keeps them MinJobAge seconds), which is what the executor does anyway.
set -euo pipefail

PARTITION="${MAYURI_SLURM_PARTITION:-debug}"
CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm

say() { echo "slurm-up: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "not root: cannot install or start a Slurm cluster"
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null; then
    say "installing munge, slurmctld, slurmd, slurm-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
fi

HOST="$(hostname -s)"
CPUS="$(nproc)"
MEMORY_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

# Two fake GPUs: gres needs device files; these are /dev/null's numbers, never opened by a job.
for i in 0 1; do
    [ -e "/dev/mayuri-fake-gpu$i" ] || mknod "/dev/mayuri-fake-gpu$i" c 1 3
done

mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS"
# The daemons talk over loopback: the host name need not resolve to a reachable address.
conf="$(cat <<EOF
# Written by mayuri's scripts/slurm-up.sh: a one-node test cluster.
ClusterName=mayuri-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Timeouts are enforced within a few seconds (tests wait for them).
OverTimeLimit=0
KillWait=5
MessageTimeout=30
MinJobAge=600
SlurmdTimeout=60
# Batch jobs wait up to 3 s for a scheduling pass by default: a test cluster starts them at once.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB Gres=gpu:2 Features=fake-gpu State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)"
gres="NodeName=$HOST Name=gpu File=/dev/mayuri-fake-gpu[0-1]"

changed=0
if [ "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" != "$conf" ]; then
    printf '%s\n' "$conf" > "$CONF_DIR/slurm.conf"
    changed=1
fi
if [ "$(cat "$CONF_DIR/gres.conf" 2>/dev/null)" != "$gres" ]; then
    printf '%s\n' "$gres" > "$CONF_DIR/gres.conf"
    changed=1
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: a key, then the daemon (as the munge user, which the package made).
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge
chown munge:munge /run/munge
if ! running /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged
fi

if [ "$changed" = 1 ]; then
    # A new configuration: daemons started with the old one are restarted.
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; sleep 1; fi
    done
fi
running /run/slurmctld.pid || slurmctld
running /run/slurmd.pid || slurmd

for _ in $(seq 1 90); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)"
    case "$state" in
        idle|mixed|allocated) say "node $HOST $state, partition $PARTITION up"; exit 0 ;;
        down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
say "the node did not become idle within 90s (state: ${state:-unknown}); see $LOGS/"
exit 1
