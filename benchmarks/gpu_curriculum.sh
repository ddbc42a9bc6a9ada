#!/usr/bin/env bash
# The key-echo curriculum (benchmarks/key_curriculum.py) on a lent GPU, in one go, from the repo root:
#   bash benchmarks/gpu_curriculum.sh [LIMIT_SECONDS] [key_curriculum.py options...]
# Needs in the ignored .gpu/ folder: fonts/ (DejaVuSansMono-Bold.ttf, wqy-microhei.ttc: the generator's fonts,
# so pages render as on the development machine) and data-test/ (the bundle's held-out split). Writes the
# summary, the log and the checkpoints after the plain stage and after stage 13 (split in 15 MB parts: join
# with `cat stage13.part-* > model.safetensors`) under $OUT (or ./gpu-results). Each call works in a fresh
# directory: the script resumes finished phases, and a warm machine keeps /tmp between calls.
set -uo pipefail
OUT=${OUT:-gpu-results}
LIMIT=${1:-280}
shift || true
mkdir -p "$OUT" /usr/share/fonts/truetype/dejavu /usr/share/fonts/truetype/wqy
cp .gpu/fonts/DejaVuSansMono-Bold.ttf /usr/share/fonts/truetype/dejavu/
cp .gpu/fonts/wqy-microhei.ttc /usr/share/fonts/truetype/wqy/
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -c "from tessera.synth.fonts import font_info; print(font_info())" | tee "$OUT/fonts.txt"
WORK=$(mktemp -d /tmp/key-curriculum.XXXX)
timeout "$LIMIT" python3 benchmarks/key_curriculum.py --out "$WORK" --device cuda --workers 14 --loader-workers 8 \
    --threads 8 --test-dir .gpu/data-test --hops-scenes 100 --hops-key-use 30 "$@" >"$OUT/curriculum.log" 2>&1
echo "key_curriculum: rc $?" | tee -a "$OUT/fonts.txt"
grep -v -E "step/s|img/s" "$OUT/curriculum.log" | tail -40
cp "$WORK/summary.jsonl" "$OUT/" 2>/dev/null
for stage in plain stage13; do
    if [ -f "$WORK/$stage/final/model.safetensors" ]; then
        split -b 15M "$WORK/$stage/final/model.safetensors" "$OUT/$stage.part-"
        cp "$WORK/$stage/final/config.json" "$OUT/"
    fi
done
