"""A short `make soak` in the suite, on SQLite and on PostgreSQL, so the soak never rots and
every CI run kills a server under load twice per database and audits what it left.

It runs the real command (`python -m loadtests.soak`) for two cycles of a few seconds and
reads its JSON summary: every cycle must be free of violations. Nothing here is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import postgres_base_url

ROOT = Path(__file__).resolve().parents[2]
CYCLES = 2
SECONDS = 3


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_short_soak_survives_sigkill_under_load_with_no_violation(
    database: str, tmp_path: Path
) -> None:
    env = dict(os.environ)
    if database == "postgresql":
        base = postgres_base_url()
        if base is None:
            pytest.skip("DATABASE_URL_TEST is not set")
        env["DATABASE_URL_TEST"] = base
    summary_path = tmp_path / "soak.json"
    command = [sys.executable, "-m", "loadtests.soak", "--database", database]
    command += ["--cycles", str(CYCLES), "--seconds", str(SECONDS), "--buyers", "8"]
    command += ["--summary-json", str(summary_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    cycles = json.loads(summary_path.read_text())["cycles"]
    assert len(cycles) == CYCLES
    for cycle in cycles:
        assert cycle["violations"] == [], done.stdout
        assert cycle["payments"] > 0, done.stdout
        assert cycle["recovery_seconds"] > 0
