"""SIGKILL an engine process at seeded random moments and check what it left on disk.

Each round starts `crash_engine` on the same database, lets it acknowledge a seeded random
number of commands, kills it with SIGKILL (sometimes a few milliseconds later, to land between
acknowledgements), then recovers the engine in this process and checks:

- every acknowledged command is there (tokens, charges, holds, releases, payments);
- nothing unacknowledged is half-applied: no checkout left started, no seat left locked;
- no double sale: every sold seat belongs to exactly one completed payment, and back;
- money is conserved: charges = balances + payments, and a debit exists iff a payment completed.

`CRASH_ROUNDS` (default 10 per database) and `CRASH_SEED` make longer or other runs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from engine.domain.checkout import COMPLETED, STARTED
from engine.domain.seat_map import CHECKOUT, HELD, SOLD, Seat
from engine.system import EngineSystem
from persistence import open_store
from tests.persistence.crash_engine import CONFIG

pytestmark = pytest.mark.anyio

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("CRASH_SEED", "1337"))
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ledger:
    """What the killed processes began, acknowledged and refused, in order, over every round."""

    begun: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: dict[str, int] = field(default_factory=dict)  # command id -> line number

    def take(self, line: dict[str, Any]) -> None:
        at = len(self.begun) + len(self.finished_at)
        if "begin" in line:
            self.begun[line["begin"]["id"]] = line["begin"]
        elif "ack" in line:
            self.acked[line["ack"]] = {**self.begun[line["ack"]], **line}
            self.finished_at[line["ack"]] = at
        elif "refused" in line:
            self.finished_at[line["refused"]] = at

    def acks(self, op: str) -> list[dict[str, Any]]:
        return [a for a in self.acked.values() if a["op"] == op]

    def may_have_ended(self, hold: dict[str, Any]) -> bool:
        """Whether a command sent may have ended this acknowledged hold: a release or payment
        naming it, or a payment of the same user still running when the hold was acknowledged
        (a completed payment frees the buyer's other holds)."""
        held_at = self.finished_at[hold["id"]]
        for command in self.begun.values():
            if hold["rid"] == command.get("rid") or hold["rid"] in command.get("rids", ()):
                return True
            paying = command["op"] == "pay" and command["user"] == hold["user"]
            if paying and self.finished_at.get(command["id"], held_at + 1) > held_at:
                return True
        return False


async def kill_at_random_moment(url: str, round_no: int, rng: random.Random) -> list[str]:
    """Run one engine process until a seeded moment, SIGKILL it, return its complete lines."""
    kill_after_acks = rng.randint(1, 120)
    then_wait = rng.choice([0.0, 0.0, 0.001, 0.004, 0.015])
    lines: list[str] = []
    acks = 0
    with tempfile.TemporaryFile() as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "tests.persistence.crash_engine", url, str(SEED), str(round_no)],
            cwd=REPO,
            stderr=stderr,
        )
        try:
            assert process.stdout is not None
            stream = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(60):
                while acks < kill_after_acks:
                    try:
                        line = (await stream.receive_until(b"\n", 1 << 20)).decode()
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        stderr.seek(0)
                        pytest.fail(f"the engine process died: {stderr.read().decode()[-3000:]}")
                    lines.append(line)
                    acks += '"ack"' in line
                await anyio.sleep(then_wait)
                process.send_signal(signal.SIGKILL)
                rest = b""
                try:
                    while True:
                        rest += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
                rest = stream.buffer + rest
                # A line cut by the kill was never fully written: it acknowledges nothing.
                lines += rest.decode(errors="replace").split("\n")[:-1]
                assert await process.wait() == -signal.SIGKILL
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
    return lines


def seat_of(system: EngineSystem, rid: str) -> Seat | None:
    concert, date, _number = rid.split(".")[:3]
    actor = system.date_actor(concert, date)
    assert actor is not None, rid
    return actor.state.find(rid)


def check_acknowledged(system: EngineSystem, ledger: Ledger) -> None:
    room = system.room.state
    for join in ledger.acks("join"):
        seq = room.seq_for(join["token"])
        assert seq is not None and room.user_of[seq] == join["user"], join
    for charge in ledger.acks("charge"):
        wallet = system.wallet_actor(charge["user"]).state
        assert wallet.charges[(charge["user"], charge["key"])][0] == charge["amount"], charge
    for pay in ledger.acks("pay"):
        payment = system.checkout_actor(pay["user"]).state.payments[pay["pid"]]
        assert payment.status == COMPLETED and payment.amount == pay["amount"], pay
        for rid in pay["rids"]:
            seat = seat_of(system, rid)
            assert seat is not None and seat.status == SOLD, (pay, seat)
            assert seat.payment_id == pay["pid"] and seat.user_id == pay["user"], (pay, seat)
    for hold in ledger.acks("hold"):
        seat = seat_of(system, hold["rid"])
        if not ledger.may_have_ended(hold):
            assert seat is not None and seat.status == HELD, (hold, seat)
            assert seat.user_id == hold["user"], (hold, seat)
    for release in ledger.acks("release"):
        assert seat_of(system, release["rid"]) is None, release


def check_invariants(system: EngineSystem) -> None:
    payments = {p.payment_id: p for c in system.checkouts for p in c.state.payments.values()}
    assert not [p for p in payments.values() if p.status == STARTED], "unresolved checkout"
    completed = {pid: p for pid, p in payments.items() if p.status == COMPLETED}
    debits: dict[str, tuple[str, int]] = {}
    charged = balances = 0
    for wallet in (w.state for w in system.wallets):
        assert wallet.charged_total == sum(wallet.balances.values()) + wallet.debited_total
        assert all(balance >= 0 for balance in wallet.balances.values())
        debits |= wallet.debits
        charged += wallet.charged_total
        balances += sum(wallet.balances.values())
    assert charged == balances + sum(p.amount for p in completed.values()), "money not conserved"
    assert set(debits) == set(completed), "a debit without a sale, or a sale without a debit"
    sold_value: dict[str, int] = {}
    for actor in system.date_actors():
        for seat in actor.state.seats:
            assert seat.status != CHECKOUT, f"seat {seat} is still locked"
            if seat.status == SOLD:
                payment = completed.get(seat.payment_id or "")
                assert payment is not None and payment.user_id == seat.user_id, seat
                assert seat.reservation_id in payment.reservation_ids, seat
                sold_value[payment.payment_id] = (
                    sold_value.get(payment.payment_id, 0) + actor.state.price
                )
    for pid, payment in completed.items():
        assert debits[pid] == (payment.user_id, payment.amount)
        assert sold_value.get(pid, 0) == payment.amount, f"{pid} paid for seats it did not get"


async def test_acknowledged_commands_survive_sigkill_at_random_moments(database_url: str) -> None:
    rng = random.Random(SEED)
    ledger = Ledger()
    for round_no in range(ROUNDS):
        for line in await kill_at_random_moment(database_url, round_no, rng):
            ledger.take(json.loads(line))
        async with open_store(database_url) as store:
            system = EngineSystem(store.journal, config=CONFIG, catalog=await store.catalog())
            async with system.running():
                check_acknowledged(system, ledger)
                check_invariants(system)
    assert len(ledger.acks("pay")) > 0 and len(ledger.acks("hold")) > 0
