"""The token gate and the admin check, read straight from the actors' published views.

The gate runs on every request, so it never goes through a mailbox: the waiting room's read
view answers `token -> status` in O(1) (an HMAC check and two dict lookups).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from engine.domain.waiting_room import EXPIRED, PROCESSING, TokenView, refusal_for
from engine.errors import NOT_OWNER, TOKEN_INVALID
from engine.system import EngineSystem
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


def any_token(system: EngineSystem, request: Request) -> TokenView:
    """The view of a genuine queue token, whatever its status."""
    view = system.lookup_token(bearer(request))
    if view is None:
        raise ApiError(TOKEN_INVALID, "unknown or forged queue token")
    return view


def active_token(system: EngineSystem, request: Request) -> TokenView:
    """The view of a PROCESSING token whose active window has not run out."""
    return require_active(system, any_token(system, request))


def require_active(system: EngineSystem, view: TokenView) -> TokenView:
    until = view.active_until
    if view.status == PROCESSING and (until is None or until > system.clock.now()):
        return view
    raise refusal_for(status_now(system, view))


def status_now(system: EngineSystem, view: TokenView) -> str:
    """The token's status, EXPIRED once its active window has run out: the waiting room
    expires windows on its timer, and a request in the gap before that turn is too late."""
    until = view.active_until
    if view.status == PROCESSING and until is not None and until <= system.clock.now():
        return EXPIRED
    return view.status


def same_user(view: TokenView, user_id: str | None) -> None:
    """A body naming a user must name the token's user."""
    if user_id is not None and user_id != view.user_id:
        raise ApiError(NOT_OWNER, "the userId of the body is not the user of the token")


def admin(request: Request, admin_token: str) -> None:
    token = bearer(request)
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise ApiError(TOKEN_INVALID, "not the admin token")
