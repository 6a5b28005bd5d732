"""A service process's life: serve until SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import gc
import os
import select
import signal
import threading
import time
from collections.abc import Callable


class StopSignals:
    """SIGTERM/SIGINT (and SIGHUP, with `hup`) noted from the moment this is made, acted
    on by `wait`. The handlers only append to a list and write a byte to a pipe `wait`
    selects on (so it wakes at once): a handler that takes a lock (Event.set,
    Thread.start) deadlocks when its signal lands while the main thread holds that lock -
    a second SIGTERM inside the first's Event.set left a `--workers` worker running for
    good after worker 0 was killed."""

    def __init__(self, hup: bool = False) -> None:
        self.stop: list[int] = []  # the stop signals' numbers, in order of arrival
        self.hups: list[int] = []
        # (never closed: a late signal must not write into a reused descriptor)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.signal(signal.SIGTERM, lambda n, _: self._note(self.stop, n))
        signal.signal(signal.SIGINT, lambda n, _: self._note(self.stop, n))
        if hup:
            signal.signal(signal.SIGHUP, lambda n, _: self._note(self.hups, n))

    def _note(self, queue: list[int], signum: int) -> None:
        queue.append(signum)
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # (the pipe full: `wait` is awake already)
            pass

    def wait(self, on_hup: Callable[[], object] | None = None,
             timeout: float | None = None) -> bool:
        """Block until SIGTERM or SIGINT (True), or `timeout` seconds (False); run
        `on_hup` in a thread after each SIGHUP (several before the next look: one run,
        which reads everything afresh)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self.hups and on_hup is not None:
                self.hups.clear()
                threading.Thread(target=on_hup, daemon=True).start()
            select.select([self._wake_r], [], [], 1.0)
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        return True


def run_until_signal(server, on_hup=None, wait_loaded: float = 0.0) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP calls `on_hup` (reload)."""
    signals = StopSignals(hup=on_hup is not None)
    server.start(wait_loaded)
    signals.wait(on_hup)
    server.stop()
    return 0


GC_YOUNG = 20000  # allocations between young collections (Python's default: 700)


def settle_heap() -> None:
    """What a server has loaded (a zone, a lease pool) lives as long as the process:
    moved out of the cyclic collector's sight, and young objects collected less often.
    Full passes over a /16 pool's addresses were a third of the DHCP server's time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 100)
