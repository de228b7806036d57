#!/usr/bin/env bash
# GPU check of the local provider (CUDA, bf16): run from the repository root on the GPU machine.
#   benchmarks/gpu_check.sh MODEL_DIR_OR_GGUF [--tokens 256]
# Make MODEL_DIR here first: .venv/bin/python benchmarks/gpu_check.py --export MODEL_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi not found"
exec timeout 175 "$PY" benchmarks/gpu_check.py "$@"
