"""Pydantic models of every body the API reads or writes, and of the websocket messages.

Request models are strict: JSON types must match exactly (a seat `"7"` or an amount `1.0` is
refused), unknown fields are refused, names are camelCase only. Response models are built by
the handlers and serialized by alias, so `/openapi.json`, generated from these same classes,
describes exactly what goes over the wire.

Instants (`expiresAt`, `activeUntil`, ...) are ISO-8601 UTC strings with milliseconds and a
`Z` suffix, e.g. `2027-01-15T20:04:05.123Z`, everywhere (see `instant`).
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal, overload

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from engine.face import (
    CONCERT_ID,
    MAX_CHARGE,
    MAX_DIFFICULTY,
    MAX_NONCE,
    MAX_RESERVATIONS_PER_PAYMENT,
    MAX_SEATS,
    PaymentStatus,
    RoomState,
    SeatStatus,
    TokenStatus,
)

USER_ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@overload
def instant(seconds: float) -> str: ...
@overload
def instant(seconds: None) -> None: ...
@overload
def instant(seconds: float | None) -> str | None: ...
def instant(seconds: float | None) -> str | None:
    """Unix seconds as the API's one time representation (ISO-8601 UTC, ms, `Z`): what
    `datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")` says (rounded to
    the microsecond, then truncated to the millisecond), at less than half its cost: every hold's
    answer carries one, and the date and time of a whole second are made once."""
    if seconds is None:
        return None
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1_000_000)  # half to even, as datetime rounds
    second = int(whole)
    if micros < 0:
        second, micros = second - 1, micros + 1_000_000
    elif micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_second_text(second)}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=64)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _real_date(value: str) -> str:
    date.fromisoformat(value)  # 2027-02-30 matches the pattern but is no date
    return value


def _integral(value: object) -> object:
    # JSON Schema's integers include 7.0, which is therefore taken as 7 (7.5, "7" and true
    # are still refused by the strict integer behind this).
    if type(value) is float and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral)]


def _absent_keeps(schema: dict[str, Any]) -> None:
    # An absent field keeps a setting (or takes the configured one): it has no default value.
    schema.pop("default", None)


def _absent_keeps_never_null(schema: dict[str, Any]) -> None:
    # ... and null is refused: the field's schema is its number's alone.
    _absent_keeps(schema)
    (number,) = [branch for branch in schema.pop("anyOf") if branch.get("type") != "null"]
    schema.update(number)


# The default of a request field whose absence means "keep what is there" and that is never
# null (`_not_null` refuses it): None in Python, neither null nor a default in the schema.
KEEP: Any = Field(default=None, json_schema_extra=_absent_keeps_never_null)

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN, min_length=1, max_length=64)]
ConcertId = Annotated[str, StringConstraints(pattern=CONCERT_ID.pattern, max_length=64)]
IsoDate = Annotated[
    str,
    StringConstraints(pattern=DATE_PATTERN, min_length=10, max_length=10),
    AfterValidator(_real_date),
    # No example here: one that names a real date is given per route (web/examples.py).
    WithJsonSchema({"type": "string", "format": "date"}),
]
ReservationId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Instant = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2027-01-15T20:04:05.123Z"]}
    ),
]


class RequestModel(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        frozen=True,
    )


class ResponseModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
    _wire_names: ClassVar[dict[type[BaseModel], tuple[tuple[str, str], ...]]] = {}

    @classmethod
    def dump(cls, values: dict[str, Any]) -> bytes:
        """The JSON of `cls(**values)` without building the model: for an answer made of the
        engine's own values (every field given, of the declared types) on the on-sale's
        busiest route, where validating them again cost more than the rest of the answer.
        Only for models of plain fields (no nested models, floats as the engine has them)."""
        names = cls._wire_names.get(cls)
        if names is None:
            names = tuple((name, info.alias or name) for name, info in cls.model_fields.items())
            cls._wire_names[cls] = names
        return orjson.dumps({alias: values[name] for name, alias in names})


# -- public API requests ---------------------------------------------------------------------


class JoinRequest(RequestModel):
    user_id: UserId
    concert_id: ConcertId | None = Field(
        default=None,
        description="a concert with its own on-sale: join its room (else the site-wide one)",
    )
    challenge: str | None = Field(
        default=None, max_length=200, description="a proof-of-work challenge, when asked for"
    )
    nonce: str | None = Field(
        default=None,
        max_length=MAX_NONCE,
        description="solves the challenge: SHA-256 of challenge + ':' + nonce has at least "
        "difficulty leading zero bits",
    )


class HoldRequest(RequestModel):
    concert_id: ConcertId
    date: IsoDate
    seat: JsonInt = Field(ge=1, le=MAX_SEATS)
    user_id: UserId | None = Field(
        default=None, description="optional; refused with NOT_OWNER unless it is the token's user"
    )


class ChargeRequest(RequestModel):
    amount: JsonInt = Field(ge=1, le=MAX_CHARGE)
    user_id: UserId | None = Field(
        default=None, description="optional; refused with NOT_OWNER unless it is the token's user"
    )


class PaymentRequest(RequestModel):
    reservation_ids: list[ReservationId] = Field(
        min_length=1, max_length=MAX_RESERVATIONS_PER_PAYMENT
    )
    user_id: UserId | None = Field(
        default=None, description="optional; refused with NOT_OWNER unless it is the token's user"
    )


# -- public API responses --------------------------------------------------------------------


class TokenOut(ResponseModel):
    token: str
    user_id: str
    status: TokenStatus
    rank: int | None = Field(description="1-based position while WAITING, null otherwise")
    eta_seconds: float | None = Field(
        description="estimated seconds until admission while WAITING (null when paused); "
        "in a concert's room it never rises unless the room is paused or reconfigured"
    )
    active_until: Instant | None = Field(description="end of the active window while PROCESSING")
    concert_id: str | None = Field(
        default=None, description="the concert whose own room issued it; null: site-wide"
    )
    starts_at: Instant | None = Field(
        default=None, description="the start of the on-sale, for a token of a concert's room"
    )
    reason: Literal["abandoned"] | None = Field(
        default=None, description="why it is EXPIRED if not its active window"
    )


class QueueStatusOut(ResponseModel):
    concert_id: str | None
    state: RoomState
    waiting: int
    pre_queued: int
    starts_at: Instant | None
    estimated_wait_seconds: float | None = Field(
        description="for one who joins now; null while paused"
    )


class ChallengeOut(ResponseModel):
    challenge: str
    difficulty: int = Field(description="leading zero bits of SHA-256(challenge + ':' + nonce)")
    expires_at: Instant


class ConcertOut(ResponseModel):
    concert_id: str
    title: str
    venue: str
    dates: list[str] = Field(description="every date of the concert (yyyy-mm-dd)")
    currency: str = Field(
        description="ISO 4217 code of every price and balance (CURRENCY)", examples=["EUR"]
    )
    own_room: bool = Field(
        description="whether the concert has its own on-sale room: only that room's tokens "
        "open its dates (a site-wide token gets WRONG_ROOM)"
    )


class DateOut(ResponseModel):
    date: str
    available_seats: int
    total_seats: int
    price: int


class SeatOut(ResponseModel):
    number: int
    status: SeatStatus
    price: int


class SeatMapOut(ResponseModel):
    concert_id: str
    date: str
    seats: list[SeatOut]
    available: list[int]


class ReservationOut(ResponseModel):
    reservation_id: str
    concert_id: str
    date: str
    seat: int
    status: SeatStatus
    price: int
    expires_at: Instant | None = Field(description="when the hold lapses; null once sold")
    payment_id: str | None = None


class ReleaseOut(ResponseModel):
    reservation_id: str
    status: Literal["RELEASED"] = "RELEASED"


class BalanceOut(ResponseModel):
    user_id: str
    balance: int
    currency: str = Field(
        description="ISO 4217 code of every price and balance (CURRENCY)", examples=["EUR"]
    )


class PaymentOut(ResponseModel):
    payment_id: str
    amount: int
    reservations: list[ReservationOut]
    balance: int
    currency: str = Field(
        description="ISO 4217 code of every price and balance (CURRENCY)", examples=["EUR"]
    )


class ErrorDetail(ResponseModel):
    code: str
    message: str
    field: str | None = Field(default=None, description="the offending field, when one is known")
    opens_at: Instant | None = Field(
        default=None, description="ROOM_NOT_OPEN: when the room's pre-queue opens"
    )


class ErrorOut(ResponseModel):
    error: ErrorDetail


class HealthOut(ResponseModel):
    status: Literal["ok", "ready", "starting", "unavailable", "draining"]
    error: str | None = None


# -- admin -----------------------------------------------------------------------------------


class QueuePatch(RequestModel):
    # Absent fields are kept; only maxActive may be null ("no cap"). Each bound sits before
    # `_integral` and inside the union, where pydantic writes it as JSON Schema's keyword.
    batch_size: Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_integral)] | None = KEEP
    interval_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = KEEP
    # Bounded like every number the journal keeps (it stores 64-bit integers); a billion
    # buyers active at once is past any on-sale.
    max_active: Annotated[int, Field(ge=1, le=10**9), BeforeValidator(_integral)] | None = Field(
        default=None, description="null removes the cap", json_schema_extra=_absent_keeps
    )
    active_ttl_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] | None = KEEP

    @field_validator("batch_size", "interval_seconds", "active_ttl_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be a number, not null")
        return value


class QueueSettingsOut(ResponseModel):
    batch_size: int
    interval_seconds: float
    max_active: int | None
    active_ttl_seconds: float
    paused: bool


class ConcertDateIn(RequestModel):
    date: IsoDate
    seats: Annotated[int, Field(ge=1, le=MAX_SEATS), BeforeValidator(_integral)] | None = Field(
        default=None,
        description="SEATS_PER_DATE when absent",
        json_schema_extra=_absent_keeps_never_null,
    )
    price: JsonInt = Field(ge=0, le=MAX_CHARGE)

    @field_validator("seats", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be an integer, not null")
        return value


INSTANT_IN_PATTERN = r"^2[0-9]{3}-"  # instants a schedule takes: the years 2000 to 2999


def _instant_in(value: str) -> str:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.utcoffset() is None:
        raise ValueError("an instant names its offset (Z for UTC)")
    if not 2000 <= parsed.year <= 2999:
        raise ValueError("an instant between the years 2000 and 2999")
    return value


InstantIn = Annotated[
    str,
    StringConstraints(min_length=10, max_length=40, pattern=INSTANT_IN_PATTERN),
    AfterValidator(_instant_in),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": INSTANT_IN_PATTERN,
            "examples": ["2027-01-15T20:00:00Z"],
        }
    ),
]


def seconds_of(value: str) -> float:
    """The Unix seconds of an `InstantIn`."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


PositiveInt = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_integral)]
Seconds = Annotated[float, Field(gt=0, le=86_400)]


class _OnSaleSettings(RequestModel):
    """A concert's on-sale but its start: absent fields are kept (or, at creation, take the
    site-wide settings; `preQueueSeconds` 900, `proofOfWork` 0)."""

    pre_queue_seconds: Annotated[float, Field(ge=0, le=7 * 86_400)] | None = KEEP
    batch_size: PositiveInt | None = KEEP
    interval_seconds: Seconds | None = KEEP
    max_active: Annotated[int, Field(ge=1, le=10**9), BeforeValidator(_integral)] | None = Field(
        default=None, description="null removes the cap", json_schema_extra=_absent_keeps
    )
    active_ttl_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] | None = KEEP
    proof_of_work: (
        Annotated[int, Field(ge=0, le=MAX_DIFFICULTY), BeforeValidator(_integral)] | None
    ) = Field(
        default=None,
        description="leading zero bits a join's proof of work needs; 0: none",
        json_schema_extra=_absent_keeps_never_null,
    )

    @field_validator(
        "pre_queue_seconds",
        "batch_size",
        "interval_seconds",
        "active_ttl_seconds",
        "proof_of_work",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value


class OnSalePatch(_OnSaleSettings):
    """`PATCH /admin/rooms/{concertId}`: absent fields are kept."""

    starts_at: InstantIn | None = KEEP

    @field_validator("starts_at", mode="before")
    @classmethod
    def _start_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value


class OnSaleIn(_OnSaleSettings):
    """`onSale` of `POST /admin/concerts`."""

    starts_at: InstantIn


class ConcertIn(RequestModel):
    concert_id: ConcertId
    title: str = Field(min_length=1, max_length=200)
    venue: str = Field(default="", max_length=200)
    # At most 300 fit in 16 KiB. "Each date once" is beyond JSON Schema (uniqueItems compares
    # whole items), so it is said in words and checked by the handler.
    dates: list[ConcertDateIn] = Field(
        min_length=1, max_length=300, description="each date at most once"
    )
    on_sale: OnSaleIn | None = Field(
        default=None,
        description="its own on-sale and waiting room (else the site-wide room)",
        json_schema_extra=_absent_keeps_never_null,
    )

    @field_validator("on_sale", mode="before")
    @classmethod
    def _on_sale_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be an object, not null")
        return value


class ConcertDateDetail(ResponseModel):
    date: str
    seats: int
    price: int


class OnSaleOut(ResponseModel):
    starts_at: Instant
    pre_queue_seconds: float
    batch_size: int
    interval_seconds: float
    max_active: int | None
    active_ttl_seconds: float
    proof_of_work: int
    paused: bool


class AdminConcertOut(ResponseModel):
    concert_id: str
    title: str
    venue: str
    dates: list[ConcertDateDetail]
    on_sale: OnSaleOut | None = None


class ActorStatsOut(ResponseModel):
    key: str
    kind: str
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    errors: int
    overloaded: int
    rebuilds: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    state: dict[str, Any] = Field(description="the actor's state summary")
    host: str | None = Field(
        default=None, description="the shard host that runs it, in cluster mode (else null)"
    )


class AdminSeatOut(ResponseModel):
    number: int
    status: SeatStatus
    holder: str | None
    reservation_id: str | None
    expires_at: Instant | None
    payment_id: str | None


class AdminPaymentOut(ResponseModel):
    payment_id: str
    user_id: str
    status: PaymentStatus
    amount: int
    balance: int
    reservation_ids: list[str]
    failure: str | None


class RoomOut(ResponseModel):
    concert_id: str | None = Field(description="null: the site-wide room")
    state: RoomState
    on_sale: OnSaleOut | None
    settings: QueueSettingsOut
    waiting: int
    pre_queued: int
    active: int
    admitted: int
    admitted_per_minute: float
    waited_p50_seconds: float | None = Field(description="join to admission, recent")
    waited_p90_seconds: float | None
    left: int
    abandoned: int
    dropped_waited_p50_seconds: float | None = Field(
        description="how long those who left or were abandoned had waited"
    )
    completed: int = Field(description="admitted buyers who paid")
    conversion: float | None = Field(description="completed / admitted")


class RoomsOut(ResponseModel):
    rooms: list[RoomOut]


class ActorDetailOut(ActorStatsOut):
    seats: list[AdminSeatOut] | None = Field(default=None, description="date actors")
    balances: dict[str, int] | None = Field(default=None, description="wallet actors")
    payments: list[AdminPaymentOut] | None = Field(default=None, description="checkout actors")
    settings: QueueSettingsOut | None = Field(default=None, description="the waiting room")


class TotalsOut(ResponseModel):
    waiting: int
    active: int
    admitted: int
    completed: int
    expired: int
    seats: int
    available: int
    held: int
    checkout: int
    sold: int
    charged: int
    debited: int
    balances: int = Field(description="sum of every balance: charged - debited")
    payments_completed: int
    payments_failed: int
    payments_started: int
    revenue: int


class JournalOut(ResponseModel):
    healthy: bool = Field(description="commits go through (false while the database fails)")
    last_error: str | None = Field(description="why commits fail, while they do")
    commits: int
    events: int
    snapshots: int
    failures: int


class ShardOut(ResponseModel):
    shard: int
    host: str | None = Field(description="shard-<n>@<node>:<pid>")
    epoch: int = Field(description="of its journal lease, bumped by every (re)start")
    restarts: int = Field(description="seen by the answering gateway since it started")
    started_at: Instant | None
    recovery_seconds: float | None
    actors: int
    healthy: bool
    fenced: bool
    reachable: bool
    error: str | None
    calls: int = Field(description="batched calls the answering gateway made to it")
    commands: int = Field(description="commands those calls carried")


class GatewayOut(ResponseModel):
    index: int
    node: str
    pid: int
    port: int = Field(description="its own port, beside the shared one")
    started_at: Instant
    websockets: int


class ClusterOut(ResponseModel):
    mode: Literal["embedded", "cluster"]
    shards: list[ShardOut]
    gateways: list[GatewayOut]


class HistorySampleOut(ResponseModel):
    at: Instant = Field(description="the end of the sample's interval")
    waiting: int = Field(description="users waiting in the queue")
    active: int = Field(description="users admitted and active")
    admissions_per_minute: float
    holds_per_second: float
    sales_per_minute: float = Field(description="seats sold per minute")
    hold_p99_ms: float | None = Field(
        description="p99 latency of POST /api/reservations over the interval; null: no hold"
    )


class HistoryOut(ResponseModel):
    interval_seconds: float = Field(description="seconds between two samples")
    window_seconds: float = Field(description="how far back the samples go at most")
    samples: list[HistorySampleOut] = Field(description="oldest first")
    payments_refused: int = Field(
        description="payments answered 4xx since the start: the buyer's (a short balance, an "
        "expired hold, a seat not theirs)"
    )
    payments_failed: int = Field(description="payments answered 5xx since the start: ours")


class ActorsOut(ResponseModel):
    actors: list[ActorStatsOut]
    totals: TotalsOut
    journal: JournalOut | None
    websockets: int
    currency: str = Field(description="ISO 4217 code of revenue and money figures (CURRENCY)")


# -- websocket messages ----------------------------------------------------------------------


class SubscribeMessage(RequestModel):
    type: Literal["subscribe"]
    concert_id: ConcertId
    date: IsoDate


class UnsubscribeMessage(RequestModel):
    type: Literal["unsubscribe"]
    concert_id: ConcertId
    date: IsoDate


ClientMessage = Annotated[SubscribeMessage | UnsubscribeMessage, Field(discriminator="type")]
client_message = TypeAdapter[SubscribeMessage | UnsubscribeMessage](ClientMessage)


class QueueRankMessage(ResponseModel):
    type: Literal["queue.rank"] = "queue.rank"
    rank: int
    eta_seconds: float | None


class QueueAdmittedMessage(ResponseModel):
    type: Literal["queue.admitted"] = "queue.admitted"
    active_until: Instant | None


class QueueExpiredMessage(ResponseModel):
    type: Literal["queue.expired"] = "queue.expired"


class QueueCompletedMessage(ResponseModel):
    type: Literal["queue.completed"] = "queue.completed"


class SeatChangedMessage(ResponseModel):
    type: Literal["seat.changed"] = "seat.changed"
    concert_id: str
    date: str
    seat: int
    status: SeatStatus


class HoldExpiringMessage(ResponseModel):
    type: Literal["hold.expiring"] = "hold.expiring"
    reservation_id: str
    seconds_left: int


class HoldExpiredMessage(ResponseModel):
    type: Literal["hold.expired"] = "hold.expired"
    reservation_id: str


class SubscribedMessage(ResponseModel):
    type: Literal["subscribed", "unsubscribed"]
    concert_id: str
    date: str


class ErrorMessage(ResponseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


SERVER_MESSAGES: tuple[type[ResponseModel], ...] = (
    QueueRankMessage,
    QueueAdmittedMessage,
    QueueExpiredMessage,
    QueueCompletedMessage,
    SeatChangedMessage,
    HoldExpiringMessage,
    HoldExpiredMessage,
    SubscribedMessage,
    ErrorMessage,
)
CLIENT_MESSAGES: tuple[type[RequestModel], ...] = (SubscribeMessage, UnsubscribeMessage)
