"""The API's JSON response: a body already encoded (by pydantic or orjson), sent as JSON."""

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
        super().__init__(body, status_code, headers)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # Every answer of the API is JSON bytes with a status and now and then a header such
        # as Retry-After: its two headers are known, where `Response.init_headers` works out
        # from any media type, charset and header mapping what to send (the hold route's
        # answer cost a fifth more that way).
        raw = [(b"content-length", str(len(self.body)).encode()), (b"content-type", _JSON)]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw
