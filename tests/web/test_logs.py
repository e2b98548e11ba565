"""No token in a log line, whatever uvicorn's formatters make of a record."""

from __future__ import annotations

import logging

import pytest
from uvicorn.logging import AccessFormatter, DefaultFormatter

from web.logs import RedactTokens, redact

SECRET = "1.c2VjcmV0.token-value"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            f'"WebSocket /ws?token={SECRET}" [accepted]',
            '"WebSocket /ws?token=[redacted]" [accepted]',
        ),
        (
            f"/api/x?a=1&token={SECRET}&admin_token={SECRET}&b=2",
            "/api/x?a=1&token=[redacted]&admin_token=[redacted]&b=2",
        ),
        (f"/ws?TOKEN={SECRET} 403", "/ws?TOKEN=[redacted] 403"),
        ("/ws?token= and /ws?tokens=1", "/ws?token= and /ws?tokens=1"),
        (f"< authorization: Bearer {SECRET}", "< authorization: Bearer [redacted]"),
        (f"Authorization: {SECRET}\r\nHost: x", "Authorization: [redacted]\r\nHost: x"),
    ],
)
def test_token_query_values_are_redacted_and_nothing_else(text: str, redacted: str) -> None:
    assert redact(text) == redacted
    assert redact(redacted) == redacted


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, exc_info)


def written(formatter: logging.Formatter, entry: logging.LogRecord) -> str:
    assert RedactTokens().filter(entry)
    return formatter.format(entry)


def test_a_websocket_line_is_written_without_its_token() -> None:
    line = record('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws?token={SECRET}")
    text = written(DefaultFormatter("%(message)s", use_colors=False), line)
    assert text == '127.0.0.1:5000 - "WebSocket /ws?token=[redacted]" [accepted]'


def test_an_access_line_keeps_the_arguments_its_formatter_reads() -> None:
    line = record(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/api?token={SECRET}", "1.1", 200
    )
    text = written(AccessFormatter("%(request_line)s %(status_code)s", use_colors=False), line)
    assert text == "GET /api?token=[redacted] HTTP/1.1 200 OK"


def test_a_token_inside_an_argument_that_is_not_a_string_is_redacted() -> None:
    line = record("request to %s", f"/ws?token={SECRET}".encode())
    assert SECRET not in written(logging.Formatter("%(message)s"), line)


def test_a_traceback_is_written_without_the_token() -> None:
    try:
        raise ValueError(f"cannot serve /ws?token={SECRET}")
    except ValueError as error:
        line = record("Exception in ASGI application", exc=error)
    text = written(logging.Formatter("%(message)s"), line)
    assert "ValueError: cannot serve /ws?token=[redacted]" in text
    assert SECRET not in text
