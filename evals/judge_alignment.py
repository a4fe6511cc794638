"""Do SWIRL's judges reward what the metrics count? Measured on labelled transitions, without training.

    python -m evals.judge_alignment PAIR --env textweb --limit 32
    python -m evals.judge_alignment PAIR --env textweb --judge ORACLE_PAIR     # another pair judges

SWIRL's Phase I rewards an FWM sample y' by log Q(z | x, y') under the frozen IDM, and Phase II rewards an IDM
sample z' by log P(y | x, z') under the frozen FWM. GRPO only sees how rewards differ within a group, so a
judge helps where, within a group, the better samples get the higher rewards. For each test transition this
draws a group as the trainer does (its default temperatures; Phase I's z sampled from the IDM, or the true
action with --oracle-z), scores it with the judge and reports:

- `phase1/corr_bleu`, `phase1/corr_delta_f1`, `phase1/corr_delta_bleu`: the within-group Pearson correlation
  of the reward with the sample's sentence BLEU against y, its changed-line F1 (`fwm/delta_line_f1`) and the
  sentence BLEU of its changed lines alone (where a next state mostly copies x), averaged over groups;
- `phase1/corr_delta_chars`, `phase1/truth_delta_chars`, `phase1/sample_delta_chars`,
  `phase1/picked_delta_chars`: whether the judge favours longer or shorter changes (the correlation of the
  reward with the characters of the changed lines) and the mean length of the truth's, the samples' and each
  group's top-rewarded sample's changed lines;
- `phase1/truth_wins`: the share of samples whose reward the true y beats (0.5: the judge cannot tell the
  truth from the model's own guesses);
- `phase1/greedy_bleu`, `phase1/sample_bleu`, `phase1/picked_bleu`: the mean sentence BLEU of the FWM's
  greedy next state (given the same z), of its samples, and of each group's top-rewarded sample. GRPO can
  only move the policy toward its better samples: where even the picked ones score below greedy decoding,
  reinforcing them lowers what greedy decoding (the evaluation) reads. `--fwm-temperature` measures this
  at another sampling temperature than the trainer's default. `phase1/greedy_delta_bleu`, `sample_delta_bleu`
  and `picked_delta_bleu` are the same for the changed lines alone;
- `phase1/greedy_top`, `phase1/picked_with_greedy_bleu`: with the greedy decode added to each group (as
  `SwirlConfig.fwm_greedy_in_group` does), the share of groups whose judge prefers it to every sample, and
  the BLEU of the judge's pick;
- `phase2/corr_valid`: the same correlation with action validity (the simulator executes z' from x and
  gets y) where the environment is a simulator, else with exact match; `phase2/truth_wins` for the true z.

Groups in which the reward or the quality does not vary have no correlation; they are counted
(`*/groups_flat`), not averaged. Text environments only.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from evals import metrics
from swirl_envs.errors import SwirlError
from swirl_envs.fileio import dumps_json, write_atomic
from swirl_envs.registry import make_benchmark


def within_group_correlation(rewards: list[float], quality: list[float]) -> float | None:
    """Pearson correlation of one group's rewards and qualities; None when either is constant."""
    if np.std(rewards) < 1e-9 or np.std(quality) < 1e-9:
        return None
    return float(np.corrcoef(rewards, quality)[0, 1])


def truth_wins(truth_reward: float, rewards: list[float]) -> float:
    """Share of the group's samples the truth out-rewards (ties count half)."""
    return mean(1.0 if truth_reward > r else 0.5 if truth_reward == r else 0.0 for r in rewards)


def summarise(groups: list[dict[str, Any]], quality_keys: tuple[str, ...], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{prefix}/groups": len(groups),
                           f"{prefix}/truth_wins": round(mean(g["truth_wins"] for g in groups), 4)}
    for key in quality_keys:
        found = [c for g in groups if (c := within_group_correlation(g["rewards"], g[key])) is not None]
        out[f"{prefix}/corr_{key}"] = round(mean(found), 4) if found else None
        out[f"{prefix}/groups_flat_{key}"] = len(groups) - len(found)
    out[f"{prefix}/reward_spread"] = round(mean(max(g["rewards"]) - min(g["rewards"]) for g in groups), 4)
    return out


def measure(pair: Any, judge: Any, transitions: list, execute: Any, *, group: int, oracle_z: bool,
            batch_size: int, seed: int, fwm_temperature: float | None = None) -> dict[str, Any]:
    """Phase I and Phase II groups of `pair` on `transitions`, judged by `judge` (both WorldModelPairs)."""
    import torch

    from swirl_core.swirl import SwirlConfig

    c = SwirlConfig()  # the trainer's sampling defaults
    if fwm_temperature is not None:
        c.fwm_temperature = fwm_temperature
    generator = torch.Generator().manual_seed(seed)
    xs, ys, zs = [t.state for t in transitions], [t.next_state for t in transitions], [t.action for t in transitions]
    repeat = lambda items: [item for item in items for _ in range(group)]  # noqa: E731
    with torch.inference_mode():
        used_z = zs if oracle_z else pair.sample("idm", xs, ys, temperature=c.idm_temperature, top_p=c.idm_top_p,
                                                 batch_size=batch_size, generator=generator).texts
        y_samples = pair.sample("fwm", xs, used_z, num_samples=group, temperature=c.fwm_temperature,
                                top_p=c.fwm_top_p, batch_size=batch_size, generator=generator).texts
        greedy = pair.predict_next_states(xs, used_z, batch_size=batch_size)
        phase1 = judge.score_actions(repeat(xs), y_samples, repeat(used_z), batch_size=batch_size).tolist()
        phase1_truth = judge.score_actions(xs, ys, used_z, batch_size=batch_size).tolist()
        greedy_reward = judge.score_actions(xs, greedy, used_z, batch_size=batch_size).tolist()
        z_samples = pair.sample("idm", xs, ys, num_samples=group, temperature=c.idm_temperature, top_p=c.idm_top_p,
                                batch_size=batch_size, generator=generator).texts
        phase2 = judge.score_next_states(repeat(xs), z_samples, repeat(ys), batch_size=batch_size).tolist()
        phase2_truth = judge.score_next_states(xs, zs, ys, batch_size=batch_size).tolist()
    first, second, greedy_bleu, greedy_delta_bleu, truth_chars = [], [], [], [], []
    for i, t in enumerate(transitions):
        greedy_bleu.append(metrics.fwm_sample_scores(greedy[i], t.next_state, t.state)["fwm/bleu"])
        window = slice(i * group, (i + 1) * group)
        scored = [metrics.fwm_sample_scores(y, t.next_state, t.state) for y in y_samples[window]]
        changes = [metrics.new_lines(y, t.state) for y in y_samples[window]]
        true_change = metrics.new_lines(t.next_state, t.state)
        truth_chars.append(len(true_change))
        greedy_delta_bleu.append(metrics.sentence_bleu(metrics.new_lines(greedy[i], t.state), true_change))
        first.append({"rewards": phase1[window], "truth_wins": truth_wins(phase1_truth[i], phase1[window]),
                      "bleu": [s["fwm/bleu"] for s in scored], "delta_f1": [s["fwm/delta_line_f1"] for s in scored],
                      "delta_bleu": [metrics.sentence_bleu(c, true_change) for c in changes],
                      "delta_chars": [float(len(c)) for c in changes]})
        right = [float(execute(t, z) == t.next_state) if execute else metrics.exact_match(z, t.action)
                 for z in z_samples[window]]
        second.append({"rewards": phase2[window], "truth_wins": truth_wins(phase2_truth[i], phase2[window]),
                       "valid": right})
    picks = [max(range(group), key=g["rewards"].__getitem__) for g in first]

    def at_picks(key: str) -> list[float]:  # each group's top-rewarded sample's figure
        return [g[key][k] for g, k in zip(first, picks, strict=True)]

    picked = at_picks("bleu")
    # with the greedy decode in the group (SwirlConfig.fwm_greedy_in_group), the judge's pick is greedy's
    # unless a sample out-rewards it
    greedy_top = [greedy_reward[i] >= max(g["rewards"]) - 1e-4 for i, g in enumerate(first)]  # a tie: greedy's
    picked_with_greedy = [greedy_bleu[i] if top else picked[i] for i, top in enumerate(greedy_top)]
    return {**summarise(first, ("bleu", "delta_f1", "delta_bleu", "delta_chars"), "phase1"),
            **summarise(second, ("valid",), "phase2"),
            "phase1/fwm_temperature": c.fwm_temperature, "phase1/greedy_bleu": round(mean(greedy_bleu), 3),
            "phase1/sample_bleu": round(mean(b for g in first for b in g["bleu"]), 3),
            "phase1/picked_bleu": round(mean(picked), 3),
            "phase1/greedy_delta_bleu": round(mean(greedy_delta_bleu), 3),
            "phase1/sample_delta_bleu": round(mean(b for g in first for b in g["delta_bleu"]), 3),
            "phase1/picked_delta_bleu": round(mean(at_picks("delta_bleu")), 3),
            "phase1/truth_delta_chars": round(mean(truth_chars), 1),
            "phase1/sample_delta_chars": round(mean(n for g in first for n in g["delta_chars"]), 1),
            "phase1/picked_delta_chars": round(mean(at_picks("delta_chars")), 1),
            "phase1/greedy_top": round(mean(greedy_top), 4),
            "phase1/picked_with_greedy_bleu": round(mean(picked_with_greedy), 3),
            "phase1/z_exact": round(mean(metrics.exact_match(a, b) for a, b in zip(used_z, zs, strict=True)), 4),
            "phase2/valid_share": round(mean(v for g in second for v in g["valid"]), 4)}


def main(argv: list[str] | None = None) -> int:
    from evals.experiments import ENVS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pair", type=Path, help="the pair whose samples are judged (a training run or pair folder)")
    p.add_argument("--env", required=True, choices=sorted(e for e, s in ENVS.items() if s.headline == "fwm/bleu"),
                   help="environment, with the study's options (evals.experiments)")
    p.add_argument("--judge", type=Path, default=None, help="pair whose models judge (default: PAIR's own)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=32, help="transitions (one group per phase each)")
    p.add_argument("--group", type=int, default=8, help="samples per group")
    p.add_argument("--oracle-z", action="store_true", help="Phase I samples given the true action, not the IDM's")
    p.add_argument("--fwm-temperature", type=float, default=None,
                   help="Phase I sampling temperature (default: the trainer's, SwirlConfig.fwm_temperature)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--output", type=Path, default=None, help="also write the figures here as JSON")
    args = p.parse_args(argv)
    if args.limit < 1 or args.group < 2:
        p.error("--limit must be at least 1 and --group at least 2 (a correlation needs two samples)")
    if args.fwm_temperature is not None and args.fwm_temperature <= 0:
        p.error("--fwm-temperature must be positive (0 is greedy decoding, which draws no group)")
    from evals.checkpoints import resolve_checkpoint

    folders = {"pair": resolve_checkpoint(args.pair), "judge": resolve_checkpoint(args.judge or args.pair)}
    for name, folder in folders.items():
        if not (folder / "pair.json").is_file():
            print(f"error: {getattr(args, name)}: no pair.json there or in final/ or a checkpoint-*", file=sys.stderr)
            return 2
    import torch

    from swirl_core.models import WorldModelPair

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    bench = make_benchmark(args.env, labelled=True, **ENVS[args.env].bench_options)
    try:
        transitions = list(bench.transitions(args.split, limit=args.limit))
    except SwirlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pair = WorldModelPair.load(folders["pair"], merge=True)
    judge = pair if args.judge is None else WorldModelPair.load(folders["judge"], merge=True)
    found = measure(pair, judge, transitions, getattr(bench, "execute", None), group=args.group,
                    oracle_z=args.oracle_z, batch_size=args.batch_size, seed=args.seed,
                    fwm_temperature=args.fwm_temperature)
    result = {"pair": str(folders["pair"]), "judge": str(folders["judge"]), "env": args.env, "split": args.split,
              "transitions": len(transitions), "group": args.group, "oracle_z": args.oracle_z, "seed": args.seed,
              **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in found.items()}}
    if args.output:
        write_atomic(args.output, dumps_json(result))
    print(dumps_json(result), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
