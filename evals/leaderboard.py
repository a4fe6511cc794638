"""Leaderboards (`leaderboards/<bench>.json`) and the regression check of a fresh report card against them.

A leaderboard holds rows of the report card's metric shape. A row with a `reference` field is quoted
from a publication: it is shown, never checked against. Any other row was measured by this project and
carries the `command` that reproduces it (and, for scripts/check_leaderboards.sh, the `report` path that
command writes and `ci: true` when it runs on a CPU in CI time).

The check: for each measured row whose method is in the report, every metric the two share must satisfy

    value >= row_value - max(abs_tolerance, k * sqrt(row_stderr^2 + stderr^2))

(for metrics whose card `metric_info` says `higher_is_better: false`, such as fwm/l1, the mirror image
value <= row_value + margin). Rows measured on another benchmark version or data hash are
refused, not compared. Tolerance and k come from the CLI, else the leaderboard's `check` block, else
the defaults below.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swirl_envs.errors import DataError, SwirlError
from swirl_envs.fileio import read_json

from .report import raise_schema_error

DEFAULT_ABS_TOLERANCE = 0.0
DEFAULT_K = 2.0
SCHEMA_PATH = Path(__file__).parent / "schema" / "leaderboard.schema.json"

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class RefusedError(SwirlError):
    """Two records are not comparable (other benchmark, version or data); exit code 3."""


def validate_leaderboard(board: Any, *, where: str | Path = "leaderboard") -> None:
    if not isinstance(board, dict) or not isinstance(board.get("rows"), list) or "benchmark" not in board:
        raise DataError("not a leaderboard (needs 'benchmark' and a 'rows' list)", path=where)
    try:
        import jsonschema
    except ImportError:
        return
    raise_schema_error(jsonschema, json.loads(SCHEMA_PATH.read_text()), board, "leaderboard", where)


def load_leaderboard(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    board = read_json(path, "leaderboard")
    validate_leaderboard(board, where=path)
    return board


def measured_rows(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [row for row in board["rows"] if "reference" not in row]


@dataclass
class Comparison:
    method: str
    metric: str
    reference: float
    reference_stderr: float | None
    value: float
    stderr: float | None
    margin: float
    higher_is_better: bool = True

    @property
    def delta(self) -> float:
        return self.value - self.reference

    @property
    def ok(self) -> bool:
        if not self.higher_is_better:
            return self.value <= self.reference + self.margin
        return self.value >= self.reference - self.margin


@dataclass
class CheckResult:
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.regressions else EXIT_OK


def _tolerance(setting: Any, metric: str) -> float:
    if isinstance(setting, Mapping):
        return float(setting.get(metric, setting.get("default", DEFAULT_ABS_TOLERANCE)))
    return float(setting)


def check(report: Mapping[str, Any], board: Mapping[str, Any], *, abs_tolerance: float | None = None,
          k: float | None = None) -> CheckResult:
    """Compare a report card with a leaderboard's measured rows; raise RefusedError when not comparable."""
    bench = report["benchmark"]
    if board["benchmark"] != bench["name"]:
        raise RefusedError(f"leaderboard is for {board['benchmark']!r}, the report for {bench['name']!r}")
    stored = board.get("check") or {}
    tol_setting = abs_tolerance if abs_tolerance is not None else stored.get("abs_tolerance", DEFAULT_ABS_TOLERANCE)
    k = float(k if k is not None else stored.get("k", DEFAULT_K))
    result = CheckResult()
    rows = measured_rows(board)
    if not rows:
        result.notes.append("the leaderboard has no measured rows (reference rows are never checked)")
    for row in rows:
        method = row["method"]
        if method not in report["methods"]:
            result.notes.append(f"row {method!r} ({row.get('model', '?')}): method not in the report, skipped")
            continue
        model = report["models"].get(method, {}).get("model")
        if row.get("model") is not None and model is not None and row["model"] != model:
            result.notes.append(f"row {method!r}: model {row['model']!r} differs from the report's {model!r}, skipped")
            continue
        version = row.get("benchmark_version", board.get("benchmark_version"))
        data_hash = row.get("data_hash", board.get("data_hash"))
        if version != bench["version"] or data_hash != bench["data_hash"]:
            difference = _data_difference(row, bench, version, data_hash)
            raise RefusedError(f"row {method!r} was measured on other data ({difference}); refusing to compare")
        current = report["methods"][method]["metrics"]
        for metric, ref in row["metrics"].items():
            now = current.get(metric)
            if now is None or now.get("value") is None or ref.get("value") is None:
                result.notes.append(f"{method} {metric}: not in the report, skipped")
                continue
            combined = math.sqrt((ref.get("stderr") or 0.0) ** 2 + (now.get("stderr") or 0.0) ** 2)
            margin = max(_tolerance(tol_setting, metric), k * combined)
            higher = report.get("metric_info", {}).get(metric, {}).get("higher_is_better", True)
            result.comparisons.append(Comparison(method, metric, ref["value"], ref.get("stderr"), now["value"],
                                                 now.get("stderr"), margin, higher))
    return result


def measured_row(report: Mapping[str, Any], method: str, *, command: str | None = None,
                 report_path: str | None = None, ci: bool = False) -> dict[str, Any]:
    """A leaderboard row for one method of a report card (what `swirl-eval check --record` writes)."""
    bench, model = report["benchmark"], report["models"][method]
    row: dict[str, Any] = {"method": method, "model": model["model"], "seeds": sorted(set(report["seeds"].values())),
                           "command": command or report.get("command"),
                           "benchmark_version": bench["version"], "data_hash": bench["data_hash"],
                           "split": bench["split"], "limit": bench["limit"],
                           "checkpoint_sha256": model.get("sha256"),
                           "metrics": report["methods"][method]["metrics"]}
    if report_path is not None:
        row["report"] = report_path
    row["ci"] = ci
    return row


def _data_difference(row: Mapping[str, Any], bench: Mapping[str, Any], version: Any, data_hash: Any) -> str:
    """Why a row's data differs from a report's, in the user's terms where the row says (split, limit)."""
    if version != bench["version"]:
        return f"benchmark version {version!r} != {bench['version']!r}"
    for key in ("split", "limit"):
        if key in row and row[key] != bench.get(key):
            return f"{key} {row[key]!r} != the report's {bench.get(key)!r}, so the data hash differs"
    return f"data hash {data_hash} != {bench['data_hash']}"


def record(board: dict[str, Any], report: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """Replace (or add) the measured rows of every (method, model) in the report; rows of other models (an
    experiment's, the previous defaults') and reference rows stay as they are."""
    if board["benchmark"] != report["benchmark"]["name"]:
        raise RefusedError(f"leaderboard is for {board['benchmark']!r}, the report for "
                           f"{report['benchmark']['name']!r}")
    new = [measured_row(report, m, **options) for m in report["methods"]]
    names = {(r["method"], r.get("model")) for r in new}
    kept = [r for r in board["rows"] if "reference" in r or (r["method"], r.get("model")) not in names]
    board = dict(board, rows=[*new, *kept])
    if not board.get("benchmark_version"):
        board["benchmark_version"] = report["benchmark"]["version"]
    if not board.get("data_hash"):
        board["data_hash"] = report["benchmark"]["data_hash"]
    return board


@dataclass
class Side:
    method: str
    metric: str
    a: Mapping[str, Any] | None
    b: Mapping[str, Any] | None

    @property
    def difference(self) -> float | None:
        if not self.a or not self.b or self.a.get("value") is None or self.b.get("value") is None:
            return None
        return self.b["value"] - self.a["value"]

    @property
    def significant(self) -> bool:
        """|B - A| beyond 1.96 combined standard errors (a rough two-sided 95% test)."""
        diff = self.difference
        if diff is None:
            return False
        combined = math.sqrt((self.a.get("stderr") or 0.0) ** 2 + (self.b.get("stderr") or 0.0) ** 2)
        return combined > 0 and abs(diff) > 1.96 * combined


def compare(a: Mapping[str, Any], b: Mapping[str, Any], *, force: bool = False) -> list[Side]:
    """Pair up every (method, metric) of two report cards; refuse cards of other benchmarks or data."""
    ba, bb = a["benchmark"], b["benchmark"]
    for key in ("name", "version", "split", "limit", "data_hash"):
        if ba.get(key) != bb.get(key) and not force:
            raise RefusedError(f"the cards differ in benchmark {key} ({ba.get(key)} != {bb.get(key)}); "
                               "pass --force to show them side by side anyway")
    from .report import metric_order

    methods = list(a["methods"]) + [m for m in b["methods"] if m not in a["methods"]]
    sides = []
    for method in methods:
        ma = a["methods"].get(method, {}).get("metrics", {})
        mb = b["methods"].get(method, {}).get("metrics", {})
        for metric in sorted(set(ma) | set(mb), key=metric_order):
            sides.append(Side(method, metric, ma.get(metric), mb.get(metric)))
    return sides
