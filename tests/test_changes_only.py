"""`changes_only`: where a next state repeats most of its state line for line (toolsim), the FWM writes and the
IDM reads only the lines Y changes or adds, in SFT, sampling, scoring and evaluation alike."""

from __future__ import annotations

import json

import torch
from support import block_pair

from swirl_core import SFTConfig, SFTTrainer, SwirlConfig, SwirlTrainer, WorldModelPair, apply_overrides
from swirl_core.logging import read_metrics
from swirl_core.prompts import apply_changed_lines, changed_lines
from swirl_envs import Transition, make_benchmark

torch.set_num_threads(1)

SMALL = ["progress=false", "max_length=64", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128"]


def ball_log(n: int, labelled: bool = True) -> list[Transition]:
    """A labelled position line that each push rewrites, and a log line it appends."""
    out = []
    for i in range(n):
        p, left = (i * 7) % 10, (i * 3) % 4 < 2
        q = max(p - 1, 0) if left else min(p + 1, 9)
        x = f"ball: {p}\nlog:" + ("\nrested" if i % 3 == 0 else "")
        action = ("push left" if left else "push right") if labelled else None
        out.append(Transition(x, f"ball: {q}\nlog:" + ("\nrested" if i % 3 == 0 else "") + f"\nrolled to {q}",
                              action, f"e{i}", 0))
    return out


def test_changed_lines_replace_labelled_lines_and_append_the_rest():
    x = "task: plan\ncalendar: (empty)\nresponses:\n1. {\"ok\": true}"
    y = "task: plan\ncalendar: 2025-05-11 Dinner\nresponses:\n1. {\"ok\": true}\n2. {\"ok\": true}"
    assert changed_lines(x, y) == "calendar: 2025-05-11 Dinner\n2. {\"ok\": true}"
    assert apply_changed_lines(x, changed_lines(x, y)) == y
    assert changed_lines(x, x) == "" and apply_changed_lines(x, "") == x
    assert apply_changed_lines("a: 1\nb: 2", "a: 3\na: 4") == "a: 3\nb: 2\na: 4"  # a label is replaced once


def test_toolsim_next_states_are_their_changed_lines_applied():
    bench = make_benchmark("toolsim", labelled=True, difficulty="hard")
    transitions = [*bench.transitions("train", limit=300), *bench.transitions("test", limit=100)]
    assert all(apply_changed_lines(t.state, changed_lines(t.state, t.next_state)) == t.next_state
               for t in transitions)
    assert sum("calendar: " in changed_lines(t.state, t.next_state) or "orders: " in changed_lines(t.state, t.next_state)
               for t in transitions) > 10  # facts lines change in place, not only at the end


def test_prompts_targets_scores_and_predictions_use_the_changed_lines():
    plain, changes = block_pair(seed=5), block_pair(seed=5)  # the same weights
    changes.changes_only = True
    x, z = "block A: x=1.0\nlog:", "wait"
    y = "block A: x=2.0\nlog:\nmoved"
    new = "block A: x=2.0\nmoved"
    assert changes.next_state_text(x, y) == new and plain.next_state_text(x, y) == y
    assert changes.prompt_ids("idm", x, y) == plain.prompt_ids("idm", x, new)
    assert changes.prompt_ids("fwm", x, z) == plain.prompt_ids("fwm", x, z)  # the action prompt is unchanged
    torch.testing.assert_close(changes.score_next_states([x], [z], [y]), plain.score_next_states([x], [z], [new]))
    torch.testing.assert_close(changes.score_actions([x], [y], [z]), plain.score_actions([x], [new], [z]))
    states = [x, "block B: x=3.0"]
    written = plain.predict_next_states(states, [z, z], num_samples=2, temperature=1.0, max_new_tokens=6,
                                        generator=torch.Generator().manual_seed(0))
    whole = changes.predict_next_states(states, [z, z], num_samples=2, temperature=1.0, max_new_tokens=6,
                                        generator=torch.Generator().manual_seed(0))
    assert whole == [apply_changed_lines(s, w) for s, w in zip([x, x, states[1], states[1]], written, strict=True)]


def test_sft_and_swirl_train_on_the_changed_lines_and_the_pair_keeps_the_setting(tmp_path):
    data = ball_log(24)
    config = apply_overrides(SFTConfig(), [*SMALL, "learning_rate=3e-3", "epochs=2", "batch_size=8",
                                           "changes_only=true"])
    final = SFTTrainer(config).train(data, tmp_path / "sft")
    budget = json.loads((final / "trainer_state.json").read_text())["target_budget"]
    pair = WorldModelPair.load(final)
    assert pair.changes_only and json.loads((final / "pair.json").read_text())["prompt"]["changes_only"] is True
    changed = max(len(pair.encode("fwm", changed_lines(t.state, t.next_state))) for t in data) + 1  # + eos
    whole = max(len(pair.encode("fwm", t.next_state)) for t in data) + 1
    action = max(len(pair.encode("idm", t.action)) for t in data) + 1
    assert budget["longest"] == max(changed, action) < whole and budget["cut"] == 0
    predicted = pair.predict_next_states([t.state for t in data[:4]], ["push left"] * 4, max_new_tokens=8)
    assert all(y.startswith("ball: ") and "\nlog:" in y for y in predicted)  # X's lines stay, whatever was written
    swirl = apply_overrides(SwirlConfig(), [*SMALL, "iterations=1", "steps_per_phase=1", "batch_size=2",
                                            "fwm_group_size=3", "idm_group_size=3", "sample_batch_size=8",
                                            "changes_only=true"])
    after = SwirlTrainer(swirl).train(ball_log(8, labelled=False), tmp_path / "swirl", init=final)
    assert WorldModelPair.load(after).changes_only
    assert {r["phase"] for r in read_metrics(tmp_path / "swirl")} == {"phase1-fwm", "phase2-idm"}
