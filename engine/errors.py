"""The errors a command can answer with.

Each carries a stable `code` from the contract (docs/design.md) so the web layer maps it to an
HTTP status without knowing the domain.
"""

from __future__ import annotations


class EngineError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class Refused(EngineError):
    """A command the domain rules turned down; nothing changed. `field` names the part of
    the command at fault, when one is (a seat out of range, a date listed twice)."""

    # More of the error body, by its camelCase name (`opensAt` of ROOM_NOT_OPEN); rare, so
    # stored on the instance only when given (a refused hold is the on-sale's commonest answer).
    details: tuple[tuple[str, str | int | float | None], ...] = ()

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: tuple[tuple[str, str | int | float | None], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        if details:
            self.details = details


class Overloaded(EngineError):
    """The actor's mailbox is full; the caller should retry after `retry_after` seconds."""

    code = "OVERLOADED"

    def __init__(self, actor_key: str, retry_after: float = 1.0) -> None:
        super().__init__(f"{actor_key} is overloaded, retry shortly")
        self.retry_after = retry_after


class ActorUnavailable(EngineError):
    """The actor is stopped or being rebuilt; the command did not run."""

    code = "UNAVAILABLE"


class JournalFailed(EngineError):
    """The journal could not make the command's events durable: it must not be acknowledged."""

    code = "JOURNAL_FAILED"


class HandlerCrashed(EngineError):
    """The handler raised an unexpected exception; the actor lives on with its state unchanged."""

    code = "INTERNAL"


# Codes of refusals, shared by the domain and the web layer's status mapping.
TOKEN_INVALID = "TOKEN_INVALID"
QUEUE_WAITING = "QUEUE_WAITING"
TOKEN_COMPLETED = "TOKEN_COMPLETED"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
NOT_OWNER = "NOT_OWNER"
NOT_FOUND = "NOT_FOUND"
VALIDATION_ERROR = "VALIDATION_ERROR"
TOKEN_LEFT = "TOKEN_LEFT"  # the buyer left the queue with this token
ROOM_NOT_OPEN = "ROOM_NOT_OPEN"  # an on-sale's room before its pre-queue opens
WRONG_ROOM = "WRONG_ROOM"  # a token of one room used on a concert of another
CHALLENGE_FAILED = "CHALLENGE_FAILED"  # a proof of work missing, wrong, reused or expired
ON_SALE_STARTED = "ON_SALE_STARTED"  # moving the start of an on-sale that has started
SEAT_TAKEN = "SEAT_TAKEN"
HOLD_LIMIT = "HOLD_LIMIT"
HOLD_EXPIRED = "HOLD_EXPIRED"
INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
BALANCE_LIMIT = "BALANCE_LIMIT"
IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
DATE_ON_SALE = "DATE_ON_SALE"
