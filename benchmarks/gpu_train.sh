#!/usr/bin/env bash
# A few Ray Train steps of the 12-layer ColBERT -> 6-layer DE recipe (configs/msmarco-passage-12cb-6de.yaml)
# with random-init models of the real sizes, bf16, DeepSpeed ZeRO-2, one worker per visible GPU;
# prints samples/s and peak GPU memory. Needs an NVIDIA GPU and the project installed
# (make setup, with a CUDA build of torch); nothing is downloaded.
#   benchmarks/gpu_train.sh                    # all visible GPUs, 20 steps
#   benchmarks/gpu_train.sh --steps 50 --stage 3
#   benchmarks/gpu_train.sh --cpu --tiny       # the same path on CPU with tiny models (a check)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="${RAY_TRAIN_HEALTH_CHECK_INTERVAL_S:-0.1}"
export RAY_USAGE_STATS_ENABLED="${RAY_USAGE_STATS_ENABLED:-0}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PYTHON" benchmarks/gpu_train.py "$@"
