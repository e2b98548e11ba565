"""`make loadtest`: a bounded Locust run of realistic users, then an audit of the books.

    python -m loadtests.loadtest                        # a server on a temporary database
    python -m loadtests.loadtest --duration 300 --users 300
    python -m loadtests.loadtest --host http://127.0.0.1:8000 --admin-token "$ADMIN_TOKEN"

Without --host it starts `concert-queue serve` on a fresh SQLite file (admission 50 a second,
holds of 15 s so some lapse during the run) and puts a 20-date concert on sale; with --host it
loads a running server (127.0.0.1 only) and audits it with the admin token. Locust runs
headless for --duration seconds and stops by itself; its CSV files and HTML report go to
--out (loadtests/results/loadtest_*.csv, loadtest.html). Then the audit (loadtests.audit)
runs through the admin API, a one-screen summary is printed, and the exit status is non-zero
if the audit failed (or Locust could not run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import anyio
import httpx

from loadtests.audit import Audit, audit
from loadtests.figures import RESULTS
from loadtests.server_process import ROOT, ServerProcess
from loadtests.service_client import put_on_sale

HOLD_SECONDS = 15
LOCAL_ENV = {
    "ADMIT_BATCH": "50",
    "ADMIT_INTERVAL_SECONDS": "1",
    "ACTIVE_TTL_SECONDS": "300",
    "HOLD_SECONDS": str(HOLD_SECONDS),
    "SEATS_PER_DATE": "50",
    "MAX_HOLDS_PER_USER": "4",
}
CONCERT_PREFIX = "rush"
SETTLE_SECONDS = 2.0  # after Locust stops: let in-flight checkouts finish before the audit


def run_locust(
    host: str, args: argparse.Namespace, env: dict[str, str], out: Path, log: Path
) -> dict[str, Any]:
    prefix = out / "loadtest"
    command = [
        sys.executable, "-m", "locust",
        "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--only-summary",
        "--host", host,
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{args.duration}s", "--stop-timeout", "0",
        "--csv", str(prefix), "--html", str(out / "loadtest.html"),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    with log.open("wb") as sink:
        done = subprocess.run(
            command,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=args.duration + 180,
        )
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"Locust did not run (exit {done.returncode}):\n{tail}")
    with stats.open() as file:
        rows = list(csv.DictReader(file))
    return {"exit_code": done.returncode, "rows": rows}


def summary(
    host: str, args: argparse.Namespace, rows: list[dict[str, str]], result: Audit, out: Path
) -> str:
    lines = [
        f"Load test: {args.duration} s, {args.users} users "
        f"(rush 6 : hot seat 2 : queue flood 2) against {host}",
    ]
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    http = [r for r in rows if r["Type"] not in ("CONTENTION", "WS", "")]
    if total is not None:
        lines.append(
            f"requests {total['Request Count']} ({float(total['Requests/s']):.1f}/s), "
            f"failures {total['Failure Count']}"
        )
    lines.append(f"{'route':<48}{'reqs':>7}{'req/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}{'fail':>6}")
    for row in http:
        lines.append(
            f"{row['Type'] + ' ' + row['Name']:<48}{row['Request Count']:>7}"
            f"{float(row['Requests/s']):>8.1f}{row['50%']:>7}{row['95%']:>7}{row['99%']:>7}"
            f"{row['Failure Count']:>6}"
        )
    contention = [f"{r['Name']} {r['Request Count']}" for r in rows if r["Type"] == "CONTENTION"]
    lines.append("contention (not failures): " + (", ".join(contention) or "none"))
    for row in rows:
        if row["Type"] == "WS":
            lines.append(
                f"websocket {row['Name']}: {row['Request Count']} "
                f"(p50 {row['50%']} ms, p95 {row['95%']} ms, failed {row['Failure Count']})"
            )
    lines.append(
        f"audit: {'PASS' if result.ok else 'FAIL'} "
        f"({result.sold} seats sold, {result.payments} payments, revenue {result.revenue})"
    )
    lines += result.lines()
    lines.append(f"reports: {out / 'loadtest_stats.csv'}, {out / 'loadtest.html'}")
    return "\n".join(lines)


def local_server(directory: Path, admin_token: str) -> ServerProcess:
    return ServerProcess("web", directory, {**LOCAL_ENV, "ADMIN_TOKEN": admin_token})


async def put_concert_on_sale(host: str, admin_token: str, dates: int) -> str:
    async with httpx.AsyncClient(timeout=60) as client:
        on_sale = await put_on_sale(
            client, host, admin_token, prefix=CONCERT_PREFIX, dates=dates, seats=50, price=75
        )
    return on_sale[0].concert_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--users", type=int, default=120)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--host", help="a running server (http://127.0.0.1:PORT)")
    parser.add_argument("--admin-token", default=os.environ.get("ADMIN_TOKEN", ""))
    parser.add_argument(
        "--dates", type=int, default=20, help="dates of a concert put on sale first (0: none)"
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=float(os.environ.get("HOLD_SECONDS", "300")),
        help="the running server's HOLD_SECONDS (with --host)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the reports go")
    parser.add_argument("--summary-json", type=Path, help="also write the audit as JSON here")
    args = parser.parse_args()
    if args.host and urlparse(args.host).hostname not in ("127.0.0.1", "localhost"):
        parser.error("load only 127.0.0.1")
    if args.host and not args.admin_token:
        parser.error("--admin-token (or ADMIN_TOKEN) is needed to audit a running server")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        directory = Path(tmp)
        admin_token = args.admin_token or secrets.token_urlsafe(16)
        server = None if args.host else local_server(directory, admin_token)
        try:
            if server is not None:
                server.start()
            host = args.host or (server.url if server else "")
            hold_seconds = HOLD_SECONDS if server is not None else args.hold_seconds
            concert = ""  # --dates 0: buy from the first concert the server lists
            if args.dates > 0:
                concert = anyio.run(put_concert_on_sale, host, admin_token, args.dates)
            paid_file = directory / "paid.json"
            env = {
                "LOADTEST_CONCERT": concert,
                "LOADTEST_HOLD_SECONDS": str(hold_seconds),
                "LOADTEST_PAID_FILE": str(paid_file),
            }
            print(f"Locust: {args.users} users for {args.duration} s on {host} ...", flush=True)
            locust = run_locust(host, args, env, args.out, directory / "locust.log")
            time.sleep(SETTLE_SECONDS)
            paid = json.loads(paid_file.read_text()) if paid_file.exists() else []
            result = audit(host, admin_token, paid)
        finally:
            if server is not None:
                server.stop()
    print(summary(host, args, locust["rows"], result, args.out))
    if args.summary_json:
        args.summary_json.write_text(
            json.dumps(
                {
                    "ok": result.ok,
                    "checks": [c.__dict__ for c in result.checks],
                    "sold": result.sold,
                    "payments": result.payments,
                    "rows": locust["rows"],
                },
                indent=2,
            )
        )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
