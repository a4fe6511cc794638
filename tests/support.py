"""Helpers shared by the tests (imported as `support`; pytest puts this folder on sys.path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from swirl_envs import Transition

TESTS_DIR = Path(__file__).resolve().parent

# A few blocks on a track: text on which a 300-symbol tokenizer and a 64-wide model train in a moment.
BLOCK_TEXTS = [f"block {b}: x={x}.0 v=0.0" for b in "ABC" for x in range(10)] + ["push block A left", "wait"] * 5


def block_pair(*, seed: int = 0, shared: bool = False, max_length: int = 64):
    """A freshly initialised tiny pair over BLOCK_TEXTS (same arguments give the same weights)."""
    from swirl_core import build_tiny_pair

    return build_tiny_pair(BLOCK_TEXTS, shared=shared, seed=seed, vocab_size=300, hidden_size=64,
                           intermediate_size=128, max_length=max_length, max_target_tokens=16)


def ball_world(n: int, labelled: bool = True) -> list[Transition]:
    """A ball on a line of 10 cells; actions push it left or right (walls stop it), the next state says
    which way it rolled."""
    out = []
    for i in range(n):
        p, left = (i * 7) % 10, (i * 3) % 4 < 2
        q = max(p - 1, 0) if left else min(p + 1, 9)
        action = ("push left" if left else "push right") if labelled else None
        out.append(Transition(f"ball at {p}", f"ball at {q}, rolled {'left' if left else 'right'}", action,
                              f"e{i}", 0))
    return out


def runner_script(body: str) -> str:
    """A subprocess script that can use this module (the subprocess does not get pytest's sys.path)."""
    return f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\nfrom support import ball_world\n" + \
        textwrap.dedent(body)


def install_fake_distribution(root: Path, dist: str, version: str, module: str, code: str, group: str,
                              entry_name: str, entry_value: str) -> None:
    """What `pip install` leaves behind: a module plus a dist-info folder declaring one entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry_name} = {entry_value}\n")


def has_scienceworld() -> bool:
    """Whether ScienceWorld's simulator (the optional extra and Java 11+) runs here; not every machine has it."""
    from swirl_envs.errors import SwirlError
    from swirl_envs.scienceworld import check_requirements

    try:
        check_requirements()
    except SwirlError:
        return False
    return True
