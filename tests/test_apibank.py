"""API-Bank: the bundled data's transitions and splits, the state-only view, the Gymnasium ids, damaged input and
a `swirl-eval run` over it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium
import pytest

import swirl_envs
from evals import cli
from evals.leaderboard import EXIT_USAGE
from evals.metrics import parse_tool_call
from swirl_envs.apibank import APIBank, bundled_data_dir, format_call, load_data, split_of
from swirl_envs.errors import DataError

DATA = bundled_data_dir()
LEVEL1 = "lv1-lv2-samples/level-1-given-desc"
LEVEL2 = "lv1-lv2-samples/level-2-toolsearcher"


@pytest.fixture(scope="module")
def bundled():
    return load_data(DATA)


def _all(data):
    return [(split, t) for split, ts in data.transitions.items() for t in ts]


def test_counts_per_split(bundled):
    report = bundled.report
    assert report.problems == []
    assert dict(report.files) == {"level-1": 214, "level-2": 50, "level-3": 1}
    # SOURCES.md: 389 + 119 + 245 = 753 (call, response) pairs; one level-2 call repeats another exactly.
    assert dict(report.calls) == {"level-1": 389, "level-2": 119, "level-3": 245}
    assert report.duplicates == 1
    assert dict(report.transitions) == {"train": 505, "validation": 79, "test": 168}
    assert dict(report.dialogues) == {"train": 210, "validation": 30, "test": 71}
    assert dict(report.skipped) == {"empty dialogue file": 1, "dialogue without API calls": 2}
    assert {s: len(ts) for s, ts in bundled.transitions.items()} == dict(report.transitions)
    bench = APIBank(labelled=True)
    assert [len(list(bench.transitions(s))) for s in bench.splits] == [505, 79, 168]
    assert bench.describe()["transitions"] == {"train": 505, "validation": 79, "test": 168}
    spec = swirl_envs.get_spec("apibank")
    assert spec.env_id == "swirl/APIBank-v0" and "505 train / 79 validation / 168 test" in spec.description


def test_no_dialogue_in_two_splits(bundled):
    by_episode: dict[str, set[str]] = {}
    by_opening: dict[str, set[str]] = {}
    for split, t in _all(bundled):
        by_episode.setdefault(t.episode_id, set()).add(split)
        # The first User turn (every upstream dialogue opens with one), or level 3's requirement.
        opening = next(line for line in t.state.splitlines() if line.startswith(("User: ", "Requirement: ")))
        by_opening.setdefault(opening, set()).add(split)
    assert len(by_episode) == 311
    assert all(len(splits) == 1 for splits in by_episode.values())
    assert all(len(splits) == 1 for splits in by_opening.values())
    # Two upstream dialogues open with the same request and begin with the same call: they land together,
    # and the shared first transition is kept once.
    pair = {t.episode_id: split for split, t in _all(bundled) if "DeleteAccount-level-3-" in t.episode_id}
    assert pair[f"{LEVEL2}/DeleteAccount-level-3-2.jsonl"] == pair[f"{LEVEL2}/DeleteAccount-level-3-3.jsonl"]
    assert split_of("  Can you help me delete my account? ") == split_of("Can you help me delete my account?")


def test_a_level_1_transition_from_its_file(bundled):
    rel = f"{LEVEL1}/AddAgenda-AddAlarm-GetUserToken-level-2-1.jsonl"
    steps = [t for _, t in _all(bundled) if t.meta["source_file"] == rel]
    assert [t.meta["api_name"] for t in steps] == ["GetUserToken", "AddAgenda", "AddAlarm"]
    add = steps[1]
    assert add.state == "\n".join([
        "Dialogue:",
        'User: Can you add a schedule for me at 2pm on September 12th called "Meeting with John" at the office?',
        "AI: Sure, I can add that schedule for you. When would you like the alarm to remind you?",
        "User: Can you remind me 10 minutes before the schedule?",
        "AI: Absolutely. To schedule the meeting, I first need to authenticate your account. Please provide your "
        "username, email, and password.",
        "User: My username is JaneSmith, my email is janesmith@example.com, and my password is password.",
        "AI: Thank you.",
        'Call 1: {"name": "GetUserToken", "arguments": {"password": "password", "username": "JaneSmith"}}',
        'Result 1: {"token": "o8i7u6y5t4r3e2w1q0"}',
        "AI: I have retrieved your authentication token. Now I will add the schedule and alarm for you."])
    assert add.action == ('{"name": "AddAgenda", "arguments": {"content": "Meeting with John at the office", '
                          '"location": "office", "time": "2023-09-12 14:00:00", "token": "o8i7u6y5t4r3e2w1q0"}}')
    assert add.next_state == '"success"'
    assert (add.step, add.meta["record"], add.meta["level"], add.episode_id) == (1, "9", 1, rel)
    # Z has StableToolBench's shape, so the tool-call metrics read it.
    call = parse_tool_call(add.action)
    assert call is not None and call.name == "AddAgenda" and call.arguments["location"] == "office"


def test_a_level_3_transition_keeps_the_callers_arguments(bundled):
    tasks = json.loads((DATA / "test-data/level-3.json").read_text())
    steps = [t for _, t in _all(bundled) if t.episode_id == "test-data/level-3.json:5"]
    assert len(steps) == len(tasks[5]["apis"])
    weather = next(t for t in steps if t.meta["api_name"] == "GetWeatherForCoordinates")
    # The call as written (text), not the API's converted echo (numbers); Y is the output alone.
    assert json.loads(weather.action) == {"name": "GetWeatherForCoordinates",
                                          "arguments": {"latitude": "40.7128", "longitude": "74.0060"}}
    api = next(a for a in tasks[5]["apis"] if a["api_name"] == "GetWeatherForCoordinates")
    assert json.loads(weather.next_state) == api["output"]["output"]
    lines = weather.state.splitlines()
    assert lines[0] == "Requirement: " + " ".join(tasks[5]["requirement"].split())
    assert tasks[5]["response"] not in weather.state  # the final answer is never shown
    assert lines[1] == "Call 1: " + format_call("ToolSearcher", tasks[5]["apis"][0]["input"])


def test_state_only_view_hides_actions():
    hidden = list(APIBank().transitions("test", limit=20))
    shown = list(APIBank(labelled=True).transitions("test", limit=20))
    assert all(t.action is None and "api_name" not in t.meta for t in hidden)
    assert all(t.action and t.meta["api_name"] == json.loads(t.action)["name"] for t in shown)
    assert [(t.state, t.next_state) for t in hidden] == [(t.state, t.next_state) for t in shown]


@pytest.mark.parametrize("make", [swirl_envs.make, gymnasium.make])
def test_gymnasium_ids(make):
    env = make("swirl/APIBank-v0")
    observation, info = env.reset(seed=0)
    assert observation.startswith(("Dialogue:\nUser: ", "Requirement: "))
    _, _, _, _, info = env.step('{"name": "GetToday", "arguments": {}}')
    assert "next_context" in info and "api_name" not in info["meta"]
    env.close()


def _damaged_copy(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    rel = f"{LEVEL1}/AddAgenda-AddAlarm-GetUserToken-level-2-1.jsonl"
    lines = (data / rel).read_text().splitlines()
    turn = json.loads(lines[8])
    del turn["param_dict"]["location"]  # the API's echoed input still names it
    lines[8] = json.dumps(turn)
    (data / rel).write_text("\n".join(lines) + "\n")
    return data, rel


def test_damaged_input_is_located_and_strict_raises(tmp_path):
    data, rel = _damaged_copy(tmp_path)
    loaded = load_data(data)
    assert len(loaded.report.problems) == 1
    problem = loaded.report.problems[0]
    assert problem.startswith(f"file {rel}, record 9, field 'result.input'") and "location" in problem
    # The call before the damaged turn is kept; the damaged one and the one after it are not.
    assert sum(t.meta["source_file"] == rel for _, t in _all(loaded)) == 1
    assert sum(loaded.report.transitions.values()) == 752 - 2
    with pytest.raises(DataError) as caught:
        list(APIBank(data_dir=data, strict=True).transitions("train"))
    assert (caught.value.path, caught.value.record, caught.value.field) == (rel, 9, "result.input")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no API-Bank data"):
        load_data(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "missing")


def test_bad_bytes_and_wrong_types_are_located(tmp_path):
    data = tmp_path / "data"
    (data / LEVEL2).mkdir(parents=True)
    (data / "test-data").mkdir()
    source = (DATA / LEVEL2 / "DeleteAgenda-level-3-1.jsonl").read_bytes().split(b"\n")
    (data / LEVEL2 / "DeleteAgenda-level-3-1.jsonl").write_bytes(b"\n".join(source[:5] + [b"\xff"] + source[5:]))
    tasks = json.loads((DATA / "test-data/level-3.json").read_text())[:2]
    tasks[1]["apis"][1]["input"]["user_name"] = 7
    (data / "test-data/level-3.json").write_text(json.dumps(tasks))
    problems = load_data(data).report.problems
    assert problems[0].startswith(f"file {LEVEL2}/DeleteAgenda-level-3-1.jsonl, record 6: not UTF-8")
    assert problems[1].startswith("file test-data/level-3.json, record 1, field 'apis[1].output.input.")
    assert len(problems) == 2


def test_swirl_eval_run_writes_a_report(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--bench", "apibank", "--model", "tiny", "--methods", "base", "--limit", "5",
            "--max-new-tokens", "8", "--threads", "1", "--bootstrap", "10", "--output", str(out), "--quiet"]
    assert cli.main([*argv, "--strict"]) == 0  # the bundled copy has nothing damaged
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"]["name"] == "apibank" and report["benchmark"]["n_transitions"] == 5
    results = report["methods"]["base"]["metrics"]
    for metric in ("fwm/bleu", "fwm/json_valid", "idm/name_exact", "idm/args_f1", "idm/call_exact"):
        assert results[metric]["n"] == 5, metric
    assert len((out / "samples.jsonl").read_text().splitlines()) == 5
    data, rel = _damaged_copy(tmp_path)
    capsys.readouterr()
    assert cli.main([*argv[:-3], "--data-dir", str(data), "--strict"]) == EXIT_USAGE
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and rel in err[0] and "record 9" in err[0]
