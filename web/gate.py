"""The gates an endpoint declares (`auth=`), applied by the endpoint wrapper (web/endpoints.py).

- "none": anyone;
- "token": a genuine queue token, whatever its status (its owner reading their own state);
- "active": a PROCESSING token whose active window has not run out (holds, listings);
- "admin": the admin token.

The token gate runs on every request, so it never goes through a mailbox: the engine's token
view answers at once (an HMAC check and two dict lookups).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from engine.errors import NOT_OWNER, TOKEN_INVALID, WRONG_ROOM
from engine.face import Engine, TokenView, refusal_for
from web.errors import TOKEN_MISSING, ApiError


def bearer(request: Request) -> str:
    """The bearer token of the request: 401 TOKEN_MISSING / TOKEN_INVALID if there is none."""
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise ApiError(TOKEN_MISSING, "send Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(TOKEN_INVALID, "the Authorization header must be 'Bearer <token>'")
    return token


def any_token(engine: Engine, request: Request) -> TokenView:
    """The view of a genuine queue token, whatever its status but LEFT (403 TOKEN_LEFT: its
    owner gave it up)."""
    view = engine.token(bearer(request))
    if view is None:
        raise ApiError(TOKEN_INVALID, "unknown or forged queue token")
    if view.status == "LEFT":
        raise refusal_for("LEFT")
    return view


def active_token(engine: Engine, request: Request) -> TokenView:
    """The view of a PROCESSING token whose active window has not run out."""
    view = any_token(engine, request)
    status = view.status_at(engine.now())
    if status != "PROCESSING":
        raise refusal_for(status)
    return view


def same_user(view: TokenView, user_id: str | None) -> None:
    """A body naming a user must name the token's user."""
    if user_id is not None and user_id != view.user_id:
        raise ApiError(NOT_OWNER, "the userId of the body is not the user of the token")


def same_room(engine: Engine, view: TokenView, concert_id: str) -> None:
    """A token opens only its own room's concerts: a concert's room's token that concert
    alone, a site-wide token every concert without a room of its own (else 403 WRONG_ROOM).
    The hold route makes the same test inline (web/api.py)."""
    room = view.concert_id
    if room != concert_id and (room is not None or concert_id in engine.room_concerts):
        raise wrong_room(concert_id)


def wrong_room(concert_id: str) -> ApiError:
    return ApiError(WRONG_ROOM, f"this token is not of the waiting room of {concert_id}")


def admin(request: Request, admin_token: str) -> None:
    token = bearer(request)
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise ApiError(TOKEN_INVALID, "not the admin token")
