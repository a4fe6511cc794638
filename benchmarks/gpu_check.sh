#!/usr/bin/env bash
# The GPU check of issue 14, one command, under 5 minutes on one GPU:  bash benchmarks/gpu_check.sh
#
# With CUDA: one SWIRL iteration (Phase I + Phase II, one optimiser step each) in bf16 on a pair of models
# with SmolLM2-135M's shapes and random weights (the GGUF does not travel to a GPU machine; same shapes,
# same cost), once per generation backend; the same step in 2 processes when 2 GPUs are visible; the TRL
# comparison (benchmarks/grpo_vs_trl.py): the tiny preset on the CPU, and SmolLM2-135M's shapes with random
# weights on the GPU in bf16, full and LoRA. Every part prints its figures.
#
# The GPU comparison needs SmolLM2-135M's config.json and tokenizer (no weights) in $SWIRL_SMOLLM2_CONFIG:
# by default the smollm2-135m preset's converted folder in the swirl cache, when this machine has one. Copy
# that folder without model.safetensors to a machine that has not (it is ~3.5 MB) and point the variable at it.
# Without CUDA it says so and exits 0.
#
# The GPU machines have torch, transformers, accelerate and peft only: a part that needs a missing package
# (swirl_envs needs gymnasium; the TRL comparison needs trl and datasets) is skipped with a line naming it,
# unless wheels for it sit in $SWIRL_WHEELS (default: wheels/), which are installed offline first, without
# their dependencies (pip cannot resolve them offline; what they need beyond that machine's packages: dill and
# multiprocess for datasets, farama-notifications for gymnasium, so carry those wheels too).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the scripts below run from a temporary folder

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device (torch: $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null \
|| echo 'not installed')); nothing to check on this machine"
    exit 0
fi

missing() { $PY -c "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if not u.find_spec(m)])" "$@"; }
WHEELS=${SWIRL_WHEELS:-wheels}
if [ -n "$(missing gymnasium datasets trl gguf)" ] && [ -d "$WHEELS" ]; then
    $PY -m pip install -q --no-index --no-deps "$WHEELS"/*.whl 2>&1 | grep -v WARNING | tail -2
fi
echo "gpu_check: $($PY -c 'import torch; print(torch.cuda.get_device_name(0), "x", torch.cuda.device_count(),
"| torch", torch.__version__, "| CUDA", torch.version.cuda)')  $(date -u +%Y-%m-%dT%H:%MZ)"
echo "gpu_check: missing packages: $(missing gymnasium datasets trl gguf || true)"
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One SWIRL iteration through SwirlTrainer.train from a saved random-weight pair: `build DIR` saves the pair,
# `run DIR OUT [BACKEND]` trains and prints the figures (rank 0 of a launch only).
cat > "$work/swirl_step.py" <<'EOF'
import sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from swirl_core.models import WorldModelPair
from swirl_core.swirl import SwirlConfig, SwirlTrainer
from swirl_core.tiny import train_tokenizer
from swirl_envs import Transition

# SmolLM2-135M's shapes (its config.json): 134.5M parameters per model
SHAPE = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
             intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=2048)
ROOM = "a room with a table, two chairs and a lamp; the lamp is {} and the door is {}; a cat sleeps at {}"
data = [Transition(ROOM.format(a, b, c), ROOM.format(b, a, c), None, f"e{i}", 0)
        for i, (a, b, c) in enumerate((a, b, c) for a in ("on", "off") for b in ("open", "shut")
                                       for c in ("the window", "the door", "the bed", "the lamp"))]
mode, folder = sys.argv[1], sys.argv[2]
if mode == "build":
    tokenizer = train_tokenizer([s for t in data for s in (t.state, t.next_state)], vocab_size=512)
    torch.manual_seed(0)
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    fwm, idm = (LlamaForCausalLM(LlamaConfig(**SHAPE, **ids)).to(torch.bfloat16) for _ in range(2))
    WorldModelPair(fwm, idm, tokenizer=tokenizer, max_length=256, max_target_tokens=64).save(folder)
    print(f"pair: 2 x {sum(p.numel() for p in fwm.parameters()) / 1e6:.1f}M parameters, random weights, bf16")
    sys.exit()
options = dict(device="cuda", dtype="bfloat16", iterations=1, steps_per_phase=1, batch_size=8, fwm_group_size=8,
               idm_group_size=8, sample_batch_size=64, save_steps=0, progress=False)
if len(sys.argv) > 4:
    options["generation_backend"] = sys.argv[4]
trainer = SwirlTrainer(SwirlConfig(**options))
torch.cuda.synchronize()
start = time.perf_counter()
trainer.train(data, sys.argv[3], init=folder)
torch.cuda.synchronize()
seconds = time.perf_counter() - start
if int(__import__("os").environ.get("RANK", "0")) == 0:
    print(f"swirl: 1 iteration ({options.get('generation_backend', 'default')} generation, batch 8 x groups 8, "
          f"<= 64 new tokens, load included): {seconds:.2f} s, peak GPU memory "
          f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (this process)")
EOF

run_part() {  # name, seconds, command...: run with a time limit, count a failure
    local name=$1 limit=$2; shift 2
    echo "== $name"
    if ! timeout "$limit" "$@"; then echo "gpu_check: $name FAILED (or ran past ${limit}s)"; failed=$((failed + 1)); fi
}

if [ -n "$(missing gymnasium)" ]; then
    echo "gpu_check: skipping the SWIRL iteration and the 2-process step: swirl_envs needs gymnasium"
else
    run_part "build the SmolLM2-135M-shaped pair" 120 $PY "$work/swirl_step.py" build "$work/pair"
    backends=$($PY -c "import dataclasses as d; from swirl_core.swirl import SwirlConfig as C
print('fast hf' if 'generation_backend' in {f.name for f in d.fields(C)} else '')")
    for backend in ${backends:-default}; do
        run_part "SWIRL iteration, 1 GPU, $backend generation" 150 $PY "$work/swirl_step.py" run "$work/pair" \
            "$work/run-$backend" ${backends:+$backend}
    done
    if [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
        run_part "SWIRL iteration, 2 processes (DDP, nccl)" 180 $PY -m accelerate.commands.launch --multi_gpu \
            --num_processes 2 "$work/swirl_step.py" run "$work/pair" "$work/run-ddp"
    else
        echo "gpu_check: one GPU visible: no 2-process step"
    fi
fi

if [ -n "$(missing gymnasium trl datasets)" ]; then
    echo "gpu_check: skipping the TRL comparison: it needs $(missing gymnasium trl datasets)"
else
    run_part "TRL comparison on the CPU (benchmarks/grpo_vs_trl.py --preset tiny)" 180 \
        $PY benchmarks/grpo_vs_trl.py --preset tiny
    config=${SWIRL_SMOLLM2_CONFIG:-$(ls -d "${SWIRL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swirl}"/models/smollm2-135m-* \
        2>/dev/null | head -1)}
    if [ -z "$config" ] || [ ! -f "$config/config.json" ]; then
        echo "gpu_check: skipping the GPU TRL comparison: no SmolLM2-135M config folder (set SWIRL_SMOLLM2_CONFIG)"
    else
        for lora in "" --lora; do
            run_part "TRL comparison on the GPU, SmolLM2-135M shapes, random weights, bf16 ${lora:-full}" 240 \
                $PY benchmarks/grpo_vs_trl.py --preset smollm2 --random-init "$config" --device cuda --dtype bfloat16 \
                --batch 8 --group 8 --length 64 --iters 2 $lora
        done
    fi
fi
echo "gpu_check: done, $failed part(s) failed"
[ "$failed" -eq 0 ]
