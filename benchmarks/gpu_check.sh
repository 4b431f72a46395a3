#!/usr/bin/env bash
# The GPU check (one H100/H200, under 8 minutes), run on the device machine from the repository root with
# .whl/ carried (benchmarks/gpu_prepare.sh makes it):
#   1. trains the 2 mm phantom LDM (recipes/quality-ldm-2mm.yaml) and reports the autoencoder's held-out
#      reconstruction PSNR, the conditioning gap and r(requested, measured ventricles) on held-out phantoms;
#   2. samples/s at Pinaya's configuration (160×224×160, DDIM 50, bf16): synthkit's loop against MONAI's
#      LatentDiffusionInferer on the same model.
# Every result is a JSON line on stdout (and in $OUT/gpu_check.jsonl when OUT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore SYNTHKIT_CACHE=${SYNTHKIT_CACHE:-/tmp/synthkit-cache}
log=${OUT:-/tmp}/gpu_check.jsonl
device=${DEVICE:-cuda}
python3 benchmarks/bench_gpu.py --device "$device" ${SMOKE:+--smoke} | tee "$log"
python3 benchmarks/bench_sampling.py --device "$device" --config paper --steps "${PAPER_STEPS:-50}" --batch 4 | tee -a "$log"
