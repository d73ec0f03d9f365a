#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the remote-execution tests and benchmark:
#   scripts/infra/slurm.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   scripts/infra/slurm.sh stop DIR
# Then `export SLURM_CONF=DIR/slurm.conf` and use sbatch/scontrol/scancel as usual; partition
# `debug`. Runs as root without systemd (Debian 12, Slurm 22.05: apt-get install slurmctld
# slurmd slurm-client munge). Ports 16817/16818, not Slurm's defaults.
set -euo pipefail
action="${1:?usage: slurm.sh start|stop DIR}"
dir="$(mkdir -p "${2:?usage: slurm.sh start|stop DIR}" && cd "$2" && pwd)"
export SLURM_CONF="$dir/slurm.conf"

stop_pidfile() {
    local f="$1"
    if [ -f "$f" ]; then
        local pid
        pid="$(cat "$f")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$f"
    fi
}

case "$action" in
start)
    mkdir -p "$dir/state" "$dir/spool" /run/munge /var/log/munge /var/lib/munge
    if [ ! -S /run/munge/munge.socket.2 ] || ! munge -n >/dev/null 2>&1; then
        [ -f /etc/munge/munge.key ] || mungekey --create
        chown -R root:root /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
        munged --force --pid-file="$dir/munged.pid"
    fi
    cpus="$(nproc)"
    mem_mb="$(awk '/MemTotal/ {print int($2/1024/2)}' /proc/meminfo)"
    cat > "$SLURM_CONF" <<CONF
ClusterName=dagrun-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    slurmctld -i
    slurmd -N localhost
    for _ in $(seq 100); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "slurm: up (SLURM_CONF=$SLURM_CONF)"
            exit 0
        fi
        sleep 0.2
    done
    echo "slurm: the node did not become idle within 20 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1
    ;;
stop)
    scancel --full --quiet -u root 2>/dev/null || true
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munged.pid"
    ;;
*)
    echo "usage: slurm.sh start|stop DIR" >&2
    exit 2
    ;;
esac
