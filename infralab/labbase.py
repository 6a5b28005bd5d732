"""What a lab is, and what its checker may look at: a `Live` view of one running
emulation (its run directory, status file, API, logs and control sockets), a `Step`
(a title and a check of that view) and a `Lab` (a handout and its steps)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent / "labs"


class Live:
    """What a checker may look at: one running emulation, found by its run directory."""

    def __init__(self, rundir: Path) -> None:
        self.dir = Path(rundir)

    def status(self) -> dict:
        try:
            return json.loads((self.dir / "controller-status.json").read_text())
        except (OSError, ValueError):
            return {}

    def api(self, path: str) -> Any:
        from emulation.build import api_request

        base = self.status().get("api")
        if not base:
            raise OSError("the controller has no API")
        return api_request(base, path)

    def nat(self, router: str) -> dict:
        return self.api(f"/nat/{router}")[router]

    def service_file(self, label: str, name: str) -> str:
        try:
            return (self.dir / "services" / label / name).read_text(errors="replace")
        except OSError:
            return ""

    def host_file(self, host: str, name: str) -> str:
        try:
            return (self.dir / "hosts" / host / name).read_text(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def jsonl(text: str) -> list[dict]:
        """The records of a JSON-lines text; a line that is not JSON (one cut while being
        written) is skipped."""
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def control(self, path: Path, line: str) -> Any:
        from services.common.control import control_request

        return control_request(path, line)


Check = Callable[[Live], tuple[bool, str]]


@dataclass
class Step:
    title: str
    check: Check


@dataclass
class Lab:
    name: str
    title: str
    topology: str
    steps: list[Step]

    @property
    def handout(self) -> Path:
        return HERE / f"{self.name}.md"

    def run(self, live: Live) -> list[tuple[int, str, bool, str]]:
        out = []
        for i, step in enumerate(self.steps, start=1):
            try:
                ok, why = step.check(live)
            except Exception as e:  # a check that cannot look counts as not done
                ok, why = False, f"could not check: {e}"
            out.append((i, step.title, ok, why))
        return out
