"""The waiting room over HTTP: joining, ranks, admission in batches, the token gate."""

from __future__ import annotations

from collections import defaultdict

import anyio
import pytest

from tests.api.client import Api, User, bearer, error_code, unique

pytestmark = pytest.mark.anyio


async def test_joining_twice_returns_the_same_token_with_200(api: Api) -> None:
    user_id = unique("twice")
    first = await api.join(user_id)
    second = await api.join(user_id)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["token"] == first.json()["token"]
    assert set(first.json()) == {
        "token", "userId", "status", "rank", "etaSeconds", "activeUntil",
        "concertId", "startsAt", "reason",
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"userId": ""},
        {"userId": "x" * 65},
        {"userId": "has space"},
        {"userId": "emoji\u2603"},
        {"userId": 42},
        {},
        {"userId": "ok", "extra": 1},
    ],
)
async def test_join_refuses_a_malformed_user_id(api: Api, body: dict[str, object]) -> None:
    response = await api.post("/api/queue/tokens", body)
    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_ERROR"


async def test_a_user_id_may_use_letters_digits_and_dot_at_dash_underscore(api: Api) -> None:
    response = await api.join(f"a.b@c-d_{unique('e')}"[:64])
    assert response.status_code == 201


async def test_waiting_tokens_have_ranks_in_arrival_order(api: Api) -> None:
    await api.until_queue_empty()
    async with api.paused_queue():
        first = await api.waiting_user("first")
        second = await api.waiting_user("second")
        one, two = await api.me(first), await api.me(second)
        assert (one["status"], two["status"]) == ("WAITING", "WAITING")
        assert two["rank"] == one["rank"] + 1
        assert one["activeUntil"] is None
    await api.until_status(second, "PROCESSING")
    admitted = await api.me(second)
    assert admitted["rank"] is None and admitted["activeUntil"].endswith("Z")


async def test_admission_is_in_batches_of_100_in_arrival_order(api: Api) -> None:
    await api.until_queue_empty()
    async with api.paused_queue():
        users = [await api.waiting_user(f"batch{n:03d}") for n in range(250)]
    await api.until_status(users[-1], "PROCESSING")

    # Everybody admitted by one admission shares its active window's end.
    windows = [(await api.me(user))["activeUntil"] for user in users]
    batches: dict[str, list[int]] = defaultdict(list)
    for position, until in enumerate(windows):
        batches[until].append(position)
    in_order = sorted(batches.values(), key=lambda positions: positions[0])
    assert [len(positions) for positions in in_order] == [100, 100, 50]
    assert [p for positions in in_order for p in positions] == list(range(250))


async def test_gate_refuses_a_waiting_token_with_queue_waiting(api: Api) -> None:
    async with api.paused_queue():
        user = await api.waiting_user()
        concert = "/api/concerts/aurora-2027/dates"
        for path in (concert, f"{concert}/2027-01-15/seats"):
            response = await api.get(path, user)
            assert response.status_code == 403
            assert error_code(response) == "QUEUE_WAITING"
        body = {"concertId": "aurora-2027", "date": "2027-01-15", "seat": 1}
        hold = await api.post("/api/reservations", body, user)
        assert (hold.status_code, error_code(hold)) == (403, "QUEUE_WAITING")
        assert (await api.get("/api/queue/tokens/me", user)).status_code == 200


async def test_a_waiting_token_reads_its_own_tickets_balance_and_the_concerts(api: Api) -> None:
    async with api.paused_queue():
        user = await api.waiting_user()
        for path in ("/api/concerts", "/api/reservations", "/api/balance"):
            assert (await api.get(path, user)).status_code == 200


async def test_gate_refuses_missing_and_forged_tokens(api: Api) -> None:
    missing = await api.get("/api/concerts")
    assert (missing.status_code, error_code(missing)) == (401, "TOKEN_MISSING")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    genuine = await api.admitted()
    seq, _, mac = genuine.token.partition(".")
    for forged in (f"{seq}.{'A' * len(mac)}", f"{int(seq) + 1}.{mac}", "garbage", "1."):
        response = await api.get("/api/concerts", headers=bearer(forged))
        assert (response.status_code, error_code(response)) == (401, "TOKEN_INVALID")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    not_bearer = await api.get("/api/concerts", headers={"Authorization": f"Basic {mac}"})
    assert (not_bearer.status_code, error_code(not_bearer)) == (401, "TOKEN_INVALID")
    me = await api.get("/api/queue/tokens/me", headers=bearer("1.forged"))
    assert (me.status_code, error_code(me)) == (401, "TOKEN_INVALID")


async def test_gate_refuses_an_expired_token_and_rejoining_gives_a_new_one(api: Api) -> None:
    await api.admin("PATCH", "/admin/queue", {"activeTtlSeconds": 0.3})
    try:
        user = await api.admitted("short-lived")
    finally:
        await api.admin("PATCH", "/admin/queue", {"activeTtlSeconds": 600})
    await api.until_status(user, "EXPIRED")

    response = await api.get("/api/concerts/aurora-2027/dates", user)
    assert (response.status_code, error_code(response)) == (403, "TOKEN_EXPIRED")

    again = await api.join(user.user_id)
    assert again.status_code == 201
    assert again.json()["token"] != user.token
    await api.until_status(User(user.user_id, again.json()["token"]), "PROCESSING")


async def test_concurrent_joins_of_many_users_each_get_their_own_token(api: Api) -> None:
    tokens: dict[str, str] = {}

    async def join(user_id: str) -> None:
        response = await api.join(user_id)
        assert response.status_code == 201
        tokens[user_id] = response.json()["token"]

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(join, unique(f"crowd{n}"))
    assert len(set(tokens.values())) == 50
