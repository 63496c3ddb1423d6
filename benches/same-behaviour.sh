#!/usr/bin/env bash
# Do two chaoscast binaries behave the same? For a refactor (issue 17): the same seeds must give
# bit-identical metrics.csv (every column but the wall-clock `seconds`), report.json (times
# aside), predictions and rollouts, for the four neural models' default recipes, the ESN and the
# direct heads of the LSTM, GRU (attention) and FDN, with a resumed run (the LSTM) and eval's
# climate and ensemble (the GRU).
#
#   git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release)
#   cargo build --release
#   benches/same-behaviour.sh /tmp/before/target/release/chaoscast target/release/chaoscast
#
# Prints one line per compared file and exits non-zero if any differs. About 10 s on 2 cores.
#
# The same check between thread counts (the bits must not depend on them): a wrapper as AFTER,
#
#   printf '#!/bin/sh\nRAYON_NUM_THREADS=1 exec %s "$@"\n' "$PWD/target/release/chaoscast" >/tmp/one
#   chmod +x /tmp/one && benches/same-behaviour.sh target/release/chaoscast /tmp/one
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BEFORE_BINARY AFTER_BINARY" >&2
    exit 2
fi
before=$(realpath "$1")
after=$(realpath "$2")
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# One job per run: a few epochs of the model's default recipe (the ESN: its closed-form fit), or
# of its direct head, then an evaluation, a forecast of the run's horizon and a rollout past it.
run_all() {
    local bin=$1 out=$2
    mkdir -p "$out"
    # Relative paths, so that the files that record them (config.json, report.json) agree.
    (
        cd "$out"
        "$bin" generate thomas --samples 2500 --seed 3 -o thomas.parquet -q
        "$bin" generate thomas --samples 400 --seed 4 --format csv -o history.csv -q
        local eval_extra=()
        for run in $runs; do
            local extra=() model=${run%-direct}
            case $model in
                lstm | gru) extra=(--epochs 3 --hidden 24) ;;
                fdn) extra=(--epochs 2 --hidden 8) ;;
                transformer) extra=(--epochs 2 --hidden 16) ;;
                esn) extra=(--hidden 200) ;;
            esac
            # The direct heads: the LSTM's and GRU's attention, the FDN's residual block alone.
            [ "$run" = "$model" ] || extra+=(--decoder direct)
            "$bin" train --data thomas.parquet --model "$model" --seed 7 "${extra[@]}" \
                -o "$run" -q >/dev/null
            model=$run
            case $model in
                # The resume path, and eval's climate and ensemble.
                lstm) "$bin" train --resume lstm --epochs 4 -q >/dev/null ;;
                gru) eval_extra=(--ensemble 3 --climate --steps 400 --starts 2) ;;
            esac
            "$bin" eval "$model" -q "${eval_extra[@]}" >/dev/null 2>&1
            eval_extra=()
            "$bin" predict "$model" -i history.csv -o "$model/predict.csv" -q >/dev/null
            "$bin" predict "$model" -i history.csv --steps 90 -o "$model/rollout.csv" -q >/dev/null
        done
    )
}

# The default recipes (autoregressive decoders) of the four models and the ESN, then the direct
# heads of the models that have their own fused parts there.
runs="lstm gru fdn transformer esn lstm-direct gru-direct fdn-direct"
run_all "$before" "$work/before"
run_all "$after" "$work/after"

# metrics.csv without its `seconds` column; report.json and config.json without the keys that
# hold times or the dataset's absolute path (the two runs live in different folders).
strip_metrics() { python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
drop = rows[0].index("seconds") if "seconds" in rows[0] else None
for r in rows:
    print(",".join(v for i, v in enumerate(r) if i != drop))' "$1"; }
strip_report() { python3 -c '
import json, sys
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()
                if "second" not in k and k not in ("time", "data", "data_path")}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
print(json.dumps(clean(json.load(open(sys.argv[1]))), sort_keys=True))' "$1"; }

status=0
compare() {
    local what=$1 a=$2 b=$3
    if cmp -s "$a" "$b"; then
        echo "same      $what"
    else
        echo "DIFFERENT $what"
        status=1
    fi
}
for model in $runs; do
    for f in predict.csv rollout.csv; do
        compare "$model/$f" "$work/before/$model/$f" "$work/after/$model/$f"
    done
    if [ -f "$work/before/$model/metrics.csv" ]; then
        strip_metrics "$work/before/$model/metrics.csv" >"$work/m-before"
        strip_metrics "$work/after/$model/metrics.csv" >"$work/m-after"
        compare "$model/metrics.csv (without seconds)" "$work/m-before" "$work/m-after"
    fi
    strip_report "$work/before/$model/report.json" >"$work/r-before"
    strip_report "$work/after/$model/report.json" >"$work/r-after"
    compare "$model/report.json (without times and paths)" "$work/r-before" "$work/r-after"
    strip_report "$work/before/$model/config.json" >"$work/c-before"
    strip_report "$work/after/$model/config.json" >"$work/c-after"
    compare "$model/config.json (without the data path)" "$work/c-before" "$work/c-after"
done
compare "thomas.parquet" "$work/before/thomas.parquet" "$work/after/thomas.parquet"
exit $status
