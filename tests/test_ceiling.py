"""What the simulators know about their own action spaces and states: the actions that can be taken from
a state, which of them reach a next state (the identifiability ceiling), and states read back as fields
for the FWM state metrics."""

from __future__ import annotations

import json

import pytest

import swirl_envs
from evals import metrics
from swirl_envs.sims.ceiling import ceiling, main, reaching
from swirl_envs.transition import Transition

SIMS = ["textphysics", "textweb", "toolsim"]


def sim(name, **kwargs):
    return swirl_envs.make_benchmark(name, labelled=True, **kwargs)


def taking(bench, t, action):
    """`t`'s state with `action` taken instead: a hand-built transition of the same world."""
    return Transition(t.state, bench.execute(t, action), action, t.episode_id, t.step)


# ---------------------------------------------------------------- candidate actions and the ceiling


def test_physics_pull_is_a_push_and_a_drop_is_unique():
    bench = sim("textphysics", difficulty="easy")
    t = next(bench.transitions("test", limit=1))
    assert t.state.splitlines()[1:] == ["block A: x=2.0 v=0.0 m=1", "block B: x=4.0 v=0.0 m=1"]
    # pulling A toward B, on its right, is the same impulse as pushing A right
    assert reaching(bench, taking(bench, t, "push block A right with strength 3")) == [
        "push block A right with strength 3", "pull block A toward block B with strength 3"]
    assert reaching(bench, taking(bench, t, "drop block C (mass 2) at x=5.5")) == ["drop block C (mass 2) at x=5.5"]


def test_web_home_link_and_back_both_return_home():
    bench = sim("textweb")
    t = list(bench.transitions("test", limit=2))[1]  # on the cart, which the first step reached from home
    assert t.meta["page"] == "cart" and t.state.splitlines()[2] == '[1] link "Home"'
    assert reaching(bench, taking(bench, t, "click [1]")) == ["click [1]", "back"]
    assert reaching(bench, taking(bench, t, 'type [2] "lamp"')) == ['type [2] "lamp"']


def test_tools_default_unit_is_celsius():
    bench = sim("toolsim")
    t = next(bench.transitions("test", limit=1))
    celsius = '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "C"}}'
    assert reaching(bench, taking(bench, t, celsius)) == [
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}', celsius]
    fahrenheit = celsius.replace('"C"', '"F"')
    assert reaching(bench, taking(bench, t, fahrenheit)) == [fahrenheit]


@pytest.mark.parametrize("name", SIMS)
@pytest.mark.parametrize(("difficulty", "n"), [("easy", 10), ("medium", 50), ("hard", 10)])
def test_true_action_is_a_candidate(name, difficulty, n):
    bench = sim(name, difficulty=difficulty)
    data = list(bench.transitions("train", limit=n))  # toolsim lists ~17k calls a state: fewer off the default
    for t in data:
        candidates = bench.candidate_actions(t)
        assert t.action in candidates and len(set(candidates)) == len(candidates)


@pytest.mark.parametrize("name", ["textphysics", "textweb"])
def test_outcomes_are_execute_for_many_actions(name):
    bench = sim(name, difficulty="hard")  # hard textweb draws a banner after the action: the same draws each
    for t in list(bench.transitions("test", limit=6)):
        actions = bench.candidate_actions(t)[::7]
        assert bench.outcomes(t, actions) == [bench.execute(t, a) for a in actions]
        assert bench.execute(t, t.action) == t.next_state


def test_ceiling_counts_unique_next_states(capsys):
    result = ceiling(sim("textphysics", difficulty="easy"), "test", 10)
    assert result["n"] == 10 and result["true_not_enumerated"] == 0
    assert 0 < result["unique"] <= 1 and result["mean_reaching"] >= 1
    assert main(["--bench", "textweb", "--limit", "5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 5 and printed["bench"] == "textweb" and printed["true_not_enumerated"] == 0


# ---------------------------------------------------------------- states read back, and the FWM state metrics


@pytest.mark.parametrize("name", SIMS)
def test_states_read_back_as_fields(name):
    bench = sim(name, difficulty="hard")
    states = {s for t in bench.transitions("test", limit=100) for s in (t.state, t.next_state)}
    fields = {s: bench.parse_state(s) for s in states}
    assert all(f for f in fields.values())
    # different states, different fields
    assert len({json.dumps(f, sort_keys=True) for f in fields.values()}) == len(states)
    for garbage in ("", "hello", "tick x", "url: /\ntitle: t\n[2] link \"Home\""):
        assert bench.parse_state(garbage) is None


@pytest.mark.parametrize("name", SIMS)
def test_state_metrics(name):
    bench = sim(name)

    def score(prediction, t):
        s = metrics.fwm_sample_scores(prediction, t.next_state, t.state, bench.parse_state)
        return s["fwm/state_exact"], s["fwm/changed_f1"]

    for t in bench.transitions("test", limit=20):
        assert score(t.next_state, t) == (1.0, 1.0)
        assert score("garbage", t) == (0.0, 0.0)
        if t.state != t.next_state:
            assert score(t.state, t) == (0.0, 0.0)  # nothing predicted to change
    assert "fwm/state_exact" not in metrics.fwm_sample_scores("a", "b", "c")  # no reader, no state metrics


def test_changed_f1_counts_fields_and_their_values():
    state = "tick 0; track 0.0 to 10.0 with walls at both ends; friction 0.0; collisions elastic\n" \
            "block A: x=2.0 v=0.0 m=1\nblock B: x=4.0 v=0.0 m=1"
    truth = state.replace("tick 0", "tick 1").replace("x=2.0 v=0.0", "x=3.0 v=1.0")
    half = state.replace("tick 0", "tick 1").replace("x=2.0 v=0.0", "x=3.0 v=2.0")  # 2 of 3 changes right
    parse = swirl_envs.make_benchmark("textphysics").parse_state
    scores = metrics.state_scores(half, truth, state, parse)
    assert scores == {"fwm/state_exact": 0.0, "fwm/changed_f1": pytest.approx(2 / 3)}
    dropped = metrics.state_scores(truth.rsplit("\n", 1)[0], truth, state, parse)  # B vanished: 3 changes too many
    assert dropped["fwm/changed_f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)
