#!/bin/bash
# A compare grid as a real SLURM job array on this one machine (issue 16, item 2).
#
# Installs Debian's slurm-wlm and munge if missing (needs root), starts munged, slurmctld and
# slurmd on 127.0.0.1 with their own state, spool, log and socket folders under a temporary
# folder (no systemd), and then:
#
#   1. submits a small grid (4 cells of the small GRU on a short Thomas series) as an array of
#      2 shards with examples/slurm/array.sbatch;
#   2. once both shards are mid-cell, kills one (scancel --signal=KILL) and sends the other the
#      time-limit warning (SIGUSR1 to the batch shell, as --signal=B:USR1@120 would): that one
#      checkpoints its epoch, exits with code 3 and requeues itself;
#   3. waits for the queue to drain, resubmits the array (sbatch --wait), which resumes the
#      killed cell from its checkpoint, and runs examples/slurm/summary.sbatch;
#   4. runs the same grid in one process (`chaoscast compare`) and checks that every cell's
#      numbers (cells.csv without the seconds column) and the summary table (seconds aside) are
#      equal.
#
# Stops every daemon it started on exit, success or failure. Not run by CI (it installs system
# packages and takes a few minutes); run it from the repository root after a release build:
#
#   cargo build --release && sudo benches/slurm-check.sh      # KEEP=1 keeps the folder

set -euo pipefail

repo=$(pwd)
binary="$repo/target/release/chaoscast"
[ -x "$binary" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f examples/slurm/array.sbatch ] || { echo "run from the repository root" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

W=$(mktemp -d /tmp/chaoscast-slurm.XXXXXX)
chmod 755 "$W"
mkdir -p "$W"/{state,spool,log,run,single}
export SLURM_CONF="$W/slurm.conf"
export PATH="$repo/target/release:$PATH"

stop() {
    status=$?
    for p in slurmd slurmctld munged; do
        [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null || true
    done
    sleep 1
    if [ "${KEEP:-0}" = 1 ] || [ $status -ne 0 ]; then
        echo "logs and runs kept in $W"
    else
        rm -rf "$W"
    fi
    exit $status
}
trap stop EXIT

# munge with its own key and socket.
dd if=/dev/urandom of="$W/munge.key" bs=1024 count=1 status=none
chmod 400 "$W/munge.key"
munged --force --key-file="$W/munge.key" --socket="$W/munge.sock" --pid-file="$W/munged.pid" \
    --log-file="$W/log/munged.log" --seed-file="$W/munge.seed"

port=$((20000 + RANDOM % 20000))
cat > "$SLURM_CONF" <<EOF
ClusterName=chaoscast
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$W/munge.sock
CredType=cred/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -i
slurmd -N localhost
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && break
    sleep 1
done
sinfo -h -o %T | grep -q idle || { echo "slurmd did not come up: see $W/log" >&2; exit 1; }
echo "SLURM $(sinfo --version | cut -d' ' -f2) up: $(sinfo -h -o '%P %D %c %T')"

# The grid: 4 cells, long enough (20 epochs) that each shard is killed or signalled mid-cell.
cat > "$W/grid.toml" <<EOF
datasets = ["thomas.parquet"]
models = ["gru"]
seeds = [0, 1]

[train]
preset = "small"
epochs = 20

[[variants]]
name = "baseline"

[[variants]]
name = "fl"
fl-spread = 0.25
EOF
cd "$W/run"
chaoscast generate thomas --samples 4000 --output thomas.parquet --quiet
cp thomas.parquet "$W/single/"
cells=$(chaoscast compare ../grid.toml --output grid --list-cells | head -1 | cut -d' ' -f1)
echo "$cells cells in 2 shards"

submit() {
    sbatch --parsable "$@" --array=0-1 --cpus-per-task=1 --time=00:20:00 --open-mode=append \
        --export=ALL,EXP=../grid.toml,OUT=grid,SHARDS=2 "$repo/examples/slurm/array.sbatch"
}
job=$(submit)
echo "array job $job submitted"

# Wait until both shards have a checkpoint of a cell they are training.
for _ in $(seq 300); do
    n=$({ find grid -name checkpoint.bin 2>/dev/null || true; } | wc -l)
    [ "$n" -ge 2 ] && break
    [ -z "$(squeue -h -j "$job" 2>/dev/null || true)" ] && break
    sleep 1
done
[ "$n" -ge 2 ] || { echo "the shards never reached a checkpoint:" >&2; cat ./*.out >&2; exit 1; }
# A hard kill (as the OOM killer or a lost node would): the worker gets no chance to tidy up.
pkill -KILL -f "chaoscast compare ../grid.toml --output grid --shard 0/2"
scancel --batch --signal=USR1 "${job}_1"
echo "shard 0's worker killed (SIGKILL) mid-cell; shard 1 sent the time-limit warning (USR1)"
# The killed task is gone; the warned one requeues itself and finishes its shard.
for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$job" 2>/dev/null || true)" ] && break
    sleep 1
done
echo "shard 1's log:"
sed 's/^/    /' "$W/run/chaoscast-${job}_1.out"
grep -h "Requeuing\|WEXITSTATUS" "$W/log/slurmctld.log" | sed 's/^/    slurmctld: /'
states=$(chaoscast compare ../grid.toml --output grid --list-cells | tail -n +3 | cut -f6)
echo "after the kill and the warning, cells:" $(echo "$states" | sort | uniq -c)
if [ "$(echo "$states" | grep -c finished)" -ge "$cells" ]; then
    echo "FAIL: every cell finished although shard 0 was killed mid-cell" >&2
    exit 1
fi

again=$(submit --wait)
echo "array job $again resubmitted and finished"
sbatch --wait --export=ALL,EXP=../grid.toml,OUT=grid "$repo/examples/slurm/summary.sbatch" >/dev/null
echo "summary job finished"

# The same grid in one process, on one thread as each task was (the thread count changes the
# order of the floating-point sums).
cd "$W/single"
SLURM_CPUS_PER_TASK=1 chaoscast compare ../grid.toml --output grid --quiet
strip() { cut -d, -f1-11 "$1"; }           # cells.csv without the seconds column
if ! diff <(strip "$W/run/grid/cells.csv") <(strip "$W/single/grid/cells.csv"); then
    echo "FAIL: the SLURM grid's cells differ from one process's" >&2
    exit 1
fi
summary() { cut -d, -f1-14 "$1"; }         # every column but seconds_mean
if ! diff <(summary "$W/run/grid/summary.csv") <(summary "$W/single/grid/summary.csv"); then
    echo "FAIL: the summaries differ" >&2
    exit 1
fi
echo "cells.csv (seconds aside) and summary.csv (seconds aside) equal one process's:"
strip "$W/run/grid/cells.csv"
echo "PASS"
