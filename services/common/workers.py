"""`--workers N`: N processes answering one address, as NSD's `server-count`.

Each worker is a whole server of its own (it loads the zone files or the config itself,
runs its own checks and timers) bound with SO_REUSEPORT, so the kernel spreads queries
over them and they share nothing but the files. Worker 0 is the process that was
started: it keeps the control socket and sends NOTIFY; a reload there (SIGHUP or the
control socket) is passed on to the others by SIGHUP. The others end with worker 0: on
its exit it stops them by their PIDs, and the kernel stops them if it is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from services.common.lifecycle import run_until_signal

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the process that forked it ends, however it ends."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def worker_log(worker: int, log: Callable[[str], None]) -> Callable[[str], None]:
    """Worker 0 logs as the single process did; the others say which they are."""
    return log if worker == 0 else (lambda m: log(f"[worker {worker}] {m}"))


def run_workers(count: int, make: Callable[[int], Any], reloads: bool = True,
                wait_loaded: float = 0.0) -> int:
    """Run `make(i)`'s server in `count` processes (i = 0 here, 1.. in forked children)
    until SIGTERM/SIGINT. With `reloads`, SIGHUP reloads (`server.reload`) and worker 0's
    reloads reach every worker."""
    if count <= 1:
        server = make(0)
        return run_until_signal(server, on_hup=server.reload if reloads else None,
                                wait_loaded=wait_loaded)
    children: list[int] = []
    sys.stdout.flush()
    for i in range(1, count):
        pid = os.fork()
        if pid == 0:  # a worker: its own server, until worker 0 stops it
            code = 1
            try:
                _die_with_parent()
                server = make(i)
                code = run_until_signal(server, on_hup=server.reload if reloads else None,
                                        wait_loaded=wait_loaded)
            finally:
                sys.stdout.flush()
                os._exit(code)
        children.append(pid)

    def tell_workers() -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    try:
        server = make(0)
        if reloads:
            server.on_reload = tell_workers
        return run_until_signal(server, on_hup=server.reload if reloads else None,
                                wait_loaded=wait_loaded)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
