#!/usr/bin/env bash
# The test cluster itself (tests/slurm/cluster.sh) behaves as the Slurm tests
# rely on: a batch job runs, a job array feeds a dependent job, a failed array
# task cancels its dependant instead of leaving it pending, a request larger
# than the node is refused at submit time with Slurm's message, and the
# two-node form runs one task (srun) and one MPI rank (mpirun) on each node.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/zoobench-slurm-XXXXXX)
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/c*/log/*.log; do echo "--- $f" >&2; tail -5 "$f" >&2; done; exit 1; }
cleanup() { "$here/cluster.sh" down "$tmp/c1"; "$here/cluster.sh" down "$tmp/c2"; rm -rf "$tmp"; }
trap cleanup EXIT

# Waits for a job to leave the queue; prints its final state.
wait_job() {
  for _ in $(seq 1200); do
    squeue -h -j "$1" 2>/dev/null | grep -q . || break
    sleep 0.1
  done
  scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1
}

out=$("$here/cluster.sh" up "$tmp/c1"); rc=$?
[ $rc = 77 ] && { echo "$out"; exit 77; }
[ $rc = 0 ] || fail "cluster.sh up: exit $rc"
eval "$out"
cpus=$(sinfo -h -o '%c' | head -1)

j=$(sbatch --parsable -o "$tmp/one.txt" --wrap 'echo ran on $SLURMD_NODENAME') || fail "sbatch"
[ "$(wait_job "$j")" = JobState=COMPLETED ] || fail "a trivial job did not complete"
grep -q "ran on $(hostname -s)" "$tmp/one.txt" || fail "its output: $(cat "$tmp/one.txt")"

a=$(sbatch --parsable -a 0-3 -o "$tmp/arr-%a.txt" --wrap 'echo $SLURM_ARRAY_TASK_ID') || fail "sbatch -a"
d=$(sbatch --parsable --dependency="afterok:$a" -o "$tmp/dep.txt" --wrap "cat $tmp/arr-*.txt | sort | tr '\n' ' '") || fail "sbatch --dependency"
[ "$(wait_job "$d")" = JobState=COMPLETED ] || fail "the dependent job did not complete"
[ "$(cat "$tmp/dep.txt")" = "0 1 2 3 " ] || fail "the dependent job saw '$(cat "$tmp/dep.txt")'"

a=$(sbatch --parsable -a 0-1 -o /dev/null --wrap 'exit $SLURM_ARRAY_TASK_ID') || fail "sbatch -a"
d=$(sbatch --parsable --dependency="afterok:$a" -o /dev/null --wrap true) || fail "sbatch --dependency"
[ "$(wait_job "$d")" = JobState=CANCELLED ] || fail "a job after a failed array task was not cancelled"
scontrol show job "$d" | grep -q 'Reason=DependencyNeverSatisfied' || fail "cancelled for another reason"

msg=$(sbatch -c $((cpus + 1)) --wrap true 2>&1) && fail "a request for $((cpus + 1)) CPUs was accepted"
[[ $msg == *"More processors requested than permitted"* ]] || fail "refused with '$msg'"
"$here/cluster.sh" down "$tmp/c1"

out=$("$here/cluster.sh" up "$tmp/c2" --nodes 2) || fail "cluster.sh up --nodes 2"
eval "$out"
[ "$(sinfo -h -N -o '%N %T' | sort | tr '\n' ' ')" = "n1 idle n2 idle " ] || fail "nodes: $(sinfo -N)"
j=$(sbatch --parsable --nodes=2 --ntasks-per-node=1 -o "$tmp/two.txt" --wrap '
  srun --mpi=none bash -c "echo task \$SLURM_PROCID on \$SLURMD_NODENAME"
  mpirun --allow-run-as-root -n 2 bash -c "echo rank \$OMPI_COMM_WORLD_RANK on \$SLURMD_NODENAME"') || fail "sbatch --nodes=2"
[ "$(wait_job "$j")" = JobState=COMPLETED ] || fail "the two-node job did not complete: $(cat "$tmp/two.txt")"
got=$(sort "$tmp/two.txt" | tr '\n' ' ')
[ "$got" = "rank 0 on n1 rank 1 on n2 task 0 on n1 task 1 on n2 " ] || fail "the two-node job printed '$got'"
echo "slurm test cluster: one node ($cpus CPUs) and two nodes: OK"
