"""The checkout actor (one per shard of users): runs the payment flow across actors.

record the start durably -> lock the holds on each date -> debit the wallet -> sell the
seats and complete the token -> record the completion.

No other actor takes a step for a payment before its start is durable, so every locked or
sold seat and every debit names a payment that the checkout knows after any fault. Before the
debit is durable any failure puts the holds back and takes no money. Once it is durable the
payment must complete, so the remaining steps are retried. A payment left STARTED (a debit
that could not be confirmed either way, a step that could not be done, a failed commit of the
checkout itself, a crash) is settled by `Resolve` from what the wallet holds durably: debit
recorded -> complete, not recorded -> cancel. `Resolve` runs at recovery, after the checkout
rebuilds from a failed commit, `RESOLVE_AFTER` seconds after an interrupted step, and at once
when the buyer retries with the payment's Idempotency-Key.

The checkout reaches the other actors only by command through its `Directory`, never by
reference, so the dates, wallets and the waiting room may live in other processes.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any, Protocol, TypeVar

import anyio

from engine.actor import Actor
from engine.clock import Clock
from engine.commands import (
    Command,
    CompleteToken,
    Debit,
    DebitFound,
    FindDebit,
    Lock,
    Pay,
    PaymentStatusOf,
    Resolve,
    Sell,
    SoldTo,
    Unlock,
)
from engine.config import EngineConfig
from engine.domain.checkout import (
    COMPLETED,
    FAILED,
    MAX_RESERVATIONS_PER_PAYMENT,
    STARTED,
    CheckoutCompleted,
    CheckoutFailed,
    CheckoutStarted,
    Payment,
    Payments,
)
from engine.domain.seat_map import Locked, parse_reservation_id
from engine.domain.waiting_room import PROCESSING, refusal_for
from engine.errors import (
    NOT_FOUND,
    VALIDATION_ERROR,
    ActorUnavailable,
    EngineError,
    JournalFailed,
    Overloaded,
    Refused,
)
from engine.journal import Journal
from engine.views import PaymentResult, PaymentStatus, Reservation

log = logging.getLogger(__name__)

RETRIES = 8
RESOLVE_AFTER = 5.0  # seconds until a payment whose debit is unconfirmed is settled again

R = TypeVar("R")
Date = tuple[str, str]  # concert id, date

_UNCONFIRMED = (JournalFailed, ActorUnavailable, Overloaded)


class Directory(Protocol):
    """How the checkout reaches the other actors, wherever they run (the engine provides it)."""

    async def ask(self, command: Command[R]) -> R: ...

    def has_date(self, concert_id: str, date: str) -> bool: ...

    async def release_holds(self, user_id: str) -> None:
        """Release every hold the user still has, on every date (best effort)."""
        ...


def checkout_key(shard: int) -> str:
    return f"checkout:{shard}"


class CheckoutActor(Actor[Payments]):
    kind = "checkout"

    def __init__(
        self,
        shard: int,
        config: EngineConfig,
        directory: Directory,
        *,
        journal: Journal,
        clock: Clock,
    ) -> None:
        self.directory = directory
        super().__init__(
            checkout_key(shard),
            journal=journal,
            clock=clock,
            **config.actor_options(),
        )

    def initial_state(self) -> Payments:
        return Payments()

    def state_from_snapshot(self, data: dict[str, Any]) -> Payments:
        payments = Payments()
        payments.load_snapshot(data)
        return payments

    def state_weight(self) -> int:
        return len(self.state.payments)

    async def handle(self, command: Command[Any]) -> Any:
        match command:
            case Pay():
                return await self._pay(command)
            case Resolve(payment_id=pid):
                return await self._resolve(pid)
            case PaymentStatusOf(payment_id=pid):
                payment = self.state.payments.get(pid)
                return payment.status if payment is not None else None
        raise TypeError(f"unknown command {command!r}")

    def on_rebuilt(self) -> None:
        # A payment that a failed commit interrupted is settled from the other actors' records.
        for payment in self.state.unfinished():
            self._resolve_later(payment)

    # -- the flow ----------------------------------------------------------------------------

    async def _pay(self, command: Pay) -> PaymentResult:
        user, key = command.user_id, command.key
        rids = tuple(dict.fromkeys(command.reservation_ids))
        earlier = self.state.for_key(user, key, rids)
        # An earlier attempt with this key that was interrupted: its real outcome first.
        if (
            earlier is not None
            and earlier.status == STARTED
            and await self._resolve(earlier.payment_id) == STARTED
        ):
            raise ActorUnavailable("the earlier payment with this key is being settled")
        if earlier is not None and earlier.status == COMPLETED:
            return await self._result(earlier)
        if command.token_status != PROCESSING:
            raise refusal_for(command.token_status)
        groups = self._group_by_date(rids)
        pid = f"pay_{secrets.token_hex(8)}"
        self.emit([CheckoutStarted(pid, user, rids, key)])
        # Durable before any other actor takes a step for it: a payment whose start were lost
        # could leave seats sold and money taken that no checkout knows of. If this commit
        # fails, nothing else has happened and the checkout rebuilds without it.
        await self._last_ticket.wait()
        payment = self.state.payments[pid]
        attempted: list[Date] = []
        try:
            amount = 0
            for (concert_id, date), group in groups:
                attempted.append((concert_id, date))  # a failed lock may have locked in memory
                locked: Locked = await self.directory.ask(Lock(user, concert_id, date, group, pid))
                amount += locked.amount
        except BaseException as error:
            await self._cancel(payment, attempted, error)
            raise
        try:
            # A debit is idempotent by payment: retrying one whose commit failed cannot take
            # the money twice, and finds it again if that commit did land after all.
            balance = await self._insist(Debit(user, amount, pid))
        except _UNCONFIRMED:
            # Whether the money moved is unknown: the payment stays STARTED with its seats
            # locked until `Resolve` settles it from what the wallet holds once rebuilt.
            self._resolve_later(payment)
            raise
        except BaseException as error:
            await self._cancel(payment, attempted, error)
            raise
        # The money is taken and durable: from here on the payment can only complete.
        with anyio.CancelScope(shield=True):
            try:
                await self._complete(payment, attempted, amount, balance)
            except _UNCONFIRMED:
                self._resolve_later(payment)
                raise
        return await self._result(payment)

    async def _cancel(self, payment: Payment, attempted: list[Date], error: BaseException) -> None:
        """No money moved: put the holds back and record why the payment failed."""
        with anyio.CancelScope(shield=True):
            try:
                for concert_id, date in attempted:
                    await self._insist(Unlock(concert_id, date, payment.payment_id))
            except _UNCONFIRMED:
                self._resolve_later(payment)  # no debit: `Resolve` unlocks and fails it later
                return
            code = error.code if isinstance(error, EngineError) else "INTERNAL"
            self.emit([CheckoutFailed(payment.payment_id, code)])

    async def _complete(
        self, payment: Payment, dates: list[Date], amount: int, balance: int
    ) -> None:
        """Sell the seats, complete the token and record the payment; every step is
        idempotent, so a `Resolve` may do them again after an unconfirmed one."""
        pid, user = payment.payment_id, payment.user_id
        for concert_id, date in dates:
            await self._insist(Sell(concert_id, date, pid))
        # The seats' concert names the room whose token paid: a token opens its own room's
        # concerts only (WRONG_ROOM), so every seat of a payment is of one room.
        await self._insist(CompleteToken(user, dates[0][0] if dates else None))
        self.emit([CheckoutCompleted(pid, amount, balance)])
        await self._release_leftovers(user)

    async def _release_leftovers(self, user: str) -> None:
        """A completed token cannot pay again: free the buyer's other holds for everyone else."""
        with contextlib.suppress(EngineError):
            await self.directory.release_holds(user)

    async def _resolve(self, pid: str) -> PaymentStatus:
        """Settle a STARTED payment from the wallet's durable record: its debit recorded ->
        complete, not recorded -> cancel. Returns the payment's status afterwards (STARTED if
        it could not be settled yet, with a later try scheduled)."""
        payment = self.state.payments.get(pid)
        if payment is None or payment.status != STARTED:
            return payment.status if payment else FAILED
        dates = [date for date, _ in self._group_by_date(payment.reservation_ids, strict=False)]
        try:
            debit: DebitFound | None = await self.directory.ask(FindDebit(payment.user_id, pid))
            if debit is not None:
                await self._complete(payment, dates, debit.amount, debit.balance)
            else:
                for concert_id, date in dates:
                    await self._insist(Unlock(concert_id, date, pid))
                self.emit([CheckoutFailed(pid, "INTERRUPTED")])
        except _UNCONFIRMED:
            self._resolve_later(payment)  # every step is idempotent: the next try finishes it
            return STARTED
        return payment.status

    def _resolve_later(self, payment: Payment) -> None:
        command = Resolve(payment.user_id, payment.payment_id)

        def resolve() -> None:
            try:
                self.tell(command)
            except Overloaded:
                self._resolve_later(payment)
            except EngineError:
                pass  # stopped meanwhile: recovery settles it

        self.clock.call_at(self.clock.now() + RESOLVE_AFTER, resolve)

    # -- helpers -----------------------------------------------------------------------------

    async def _insist(self, command: Command[R]) -> R:
        """Ask until the command is done: for steps that must happen once money has moved."""
        delay = 0.01
        for attempt in range(RETRIES):
            try:
                return await self.directory.ask(command)
            except _UNCONFIRMED as error:
                if attempt == RETRIES - 1 or not self.journal.healthy:
                    # A later `Resolve` finishes it (retrying while the journal cannot commit
                    # would only keep the buyer waiting).
                    log.warning("giving up on %r for now (%s)", command, error)
                    raise
                await anyio.sleep(delay)
                delay = min(delay * 4, 1.0)
        raise AssertionError("unreachable")

    def _group_by_date(
        self, rids: tuple[str, ...], *, strict: bool = True
    ) -> list[tuple[Date, tuple[str, ...]]]:
        """The reservations by date, dates in a fixed order (so that concurrent checkouts
        never interleave their locks); `strict` refuses an empty, too long or unknown list."""
        if strict and not rids:
            raise Refused(VALIDATION_ERROR, "reservationIds must name at least one reservation")
        if strict and len(rids) > MAX_RESERVATIONS_PER_PAYMENT:
            raise Refused(
                VALIDATION_ERROR,
                f"at most {MAX_RESERVATIONS_PER_PAYMENT} reservations per payment",
            )
        groups: dict[Date, list[str]] = {}
        for rid in dict.fromkeys(rids):
            parsed = parse_reservation_id(rid)
            if parsed is None or not self.directory.has_date(parsed[0], parsed[1]):
                if strict:
                    raise Refused(NOT_FOUND, f"no reservation {rid}")
                continue
            groups.setdefault((parsed[0], parsed[1]), []).append(rid)
        return [(date, tuple(group)) for date, group in sorted(groups.items())]

    async def _result(self, payment: Payment) -> PaymentResult:
        reservations: list[Reservation] = []
        for (concert_id, date), _ in self._group_by_date(payment.reservation_ids, strict=False):
            reservations += await self.directory.ask(SoldTo(concert_id, date, payment.payment_id))
        return PaymentResult(
            payment.payment_id,
            payment.user_id,
            payment.amount,
            payment.balance,
            tuple(reservations),
        )
