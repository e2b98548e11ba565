"""The engine process the crash tests kill: EngineSystem on the SQL journal under a seeded load.

    python -m tests.persistence.crash_engine URL SEED ROUND

It recovers from `URL`, prints `{"op": "ready"}`, then runs `WORKERS` concurrent workers that
each issue a seeded random stream of joins, charges, holds, releases and payments. Before a
command is sent it prints a `begin` line, and once the engine has acknowledged it (its events
are durable) an `ack` line (or a `refused` line): each line flushed at once, so the test knows
exactly what was acknowledged, and what was in flight, when it sends SIGKILL.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import anyio

from engine.config import EngineConfig
from engine.errors import EngineError
from engine.system import EngineSystem
from persistence import open_store
from tests.commands import charge, hold, join, pay, release

WORKERS = 6
USERS = [f"user{n}" for n in range(12)]
SEATS = 8  # few seats per date, so users fight over them

CONFIG = EngineConfig(
    hold_seconds=300,
    admit_batch=1000,
    admit_interval_seconds=0.05,
    wallet_shards=4,
    checkout_shards=4,
    snapshot_every=7,  # crashes also land between snapshots and their tails
)


def say(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def worker(system: EngineSystem, rng: random.Random, name: str) -> None:
    dates = [(info.concert_id, info.date) for c in system.concerts() for info in c.dates]
    step = 0
    while True:
        step += 1
        user = rng.choice(USERS)
        key = f"{name}-{step}"
        roll = rng.random()
        held = [r.reservation_id for r in system.reservations(user) if r.status == "HELD"]
        if roll < 0.1:
            command: dict[str, Any] = {"op": "join", "user": user}
        elif roll < 0.35:
            command = {"op": "charge", "user": user, "amount": rng.randint(50, 400), "key": key}
        elif roll < 0.7 or not held:
            concert, date = rng.choice(dates)
            command = {"op": "hold", "user": user, "concert": concert, "date": date}
            command["seat"] = rng.randint(1, SEATS)
        elif roll < 0.8:
            command = {"op": "release", "user": user, "rid": rng.choice(held)}
        else:
            rids = rng.sample(held, rng.randint(1, len(held)))
            command = {"op": "pay", "user": user, "rids": rids, "key": key}
        command["id"] = key
        say({"begin": command})
        try:
            outcome = await run(system, command)
        except EngineError as error:
            say({"refused": key, "code": error.code})
        else:
            say({"ack": key, **outcome})


async def run(system: EngineSystem, command: dict[str, Any]) -> dict[str, Any]:
    user = command["user"]
    match command["op"]:
        case "join":
            return {"token": (await join(system, user)).token}
        case "charge":
            return {"balance": await charge(system, user, command["amount"], command["key"])}
        case "hold":
            held = await hold(system, user, command["concert"], command["date"], command["seat"])
            return {"rid": held.reservation_id}
        case "release":
            await release(system, user, command["rid"])
            return {}
        case "pay":
            paid = await pay(system, user, command["rids"], command["key"])
            return {"pid": paid.payment_id, "amount": paid.amount}
    raise ValueError(command)


async def main(url: str, seed: int, round_no: int) -> None:
    async with open_store(url, demo_seats=SEATS) as store:
        system = EngineSystem(store.journal, config=CONFIG, catalog=await store.catalog())
        async with system.running(), anyio.create_task_group() as tg:
            say({"op": "ready"})
            for n in range(WORKERS):
                rng = random.Random(f"{seed}-{round_no}-{n}")
                tg.start_soon(worker, system, rng, f"r{round_no}w{n}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
