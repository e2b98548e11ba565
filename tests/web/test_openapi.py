"""The document's examples: each is a request its route accepts."""

from __future__ import annotations

import json

import pytest

from web import admin, api
from web.body import parse
from web.endpoints import Endpoint
from web.examples import PLACEHOLDER
from web.runtime import Runtime
from web.service import ServiceRoutes
from web.settings import Settings

SETTINGS = Settings()
ENDPOINTS = [
    *ServiceRoutes(Runtime(SETTINGS), SETTINGS.static_dir).endpoints(),
    *api.endpoints(),
    *admin.endpoints(),
]


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.example is not None], ids=lambda e: e.name
)
def test_every_body_example_is_accepted_by_its_model(endpoint: Endpoint) -> None:
    assert endpoint.body is not None and endpoint.example is not None
    parse(endpoint.body, json.dumps(endpoint.example(PLACEHOLDER)))
