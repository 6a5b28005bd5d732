"""A service process's life: serve until SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import signal
import threading


def run_until_signal(server, on_hup=None, wait_loaded: float = 0.0) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP calls `on_hup` (reload)."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if on_hup is not None:
        def hup(*_) -> None:
            threading.Thread(target=on_hup, daemon=True).start()

        signal.signal(signal.SIGHUP, hup)
    server.start(wait_loaded)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0
