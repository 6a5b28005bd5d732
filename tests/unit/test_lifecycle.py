"""services/common/lifecycle.StopSignals: signals are noted by the handlers and acted on
by `wait`, however many arrive and however close together."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from services.common.lifecycle import StopSignals


@pytest.fixture
def handlers():
    """Put back the signal handlers a test replaces (pytest's own SIGINT's among them)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def send_later(*signals: signal.Signals, gap: float = 0.0) -> threading.Thread:
    def run() -> None:
        time.sleep(0.2)
        for s in signals:
            os.kill(os.getpid(), s)
            time.sleep(gap)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_lifecycle_a_burst_of_sigterms_ends_the_wait(handlers):
    """Many SIGTERMs back to back (a handler runs inside another's): `wait` returns."""
    sig = StopSignals()
    sender = send_later(*[signal.SIGTERM] * 50)
    t0 = time.monotonic()
    assert sig.wait(timeout=10), "the burst did not end the wait"
    sender.join(5)
    assert time.monotonic() - t0 < 5 and set(sig.stop) == {signal.SIGTERM}


def test_lifecycle_sighup_runs_the_reload_outside_the_handler_then_sigterm_stops(handlers):
    ran: list[str] = []
    sig = StopSignals(hup=True)
    send_later(signal.SIGHUP, signal.SIGHUP, signal.SIGTERM, gap=0.3)
    assert sig.wait(lambda: ran.append(threading.current_thread().name), timeout=10)
    assert ran and all(name != "MainThread" for name in ran), ran
    assert sig.stop == [signal.SIGTERM]  # the stop came from the SIGTERM, not a SIGHUP


def test_lifecycle_a_signal_before_wait_is_kept(handlers):
    """A SIGTERM during the server's start-up (before `wait`) is not lost."""
    sig = StopSignals()
    os.kill(os.getpid(), signal.SIGTERM)
    t0 = time.monotonic()
    assert sig.wait(timeout=5)
    assert time.monotonic() - t0 < 1 and sig.stop == [signal.SIGTERM]


def test_lifecycle_wait_times_out_without_a_signal(handlers):
    sig = StopSignals()
    t0 = time.monotonic()
    assert sig.wait(timeout=0.3) is False and sig.stop == []
    assert 0.3 <= time.monotonic() - t0 < 2
