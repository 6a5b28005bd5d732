"""A service process's life: serve until SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import gc
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


GC_YOUNG = 20000  # allocations between young collections (Python's default: 700)


def settle_heap() -> None:
    """What a server has loaded (a zone, a lease pool) lives as long as the process:
    moved out of the cyclic collector's sight, and young objects collected less often.
    Full passes over a /16 pool's addresses were a third of the DHCP server's time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 100)
