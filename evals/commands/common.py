"""What every `swirl-eval` command shares: the argparse classes, exit codes, argument types, the console."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from swirl_envs.errors import SwirlError

from ..leaderboard import EXIT_OK, EXIT_REFUSED, EXIT_REGRESSION, EXIT_USAGE

EXIT_CODES = f"""exit codes:
  {EXIT_OK}  success; for `check`: no regression
  {EXIT_REGRESSION}  `check` found a regression beyond tolerance
  {EXIT_USAGE}  usage or input error (one line on stderr; --debug shows the traceback)
  {EXIT_REFUSED}  refused to compare: other benchmark, benchmark version or data hash
"""


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


class UsageError(SwirlError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (`--help` still shows the usage), and help text that may end
    with `help_tail()`: built only when help is shown (listing config fields imports torch, ~4 s)."""

    help_tail: Any = None

    def format_help(self) -> str:
        text = super().format_help()
        return f"{text}\n{self.help_tail()}" if self.help_tail is not None else text

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def rich_console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped to a file, rich would fit tables into 80 columns and cut names: give it room instead.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def method_path(text: str) -> tuple[str, str]:
    method, sep, path = text.partition("=")
    if not sep or not method.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected METHOD=PATH, got {text!r}")
    return method.strip(), path.strip()


def nonneg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def temperature(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def top_p(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 0-65535, got {value}")
    return value


def load_benchmark(name: str, data_dir: str | None, labelled: bool):
    from swirl_envs.registry import make_benchmark

    kwargs: dict[str, Any] = {"labelled": labelled}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    try:
        return make_benchmark(name, **kwargs)
    except ImportError as exc:
        raise SwirlError(f"benchmark {name!r} is registered but its code is not available ({exc})") from None

