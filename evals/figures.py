"""Standalone SVG figures of experiment summaries (runs/experiments/<env>/<tag>/summary.json).

    python -m evals.figures runs/experiments/*/main/summary.json --output docs/figures

gains.svg: relative change of the FWM headline metric over SFT per environment and method, with error bars
of one combined standard error (over seeds). horizon.svg: FWM BLEU when the model is fed its own predictions
for k steps, one panel per environment. summary.md: the SWIRL vs SFT table of the README. Plain SVG text, so the files diff well and need no plotting stack.
"""

from __future__ import annotations

import argparse
import json
from html import escape
from pathlib import Path
from typing import Any

from swirl_envs.fileio import write_atomic

COLOURS = {"sft": "#7f7f7f", "bootstrap": "#bcbd22", "verify@8": "#17becf", "swirl-idm2fwm": "#ff7f0e",
           "swirl": "#d62728", "sft-shared": "#8c564b", "swirl-shared": "#9467bd", "sft-oracle": "#2ca02c"}
GAIN_METHODS = ("bootstrap", "verify@8", "swirl-idm2fwm", "swirl", "swirl-shared", "sft-oracle")


def _colour(method: str) -> str:
    return COLOURS.get(method.partition(":")[0], "#1f77b4")


def gains_svg(summaries: list[dict[str, Any]]) -> str:
    """Grouped horizontal bars: one group per environment, one bar per method, x = % change over SFT of the
    environment's headline FWM metric."""
    rows = []  # (env label, method, gain %, se %)
    for s in summaries:
        for method in GAIN_METHODS:
            gain = s["methods"].get(method, {}).get("vs_sft", {}).get(s["headline"])
            if gain:
                label = method if gain["baseline"] == "sft" else f"{method} vs {gain['baseline']}"
                rows.append((f"{s['env']} ({s['headline']})", label, 100 * gain["relative"],
                             None if gain["relative_se"] is None else 100 * gain["relative_se"]))
    if not rows:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>\n'
    # the axis stops at 25%: one wild bar (verify@8 on 39 StableToolBench transitions) would flatten the rest
    extent = min(25.0, max(5.0, *(abs(g) + (e or 0.0) for _, _, g, e in rows)))
    label_w, plot_w, bar_h, gap = 210, 420, 14, 22
    envs = list(dict.fromkeys(r[0] for r in rows))
    height = 40 + len(rows) * bar_h + len(envs) * gap + 30
    x0 = label_w + plot_w / 2
    scale = (plot_w / 2 - 10) / extent
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 20}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             '<text x="4" y="16" font-size="13">FWM metric: % change over SFT (mean over seeds, '
             'whiskers: 1 combined s.e.)</text>']
    y = 30
    for env in envs:
        parts.append(f'<text x="4" y="{y + 14}" font-weight="bold">{escape(env)}</text>')
        y += gap - 4
        for _, method, g, e in [r for r in rows if r[0] == env]:
            shown = max(-extent, min(extent, g))
            left, width = (x0, shown * scale) if shown >= 0 else (x0 + shown * scale, -shown * scale)
            parts.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end">{escape(method)}</text>')
            parts.append(f'<rect x="{left:.1f}" y="{y + 2}" width="{max(width, 0.5):.1f}" height="{bar_h - 4}" '
                         f'fill="{_colour(method.split(" vs ")[0])}"/>')
            a, b = (x0 + max(-extent, min(extent, v)) * scale for v in (g - (e or 0.0), g + (e or 0.0)))
            mid = y + bar_h / 2
            parts.append(f'<line x1="{a:.1f}" y1="{mid}" x2="{b:.1f}" y2="{mid}" stroke="black"/>')
            parts.append(f'<text x="{label_w + plot_w - 2}" y="{y + 11}" text-anchor="end">{g:+.1f}{"" if e is None else f"±{e:.1f}"}</text>')
            y += bar_h
        y += 4
    parts.append(f'<line x1="{x0}" y1="28" x2="{x0}" y2="{y}" stroke="#444"/>')
    for tick in (-extent, -extent / 2, extent / 2, extent):
        x = x0 + tick * scale
        parts.append(f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{tick:+.0f}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def horizon_svg(summaries: list[dict[str, Any]], methods: tuple[str, ...] = ("sft", "swirl", "swirl-idm2fwm",
                                                                             "bootstrap", "sft-oracle")) -> str:
    """One panel per environment: mean fidelity (BLEU, or PSNR for images) at rollout step k with ±1 s.e.
    whiskers, one line per method."""
    panels = [s for s in summaries if any(s["methods"].get(m, {}).get("horizon") for m in methods)]
    pw, ph, pad = 260, 180, 40
    width = max(1, len(panels)) * (pw + pad) + 130
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{ph + 2 * pad + 10}" '
             'font-family="sans-serif" font-size="11">']
    for i, s in enumerate(panels):
        curves = {m: s["methods"][m]["horizon"] for m in methods if s["methods"].get(m, {}).get("horizon")}
        values = [p["mean"] + (p["se"] or 0) for c in curves.values() for p in c]
        lows = [p["mean"] - (p["se"] or 0) for c in curves.values() for p in c]
        top, bottom = max(values) + 1, min(lows) - 1
        steps = max(len(c) for c in curves.values())
        ox, oy = pad + i * (pw + pad), pad

        def xy(k: int, v: float, ox: float = ox, oy: float = oy, top: float = top, bottom: float = bottom,
               steps: int = steps) -> tuple[float, float]:
            return ox + k * pw / max(steps - 1, 1), oy + ph - (v - bottom) / (top - bottom) * ph

        parts.append(f'<text x="{ox}" y="{oy - 12}" font-weight="bold">{escape(s["env"])}: '
                     f'{"PSNR" if s["headline"] == "fwm/psnr" else "BLEU"} at step k</text>')
        parts.append(f'<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>')
        for v in (bottom, (top + bottom) / 2, top):
            parts.append(f'<text x="{ox - 4}" y="{xy(0, v)[1] + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        for k in range(steps):
            parts.append(f'<text x="{xy(k, bottom)[0]:.1f}" y="{oy + ph + 14}" text-anchor="middle">{k + 1}</text>')
        for m, curve in curves.items():
            points = " ".join(f"{xy(k, p['mean'])[0]:.1f},{xy(k, p['mean'])[1]:.1f}" for k, p in enumerate(curve))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{_colour(m)}" stroke-width="2"/>')
            for k, p in enumerate(curve):
                x, y1 = xy(k, p["mean"] - (p["se"] or 0))
                _, y2 = xy(k, p["mean"] + (p["se"] or 0))
                parts.append(f'<line x1="{x:.1f}" y1="{y1:.1f}" x2="{x:.1f}" y2="{y2:.1f}" stroke="{_colour(m)}"/>')
    for j, m in enumerate(methods):
        y = pad + 14 * j
        parts.append(f'<rect x="{width - 120}" y="{y}" width="10" height="10" fill="{_colour(m)}"/>'
                     f'<text x="{width - 105}" y="{y + 9}">{escape(m)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


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
    args = p.parse_args(argv)
    summaries = [json.loads(path.read_text()) for path in args.summaries]
    args.output.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output / "gains.svg", gains_svg(summaries))
    write_atomic(args.output / "horizon.svg", horizon_svg(summaries))
    write_atomic(args.output / "summary.md", summary_table(summaries))
    print(summary_table(summaries))
    print(f"wrote gains.svg, horizon.svg and summary.md under {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
