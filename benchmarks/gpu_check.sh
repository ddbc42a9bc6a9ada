#!/usr/bin/env bash
# The whole GPU check, in one go (issue: GPU performance). Run on a lent GPU from the repo root:
#   bash benchmarks/gpu_check.sh            (writes JSON and logs under $OUT, or ./gpu-results)
# 1. GPU conformance: fp32 greedy tokens = fixtures, compiled decode = eager, bf16 logits in tolerance.
# 2. tessera bench for the 2B preset (eager baseline vs fast vs continuous, eager and compiled), 13 tiles.
# 3. training-step throughput / MFU at the 2B size.
# 4. tessera bench for the 26B preset (eager vs fast), batch 8.
# Each step has its own time limit (STEP_LIMIT_* seconds; 575 s together, inside a 600 s device call), so one
# that hangs cannot take the others' time.
# The conformance fixtures come from $TESSERA_CONFORMANCE (default ../shared/conformance, or a copy in .gpu/).
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
if [ -z "${TESSERA_CONFORMANCE:-}" ] && [ -d .gpu/conformance ]; then export TESSERA_CONFORMANCE=$PWD/.gpu/conformance; fi
export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-16}
step() {  # step NAME LIMIT_SECONDS COMMAND...: run, log to $OUT/NAME.log, report the time taken
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    echo "== $name: rc ${PIPESTATUS[0]}, $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__)" | tee -a "$OUT/gpu.txt"
step gpu_tests "${STEP_LIMIT_TESTS:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
step bench_2b "${STEP_LIMIT_2B:-230}" python3 -m tessera.cli bench --preset mini-internvl-chat-2b-v1-5 --tiles 13 \
    --new-tokens 128 --batch 32 --modes eager,fast,continuous,continuous-fast --json "$OUT/bench_2b.json"
step bench_train "${STEP_LIMIT_TRAIN:-45}" python3 benchmarks/bench_train.py --preset mini-internvl-chat-2b-v1-5 \
    --device cuda --batch 2 --tiles 13 --seq 4096 --steps 8 --warmup 2
step bench_26b "${STEP_LIMIT_26B:-150}" python3 -m tessera.cli bench --preset internvl-chat-v1-5 --tiles 13 \
    --new-tokens 128 --batch 8 --modes eager,fast --repeats 1 --json "$OUT/bench_26b.json"
