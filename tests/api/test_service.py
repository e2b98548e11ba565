"""Service routes: health, readiness, the OpenAPI document, the pages, routing errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from websockets.exceptions import ConnectionClosed

from tests.api.client import Api, error_code, eventually, next_message, websocket
from tests.api.conftest import StartServer
from tests.api.server import Server
from web.settings import STATIC_DIR

pytestmark = pytest.mark.anyio

# Every route of the contract (docs/design.md).
CONTRACT = [
    ("post", "/api/queue/tokens"),
    ("get", "/api/queue/tokens/me"),
    ("get", "/api/concerts"),
    ("get", "/api/concerts/{concertId}/dates"),
    ("get", "/api/concerts/{concertId}/dates/{date}/seats"),
    ("post", "/api/reservations"),
    ("get", "/api/reservations"),
    ("delete", "/api/reservations/{reservationId}"),
    ("post", "/api/balance/charge"),
    ("get", "/api/balance"),
    ("post", "/api/payments"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/admin/actors"),
    ("get", "/admin/actors/{key}"),
    ("post", "/admin/queue/pause"),
    ("post", "/admin/queue/resume"),
    ("patch", "/admin/queue"),
    ("post", "/admin/concerts"),
    ("get", "/metrics"),
    ("get", "/ws"),
]


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.get("/healthz")).json()["status"] == "ok"
    ready = await api.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


async def openapi(api: Api) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_openapi_documents_every_route_of_the_contract(api: Api) -> None:
    document = await openapi(api)
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert set(CONTRACT) <= documented
    hold = document["paths"]["/api/reservations"]["post"]
    assert {"201", "401", "403", "404", "409", "422", "503"} <= set(hold["responses"])
    assert "SEAT_TAKEN" in hold["responses"]["409"]["description"]
    assert hold["security"] == [{"queueToken": []}]
    charge = document["paths"]["/api/balance/charge"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in charge["parameters"]}
    messages = document["x-websocket"]["serverMessages"]
    assert {"queue.rank", "queue.admitted", "queue.expired", "queue.completed"} <= set(messages)
    assert {"seat.changed", "hold.expiring", "hold.expired", "error"} <= set(messages)


async def test_openapi_is_a_valid_openapi_3_1_document(api: Api) -> None:
    document = await openapi(api)
    assert [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()] == []


def objects_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in `node` (schemas and all else), depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from objects_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from objects_in(value)


async def test_openapi_bounds_are_json_schema_keywords(api: Api) -> None:
    # pydantic writes ge/le/gt/lt as they are when it cannot place them on a number, and a
    # validator ignores keywords it does not know: the bound would be documented to no one.
    document = await openapi(api)
    unknown = [s for s in objects_in(document) if {"ge", "le", "gt", "lt"} & set(s)]
    assert unknown == []
    patch = document["components"]["schemas"]["QueuePatch"]["properties"]
    assert patch["batchSize"] == {
        "type": "integer", "minimum": 1, "maximum": 1_000_000, "title": "Batchsize"
    }  # fmt: skip
    assert patch["intervalSeconds"]["exclusiveMinimum"] == 0
    assert patch["maxActive"]["anyOf"] == [
        {"type": "integer", "minimum": 1, "maximum": 10**9},
        {"type": "null"},
    ]


async def test_openapi_gives_no_default_to_fields_whose_absence_keeps_a_setting(api: Api) -> None:
    schemas = (await openapi(api))["components"]["schemas"]
    kept = [
        *schemas["QueuePatch"]["properties"].values(),
        schemas["ConcertDateIn"]["properties"]["seats"],
    ]
    assert [field for field in kept if "default" in field] == []
    assert schemas["ConcertDateIn"]["properties"]["seats"]["type"] == "integer"  # never null


async def test_openapi_documents_itself_as_an_object(api: Api) -> None:
    document = await openapi(api)
    answer = document["paths"]["/openapi.json"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["type"] == "object"


async def test_the_idempotency_key_schema_refuses_what_the_service_refuses(api: Api) -> None:
    document = await openapi(api)
    parameters = document["paths"]["/api/balance/charge"]["post"]["parameters"]
    schema = next(p for p in parameters if p["name"] == "Idempotency-Key")["schema"]
    assert (schema["minLength"], schema["maxLength"]) == (1, 255)

    def documented(key: str) -> bool:
        fits = schema["minLength"] <= len(key) <= schema["maxLength"]
        return fits and re.search(schema["pattern"], key) is not None

    user = await api.admitted()
    for key in ["", "a" * 256, "with space", "k-1", "~" * 255]:
        status = (await api.charge(user, 5, key)).status_code
        assert (key, status) == (key, 200 if documented(key) else 422)


async def test_every_documented_path_answers_options_with_405_and_its_methods(api: Api) -> None:
    document = await openapi(api)
    for path, item in document["paths"].items():
        concrete = re.sub(r"{\w+}", "x", path)
        answer = await api.http.options(api.url + concrete)
        assert answer.status_code == 405, path
        allowed = {m.strip() for m in answer.headers["Allow"].split(",")}
        assert {m.upper() for m in item} <= allowed, path


async def test_only_a_get_of_the_websocket_path_asks_for_an_upgrade(api: Api) -> None:
    plain = await api.get("/ws")
    assert (plain.status_code, error_code(plain)) == (426, "UPGRADE_REQUIRED")
    posted = await api.http.post(api.url + "/ws")
    assert (posted.status_code, error_code(posted)) == (405, "METHOD_NOT_ALLOWED")
    assert posted.headers["Allow"] == "GET, HEAD"


async def test_openapi_examples_name_the_live_catalog(api: Api) -> None:
    document = await openapi(api)
    hold = document["paths"]["/api/reservations"]["post"]["requestBody"]["content"]
    example = hold["application/json"]["example"]
    seats = document["paths"]["/api/concerts/{concertId}/dates/{date}/seats"]["get"]
    named = {p["name"]: p["example"] for p in seats["parameters"]}
    assert named == {"concertId": example["concertId"], "date": example["date"]}
    user = await api.admitted()
    seat_map = await api.get(
        f"/api/concerts/{named['concertId']}/dates/{named['date']}/seats", user
    )
    assert example["seat"] in seat_map.json()["available"]
    held = await api.post("/api/reservations", example, user)
    assert held.status_code == 201, held.text
    following = (await openapi(api))["paths"]["/api/reservations"]["post"]["requestBody"]
    assert following["content"]["application/json"]["example"] != example  # that seat is held
    await api.delete(f"/api/reservations/{held.json()['reservationId']}", user)


async def test_a_hold_links_to_paying_for_it_and_releasing_it(api: Api) -> None:
    document = await openapi(api)
    operations = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    links = document["paths"]["/api/reservations"]["post"]["responses"]["201"]["links"]
    targets = {link["operationId"] for link in links.values()}
    assert targets == {"pay", "release"} and targets <= operations


async def test_openapi_request_schemas_are_strict(api: Api) -> None:
    schemas = (await openapi(api))["components"]["schemas"]
    hold = schemas["HoldRequest"]
    assert hold["additionalProperties"] is False
    assert set(hold["required"]) == {"concertId", "date", "seat"}
    assert hold["properties"]["seat"]["type"] == "integer"
    assert hold["properties"]["seat"]["minimum"] == 1
    charge = schemas["ChargeRequest"]["properties"]["amount"]
    assert (charge["type"], charge["minimum"], charge["maximum"]) == ("integer", 1, 10**9)


async def test_openapi_response_schemas_match_what_is_sent(api: Api) -> None:
    document = await openapi(api)
    schemas = document["components"]["schemas"]

    def fields(path: str, method: str, status: str) -> set[str]:
        schema = document["paths"][path][method]["responses"][status]["content"][
            "application/json"
        ]["schema"]
        schema = schema.get("items", schema)
        name = schema["$ref"].rsplit("/", 1)[1]
        return set(schemas[name]["properties"])

    user = await api.admitted()
    concert_id, (day,) = await api.new_concert()
    token = (await api.join(user.user_id)).json()
    assert set(token) == fields("/api/queue/tokens", "post", "200")
    hold = (await api.hold(user, concert_id, day, 1)).json()
    assert set(hold) == fields("/api/reservations", "post", "201")
    seats = (await api.get(f"/api/concerts/{concert_id}/dates/{day}/seats", user)).json()
    assert set(seats) == fields("/api/concerts/{concertId}/dates/{date}/seats", "get", "200")
    balance = (await api.charge(user, 500)).json()
    assert set(balance) == fields("/api/balance/charge", "post", "200")
    payment = (await api.pay(user, hold["reservationId"])).json()
    assert set(payment) == fields("/api/payments", "post", "201")
    refused = (await api.get("/api/concerts")).json()
    assert set(refused) == fields("/api/concerts", "get", "401")


async def test_unknown_routes_and_methods_answer_in_the_error_model(api: Api) -> None:
    missing = await api.get("/api/nothing-here")
    assert (missing.status_code, error_code(missing)) == (404, "NOT_FOUND")
    wrong = await api.http.put(api.url + "/api/balance")
    assert (wrong.status_code, error_code(wrong)) == (405, "METHOD_NOT_ALLOWED")
    slash = await api.get("/api/reservations/")  # not the exact path of an endpoint
    assert slash.status_code in (307, 404)


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/no-such-page", "/static/no-such-file.html"])
async def test_a_browser_gets_an_html_page_for_a_missing_path(api: Api, path: str) -> None:
    page = await api.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text and path in page.text
    for accept in ("application/json", "*/*", "application/json, text/html"):
        data = await api.get(path, headers={"Accept": accept})
        assert (data.status_code, error_code(data)) == (404, "NOT_FOUND")


async def test_the_seats_of_an_unknown_concert_say_no_concert(api: Api) -> None:
    user = await api.admitted()
    concert = await api.get("/api/concerts/nope/dates/2027-01-15/seats", user)
    assert (concert.status_code, concert.json()["error"]["message"]) == (404, "no concert nope")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"concertId": "aurora-2027", "date": "2027-01-15", "seat": 0}, "seat must be at least 1"),
        (
            {"concertId": "aurora-2027", "date": "2027-01-15", "seat": "7"},
            "seat must be an integer",
        ),
        ({"concertId": "aurora-2027", "seat": 7}, "date is required"),
    ],
)
async def test_validation_messages_name_the_field_first_in_plain_words(
    api: Api, body: dict[str, Any], message: str
) -> None:
    user = await api.admitted()
    response = await api.post("/api/reservations", body, user)
    assert (response.status_code, response.json()["error"]["message"]) == (422, message)


async def test_head_of_a_get_route_answers_its_headers_without_a_body(api: Api) -> None:
    head = await api.http.head(api.url + "/healthz")
    get = await api.get("/healthz")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize(("path", "page"), [("/", "index.html"), ("/admin", "admin.html")])
async def test_pages_are_served_from_the_static_directory(api: Api, path: str, page: str) -> None:
    response = await api.get(path)
    assert response.status_code == (200 if (STATIC_DIR / page).is_file() else 404)
    assert response.headers["content-type"].startswith("text/html")


async def test_static_files_are_served_under_static(api: Api) -> None:
    files = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
    if files:
        relative = files[0].relative_to(STATIC_DIR).as_posix()
        assert (await api.get(f"/static/{relative}")).content == files[0].read_bytes()
    assert (await api.get("/static/no-such-file.js")).status_code == 404


async def test_not_ready_while_the_database_cannot_be_opened(
    start_server: StartServer, api: Api
) -> None:
    broken = start_server(
        {"DATABASE_URL": "sqlite:////nonexistent-directory/concert-queue.db"}, wait_ready=False
    )
    offline = Api(broken, api.http)
    assert (await offline.get("/healthz")).status_code == 200

    async def failure_reported() -> dict[str, Any] | None:
        ready = await offline.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (503, "starting")
        body: dict[str, Any] = ready.json()
        return body if body["error"] else None

    assert (
        "unable to open database file" in (await eventually(failure_reported, "an error"))["error"]
    )
    joined = await offline.join("someone")
    assert (joined.status_code, error_code(joined)) == (503, "UNAVAILABLE")
    assert joined.headers["Retry-After"] == "1"
    async with websocket(broken, "1.x") as ws:
        assert (await next_message(ws))["code"] == "UNAVAILABLE"
        with pytest.raises(ConnectionClosed):
            await next_message(ws)
        assert ws.close_code == 1013


def test_a_second_instance_on_the_same_database_is_refused_at_start(
    start_server: StartServer, tmp_path: Path
) -> None:
    first = start_server({})
    second = Server(tmp_path / "second", {"DATABASE_URL": first.database_url})
    second.directory.mkdir()
    with pytest.raises(RuntimeError, match="exited early"):
        second.start(wait_ready=False)
    assert second.process is not None and second.process.wait(timeout=10) == 2
    assert "another instance serves this database" in second.log()
    assert httpx.get(first.url + "/readyz").status_code == 200  # the first serves on
