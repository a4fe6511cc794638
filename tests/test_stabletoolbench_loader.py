"""StableToolBench loader: naming, call text, the bundled data's transitions and splits, broken input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from swirl_envs.errors import DataError, SwirlError
from swirl_envs.stabletoolbench import (
    RemoteFile,
    StableToolBench,
    api_function_name,
    bundled_data_dir,
    change_name,
    fetch_remote,
    format_call,
    load_data,
    parse_call,
    render_observation,
    standardize,
    standardize_category,
)

DATA = bundled_data_dir()


@pytest.fixture(scope="module")
def bundled():
    return load_data(DATA)


def test_standardize_follows_upstream_quirks():
    assert standardize("Transfermarkt search") == "transfermarkt_search"
    assert standardize("  --Get  User__By-Name!! ") == "get_user_by_name"
    assert standardize("2nd hand") == "get_2nd_hand"
    assert standardize("a^b") == "a^b"  # upstream's character class keeps a literal '^'
    assert standardize("Météo") == "m_t_o"
    assert change_name("id") == "is_id" and change_name("ids") == "ids"
    assert standardize_category("News, Media") == "News_Media"
    assert standardize_category("Artificial Intelligence/Machine Learning") == "Artificial_Intelligence_Machine_Learning"
    assert len(api_function_name("x" * 80, "tool")) == 64


def test_function_names_match_the_recorded_answers():
    """Names built from a query record's api_list equal the names the recorded agent was shown."""
    queries = {r["query_id"]: r for r in json.loads(
        (DATA / "solvable_queries_example/test_instruction/G1_instruction.json").read_text())}
    answer = json.loads((DATA / "data_example/answer/virtual_chatgpt_dfs/G1_instruction/588_DFS_woFilter_w2.json")
                        .read_text())
    recorded = {f["name"] for f in answer["answer_generation"]["function"]} - {"Finish"}
    built = {api_function_name(a["api_name"], standardize(a["tool_name"])) for a in queries[588]["api_list"]}
    assert recorded == built


def test_call_text_round_trip_and_errors():
    text = format_call("search_for_tool", '{\n  "b": 1,\n  "a": "é"\n}')
    assert text == '{"name": "search_for_tool", "arguments": {"a": "é", "b": 1}}'
    assert parse_call(text) == ("search_for_tool", {"a": "é", "b": 1})
    assert parse_call('{"arguments": {}, "name": "f"}') == ("f", {})
    assert format_call("f", "") == '{"name": "f", "arguments": {}}'
    assert parse_call(format_call("f", "not json")) == ("f", "not json")  # kept verbatim, like upstream
    for bad in ["", "[1]", '{"name": ""}', '{"name": "f", "x": 1}', "{"]:
        with pytest.raises(DataError):
            parse_call(bad)
    assert render_observation('{"error": "", "response": "caf\\u00e9"}') == '{"error": "", "response": "café"}'
    assert render_observation("plain text...") == "plain text..."


def test_bundled_data_yields_every_split(bundled):
    counts = {s: len(ts) for s, ts in bundled.transitions.items()}
    assert all(counts[s] > 0 for s in ("train", "validation", "test")), counts
    assert sum(counts.values()) == 311  # the bundled fixture's real tool calls after deduplication
    report = bundled.report
    assert report.files["answer_dfs"] == 18 and report.files["answer_cot"] == 3 and report.files["converted"] == 2
    assert report.duplicates > 0  # converted predictions repeat their answer files' calls
    assert report.skipped["empty file"] == 1
    assert any("acrosuite_oauther.json" in p and "empty" in p for p in report.problems)
    assert report.skipped["Finish call (not a tool transition)"] > 0


def test_splits_never_share_a_query(bundled):
    queries = {s: {t.state.split("\nFunctions:", 1)[0] for t in ts} for s, ts in bundled.transitions.items()}
    assert not queries["train"] & queries["test"]
    assert not queries["train"] & queries["validation"]
    assert not queries["validation"] & queries["test"]
    tasks = {}
    for task in bundled.tasks:
        assert tasks.setdefault(" ".join(task.query.split()), task.split) == task.split


def test_transitions_are_real_calls_deduplicated_and_chained(bundled):
    every = [t for ts in bundled.transitions.values() for t in ts]
    keys = [(t.state, t.action, t.next_state) for t in every]
    assert len(keys) == len(set(keys))
    by_episode: dict[str, list] = {}
    for t in every:
        name, _ = parse_call(t.action)
        assert name != "Finish"
        assert t.meta["function"] == name and t.meta["source_file"] and t.meta["record"]
        by_episode.setdefault(t.episode_id, []).append(t)
    for episode in by_episode.values():
        assert [t.step for t in episode] == list(range(len(episode)))
        for before, after in zip(episode, episode[1:], strict=False):
            # X_{t+1} is X_t grown by call t and its response
            assert after.state.startswith(before.state)
            assert before.action in after.state and before.next_state in after.state
    routed = [t for t in every if t.meta["category"]]
    assert routed and all(t.meta["tool"] and t.meta["api"] for t in routed)


def test_benchmark_hides_actions_unless_labelled():
    assert all(t.action is None for t in StableToolBench().transitions("test"))
    labelled = list(StableToolBench(labelled=True).transitions("test"))
    assert labelled and all(t.action for t in labelled)
    ds = StableToolBench(labelled=True).to_dataset("validation")
    assert len(ds) == len(list(StableToolBench().transitions("validation")))
    assert json.loads(ds[0]["meta"])["query_id"]


def _copy(tmp_path: Path, *rels: str) -> Path:
    for rel in rels:
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / rel, target)
    return tmp_path


def test_any_group_in_the_upstream_format_loads(tmp_path):
    """G2/G3 are not bundled; a group of any name in the same layout is read like G1."""
    src = json.loads((DATA / "solvable_queries_example/test_instruction/G1_instruction.json").read_text())
    (tmp_path / "solvable_queries/test_instruction").mkdir(parents=True)
    (tmp_path / "solvable_queries/test_instruction/G3_instruction.json").write_text(json.dumps(src))
    (tmp_path / "solvable_queries/test_query_ids").mkdir(parents=True)
    (tmp_path / "solvable_queries/test_query_ids/G3_instruction.json").write_text(json.dumps({"588": 0, "608": 0}))
    answer = tmp_path / "data_example/answer/virtual_chatgpt_dfs/G3_instruction/588_DFS_woFilter_w2.json"
    answer.parent.mkdir(parents=True)
    shutil.copy(DATA / "data_example/answer/virtual_chatgpt_dfs/G1_instruction/588_DFS_woFilter_w2.json", answer)
    data = load_data(tmp_path)
    assert sorted(t.query_id for t in data.tasks) == ["588", "608"]  # 1073 is not in test_query_ids
    assert {t.group for t in data.tasks} == {"G3_instruction"}
    every = [t for ts in data.transitions.values() for t in ts]
    assert every and all(t.meta["group"] == "G3_instruction" and t.meta["category"] == "Data" for t in every)


def test_broken_files_are_counted_or_raise_located(tmp_path):
    _copy(tmp_path, "toolbench/data_example/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json")
    bad = tmp_path / "toolbench/data_example/answer/G1_answer/11_ChatGPT_DFS_woFilter_w2.json"
    bad.write_text('{"answer_generation": {"query": "q", "function": []}, "tree": {"tree": {"children": [')
    queries = tmp_path / "solvable_queries/test_instruction/G2_category.json"
    queries.parent.mkdir(parents=True)
    queries.write_text(json.dumps([{"query": "ok", "query_id": 1, "api_list": []}, {"query_id": 2}]))
    converted = tmp_path / "data_example/model_predictions_converted/m/G1_tool.json"
    converted.parent.mkdir(parents=True)
    converted.write_text(json.dumps({"7": {"query": "q", "available_tools": "nope", "answer": {"answer_details": []}},
                                     "8": {"query": "q"}}))
    data = load_data(tmp_path)
    assert data.report.skipped["invalid JSON"] == 1 and data.report.skipped["bad query record"] == 1
    assert data.report.skipped["bad converted record"] == 2
    assert any("G1_tool.json, record 7, field 'function'" in p for p in data.report.problems)
    assert any("G1_tool.json, record 8" in p and "available_tools" in p for p in data.report.problems)
    assert sum(len(ts) for ts in data.transitions.values()) > 0  # the good file still loads
    assert any("G2_category.json" in p and "record 1" in p for p in data.report.problems)
    with pytest.raises(DataError, match=r"G2_category\.json, record 1, field 'query'"):
        load_data(tmp_path, strict=True)  # query files are read first
    queries.unlink()
    converted.unlink()
    with pytest.raises(DataError, match=r"11_ChatGPT_DFS_woFilter_w2\.json: not valid JSON"):
        load_data(tmp_path, strict=True)
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "missing")


def test_remote_fetch_goes_through_datasets(tmp_path):
    """The remote path with a local file standing in for the URL (no network here)."""
    source = DATA / "solvable_queries_example/test_instruction/G1_instruction.json"
    dest = tmp_path / "fetched"
    fetch_remote(dest, [RemoteFile(None, str(source), "solvable_queries/test_instruction/G1_instruction.json")])
    assert (dest / "solvable_queries/test_instruction/G1_instruction.json").read_bytes() == source.read_bytes()
    assert len(load_data(dest).tasks) == 3
    with pytest.raises(SwirlError, match="could not fetch"):
        fetch_remote(tmp_path / "x", [RemoteFile(None, str(tmp_path / "nope.json"), "a/b.json")])
    with pytest.raises(SwirlError, match="leaves"):
        fetch_remote(tmp_path / "y", [RemoteFile(None, str(source), "../escape.json")])


COT_588 = "data_example/answer/virtual_chatgpt_cot/G1_instruction/588_CoT@1.json"
DFS_588 = "data_example/answer/virtual_chatgpt_dfs/G1_instruction/588_DFS_woFilter_w2.json"


def _del_node_type(node):
    del node["node_type"]


def _name_as_number(node):
    node["description"] = 5


@pytest.mark.parametrize("rel, first, damage, where", [
    (COT_588, lambda d: d["trys"][0]["chain"][0], _del_node_type, r"record trys\[0\]\.chain\[0\], field 'node_type'"),
    (DFS_588, lambda d: d["tree"]["tree"]["children"][0], _del_node_type,
     r"record tree\.children\[0\], field 'node_type'"),
    (DFS_588, lambda d: d["tree"]["tree"]["children"][0], _name_as_number,
     r"record tree\.children\[0\], field 'description'"),
])
def test_a_damaged_first_node_is_located_and_gives_no_wrong_history(tmp_path, rel, first, damage, where):
    """Issue 15: the calls after a lost first Action used to come out with a history that lacked it."""
    _copy(tmp_path, "solvable_queries_example/test_instruction/G1_instruction.json", rel)
    intact = load_data(tmp_path)
    assert intact.report.transitions["test"] > 0 and not intact.report.problems
    answer = json.loads((tmp_path / rel).read_text())
    damage(first(answer))
    (tmp_path / rel).write_text(json.dumps(answer))
    damaged = load_data(tmp_path)
    # The first node holds every later call of this trajectory, so none of them can come out right.
    assert sum(damaged.report.transitions.values()) == 0
    assert len(damaged.report.problems) == 1
    assert damaged.report.problems[0].startswith(f"file {rel}, ") and re.search(where, damaged.report.problems[0])
    with pytest.raises(DataError, match=re.escape(Path(rel).name) + ", " + where):
        load_data(tmp_path, strict=True)


def test_a_call_without_its_response_is_located(tmp_path):
    _copy(tmp_path, "solvable_queries_example/test_instruction/G1_instruction.json", COT_588)
    intact = [(t.state, t.action, t.next_state) for t in load_data(tmp_path).transitions["test"]]
    answer = json.loads((tmp_path / COT_588).read_text())
    del answer["trys"][0]["chain"][3]["observation"]  # the second call's response
    (tmp_path / COT_588).write_text(json.dumps(answer))
    damaged = load_data(tmp_path)
    # The first call keeps its transition; the second and every later one go (their history lacks it).
    assert [(t.state, t.action, t.next_state) for t in damaged.transitions["test"]] == intact[:1]
    assert damaged.report.problems == [f"file {COT_588}, record trys[0].chain[3], field 'observation': "
                                       "a tool call without its response (a string)"]
