"""`swirl-eval report`, `check` and `compare`: re-render, regression-check and compare report cards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..leaderboard import EXIT_OK
from .common import UsageError, rich_console


def cmd_report(args: argparse.Namespace) -> int:
    from swirl_envs.fileio import write_atomic

    from ..report import load_report, render_console, render_html, render_markdown

    path = Path(args.path)
    report = load_report(path)
    folder = path if path.is_dir() else path.parent
    write_atomic(folder / "report.md", render_markdown(report))
    write_atomic(folder / "report.html", render_html(report, folder))
    render_console(report, rich_console())
    print(f"wrote {folder}/report.md, report.html")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from rich.table import Table

    from swirl_envs.fileio import dumps_json, write_atomic

    from ..leaderboard import check, load_leaderboard, record
    from ..report import fmt_value, load_report

    board = load_leaderboard(args.leaderboard)
    report = load_report(args.report)
    result = check(report, board, abs_tolerance=args.tolerance, k=args.k)
    scale = lambda m: report.get("metric_info", {}).get(m, {}).get("scale", "0-100")  # noqa: E731
    if args.json:
        print(json.dumps({"exit_code": result.exit_code, "notes": result.notes, "comparisons": [
            {"method": c.method, "metric": c.metric, "leaderboard": c.reference, "leaderboard_stderr": c.reference_stderr,
             "value": c.value, "stderr": c.stderr, "margin": c.margin, "ok": c.ok} for c in result.comparisons]},
            indent=2, allow_nan=False))
    else:
        console = rich_console()
        table = Table(title=f"{report['benchmark']['name']}: report vs {args.leaderboard}")
        for column in ("method", "metric", "leaderboard", "now", "delta", "allowed drop", "result"):
            table.add_column(column, justify="left" if column in ("method", "metric", "result") else "right")
        for c in result.comparisons:
            s = scale(c.metric)
            table.add_row(c.method, c.metric, fmt_value(c.reference, s), fmt_value(c.value, s),
                          f"{c.delta:+.3f}", fmt_value(c.margin, s), "ok" if c.ok else "[red]REGRESSION[/]")
        if result.comparisons:
            console.print(table)
        for note in result.notes:
            console.print(f"note: {note}")
        verdict = (f"{len(result.regressions)} regression(s)" if result.regressions
                   else f"no regression ({len(result.comparisons)} comparisons)")
        console.print(verdict)
    if args.record:
        if result.regressions and not args.force:
            raise UsageError("not recording a run that regresses; pass --force to record it anyway")
        board = record(board, report, report_path=args.report_path, ci=args.ci)
        write_atomic(Path(args.leaderboard), dumps_json(board))
        print(f"recorded {', '.join(report['methods'])} in {args.leaderboard}")
    return result.exit_code


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..leaderboard import compare
    from ..report import fmt_metric, load_report

    a, b = load_report(args.a), load_report(args.b)
    sides = compare(a, b, force=args.force)
    if args.json:
        print(json.dumps([{"method": s.method, "metric": s.metric, "a": s.a, "b": s.b, "difference": s.difference,
                           "significant": s.significant} for s in sides], indent=2))
        return EXIT_OK
    table = Table(title=f"{a['benchmark']['name']}: A = {args.a}, B = {args.b}")
    for column in ("method", "metric", "A", "B", "B - A", ""):
        table.add_column(column, justify="left" if column in ("method", "metric") else "right")
    for s in sides:
        scale = a.get("metric_info", {}).get(s.metric, b.get("metric_info", {}).get(s.metric, {})).get("scale", "0-100")
        diff = "-" if s.difference is None else f"{s.difference:+.3f}"
        table.add_row(s.method, s.metric, fmt_metric(s.a, scale), fmt_metric(s.b, scale), diff,
                      "*" if s.significant else "")
    rich_console().print(table)
    print("* = |B - A| > 1.96 combined standard errors")
    return EXIT_OK


def register(add) -> None:
    """Add this group's subcommands; `add(name, help, examples)` returns a subparser."""
    p = add("report", "re-render report.md and report.html from a report.json",
            "  swirl-eval report runs/textphysics/20260101-120000\n  swirl-eval report path/to/report.json\n")
    p.add_argument("path", help="a run folder or its report.json")
    p.set_defaults(func=cmd_report)

    p = add("check", "regression check of a report card against a leaderboard's measured rows",
            "  swirl-eval check --leaderboard leaderboards/textphysics.json --report runs/x/report.json\n"
            "  swirl-eval check ... --tolerance 0.5 --k 3\n"
            "  swirl-eval check ... --record --ci   # write the run's rows into the leaderboard\n"
            "\nA metric regresses when value < row_value - max(tolerance, k * sqrt(se_row^2 + se_run^2)).\n"
            "Reference rows (quoted from publications) are never compared.\n")
    p.add_argument("--leaderboard", required=True, help="leaderboards/<bench>.json")
    p.add_argument("--report", required=True, help="report.json of a fresh run (or its folder)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="absolute tolerance (default: the leaderboard's check.abs_tolerance, else 0)")
    p.add_argument("--k", type=float, default=None,
                   help="standard errors of slack (default: the leaderboard's check.k, else 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--record", action="store_true", help="then write the report's methods as measured rows")
    p.add_argument("--report-path", default=None, help="with --record: where the row's command writes its report")
    p.add_argument("--ci", action="store_true", help="with --record: mark rows to rerun in CI")
    p.add_argument("--force", action="store_true", help="with --record: record even a regressing run")
    p.set_defaults(func=cmd_check)

    p = add("compare", "show two report cards side by side",
            "  swirl-eval compare runs/a/report.json runs/b/report.json\n")
    p.add_argument("a", help="report A (report.json or its folder)")
    p.add_argument("b", help="report B")
    p.add_argument("--force", action="store_true", help="show cards of different benchmarks or data anyway")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_compare)
