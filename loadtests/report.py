"""Gather every benchmark's results into loadtests/results/REPORT.md, with a latency chart.

    python -m loadtests.report      # after the benchmarks (make bench runs it last)

Reads engine.json, journal.json, http.json, ws.json and cluster.json from loadtests/results/
(a missing one is reported as not run), prints each figure with its target, verdict and its
ratio to the baseline measured in the same run, names the machine, and draws hold latency
percentiles against offered load (hold-latency.png) from the HTTP benchmark's open-loop sweep.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

from loadtests.bench_http import LAPSING
from loadtests.figures import RESULTS, Figure, fmt

CHART = "hold-latency.png"

SECTIONS = (
    (
        "engine",
        "Engine (issue #2)",
        "python -m loadtests.bench_engine",
        "(a) bare anyio request/reply",
    ),
    (
        "journal",
        "Journal (persistence)",
        "python -m loadtests.bench_journal",
        "engine charges/s, MemoryJournal (baseline)",
    ),
    ("http", "HTTP (issue #4)", "python -m loadtests.bench_http", "bare Starlette JSON endpoint"),
    ("ws", "Websocket fan-out (issue #4)", "python -m loadtests.bench_ws", ""),
    (
        "cluster",
        "Cluster beside the single process (issue #11)",
        "python -m loadtests.bench_cluster",
        "single process: holds/s, spread over every seat",
    ),
)


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def figures_of(data: dict[str, Any]) -> list[Figure]:
    return [
        Figure(f["name"], f["value"], f["unit"], f["target"], f["met"], f["note"])
        for f in data["figures"]
    ]


def table(figures: list[Figure], baseline: str) -> str:
    base = next((f for f in figures if f.name == baseline), None)
    lines = [
        "| figure | value | x baseline | target | verdict | note |",
        "|---|---:|---:|---|---|---|",
    ]
    for f in figures:
        ratio = ""
        if base is not None and f is not base and f.unit.endswith("/s") and base.value:
            ratio = f"{f.value / base.value:.2f}"
        elif f is base:
            ratio = "1 (baseline)"
        value = f"{fmt(f.value)} {f.unit}".strip()
        lines.append(f"| {f.name} | {value} | {ratio} | {f.target} | {f.verdict} | {f.note} |")
    return "\n".join(lines)


def chart(http: dict[str, Any], path: Path) -> bool:
    """Hold latency p50/p90/p99 against offered load; False if there is no sweep."""
    sweep = sorted(http["details"].get("sweep", []), key=lambda p: p["offered_rate"])
    if not sweep:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offered = [p["offered_rate"] for p in sweep]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^-")):
        ax.plot(offered, [p["latency_ms"][name] for p in sweep], style, label=name)
    ceiling = next(
        (f["value"] for f in http["figures"] if f["name"].endswith(LAPSING)),
        None,
    )
    if ceiling:
        ax.axvline(ceiling, color="grey", linestyle=":", label="closed-loop ceiling")
    ax.axhline(50, color="red", linestyle="--", linewidth=0.8, label="50 ms target")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (holds/s, open loop, 64 connections)")
    ax.set_ylabel("POST /api/reservations latency (ms)")
    ax.set_title("Hold latency against offered load (spread, holds lapsing after 2 s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=RESULTS,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_lines(machine: dict[str, Any]) -> list[str]:
    return [
        f"- CPU: {machine['cpu']}, {machine['logical_cpus']} logical CPUs at "
        f"{machine['cpu_mhz']} MHz; memory {machine['memory_gb']} GB",
        f"- {machine['implementation']} {machine['python']} on {machine['os']}",
        "- shared with the other engineers' test runs: absolute rates swing by about 30% "
        "between runs; each ratio is measured side by side in one run",
    ]


def render() -> str:
    loaded = {name: load(name) for name, *_ in SECTIONS}
    machine = next((d["machine"] for d in loaded.values() if d is not None), None)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` ({now}, commit {commit()}). Reproduce one part with the "
        "command under its heading; `make bench` runs them all and writes this file.",
        "",
        "## Machine",
        "",
        *(machine_lines(machine) if machine else ["- unknown (no results)"]),
        "",
    ]
    verdicts = []
    for name, title, command, baseline in SECTIONS:
        data = loaded[name]
        lines += [f"## {title}", "", f"`{command}`", ""]
        if data is None:
            lines += ["Not run (no results file).", ""]
            continue
        figures = figures_of(data)
        verdicts += [(title, f) for f in figures if f.met is not None]
        lines += [table(figures, baseline), ""]
        if not baseline:
            lines += ["No in-run baseline: the targets are absolute delivery deadlines.", ""]
        if name == "http" and chart(data, RESULTS / CHART):
            lines += [f"![hold latency against offered load]({CHART})", ""]
        workload = data["details"].get("workload")
        if workload:
            lines += [f"- ({k}) {v}" for k, v in workload.items()] + [""]
    passed = sum(1 for _, f in verdicts if f.met)
    summary = [
        "## Targets",
        "",
        f"{passed} of {len(verdicts)} targets met in this run.",
        "",
        "| benchmark | figure | value | target | verdict |",
        "|---|---|---:|---|---|",
        *(
            f"| {title} | {f.name.strip()} | {fmt(f.value)} {f.unit} | {f.target} | {f.verdict} |"
            for title, f in verdicts
        ),
        "",
    ]
    index = lines.index("## Machine")
    return "\n".join(lines[:index] + summary + lines[index:]) + "\n"


def main() -> None:
    text = render()
    path = RESULTS / "REPORT.md"
    path.write_text(text)
    print(text)
    print(f"written {path}")


if __name__ == "__main__":
    main()
