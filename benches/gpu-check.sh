#!/usr/bin/env bash
# The GPU check of the performance work, as one script for the borrowed GPU machine (no Rust
# toolchain, no network there): our train_step benchmarks on CUDA beside the same PyTorch steps
# on the same GPU, small and paper sizes, in one table.
#
# Here (with the toolchain), build the CUDA bench binary and put it where `carry` takes it:
#
#   CUDARC_CUDA_VERSION=13000 cargo bench --bench main --features cuda --no-run
#   mkdir -p .device && cp "$(ls -t target/release/deps/main-* | grep -v '\.d$' | head -1)" .device/main-bench
#
# (`.device/` is git-ignored.) Then run this script there with `.device` carried; it writes
# $OUT/gpu.md (or ./gpu.md without $OUT) and the criterion log next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
bin=.device/main-bench
if [[ ! -x $bin ]]; then
    echo "gpu-check: $bin is missing; build it as the header of this script says" >&2
    exit 2
fi
# The CUDA runtime libraries, never a stubs/ folder (its fake libcuda breaks everything).
export LD_LIBRARY_PATH="/usr/local/cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 benches/compare_torch.py --device cuda --paper --ours "$bin" --out "$out/gpu.md" \
    2> "$out/gpu-criterion.log"
