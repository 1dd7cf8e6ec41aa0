#!/usr/bin/env bash
# GPU figures in one go (at most 7.7 minutes of steps on one recent NVIDIA GPU): benchmarks/speed.py and
# benchmarks/pipeline.py with --device cuda, each table written to a folder.
#
#   PYTHONPATH=. bash benchmarks/gpu.sh [OUT_DIR]        # default OUT_DIR: gpu-results
#
# Runs from the source tree (PYTHONPATH=.) on a machine with PyTorch, timm, torchvision and
# onnxruntime and no network: nothing is downloaded (random weights; speed only).
#   1. speed.py, classifiers hrnet_w18_small and hrnet_w32 at 224, batch 1 and 32: eager,
#      channels_last, autocast (fp16), deploy (BN folded), deploy_lp (fp16), each next to timm.
#   2. speed.py, hrnet_w32 batch 32: torch.compile (inductor), ours and timm's.
#   3. speed.py --task pose (hrnet_w32_pose_coco_256x192, batch 32): eager, channels_last, autocast.
#   4. pipeline.py --device cuda: the whole pose video loop with a person detector, plain /
#      eager / eager:bfloat16 / inductor, --det-every 1 and 5. Without PyAV it runs on synthetic
#      frames held in memory and does not time decoding or encoding (it says so in its table).
# Each step has its own time limit; a step that fails or runs out of time is logged and the next
# one runs. Every step writes OUT_DIR/<step>.txt (the table) and .json; OUT_DIR/summary.txt
# names the GPU, the versions and each step's exit status.
set -u
OUT=$(realpath -m "${1:-gpu-results}")  # relative to where it is called from
PY=${PYTHON:-python}
cd "$(dirname "$0")/.." || exit 1  # the source tree
export PYTHONPATH=${PYTHONPATH:-.}
mkdir -p "$OUT"

if ! $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device: this script times the GPU (run benchmarks/speed.py and pipeline.py for the CPU)" >&2
    exit 1
fi

{
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    $PY - <<'EOF'
import importlib, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())
for name in ('timm', 'torchvision', 'onnxruntime', 'openvino', 'av'):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception:
        print(name, 'not installed')
EOF
} > "$OUT/summary.txt" 2>&1

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s): $*" | tee -a "$OUT/summary.txt"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.log"
    local rc=$?
    local status="ok"
    [ $rc -eq 124 ] && status="ran out of time"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="failed (exit $rc; see $name.log)"
    echo "   $name: $status in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

step speed_classifiers 100 $PY benchmarks/speed.py --device cuda --models hrnet_w18_small hrnet_w32 \
    --batch-sizes 1 32 --modes eager channels_last autocast deploy deploy_lp --no-progress \
    --json "$OUT/speed_classifiers.json"
step speed_compile 120 $PY benchmarks/speed.py --device cuda --models hrnet_w32 --batch-sizes 32 \
    --modes compile --no-progress --json "$OUT/speed_compile.json"
step speed_pose 60 $PY benchmarks/speed.py --device cuda --task pose --batch-sizes 32 \
    --modes eager channels_last autocast --no-progress --json "$OUT/speed_pose.json"
step pipeline 180 $PY benchmarks/pipeline.py --device cuda --modes plain eager eager:bfloat16 inductor \
    --det-every 1 5 --json "$OUT/pipeline.json"

echo "tables in $OUT/ (summary.txt, <step>.txt, <step>.json, <step>.log)"
