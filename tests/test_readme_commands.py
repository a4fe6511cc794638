"""The READMEs' commands run as written, in order, after the set-up command (slow: they train).

README.md: the block after "In order, after the set-up command"; evals/README.md: every `bash` and `python`
block (its synopsis is a `text` block).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "In order, after the set-up command"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(MARKER):].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [c for c in commands if c]


def test_the_block_is_found():
    commands = readme_commands()
    assert commands[0] == "source .venv/bin/activate" and any(c.startswith("swirl-eval serve") for c in commands)


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path):
    # A scratch working directory that sees the checkout's data folders, so outputs stay out of the repo.
    for name in ("leaderboards", "swirl_core", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for command in readme_commands():
        if command.startswith("source "):
            continue  # PATH is set above, as the activation would
        argv = shlex.split(command)
        if argv[:2] == ["swirl-eval", "serve"]:
            server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                port = argv[argv.index("--port") + 1]
                for _ in range(240):
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok":
                            break
                    except httpx.HTTPError:
                        time.sleep(0.5)
                else:
                    pytest.fail(f"{command}: no /health answer")
            finally:
                server.terminate()
                server.wait(30)
            continue
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (tmp_path / "runs" / "stb" / "report.json").is_file()


EVALS_README = ROOT / "evals" / "README.md"


def evals_readme_blocks() -> list[tuple[str, str]]:
    """evals/README.md's runnable blocks in order: ("bash", one command) per line, ("python", a whole block)."""
    out = []
    for lang, body in re.findall(r"^```(bash|python)\n(.*?)^```", EVALS_README.read_text(), flags=re.M | re.S):
        if lang == "python":
            out.append((lang, body))
        else:
            out += [(lang, c) for c in (line.split("  #", 1)[0].strip() for line in body.splitlines()) if c]
    return out


def test_the_evals_readme_blocks_are_found_and_concrete():
    blocks = evals_readme_blocks()
    commands = [c for lang, c in blocks if lang == "bash"]
    assert [lang for lang, _ in blocks].count("python") == 1 and len(commands) == 4
    assert commands[0].startswith("swirl-eval train --bench visualphysics")
    # Synopsis placeholders (B, RUN_DIR, [--flag], ...) belong in the text block, not in a command.
    assert not [c for c in commands if re.search(r"\b[A-Z_]{2,}\b|\[|\.\.\.", c)]
    # Every run is bounded, and nothing trains SmolLM2 (too slow for this test on a CPU).
    assert all("--limit" in c for c in commands) and not any("smollm2" in c for c in commands)


@pytest.mark.slow
def test_evals_readme_blocks_run_in_order(tmp_path):
    for name in ("leaderboards", "swirl_core", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for lang, command in evals_readme_blocks():
        argv = [sys.executable, "-c", command] if lang == "python" else shlex.split(command)
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        if lang == "python":
            assert "'idm/call_exact': {'value': 1.0" in done.stdout
    for run in ("vp", "wp", "bm"):
        assert (tmp_path / "runs" / run / "report.json").is_file()
