"""The README's command block runs as written, in order, after the set-up command (slow: it trains)."""

from __future__ import annotations

import os
import shlex
import subprocess
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
