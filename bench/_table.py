"""Figures as rows: the median of several runs, their spread, and a target where the issue sets one."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100): a value that was actually measured."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Row:
    """One figure: a value per run; `limit` makes it a target: at most the limit, strictly under it (`below`) or at
    least the limit (`at_least`)."""

    key: str
    label: str
    unit: str
    runs: Sequence[float]
    limit: float | None = None
    below: bool = False  # True: strictly under `limit` ("under 12 KB"); False: at most `limit`
    at_least: bool = False  # True: `limit` or more ("at least 20x faster")

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return ""
        if self.at_least:
            met = self.median >= self.limit
        else:
            met = self.median < self.limit if self.below else self.median <= self.limit
        return "ok" if met else "MISS"

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        sign = "≥" if self.at_least else "<" if self.below else "≤"
        return f"{sign} {_number(self.limit, self.unit)}"


def _number(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "":
        return f"{value:g}"
    if unit == "x":
        return f"{value:.2f}"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} {unit}".rstrip()


def table(rows: Sequence[Row]) -> str:
    """A Markdown table, ready to paste: median, spread (min–max over the runs), target, verdict."""
    cells: list[Callable[[Row], str]] = [
        lambda r: r.key,
        lambda r: r.label,
        lambda r: _number(r.median, r.unit),
        lambda r: "" if len(r.runs) < 2 else f"{_number(min(r.runs), r.unit)} – {_number(max(r.runs), r.unit)}",
        lambda r: str(len(r.runs)),
        lambda r: r.target,
        lambda r: r.verdict,
    ]
    header = ["#", "figure", "median", "spread (min – max)", "runs", "target", ""]
    body = [[cell(r) for cell in cells] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])
