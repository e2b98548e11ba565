"""The API's JSON response: a body already encoded, its headers made directly.

Starlette's `Response.__init__` renders the content and then `init_headers` works out from
any media type, charset and header mapping what to send; for the API's one kind of answer
(JSON bytes, a status, now and then a header such as Retry-After) that general path cost more
than encoding the body.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

JSON = "application/json"
_JSON = JSON.encode()


class JsonResponse(Response):
    media_type = JSON

    def __init__(
        self, body: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw
