"""Keeping tokens out of the logs: a filter that redacts `token=...` query values.

    redact_tokens()   # after uvicorn configured logging (web.cli does it)

uvicorn logs request targets with their query string: every websocket's `/ws?token=...` (its
"accepted" and refusal lines), the access log when it is on, and error lines. A queue token
is a bearer credential, and a client may send the admin token there too; neither may be
written to a log. Any query parameter named `token` or ending in `token` (`admin_token`,
`access_token`) has its value replaced by `[redacted]`, and so has the credential of an
`Authorization` header (the websockets library logs handshake headers at debug level): in
the message, in its arguments (uvicorn's access formatter reads them one by one) and in a
formatted traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
AUTHORIZATION = re.compile(r"(authorization:[ \t]*(?:[a-z]+[ \t]+)?)([^\s'\"]+)", re.IGNORECASE)
TOKEN_IN_QUERY = re.compile(r"([?&;][\w.-]*token=)(?!\[redacted\])[^&;#\s\"'<>]+", re.IGNORECASE)

# uvicorn's loggers; `uvicorn.error` is also the websockets library's logger under uvicorn.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

_traceback_formatter = logging.Formatter()


def redact(text: str) -> str:
    return AUTHORIZATION.sub(_credential, TOKEN_IN_QUERY.sub(r"\1" + REDACTED, text))


def _credential(match: re.Match[str]) -> str:
    return match[0] if match[2] == REDACTED else match[1] + REDACTED


def _has_secret(text: str) -> bool:
    return redact(text) != text


class RedactTokens(logging.Filter):
    """Rewrites a record so that no token value is left in what its handlers write."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if record.args and _has_secret(record.getMessage()):
            # A token inside an argument that is not a string (a URL object, bytes).
            record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_traceback_formatter.formatException(record.exc_info))
        return True


def redact_tokens(logger_names: Iterable[str] = UVICORN_LOGGERS) -> RedactTokens:
    """Install the filter on uvicorn's loggers and on every handler they and the root logger
    write through (a handler's filter also sees what other loggers propagate to it)."""
    tokens = RedactTokens()
    loggers = [logging.getLogger(name) for name in logger_names] + [logging.getLogger()]
    for logger in loggers:
        for filtered in (logger, *logger.handlers):
            if not any(isinstance(f, RedactTokens) for f in filtered.filters):
                filtered.addFilter(tokens)
    return tokens
