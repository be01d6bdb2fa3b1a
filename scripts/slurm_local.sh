#!/usr/bin/env bash
# A single-node Slurm (slurmctld + slurmd + munged) on this machine, for running the toolkit's `--launcher slurm`
# path for real. Everything lives under one private folder (no /etc/slurm change), so it can be torn down cleanly.
#
#   scripts/slurm_local.sh up      # configure and start; prints the SLURM_CONF line to export
#   scripts/slurm_local.sh status  # sinfo of the local cluster
#   scripts/slurm_local.sh down    # stop the daemons and delete the folder
#
# Needs root and Debian's packages: apt-get install -y slurmd slurmctld slurm-client munge (Slurm 22.05 on
# Debian 12). The node runs without cgroups (proctrack/linuxproc, task/none), which containers usually allow.
# HSFPN_SLURM_DIR (default /tmp/hsfpn-slurm) is the folder; HSFPN_SLURM_CPUS (default: all cores) the node's CPUs.
set -euo pipefail

DIR="${HSFPN_SLURM_DIR:-/tmp/hsfpn-slurm}"
CPUS="${HSFPN_SLURM_CPUS:-$(nproc)}"
NODE="$(hostname -s)"
CONF="$DIR/slurm.conf"
SOCKET="$DIR/munge/munge.socket"

die() { echo "slurm_local: $*" >&2; exit 1; }

need() {
    for tool in slurmctld slurmd srun sinfo munged mungekey; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found: apt-get install -y slurmd slurmctld slurm-client munge"
    done
    [ "$(id -u)" = 0 ] || die "run as root (the daemons switch users and own their spool folders)"
}

write_conf() {
    mkdir -p "$DIR"/{munge,ctld,slurmd,log}
    chmod 700 "$DIR/munge"
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: one node, ${CPUS} CPUs, no cgroups, munge on a private socket.
ClusterName=hsfpn-local
SlurmctldHost=${NODE}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${SOCKET}
StateSaveLocation=${DIR}/ctld
SlurmdSpoolDir=${DIR}/slurmd
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# A job whose srun stops answering (killed with its runner) is ended after this many seconds.
InactiveLimit=30
KillWait=5
SlurmdTimeout=60
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
    [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
    chmod 400 "$DIR/munge/munge.key"
    munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
}

wait_idle() {
    for _ in $(seq 1 30); do
        if SLURM_CONF="$CONF" sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            return 0
        fi
        sleep 1
    done
    SLURM_CONF="$CONF" sinfo >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle within 30 s (logs above, all under $DIR/log)"
}

up() {
    need
    [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null && die "already up ($DIR); run down first"
    write_conf
    start_munge
    slurmctld -f "$CONF" -c
    slurmd -f "$CONF" -c -N "$NODE"
    wait_idle
    echo "local Slurm is up: ${NODE}, ${CPUS} CPUs, partition local"
    echo "export SLURM_CONF=$CONF"
}

stop_pid() {
    local file="$1"
    [ -f "$file" ] || return 0
    local pid
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

down() {
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munge/munged.pid"
    rm -rf "$DIR"
    echo "local Slurm is down ($DIR removed)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) SLURM_CONF="$CONF" sinfo ;;
    *) echo "usage: $0 {up|status|down}" >&2; exit 2 ;;
esac
