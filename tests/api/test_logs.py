"""The real server's log holds no token, whatever a client puts in a URL or a header."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.api.client import unique
from tests.api.conftest import StartServer
from tests.api.server import ADMIN_TOKEN

FORGED = "not-a-real-token-0123456789"


def test_no_token_reaches_the_log(start_server: StartServer) -> None:
    server = start_server({}, log_level="debug")
    joined = httpx.post(server.url + "/api/queue/tokens", json={"userId": unique("logs")})
    token = joined.json()["token"]
    # Accepted: uvicorn logs the URL; at debug level websockets logs the handshake's headers.
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with connect(f"{server.ws_url}?token={token}", additional_headers=admin) as ws:
        ws.recv(timeout=20)
    for refused in (FORGED, ADMIN_TOKEN):
        with connect(f"{server.ws_url}?token={refused}") as ws:
            assert "TOKEN_INVALID" in str(ws.recv(timeout=20))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=20)  # closed 1008
    # Logged only if the access log is on (web.cli turns it off); then as tests/web/test_logs.py.
    httpx.get(server.url + f"/api/queue/tokens/me?token={token}&admin_token={ADMIN_TOKEN}")
    server.stop()
    log = server.log()
    assert "/ws?token=[redacted]" in log  # the lines are there, their tokens are not
    assert "authorization: Bearer [redacted]" in log
    for secret in (token, FORGED, ADMIN_TOKEN):
        assert secret not in log
