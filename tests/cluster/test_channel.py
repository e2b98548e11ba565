"""The command channel to a shard host (cluster/channel.py), without Ray: a server on this
machine answering with a handler of the test's, a client finding it through an endpoint
function as a gateway does through the host's actor."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cluster import channel as channel_module
from cluster.channel import Channel, ChannelError, ChannelServer, Endpoint, new_secret
from cluster.client import ShardClient
from cluster.wire import Answer
from engine.commands import Command, Hold
from engine.errors import ActorUnavailable

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the channel runs on a shard host's and a gateway's asyncio loops


Handler = Callable[[list[Command[Any]]], Awaitable[list[Answer]]]


async def echo(commands: list[Command[Any]]) -> list[Answer]:
    return [(True, command) for command in commands]


@asynccontextmanager
async def host(
    handle: Handler = echo, path: str | None = None
) -> AsyncIterator[tuple[ChannelServer, Endpoint]]:
    server = ChannelServer(new_secret(), handle)
    port = await server.start("127.0.0.1", path)
    try:
        yield server, Endpoint("127.0.0.1", port, server.secret, 1, "node-a", path)
    finally:
        await server.close()


def hold(seat: int) -> Hold:
    return Hold(f"user-{seat}", "aurora", "2027-01-15", seat)


def fixed(endpoint: Endpoint) -> Callable[[], Awaitable[Endpoint]]:
    async def find() -> Endpoint:
        return endpoint

    return find


async def test_a_batch_is_answered_in_order() -> None:
    async with host() as (_, endpoint):
        channel = Channel(0, fixed(endpoint))
        answers = await channel.call([hold(1), hold(2), hold(3)])
        assert answers == [(True, hold(1)), (True, hold(2)), (True, hold(3))]
        channel.close()


async def test_a_caller_on_the_hosts_machine_uses_its_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "host.sock")
    async with host(path=path) as (_, endpoint):
        closed_port = dataclasses.replace(endpoint, port=1)  # nothing listens there
        channel = Channel(0, fixed(closed_port), node="node-a")
        assert await channel.call([hold(1)]) == [(True, hold(1))]
        channel.close()
        elsewhere = Channel(0, fixed(closed_port), node="node-b")
        with pytest.raises(ChannelError):
            await elsewhere.call([hold(1)])
    assert not os.path.exists(path)  # removed when the host stops


async def test_concurrent_batches_on_one_connection_each_get_their_own_answers() -> None:
    async def slow_first(commands: list[Command[Any]]) -> list[Answer]:
        if commands == [hold(1)]:
            await asyncio.sleep(0.05)  # answered after the second batch
        return await echo(commands)

    async with host(slow_first) as (_, endpoint):
        channel = Channel(0, fixed(endpoint))
        first, second = await asyncio.gather(channel.call([hold(1)]), channel.call([hold(2)]))
        assert (first, second) == ([(True, hold(1))], [(True, hold(2))])
        channel.close()


async def test_a_caller_without_the_secret_gets_no_answer() -> None:
    async with host() as (_, endpoint):
        forged = Endpoint(endpoint.address, endpoint.port, new_secret(), endpoint.epoch)
        channel = Channel(0, fixed(forged))
        with pytest.raises(ChannelError, match="broke"):
            await channel.call([hold(1)])


async def test_a_host_that_stops_fails_the_calls_in_flight() -> None:
    started = asyncio.Event()

    async def never(commands: list[Command[Any]]) -> list[Answer]:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with host(never) as (server, endpoint):
        channel = Channel(0, fixed(endpoint))
        call = asyncio.create_task(channel.call([hold(1)]))
        await started.wait()
        await server.close()
        with pytest.raises(ChannelError):
            await call


async def test_a_frozen_host_is_given_up_after_the_call_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(channel_module, "CALL_TIMEOUT", 0.1)

    async def frozen(commands: list[Command[Any]]) -> list[Answer]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with host(frozen) as (_, endpoint):
        channel = Channel(0, fixed(endpoint))
        with pytest.raises(ChannelError, match="no answer within"):
            await channel.call([hold(1)])


async def test_after_a_broken_connection_the_next_call_finds_the_host_again() -> None:
    async with host() as (first, first_endpoint), host() as (_, second_endpoint):
        endpoints = [first_endpoint, second_endpoint]
        asked: list[Endpoint] = []

        async def find() -> Endpoint:
            asked.append(endpoints[0])
            return endpoints[0]

        channel = Channel(0, find)
        assert await channel.call([hold(1)]) == [(True, hold(1))]
        await first.close()  # the host died; Ray restarts it elsewhere
        endpoints.pop(0)
        await asyncio.sleep(0.05)  # the connection's end arrives
        assert await channel.call([hold(3)]) == [(True, hold(3))]
        assert asked == [first_endpoint, second_endpoint]
        channel.close()


async def test_a_shard_client_answers_503_for_every_command_of_a_call_that_failed() -> None:
    class Gone:
        """A host's actor handle whose endpoint cannot be had (the host is down)."""

        class endpoint:
            @staticmethod
            def remote() -> Awaitable[Endpoint]:
                async def fail() -> Endpoint:
                    raise ConnectionRefusedError("the host is down")

                return fail()

    client = ShardClient(0, Gone())
    results = await asyncio.gather(client.ask(hold(1)), client.ask(hold(2)), return_exceptions=True)
    assert all(isinstance(result, ActorUnavailable) for result in results)


async def test_a_shard_client_sends_what_queued_during_a_call_in_one_batch() -> None:
    batches: list[int] = []

    async def count(commands: list[Command[Any]]) -> list[Answer]:
        batches.append(len(commands))
        await asyncio.sleep(0.02)
        return await echo(commands)

    async with host(count) as (_, endpoint):

        class Handle:
            class endpoint:
                @staticmethod
                def remote() -> Awaitable[Endpoint]:
                    return fixed(endpoint)()

        client = ShardClient(0, Handle())
        first = asyncio.create_task(client.ask(hold(1)))
        while not batches:  # the first call is on its way
            await asyncio.sleep(0.001)
        results: list[object] = list(
            await asyncio.gather(*(client.ask(hold(seat)) for seat in range(2, 22)))
        )
        assert results == [hold(seat) for seat in range(2, 22)]
        echoed: object = await first
        assert echoed == hold(1)
        assert batches == [1, 20]
        assert (client.calls, client.commands) == (2, 21)
        client.channel.close()
