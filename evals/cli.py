"""`swirl-eval`: the entry point. The commands (list, run, train, merge, report, check, compare, serve) live
in evals/commands/, one module per group; this module builds the parser from them and maps errors to exit codes."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from swirl_envs.errors import SwirlError

from .commands import listing, reports, run, serve, train
from .commands.common import EXIT_CODES, Formatter, Parser
from .leaderboard import EXIT_REFUSED, EXIT_USAGE, RefusedError

MAIN_HELP = f"""Evaluate, train and compare latent-action world models (FWM + IDM) on the SWIRL suite.

examples:
  swirl-eval list                                   benchmarks, trainers and plugins
  swirl-eval train --bench textphysics --method sft --limit 500 --output ckpt/tp-sft
  swirl-eval train --bench textphysics --method swirl --init ckpt/tp-sft --limit 500 --output ckpt/tp-swirl
  swirl-eval run --bench textphysics --checkpoint sft=ckpt/tp-sft --checkpoint swirl=ckpt/tp-swirl --limit 100
  swirl-eval report runs/textphysics/20260101-120000
  swirl-eval check --leaderboard leaderboards/textphysics.json --report runs/textphysics/20260101-120000/report.json
  swirl-eval compare runs/a/report.json runs/b/report.json
  swirl-eval train --bench visualphysics --method sft --limit 200 --output ckpt/vp-sft   # fits an image codec
  swirl-eval run --bench visualphysics --checkpoint sft=ckpt/vp-sft --limit 50          # PSNR/SSIM + image grid
  swirl-eval serve --bench stabletoolbench --port 8080 --cache-dir cache/ --model ckpt/stb-swirl

{EXIT_CODES}"""


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["swirl-eval", *argv])


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="swirl-eval", description=MAIN_HELP, formatter_class=Formatter)
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def add(name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, formatter_class=Formatter,
                              description=f"{help_text}\n\nexamples:\n{examples}\n{EXIT_CODES}")

    for group in (listing, run, train, reports, serve):
        group.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    args.command_line = command_line(argv)
    try:
        return args.func(args)
    except RefusedError as exc:
        if args.debug:
            raise
        print(f"swirl-eval {args.command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (SwirlError, OSError, ValueError) as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"swirl-eval {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"swirl-eval {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
