"""Benchmark figures: one measured value with its target and verdict, percentiles, the machine.

Every benchmark of loadtests/ prints its figures as a markdown table and writes them as JSON
under loadtests/results/, so `make bench` can gather them into one report.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of a benchmark table.

    `target` is a human-readable goal (">= 0.5", "< 50 µs"); `met` is None for figures that are
    context (a baseline, a breakdown) rather than a goal.
    """

    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return ""
        return "PASS" if self.met else "MISS"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0..1) of values already sorted ascending."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def markdown_table(figures: Sequence[Figure]) -> str:
    lines = [
        "| figure | value | target | verdict | note |",
        "|---|---:|---|---|---|",
    ]
    for f in figures:
        value = f"{fmt(f.value)} {f.unit}".strip()
        lines.append(f"| {f.name} | {value} | {f.target} | {f.verdict} | {f.note} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    freq = psutil.cpu_freq()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "logical_cpus": os.cpu_count(),
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
    }


def write_results(name: str, figures: Sequence[Figure], details: dict[str, Any]) -> Path:
    """Write loadtests/results/<name>.json: the figures, the run's details and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "machine": machine(),
        "figures": [asdict(f) | {"verdict": f.verdict} for f in figures],
        "details": details,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def publish(
    name: str, figures: Sequence[Figure], details: dict[str, Any], *, quick: bool = False
) -> None:
    """Print the table and write `results/<name>.json`, unless this was a `--quick` run: a
    check of the harness whose figures must not replace a real run's."""
    print()
    print(markdown_table(figures))
    if quick:
        print("\n--quick: results not written")
        return
    path = write_results(name, figures, details)
    print(f"\nwritten {path}")
