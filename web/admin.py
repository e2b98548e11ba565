"""The admin API (`/admin/...`, `/metrics`) behind `Authorization: Bearer $ADMIN_TOKEN`.

Everything comes from the engine's face: every actor's stats (mailbox depth, processed
commands, turn latency), one actor's whole state as the audit needs it (a date's seat map with
holders, a wallet shard's balances, a checkout shard's payments, the waiting room's
settings), totals over every actor, the journal's health and figures, and the last 30
minutes of the service's figures for the dashboard's charts (web/history.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from engine.catalog import MAX_CONCERT_SEATS
from engine.errors import DATE_ON_SALE, NOT_FOUND, ON_SALE_STARTED
from engine.face import (
    ActorDetail,
    ActorStats,
    ConcertDateInfo,
    ConcertInfo,
    Configure,
    JournalStats,
    OnSale,
    Reschedule,
    RoomFigures,
    RoomSettings,
)
from engine.heap import freeze_long_lived
from web.body import read_body
from web.endpoints import Call, Endpoint, Out, Param, json_response
from web.errors import ApiError
from web.schemas import (
    ActorDetailOut,
    ActorsOut,
    ActorStatsOut,
    AdminConcertOut,
    AdminPaymentOut,
    AdminSeatOut,
    ClusterOut,
    ConcertDateDetail,
    ConcertIn,
    GatewayOut,
    HistoryOut,
    HistorySampleOut,
    JournalOut,
    OnSaleIn,
    OnSaleOut,
    OnSalePatch,
    QueuePatch,
    QueueSettingsOut,
    RoomOut,
    RoomsOut,
    ShardOut,
    TotalsOut,
    instant,
    seconds_of,
)

ROOM_PATH = Param("concertId", "path", "a concert with its own on-sale", {"type": "string"})
PATCHABLE = ("batch_size", "interval_seconds", "max_active", "active_ttl_seconds")
STATS_FIELDS = tuple(field.name for field in dataclasses.fields(ActorStats))


def stats_fields(stats: ActorStats) -> dict[str, Any]:
    # Shallow on purpose: `dataclasses.asdict` deep-copies the state summary, and with
    # thousands of dates on sale that copy was most of a 140 ms listing on the event loop.
    fields = {name: getattr(stats, name) for name in STATS_FIELDS}
    for name in ("latency_p50_ms", "latency_p99_ms", "latency_max_ms"):
        fields[name] = round(fields[name], 3)
    return fields


def settings_out(settings: RoomSettings) -> QueueSettingsOut:
    return QueueSettingsOut(
        batch_size=settings.batch_size,
        interval_seconds=settings.interval_seconds,
        max_active=settings.max_active,
        active_ttl_seconds=settings.active_ttl_seconds,
        paused=settings.paused,
    )


def journal_out(journal: JournalStats) -> JournalOut:
    return JournalOut(**dataclasses.asdict(journal))


def detail_out(detail: ActorDetail) -> ActorDetailOut:
    """`GET /admin/actors/{key}`: the stats and the kind's own part of the state."""
    seats = payments = balances = settings = None
    if detail.seats is not None:
        seats = [
            AdminSeatOut(
                number=s.number,
                status=s.status,
                holder=s.holder,
                reservation_id=s.reservation_id,
                expires_at=instant(s.expires_at),
                payment_id=s.payment_id,
            )
            for s in detail.seats.seats
        ]
    if detail.payments is not None:
        payments = [
            AdminPaymentOut(
                payment_id=p.payment_id,
                user_id=p.user_id,
                status=p.status,
                amount=p.amount,
                balance=p.balance,
                reservation_ids=list(p.reservation_ids),
                failure=p.failure,
            )
            for p in detail.payments
        ]
    if detail.balances is not None:
        balances = dict(detail.balances)
    if detail.settings is not None:
        settings = settings_out(detail.settings)
    return ActorDetailOut(
        **stats_fields(detail.stats),
        seats=seats,
        payments=payments,
        balances=balances,
        settings=settings,
    )


async def actors(call: Call) -> Response:
    engine = call.engine
    stats = engine.actor_stats()
    return json_response(
        ActorsOut(
            actors=[ActorStatsOut(**stats_fields(s)) for s in stats],
            totals=TotalsOut(**dataclasses.asdict(engine.totals(stats))),
            journal=journal_out(engine.journal_stats()),
            websockets=call.runtime.hub.count,
            currency=call.runtime.settings.currency,
        )
    )


async def actor(call: Call) -> Response:
    key = call.request.path_params["key"]
    detail = call.engine.actor_detail(key)
    if detail is None:
        raise ApiError(NOT_FOUND, f"no actor {key}")
    return json_response(detail_out(detail))


async def pause(call: Call) -> Response:
    return json_response(settings_out(await call.engine.ask(Configure.of(paused=True))))


async def resume(call: Call) -> Response:
    return json_response(settings_out(await call.engine.ask(Configure.of(paused=False))))


async def configure(call: Call) -> Response:
    body = await read_body(call.request, QueuePatch)
    changes = {name: getattr(body, name) for name in PATCHABLE if name in body.model_fields_set}
    return json_response(settings_out(await call.engine.ask(Configure.of(**changes))))


ON_SALE_FIELDS = (
    "pre_queue_seconds",
    "batch_size",
    "interval_seconds",
    "max_active",
    "active_ttl_seconds",
    "proof_of_work",
)
DEFAULT_PRE_QUEUE_SECONDS = 900.0


def on_sale_of(call: Call, body: OnSaleIn) -> OnSale:
    """A new on-sale: what the body gives, the site-wide room's settings for the rest."""
    site = next(f.settings for f in call.engine.rooms() if f.concert_id is None)
    given = body.model_fields_set
    return OnSale(
        starts_at=seconds_of(body.starts_at),
        pre_queue_seconds=body.pre_queue_seconds
        if body.pre_queue_seconds is not None
        else DEFAULT_PRE_QUEUE_SECONDS,
        batch_size=body.batch_size if body.batch_size is not None else site.batch_size,
        interval_seconds=body.interval_seconds or site.interval_seconds,
        max_active=body.max_active if "max_active" in given else site.max_active,
        active_ttl_seconds=body.active_ttl_seconds or site.active_ttl_seconds,
        proof_of_work=body.proof_of_work or 0,
    )


def on_sale_out(on_sale: OnSale) -> OnSaleOut:
    return OnSaleOut(
        starts_at=instant(on_sale.starts_at) or "",
        **{name: getattr(on_sale, name) for name in (*ON_SALE_FIELDS, "paused")},
    )


def room_out(figures: RoomFigures) -> RoomOut:
    fields = {f.name: getattr(figures, f.name) for f in dataclasses.fields(figures)}
    on_sale = figures.on_sale
    return RoomOut(
        **{
            **fields,
            "on_sale": on_sale_out(on_sale) if on_sale is not None else None,
            "settings": settings_out(figures.settings),
        }
    )


def room_figures(call: Call, concert_id: str) -> RoomFigures:
    found = next((f for f in call.engine.rooms() if f.concert_id == concert_id), None)
    if found is None:
        raise ApiError(NOT_FOUND, f"no room of its own for {concert_id}")
    return found


async def rooms(call: Call) -> Response:
    return json_response(RoomsOut(rooms=[room_out(f) for f in call.engine.rooms()]))


async def reschedule(call: Call) -> Response:
    concert_id = call.request.path_params["concertId"]
    body = await read_body(call.request, OnSalePatch)
    return await _reschedule(call, concert_id, _changes(body))


def _changes(body: OnSalePatch) -> dict[str, Any]:
    given = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in ON_SALE_FIELDS if name in given
    }
    if body.starts_at is not None:
        changes["starts_at"] = seconds_of(body.starts_at)
    return changes


async def _reschedule(call: Call, concert_id: str, changes: dict[str, Any]) -> Response:
    if concert_id not in call.engine.room_concerts:
        raise ApiError(NOT_FOUND, f"no room of its own for {concert_id}")
    await call.engine.ask(Reschedule.of(concert_id, **changes))
    return json_response(room_out(room_figures(call, concert_id)))


async def pause_room(call: Call) -> Response:
    return await _reschedule(call, call.request.path_params["concertId"], {"paused": True})


async def resume_room(call: Call) -> Response:
    return await _reschedule(call, call.request.path_params["concertId"], {"paused": False})


async def add_concert(call: Call) -> Response:
    body = await read_body(call.request, ConcertIn)
    seats = call.runtime.settings.engine.seats_per_date
    infos = tuple(
        ConcertDateInfo(body.concert_id, d.date, d.seats or seats, d.price) for d in body.dates
    )
    if len({info.date for info in infos}) != len(infos):
        raise ApiError("VALIDATION_ERROR", "a date is listed twice", field="dates")
    if sum(info.seats for info in infos) > MAX_CONCERT_SEATS:
        raise ApiError(
            "VALIDATION_ERROR",
            f"the dates of one request have at most {MAX_CONCERT_SEATS:,} seats together",
            field="dates",
        )
    on_sale = on_sale_of(call, body.on_sale) if body.on_sale is not None else None
    concert = await call.engine.add_concert(
        ConcertInfo(body.concert_id, body.title, body.venue, infos, on_sale)
    )
    freeze_long_lived()
    return json_response(
        AdminConcertOut(
            concert_id=concert.concert_id,
            title=concert.title,
            venue=concert.venue,
            dates=[
                ConcertDateDetail(date=d.date, seats=d.seats, price=d.price)
                for d in sorted(concert.dates, key=lambda d: d.date)
            ],
            on_sale=on_sale_out(concert.on_sale) if concert.on_sale is not None else None,
        ),
        201,
    )


async def cluster(call: Call) -> Response:
    view = await call.engine.cluster()
    if view is None:
        return json_response(ClusterOut(mode="embedded", shards=[], gateways=[]))
    shards = [
        ShardOut(
            **{**dataclasses.asdict(s), "started_at": instant(s.started_at)},
        )
        for s in view.shards
    ]
    gateways = [
        GatewayOut(**{**dataclasses.asdict(g), "started_at": instant(g.started_at)})
        for g in view.gateways
    ]
    return json_response(ClusterOut(mode="cluster", shards=shards, gateways=gateways))


async def history(call: Call) -> Response:
    recorded = call.runtime.history
    refused, failed = recorded.payments()
    return json_response(
        HistoryOut(
            interval_seconds=recorded.every,
            window_seconds=recorded.every * (recorded.samples.maxlen or 0),
            samples=[
                HistorySampleOut(
                    at=instant(s.at),
                    waiting=s.waiting,
                    active=s.active,
                    admissions_per_minute=round(s.admissions_per_minute, 3),
                    holds_per_second=round(s.holds_per_second, 3),
                    sales_per_minute=round(s.sales_per_minute, 3),
                    hold_p99_ms=None if s.hold_p99_ms is None else round(s.hold_p99_ms, 3),
                )
                for s in recorded.samples
            ],
            payments_refused=refused,
            payments_failed=failed,
        )
    )


async def metrics(call: Call) -> Response:
    text = generate_latest(call.runtime.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET", "/admin/actors", actors,
            "Every actor's stats, totals over all actors, journal and websocket figures",
            auth="admin", responses={200: Out(ActorsOut)}, tag="admin",
        ),
        Endpoint(
            "GET", "/admin/actors/{key}", actor,
            "One actor: stats and its full state (seat map, balances, payments, settings)",
            auth="admin", responses={200: Out(ActorDetailOut)}, errors=(NOT_FOUND,),
            params=(
                Param(
                    "key", "path", "waiting-room, date:<concert>:<date>, wallet:<n>, checkout:<n>",
                    example=lambda sample: sample.actor_key,
                ),
            ),
            tag="admin",
        ),
        Endpoint(
            "POST", "/admin/queue/pause", pause, "Stop admitting users",
            auth="admin", responses={200: Out(QueueSettingsOut)}, tag="admin",
        ),
        Endpoint(
            "POST", "/admin/queue/resume", resume, "Admit users again",
            auth="admin", responses={200: Out(QueueSettingsOut)}, tag="admin",
        ),
        Endpoint(
            "PATCH", "/admin/queue", configure,
            "Change the admission settings live (absent fields are kept)",
            auth="admin", body=QueuePatch, responses={200: Out(QueueSettingsOut)},
            tag="admin",
        ),
        Endpoint(
            "POST", "/admin/concerts", add_concert,
            "Put a concert (or more dates of one) on sale",
            auth="admin", body=ConcertIn, responses={201: Out(AdminConcertOut)},
            errors=(DATE_ON_SALE, ON_SALE_STARTED), tag="admin",
        ),
        Endpoint(
            "GET", "/admin/rooms", rooms,
            "Every waiting room (the site-wide one first) with its settings and figures: "
            "waiting, pre-queued, admitted per minute, waits, drop-outs, conversion",
            auth="admin", responses={200: Out(RoomsOut)}, tag="admin",
        ),
        Endpoint(
            "PATCH", "/admin/rooms/{concertId}", reschedule,
            "Change a concert's on-sale live (absent fields are kept; its start cannot move "
            "once it has started)",
            auth="admin", body=OnSalePatch, responses={200: Out(RoomOut)},
            errors=(NOT_FOUND, ON_SALE_STARTED), params=(ROOM_PATH,), tag="admin",
        ),
        Endpoint(
            "POST", "/admin/rooms/{concertId}/pause", pause_room,
            "Stop admitting from a concert's room",
            auth="admin", responses={200: Out(RoomOut)}, errors=(NOT_FOUND,),
            params=(ROOM_PATH,), tag="admin",
        ),
        Endpoint(
            "POST", "/admin/rooms/{concertId}/resume", resume_room,
            "Admit from a concert's room again",
            auth="admin", responses={200: Out(RoomOut)}, errors=(NOT_FOUND,),
            params=(ROOM_PATH,), tag="admin",
        ),
        Endpoint(
            "GET", "/admin/cluster", cluster,
            "Cluster mode: every shard (host, lease epoch, restarts, recovery time, health) "
            "and every gateway; mode embedded and empty lists in one process",
            auth="admin", responses={200: Out(ClusterOut)}, tag="admin",
        ),
        Endpoint(
            "GET", "/admin/history", history,
            "The last 30 minutes of the service's own figures, a sample every 5 s: queue "
            "length, admissions per minute, holds per second, sales per minute, hold p99",
            auth="admin", engine=False, responses={200: Out(HistoryOut)}, tag="admin",
        ),
        Endpoint(
            "GET", "/metrics", metrics, "Prometheus metrics",
            auth="admin", engine=False,
            responses={200: Out(media_type=CONTENT_TYPE_LATEST.split(";")[0])},
            tag="admin",
        ),
    ]  # fmt: skip
