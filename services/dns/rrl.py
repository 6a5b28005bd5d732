"""Response rate limiting for the authoritative server (DNS amplification).

A spoofed-source flood makes an authoritative server send its (larger) answers to a
victim. RRL, as in BIND/NSD/Knot, caps the answers per client network (IPv4 /24) with a
token bucket; over the cap, answers are dropped, except every `slip`-th, which goes out as
a tiny truncated reply (TC=1) so a real client behind a busy /24 retries over TCP, which
a spoofer cannot. Pure: `check(now, address)` decides; the UDP loop obeys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEND, DROP, SLIP = "send", "drop", "slip"
MAX_TRACKED = 65536  # client networks remembered; the stalest are forgotten beyond


@dataclass
class Bucket:
    tokens: float
    last: float
    dropped: int = 0


@dataclass
class RateLimiter:
    rate: float  # answers per second per /24
    slip: int = 2  # every slip-th limited answer goes out truncated (0: never)
    burst: float = 0.0  # bucket size (default: one second's worth)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"sent": 0, "dropped": 0,
                                                           "slipped": 0})

    def check(self, now: float, address: str) -> str:
        key = address.rsplit(".", 1)[0]  # the /24
        size = self.burst or self.rate
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= MAX_TRACKED:
                self.buckets.pop(min(self.buckets, key=lambda k: self.buckets[k].last))
            b = self.buckets[key] = Bucket(size, now)
        b.tokens = min(size, b.tokens + (now - b.last) * self.rate)
        b.last = now
        if b.tokens >= 1:
            b.tokens -= 1
            self.stats["sent"] += 1
            return SEND
        b.dropped += 1
        if self.slip and b.dropped % self.slip == 0:
            self.stats["slipped"] += 1
            return SLIP
        self.stats["dropped"] += 1
        return DROP
