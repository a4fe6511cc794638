"""Decoding speed: batches that drop finished rows (`generate_ids(shrink=True)`, the default) against
batches that run every row to the longest one's end (`shrink=False`), measured in the same run.

    .venv/bin/python benchmarks/decode_shrink.py                        # StableToolBench default sft pair
    .venv/bin/python benchmarks/decode_shrink.py --limit 39 --repeats 2

The embedded StableToolBench `sft` pair (SmolLM2-135M with its LoRA adapters merged) greedily predicts the
next state (FWM) and the action (IDM) of the first `--limit` test transitions in one batch, alternating
the two modes `--repeats` times. Greedy ids must be identical in both modes (`same_ids`). The last line is
`ratio_shrink_over_full=X`: seconds without shrinking over seconds with it (above 1: shrinking helps).
Record the machine's load beside the figures: the ratio is robust to a steady load, the seconds are not.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from swirl_core.decoding import generate_ids
from swirl_core.defaults import default_checkpoints
from swirl_core.models import WorldModelPair
from swirl_envs.registry import make_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default="stabletoolbench")
    parser.add_argument("--method", default="sft")
    parser.add_argument("--limit", type=int, default=24, help="test transitions (one batch)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    pair = WorldModelPair.load(default_checkpoints(args.bench)[args.method], merge=True)
    data = list(make_benchmark(args.bench, labelled=True).transitions("test", limit=args.limit))
    jobs = {"fwm": [pair.prompt_ids("fwm", t.state, t.action) for t in data],
            "idm": [pair.prompt_ids("idm", t.state, t.next_state) for t in data]}
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}, "
          f"{len(data)} transitions, max_new_tokens {pair.max_target_tokens}")
    seconds = {True: 0.0, False: 0.0}
    same = True
    for _ in range(args.repeats):
        for role, prompts in jobs.items():
            tok = pair.tokenizers[role]
            outputs = {}
            for shrink in (False, True):
                start = time.perf_counter()
                outputs[shrink] = generate_ids(pair.models[role], prompts, eos_id=tok.eos_token_id,
                                               pad_id=tok.pad_token_id, max_new_tokens=pair.max_target_tokens,
                                               shrink=shrink)
                took = time.perf_counter() - start
                seconds[shrink] += took
                lengths = sorted(len(ids) for ids in outputs[shrink])
                print(f"{role} shrink={shrink!s:5} {took:7.2f}s  new tokens median {lengths[len(lengths) // 2]} "
                      f"max {lengths[-1]}")
            same &= outputs[True] == outputs[False]
    print(f"same_ids={same} load_average_after={os.getloadavg()[0]:.2f}")
    print(f"ratio_shrink_over_full={seconds[False] / seconds[True]:.2f}")


if __name__ == "__main__":
    main()
