"""The actor of one wallet shard (users are spread over shards by a stable hash)."""

from __future__ import annotations

import zlib
from typing import Any

from engine.actor import Actor
from engine.clock import Clock
from engine.commands import Charge, Command, Debit, DebitFound, FindDebit
from engine.config import EngineConfig
from engine.domain.wallet import Wallets
from engine.journal import Journal


def wallet_key(shard: int) -> str:
    return f"wallet:{shard}"


def shard_of(user_id: str, shards: int) -> int:
    # Python's hash() is salted per process; shards must be stable across restarts.
    return zlib.crc32(user_id.encode()) % shards


class WalletActor(Actor[Wallets]):
    kind = "wallet"

    def __init__(self, shard: int, config: EngineConfig, *, journal: Journal, clock: Clock):
        super().__init__(
            wallet_key(shard),
            journal=journal,
            clock=clock,
            **config.actor_options(),
        )

    def initial_state(self) -> Wallets:
        return Wallets()

    def state_from_snapshot(self, data: dict[str, Any]) -> Wallets:
        wallets = Wallets()
        wallets.load_snapshot(data)
        return wallets

    def state_weight(self) -> int:
        wallets = self.state
        return len(wallets.balances) + len(wallets.charges) + len(wallets.debits)

    def decide(self, command: Command[Any]) -> Any:
        match command:
            case Charge(user_id=user, amount=amount, key=key, token_status=status):
                events, balance = self.state.charge(user, amount, key, status)
                self.emit(events)
                return balance
            case Debit(user_id=user, amount=amount, payment_id=pid):
                self.emit(self.state.debit(user, amount, pid))
                return self.state.balance(user)
            case FindDebit(payment_id=pid):
                debit = self.state.debits.get(pid)
                if debit is None:
                    return None
                user, amount = debit
                return DebitFound(amount, self.state.balance(user))
        raise TypeError(f"unknown command {command!r}")
