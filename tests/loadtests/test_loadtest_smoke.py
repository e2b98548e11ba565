"""A short `make loadtest` in the suite, so the locustfile and the audit never rot.

It starts a real server, runs the Locust users for a few seconds and audits the books, exactly
as `make loadtest` does, only smaller. Nothing here is timed: it checks what happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 12


def test_a_short_rush_buys_seats_and_passes_the_audit(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    command = [sys.executable, "-m", "loadtests.loadtest", "--duration", str(SECONDS)]
    command += ["--users", "24", "--spawn-rate", "24", "--dates", "4"]
    command += ["--out", str(tmp_path), "--summary-json", str(summary_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 240)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["ok"], summary["checks"]
    assert summary["payments"] > 0, "no journey reached a payment"
    rows = {(row["Type"], row["Name"]): row for row in summary["rows"]}
    for route in ("/api/queue/tokens", "/api/reservations", "/api/payments"):
        assert int(rows[("POST", route)]["Request Count"]) > 0, route
    assert int(rows[("WS", "wait for queue.admitted")]["Request Count"]) > 0
    assert rows[("", "Aggregated")]["Failure Count"] == "0", done.stdout
    assert (tmp_path / "loadtest_stats.csv").exists()
    assert (tmp_path / "loadtest.html").exists()
