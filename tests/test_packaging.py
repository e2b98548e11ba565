"""What `make run` installs: the service's own dependencies, none of the test or benchmark
tools (they are the `test` and `bench` extras, which `make test` installs through `dev`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("pytest", "playwright", "locust", "mypy", "matplotlib", "ruff", "schemathesis", "ray")


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=~; ]", requirement, maxsplit=1)[0].lower()


def test_serving_needs_none_of_the_test_or_benchmark_tools() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serving = {_name(r) for r in project["dependencies"]}
    assert serving.isdisjoint(TOOLS)
    extras = project["optional-dependencies"]
    assert {"pytest", "playwright", "mypy"} <= {_name(r) for r in extras["test"]}
    assert {"locust", "matplotlib"} <= {_name(r) for r in extras["bench"]}


def test_make_run_installs_the_package_without_extras() -> None:
    makefile = (ROOT / "Makefile").read_text()
    prerequisite = re.search(r"^run: (\S+)$", makefile, re.MULTILINE)
    assert prerequisite is not None
    stamp = prerequisite.group(1)
    recipe = makefile.split(f"{stamp}: pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    installs = re.findall(r"pip install --quiet (.+)$", recipe, re.MULTILINE)
    assert installs[-1] == "-e ."


def test_make_test_installs_the_dev_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    assert "-e '.[dev]'" in recipe
