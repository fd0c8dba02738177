#!/usr/bin/env bash
# A real Slurm on this machine, from Debian's packages (slurmctld, slurmd,
# slurm-client, munge), for the tests: no systemd, no cgroups, everything
# (keys, sockets, state, spool, logs) under one folder.
#
#   tests/slurm/cluster.sh up DIR [--nodes 1|2]   # prints: export SLURM_CONF=DIR/etc/slurm.conf
#   tests/slurm/cluster.sh down DIR
#
# --nodes 1 (default): one node with this machine's own `slurmd -C` figures.
# --nodes 2: two slurmd processes (`slurmd -N n1`, `-N n2`) on 127.0.0.1 with
# one CPU each, a real 2-node cluster on one machine. slurmd runs jobs as
# their user, so it must run as root; without root, or without the packages,
# `up` exits 77 (ctest's "skipped"), saying why.
set -euo pipefail

die() { echo "cluster.sh: $1" >&2; exit "${2:-1}"; }
[ $# -ge 2 ] || die "usage: $0 up DIR [--nodes 1|2] | down DIR" 2
cmd=$1 dir=$(realpath -m "$2"); shift 2
nodes=1
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes=${2:?}; shift 2 ;;
    *) die "unknown option '$1'" 2 ;;
  esac
done
[[ $nodes == 1 || $nodes == 2 ]] || die "--nodes must be 1 or 2" 2
conf=$dir/etc/slurm.conf

down() {
  if [ -f "$conf" ]; then
    SLURM_CONF=$conf timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    for pid in "$dir"/run/slurm*.pid; do  # wait for the daemons to leave; kill what is left
      [ -f "$pid" ] || continue
      p=$(cat "$pid" 2>/dev/null || true)
      gone=0
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || { gone=1; break; }; sleep 0.1; done
      [ $gone = 1 ] || kill -9 "$p" 2>/dev/null || true
    done
  fi
  if [ -S "$dir/munge/munge.socket.2" ]; then
    munged --stop --socket="$dir/munge/munge.socket.2" >/dev/null 2>&1 || true
  fi
}

case $cmd in
  down) down; exit 0 ;;
  up) ;;
  *) die "unknown command '$cmd' (up or down)" 2 ;;
esac

[ "$(id -u)" = 0 ] || die "skipped: slurmd must run as root to start jobs as their user" 77
for b in munged slurmctld slurmd sbatch scontrol sinfo; do
  command -v "$b" >/dev/null || die "skipped: '$b' is not installed (tools/setup installs slurmctld, slurmd, slurm-client and munge)" 77
done

rm -rf "$dir"
mkdir -p "$dir"/{etc,state,spool,log,run,munge}
chmod 711 "$dir/munge"
head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
socket=$dir/munge/munge.socket.2
munged --force --socket="$socket" --key-file="$dir/munge/munge.key" --log-file="$dir/log/munged.log" \
  --pid-file="$dir/run/munged.pid" --seed-file="$dir/munge/seed" || die "munged did not start: $(tail -3 "$dir/log/munged.log")"

# Free TCP ports for slurmctld and each slurmd, chosen by the kernel.
read -r -a ports < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
host=$(hostname -s)
{
  cat <<CONF
ClusterName=zoobench-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# pmix starts a PMIx server in every step (about 8 s a job here); the tests
# launch MPI with mpirun inside the allocation instead.
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Without it a job whose dependency failed stays pending forever.
DependencyParameters=kill_invalid_depend
# Without it a request larger than the partition pends forever instead of being refused.
EnforcePartLimits=ALL
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=30
CONF
  if [ "$nodes" = 1 ]; then
    # This machine's own figures (CPUs, sockets, cores, memory), as slurmd sees them.
    figures=$(slurmd -C | head -1 | sed -e "s/^NodeName=[^ ]*//" -e "s/ UpTime=.*//")
    echo "SlurmdPort=${ports[1]}"
    echo "NodeName=$host NodeAddr=127.0.0.1 $figures State=UNKNOWN"
  else
    echo "NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[1]} CPUs=1 State=UNKNOWN"
    echo "NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[2]} CPUs=1 State=UNKNOWN"
  fi
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} > "$conf"

export SLURM_CONF=$conf
slurmctld -f "$conf" || die "slurmctld did not start: $(tail -5 "$dir/log/slurmctld.log" 2>/dev/null)"
if [ "$nodes" = 1 ]; then
  slurmd -f "$conf" || die "slurmd did not start: $(tail -5 "$dir/log/slurmd-$host.log" 2>/dev/null)"
else
  for n in n1 n2; do
    slurmd -f "$conf" -N "$n" || die "slurmd -N $n did not start: $(tail -5 "$dir/log/slurmd-$n.log" 2>/dev/null)"
  done
fi
for _ in $(seq 300); do  # up to 30 s for every node to register idle
  states=$(sinfo -h -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
  [ "$states" = "idle " ] && { echo "export SLURM_CONF=$conf"; exit 0; }
  sleep 0.1
done
down
die "the nodes did not come up idle (sinfo: ${states:-no answer}); logs in $dir/log"
