#!/usr/bin/env bash
# Regenerate the synthetic data and retrain, export and package both demo models.
#
#   models/demo/retrain.sh            # everything: data, both trainings (in parallel, 1 thread each), package
#   models/demo/retrain.sh data|baseline|segformer|package   # one step
#
# WORK (default /tmp/seglens-demo) receives the data and the training runs; models/demo/ receives only the
# shipped files (ONNX models, manifests, cards, demo.json). PYTHON defaults to the interpreter on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/seglens-demo}"
PYTHON="${PYTHON:-python}"
DATA="$WORK/data"
cd "$REPO"

data() {
  # Training scenes: seed 7, split "train". Validation: the app's demo set (seed 20261124, split "val",
  # 20 images at 512x1024, see app/controllers/app_launch.py). The split is part of the scene seed, so the
  # two never share a scene.
  "$PYTHON" -m app.core.scenes.generator --out "$DATA" --count 400 --size 256x512 --seed 7 --split train
  "$PYTHON" -m app.core.scenes.generator --out "$DATA" --count 20 --size 512x1024 --seed 20261124 --split val
}

baseline() {
  "$PYTHON" -m app.training.cli --dataset "$DATA" --arch vgg16-unet --width 0.25 --scheme categories \
    --size 128x256 --epochs 16 --batch 8 --lr 2e-4 --patience 8 --seed 7 --threads 1 --workers 1 \
    --max-minutes 32 --out "$WORK/vgg16-unet"
}

segformer() {
  "$PYTHON" -m app.training.cli --dataset "$DATA" --arch segformer-b0 --scheme trainids \
    --size 128x256 --epochs 40 --batch 8 --lr 6e-4 --patience 12 --seed 7 --threads 1 --workers 1 \
    --max-minutes 32 --out "$WORK/segformer-b0"
}

package() {
  "$PYTHON" "$HERE/package.py" --work "$WORK" --dest "$HERE"
}

step="${1:-all}"
case "$step" in
  data|baseline|segformer|package) "$step" ;;
  all)
    data
    baseline > "$WORK/baseline.log" 2>&1 &
    b=$!
    segformer > "$WORK/segformer.log" 2>&1 &
    s=$!
    wait "$b"
    wait "$s"
    package
    ;;
  *) echo "usage: $0 [all|data|baseline|segformer|package]" >&2; exit 2 ;;
esac
