"""NAT rules of a router (NAT-*): parsed from the topology's `routers.X.nat` and validated.

One block per outside interface (the subnet name the translated traffic leaves by):

    nat:
      wan:
        pat: 203.0.113.1                 # or {address: A, inside: [prefixes]}
        pool: {addresses: 203.0.113.16/28, inside: [10.1.2.0/24]}
        static: [{inside: 10.1.9.80, outside: 203.0.113.80}]   # prefixes map 1:1 too
        vip: [{address: 203.0.113.90, port: 80, servers: [10.1.9.80]}]
        mapping: endpoint-independent    # | address-dependent | address-and-port-dependent
        filtering: endpoint-independent  # same choices (RFC 4787)
        timeouts: {udp: 300, tcp: 7440, tcp_transitory: 240, icmp: 60, pool: 300}
        conntrack: false                 # true: the PAT's TCP goes through OVS conntrack
        port_quota: 2000                 # PAT mappings one inside host may hold, per protocol

`conntrack: true` is an opt-in fast path for connection-heavy TCP: OVS's ct(nat)
translates every TCP connection of the PAT with no controller work per connection (about
5x the connection rate, see bench/RESULTS.md). The price: OVS picks a port per connection,
so TCP mapping is per connection, not endpoint-independent as RFC 5382 REQ-1 asks, and
filtering is address-and-port-dependent — whatever `mapping`/`filtering` say, which keep
applying to UDP and ICMP (the controller's bindings). The controller lists the entries
from the conntrack table and logs them. The default (false) is RFC-conformant.

Pure data plus checks: every problem names its rule (`routers.rc.nat.wan.static[1]`) so the
loader can point at the file line. The controller receives the same values through the
wiring plan (`to_dict`/`from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Network, collapse_addresses
from typing import Any

from .yamlfile import address, mapping

EI = "endpoint-independent"
AD = "address-dependent"
APD = "address-and-port-dependent"
BEHAVIOURS = (EI, AD, APD)

# RFC 4787 REQ-5 (UDP >= 2 min, 5 min recommended), RFC 5382 REQ-5 (TCP established
# >= 2 h 4 min, transitory >= 4 min), RFC 5508 REQ-1 (ICMP query >= 60 s).
DEFAULT_TIMEOUTS = {"udp": 300, "tcp": 7440, "tcp_transitory": 240, "icmp": 60, "pool": 300}
MAX_STATIC_PREFIX = 22  # a prefix rule expands to one flow pair per address
PROTOS = {"tcp": 6, "udp": 17}


class RuleError(ValueError):
    """A rule block of a router that cannot be used; `where` names the rule."""

    def __init__(self, where: str, problem: str) -> None:
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}")


class NatConfigError(RuleError):
    """A bad `routers.X.nat` rule."""


@dataclass
class StaticRule:
    inside: str  # address or prefix
    outside: str  # same size


@dataclass
class PoolRule:
    addresses: list[str]  # outside addresses handed out on demand
    inside: list[str]  # prefixes whose hosts use the pool


@dataclass
class PatRule:
    address: str
    inside: list[str]


@dataclass
class VipRule:
    address: str
    port: int
    servers: list[str]  # "ip" or "ip:port"
    proto: str = "tcp"


@dataclass
class NatInterface:
    """The NAT of one outside interface."""

    interface: str
    pat: PatRule | None = None
    pool: PoolRule | None = None
    static: list[StaticRule] = field(default_factory=list)
    vip: list[VipRule] = field(default_factory=list)
    mapping: str = EI
    filtering: str = EI
    timeouts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    conntrack: bool = False  # the PAT's TCP through OVS ct(nat) instead of bindings
    port_quota: int | None = None  # PAT mappings per inside host and protocol (None: any)

    def public_addresses(self) -> list[IPv4Address]:
        out: list[IPv4Address] = []
        if self.pat:
            out.append(IPv4Address(self.pat.address))
        if self.pool:
            out += [IPv4Address(a) for a in self.pool.addresses]
        for s in self.static:
            out += list(_addresses(IPv4Network(s.outside)))
        out += [IPv4Address(v.address) for v in self.vip]
        return out

    def public_prefixes(self) -> list[IPv4Network]:
        """The outside space this NAT answers for, as few prefixes as cover it (a static
        block whole, network and broadcast addresses included): what the router
        announces out of this interface when routes are computed (ROUTE-SPF)."""
        nets = [IPv4Network(s.outside) for s in self.static]
        nets += [IPv4Network(a) for a in self.public_addresses()]
        return list(collapse_addresses(nets))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NatInterface:
        return cls(
            d["interface"],
            PatRule(**d["pat"]) if d.get("pat") else None,
            PoolRule(**d["pool"]) if d.get("pool") else None,
            [StaticRule(**s) for s in d.get("static", [])],
            [VipRule(**v) for v in d.get("vip", [])],
            d.get("mapping", EI), d.get("filtering", EI),
            {**DEFAULT_TIMEOUTS, **d.get("timeouts", {})},
            bool(d.get("conntrack", False)),
            d.get("port_quota"),
        )


def _addresses(net: IPv4Network) -> list[IPv4Address]:
    return [net.network_address] if net.prefixlen == 32 else list(net.hosts())


def parse(data: Any, router: str, interfaces: dict[str, IPv4Network],
          own: set[IPv4Address]) -> list[NatInterface]:
    """`routers.<router>.nat` as NatInterface values; NatConfigError names the bad rule."""
    base = f"routers.{router}.nat"
    if data is None:
        return []
    if not isinstance(data, dict):
        raise NatConfigError(base, "expected a mapping of outside interface -> rules")
    out = [_parse_iface(str(k), v, f"{base}.{k}", interfaces, own) for k, v in data.items()]
    _check_overlaps(out, base)
    return out


def _m(value: Any, where: str, keys: set[str]) -> dict:
    return mapping(value, where, keys, NatConfigError)  # type: ignore[arg-type]


def _addr(v: Any, where: str) -> IPv4Address:
    return address(v, where, NatConfigError)


def _net(v: Any, where: str) -> IPv4Network:
    try:
        return IPv4Network(str(v), strict=True)
    except ValueError as e:
        raise NatConfigError(where, f"not an IPv4 address or prefix: {v!r} ({e})") from None


def _nets(v: Any, where: str) -> list[IPv4Network]:
    items = v if isinstance(v, list) else [v]
    return [_net(x, f"{where}[{i}]" if isinstance(v, list) else where)
            for i, x in enumerate(items)]


def _parse_iface(name: str, d: Any, where: str, interfaces: dict[str, IPv4Network],
                 own: set[IPv4Address]) -> NatInterface:
    d = _m(d, where, {"pat", "pool", "static", "vip", "mapping", "filtering", "timeouts",
                      "conntrack", "port_quota"})
    if name not in interfaces:
        raise NatConfigError(where, f"unknown interface {name!r}: the router's interfaces "
                             "are " + ", ".join(sorted(interfaces)))
    others = [n for s, n in interfaces.items() if s != name]
    nat = NatInterface(name)
    if d.get("pat") is not None:
        pw = f"{where}.pat"
        pd = d["pat"] if isinstance(d["pat"], dict) else {"address": d["pat"]}
        pd = _m(pd, pw, {"address", "inside"})
        if "address" not in pd:
            raise NatConfigError(pw, "needs 'address'")
        inside = _nets(pd["inside"], f"{pw}.inside") if "inside" in pd else others
        nat.pat = PatRule(str(_addr(pd["address"], f"{pw}.address")),
                          [str(n) for n in inside])
    if d.get("pool") is not None:
        pw = f"{where}.pool"
        pd = _m(d["pool"], pw, {"addresses", "inside"})
        if "addresses" not in pd:
            raise NatConfigError(pw, "needs 'addresses' (a prefix or a list of addresses)")
        addrs: list[IPv4Address] = []
        for n in _nets(pd["addresses"], f"{pw}.addresses"):
            addrs += _addresses(n)
        inside = _nets(pd["inside"], f"{pw}.inside") if "inside" in pd else others
        nat.pool = PoolRule([str(a) for a in addrs], [str(n) for n in inside])
    statics = d.get("static") or []
    if not isinstance(statics, list):
        raise NatConfigError(f"{where}.static", "expected a list of {inside, outside}")
    for i, s in enumerate(statics):
        sw = f"{where}.static[{i}]"
        sd = _m(s, sw, {"inside", "outside"})
        if "inside" not in sd or "outside" not in sd:
            raise NatConfigError(sw, "needs 'inside' and 'outside'")
        a, b = _net(sd["inside"], f"{sw}.inside"), _net(sd["outside"], f"{sw}.outside")
        if a.prefixlen != b.prefixlen:
            raise NatConfigError(sw, f"{a} and {b} differ in size: static NAT maps 1:1")
        if a.prefixlen < MAX_STATIC_PREFIX:
            raise NatConfigError(sw, f"/{a.prefixlen} is too large (at most "
                                 f"/{MAX_STATIC_PREFIX}: one flow pair per address)")
        nat.static.append(StaticRule(str(a), str(b)))
    vips = d.get("vip") or []
    if not isinstance(vips, list):
        raise NatConfigError(f"{where}.vip", "expected a list of {address, port, servers}")
    for i, v in enumerate(vips):
        vw = f"{where}.vip[{i}]"
        vd = _m(v, vw, {"address", "port", "servers", "proto"})
        for k in ("address", "port", "servers"):
            if k not in vd:
                raise NatConfigError(vw, f"needs '{k}'")
        port = vd["port"]
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise NatConfigError(f"{vw}.port", f"not a port: {port!r}")
        proto = str(vd.get("proto", "tcp"))
        if proto not in PROTOS:
            raise NatConfigError(f"{vw}.proto", f"unknown protocol {proto!r} (tcp or udp)")
        servers = vd["servers"]
        if not isinstance(servers, list) or not servers:
            raise NatConfigError(f"{vw}.servers", "expected a non-empty list of addresses")
        for j, srv in enumerate(servers):
            host, _, sport = str(srv).partition(":")
            _addr(host, f"{vw}.servers[{j}]")
            if sport and not (sport.isdigit() and 1 <= int(sport) <= 65535):
                raise NatConfigError(f"{vw}.servers[{j}]", f"bad port in {srv!r}")
        nat.vip.append(VipRule(str(_addr(vd["address"], f"{vw}.address")), port,
                               [str(s) for s in servers], proto))
    for key in ("mapping", "filtering"):
        if key in d:
            if d[key] not in BEHAVIOURS:
                raise NatConfigError(f"{where}.{key}", f"unknown behaviour {d[key]!r} (one of: "
                                     + ", ".join(BEHAVIOURS) + ")")
            setattr(nat, key, d[key])
    for k, v in _m(d.get("timeouts") or {}, f"{where}.timeouts", set(DEFAULT_TIMEOUTS)).items():
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 86400:
            raise NatConfigError(f"{where}.timeouts.{k}", f"{v!r} is not 1..86400 seconds")
        nat.timeouts[k] = v
    if "conntrack" in d:
        if not isinstance(d["conntrack"], bool):
            raise NatConfigError(f"{where}.conntrack", "expected true or false")
        if d["conntrack"] and not nat.pat:
            raise NatConfigError(f"{where}.conntrack", "the conntrack fast path is for a PAT: "
                                 "give pat")
        nat.conntrack = d["conntrack"]
    if "port_quota" in d:
        q = d["port_quota"]
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 64512:
            raise NatConfigError(f"{where}.port_quota", f"{q!r} is not 1..64512 mappings")
        nat.port_quota = q
    if not (nat.pat or nat.pool or nat.static or nat.vip):
        raise NatConfigError(where, "no rule: give pat, pool, static or vip")
    for pub in nat.public_addresses():
        if pub in own and not (nat.pat and pub == IPv4Address(nat.pat.address)):
            raise NatConfigError(where, f"{pub} is one of the router's own addresses (only "
                                 "the PAT address may be the interface's own)")
    return nat


def _check_overlaps(nats: list[NatInterface], base: str) -> None:
    """No outside address in two rules; no inside host claimed by two dynamic rules."""
    owner: dict[IPv4Address, str] = {}
    for nat in nats:
        w = f"{base}.{nat.interface}"
        rules: list[tuple[str, list[IPv4Address]]] = []
        if nat.pat:
            rules.append((f"{w}.pat", [IPv4Address(nat.pat.address)]))
        if nat.pool:
            rules.append((f"{w}.pool", [IPv4Address(a) for a in nat.pool.addresses]))
        rules += [(f"{w}.static[{i}]", _addresses(IPv4Network(s.outside)))
                  for i, s in enumerate(nat.static)]
        rules += [(f"{w}.vip[{i}]", [IPv4Address(v.address)]) for i, v in enumerate(nat.vip)]
        for rw, addrs in rules:
            for a in addrs:
                if a in owner:
                    raise NatConfigError(rw, f"outside address {a} overlaps {owner[a]}")
                owner[a] = rw
        seen: list[tuple[str, IPv4Network]] = []
        for i, s in enumerate(nat.static):
            n = IPv4Network(s.inside)
            for rw, m in seen:
                if n.overlaps(m):
                    raise NatConfigError(f"{w}.static[{i}]", f"inside {n} overlaps {rw}")
            seen.append((f"{w}.static[{i}]", n))
        if nat.pat and nat.pool:
            for pool_net in map(IPv4Network, nat.pool.inside):
                for pat_net in map(IPv4Network, nat.pat.inside):
                    if pool_net.overlaps(pat_net):
                        raise NatConfigError(f"{w}.pool.inside", f"{pool_net} overlaps the "
                                             f"PAT's inside {pat_net}: a host would match "
                                             "both rules (give pat an explicit inside list)")
