"""The transition record, the benchmark API, the Unicode text space and the registry."""

from __future__ import annotations

import pytest

import swirl_envs
from swirl_envs import Benchmark, DataError, SwirlError, Transition, UnicodeText, UnknownNameError


class Counting(Benchmark):
    name = "counting-test"
    splits = ("train", "test")

    def _load(self, split):
        offset = 0 if split == "train" else 100
        for episode in range(3):
            for step in range(2):
                n = offset + episode * 10 + step
                yield Transition(f"n={n}", f"n={n + 1}", "add 1", f"{split}-{episode}", step, {"n": n})


def test_actions_hidden_unless_labelled():
    assert all(t.action is None for t in Counting().transitions("train"))
    assert all(t.action == "add 1" for t in Counting(labelled=True).transitions("train"))


def test_splits_limits_and_episodes():
    bench = Counting(labelled=True)
    assert [t.state for t in bench.transitions("test", limit=2)] == ["n=100", "n=101"]
    episodes = list(bench.episodes("train"))
    assert [len(e) for e in episodes] == [2, 2, 2]
    assert {t.episode_id for t in episodes[1]} == {"train-1"}
    with pytest.raises(UnknownNameError, match="unknown split .*'validation'.*known: test, train"):
        list(bench.transitions("validation"))
    with pytest.raises(SwirlError, match="limit must be >= 0"):
        bench.transitions("train", limit=-1)


def test_dataset_view_and_hash():
    ds = Counting(labelled=True).to_dataset("train")
    assert ds.num_rows == 6 and ds[0]["state"] == "n=0" and ds[0]["action"] == "add 1"
    assert Counting().to_dataset("train")[0]["action"] is None
    a, b = Counting().data_hash("train"), Counting(labelled=True).data_hash("train")
    assert a == b and a.startswith("sha256:") and a != Counting().data_hash("test")


def test_unicode_text_space():
    space = UnicodeText(max_length=8, seed=0)
    assert space.contains("héllo 中文!") is False  # 9 chars, max is 8
    assert space.contains("中文😀") and not space.contains(b"bytes")
    assert all(space.contains(space.sample()) for _ in range(20))


def test_transition_is_frozen():
    t = Transition("x", "y", "z", "e", 0)
    with pytest.raises(AttributeError):
        t.action = "other"  # type: ignore[misc]
    assert t.without_action().action is None and t.modality == "text"


def test_unknown_benchmark_and_env_id_name_what_is_known():
    with pytest.raises(UnknownNameError, match="unknown benchmark 'nope'.*textphysics"):
        swirl_envs.make_benchmark("nope")
    with pytest.raises(UnknownNameError, match="unknown env id 'swirl/Nope-v0'"):
        swirl_envs.make("swirl/Nope-v0")


def test_data_error_names_its_place():
    err = DataError("not valid JSON", path="a/b.json", record=3, field="query")
    assert str(err) == "file a/b.json, record 3, field 'query': not valid JSON"


@pytest.mark.parametrize("name", ["textphysics", "textweb", "toolsim", "stabletoolbench", "mind2web"])
def test_state_only_view_hides_action_revealing_meta(name):
    bench = swirl_envs.make_benchmark(name)
    split = "train"
    hidden = type(bench).action_meta_keys
    assert hidden, f"{name} declares which meta fields reveal its action"
    labelled = list(swirl_envs.make_benchmark(name, labelled=True).transitions(split, limit=20))
    assert any(set(t.meta) & set(hidden) for t in labelled)
    for t in bench.transitions(split, limit=20):
        assert t.action is None and not set(t.meta) & set(hidden)
    env = bench.make_env(split="test")
    _, info = env.reset(seed=0)
    assert not set(info["meta"]) & set(hidden) and "action" not in info


def test_atomic_writes_get_ordinary_file_modes(tmp_path):
    from swirl_envs.fileio import UMASK, atomic_directory, write_atomic

    write_atomic(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~UMASK
    with atomic_directory(tmp_path / "folder") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~UMASK
