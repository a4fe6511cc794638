"""The three SWIRL controls: random reward (shuffled within groups), oracle z (true actions in Phase I) and
strong judge (another pair's IDM scores Phase I); and the length-neutral reward variant. The controls' resume
tests are in test_core_swirl.py."""

from __future__ import annotations

import json

import pytest
import torch
from support import ball_world

from swirl_core import SFTConfig, SFTTrainer, SwirlConfig, SwirlTrainer, WorldModelPair, apply_overrides
from swirl_core import swirl as swirl_module
from swirl_core.grpo import length_slope, shuffle_within_groups
from swirl_envs.errors import SwirlError

torch.set_num_threads(1)

SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128"]
RL = [*SMALL, "iterations=2", "steps_per_phase=2", "batch_size=2", "fwm_group_size=3", "idm_group_size=4",
      "learning_rate=1e-3", "beta=0.05", "sample_batch_size=8"]


def sft(folder, *extra):
    config = apply_overrides(SFTConfig(), [*SMALL, "learning_rate=3e-3", "epochs=8", "batch_size=8", *extra])
    return SFTTrainer(config).train(ball_world(48), folder)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    return sft(tmp_path_factory.mktemp("warm") / "sft")


@pytest.fixture(scope="module")
def judge(tmp_path_factory):  # another pair: other seed, longer training
    return sft(tmp_path_factory.mktemp("judge") / "sft", "seed=1", "epochs=16")


def test_shuffle_within_groups_is_a_seeded_permutation_of_each_group():
    rewards = torch.arange(24.0)
    a, b, c = (shuffle_within_groups(rewards, 6, torch.Generator().manual_seed(s)) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, rewards)
    assert [sorted(g) for g in a.view(4, 6).tolist()] == rewards.view(4, 6).tolist()


def record_rewards(monkeypatch) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(role, rewards as scored, rewards the advantages were computed from) for every update."""
    seen, scored = [], []
    update, advantages = SwirlTrainer._update, swirl_module.group_advantages

    def spy_update(self, pair, role, prompts, completions, raw_rewards, group):
        scored.append((role, raw_rewards.float().clamp(min=self.config.reward_min)))
        return update(self, pair, role, prompts, completions, raw_rewards, group)

    def spy_advantages(rewards, group, scale):
        seen.append((*scored[-1], rewards.clone()))
        return advantages(rewards, group, scale)

    monkeypatch.setattr(SwirlTrainer, "_update", spy_update)
    monkeypatch.setattr(swirl_module, "group_advantages", spy_advantages)
    return seen


def test_random_reward_permutes_each_group_in_both_phases_and_is_seeded(tmp_path, warm, monkeypatch):
    seen = record_rewards(monkeypatch)
    config = apply_overrides(SwirlConfig(), [*RL, "reward_shuffle=true"])
    for run in ("a", "b"):
        SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / run, init=warm)
    first, second = seen[:8], seen[8:]
    assert {role for role, _, _ in first} == {"fwm", "idm"}
    group = {"fwm": config.fwm_group_size, "idm": config.idm_group_size}
    for role, scored, used in first:
        assert (scored.view(-1, group[role]).sort(1).values == used.view(-1, group[role]).sort(1).values).all()
    assert any(not torch.equal(scored, used) for _, scored, used in first)  # the order did change
    assert all(torch.equal(x[2], y[2]) for x, y in zip(first, second, strict=True))  # same seed, same draws
    seen.clear()
    SwirlTrainer(apply_overrides(SwirlConfig(), RL)).train(ball_world(12, labelled=False), tmp_path / "off",
                                                           init=warm)
    assert all(torch.equal(scored, used) for _, scored, used in seen)  # off: rewards reach the advantages as scored


def test_oracle_z_gives_phase1_the_true_actions(tmp_path, warm, monkeypatch):
    truth = {(t.state, t.next_state): t.action for t in ball_world(12)}
    calls: list[tuple[str, list, list, list]] = []
    sample, score, phase1 = WorldModelPair.sample, WorldModelPair.score_next_states, SwirlTrainer._phase1
    training = []  # the held-out progress measurement samples too: only Phase I's calls are recorded

    def spy_sample(self, role, states, contexts, **kwargs):
        if training:
            calls.append(("sample-" + role, list(states), list(contexts), []))
        return sample(self, role, states, contexts, **kwargs)

    def spy_score(self, states, actions, next_states, **kwargs):  # Phase I's log P(y | x, z) of the real y
        if training:
            calls.append(("truth", list(states), list(actions), list(next_states)))
        return score(self, states, actions, next_states, **kwargs)

    def spy_phase1(self, pair, batch):
        training.append(True)
        try:
            return phase1(self, pair, batch)
        finally:
            training.clear()

    monkeypatch.setattr(WorldModelPair, "sample", spy_sample)
    monkeypatch.setattr(WorldModelPair, "score_next_states", spy_score)
    monkeypatch.setattr(SwirlTrainer, "_phase1", spy_phase1)
    config = apply_overrides(SwirlConfig(), [*RL, "mode=idm2fwm", "latent_action=oracle", "progress_pairs=2"])
    SwirlTrainer(config).train(ball_world(12), tmp_path / "r", init=warm)
    assert [c[0] for c in calls] == ["sample-fwm", "truth"] * 4  # the IDM never proposed a z
    for (_, _, sampled_with, _), (_, xs, zs, ys) in zip(calls[0::2], calls[1::2], strict=True):
        assert sampled_with == zs == [truth[x, y] for x, y in zip(xs, ys, strict=True)]


def test_oracle_z_refuses_state_only_data(tmp_path, warm):
    config = apply_overrides(SwirlConfig(), [*RL, "latent_action=oracle"])
    with pytest.raises(SwirlError, match=r"latent_action=oracle needs the true actions, but 12 of 12 "):
        SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / "none", init=warm)
    mixed = ball_world(6) + ball_world(6, labelled=False)
    with pytest.raises(SwirlError, match=r"but 6 of 12 transitions have none"):
        SwirlTrainer(config).train(mixed, tmp_path / "mixed", init=warm)
    with pytest.raises(SwirlError, match="'sample', 'annotate' or 'oracle'"):
        apply_overrides(SwirlConfig(), ["latent_action=truth"])


def test_strong_judge_scores_phase1_with_its_own_idm(tmp_path, warm, judge, monkeypatch):
    seen = record_rewards(monkeypatch)
    judged: list[tuple[int, tuple, torch.Tensor]] = []
    score = WorldModelPair.score_actions

    def spy(self, *args, **kwargs):
        result = score(self, *args, **kwargs)
        judged.append((id(self), args, result))
        return result

    monkeypatch.setattr(WorldModelPair, "score_actions", spy)
    config = apply_overrides(SwirlConfig(), [*RL, "iterations=1", f"judge_idm={judge}"])
    trainer = SwirlTrainer(config)
    trainer.train(ball_world(12, labelled=False), tmp_path / "r", init=warm)
    assert len(judged) == 2 and all(who == id(trainer.strong_judge) for who, _, _ in judged)
    phase1 = [scored for role, scored, _ in seen if role == "fwm"]
    strong, own = WorldModelPair.load(judge), WorldModelPair.load(warm)
    for (_, args, rewards), used in zip(judged, phase1, strict=True):
        assert torch.equal(rewards.clamp(min=config.reward_min), used)  # the judge's scores are the rewards
        assert torch.allclose(score(strong, *args), rewards, atol=1e-5)  # the judge pair's own scores
        assert not torch.allclose(score(own, *args), rewards, atol=1e-3)  # not the trained IDM's
    assert trainer.config_fingerprint()["judge_idm"] == str(judge)
    assert "judge_idm" not in SwirlTrainer(apply_overrides(SwirlConfig(), RL)).config_fingerprint()


def test_best_of_group_advantages_reinforce_each_groups_top_sample(tmp_path, warm, monkeypatch):
    seen, advantages = [], swirl_module.group_advantages

    def spy(rewards, group, scale):
        seen.append((rewards.view(-1, group), advantages(rewards, group, scale).view(-1, group)))
        return advantages(rewards, group, scale)

    monkeypatch.setattr(swirl_module, "group_advantages", spy)
    config = apply_overrides(SwirlConfig(), [*RL, "advantage_scale=best"])
    final = SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / "best", init=warm)
    assert len(seen) == 8
    for rewards, adv in seen:
        assert set(adv.unique().tolist()) <= {0.0, 1.0} and (adv.sum(1) <= 1).all()
        top = adv.sum(1) == 1  # a group with signal reinforces one of its best samples
        assert torch.equal(rewards[adv == 1], rewards.amax(1)[top])
        assert torch.equal(top, rewards.amax(1) > rewards.amin(1))  # and only a flat group gets none
    assert any(adv.sum() > 0 for _, adv in seen)
    before, after = WorldModelPair.load(warm).fwm.state_dict(), WorldModelPair.load(final).fwm.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_greedy_in_group_puts_the_greedy_decode_first_in_every_phase1_group(tmp_path, warm, monkeypatch):
    draws, updates = [], []
    sample, update = WorldModelPair.sample, SwirlTrainer._update

    def spy_sample(self, role, states, contexts, **kw):
        out = sample(self, role, states, contexts, **kw)
        draws.append((role, kw.get("num_samples", 1), kw.get("temperature", 0.0), out))
        return out

    def spy_update(self, pair, role, prompts, completions, raw_rewards, group):
        updates.append((role, completions, group))
        return update(self, pair, role, prompts, completions, raw_rewards, group)

    monkeypatch.setattr(WorldModelPair, "sample", spy_sample)
    monkeypatch.setattr(SwirlTrainer, "_update", spy_update)
    config = apply_overrides(SwirlConfig(), [*RL, "fwm_greedy_in_group=true", "mode=idm2fwm"])
    final = SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / "greedy", init=warm)
    fwm_draws = [d for d in draws if d[0] == "fwm"]
    assert len(updates) == 4 and len(fwm_draws) == 8  # per step: the sampled group members, then the greedy row
    steps = zip(updates, fwm_draws[::2], fwm_draws[1::2], strict=True)
    for (role, completions, group), sampled, greedy in steps:
        assert role == "fwm" and group == 3 and sampled[1:3] == (2, 0.75) and greedy[1:3] == (1, 0.0)
        rest, first = sampled[3].completion_ids, greedy[3].completion_ids
        assert completions == [row for i in range(len(first)) for row in (first[i], *rest[2 * i:2 * i + 2])]
    logged = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    shares = [r["greedy_top"] for r in logged if r.get("phase") == "phase1-fwm"]
    assert len(shares) == 4 and all(share in (0.0, 0.5, 1.0) for share in shares)  # of 2 groups a step


def test_greedy_in_group_needs_a_sample_beside_the_greedy_decode():
    with pytest.raises(SwirlError, match="fwm_group_size >= 2"):
        SwirlConfig(fwm_greedy_in_group=True, fwm_group_size=1)


def test_length_neutral_rewards_reach_the_advantages_without_their_length_trend(tmp_path, warm, monkeypatch):
    seen = []
    update, advantages = SwirlTrainer._update, swirl_module.group_advantages

    def spy_update(self, pair, role, prompts, completions, raw_rewards, group):
        seen.append([raw_rewards.float().clamp(min=self.config.reward_min),
                     torch.tensor([float(len(c)) for c in completions]), group])
        return update(self, pair, role, prompts, completions, raw_rewards, group)

    def spy_advantages(rewards, group, scale):
        seen[-1].append(rewards.clone())
        return advantages(rewards, group, scale)

    monkeypatch.setattr(SwirlTrainer, "_update", spy_update)
    monkeypatch.setattr(swirl_module, "group_advantages", spy_advantages)
    config = apply_overrides(SwirlConfig(), [*RL, "length_neutral=true", "fwm_temperature=1.5", "idm_temperature=1.5"])
    SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / "r", init=warm)
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    slopes = [r["reward/length_slope"] for r in logged if "reward/length_slope" in r]
    assert len(seen) == len(slopes) == 8
    for (scored, lengths, group, used), slope in zip(seen, slopes, strict=True):
        assert slope == pytest.approx(length_slope(scored, lengths, group))
        assert length_slope(used, lengths, group) == pytest.approx(0.0, abs=1e-5)
        assert used.view(-1, group).mean(1).tolist() == pytest.approx(scored.view(-1, group).mean(1).tolist(), abs=1e-5)
    assert any(slope != 0 for slope in slopes)  # the lengths did vary: the test changed something
