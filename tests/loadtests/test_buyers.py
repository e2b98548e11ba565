"""The buyers and the audit of their ledger against a healthy server: every round they play is
acknowledged and passes the audit, and a ledger that claims more than the books hold fails it
(so the checks cannot pass vacuously)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import anyio
import anyio.to_thread
import httpx
import pytest

from loadtests.audit import Audit, audit, settle
from loadtests.buyers import Ledger, PaymentAttempt, Shop, run_buyers
from loadtests.service_client import put_on_sale
from tests.api.server import ADMIN_TOKEN, Server, running_server

pytestmark = pytest.mark.anyio

PAYMENTS = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("buyers-server"), {}) as running:
        yield running


async def shopped(server: Server, prefix: str) -> Ledger:
    """A ledger of buyers who shopped until PAYMENTS payments were acknowledged."""
    ledger = Ledger()
    async with httpx.AsyncClient(timeout=20) as client:
        dates = await put_on_sale(
            client, server.url, ADMIN_TOKEN, prefix=prefix, dates=2, seats=100, price=30
        )
        shop = Shop(server.url, dates, seats_per_payment=2)
        stop = anyio.Event()
        users = [f"{prefix}-buyer{n}" for n in range(4)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(run_buyers, shop, users, ledger, stop, client=client))
            with anyio.fail_after(60):
                while len(ledger.acknowledged_payments()) < PAYMENTS:
                    await anyio.sleep(0.05)
            stop.set()
    assert await settle(server.url, ADMIN_TOKEN)
    return ledger


async def audited(server: Server, ledger: Ledger) -> Audit:
    paid = ledger.paid_tokens()
    return await anyio.to_thread.run_sync(audit, server.url, ADMIN_TOKEN, paid, ledger)


async def test_buyers_on_a_healthy_server_are_acknowledged_and_pass_the_audit(
    server: Server,
) -> None:
    ledger = await shopped(server, "healthy")
    result = await audited(server, ledger)
    assert result.ok, "\n".join(result.lines())
    assert not ledger.breaches
    assert all(p.payment_id is not None for p in ledger.payments)
    assert ledger.acknowledged_charges == len(ledger.payments)
    assert {e.route for e in ledger.exchanges} == {"join", "token", "charge", "hold", "pay"}


async def test_a_ledger_claiming_what_the_books_lack_fails_the_audit(server: Server) -> None:
    ledger = await shopped(server, "claims")
    real = ledger.acknowledged_payments()[0]
    ledger.payments.append(dataclasses.replace(real, key="never-sent", payment_id="pay_nowhere"))
    ledger.charged[real.user_id] += 1
    ledger.payments.append(
        PaymentAttempt(real.user_id, real.token, "other-key", real.reservation_ids)
    )
    result = await audited(server, ledger)
    failed = {check.name for check in result.checks if not check.ok}
    # The other key names a completed payment's seats, but it never paid: its retry now is a
    # new payment of seats already sold, not that payment's answer.
    assert failed == {
        "every acknowledged charge kept",
        "every acknowledged payment kept",
        "a payment's retry gets its outcome",
    }
