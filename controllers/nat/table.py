"""The NAT table: its entries and bindings, and the only code that adds, binds, unbinds
and removes them, keeping every index in step (as faucet's VLAN host cache).

Vocabulary (RFC 4787): a *mapping* (an `Entry`) ties an inside endpoint to an outside
one; which remotes share a mapping is the *mapping behaviour*. A *binding* is one pair of
flows (outbound SNAT in POST_NAT, inbound DNAT in PRE_NAT) of a mapping; bindings are per
remote as fine as the *filtering behaviour* needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address
from typing import NamedTuple

from wire import frames as pk

L4 = {pk.PROTO_TCP: "tcp", pk.PROTO_UDP: "udp", pk.PROTO_ICMP: "icmp"}

Endpoint = tuple[IPv4Address, int]  # (address, port); port 0: address-only


class Kind(StrEnum):
    STATIC = "static"  # 1:1, an address or a prefix (netmap); flows from the rules alone
    POOL = "pool"  # dynamic: an outside address per inside host while it is in use
    PAT = "pat"  # many inside endpoints on the ports of one outside address
    VIP = "vip"  # DNAT: connections to a public address:port spread over inside servers
    HAIRPIN = "hairpin"  # an inside host to a public address of its own NAT


class InsideKey(NamedTuple):
    """How a new packet finds its entry: what the first packet of the entry carried."""

    iface: str
    kind: Kind
    proto: int
    ip: IPv4Address
    port: int
    remote: tuple  # the remote part: () or the mapping's remote, the VIP, the public peer


class OutsideKey(NamedTuple):
    """How an inbound packet finds its entry: outside endpoints are unique per protocol."""

    proto: int
    ip: IPv4Address
    port: int


@dataclass
class Binding:
    cookie: int
    remote: tuple  # () | (ip,) | (ip, port): the remote this binding's flows match
    packets: int = 0
    bytes: int = 0


@dataclass
class Entry:
    """One row of the NAT table."""

    id: int
    kind: Kind
    iface: str
    proto: int  # 0: every protocol (address-only translation)
    inside: Endpoint
    outside: Endpoint
    created: float
    last_seen: float
    remote: tuple = ()  # the remote part of the mapping key (address-dependent mappings)
    remote_public: tuple = ()  # hairpin: the public endpoint the inside host addressed
    owns_port: bool = False  # hairpin: its public port was allocated for it (free after)
    bindings: dict[tuple, Binding] = field(default_factory=dict)
    done_packets: int = 0  # counters of bindings already gone
    done_bytes: int = 0

    @property
    def packets(self) -> int:
        return self.done_packets + sum(b.packets for b in self.bindings.values())

    @property
    def bytes(self) -> int:
        return self.done_bytes + sum(b.bytes for b in self.bindings.values())

    @property
    def inside_key(self) -> InsideKey:
        if self.kind is Kind.POOL:
            return InsideKey(self.iface, self.kind, 0, self.inside[0], 0, ())
        if self.kind is Kind.VIP:  # found by its client and the VIP it asked for
            return InsideKey(self.iface, self.kind, self.proto, self.remote[0], self.remote[1],
                             self.outside)
        remote = self.remote_public if self.kind is Kind.HAIRPIN else self.remote
        return InsideKey(self.iface, self.kind, self.proto, self.inside[0], self.inside[1],
                         remote)

    @property
    def outside_key(self) -> OutsideKey | None:
        """Only pool and PAT entries own their outside endpoint."""
        if self.kind in (Kind.POOL, Kind.PAT):
            return OutsideKey(self.proto, *self.outside)
        return None

    def count(self, now: float, nbytes: int) -> None:
        """A packet the controller itself translated (no flow counts it)."""
        self.last_seen = now
        self.done_packets += 1
        self.done_bytes += nbytes

    def view(self, now: float) -> dict:
        def ep(a: tuple) -> str:
            return f"{a[0]}:{a[1]}" if a[1] else str(a[0])
        return {
            "id": self.id, "kind": str(self.kind), "interface": self.iface,
            "proto": L4.get(self.proto, "any") if self.proto else "any",
            "inside": ep(self.inside), "outside": ep(self.outside),
            "remotes": [":".join(map(str, b.remote)) or "*" for b in self.bindings.values()],
            "age": round(now - self.created, 1), "idle": round(now - self.last_seen, 1),
            "packets": self.packets, "bytes": self.bytes,
        }

    def describe(self) -> dict:
        """The entry's identity for the translation log."""
        v = self.view(self.created)
        return {k: v[k] for k in ("kind", "interface", "proto", "inside", "outside")} | (
            {"remote": ":".join(map(str, self.remote))} if self.remote else {})


class NatTable:
    """Entries by id, by inside key, by outside endpoint and by binding cookie; the ICMP
    entries (expired by the clock, not by flows) and the PAT mappings each host holds."""

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self._by_inside: dict[InsideKey, Entry] = {}
        self._by_outside: dict[OutsideKey, Entry] = {}
        self._by_cookie: dict[int, tuple[Entry, tuple]] = {}
        self.icmp: dict[int, Entry] = {}
        self._per_host: dict[tuple[IPv4Address, int], int] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(list(self.entries.values()))

    @property
    def cookies(self) -> list[int]:
        return list(self._by_cookie)

    # ---- lookups ---------------------------------------------------------------------------
    def find(self, key: InsideKey) -> Entry | None:
        return self._by_inside.get(key)

    def find_outside(self, proto: int, ip: IPv4Address, port: int) -> Entry | None:
        return self._by_outside.get(OutsideKey(proto, ip, port))

    def pool_entry(self, ip: IPv4Address) -> Entry | None:
        """The pool entry holding outside address `ip`."""
        return self._by_outside.get(OutsideKey(0, ip, 0))

    def by_cookie(self, cookie: int) -> tuple[Entry, tuple] | None:
        return self._by_cookie.get(cookie)

    def held_by(self, ip: IPv4Address, proto: int) -> int:
        """PAT mappings host `ip` holds for `proto` (the port quota)."""
        return self._per_host.get((ip, proto), 0)

    # ---- changes -------------------------------------------------------------------------
    def add(self, e: Entry) -> Entry:
        self.entries[e.id] = e
        self._by_inside[e.inside_key] = e
        out = e.outside_key
        if out is not None:
            self._by_outside[out] = e
        if e.proto == pk.PROTO_ICMP:
            self.icmp[e.id] = e
        if e.kind is Kind.PAT:
            k = (e.inside[0], e.proto)
            self._per_host[k] = self._per_host.get(k, 0) + 1
        return e

    def bind(self, e: Entry, remote: tuple, cookie: int) -> Binding:
        b = e.bindings[remote] = Binding(cookie, remote)
        if cookie:
            self._by_cookie[cookie] = (e, remote)
        return b

    def unbind(self, cookie: int) -> tuple[Entry, Binding | None] | None:
        """Forget the binding of `cookie`; (its entry, the binding), None if unknown."""
        hit = self._by_cookie.pop(cookie, None)
        if hit is None:
            return None
        e, remote = hit
        return e, e.bindings.pop(remote, None)

    def unbind_all(self, e: Entry) -> list[int]:
        """Forget every binding of `e` (its counters kept); returns their cookies."""
        cookies = [b.cookie for b in e.bindings.values() if b.cookie]
        for c in cookies:
            self._by_cookie.pop(c, None)
        e.done_packets, e.done_bytes = e.packets, e.bytes
        e.bindings.clear()
        return cookies

    def remove(self, e: Entry) -> None:
        self.entries.pop(e.id, None)
        self.icmp.pop(e.id, None)
        if self._by_inside.get(e.inside_key) is e:
            del self._by_inside[e.inside_key]
        out = e.outside_key
        if out is not None and self._by_outside.get(out) is e:
            del self._by_outside[out]
        if e.kind is Kind.PAT:
            k = (e.inside[0], e.proto)
            self._per_host[k] = self._per_host.get(k, 1) - 1
            if self._per_host[k] <= 0:
                del self._per_host[k]
