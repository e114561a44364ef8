#!/usr/bin/env bash
# The GPU check of issue 10.8, ready for a session that is lent a device (run from the repository root):
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. throughput of `base` at batch 512 (bf16 autocast, SDPA), torch.compile off and on: scans/s, peak memory, MFU;
# 2. a short `small` pretraining on the demo cohort with health measured every 50 steps.
# Record the printed numbers in benchmarks/RESULTS.md.
set -euo pipefail
out="${1:-${OUT:-/tmp/semantoks_gpu}}"
mkdir -p "$out"
export TEMPLATEFLOW_HOME="${TEMPLATEFLOW_HOME:-$(cd .. && pwd)/shared/data/templateflow}"

python benchmarks/train_throughput.py --preset base --batch-size 512 --steps 30 --device cuda 2>&1 | tee "$out/base_eager.txt"
python benchmarks/train_throughput.py --preset base --batch-size 512 --steps 30 --device cuda --compile 2>&1 \
    | tee "$out/base_compiled.txt"

cat > "$out/small_demo.yaml" <<YAML
results: $out/results
pretrain: {preset: small, steps: 600, batch_size: 64, health_every: 50, log_every: 25}
YAML
snakemake --cores all --configfile config/config.yaml "$out/small_demo.yaml" 2>&1 | tail -20
cp "$out"/results/models/*/log.csv "$out/small_log.csv"
grep -E "cka_init|step" "$out/small_log.csv" | tail -3
