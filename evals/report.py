"""Report cards: report.json (the record), report.md, a self-contained report.html, terminal tables.

report.json layout (schema: evals/schema/report.schema.json, `schema_version` below):

    schema_version, benchmark {name, version, split, limit, n_transitions, data_hash, modality,
    primary_metric}, config (decoding, batch size, bootstrap), seeds, command,
    models {method: {model, checkpoint, sha256, details}},
    methods {method: {metrics {name: {value, stderr, n}}, delta_vs_sft {name: {absolute, relative}} | null}},
    metric_info {name: {kind, scale, description, higher_is_better}},
    images {grid: [{index, episode_id, step, action, source, truth, predictions {method: path}}]}
        (image benchmarks only: PNG paths relative to the run folder),
    provenance {created, wall_time_s, resumed_samples, versions, git}

Everything outside `provenance` is a function of the command, the data and the weights: two runs of the
same command with the same seed write the same bytes there.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from swirl_envs.errors import DataError
from swirl_envs.fileio import read_json

from . import image_metrics, metrics
from .methods import colour

SCHEMA_VERSION = "1.2"  # 1.1: metric_info.higher_is_better, scales dB and cosine, the images block;
# 1.2: methods.*.diagnostics (degenerate-output flags) and the examples block
SCHEMA_PATH = Path(__file__).parent / "schema" / "report.schema.json"
REFERENCE_METHOD = "sft"
PACKAGES = ("swirl-suite", "torch", "transformers", "datasets", "sacrebleu", "rouge-score", "numpy")


# ------------------------------------------------------------------ building


def deltas(results: Mapping[str, Mapping[str, Any]], reference: str = REFERENCE_METHOD):
    """Per method, each metric's difference to the reference row: absolute, and relative (value/ref - 1)."""
    if reference not in results:
        return {method: None for method in results}
    base = results[reference]
    out: dict[str, Any] = {}
    for method, row in results.items():
        out[method] = {}
        for name, metric in row.items():
            ref = base.get(name)
            if ref is None or metric["value"] is None or ref["value"] is None:
                continue
            relative = metric["value"] / ref["value"] - 1 if ref["value"] != 0 else None
            out[method][name] = {"absolute": metric["value"] - ref["value"], "relative": relative}
    return out


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_version(root: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout that holds this code (None outside a git checkout)."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


# Every metric a card can hold, in display order: FWM metrics (text, then image), then IDM metrics.
METRICS = {n: m for role in ("fwm/", "idm/") for n, m in {**metrics.METRICS, **image_metrics.METRICS}.items()
           if n.startswith(role)}


def build_report(*, benchmark: dict[str, Any], config: dict[str, Any], seeds: dict[str, int],
                 models: dict[str, Any], results: dict[str, dict[str, Any]], command: str | None,
                 wall_time_s: float, resumed_samples: int = 0, images: dict[str, Any] | None = None,
                 diagnostics: dict[str, Any] | None = None,
                 examples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    names = sorted({name for row in results.values() for name in row}, key=metric_order)
    info = {n: {"kind": METRICS[n].kind, "scale": METRICS[n].scale, "description": METRICS[n].description,
                "higher_is_better": METRICS[n].higher_is_better} for n in names if n in METRICS}
    delta = deltas(results)
    extra = {"images": images} if images is not None else {}
    if examples is not None:
        extra["examples"] = examples
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": benchmark,
        "config": config,
        "seeds": seeds,
        "command": command,
        "models": models,
        "methods": {m: {"metrics": results[m], "delta_vs_sft": delta[m],
                        **({"diagnostics": diagnostics[m]} if diagnostics and m in diagnostics else {})}
                    for m in results},
        "metric_info": info,
        **extra,
        "provenance": {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "wall_time_s": round(wall_time_s, 3), "resumed_samples": resumed_samples,
                       "versions": versions(), "git": git_version()},
    }


def metric_order(name: str) -> tuple[int, str]:
    order = list(METRICS)
    return (order.index(name) if name in order else len(order), name)


# ------------------------------------------------------------------ reading and validating


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def validate_report(report: Any, *, where: str | Path = "report") -> None:
    """Raise DataError when `report` does not follow the schema (full check when jsonschema is installed)."""
    if not isinstance(report, dict) or "schema_version" not in report:
        raise DataError("not a report card (no schema_version)", path=where)
    major = str(report["schema_version"]).split(".", 1)[0]
    if major != SCHEMA_VERSION.split(".", 1)[0]:
        raise DataError(f"report schema {report['schema_version']} is not readable by this version "
                        f"(schema {SCHEMA_VERSION})", path=where)
    try:
        import jsonschema
    except ImportError:  # jsonschema is a test extra; the structural checks below still run
        for key in ("benchmark", "methods", "models"):
            if not isinstance(report.get(key), dict):
                raise DataError(f"missing object {key!r}", path=where) from None
        return
    raise_schema_error(jsonschema, schema(), report, "report", where)


def raise_schema_error(jsonschema: Any, schema: dict[str, Any], instance: Any, kind: str, where: str | Path) -> None:
    """DataError at the most relevant violation of `schema`, located by its JSON path; nothing when valid."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    if error is not None:
        location = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise DataError(f"does not follow the {kind} schema at {location}: {error.message}", path=where)


def load_report(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    report = read_json(path, "report")
    validate_report(report, where=path)
    return report


# ------------------------------------------------------------------ formatting


def fmt_value(value: float | None, scale: str = "0-100") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if scale in ("0-100", "dB") else f"{value:.3f}"


def fmt_metric(metric: Mapping[str, Any] | None, scale: str = "0-100") -> str:
    if not metric or metric.get("value") is None:
        return "-"
    text = fmt_value(metric["value"], scale)
    if metric.get("stderr") is not None:
        text += f" ± {fmt_value(metric['stderr'], scale)}"
    return text


def fmt_delta(delta: Mapping[str, Any] | None, scale: str = "0-100") -> str:
    if not delta:
        return "-"
    absolute = f"{delta['absolute']:+.2f}" if scale in ("0-100", "dB") else f"{delta['absolute']:+.3f}"
    if delta.get("relative") is None:
        return absolute
    return f"{100 * delta['relative']:+.1f}% ({absolute})"


def metric_names(report: Mapping[str, Any]) -> list[str]:
    names = {n for row in report["methods"].values() for n in row["metrics"]}
    return sorted(names, key=metric_order)


def _scale(report: Mapping[str, Any], name: str) -> str:
    return report.get("metric_info", {}).get(name, {}).get("scale", "0-100")


def _n_of(report: Mapping[str, Any], name: str) -> str:
    ns = {row["metrics"][name]["n"] for row in report["methods"].values() if name in row["metrics"]}
    return "/".join(str(n) for n in sorted(ns))


def metric_rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The card as a table with one row per metric: n, each method's value ± se, each method's delta vs sft."""
    methods = list(report["methods"])
    compared = [m for m in methods if m != REFERENCE_METHOD and report["methods"][m]["delta_vs_sft"] is not None]
    headers = ["metric", "n", *methods, *(f"{m} vs {REFERENCE_METHOD}" for m in compared)]
    rows = []
    for name in metric_names(report):
        scale = _scale(report, name)
        cells = [name, _n_of(report, name)]
        cells += [fmt_metric(report["methods"][m]["metrics"].get(name), scale) for m in methods]
        cells += [fmt_delta(report["methods"][m]["delta_vs_sft"].get(name), scale) for m in compared]
        rows.append(cells)
    return headers, rows


def render_markdown(report: Mapping[str, Any]) -> str:
    bench = report["benchmark"]
    lines = [f"# Report card: {bench['name']}", "",
             f"Benchmark **{bench['name']}** v{bench['version']}, split `{bench['split']}`, "
             f"{bench['n_transitions']} transitions, data `{bench['data_hash']}`.  ",
             f"Primary metric `{bench.get('primary_metric')}`. Seeds: "
             + ", ".join(f"{k} {v}" for k, v in report["seeds"].items()) + ".", ""]
    if bench.get("load_problems"):
        found = bench["load_problems"]
        lines += [f"**Data warning:** the loader skipped {found['count']} damaged record(s); first:", "",
                  *(f"- `{line}`" for line in found["first"]), ""]
    if report.get("command"):
        lines += ["Reproduce:", "", "```bash", report["command"], "```", ""]
    headers, rows = metric_rows(report)
    lines += ["## Metrics", "", "Value ± standard error (bootstrap over samples for corpus metrics, analytic for "
              f"means). `<method> vs {REFERENCE_METHOD}`: relative difference (value/sft - 1) and absolute "
              "difference in parentheses.", "",
              "| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    lines += ["| " + " | ".join([f"`{r[0]}`", *r[1:]]) + " |" for r in rows]
    lines += flags_markdown(report)
    lines += examples_markdown(report)
    lines += grid_markdown(report)
    lines += ["", "## Models", "", "| method | model | checkpoint | sha256 |", "|---|---|---|---|"]
    for method, model in report["models"].items():
        sha = (model.get("sha256") or "-")[:16]
        lines.append(f"| {method} | {model.get('model')} | {model.get('checkpoint') or '-'} | {sha} |")
    prov = report.get("provenance", {})
    git = prov.get("git") or {}
    lines += ["", "## Provenance", "",
              f"Created {prov.get('created')}, wall time {prov.get('wall_time_s')} s"
              + (f" ({prov['resumed_samples']} samples resumed)" if prov.get("resumed_samples") else "") + ".  ",
              f"git {git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}; "
              + ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items() if v) + ".", ""]
    return "\n".join(lines)


def method_flags(report: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per method, the degenerate-output flags of its diagnostics (methods without any left out)."""
    return {m: row["diagnostics"]["flags"] for m, row in report["methods"].items()
            if (row.get("diagnostics") or {}).get("flags")}


def flags_markdown(report: Mapping[str, Any]) -> list[str]:
    if not any("diagnostics" in row for row in report["methods"].values()):
        return []
    flagged = method_flags(report)
    lines = ["", "## Output checks", "", "A method is flagged when at least half of its predictions are one text "
             "or equal another method's.", ""]
    if not flagged:
        return [*lines, "No method flagged."]
    return [*lines, *(f"- **{m}**: {flag}" for m, flags in flagged.items() for flag in flags)]


def _md_block(text: str) -> str:
    """Text inside one Markdown table cell: escaped, its lines joined with <br>."""
    return "<code>" + html.escape(text).replace("|", "&#124;").replace("\n", "<br>") + "</code>"


def examples_markdown(report: Mapping[str, Any]) -> list[str]:
    examples = report.get("examples") or []
    if not examples:
        return []
    methods = list(report["methods"])
    lines = ["", "## Examples", "", f"The first {len(examples)} transitions of split `{report['benchmark']['split']}`: "
             "the input's last lines, the true action and next state, and each method's predictions "
             "(long texts cut; samples.jsonl has them whole)."]
    for ex in examples:
        lines += ["", f"### #{ex['index']} (episode {ex['episode_id']}, step {ex['step']})", "",
                  "| | text |", "|---|---|",
                  f"| input (last lines) | {_md_block(ex['context'])} |",
                  f"| true action | {_md_block(ex['action'])} |",
                  f"| true next state | {_md_block(ex['next_state'])} |"]
        for m in methods:
            prediction = ex["predictions"].get(m) or {}
            lines += [f"| {m} FWM | {_md_block(prediction.get('fwm') or '')} |",
                      f"| {m} IDM | {_md_block(prediction.get('idm') or '')} |"]
    return lines


def grid_markdown(report: Mapping[str, Any]) -> list[str]:
    """The image grid as a Markdown table of images linked from the run folder."""
    grid = (report.get("images") or {}).get("grid") or []
    if not grid:
        return []
    methods = list(report["methods"])
    lines = ["", "## Predicted images", "", f"The first {len(grid)} transitions of split `{report['benchmark']['split']}` "
             "(PNG files in the run folder).",
             "", "| # | action | source | truth | " + " | ".join(methods) + " |", "|---" * (4 + len(methods)) + "|"]
    for row in grid:
        cells = [f"![source]({row['source']})", f"![truth]({row['truth']})"]
        cells += [f"![{m}]({row['predictions'][m]})" if row["predictions"].get(m) else "-" for m in methods]
        action = str(row.get("action") or "").replace("|", "\\|")
        lines.append(f"| {row['index']} | {action} | " + " | ".join(cells) + " |")
    return lines


# ------------------------------------------------------------------ HTML with inline SVG


def bar_chart_svg(name: str, rows: list[tuple[str, float, float | None]], scale: str) -> str:
    """One metric's horizontal bars (one per method) with ±1 standard-error whiskers, as an inline SVG."""
    from .figures import hbars, inline_svg, new_figure

    fig = new_figure(5.5, 0.75 + 0.3 * len(rows))
    ax = fig.subplots()
    methods, values, errors = (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
    hbars(ax, methods, values, errors, [colour(m) for m in methods],
          [fmt_value(v, scale) + (f" ± {fmt_value(s, scale)}" if s else "") for v, s in zip(values, errors, strict=True)])
    ax.set_title(name, loc="left", fontsize=10, fontweight="bold", parse_math=False)
    return inline_svg(fig, name)


def _table_html(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}code{background:#f4f4f4;padding:1px 4px}
.charts{display:flex;flex-wrap:wrap;gap:1em}.examples td{text-align:left}
pre.ex{white-space:pre-wrap;word-break:break-word;margin:0;max-width:900px;font-size:12px}.grid td{text-align:center;vertical-align:middle}svg{font-size:12px;font-family:inherit}"""


def png_data_uri(path: Path) -> str:
    """A PNG as a data: URI (the HTML card stays one file); a missing or non-PNG file is a DataError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"image of the card's grid cannot be read ({exc.strerror or exc})", path=path) from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DataError("image of the card's grid is not a PNG file; rerun the same `swirl-eval run` to "
                        "write it again", path=path)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def grid_html(report: Mapping[str, Any], folder: Path | None) -> list[str]:
    """Source / truth / one column per method for the card's grid rows, as inline PNG thumbnails."""
    grid = (report.get("images") or {}).get("grid") or []
    if not grid:
        return []
    esc = html.escape
    if folder is None:
        return ["<h2>Predicted images</h2><p>(render the card from its run folder to see the images)</p>"]
    methods = list(report["methods"])

    def img(path: str | None, alt: str) -> str:
        if not path:
            return "-"
        return (f'<img src="{png_data_uri(folder / path)}" alt="{esc(alt)}" width="128" height="128" '
                'style="image-rendering:pixelated">')

    headers = ["#", "action", "source", "truth", *methods]
    body = []
    for row in grid:
        cells = [str(row["index"]), esc(str(row.get("action") or "")), img(row["source"], "source"),
                 img(row["truth"], "truth"), *(img(row["predictions"].get(m), m) for m in methods)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return [f"<h2>Predicted images</h2><p>The first {len(grid)} transitions of the split: the source image, the "
            "true next image and each method's decoded prediction.</p>",
            f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>']


def examples_html(report: Mapping[str, Any]) -> list[str]:
    examples = report.get("examples") or []
    if not examples:
        return []
    esc, methods = html.escape, list(report["methods"])
    pre = lambda text: f"<pre class=ex>{esc(text or '')}</pre>"  # noqa: E731
    parts = [f"<h2>Examples</h2><p>The first {len(examples)} transitions of the split: the input's last lines, the "
             "true action and next state, and each method's predictions (long texts cut; samples.jsonl has them "
             "whole).</p>"]
    for ex in examples:
        rows = [("input (last lines)", ex["context"]), ("true action", ex["action"]),
                ("true next state", ex["next_state"])]
        for m in methods:
            prediction = ex["predictions"].get(m) or {}
            rows += [(f"{m} FWM", prediction.get("fwm")), (f"{m} IDM", prediction.get("idm"))]
        body = "".join(f"<tr><th>{esc(label)}</th><td>{pre(text)}</td></tr>" for label, text in rows)
        parts.append(f"<h3>#{ex['index']} (episode {esc(str(ex['episode_id']))}, step {ex['step']})</h3>"
                     f'<table class="examples">{body}</table>')
    return parts


def render_html(report: Mapping[str, Any], folder: str | Path | None = None) -> str:
    """The card as one HTML file; with the run `folder`, the image grid's PNGs are inlined."""
    bench, names = report["benchmark"], metric_names(report)
    esc = html.escape
    charts = []
    for name in names:
        rows = [(m, r["metrics"][name]["value"], r["metrics"][name]["stderr"]) for m, r in report["methods"].items()
                if name in r["metrics"] and r["metrics"][name]["value"] is not None]
        charts.append(bar_chart_svg(name, rows, _scale(report, name)))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Report card: {esc(bench['name'])}</title><style>{STYLE}</style></head><body>",
             f"<h1>Report card: {esc(bench['name'])}</h1>",
             f"<p>Benchmark <b>{esc(bench['name'])}</b> v{esc(str(bench['version']))}, split "
             f"<code>{esc(bench['split'])}</code>, {bench['n_transitions']} transitions, data "
             f"<code>{esc(bench['data_hash'])}</code>. Seeds: "
             + esc(", ".join(f"{k} {v}" for k, v in report["seeds"].items())) + ".</p>"]
    if bench.get("load_problems"):
        found = bench["load_problems"]
        parts.append(f"<p><b>Data warning:</b> the loader skipped {found['count']} damaged record(s); first:</p><ul>"
                     + "".join(f"<li><code>{esc(line)}</code></li>" for line in found["first"]) + "</ul>")
    if report.get("command"):
        parts.append(f"<p>Reproduce: <code>{esc(report['command'])}</code></p>")
    headers, rows = metric_rows(report)
    parts += ["<h2>Metrics</h2><p>Value ± standard error (bootstrap over samples for corpus metrics, analytic for "
              f"means); <i>method vs {REFERENCE_METHOD}</i>: relative and (absolute) difference. Bars show ±1 "
              "standard error.</p>", _table_html(headers, rows), '<div class="charts">', *charts, "</div>"]
    flagged = method_flags(report)
    if any("diagnostics" in row for row in report["methods"].values()):
        parts.append("<h2>Output checks</h2><p>A method is flagged when at least half of its predictions are one "
                     "text or equal another method's.</p>")
        parts.append("<ul>" + "".join(f"<li><b>{esc(m)}</b>: {esc(flag)}</li>" for m, flags in flagged.items()
                                      for flag in flags) + "</ul>" if flagged else "<p>No method flagged.</p>")
    parts += examples_html(report)
    parts += grid_html(report, Path(folder) if folder is not None else None)
    models = [[m, str(i.get("model")), str(i.get("checkpoint") or "-"), str(i.get("sha256") or "-")]
              for m, i in report["models"].items()]
    parts += ["<h2>Models</h2>", _table_html(["method", "model", "checkpoint", "sha256"], models)]
    prov = report.get("provenance", {})
    parts += ["<h2>Provenance</h2>", f"<pre>{esc(json.dumps(prov, indent=2))}</pre>", "</body></html>", ""]
    return "\n".join(parts)


def write_report(report: Mapping[str, Any], output_dir: str | Path) -> None:
    """report.json, report.md and report.html, each written atomically."""
    from swirl_envs.fileio import dumps_json, write_atomic

    out = Path(output_dir)
    validate_report(report, where=out / "report.json")
    write_atomic(out / "report.json", dumps_json(report))
    write_atomic(out / "report.md", render_markdown(report))
    write_atomic(out / "report.html", render_html(report, out))


# ------------------------------------------------------------------ terminal


def render_console(report: Mapping[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    bench = report["benchmark"]
    headers, rows = metric_rows(report)
    table = Table(title=f"{bench['name']} v{bench['version']} ({bench['split']}, n={bench['n_transitions']})")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", style="bold" if i == 0 else None)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for method, flags in method_flags(report).items():
        for flag in flags:
            console.print(f"[yellow]flag[/] {method}: {flag}")
