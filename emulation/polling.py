"""Waiting by polling a condition with a deadline (never a bare sleep): the build's steps
and the scenario tests wait the same way."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from emulation.errors import BuildError


def wait_for(cond: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> object:
    """Poll `cond` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_listening(node, port: int, timeout: float = 10, proc: subprocess.Popen | None = None,
                   what: str = "a server") -> None:
    """Poll until something on `node` listens on TCP/UDP `port`; fail early if `proc`,
    the process meant to listen, has exited."""
    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            raise BuildError(f"{what} exited with {proc.returncode} before it was ready")
        return bool(node.cmd(f"ss -Hltnu 'sport = :{port}'").strip())

    wait_for(listening, timeout, f"{what} to listen on port {port}", 0.1)
