"""The pure domain: rules and events, no I/O. Importing this package registers every event
kind, so a process that only reads the journal can decode all of them."""

from engine.domain import checkout, reservation, seat_map, waiting_room, wallet

__all__ = ["checkout", "reservation", "seat_map", "waiting_room", "wallet"]
