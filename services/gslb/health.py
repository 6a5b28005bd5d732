"""Health of one member as a rise/fall state machine: pure, the clock passed in.

A member starts in the check's `initial` state (answer with it until proven down, or wait
for `rise` good checks); `fall` consecutive failures take it down, `rise` consecutive
successes bring it back. Every transition is returned so the server can log it.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.gslb.config import Check


@dataclass
class Transition:
    member: str
    old: str
    new: str
    at: float
    detail: str


class Health:
    def __init__(self, member: str, check: Check, now: float) -> None:
        self.member = member
        self.check = check
        self.state = check.initial
        self.successes = 0
        self.failures = 0
        self.checks = 0
        self.since = now
        self.last_detail = "not checked yet"
        self.rtt_ms: float | None = None
        self.load: int | None = None

    @property
    def up(self) -> bool:
        return self.state == "up"

    def record(self, ok: bool, now: float, detail: str = "", rtt_ms: float | None = None,
               load: int | None = None) -> Transition | None:
        """One probe's verdict; returns the transition it caused, if any."""
        self.checks += 1
        self.last_detail = detail
        if ok:
            self.successes += 1
            self.failures = 0
            self.rtt_ms = rtt_ms if rtt_ms is not None else self.rtt_ms
            self.load = load if load is not None else self.load
            if self.state == "down" and self.successes >= self.check.rise:
                return self._move("up", now, detail)
        else:
            self.failures += 1
            self.successes = 0
            if self.state == "up" and self.failures >= self.check.fall:
                self.rtt_ms = None
                return self._move("down", now, detail)
        return None

    def _move(self, new: str, now: float, detail: str) -> Transition:
        t = Transition(self.member, self.state, new, now, detail)
        self.state = new
        self.since = now
        return t

    def view(self, now: float) -> dict:
        return {"state": self.state, "for_s": round(now - self.since, 1), "checks": self.checks,
                "last": self.last_detail,
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2), "load": self.load}
