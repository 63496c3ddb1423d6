#!/usr/bin/env bash
# Threads against throughput: each model's default recipe for 3 epochs on 1 and on 2 threads
# (RAYON_NUM_THREADS), the seconds of epochs 2 and 3, and whether the two runs' metrics agree
# bit for bit (they must: the fused operations cut a batch the same way on any thread count).
# Tells whether a grid runs faster as one process on every core or as one-thread shards
# (`compare --shard I/N` with RAYON_NUM_THREADS=1), the way a SLURM array of one-CPU tasks runs.
#
#   cargo build --release
#   benches/threads.sh [BINARY] [THREADS...]     # default: target/release/chaoscast, 1 2
#
# Needs a quiet machine; about 2 minutes on 2 cores.
set -euo pipefail

bin=$(realpath "${1:-target/release/chaoscast}")
shift || true
threads=(1 2)
[ $# -eq 0 ] || threads=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" generate thomas -o thomas.parquet -q

printf '| model | %s |\n' "$(printf '%s thread(s), s an epoch | ' "${threads[@]}" | sed 's/ | $//')"
printf '| --- |%s\n' "$(printf ' ---: |%.0s' "${threads[@]}")"
for model in lstm gru fdn transformer; do
    row="| $model |"
    first=
    for t in "${threads[@]}"; do
        RAYON_NUM_THREADS=$t "$bin" train --data thomas.parquet --model "$model" --epochs 3 \
            -o "$model-$t" 2>&1 | tr '\r' '\n' | grep -o 'epoch [23]/3:.*' |
            sed 's/.*, \([0-9.]*\) s.*/\1/' >"$model-$t.seconds"
        cut -d, -f1-4 "$model-$t/metrics.csv" >"$model-$t.metrics"
        row="$row $(paste -sd/ "$model-$t.seconds") |"
        if [ -z "$first" ]; then
            first=$model-$t.metrics
        elif ! cmp -s "$first" "$model-$t.metrics"; then
            echo "DIFFERENT metrics for $model on $t threads" >&2
            exit 1
        fi
    done
    echo "$row"
done
echo "metrics.csv (seconds aside) the same on every thread count"
