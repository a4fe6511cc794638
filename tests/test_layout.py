"""The README's layout section names every module of the three packages, and every module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("swirl_envs", "swirl_core", "evals")


def layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Layout\n", 1)[1].split("\n## ", 1)[0]


def test_every_module_is_named_in_the_layout():
    section = layout_section()
    modules = [path.relative_to(ROOT / package).as_posix()
               for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
               if path.name != "__init__.py" and path.name != "__main__.py"]
    missing = [m for m in modules if not re.search(rf"(?<![\w/]){re.escape(m)}\b", section)]
    assert not missing, f"README layout section misses: {missing}"


def test_every_named_module_exists():
    named = set(re.findall(r"(?<![\w/.])((?:\w+/)*\w+\.py)\b", layout_section()))
    stale = [n for n in named if not any((ROOT / package / n).is_file() or (ROOT / n).is_file()
                                         for package in PACKAGES)]
    assert not stale, f"README layout section names modules that are gone: {stale}"
