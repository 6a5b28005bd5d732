"""Hole punching as two pure state machines (clock injected, no sockets).

Messages are small JSON objects over UDP:

    peer -> rendezvous   {"op": "register", "name": "h1", "want": "h2"}
    rendezvous -> peer   {"op": "wait"}  or  {"op": "peer", "name": "h2", "public": "ip:port"}
    peer -> peer         {"op": "punch", "name": "h1", "seq": N}  and  {"op": "ack", ...}

The rendezvous server sees each peer's *public* endpoint (what its NAT mapped it to) and
tells each the other's. Both then send punches to that endpoint: the outbound punch opens
the sender's own NAT for the peer (filtering), and if the NATs keep one mapping for every
remote (endpoint-independent mapping) the peer's punch arrives. With address-and-port-
dependent ("symmetric") mapping the peer's endpoint as seen by the rendezvous server is
not the one its NAT uses towards us, so the punches are dropped: the attempt fails, as
it does through real symmetric NATs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

Addr = tuple[str, int]
REGISTER_EVERY_S = 0.5
PUNCH_EVERY_S = 0.2


def encode(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def decode(data: bytes) -> dict | None:
    """A message, or None for anything that is not one (counted and dropped by callers)."""
    try:
        msg = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return msg if isinstance(msg, dict) and isinstance(msg.get("op"), str) else None


def ep(addr: Addr) -> str:
    return f"{addr[0]}:{addr[1]}"


def parse_ep(text: str) -> Addr:
    host, _, port = text.rpartition(":")
    return host, int(port)


@dataclass
class Rendezvous:
    """Who registered from which public endpoint; pairs peers that want each other."""

    seen: dict[str, tuple[Addr, float]] = field(default_factory=dict)
    max_age: float = 60.0
    malformed: int = 0

    def handle(self, now: float, src: Addr, data: bytes) -> list[tuple[Addr, bytes]]:
        msg = decode(data)
        if msg is None or msg["op"] != "register" or not isinstance(msg.get("name"), str):
            self.malformed += 1
            return []
        self.seen[msg["name"]] = (src, now)
        want = msg.get("want")
        other = self.seen.get(want) if isinstance(want, str) else None
        if other is None or now - other[1] > self.max_age:
            return [(src, encode({"op": "wait"}))]
        return [(src, encode({"op": "peer", "name": want, "public": ep(other[0])})),
                (other[0], encode({"op": "peer", "name": msg["name"], "public": ep(src)}))]


@dataclass
class Peer:
    """One side: register until told the peer's endpoint, then punch until it answers."""

    name: str
    want: str
    rendezvous: Addr
    started: float
    timeout: float = 10.0
    peer_public: Addr | None = None
    connected_from: Addr | None = None  # where the peer's packets actually came from
    acked: bool = False
    failed_at: float | None = None
    sent_punches: int = 0
    _next_register: float = 0.0
    _next_punch: float = 0.0
    _seq: int = 0

    @property
    def done(self) -> bool:
        return self.succeeded or self.failed_at is not None

    @property
    def succeeded(self) -> bool:
        return self.connected_from is not None and self.acked

    def tick(self, now: float) -> list[tuple[Addr, bytes]]:
        out: list[tuple[Addr, bytes]] = []
        if self.done:
            return out
        if now - self.started >= self.timeout:
            self.failed_at = now
            return out
        if now >= self._next_register and (self.peer_public is None or not self.acked):
            self._next_register = now + REGISTER_EVERY_S
            out.append((self.rendezvous, encode({"op": "register", "name": self.name,
                                                 "want": self.want})))
        if self.peer_public is not None and now >= self._next_punch:
            self._next_punch = now + PUNCH_EVERY_S
            self._seq += 1
            self.sent_punches += 1
            out.append((self.peer_public, encode({"op": "punch", "name": self.name,
                                                  "seq": self._seq})))
        return out

    def receive(self, now: float, src: Addr, data: bytes) -> list[tuple[Addr, bytes]]:
        msg = decode(data)
        if msg is None:
            return []
        if msg["op"] == "peer" and src == self.rendezvous and msg.get("name") == self.want:
            self.peer_public = parse_ep(str(msg["public"]))
            return self.tick(now)
        if msg["op"] == "punch" and msg.get("name") == self.want:
            self.connected_from = src
            return [(src, encode({"op": "ack", "name": self.name, "seq": msg.get("seq")}))]
        if msg["op"] == "ack" and msg.get("name") == self.want:
            self.acked = True
            self.connected_from = self.connected_from or src
        return []

    def result(self, now: float) -> dict:
        return {"name": self.name, "peer": self.want,
                "result": "connected" if self.succeeded else "failed",
                "peer_public_seen_by_rendezvous": ep(self.peer_public)
                if self.peer_public else None,
                "peer_packets_came_from": ep(self.connected_from)
                if self.connected_from else None,
                "punches_sent": self.sent_punches, "seconds": round(now - self.started, 2)}
