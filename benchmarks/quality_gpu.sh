#!/usr/bin/env bash
# The full SciFact quality grid (docs/results.md) on one GPU machine: every teacher kind (dual
# encoder, ColBERT, cross-encoder; each warmed up on SciFact train), students from the teacher's
# lower layers and from random init with methods contrastive / + response KD / + LEAD, every
# ablation, 3 seeds, 10x the CPU budget's steps (benchmarks/quality_grid.py, budget "full"),
# then the tables and plots. Needs an NVIDIA GPU, the project installed (make setup, with a CUDA
# build of torch) and ../shared/data/scifact; nothing is downloaded. Resumable: rerun the same
# command and finished cells are skipped.
#   benchmarks/quality_gpu.sh                          # everything, into runs/quality-full
#   benchmarks/quality_gpu.sh --cells 'de/*' --seeds 1 # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="${RAY_TRAIN_HEALTH_CHECK_INTERVAL_S:-0.1}"
export RAY_USAGE_STATS_ENABLED="${RAY_USAGE_STATS_ENABLED:-0}" RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-runs/quality-full}"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: the full grid is for a GPU machine (use --budget small on CPU)')"
"$PYTHON" benchmarks/quality.py --budget full --out "$OUT" "$@"
"$PYTHON" benchmarks/quality.py --out "$OUT" --report --docs "${DOCS:-docs/full}"
