"""Figures of experiment summaries (runs/experiments/<env>/<tag>/summary.json), drawn with matplotlib.

    python -m evals.figures runs/experiments/*/main/summary.json --output docs/figures [--style ggplot]

gains.svg/.png: relative change of the FWM headline metric over SFT per environment and method, with error
bars of one combined standard error (over seeds). horizon.svg/.png: FWM BLEU when the model is fed its own
predictions for k steps, one panel per environment. summary.md: the SWIRL vs SFT table of the README.

The SVG files are byte-stable: text stays text (`svg.fonttype: none`), ids come from a fixed hash salt and
no date is written, so the same summaries give the same bytes and the files diff well. Restyle them with
any matplotlib style (`--style`, or `matplotlib.style.use` before calling the `*_figure` functions).
matplotlib is imported inside the drawing functions: the table helpers below are imported by code
that never draws.
"""

from __future__ import annotations

import argparse
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swirl_envs.fileio import write_atomic

from .methods import GAIN_METHODS, HORIZON_METHODS, colour

# text.parse_math off: a "$" in a method name is text, not TeX (tick labels are made while saving)
STABLE_SVG = {"svg.hashsalt": "swirl-figures", "svg.fonttype": "none", "text.parse_math": False}
NO_STAMP = {"svg": {"Date": None, "Creator": None}, "png": {"Software": None}}  # no date, no version
GAIN_LIMIT = 25.0  # % : one wild bar (verify@8 on 39 StableToolBench transitions) would flatten the rest


# ---------------------------------------------------------------- writing


def render(fig: Any, fmt: str) -> bytes:
    """The figure as SVG or PNG bytes, the same bytes for the same figure (see the module docstring)."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context(STABLE_SVG):
        fig.savefig(buffer, format=fmt, metadata=NO_STAMP[fmt])
    return buffer.getvalue()


def inline_svg(fig: Any, label: str) -> str:
    """The figure's <svg> element alone (no XML prolog), for a page to inline, labelled for screen readers."""
    text = render(fig, "svg").decode()
    svg = text[text.index("<svg"):].rstrip()
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)


def save(fig: Any, stem: Path) -> list[Path]:
    """stem.svg and stem.png, each written atomically."""
    paths = [stem.with_suffix(f".{fmt}") for fmt in ("svg", "png")]
    for path in paths:
        write_atomic(path, render(fig, path.suffix[1:]))
    return paths


def new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # the object API: no pyplot state, Agg renders the PNG

    return Figure(figsize=(width, height), layout="constrained")


def hbars(ax: Any, labels: Sequence[str], values: Sequence[float], errors: Sequence[float | None],
          colours: Sequence[str], texts: Sequence[str]) -> None:
    """Horizontal bars, first at the top, with ±1 s.e. whiskers where an error is given and each bar's
    value written right of the axes: the one bar drawer of the gains figure and the report card charts."""
    rows = range(len(labels))
    ax.barh(rows, values, color=colours, height=0.7)
    for row, value, error in zip(rows, values, errors, strict=True):
        if error:
            ax.errorbar(value, row, xerr=error, fmt="none", ecolor="#222", capsize=3, linewidth=1)
    for row, text in zip(rows, texts, strict=True):
        ax.text(1.02, row, text, transform=ax.get_yaxis_transform(), va="center", fontsize=8, parse_math=False)
    ax.set_yticks(list(rows), list(labels))
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top
    ax.axvline(0, color="#444", linewidth=0.8)


# ---------------------------------------------------------------- the experiment figures


def gain_rows(summary: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(label, gain %, s.e. %) of each plotted method over its SFT baseline on the headline metric."""
    rows = []
    for method in GAIN_METHODS:
        gain = summary["methods"].get(method, {}).get("vs_sft", {}).get(summary["headline"])
        if gain:
            label = method if gain["baseline"] == "sft" else f"{method} vs {gain['baseline']}"
            rows.append((label, 100 * gain["relative"],
                         None if gain["relative_se"] is None else 100 * gain["relative_se"]))
    return rows


def gains_figure(summaries: list[dict[str, Any]]) -> Any:
    """One panel per environment, one bar per method: % change over SFT of the environment's headline FWM
    metric, the axis cut at ±GAIN_LIMIT."""
    panels = [(s, rows) for s in summaries if (rows := gain_rows(s))]
    n_bars = sum(len(rows) for _, rows in panels)
    fig = new_figure(7.5, 0.9 + 0.25 * n_bars + 0.45 * len(panels))
    if not panels:
        fig.text(0.5, 0.5, "no gains over SFT to show", ha="center")
        return fig
    extent = min(GAIN_LIMIT, max(5.0, *(abs(g) + (e or 0.0) for _, rows in panels for _, g, e in rows)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [len(rows) for _, rows in panels]})[:, 0]
    for ax, (summary, rows) in zip(axes, panels, strict=True):
        labels, gains, errors = zip(*rows, strict=True)
        hbars(ax, labels, gains, errors, [colour(label.split(" vs ")[0]) for label in labels],
              [f"{g:+.1f}" + ("" if e is None else f"±{e:.1f}") for g, e in zip(gains, errors, strict=True)])
        ax.set_title(f"{summary['env']} ({summary['headline']})", loc="left", fontsize=9, fontweight="bold",
                     parse_math=False)
    axes[-1].set_xlim(-extent, extent)
    axes[-1].set_xlabel("% change over SFT")
    fig.suptitle("FWM metric: % change over SFT (mean over seeds, whiskers: 1 combined s.e.)", fontsize=10)
    return fig


def horizon_figure(summaries: list[dict[str, Any]], methods: tuple[str, ...] = HORIZON_METHODS) -> Any:
    """One panel per environment: mean fidelity (BLEU, or PSNR for images) at rollout step k with ±1 s.e.
    whiskers, one line per method."""
    panels = [s for s in summaries if any(s["methods"].get(m, {}).get("horizon") for m in methods)]
    fig = new_figure(1.5 + 3.2 * max(1, len(panels)), 3.0)
    if not panels:
        fig.text(0.5, 0.5, "no rollout curves to show", ha="center")
        return fig
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, summary in zip(axes, panels, strict=True):
        for m in methods:
            curve = summary["methods"].get(m, {}).get("horizon")
            if curve:
                steps = range(1, len(curve) + 1)
                ax.errorbar(steps, [p["mean"] for p in curve], yerr=[p["se"] or 0.0 for p in curve], label=m,
                            color=colour(m), marker="o", markersize=3, capsize=2, linewidth=1.5)
                ax.set_xticks(list(steps))
        metric = "PSNR" if summary["headline"] == "fwm/psnr" else "BLEU"
        ax.set_title(f"{summary['env']}: {metric} at step k", fontsize=9, fontweight="bold", parse_math=False)
        ax.set_xlabel("rollout step k")
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8)
    return fig


# ---------------------------------------------------------------- the README table


def fmt_mean_se(metric: dict[str, Any] | None, scale: float = 1.0) -> str:
    """"mean ± se" of a summary metric ("-" when absent; no ± from a single seed)."""
    if not metric:
        return "-"
    se = f" ± {metric['se'] * scale:.2f}" if metric["se"] is not None else ""
    return f"{metric['mean'] * scale:.2f}{se}"


def fmt_gain(gain: dict[str, Any]) -> str:
    """A summary's relative gain over its SFT baseline, in %, ± the combined standard error."""
    se = f" ± {100 * gain['relative_se']:.1f}" if gain["relative_se"] is not None else ""
    return f"{100 * gain['relative']:+.1f}%{se}"


def summary_table(summaries: list[dict[str, Any]]) -> str:
    """Markdown: per environment, the headline FWM metric of SFT, SWIRL and the oracle, SWIRL's relative gain
    with its combined standard error, and IDM exact match of SFT and SWIRL (all means over seeds)."""

    def cell(row: dict[str, Any] | None, key: str, scale: float = 1.0) -> str:
        return fmt_mean_se((row or {}).get("metrics", {}).get(key), scale)

    lines = ["| environment | FWM metric | SFT | SWIRL | SWIRL vs SFT | best other method | SFT-oracle | "
             "IDM exact match SFT / SWIRL (%) | seeds |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in summaries:
        methods, key = s["methods"], s["headline"]
        gain = methods.get("swirl", {}).get("vs_sft", {}).get(key)
        gain_text = fmt_gain(gain) if gain else "-"
        others = [m for m in methods if m not in ("sft", "swirl", "sft-oracle", "sft-shared") and ":" not in m]
        best = max(others, key=lambda m: methods[m]["metrics"][key]["mean"], default=None)
        best_text = f"{best} {cell(methods[best], key)}" if best else "-"
        lines.append(f"| {s['env']} | {key} | {cell(methods.get('sft'), key)} | {cell(methods.get('swirl'), key)} | "
                     f"{gain_text} | {best_text} | {cell(methods.get('sft-oracle'), key)} | "
                     f"{cell(methods.get('sft'), 'idm/exact_match', 100)} / "
                     f"{cell(methods.get('swirl'), 'idm/exact_match', 100)} | {len(s['seeds'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summaries", nargs="+", type=Path)
    p.add_argument("--output", type=Path, default=Path("docs/figures"))
    p.add_argument("--style", default=None, help="a matplotlib style name or .mplstyle file to draw with")
    args = p.parse_args(argv)
    import matplotlib.style

    summaries = [json.loads(path.read_text()) for path in args.summaries]
    args.output.mkdir(parents=True, exist_ok=True)
    with matplotlib.style.context(args.style or {}):
        save(gains_figure(summaries), args.output / "gains")
        save(horizon_figure(summaries), args.output / "horizon")
    write_atomic(args.output / "summary.md", summary_table(summaries))
    print(summary_table(summaries))
    print(f"wrote gains.svg/.png, horizon.svg/.png and summary.md under {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
