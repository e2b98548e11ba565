"""The token gate and the admin check, read straight from the actors' published views.

The gate runs on every request, so it never goes through a mailbox: the waiting room's read
view answers `token -> status` in O(1) (an HMAC check and two dict lookups).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from engine.domain.waiting_room import COMPLETED, EXPIRED, PROCESSING, WAITING, TokenView
from engine.errors import NOT_OWNER, QUEUE_WAITING, TOKEN_COMPLETED, TOKEN_EXPIRED, TOKEN_INVALID
from engine.system import EngineSystem
from web.errors import TOKEN_MISSING, ApiError

REFUSAL_OF_STATUS = {
    WAITING: (QUEUE_WAITING, "you are still waiting in the queue"),
    COMPLETED: (TOKEN_COMPLETED, "this token has been used for a payment; join the queue again"),
    EXPIRED: (TOKEN_EXPIRED, "the active window of this token ran out; join the queue again"),
}


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
    status = view.status
    # The waiting room expires windows on its timer; a request in the gap between the
    # deadline and that turn is already too late.
    until = view.active_until
    if status == PROCESSING and until is not None and until <= system.clock.now():
        status = EXPIRED
    if status != PROCESSING:
        code, message = REFUSAL_OF_STATUS.get(status, (TOKEN_INVALID, "token not usable"))
        raise ApiError(code, message)
    return view


def same_user(view: TokenView, user_id: str | None) -> None:
    """A body naming a user must name the token's user."""
    if user_id is not None and user_id != view.user_id:
        raise ApiError(NOT_OWNER, "the userId of the body is not the user of the token")


def admin(request: Request, admin_token: str) -> None:
    token = bearer(request)
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise ApiError(TOKEN_INVALID, "not the admin token")
