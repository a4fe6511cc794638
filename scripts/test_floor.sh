#!/usr/bin/env bash
# The oldest transformers the project declares (constraints/floor.txt, pyproject.toml's floor), tested in a
# virtual environment of its own (.venv-floor): the tests of the code that relies on transformers' internals
# (the fast decode loop and its per-layer KV caches, shared-prefix scoring, chat-template prompts, LoRA,
# the trainers). Pass pytest arguments to run others.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-floor EXTRAS=test CONSTRAINTS=constraints/floor.txt bash scripts/setup.sh
if [ $# -eq 0 ]; then
  set -- tests/test_generation_cache.py tests/test_generation_backends.py tests/test_prompt_dedup.py \
         tests/test_core_models.py tests/test_core_sft.py tests/test_core_swirl.py tests/test_micro_batches.py \
         -m "not slow"
fi
.venv-floor/bin/python -c "import transformers; print('transformers', transformers.__version__)"
exec .venv-floor/bin/python -m pytest -q "$@"
