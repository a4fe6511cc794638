"""Multi-process SWIRL on CPU (gloo): two processes equal one process on the same global batch.

Sampling draws from each process's own RNG, so a whole two-process run cannot reproduce a one-process
run draw for draw. The exact comparison therefore fixes the sampled groups and rewards (computed once
for the global batch, as the one-process trainer would) and runs the trainer's own GRPO update on them:
each of two processes gets its half of the groups, rewards are gathered for batch scaling, the loss is
normalised by global token counts, DDP averages the gradients, AdamW steps. The end-to-end test runs
`SwirlTrainer.train` unchanged under `accelerate launch` (two CPU processes, gloo) and checks that the
replicas stay identical and the run finishes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from swirl_core import SwirlConfig, SwirlTrainer, apply_overrides, distributed
from swirl_core.models import build_tiny_pair
from swirl_envs import Transition

SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128", "learning_rate=1e-3", "beta=0.05", "sample_batch_size=16"]
GROUPS, GROUP = 4, 3  # global batch: 4 (x, y) pairs, a group of 3 completions each
# Float32 sums in a different order (two half-batch gradients all-reduced instead of one full-batch
# gradient) differ by a few ulps; two AdamW steps at lr 1e-3 turn that into weight differences far below this.
ATOL = 1e-5
# AdamW divides the gradient by its own running scale, so a wrongly weighted gradient can still land close;
# the gradients themselves are compared too: float32 reordering gives ~1e-6 of the largest entry.
GRAD_RTOL = 1e-4


def ball_world(n: int) -> list[Transition]:
    out = []
    for i in range(n):
        p, left = (i * 7) % 10, (i * 3) % 4 < 2
        q = max(p - 1, 0) if left else min(p + 1, 9)
        out.append(Transition(f"ball at {p}", f"ball at {q}, rolled {'left' if left else 'right'}", None, f"e{i}", 0))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(world: int, fn, *args) -> None:
    """fn(*args) in `world` spawned processes joined into one gloo group (bounded by the join timeout)."""
    port = _free_port()
    ctx = mp.start_processes(_worker, args=(world, port, fn, args), nprocs=world, join=False, start_method="spawn")
    for _ in range(240):  # at most 240 s
        if ctx.join(timeout=1):
            return
    for process in ctx.processes:
        process.kill()
    raise TimeoutError("distributed workers did not finish in 240 s")


def _worker(rank: int, world: int, port: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def _fixed_update(out: str, overrides: list[str]) -> None:
    """Two GRPO updates of the IDM on fixed sampled groups; this process's shard of the global batch."""
    config = apply_overrides(SwirlConfig(), [*SMALL, *overrides])
    data = ball_world(GROUPS)
    xs, ys = [t.state for t in data], [t.next_state for t in data]
    pair = build_tiny_pair(xs + ys, seed=0, max_length=48, max_target_tokens=16, vocab_size=320, hidden_size=64,
                           intermediate_size=128)
    gen = pair.sample("idm", xs, ys, num_samples=GROUP, temperature=1.0, max_new_tokens=8,
                      generator=torch.Generator().manual_seed(1))
    rewards = pair.score_next_states([x for x in xs for _ in range(GROUP)], gen.texts,
                                     [y for y in ys for _ in range(GROUP)])
    # Unequal lengths (an untrained model rarely stops early), so that the processes hold different token counts.
    completions = [ids[: 1 + (i * 5) % 8] for i, ids in enumerate(gen.completion_ids)]
    rows = distributed.shard(range(GROUPS))  # whole groups for this process
    keep = [g * GROUP + k for g in rows for k in range(GROUP)]
    trainer = SwirlTrainer(config)
    trainer.make_optimizers(pair, ("fwm", "idm"), 2)
    trainer.prepare_models(pair)
    trainer._start_iteration(pair)  # KL reference
    grads: list[dict[str, torch.Tensor]] = []
    step = trainer.step_optimizer

    def record_then_step(key, model, **options):  # the gradient DDP averaged, before AdamW (which hides its scale)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        return step(key, model, **options)

    trainer.step_optimizer = record_then_step
    for _ in range(2):
        trainer._update(pair, "idm", [gen.prompt_ids[i] for i in keep], [completions[i] for i in keep],
                        rewards[keep], GROUP)
    if distributed.is_main_process():
        torch.save({"weights": {k: v.clone() for k, v in pair.idm.state_dict().items()}, "grads": grads}, out)


@pytest.mark.parametrize("overrides", [["advantage_scale=batch", "loss_type=dapo"],
                                       ["advantage_scale=group", "loss_type=bnpo"],
                                       ["advantage_scale=none", "loss_type=dr_grpo"],
                                       ["advantage_scale=batch", "loss_type=grpo"]])
def test_two_processes_match_one_on_the_same_global_batch(tmp_path, overrides):
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    _fixed_update(one, overrides)  # plain single process, no process group
    _run(2, _fixed_update, two, overrides)
    one_run, two_runs = torch.load(one), torch.load(two)
    for g1, g2 in zip(one_run["grads"], two_runs["grads"], strict=True):  # per step, relative to the largest
        scale = max(v.abs().max().item() for v in g1.values())
        worst = max((g1[k] - g2[k]).abs().max().item() for k in g1)
        assert worst < GRAD_RTOL * scale, f"gradients differ by {worst / scale:.2e} of their largest entry"
    a, b = one_run["weights"], two_runs["weights"]
    start = build_tiny_pair([t for r in ball_world(GROUPS) for t in (r.state, r.next_state)], seed=0, max_length=48,
                            max_target_tokens=16, vocab_size=320, hidden_size=64, intermediate_size=128).idm
    moved = max((a[k] - v).abs().max().item() for k, v in start.state_dict().items())
    assert moved > 1e-4  # the update did something
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < ATOL, f"one vs two processes differ by {worst:.2e}"


TRAIN_SCRIPT = """
import sys
from pathlib import Path
import torch
from swirl_core import SwirlConfig, SwirlTrainer, WorldModelPair, apply_overrides, distributed
from test_distributed import SMALL, ball_world

torch.set_num_threads(1)
config = apply_overrides(SwirlConfig(), [*SMALL, "iterations=1", "steps_per_phase=2", "batch_size=2",
                                         "fwm_group_size=3", "idm_group_size=4", "advantage_scale=batch"])
out = Path(sys.argv[1])
final = SwirlTrainer(config).train(ball_world(8), out)  # joins the group that accelerate launch set up
pair = WorldModelPair.load(final)
weights = {f"{r}.{k}": v for r, m in pair.unique_models().items() for k, v in m.state_dict().items()}
torch.save(weights, out / f"weights-{distributed.rank()}-of-{distributed.world_size()}.pt")
"""


def test_trainer_runs_under_accelerate_launch_and_replicas_stay_identical(tmp_path):
    # --multi_gpu selects accelerate's torchrun launcher; on a machine without GPUs the processes use gloo.
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), str(script), str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (torch.load(tmp_path / "run" / f"weights-{r}-of-2.pt") for r in (0, 1))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # DDP kept the replicas identical
    assert (tmp_path / "run" / "rank-1" / "metrics.jsonl").is_file()  # rank 1 logs its own metrics
