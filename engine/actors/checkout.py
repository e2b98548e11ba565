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
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from engine.actor import Actor
from engine.actors.concert_date import ConcertDateActor, Lock, Sell, Unlock, live_holds
from engine.actors.waiting_room import Complete, WaitingRoomActor
from engine.actors.wallet import Debit, DebitFound, FindDebit, WalletActor
from engine.clock import Clock
from engine.config import EngineConfig
from engine.domain.checkout import (
    COMPLETED,
    STARTED,
    CheckoutCompleted,
    CheckoutFailed,
    CheckoutStarted,
    Payment,
    Payments,
)
from engine.domain.reservation import Reservation, reservation_of
from engine.domain.seat_map import SOLD, Locked, parse_reservation_id
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

log = logging.getLogger(__name__)

MAX_RESERVATIONS_PER_PAYMENT = 50
RETRIES = 8
RESOLVE_AFTER = 5.0  # seconds until a payment whose debit is unconfirmed is settled again


class Directory(Protocol):
    """How the checkout finds the other actors (the engine system provides it)."""

    @property
    def waiting_room(self) -> WaitingRoomActor: ...

    def date_actor(self, concert_id: str, date: str) -> ConcertDateActor | None: ...

    def wallet_actor(self, user_id: str) -> WalletActor: ...

    def date_actors(self) -> list[ConcertDateActor]: ...


@dataclass(frozen=True, slots=True)
class Pay:
    user_id: str
    reservation_ids: tuple[str, ...]
    key: str | None
    # A new payment needs a PROCESSING token; a retry with the key of an earlier payment is
    # answered with that payment's outcome whatever the token's status now.
    token_status: str = PROCESSING


@dataclass(frozen=True, slots=True)
class Resolve:
    """Finish or cancel a payment interrupted by a crash, from what the journal recorded."""

    payment_id: str


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_id: str
    user_id: str
    amount: int
    balance: int
    reservations: tuple[Reservation, ...]


_UNCONFIRMED = (JournalFailed, ActorUnavailable, Overloaded)


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
            f"checkout:{shard}",
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

    async def handle(self, command: Any) -> Any:
        match command:
            case Pay():
                return await self._pay(command)
            case Resolve(payment_id=pid):
                return await self._resolve(pid)
        raise TypeError(f"unknown command {command!r}")

    def on_rebuilt(self) -> None:
        # A payment that a failed commit interrupted is settled from the other actors' records.
        for payment in self.state.unfinished():
            self._resolve_later(payment.payment_id)

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
            return self._result(earlier)
        if command.token_status != PROCESSING:
            raise refusal_for(command.token_status)
        groups = self._group_by_date(rids)
        pid = f"pay_{secrets.token_hex(8)}"
        self.emit([CheckoutStarted(pid, user, rids, key)])
        # Durable before any other actor takes a step for it: a payment whose start were lost
        # could leave seats sold and money taken that no checkout knows of. If this commit
        # fails, nothing else has happened and the checkout rebuilds without it.
        await self._last_ticket.wait()
        attempted: list[ConcertDateActor] = []
        try:
            amount = 0
            for actor, group in groups:
                attempted.append(actor)  # a failed lock may still have locked in memory
                locked: Locked = await actor.ask(Lock(user, group, pid))
                amount += locked.amount
        except BaseException as error:
            await self._cancel(pid, attempted, error)
            raise
        try:
            # A debit is idempotent by payment: retrying one whose commit failed cannot take
            # the money twice, and finds it again if that commit did land after all.
            balance: int = await _insist(
                self.directory.wallet_actor(user).ask, Debit(user, amount, pid)
            )
        except _UNCONFIRMED:
            # Whether the money moved is unknown: the payment stays STARTED with its seats
            # locked until `Resolve` settles it from what the wallet holds once rebuilt.
            self._resolve_later(pid)
            raise
        except BaseException as error:
            await self._cancel(pid, attempted, error)
            raise
        # The money is taken and durable: from here on the payment can only complete.
        with anyio.CancelScope(shield=True):
            try:
                await self._complete(pid, user, attempted, amount, balance)
            except _UNCONFIRMED:
                self._resolve_later(pid)
                raise
        return self._result(self.state.payments[pid])

    async def _cancel(
        self, pid: str, attempted: list[ConcertDateActor], error: BaseException
    ) -> None:
        """No money moved: put the holds back and record why the payment failed."""
        with anyio.CancelScope(shield=True):
            try:
                for actor in attempted:
                    await _insist(actor.ask, Unlock(pid))
            except _UNCONFIRMED:
                self._resolve_later(pid)  # no debit: `Resolve` unlocks and fails it later
                return
            code = error.code if isinstance(error, EngineError) else "INTERNAL"
            self.emit([CheckoutFailed(pid, code)])

    async def _complete(
        self, pid: str, user: str, dates: list[ConcertDateActor], amount: int, balance: int
    ) -> None:
        """Sell the seats, complete the token and record the payment; every step is
        idempotent, so a `Resolve` may do them again after an unconfirmed one."""
        for actor in dates:
            await _insist(actor.ask, Sell(pid))
        await _insist(self.directory.waiting_room.ask, Complete(user))
        self.emit([CheckoutCompleted(pid, amount, balance)])
        await self._release_leftovers(user)

    async def _release_leftovers(self, user: str) -> None:
        """A completed token cannot pay again: free the buyer's other holds for everyone else."""
        for actor, release in list(live_holds(self.directory.date_actors(), user)):
            with contextlib.suppress(EngineError):
                await actor.ask(release)

    async def _resolve(self, pid: str) -> str:
        """Settle a STARTED payment from the wallet's durable record: its debit recorded ->
        complete, not recorded -> cancel. Returns the payment's status afterwards (STARTED if
        it could not be settled yet, with a later try scheduled)."""
        payment = self.state.payments.get(pid)
        if payment is None or payment.status != STARTED:
            return payment.status if payment else "UNKNOWN"
        wallet = self.directory.wallet_actor(payment.user_id)
        dates = [actor for actor, _ in self._group_by_date(payment.reservation_ids, strict=False)]
        try:
            debit: DebitFound | None = await wallet.ask(FindDebit(pid))
            if debit is not None:
                await self._complete(pid, payment.user_id, dates, debit.amount, debit.balance)
            else:
                for actor in dates:
                    await _insist(actor.ask, Unlock(pid))
                self.emit([CheckoutFailed(pid, "INTERRUPTED")])
        except _UNCONFIRMED:
            self._resolve_later(pid)  # every step is idempotent: the next try finishes it
            return STARTED
        return self.state.payments[pid].status

    def _resolve_later(self, pid: str) -> None:
        def resolve() -> None:
            try:
                self.tell(Resolve(pid))
            except Overloaded:
                self._resolve_later(pid)
            except EngineError:
                pass  # stopped meanwhile: recovery settles it

        self.clock.call_at(self.clock.now() + RESOLVE_AFTER, resolve)

    # -- helpers -----------------------------------------------------------------------------

    def _group_by_date(
        self, rids: tuple[str, ...], *, strict: bool = True
    ) -> list[tuple[ConcertDateActor, tuple[str, ...]]]:
        if strict and not rids:
            raise Refused(VALIDATION_ERROR, "reservationIds must name at least one reservation")
        if strict and len(rids) > MAX_RESERVATIONS_PER_PAYMENT:
            raise Refused(
                VALIDATION_ERROR,
                f"at most {MAX_RESERVATIONS_PER_PAYMENT} reservations per payment",
            )
        groups: dict[str, tuple[ConcertDateActor, list[str]]] = {}
        for rid in dict.fromkeys(rids):
            parsed = parse_reservation_id(rid)
            actor = self.directory.date_actor(parsed[0], parsed[1]) if parsed else None
            if actor is None:
                if strict:
                    raise Refused(NOT_FOUND, f"no reservation {rid}")
                continue
            groups.setdefault(actor.key, (actor, []))[1].append(rid)
        # A fixed order over dates keeps concurrent checkouts from interleaving their locks.
        return [(actor, tuple(group)) for _, (actor, group) in sorted(groups.items())]

    def _result(self, payment: Payment) -> PaymentResult:
        reservations = []
        for actor, _ in self._group_by_date(payment.reservation_ids, strict=False):
            seat_map = actor.state
            reservations += [
                reservation_of(seat_map, seat)
                for seat in seat_map.seats
                if seat.status == SOLD and seat.payment_id == payment.payment_id
            ]
        return PaymentResult(
            payment.payment_id,
            payment.user_id,
            payment.amount,
            payment.balance,
            tuple(reservations),
        )


async def _insist(ask: Callable[[Any], Awaitable[Any]], command: Any) -> Any:
    """Ask until the command is done: for steps that must happen once money has moved."""
    delay = 0.01
    for attempt in range(RETRIES):
        try:
            return await ask(command)
        except (JournalFailed, ActorUnavailable, Overloaded) as error:
            if attempt == RETRIES - 1:
                log.error("giving up on %r (%s); recovery will finish it", command, error)
                raise
            await anyio.sleep(delay)
            delay = min(delay * 4, 1.0)
    raise AssertionError("unreachable")
