#!/usr/bin/env bash
# The whole GPU check, in one go (issue: GPU performance). Run on a lent GPU from the repo root:
#   bash benchmarks/gpu_check.sh            (writes JSON and logs under $OUT, or ./gpu-results)
# 1. GPU conformance: fp32 greedy tokens = fixtures, compiled decode = eager, bf16 logits in tolerance.
# 2. tessera bench for the 2B and 26B presets (eager baseline vs fast), 13 tiles, 128 new tokens.
# 3. training-step throughput / MFU at the 2B size.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"
python3 -m tessera.cli bench --preset mini-internvl-chat-2b-v1-5 --tiles 13 --new-tokens 128 --batch 32 \
    --modes eager,fast,continuous \
    --json "$OUT/bench_2b.json" 2>&1 | tee "$OUT/bench_2b.log"
python3 -m tessera.cli bench --preset internvl-chat-v1-5 --tiles 13 --new-tokens 128 --batch 8 \
    --json "$OUT/bench_26b.json" 2>&1 | tee "$OUT/bench_26b.log"
python3 benchmarks/bench_train.py --preset mini-internvl-chat-2b-v1-5 --device cuda 2>&1 | tee "$OUT/bench_train.log" || true
