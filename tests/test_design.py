"""docs/design.md is the contract: it names every route, error code, websocket message,
environment variable and metric the service has, and it is the only design document the
repository cites."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from web import admin, api
from web.errors import STATUS_OF_CODE
from web.runtime import Runtime
from web.schemas import SERVER_MESSAGES
from web.service import ServiceRoutes
from web.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DESIGN = (ROOT / "docs" / "design.md").read_text()
CITED = (".py", ".md", ".js", ".html", ".toml", "Makefile")
OTHER = "DESIGN" + ".md"  # spelt in two so that this file does not cite it


def test_every_route_is_in_the_design() -> None:
    runtime = Runtime(Settings())
    endpoints = [*ServiceRoutes(runtime, Settings().static_dir).endpoints()]
    endpoints += [*api.endpoints(), *admin.endpoints()]
    missing = [f"{e.method} {e.path}" for e in endpoints if f"`{e.method} {e.path}`" not in DESIGN]
    assert missing == []


def test_every_error_code_is_in_the_designs_table_with_its_status() -> None:
    rows = dict(re.findall(r"^\| (\d{3}) \| (.*) \|$", DESIGN, re.M))
    wrong = [
        f"{code} ({status})"
        for code, status in STATUS_OF_CODE.items()
        if f"`{code}`" not in rows.get(str(status), "")
    ]
    assert wrong == []


def test_every_websocket_message_is_in_the_design() -> None:
    for message in SERVER_MESSAGES:
        for kind in str(message.model_fields["type"].annotation).split("'")[1::2]:
            assert f'"type":"{kind}"' in DESIGN, kind


def test_every_environment_variable_is_in_the_designs_configuration() -> None:
    source = (ROOT / "web" / "settings.py").read_text()
    source += (ROOT / "cluster" / "settings.py").read_text()
    names = set(re.findall(r'"([A-Z][A-Z_]+)"', source))
    configuration = DESIGN.split("## Configuration", 1)[1]
    assert names and [n for n in sorted(names) if f"`{n}`" not in configuration] == []


def test_every_metric_the_design_names_is_exported() -> None:
    text = generate_latest(Runtime(Settings()).metrics.registry).decode()
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    exported = {name for name, _ in families}
    exported |= {f"{name}_total" for name, kind in families if kind == "counter"}
    named = set(re.findall(r"concert_queue_[a-z_]+[a-z]", DESIGN))
    assert named and sorted(named - exported) == []


def test_the_repository_cites_no_other_design_document() -> None:
    stray = []
    for path in ROOT.rglob("*"):
        if ".venv" in path.parts or ".git" in path.parts or not path.is_file():
            continue
        if not path.name.endswith(CITED) or path == ROOT / "docs" / "design.md":
            continue
        text = path.read_text(errors="replace")
        for line in text.splitlines():
            if OTHER in line:
                stray.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert stray == []
