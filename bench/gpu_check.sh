#!/usr/bin/env bash
# GPU checks in one short script, for a GPU machine without internet (see ../shared/device-wheels.md):
#   1. install the project's missing packages from the wheels in .whl/ (git-ignored) into /tmp/site;
#   2. bench/train_overhead.py at the GPU configuration (512x704, batch 8) in fp32 and bf16-mixed;
#   3. the default pipeline with --env gpu, timed per node (bench/end_to_end.py).
# Figures go to stdout and, when $OUT is set (the device tool), to $OUT/gpu_check.txt.
# Usage: bash bench/gpu_check.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}/gpu_check.txt"
: > "$out"
log() { echo "$*" | tee -a "$out"; }

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
log "device: $(python3 -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"

for precision in 32 bf16-mixed; do
  line=$(python3 bench/train_overhead.py --precision "$precision" --height 512 --width 704 --batch 8 --encoder resnet34 --steps 40 2>&1 | tail -1)
  log "train_overhead precision=$precision $line"
done

offline="model.encoder_weights=null,model.freeze_encoder=false,model.freeze_batchnorm=false"
line=$(python3 bench/end_to_end.py --params "$offline" --env gpu 2>&1 | tee -a "$out" | tail -1)
log "end_to_end --env gpu $line"
