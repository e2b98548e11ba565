"""schemathesis against the real server: `/openapi.json` must say what the service does.

schemathesis' own engine (what `st run` runs: the examples, coverage, fuzzing and stateful
phases, with every check) tests a server of its own, once as an admitted buyer and once as
the operator. A failure of any check fails the test, listed with a curl that reproduces it
and the seed of the run (`FUZZ_SEED=<seed>` runs the same cases again).

Where schemathesis is told more than the document says, the reason is written beside it.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from schemathesis import Case, HookContext
from schemathesis.auths import AuthContext
from schemathesis.core.jsonschema.types import JsonValue
from schemathesis.engine import StopReason, from_schema
from schemathesis.engine.events import (
    EngineFinished,
    FatalError,
    NonFatalError,
    ScenarioFinished,
)
from schemathesis.schemas import BaseSchema

from tests.api.client import bearer, unique
from tests.api.conftest import StartServer
from tests.api.server import ADMIN_TOKEN, Server

MAX_EXAMPLES = 100  # fuzzed cases per operation; the coverage phase adds its own, all of them

CONFIG: dict[str, Any] = {
    "generation": {"max-examples": MAX_EXAMPLES},
    "request-timeout": 10,
    "cache": {"enabled": False},  # each run on its own; no .schemathesis/ in the repository
    "checks": {
        # 402 INSUFFICIENT_BALANCE refuses a well-formed payment for the state of the buyer's
        # balance, as 409 (in schemathesis' own list) refuses one for the state of a seat.
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "3xx", "401", "402", "403", "404", "409", "429", "5xx"]
        },
    },
    "operations": [
        {
            # A websocket's handshake needs an upgrade that no HTTP client of schemathesis'
            # makes: every well-formed plain GET is answered the documented 426
            # (tests/api/test_websocket.py connects for real).
            "include-path": "/ws",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["426"]}},
        }
    ],
}


@dataclass
class Run:
    """What a run of schemathesis found and what the service answered."""

    seed: int
    failures: list[str] = field(default_factory=list)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    stop_reason: StopReason | None = None

    def report(self) -> str:
        return f"seed {self.seed}:\n\n" + "\n\n".join(self.failures)


def fuzz(schema: BaseSchema, seed: int) -> Run:
    run = Run(seed)
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            recorder = event.recorder
            for case_id, interaction in recorder.interactions.items():
                if interaction.response is not None:
                    label = recorder.cases[case_id].value.operation.label
                    run.answers[label, interaction.response.status_code] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        run.failures.append(
                            f"{check.name}: {failure.title}\n{failure.message}\n"
                            f"{check.failure_info.code_sample}"
                        )
        elif isinstance(event, NonFatalError):
            run.failures.append(f"error in {event.label}: {event.info.format()}")
        elif isinstance(event, FatalError):
            run.failures.append(f"schemathesis failed: {event.exception!r}")
        elif isinstance(event, EngineFinished):
            run.failures += [f"{failure.title}\n{failure.message}" for failure in event.failures]
            run.stop_reason = event.stop_reason
    return run


def load(server: Server, seed: int, headers: dict[str, str] | None = None) -> BaseSchema:
    config = schemathesis.Config.from_dict(
        {**CONFIG, "seed": seed, **({"headers": headers} if headers else {})}
    )
    return schemathesis.openapi.from_url(server.url + "/openapi.json", config=config)


def seed() -> int:
    return int(os.environ.get("FUZZ_SEED") or random.getrandbits(64))


# -- the buyer ---------------------------------------------------------------------------------


class Buyer:
    """An admitted buyer's queue token, and a new buyer's once it stops being PROCESSING (a
    payment completes the token, leaving the queue ends it), so the rest of the run is not all
    403 TOKEN_COMPLETED or TOKEN_LEFT."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http  # on the server's URL
        self.token = ""

    def current(self) -> str:
        if not self.token or self.status() != "PROCESSING":
            self.token = self.admitted()
        return self.token

    def status(self) -> str:
        me = self.http.get("/api/queue/tokens/me", headers=bearer(self.token))
        if me.status_code == 403 and me.json()["error"]["code"] == "TOKEN_LEFT":
            return "LEFT"
        status: str = me.json()["status"]
        return status

    def admitted(self) -> str:
        joined = self.http.post("/api/queue/tokens", json={"userId": unique("fuzz")})
        self.token = joined.json()["token"]
        deadline = time.monotonic() + 20
        while self.status() != "PROCESSING":
            assert time.monotonic() < deadline, "the buyer was never admitted"
            time.sleep(0.02)
        return self.token

    def payable(self) -> list[str]:
        """Reservations this buyer holds, with the money to pay for them: its holds, or else
        the hold of the document's live example."""
        headers = bearer(self.current())
        held = [
            r
            for r in self.http.get("/api/reservations", headers=headers).json()
            if r["status"] == "HELD"
        ]
        if not held:
            document = self.http.get("/openapi.json").json()
            hold = document["paths"]["/api/reservations"]["post"]["requestBody"]
            example = hold["content"]["application/json"]["example"]
            answer = self.http.post("/api/reservations", json=example, headers=headers)
            assert answer.status_code == 201, answer.text
            held = [answer.json()]
        amount = sum(r["price"] for r in held)
        if amount:
            charged = self.http.post(
                "/api/balance/charge", json={"amount": amount}, headers=headers
            )
            assert charged.status_code == 200, charged.text
        return [r["reservationId"] for r in held]


def as_buyer(schema: BaseSchema, buyer: Buyer) -> None:
    """Every request goes as `buyer`, and the examples phase pays for the buyer's holds."""

    class Token:
        def get(self, case: Case[Any], context: AuthContext) -> str:
            return buyer.current()

        def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    # Checked again every second; never replayed on a 401 (which is an answer to check).
    schema.auth(refresh_interval=1, retry_on=[])(Token)

    @schema.hook("before_add_examples")
    def pay_for_the_holds(context: HookContext, examples: list[Case[Any]]) -> None:
        # A payment names reservations that only a hold made at run time has, so no document
        # can give a working example: the buyer's own are given here.
        operation = context.operation
        if operation is not None and operation.label == "POST /api/payments":
            body: JsonValue = {"reservationIds": list[JsonValue](buyer.payable())}
            example = operation.Case(body=body, media_type="application/json")
            # Made here, not generated: the buyer's token is set as on any generated case.
            schema.auth.set(example, AuthContext(operation=operation, app=None))
            examples.append(example)


# -- the operator ------------------------------------------------------------------------------


def as_operator(schema: BaseSchema) -> None:
    @schema.hook("filter_case")
    def each_date_once(context: HookContext, case: Case[Any]) -> bool:
        # "each date at most once" is in the description of POST /admin/concerts' dates, as
        # JSON Schema cannot say it (uniqueItems compares whole items): a body naming a date
        # twice is not one the document calls valid, whatever schemathesis generated it as.
        operation = context.operation
        if operation is None or operation.label != "POST /admin/concerts":
            return True
        if case.meta is None or not case.meta.generation.mode.is_positive:
            return True
        dates = case.body.get("dates") if isinstance(case.body, dict) else None
        if not isinstance(dates, list):
            return True
        named = [d.get("date") for d in dates if isinstance(d, dict)]
        return len(named) == len(set(named))


# -- the tests ---------------------------------------------------------------------------------


# Each run has a server of its own: the buyer takes seats and pays, the operator reconfigures
# the queue and fills the catalog.


def test_an_admitted_buyer_finds_the_service_as_documented(start_server: StartServer) -> None:
    server = start_server({})
    run_seed = seed()
    schema = load(server, run_seed)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        as_buyer(schema, Buyer(http))
        run = fuzz(schema, run_seed)
    assert run.failures == [], run.report()
    assert run.stop_reason is StopReason.COMPLETED
    assert run.answers["POST /api/reservations", 201] > 0, "no hold succeeded"
    assert run.answers["POST /api/payments", 201] > 0, "no payment succeeded"


def test_the_operator_finds_the_service_as_documented(start_server: StartServer) -> None:
    server = start_server({})
    run_seed = seed()
    schema = load(server, run_seed, headers=bearer(ADMIN_TOKEN))
    as_operator(schema)
    run = fuzz(schema, run_seed)
    assert run.failures == [], run.report()
    assert run.stop_reason is StopReason.COMPLETED
    assert run.answers["POST /admin/concerts", 201] > 0
