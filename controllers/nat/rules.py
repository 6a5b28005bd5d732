"""A router's NAT rules expanded once into what the packet path looks up: static maps in
both directions, which public address belongs to which interface and rule, the inside
prefixes of each interface, and small helpers on frames and prefixes."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

from topologies.natconfig import NatInterface
from wire import frames as pk

from .ports import AddressPool
from .table import Kind


class Rules:
    """The configured rules of every outside interface of one router."""

    def __init__(self, configs: list[NatInterface]) -> None:
        self.configs = {c.interface: c for c in configs}
        self.pools = {c.interface: AddressPool([IPv4Address(a) for a in c.pool.addresses])
                      for c in configs if c.pool}
        # static rules expanded once (a prefix rule maps each of its addresses)
        self.static_in2out: dict[str, dict[IPv4Address, IPv4Address]] = {
            c.interface: {i: o for r in c.static for i, o in static_pairs(r.inside, r.outside)}
            for c in configs}
        self.static_out2in = {n: {o: i for i, o in m.items()}
                              for n, m in self.static_in2out.items()}
        self.public = self._public_index()

    def _public_index(self) -> dict[IPv4Address, tuple[str, Kind]]:
        """Outside address -> (interface, kind): where inbound traffic to it belongs."""
        out: dict[IPv4Address, tuple[str, Kind]] = {}
        for c in self.configs.values():
            if c.pat:
                out[IPv4Address(c.pat.address)] = (c.interface, Kind.PAT)
            for a in self.pool_addresses(c):
                out[a] = (c.interface, Kind.POOL)
            for o in self.static_out2in[c.interface]:
                out[o] = (c.interface, Kind.STATIC)
            for v in c.vip:
                out[IPv4Address(v.address)] = (c.interface, Kind.VIP)
        return out

    def pool_addresses(self, c: NatInterface) -> list[IPv4Address]:
        pool = self.pools.get(c.interface)
        return pool.all if pool is not None else []

    def static_inside(self, c: NatInterface, outside: IPv4Address) -> IPv4Address | None:
        return self.static_out2in[c.interface].get(outside)

    def static_outside(self, c: NatInterface, inside: IPv4Address) -> IPv4Address | None:
        return self.static_in2out[c.interface].get(inside)

    def inside_prefixes(self, c: NatInterface) -> list[IPv4Network]:
        nets = [IPv4Network(p) for rule in (c.pat, c.pool) if rule for p in rule.inside]
        return nets + [IPv4Network(s.inside) for s in c.static]

    def hairpin_targets(self, c: NatInterface) -> list[IPv4Address]:
        """The public addresses an inside host may address to reach its own NAT's side."""
        out = [IPv4Address(c.pat.address)] if c.pat else []
        out += self.pool_addresses(c)
        out += [IPv4Network(s.outside).network_address for s in c.static
                if IPv4Network(s.outside).prefixlen == 32]
        return out

    def is_hairpin(self, f: pk.Frame) -> bool:
        """A packet from inside this NAT to one of its public addresses."""
        if f.ip_dst not in self.public or f.ip_src is None:
            return False
        c = self.configs[self.public[f.ip_dst][0]]
        return any(f.ip_src in n for n in self.inside_prefixes(c))

    def kind_of_public(self, ip: IPv4Address | None) -> Kind | None:
        hit = self.public.get(ip) if ip is not None else None
        return hit[1] if hit is not None else None

    def conntrack_iface(self) -> str:
        return next((n for n, c in self.configs.items() if c.conntrack), "")


def static_pairs(inside: str, outside: str) -> list[tuple[IPv4Address, IPv4Address]]:
    """The address pairs of one static rule (a prefix maps each host address 1:1)."""
    a, b = IPv4Network(inside), IPv4Network(outside)
    if a.prefixlen == 32:
        return [(a.network_address, b.network_address)]
    base_a, base_b = int(a.network_address), int(b.network_address)
    return [(IPv4Address(base_a + i), IPv4Address(base_b + i))
            for i in range(1, a.num_addresses - 1)]


def in_any(ip: IPv4Address, prefixes: list[str]) -> bool:
    return any(ip in IPv4Network(p) for p in prefixes)


def masked(net: IPv4Network) -> str | tuple[str, str]:
    return str(net.network_address) if net.prefixlen == 32 else \
        (str(net.network_address), str(net.netmask))


def proto_number(name: str) -> int:
    return pk.PROTO_TCP if name == "tcp" else pk.PROTO_UDP


def frame_ports(f: pk.Frame) -> tuple[int, int] | None:
    """(source, destination) port; for ICMP echo, (id, id)."""
    if f.proto in (pk.PROTO_TCP, pk.PROTO_UDP) and len(f.l4) >= 4:
        sport, dport = struct.unpack("!HH", f.l4[:4])
        return sport, dport
    if f.proto == pk.PROTO_ICMP and len(f.l4) >= 8 and f.icmp_type in (0, 8):
        ident = struct.unpack("!H", f.l4[4:6])[0]
        return ident, ident
    return None


def short(prefix: str) -> str:
    return prefix[:-3] if prefix.endswith("/32") else prefix
