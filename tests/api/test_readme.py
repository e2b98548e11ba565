"""The README's curl walk-through and metric names, checked against a running server.

The shell lines of "The whole flow with curl" are taken from README.md as they are written and
run in order in one bash against a fresh server (only the address in `H=` is this server's);
every answer the README shows under a command (a `# {...}` or `# [...]` comment, `..` standing
for what differs between runs) must be what that command printed. The metric names the README
lists must be served by `/metrics`. So the README cannot drift from the service again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import StartServer
from tests.api.server import ADMIN_TOKEN

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### The whole flow with curl"
README_HOST = "H=http://127.0.0.1:8000;"
MARK = "@@readme-step@@"
# Admissions a second apart: the join's answer is still WAITING, and the wait is short.
WALKTHROUGH_ENV = {"ADMIT_INTERVAL_SECONDS": "1"}


@dataclass(frozen=True)
class Step:
    command: str
    answer: str | None  # the answer the README shows for it


def walkthrough(readme: str) -> list[Step]:
    """The shell lines of the README's curl section, each with the answer shown under it."""
    code = _indented(readme.split(SECTION, 1)[1].split("\n### ", 1)[0])
    steps: list[Step] = []
    answer: list[str] = []

    def close() -> None:
        if answer and steps:
            steps[-1] = Step(steps[-1].command, "".join(answer))
        answer.clear()

    for line in code:
        if line.startswith("# {") or line.startswith("# ["):
            close()
            answer.append(line[2:])
        elif line.startswith("#  ") and answer:
            answer.append(line[3:].strip())  # an answer continued on the next line
        elif line.startswith("#"):
            close()
        else:
            close()
            steps.append(Step(line, None))
    close()
    assert code, "the README has no curl walk-through"
    return steps


def _indented(text: str) -> list[str]:
    """The lines of the section's code blocks (indented four spaces), unindented."""
    return [line[4:] for line in text.splitlines() if line.startswith("    ") and line.strip()]


def matches(shown: str, printed: str) -> bool:
    """Whether `printed` is the answer `shown`, where `..` in `shown` stands for anything."""
    pattern = ".*?".join(re.escape(part) for part in shown.split(".."))
    return re.fullmatch(pattern, printed, re.DOTALL) is not None


def run(steps: list[Step], url: str) -> list[str]:
    """What each step printed, run in order in one bash."""
    script = ["set -e"]
    for step in steps:
        script += [f"printf '\\n{MARK}\\n'", step.command]
    text = "\n".join(script)
    assert text.count(README_HOST) == 1, "the walk-through sets H= once, to the default address"
    text = text.replace(README_HOST, f"H={url};")
    done = subprocess.run(
        ["bash", "-c", text], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"the walk-through failed:\n{done.stdout}\n{done.stderr}"
    return [part.strip("\n") for part in done.stdout.split(f"\n{MARK}\n")[1:]]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through needs curl")
def test_the_readme_walkthrough_runs_as_written_and_answers_as_shown(
    start_server: StartServer,
) -> None:
    steps = walkthrough(README.read_text())
    assert sum(step.answer is not None for step in steps) >= 12
    server = start_server(WALKTHROUGH_ENV)
    printed = run(steps, server.url)
    assert len(printed) == len(steps)
    for step, output in zip(steps, printed, strict=True):
        if step.answer is not None:
            assert matches(step.answer, output), (
                f"{step.command}\n  the README shows: {step.answer}\n  it printed: {output}"
            )


def test_the_matcher_takes_dots_for_anything_and_nothing_else() -> None:
    assert matches('{"token":"..","rank":1}', '{"token":"7.abc","rank":1}')
    assert not matches('{"token":"..","rank":1}', '{"token":"7.abc","rank":2}')
    assert not matches('{"rank":1}', '{"rank":1,"more":true}')


def test_every_metric_the_readme_names_is_served(start_server: StartServer) -> None:
    names = sorted(set(re.findall(r"`(concert_queue_[a-z_]+)", README.read_text())))
    assert len(names) >= 10
    server = start_server({})
    with httpx.Client(timeout=10) as client:
        client.get(f"{server.url}/healthz")  # so that request figures exist
        text = client.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ).text
    # Declared counts as served: a room's waits and conversion have no sample until someone
    # has been admitted, but their family is there from the start.
    served = {match.group(1) for match in re.finditer(r"^([a-z_]+)[{ ]", text, re.MULTILINE)}
    served |= set(re.findall(r"^# TYPE (\S+)", text, re.MULTILINE))
    missing = [
        name
        for name in names
        if not served & {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    ]
    assert missing == []
