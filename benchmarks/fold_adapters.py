"""Sampling speed of LoRA models: adapters folded into temporary weights (`lora.folded_adapters`, what
`WorldModelPair.sample` does when `fold_adapters` is on, the default) against peft's unmerged layers,
measured in the same run.

    .venv/bin/python benchmarks/fold_adapters.py                         # StableToolBench default sft pair
    .venv/bin/python benchmarks/fold_adapters.py --limit 8 --samples 8 --max-new-tokens 64 --repeats 2

The embedded `sft` pair of `--bench` (SmolLM2-135M with its LoRA adapters live, as SWIRL trains them) samples
`--samples` next states (FWM) and actions (IDM) at temperature 1 for each of the first `--limit` test
transitions, the way a SWIRL phase rolls out, alternating the two modes `--repeats` times from the same
generator seed. A greedy pass checks that both modes predict the same ids (`same_greedy_ids`: folding only
reorders float additions, so a rare near-tie may flip). The last line is
`ratio_unfolded_over_folded=X`: seconds of the sampled passes without folding over seconds with it (above 1:
folding helps). Record the machine's load beside the figures: the ratio is robust to a steady load, the
seconds are not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch

from swirl_core.decoding import generate_ids
from swirl_core.defaults import default_checkpoints
from swirl_core.lora import folded_adapters, is_adapter
from swirl_core.models import WorldModelPair
from swirl_envs.registry import make_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default="stabletoolbench")
    parser.add_argument("--method", default="sft")
    parser.add_argument("--limit", type=int, default=4, help="test transitions (prompts)")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt (a GRPO group)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    pair = WorldModelPair.load(default_checkpoints(args.bench)[args.method])
    if not any(is_adapter(m) for m in pair.models.values()):
        parser.exit(2, f"{args.bench} {args.method}: the pair has no LoRA adapters to fold\n")
    data = list(make_benchmark(args.bench, labelled=True).transitions("test", limit=args.limit))
    jobs = {"fwm": [pair.prompt_ids("fwm", t.state, t.action) for t in data],
            "idm": [pair.prompt_ids("idm", t.state, t.next_state) for t in data]}
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}, {len(data)} prompts "
          f"x {args.samples} samples, max_new_tokens {args.max_new_tokens}")

    def run(role: str, folded: bool, temperature: float) -> tuple[float, list[list[int]]]:
        model, tok = pair.models[role], pair.tokenizers[role]
        model.eval()
        with folded_adapters(model) if folded else contextlib.nullcontext(model) as sampler:
            start = time.perf_counter()
            ids = generate_ids(sampler, jobs[role], eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                               max_new_tokens=args.max_new_tokens, temperature=temperature,
                               repeats=args.samples if temperature > 0 else 1,
                               generator=torch.Generator().manual_seed(0))
            return time.perf_counter() - start, ids

    same = all(run(role, False, 0.0)[1] == run(role, True, 0.0)[1] for role in jobs)
    seconds = {False: 0.0, True: 0.0}
    for _ in range(args.repeats):
        for role in jobs:
            for folded in (False, True):
                took, ids = run(role, folded, 1.0)
                seconds[folded] += took
                print(f"{role} folded={folded!s:5} {took:7.2f}s  {sum(map(len, ids))} new tokens")
    print(f"same_greedy_ids={same} load_average_after={os.getloadavg()[0]:.2f}")
    print(f"ratio_unfolded_over_folded={seconds[False] / seconds[True]:.2f}")


if __name__ == "__main__":
    main()
