"""Payments while the link to PostgreSQL fails: the real server behind a fault proxy.

The server (`python -m web serve`) runs on a fresh PostgreSQL schema reached through
`FaultProxy`. Buyers (loadtests.buyers) join, charge, hold and pay concurrently, every write
retried with its Idempotency-Key until an answer settles it. Meanwhile the link is cut, then
frozen, then dropped, each time just as a payment is on its way, and restored after a while.
Once every buyer has finished its round and every checkout has settled, the audit
(loadtests.audit) checks the books against what the buyers were told, and no request may have
waited longer than ANSWER_BOUND for its answer: a service whose database is down must say so
at once (503 with Retry-After), not hang.

FAULT_CUT_SECONDS and FAULT_STALL_SECONDS (freeze, drop) change how long each fault lasts (the
stalls last longer than ANSWER_BOUND, so a request that waits for the database is caught),
FAULT_ROUNDS how many times the three are injected, FAULT_SEED where in a checkout they land.
After each restore a probe measures how soon a write succeeds again (at most RESUME_BOUND).
"""

from __future__ import annotations

import functools
import os
import random
import time
from dataclasses import dataclass

import anyio
import anyio.to_thread
import httpx
import pytest
from sqlalchemy.engine import make_url

from loadtests.audit import Audit, audit, settle
from loadtests.buyers import Exchange, Ledger, Shop, overlapping, run_buyers
from loadtests.service_client import put_on_sale
from tests.api.server import ADMIN_TOKEN, Server, running_server
from tests.faults.proxy import FaultProxy
from tests.postgres import fresh_postgres_schema, postgres_base_url

BUYERS = 6
PRICE = 40
ANSWER_BOUND = 10.0  # seconds: any longer wait for an answer is a hang
CUT_SECONDS = float(os.environ.get("FAULT_CUT_SECONDS", "5"))
STALL_SECONDS = float(os.environ.get("FAULT_STALL_SECONDS", "12"))
ROUNDS = int(os.environ.get("FAULT_ROUNDS", "1"))
FAULTS = (("cut", CUT_SECONDS), ("freeze", STALL_SECONDS), ("drop", STALL_SECONDS)) * ROUNDS
RECOVERY_TIMEOUT = 60.0  # seconds after a restore for payments to go through again
PAYMENTS_BETWEEN_FAULTS = 3  # acknowledged after a restore before the next fault
LEVELS = ("WARNING", "ERROR", "CRITICAL")


RESUME_BOUND = 2.0  # seconds after a restore by which writes must succeed again
PROBE_EVERY = 0.05  # seconds between two writes of the probe after a restore


@dataclass(frozen=True, slots=True)
class Window:
    fault: str
    start: float
    end: float
    resumed: float | None = None  # seconds from the restore to the probe's first success


class Probe:
    """A buyer of its own that measures how soon after a restore a write succeeds again: a
    charge with a fresh key every PROBE_EVERY seconds, ignoring Retry-After."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.headers: dict[str, str] = {}
        self.charges = 0

    async def admitted(self) -> None:
        joined = await self.client.post(f"{self.url}/api/queue/tokens", json={"userId": "probe"})
        self.headers = {"Authorization": f"Bearer {joined.json()['token']}"}
        with anyio.fail_after(30):
            while True:
                me = await self.client.get(f"{self.url}/api/queue/tokens/me", headers=self.headers)
                if me.json()["status"] == "PROCESSING":
                    return
                await anyio.sleep(0.05)

    async def until_a_write_succeeds(self) -> float:
        """Seconds until a charge is acknowledged (bounded by RECOVERY_TIMEOUT)."""
        started = time.monotonic()
        with anyio.move_on_after(RECOVERY_TIMEOUT):
            while True:
                self.charges += 1
                headers = {**self.headers, "Idempotency-Key": f"probe-{self.charges}"}
                try:
                    answer = await self.client.post(
                        f"{self.url}/api/balance/charge", json={"amount": 1}, headers=headers
                    )
                    if answer.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await anyio.sleep(PROBE_EVERY)
        return time.monotonic() - started


def through(url: str, proxy: FaultProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    return make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(False)


async def payments_go_through(ledger: Ledger, restored: float | None = None) -> bool:
    """Whether, within RECOVERY_TIMEOUT, PAYMENTS_BETWEEN_FAULTS more payments are
    acknowledged and every request sent before the restore has settled. The second keeps
    each request to one fault: one retried through two long faults back to back would
    exceed the buyers' patience (`give_up_after`) with no fault of the service."""
    wanted = len(ledger.acknowledged_payments()) + PAYMENTS_BETWEEN_FAULTS
    with anyio.move_on_after(RECOVERY_TIMEOUT):
        while len(ledger.acknowledged_payments()) < wanted or (
            restored is not None and ledger.retried_since(restored)
        ):
            await anyio.sleep(0.05)
        return True
    return False


async def payment_on_its_way(ledger: Ledger) -> None:
    while ledger.in_flight["pay"] == 0:
        await anyio.sleep(0.001)


async def inject_faults(
    proxy: FaultProxy, ledger: Ledger, windows: list[Window], probe: Probe
) -> str | None:
    """Each fault in turn, as a payment is on its way, restored after a while; what went
    wrong if payments stopped going through."""
    rng = random.Random(os.environ.get("FAULT_SEED", "14"))
    after = "of the start"
    restored: float | None = None
    for fault, seconds in FAULTS:
        if not await payments_go_through(ledger, restored):
            return f"payments did not go through within {RECOVERY_TIMEOUT:g} s {after}"
        await payment_on_its_way(ledger)
        await anyio.sleep(rng.uniform(0, 0.01))  # land anywhere in the checkout's steps
        start = time.monotonic()
        await anyio.to_thread.run_sync(getattr(proxy, fault))
        await anyio.sleep(seconds)
        await anyio.to_thread.run_sync(proxy.restore)
        end = restored = time.monotonic()
        windows.append(Window(fault, start, end, await probe.until_a_write_succeeds()))
        after = f"of restoring the database after the {fault}"
    if not await payments_go_through(ledger, restored):
        return f"payments did not go through within {RECOVERY_TIMEOUT:g} s {after}"
    return None


def report(ledger: Ledger, windows: list[Window], result: Audit, server: Server) -> str:
    lines = [ledger.summary()]
    for window in windows:
        during = overlapping(ledger.exchanges, window.start, window.end)
        lines.append(
            f"{window.fault} for {window.end - window.start:.1f} s: {len(during)} requests on "
            f"their way, answers {outcomes(during)}, slowest "
            f"{max((e.seconds for e in during), default=0):.2f} s; a write succeeded again "
            f"{window.resumed:.2f} s after the restore"
        )
    slow = ledger.slower_than(ANSWER_BOUND)
    lines.append(f"answered after more than {ANSWER_BOUND:g} s (or never): {len(slow)}")
    lines += [f"  {e.route} {when(e, windows)}: {e.seconds:.1f} s, {e.outcome}" for e in slow[:10]]
    lines.append(f"client-side breaches: {len(ledger.breaches)}")
    lines += [f"  {breach}" for breach in ledger.breaches[:20]]
    lines.append(f"audit: {'PASS' if result.ok else 'FAIL'}")
    lines += result.lines()
    logged = [line for line in server.log().splitlines() if line.startswith(LEVELS)]
    lines.append(f"server log: {len(logged)} warnings and errors; the last ones:")
    lines += [f"  {line[:160]}" for line in logged[-12:]]
    return "\n".join(lines)


def when(exchange: Exchange, windows: list[Window]) -> str:
    """When a request was sent, from the start of the fault it met."""
    for window in windows:
        if overlapping([exchange], window.start, window.end):
            return f"sent {exchange.started - window.start:+.2f} s into the {window.fault}"
    return "sent outside every fault"


def outcomes(exchanges: list[Exchange]) -> str:
    counts: dict[str, int] = {}
    for e in exchanges:
        name = f"{e.status or 'none'} {e.outcome}"
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name}: {n}" for name, n in sorted(counts.items())) or "none"


@dataclass(frozen=True)
class Outcome:
    """One run of the buyers through the faults, shared by the tests of this module."""

    stuck: str | None  # why payments stopped going through, if they did
    ledger: Ledger
    windows: list[Window]
    result: Audit
    report: str


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    base = postgres_base_url()
    if base is None:
        pytest.skip("DATABASE_URL_TEST is not set")
    with fresh_postgres_schema(base) as url:
        target = make_url(url)
        directory = tmp_path_factory.mktemp("faults-server")
        with (
            FaultProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy,
            running_server(directory, {"DATABASE_URL": through(url, proxy)}) as server,
        ):
            ledger = Ledger()
            windows: list[Window] = []
            stuck, result = anyio.run(buy_through_faults, server, proxy, ledger, windows)
            text = report(ledger, windows, result, server)
    print(text)  # the figures, also when the tests pass (pytest -s)
    return Outcome(stuck, ledger, windows, result, text)


def test_payments_through_a_cut_a_freeze_and_a_drop_keep_every_promise(outcome: Outcome) -> None:
    assert outcome.stuck is None, f"{outcome.stuck}\n{outcome.report}"
    assert not outcome.ledger.breaches, outcome.report
    assert outcome.result.ok, outcome.report


def test_writes_succeed_again_within_two_seconds_of_each_restore(outcome: Outcome) -> None:
    resumed = [window.resumed for window in outcome.windows]
    assert resumed and all(r is not None and r <= RESUME_BOUND for r in resumed), outcome.report


def test_every_request_is_answered_within_the_bound_while_the_database_is_down(
    outcome: Outcome,
) -> None:
    assert not outcome.ledger.slower_than(ANSWER_BOUND), outcome.report


async def buy_through_faults(
    server: Server, proxy: FaultProxy, ledger: Ledger, windows: list[Window]
) -> tuple[str | None, Audit]:
    """Buyers shop while the faults are injected; then they stop, the checkouts settle and
    the books are audited: why the service got stuck (or None), and the audit."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=ANSWER_BOUND) as client:
        dates = await put_on_sale(
            client, server.url, ADMIN_TOKEN, prefix="faults", dates=2, seats=2000, price=PRICE
        )
        shop = Shop(
            server.url, dates, seats_per_payment=2, answer_timeout=ANSWER_BOUND, give_up_after=60
        )
        stop = anyio.Event()
        users = [f"buyer{n}" for n in range(BUYERS)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(run_buyers, shop, users, ledger, stop, client=client))
            try:
                probe = Probe(client, server.url)
                await probe.admitted()
                stuck = await inject_faults(proxy, ledger, windows, probe)
            finally:
                stop.set()  # every buyer finishes its round, then returns
    await settle(server.url, ADMIN_TOKEN)
    paid = ledger.paid_tokens()
    return stuck, await anyio.to_thread.run_sync(audit, server.url, ADMIN_TOKEN, paid, ledger)
