"""The admin API (`/admin/...`, `/metrics`) behind `Authorization: Bearer $ADMIN_TOKEN`.

Actor state comes from the live actors: stats (mailbox depth, processed commands, turn
latency) and, per kind, the full detail an audit needs: a date's seat map with holders, a
wallet shard's balances, a checkout shard's payments, the waiting room's settings. The list
adds totals over every actor (seats sold, money charged, debited and held, revenue).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from engine.actor import Actor, ActorStats
from engine.actors.checkout import CheckoutActor
from engine.actors.concert_date import ConcertDateActor
from engine.actors.waiting_room import WaitingRoomActor
from engine.actors.wallet import WalletActor
from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.domain.waiting_room import RoomSettings
from engine.errors import NOT_FOUND, VALIDATION_ERROR
from engine.system import EngineSystem
from web import gate
from web.body import read_body
from web.endpoints import Endpoint, Out, Param, json_response
from web.errors import ApiError
from web.runtime import Runtime, freeze_long_lived
from web.schemas import (
    ActorDetailOut,
    ActorsOut,
    ActorStatsOut,
    AdminConcertOut,
    AdminPaymentOut,
    AdminSeatOut,
    ConcertDateDetail,
    ConcertIn,
    JournalOut,
    QueuePatch,
    QueueSettingsOut,
    TotalsOut,
    instant,
)

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


def detail_of(actor: Actor[Any]) -> dict[str, Any]:
    """The kind-specific part of `GET /admin/actors/{key}`."""
    if isinstance(actor, ConcertDateActor):
        return {
            "seats": [
                AdminSeatOut(
                    number=s.number,
                    status=s.status,  # type: ignore[arg-type]
                    holder=s.user_id,
                    reservation_id=s.reservation_id,
                    expires_at=instant(s.until),
                    payment_id=s.payment_id,
                )
                for s in actor.state.seats
            ]
        }
    if isinstance(actor, WalletActor):
        return {"balances": dict(sorted(actor.state.balances.items()))}
    if isinstance(actor, CheckoutActor):
        return {
            "payments": [
                AdminPaymentOut(
                    payment_id=p.payment_id,
                    user_id=p.user_id,
                    status=p.status,  # type: ignore[arg-type]
                    amount=p.amount,
                    balance=p.balance,
                    reservation_ids=list(p.reservation_ids),
                    failure=p.failure,
                )
                for p in actor.state.payments.values()
            ]
        }
    if isinstance(actor, WaitingRoomActor):
        return {"settings": settings_out(actor.state.settings)}
    return {}


def totals(system: EngineSystem, stats: list[ActorStats]) -> TotalsOut:
    """Figures over every actor; the seat counts come from the dates' summaries in `stats`
    (the listing already made them: with thousands of dates they are not free)."""
    room = system.waiting_room.state
    seats = {"seats": 0, "available": 0, "held": 0, "checkout": 0, "sold": 0}
    for date in stats:
        if date.kind == ConcertDateActor.kind:
            for name in seats:
                seats[name] += date.state[name]
    charged = sum(w.state.charged_total for w in system.wallets)
    debited = sum(w.state.debited_total for w in system.wallets)
    payments = {"STARTED": 0, "COMPLETED": 0, "FAILED": 0}
    revenue = 0
    for checkout in system.checkouts:
        for payment in checkout.state.payments.values():
            payments[payment.status] += 1
            revenue += payment.amount if payment.status == "COMPLETED" else 0
    return TotalsOut(
        waiting=len(room.waiting),
        active=len(room.active),
        admitted=room.admitted_total,
        completed=room.completed_total,
        expired=room.expired_total,
        charged=charged,
        debited=debited,
        balances=sum(sum(w.state.balances.values()) for w in system.wallets),
        payments_completed=payments["COMPLETED"],
        payments_failed=payments["FAILED"],
        payments_started=payments["STARTED"],
        revenue=revenue,
        **seats,
    )


class AdminApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _admin(self, request: Request) -> EngineSystem:
        gate.admin(request, self.runtime.settings.admin_token)
        return self.runtime.engine()

    async def actors(self, request: Request) -> Response:
        system = self._admin(request)
        journal_stats = getattr(system.journal, "stats", None)
        journal = (
            JournalOut(
                healthy=system.journal.healthy,
                last_error=self.runtime.journal_error,
                commits=journal_stats.commits,
                events=journal_stats.events,
                snapshots=journal_stats.snapshots,
                failures=journal_stats.failures,
            )
            if journal_stats is not None
            else None
        )
        stats = system.stats()
        return json_response(
            ActorsOut(
                actors=[ActorStatsOut(**stats_fields(s)) for s in stats],
                totals=totals(system, stats),
                journal=journal,
                websockets=self.runtime.hub.count,
            )
        )

    async def actor(self, request: Request) -> Response:
        system = self._admin(request)
        key = request.path_params["key"]
        actor = system.actor(key)
        if actor is None:
            raise ApiError(NOT_FOUND, f"no actor {key}")
        return json_response(ActorDetailOut(**stats_fields(actor.stats()), **detail_of(actor)))

    async def pause(self, request: Request) -> Response:
        system = self._admin(request)
        return json_response(settings_out(await system.configure_queue(paused=True)))

    async def resume(self, request: Request) -> Response:
        system = self._admin(request)
        return json_response(settings_out(await system.configure_queue(paused=False)))

    async def configure(self, request: Request) -> Response:
        system = self._admin(request)
        body = await read_body(request, QueuePatch)
        changes = {name: getattr(body, name) for name in PATCHABLE if name in body.model_fields_set}
        return json_response(settings_out(await system.configure_queue(**changes)))

    async def add_concert(self, request: Request) -> Response:
        system = self._admin(request)
        store = self.runtime.running_store()
        body = await read_body(request, ConcertIn)
        seats = self.runtime.settings.engine.seats_per_date
        infos = tuple(
            ConcertDateInfo(body.concert_id, d.date, d.seats or seats, d.price) for d in body.dates
        )
        if len({info.date for info in infos}) != len(infos):
            raise ApiError(VALIDATION_ERROR, "a date is listed twice", field="dates")
        for index, info in enumerate(infos):
            running = system.dates.get(info.key)
            # A date on sale keeps its seats and price: changing them would corrupt its map.
            if running is not None and running.info != info:
                raise ApiError(
                    VALIDATION_ERROR,
                    f"date {info.date} is on sale with {running.info.seats} seats at "
                    f"{running.info.price}; it cannot be changed",
                    field=f"dates.{index}",
                )
        concert = ConcertInfo(body.concert_id, body.title, body.venue, infos)
        await store.add_concert(concert)  # durable first, so a restart finds the dates
        await system.add_concert(concert)
        freeze_long_lived()
        merged = system.concerts[body.concert_id]
        return json_response(
            AdminConcertOut(
                concert_id=merged.concert_id,
                title=merged.title,
                venue=merged.venue,
                dates=[
                    ConcertDateDetail(date=d.date, seats=d.seats, price=d.price)
                    for d in system.date_infos(merged.concert_id)
                ],
            ),
            201,
        )

    async def metrics(self, request: Request) -> Response:
        gate.admin(request, self.runtime.settings.admin_token)
        text = generate_latest(self.runtime.metrics.registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET", "/admin/actors", self.actors,
                "Every actor's stats, totals over all actors, journal and websocket figures",
                auth="admin", responses={200: Out(ActorsOut)}, tag="admin",
            ),
            Endpoint(
                "GET", "/admin/actors/{key}", self.actor,
                "One actor: stats and its full state (seat map, balances, payments, settings)",
                auth="admin", responses={200: Out(ActorDetailOut)}, errors=(NOT_FOUND,),
                params=(Param("key", "path", "actor key, e.g. date:aurora-2027:2027-01-15"),),
                tag="admin",
            ),
            Endpoint(
                "POST", "/admin/queue/pause", self.pause, "Stop admitting users",
                auth="admin", responses={200: Out(QueueSettingsOut)}, tag="admin",
            ),
            Endpoint(
                "POST", "/admin/queue/resume", self.resume, "Admit users again",
                auth="admin", responses={200: Out(QueueSettingsOut)}, tag="admin",
            ),
            Endpoint(
                "PATCH", "/admin/queue", self.configure,
                "Change the admission settings live (absent fields are kept)",
                auth="admin", body=QueuePatch, responses={200: Out(QueueSettingsOut)},
                errors=(VALIDATION_ERROR,), tag="admin",
            ),
            Endpoint(
                "POST", "/admin/concerts", self.add_concert,
                "Put a concert (or more dates of one) on sale",
                auth="admin", body=ConcertIn, responses={201: Out(AdminConcertOut)},
                errors=(VALIDATION_ERROR,), tag="admin",
            ),
            Endpoint(
                "GET", "/metrics", self.metrics, "Prometheus metrics",
                auth="admin",
                responses={200: Out(media_type=CONTENT_TYPE_LATEST.split(";")[0])},
                tag="admin",
            ),
        ]  # fmt: skip
