"""NAT/PAT of one router (NAT-*): the translation table and the flows that carry it out.

Pure, like router.py: every entry point takes `now` and returns OpenFlow messages. The
switch translates established traffic itself with `set_field` flows; the controller sees
the first packet of a new binding (a POST_NAT/PRE_NAT miss), ICMP (query ids cannot be
rewritten by OpenFlow 1.3, and errors quote a datagram that must be translated too) and
the FlowRemoved of a binding whose idle timeout ran out.

Vocabulary (RFC 4787): a *mapping* ties an inside endpoint to an outside one; which
remotes share a mapping is the *mapping behaviour*. A *binding* is one pair of flows
(outbound SNAT in POST_NAT, inbound DNAT in PRE_NAT) of a mapping; bindings are per
remote as fine as the *filtering behaviour* needs, so an inbound packet from a remote the
inside host never talked to finds no flow and is dropped by the controller.

Flow cookies: NAT flows carry COOKIE_NAT | binding id, so a FlowRemoved or a flow-stats
reply names its binding; both flows of a binding share the cookie.
"""

from __future__ import annotations

import itertools
import re
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from topologies.natconfig import AD, APD, EI, NatInterface, PatRule
from topologies.plan import RouterPlan
from wire import frames as pk

from .messages import (
    CONTROLLER,
    COOKIE,
    META_MASK,
    T_CLASSIFY,
    T_EGRESS,
    T_POST_NAT,
    T_PRE_NAT,
    T_ROUTE,
    TABLE,
    Conntrack,
    FlowMod,
    Message,
    Output,
    PacketOut,
    SetField,
)

COOKIE_NAT = COOKIE | (1 << 48)
COOKIE_NAT_MASK = 0xFFFF000000000000
GRAIN = {EI: 0, AD: 1, APD: 2}
L4 = {pk.PROTO_TCP: "tcp", pk.PROTO_UDP: "udp", pk.PROTO_ICMP: "icmp"}
PORT_LO, PORT_HI = 1024, 65535

# Priorities in PRE_NAT/POST_NAT: specific bindings over rules over misses.
P_ICMP_ERR = 400  # ICMP errors to/from translated addresses: controller (quote rewrite)
P_HAIRPIN = 370  # PRE_NAT: an inside host to a public address of its own NAT
P_VIP = 350  # VIP connections
P_STATIC = 300
P_PAT = 210
P_POOL = 200
P_REFUSED = 205  # a refused host's packets dropped for a second (no packet-in storm)
P_MISS = 100  # + prefix length: to the controller
P_OWN_PAT = 310  # CLASSIFY: TCP/UDP to a PAT address that is the router's own -> PRE_NAT
P_TCP_CLOSE = 320  # CLASSIFY: a copy of inbound FIN/RST to the PAT -> controller (transitory)
TCP_FIN, TCP_RST = 0x01, 0x04
P_CT = 180  # conntrack fast path: the PAT's TCP (above the misses, below bindings)
P_CT_DROP = 3000  # ROUTE: new/invalid tracked TCP to the PAT address (unsolicited)
CT_ZONE_BASE = 0x1A00  # conntrack zone of router n: CT_ZONE_BASE + n (its dpid)
COOKIE_CT_DROP = COOKIE_NAT | 0xFFFFFFFF  # its drops are counted from flow stats

LOG_DROPS_PER_S = 5  # unsolicited inbound packets are counted; only this many logged/s


@dataclass
class Binding:
    cookie: int
    remote: tuple  # () | (ip,) | (ip, port): the remote this binding's flows match
    packets: int = 0
    bytes: int = 0
    closing: bool = False  # TCP: FIN/RST seen, idles out after the transitory timeout


@dataclass
class Entry:
    """One row of the NAT table."""

    id: int
    kind: str  # static | pool | pat | vip
    iface: str
    proto: int  # 0: every protocol (address-only translation)
    inside: tuple[IPv4Address, int]
    outside: tuple[IPv4Address, int]
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

    def view(self, now: float) -> dict:
        def ep(a: tuple) -> str:
            return f"{a[0]}:{a[1]}" if a[1] else str(a[0])
        return {
            "id": self.id, "kind": self.kind, "interface": self.iface,
            "proto": L4.get(self.proto, "any") if self.proto else "any",
            "inside": ep(self.inside), "outside": ep(self.outside),
            "remotes": [":".join(map(str, b.remote)) or "*" for b in self.bindings.values()],
            "age": round(now - self.created, 1), "idle": round(now - self.last_seen, 1),
            "packets": self.packets, "bytes": self.bytes,
        }


@dataclass
class Counters:
    created: int = 0
    expired: int = 0
    refused: int = 0  # pool/ports exhausted
    inbound_dropped: int = 0  # no binding: unsolicited, or filtered
    icmp_translated: int = 0
    malformed: int = 0
    conntrack_dropped: int = 0  # unsolicited TCP to a conntrack PAT (from flow stats)


@dataclass
class Outcome:
    """What to do with a packet the switch sent up."""

    msgs: list[Message] = field(default_factory=list)
    refused: bool = False  # the inside sender should get ICMP admin-prohibited


class Nat:
    """NAT state of one router."""

    def __init__(self, plan: RouterPlan, configs: list[NatInterface]) -> None:
        self.name = plan.name
        self.zone = CT_ZONE_BASE + plan.dpid
        self.conntrack_rows: list[dict] = []  # the fast path's entries, last seen
        self._ct_seen: dict[tuple, float] = {}
        self.configs = {c.interface: c for c in configs}
        self.ifaces = {i.subnet: i for i in plan.interfaces}
        self.own_ips = {IPv4Address(i.ip) for i in plan.interfaces}
        self.ports = {c.interface: [p.port for p in self.ifaces[c.interface].ports]
                      for c in configs}
        self.entries: dict[int, Entry] = {}
        self.by_cookie: dict[int, tuple[Entry, tuple]] = {}
        self.by_inside: dict[tuple, Entry] = {}  # (iface, kind, proto, ip, port, remote)
        self.by_outside: dict[tuple, Entry] = {}  # (proto, ip, port): ports are unique
        self.used_ports: dict[tuple[IPv4Address, int], set[int]] = {}
        self.per_host: dict[tuple[IPv4Address, int], int] = {}  # PAT mappings per (host, proto)
        self.pool_free: dict[str, list[IPv4Address]] = {
            c.interface: [IPv4Address(a) for a in c.pool.addresses] for c in configs if c.pool}
        self.pool_used: dict[IPv4Address, Entry] = {}
        self.vip_next: dict[tuple, int] = {}
        self.counters = Counters()
        self.events: list[dict] = []  # translation log, drained by the app
        self.state_log: list[dict] = []  # state journal (restore after a restart), drained
        self._ids = itertools.count(1)
        self._cursor = PORT_LO
        self._drop_log = (0.0, 0)
        # static rules expanded once (a prefix rule maps each of its addresses)
        self.static_in2out: dict[str, dict[IPv4Address, IPv4Address]] = {
            c.interface: {i: o for r in c.static for i, o in _pairs(r.inside, r.outside)}
            for c in configs}
        self.static_out2in = {n: {o: i for i, o in m.items()}
                              for n, m in self.static_in2out.items()}
        self.icmp_entries: dict[int, Entry] = {}  # expired by tick(), not by flows
        self.public = self._public_index()

    # ---- configuration ------------------------------------------------------------------
    def _public_index(self) -> dict[IPv4Address, tuple[str, str]]:
        """Outside address -> (interface, kind): where inbound traffic to it belongs."""
        out: dict[IPv4Address, tuple[str, str]] = {}
        for c in self.configs.values():
            if c.pat:
                out[IPv4Address(c.pat.address)] = (c.interface, "pat")
            for a in self.pool_free.get(c.interface, []):
                out[a] = (c.interface, "pool")
            for o in self.static_out2in[c.interface]:
                out[o] = (c.interface, "static")
            for v in c.vip:
                out[IPv4Address(v.address)] = (c.interface, "vip")
        return out

    def set_behaviour(self, now: float, iface: str, mapping: str | None = None,
                      filtering: str | None = None) -> list[Message]:
        """Change a NAT's RFC 4787 behaviour live (labs, the STUN scenario); drops the PAT
        bindings made under the old behaviour, which no longer fit it."""
        c = self.configs[iface]
        c.mapping = mapping or c.mapping
        c.filtering = filtering or c.filtering
        msgs: list[Message] = []
        for e in [e for e in self.entries.values() if e.iface == iface and e.kind == "pat"]:
            msgs += self._remove(now, e, "reconfigured")
        return msgs

    # ---- switch connected -----------------------------------------------------------------
    def connect(self, now: float) -> list[Message]:
        """Rule flows (static, misses, ICMP errors to the controller) and live bindings."""
        msgs: list[Message] = []
        for c in self.configs.values():
            for port in self.ports[c.interface]:
                meta = (port, META_MASK)
                for s in c.static:
                    for ins, out in _pairs(s.inside, s.outside):
                        msgs.append(FlowMod(T_POST_NAT, P_STATIC, {
                            "eth_type": pk.ETH_IPV4, "metadata": meta, "ipv4_src": str(ins)},
                            (SetField("ipv4_src", str(out)),), goto=T_EGRESS))
                        msgs += self._icmp_error_up(T_POST_NAT, {"metadata": meta,
                                                                 "ipv4_src": str(ins)})
                for rule_inside, kind in ((c.pool.inside if c.pool else [], "pool"),
                                          (c.pat.inside if c.pat else [], "pat")):
                    for prefix in map(IPv4Network, rule_inside):
                        m = {"eth_type": pk.ETH_IPV4, "metadata": meta,
                             "ipv4_src": _masked(prefix)}
                        msgs.append(FlowMod(T_POST_NAT, P_MISS + prefix.prefixlen, m,
                                            (Output(CONTROLLER),)))
                        if kind == "pool":
                            msgs += self._icmp_error_up(T_POST_NAT, dict(m))
            for s in c.static:
                for ins, out in _pairs(s.inside, s.outside):
                    msgs.append(FlowMod(T_PRE_NAT, P_STATIC, {
                        "eth_type": pk.ETH_IPV4, "ipv4_dst": str(out)},
                        (SetField("ipv4_dst", str(ins)),), goto=T_ROUTE))
                    msgs += self._icmp_error_up(T_PRE_NAT, {"ipv4_dst": str(out)})
            for a in self.pool_free.get(c.interface, []):
                msgs.append(FlowMod(T_PRE_NAT, P_MISS, {"eth_type": pk.ETH_IPV4,
                                                        "ipv4_dst": str(a)}, (Output(CONTROLLER),)))
                msgs += self._icmp_error_up(T_PRE_NAT, {"ipv4_dst": str(a)})
            if c.pat:
                pat = IPv4Address(c.pat.address)
                msgs.append(FlowMod(T_PRE_NAT, P_MISS, {"eth_type": pk.ETH_IPV4,
                                                        "ipv4_dst": str(pat)},
                                    (Output(CONTROLLER),)))
                if pat in self.own_ips:
                    for proto in (pk.PROTO_TCP, pk.PROTO_UDP):
                        msgs.append(FlowMod(T_CLASSIFY, P_OWN_PAT, {
                            "eth_type": pk.ETH_IPV4, "ipv4_dst": str(pat), "ip_proto": proto},
                            goto=T_PRE_NAT))
            msgs += self._hairpin_misses(c)
            if c.pat and c.conntrack:
                msgs += self._conntrack_flows(c)
            elif c.pat:
                msgs += self._tcp_close_copies(c)
            for v in c.vip:
                msgs.append(FlowMod(T_PRE_NAT, P_MISS, {
                    "eth_type": pk.ETH_IPV4, "ipv4_dst": v.address,
                    "ip_proto": _proto(v.proto), f"{v.proto}_dst": v.port}, (Output(CONTROLLER),)))
        for e in self.entries.values():  # reconnect: re-install what is still live
            if e.kind != "static":
                for key, b in e.bindings.items():
                    msgs += self._binding_flows(e, key, b)
        return msgs

    def _conntrack_flows(self, c: NatInterface) -> list[Message]:
        """TCP of the PAT through OVS conntrack: SNAT+commit on the way out, un-NAT on the
        way in; what conntrack does not know (new, invalid) to the PAT address is dropped
        in ROUTE, where the recirculated packet lands."""
        assert c.pat is not None
        pat = c.pat.address
        msgs: list[Message] = []
        for port in self.ports[c.interface]:
            for prefix in map(IPv4Network, c.pat.inside):
                msgs.append(FlowMod(T_POST_NAT, P_CT, {
                    "eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_TCP,
                    "metadata": (port, META_MASK), "ipv4_src": _masked(prefix)},
                    (Conntrack(self.zone, T_EGRESS, commit=True,
                               nat_src=(pat, PORT_LO, PORT_HI)),)))
        msgs.append(FlowMod(T_PRE_NAT, P_CT, {"eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_TCP,
                                              "ipv4_dst": pat},
                            (Conntrack(self.zone, T_ROUTE, nat=True),)))
        for state in (0x21, 0x30):  # +trk+new, +trk+inv
            msgs.append(FlowMod(T_ROUTE, P_CT_DROP, {
                "eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_TCP, "ipv4_dst": pat,
                "ct_state": (state, state)}, (), cookie=COOKIE_CT_DROP))
        return msgs

    # ---- hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8) ---------------------------------
    def _hairpin_targets(self, c: NatInterface) -> list[IPv4Address]:
        out = [IPv4Address(c.pat.address)] if c.pat else []
        out += self.pool_free.get(c.interface, []) + [
            e.outside[0] for e in self.pool_used.values() if e.iface == c.interface]
        out += [IPv4Network(s.outside).network_address for s in c.static
                if IPv4Network(s.outside).prefixlen == 32]
        return out

    def _inside_prefixes(self, c: NatInterface) -> list[IPv4Network]:
        nets = [IPv4Network(p) for rule in (c.pat, c.pool) if rule for p in rule.inside]
        return nets + [IPv4Network(s.inside) for s in c.static]

    def _hairpin_misses(self, c: NatInterface) -> list[Message]:
        """An inside host sending to one of this NAT's public addresses (a server behind
        static NAT, a peer behind the same PAT) goes to the controller, which translates
        source and destination at once, so each side sees the other's public endpoint."""
        if not any(IPv4Network(s.outside).prefixlen == 32 for s in c.static) and \
                not c.pat and not c.pool:
            return []
        return [FlowMod(T_PRE_NAT, P_HAIRPIN, {
            "eth_type": pk.ETH_IPV4, "ip_proto": proto, "ipv4_src": _masked(net),
            "ipv4_dst": str(a)}, (Output(CONTROLLER),))
            for net in self._inside_prefixes(c) for a in self._hairpin_targets(c)
            for proto in (pk.PROTO_TCP, pk.PROTO_UDP)]

    def hairpin(self, now: float, in_port: int, f: pk.Frame) -> Outcome:
        """First packet of a hairpinned flow: source to its public mapping (made as for
        outbound traffic), destination to the inside endpoint behind the public one."""
        ports = _ports(f)
        assert f.ip_dst is not None and f.ip_src is not None
        iface, _kind = self.public[f.ip_dst]
        c = self.configs[iface]
        if ports is None or f.proto not in (pk.PROTO_TCP, pk.PROTO_UDP):
            return Outcome()
        sport, dport = ports
        dst = self._inside_of_public(f.proto, f.ip_dst, dport, c)
        if dst is None:
            return self._drop_inbound(now, f, "hairpin to nothing behind the NAT")
        key = (c.interface, "hairpin", f.proto, f.ip_src, sport, (f.ip_dst, dport))
        e = self.by_inside.get(key)
        if e is None:
            src = self._public_of_inside(now, f, c, sport)
            if src is None:
                return self._drop_inbound(now, f, "hairpin: no public address for the source")
            e = self._new(now, "hairpin", c.interface, f.proto, (f.ip_src, sport), src[:2],
                          dst)
            e.remote_public = (f.ip_dst, dport)
            e.owns_port = src[2]
            self.by_inside[key] = e
        msgs = self._add_binding(now, e, (), f)
        msgs.append(PacketOut(f.raw, (Output(TABLE),), in_port=in_port))
        return Outcome(msgs)

    def _inside_of_public(self, proto: int, ip: IPv4Address, port: int,
                          c: NatInterface) -> tuple[IPv4Address, int] | None:
        if ip in self.pool_used:
            return self.pool_used[ip].inside[0], port
        static = self._static_inside(c, ip)
        if static is not None:
            return static, port
        e = self._find_outside(proto, ip, port)
        return e.inside if e is not None and e.kind == "pat" else None

    def _public_of_inside(self, now: float, f: pk.Frame, c: NatInterface,
                          sport: int) -> tuple[IPv4Address, int, bool] | None:
        """The source's public endpoint: its static address, its pool address, or its PAT
        mapping (endpoint-independent: the one outside hosts see). Without a mapping yet,
        a port is allocated for the hairpin itself (third value True: free it after)."""
        assert f.ip_src is not None
        static = self._static_outside(c, f.ip_src)
        if static is not None:
            return static, sport, False
        if c.pool and _in_any(f.ip_src, c.pool.inside):
            e = self.by_inside.get((c.interface, "pool", 0, f.ip_src, 0, ()))
            return (e.outside[0], sport, False) if e is not None else None
        if c.pat and _in_any(f.ip_src, c.pat.inside):
            e = self.by_inside.get((c.interface, "pat", f.proto, f.ip_src, sport, ()))
            if e is not None:
                return e.outside[0], e.outside[1], False
            pub = IPv4Address(c.pat.address)
            port = self._alloc_port(pub, f.proto, sport)
            return (pub, port, True) if port is not None else None
        return None

    def is_hairpin(self, f: pk.Frame) -> bool:
        """A packet from inside this NAT to one of its public addresses."""
        if f.ip_dst not in self.public or f.ip_src is None:
            return False
        c = self.configs[self.public[f.ip_dst][0]]
        return any(f.ip_src in n for n in self._inside_prefixes(c))

    def _tcp_close_copies(self, c: NatInterface) -> list[Message]:
        """RFC 5382 REQ-5: a TCP binding whose connection is closing idles out after the
        transitory timeout, not the established one. The switch copies the remote's FIN
        or RST to the PAT address to the controller (and translates the packet as usual);
        the controller then shortens that binding's idle timeout."""
        assert c.pat is not None
        iface = self.ifaces[c.interface]
        msgs: list[Message] = []
        for port in self.ports[c.interface]:
            for flag in (TCP_FIN, TCP_RST):
                msgs.append(FlowMod(T_CLASSIFY, P_TCP_CLOSE, {
                    "in_port": port, "eth_dst": iface.mac, "eth_type": pk.ETH_IPV4,
                    "ip_proto": pk.PROTO_TCP, "ipv4_dst": c.pat.address,
                    "tcp_flags": (flag, flag)}, (Output(CONTROLLER),), goto=T_PRE_NAT))
        return msgs

    def tcp_closing(self, now: float, f: pk.Frame) -> list[Message]:
        """The copy of a FIN/RST from a remote: move its binding to the transitory timeout
        (re-adding the out flow with the same match keeps its counters in OVS)."""
        ports = _ports(f)
        if ports is None or f.ip_dst is None or f.ip_src is None:
            return []
        e = self._find_outside(pk.PROTO_TCP, f.ip_dst, ports[1])
        if e is None:
            return []
        c = self.configs[e.iface]
        msgs: list[Message] = []
        for key, b in e.bindings.items():
            if b.closing or (key and key[0] != f.ip_src):
                continue
            b.closing = True
            msgs += [m for m in self._binding_flows(e, key, b)
                     if isinstance(m, FlowMod) and m.table == T_POST_NAT]
        for m in msgs:
            assert isinstance(m, FlowMod)
            m.idle_timeout = c.timeouts["tcp_transitory"]
        return msgs

    def conntrack_update(self, now: float, rows: list[dict]) -> None:
        """The fast path's entries as read from the conntrack table (parse_conntrack):
        kept for the table view; new and vanished ones go to the translation log."""
        current = {(r["inside"], r["outside"], r["remote"]): r for r in rows}
        for key, r in current.items():
            if key not in self._ct_seen:
                self._ct_seen[key] = now
                self.counters.created += 1
                self._log(now, "create", kind="pat", interface=self._ct_iface(), proto="tcp",
                          inside=r["inside"], outside=r["outside"], remote=r["remote"],
                          via="conntrack")
        for key in [k for k in self._ct_seen if k not in current]:
            first = self._ct_seen.pop(key)
            self.counters.expired += 1
            self._log(now, "expire", kind="pat", interface=self._ct_iface(), proto="tcp",
                      inside=key[0], outside=key[1], remote=key[2], via="conntrack",
                      reason="conntrack entry gone", age=round(now - first, 1))
        self.conntrack_rows = [{**r, "age": round(now - self._ct_seen[k], 1)}
                               for k, r in current.items()]

    def _ct_iface(self) -> str:
        return next((n for n, c in self.configs.items() if c.conntrack), "")

    @property
    def uses_conntrack(self) -> bool:
        return any(c.conntrack for c in self.configs.values())

    @staticmethod
    def _icmp_error_up(table: int, match: dict) -> list[Message]:
        return [FlowMod(table, P_ICMP_ERR, {**match, "eth_type": pk.ETH_IPV4,
                                            "ip_proto": pk.PROTO_ICMP, "icmpv4_type": t},
                        (Output(CONTROLLER),)) for t in (3, 11)]

    # ---- outbound: first packet of a new binding ------------------------------------------
    def outbound(self, now: float, f: pk.Frame, egress_port: int) -> Outcome:
        """A packet POST_NAT sent up: leaving by an outside port with no binding yet."""
        c = self._config_of_port(egress_port)
        if c is None or f.ip_src is None or f.ip_dst is None:
            return Outcome()
        if f.is_icmp_error:
            return Outcome(self._icmp_error_out(now, f, c, egress_port))
        if c.pool and _in_any(f.ip_src, c.pool.inside):
            return self._pool_out(now, f, c, egress_port)
        if c.pat and _in_any(f.ip_src, c.pat.inside):
            return self._pat_out(now, f, c, egress_port)
        return Outcome()

    def _pool_out(self, now: float, f: pk.Frame, c: NatInterface, port: int) -> Outcome:
        key = (c.interface, "pool", 0, f.ip_src, 0, ())
        e = self.by_inside.get(key)
        if e is None:
            free = self.pool_free[c.interface]
            if not free:
                return self._refuse(now, f, c, port, "pool exhausted")
            pub = free.pop(0)
            e = self._new(now, "pool", c.interface, 0, (f.ip_src, 0), (pub, 0), ())
            self.pool_used[pub] = e
            self.by_inside[key] = e
            self.by_outside[(0, pub, 0)] = e
        msgs = self._add_binding(now, e, (), f)
        msgs.append(PacketOut(f.raw, (SetField("ipv4_src", str(e.outside[0])), Output(port))))
        return Outcome(msgs)

    def _pat_out(self, now: float, f: pk.Frame, c: NatInterface, port: int) -> Outcome:
        assert c.pat is not None and f.ip_src is not None and f.ip_dst is not None
        ports = _ports(f)
        if ports is None or f.frag_offset:
            self.counters.malformed += 1
            return Outcome()
        sport, dport = ports
        remote_full = (f.ip_dst, dport)
        mkey = _grain(remote_full, GRAIN[c.mapping])
        key = (c.interface, "pat", f.proto, f.ip_src, sport, mkey)
        e = self.by_inside.get(key)
        pub_ip = IPv4Address(c.pat.address)
        if e is None:
            held = self.per_host.get((f.ip_src, f.proto), 0)
            if c.port_quota is not None and held >= c.port_quota:
                return self._refuse(now, f, c, port, f"port quota ({c.port_quota}) reached")
            pub_port = self._alloc_port(pub_ip, f.proto, sport)
            if pub_port is None:
                return self._refuse(now, f, c, port, "PAT ports exhausted")
            e = self._new(now, "pat", c.interface, f.proto, (f.ip_src, sport),
                          (pub_ip, pub_port), mkey)
            self.by_inside[key] = e
            self.by_outside[(f.proto, pub_ip, pub_port)] = e
        e.last_seen = now
        msgs: list[Message] = []
        bkey = _grain(remote_full, max(GRAIN[c.mapping], GRAIN[c.filtering]))
        if f.proto == pk.PROTO_ICMP:  # query id rewritten here; no flows for ICMP
            if f.icmp_type != 8:
                return Outcome()
            data = pk.rewrite_ipv4(f.raw, src=pub_ip, sport=e.outside[1])
            e.done_packets += 1
            e.done_bytes += len(f.raw) - 14
            e.bindings.setdefault(bkey, Binding(0, bkey))
            return Outcome([PacketOut(data, (Output(port),))])
        msgs += self._add_binding(now, e, bkey, f)
        l4 = L4[f.proto]
        msgs.append(PacketOut(f.raw, (SetField("ipv4_src", str(pub_ip)),
                                      SetField(f"{l4}_src", e.outside[1]), Output(port))))
        return Outcome(msgs)

    def _refuse(self, now: float, f: pk.Frame, c: NatInterface, port: int,
                why: str) -> Outcome:
        self.counters.refused += 1
        self._log(now, "refuse", kind="pool" if "pool" in why else "pat", interface=c.interface,
                  inside=str(f.ip_src), remote=str(f.ip_dst), reason=why)
        drop = FlowMod(T_POST_NAT, P_REFUSED, {"eth_type": pk.ETH_IPV4,
                                               "metadata": (port, META_MASK),
                                               "ipv4_src": str(f.ip_src)}, (), hard_timeout=1)
        return Outcome([drop], refused=True)

    # ---- inbound ---------------------------------------------------------------------------
    def inbound(self, now: float, in_port: int, f: pk.Frame) -> Outcome | None:
        """A packet to an outside address that no flow translated; None: not NAT's."""
        if f.ip_dst is None or f.ip_dst not in self.public:
            return None
        iface, kind = self.public[f.ip_dst]
        c = self.configs[iface]
        if f.is_icmp_error:
            return Outcome(self._icmp_error_in(now, in_port, f))
        if kind == "vip":
            return self._vip_in(now, in_port, f, c)
        if f.proto == pk.PROTO_ICMP and kind == "pat":
            if f.icmp_type == 0 and len(f.l4) >= 8:
                ident = struct.unpack("!H", f.l4[4:6])[0]
                e = self._find_outside(f.proto, f.ip_dst, ident)
                if e is not None and self._permits(c, e, (f.ip_src, ident)):
                    e.last_seen = now
                    e.done_packets += 1
                    e.done_bytes += len(f.raw) - 14
                    data = pk.rewrite_ipv4(f.raw, dst=e.inside[0], dport=e.inside[1])
                    return Outcome([PacketOut(data, (Output(TABLE),), in_port=in_port)])
            if f.ip_dst in self.own_ips:
                return None  # e.g. a ping of the router's own (PAT) address
        if f.ip_dst in self.own_ips and f.proto not in (pk.PROTO_TCP, pk.PROTO_UDP):
            return None
        return self._drop_inbound(now, f, "no binding")

    def _drop_inbound(self, now: float, f: pk.Frame, why: str) -> Outcome:
        self.counters.inbound_dropped += 1
        t, n = self._drop_log
        if now - t >= 1.0:
            t, n = now, 0
        if n < LOG_DROPS_PER_S:
            ports = _ports(f) or (0, 0)
            self._log(now, "drop", proto=L4.get(f.proto, str(f.proto)),
                      outside=f"{f.ip_dst}:{ports[1]}", remote=f"{f.ip_src}:{ports[0]}",
                      reason=why)
        self._drop_log = (t, n + 1)
        return Outcome()

    @staticmethod
    def _permits(c: NatInterface, e: Entry, remote: tuple) -> bool:
        """Filtering (RFC 4787 sec. 5): may `remote` send to this mapping?"""
        g = GRAIN[c.filtering]
        return g == 0 or remote[:g] in {b.remote[:g] for b in e.bindings.values()}

    def _find_outside(self, proto: int, ip: IPv4Address, port: int) -> Entry | None:
        return self.by_outside.get((proto, ip, port))

    def _vip_in(self, now: float, in_port: int, f: pk.Frame, c: NatInterface) -> Outcome:
        ports = _ports(f)
        if ports is None or f.ip_src is None or f.ip_dst is None:
            return self._drop_inbound(now, f, "not TCP/UDP to a VIP")
        sport, dport = ports
        rule = next((v for v in c.vip if IPv4Address(v.address) == f.ip_dst
                     and v.port == dport and _proto(v.proto) == f.proto), None)
        if rule is None:
            return self._drop_inbound(now, f, "no VIP on this port")
        key = (c.interface, "vip", f.proto, f.ip_src, sport, (f.ip_dst, dport))
        e = self.by_inside.get(key)
        if e is None:
            server = self._pick_server(rule)
            e = self._new(now, "vip", c.interface, f.proto, server, (f.ip_dst, dport),
                          (f.ip_src, sport))
            self.by_inside[key] = e
        msgs = self._add_binding(now, e, (f.ip_src, sport), f)
        msgs.append(PacketOut(f.raw, (Output(TABLE),), in_port=in_port))
        return Outcome(msgs)

    def _pick_server(self, rule) -> tuple[IPv4Address, int]:
        """Fewest live connections; ties broken round robin (NAT-DNAT-VIP)."""
        servers = []
        for s in rule.servers:
            host, _, p = s.partition(":")
            servers.append((IPv4Address(host), int(p) if p else rule.port))
        load = {s: 0 for s in servers}
        for e in self.entries.values():
            if e.kind == "vip" and e.inside in load:
                load[e.inside] += 1
        k = (rule.address, rule.port)
        start = self.vip_next.get(k, 0)
        order = servers[start:] + servers[:start]
        best = min(order, key=lambda s: load[s])
        self.vip_next[k] = (servers.index(best) + 1) % len(servers)
        return best

    # ---- ICMP errors (RFC 5508) --------------------------------------------------------------
    def _icmp_error_in(self, now: float, in_port: int, f: pk.Frame) -> list[Message]:
        """An error about a datagram we translated on the way out: back to the inside host."""
        q = pk.icmp_error_inner(f)
        if q is None:
            self.counters.malformed += 1
            return []
        e = self._entry_for_outside(q.proto, q.src, q.sport, q.dst, q.dport)
        if e is None:
            self._drop_inbound(now, f, "ICMP error about no binding")
            return []
        port = e.inside[1] if e.inside[1] else q.sport
        data = pk.rewrite_icmp_error(f.raw, outer_dst=e.inside[0],
                                     inner_src=(e.inside[0], port))
        self.counters.icmp_translated += 1
        e.last_seen = now
        return [PacketOut(data, (Output(TABLE),), in_port=in_port)]

    def _icmp_error_out(self, now: float, f: pk.Frame, c: NatInterface,
                        port: int) -> list[Message]:
        """An inside host's error about a datagram that came in translated."""
        q = pk.icmp_error_inner(f)
        if q is None or f.ip_src is None:
            return []
        for e in self.entries.values():
            if e.iface == c.interface and e.inside[0] == q.dst and \
                    e.proto in (0, q.proto) and e.inside[1] in (0, q.dport):
                pub_port = e.outside[1] if e.outside[1] else q.dport
                src = e.outside[0] if f.ip_src == e.inside[0] else None
                data = pk.rewrite_icmp_error(f.raw, outer_src=src,
                                             inner_dst=(e.outside[0], pub_port))
                self.counters.icmp_translated += 1
                return [PacketOut(data, (Output(port),))]
        static = self._static_outside(c, q.dst)
        if static is not None:
            data = pk.rewrite_icmp_error(f.raw, outer_src=static if f.ip_src == q.dst else None,
                                         inner_dst=(static, q.dport))
            self.counters.icmp_translated += 1
            return [PacketOut(data, (Output(port),))]
        return []

    def _entry_for_outside(self, proto: int, ip: IPv4Address, port: int,
                           rip: IPv4Address, rport: int) -> Entry | None:
        if ip in self.pool_used:
            return self.pool_used[ip]
        iface_kind = self.public.get(ip)
        if iface_kind is None:
            return None
        c = self.configs[iface_kind[0]]
        if iface_kind[1] == "static":
            ins = self._static_inside(c, ip)
            if ins is None:
                return None
            return Entry(0, "static", c.interface, 0, (ins, 0), (ip, 0), 0.0, 0.0)
        return self._find_outside(proto, ip, port)

    def _static_inside(self, c: NatInterface, outside: IPv4Address) -> IPv4Address | None:
        return self.static_out2in[c.interface].get(outside)

    def _static_outside(self, c: NatInterface, inside: IPv4Address) -> IPv4Address | None:
        return self.static_in2out[c.interface].get(inside)

    # ---- entries and bindings ------------------------------------------------------------------
    def _config_of_port(self, port: int) -> NatInterface | None:
        for name, ports in self.ports.items():
            if port in ports:
                return self.configs[name]
        return None

    def _new(self, now: float, kind: str, iface: str, proto: int, inside: tuple,
             outside: tuple, remote: tuple) -> Entry:
        e = Entry(next(self._ids), kind, iface, proto, inside, outside, now, now, remote)
        self.entries[e.id] = e
        if proto == pk.PROTO_ICMP:
            self.icmp_entries[e.id] = e
        if kind == "pat":
            key = (inside[0], proto)
            self.per_host[key] = self.per_host.get(key, 0) + 1
        self.counters.created += 1
        self._log(now, "create", **_describe(e))
        self.state_log.append({"op": "entry", "router": self.name, "id": e.id, "kind": kind,
                               "iface": iface, "proto": proto, "inside": _js(inside),
                               "outside": _js(outside), "remote": _js(remote),
                               "created": now})
        return e

    def _add_binding(self, now: float, e: Entry, remote: tuple, first: pk.Frame) -> list[Message]:
        """A binding for `remote`; `first` is the packet that made it (sent by the
        controller, so no flow counts it)."""
        e.last_seen = now
        e.done_packets += 1
        e.done_bytes += len(first.raw) - 14
        if remote in e.bindings:  # raced its own flow: the flow is on its way
            return []
        b = Binding(COOKIE_NAT | next(self._ids), remote)
        e.bindings[remote] = b
        self.by_cookie[b.cookie] = (e, remote)
        self.state_log.append({"op": "bind", "router": self.name, "id": e.id,
                               "remote": _js(remote), "cookie": b.cookie,
                               "remote_public": _js(e.remote_public),
                               "owns_port": e.owns_port})
        return self._binding_flows(e, remote, b)

    def _binding_flows(self, e: Entry, remote: tuple, b: Binding) -> list[Message]:
        if e.proto == pk.PROTO_ICMP:
            return []
        c = self.configs[e.iface]
        timeout = self._timeout(c, e, b)
        msgs: list[Message] = []
        if e.kind == "pool":
            for port in self.ports[e.iface]:
                msgs.append(FlowMod(T_POST_NAT, P_POOL, {
                    "eth_type": pk.ETH_IPV4, "metadata": (port, META_MASK),
                    "ipv4_src": str(e.inside[0])}, (SetField("ipv4_src", str(e.outside[0])),),
                    goto=T_EGRESS, idle_timeout=timeout, notify_removed=True, cookie=b.cookie))
            msgs.append(FlowMod(T_PRE_NAT, P_POOL, {"eth_type": pk.ETH_IPV4,
                                                    "ipv4_dst": str(e.outside[0])},
                                (SetField("ipv4_dst", str(e.inside[0])),), goto=T_ROUTE,
                                cookie=b.cookie))
            return msgs
        l4 = L4[e.proto]
        if e.kind == "hairpin":
            (a_ip, a_port), (a_pub, a_pport) = e.inside, e.outside
            (b_ip, b_port), (b_pub, b_pport) = e.remote, e.remote_public
            msgs.append(FlowMod(T_PRE_NAT, P_HAIRPIN + 5, {
                "eth_type": pk.ETH_IPV4, "ip_proto": e.proto, "ipv4_src": str(a_ip),
                f"{l4}_src": a_port, "ipv4_dst": str(b_pub), f"{l4}_dst": b_pport},
                (SetField("ipv4_src", str(a_pub)), SetField(f"{l4}_src", a_pport),
                 SetField("ipv4_dst", str(b_ip)), SetField(f"{l4}_dst", b_port)),
                goto=T_ROUTE, idle_timeout=timeout, notify_removed=True, cookie=b.cookie))
            msgs.append(FlowMod(T_PRE_NAT, P_HAIRPIN + 5, {
                "eth_type": pk.ETH_IPV4, "ip_proto": e.proto, "ipv4_src": str(b_ip),
                f"{l4}_src": b_port, "ipv4_dst": str(a_pub), f"{l4}_dst": a_pport},
                (SetField("ipv4_src", str(b_pub)), SetField(f"{l4}_src", b_pport),
                 SetField("ipv4_dst", str(a_ip)), SetField(f"{l4}_dst", a_port)),
                goto=T_ROUTE, cookie=b.cookie))
            return msgs
        if e.kind == "vip":
            client_ip, client_port = remote
            msgs.append(FlowMod(T_PRE_NAT, P_VIP, {
                "eth_type": pk.ETH_IPV4, "ip_proto": e.proto, "ipv4_src": str(client_ip),
                f"{l4}_src": client_port, "ipv4_dst": str(e.outside[0]),
                f"{l4}_dst": e.outside[1]},
                (SetField("ipv4_dst", str(e.inside[0])), SetField(f"{l4}_dst", e.inside[1])),
                goto=T_ROUTE, idle_timeout=timeout, notify_removed=True, cookie=b.cookie))
            msgs.append(FlowMod(T_POST_NAT, P_VIP, {
                "eth_type": pk.ETH_IPV4, "ip_proto": e.proto, "ipv4_src": str(e.inside[0]),
                f"{l4}_src": e.inside[1], "ipv4_dst": str(client_ip),
                f"{l4}_dst": client_port},
                (SetField("ipv4_src", str(e.outside[0])), SetField(f"{l4}_src", e.outside[1])),
                goto=T_EGRESS, cookie=b.cookie))
            return msgs
        out_m = {"eth_type": pk.ETH_IPV4, "ip_proto": e.proto, "ipv4_src": str(e.inside[0]),
                 f"{l4}_src": e.inside[1]}
        in_m = {"eth_type": pk.ETH_IPV4, "ip_proto": e.proto, "ipv4_dst": str(e.outside[0]),
                f"{l4}_dst": e.outside[1]}
        if len(remote) >= 1:
            out_m["ipv4_dst"] = str(remote[0])
        if len(remote) == 2:
            out_m[f"{l4}_dst"] = remote[1]
        fgrain = GRAIN[c.filtering]
        if fgrain >= 1:
            in_m["ipv4_src"] = str(remote[0])
        if fgrain == 2:
            in_m[f"{l4}_src"] = remote[1]
        for port in self.ports[e.iface]:
            msgs.append(FlowMod(T_POST_NAT, P_PAT, {**out_m, "metadata": (port, META_MASK)},
                                (SetField("ipv4_src", str(e.outside[0])),
                                 SetField(f"{l4}_src", e.outside[1])),
                                goto=T_EGRESS, idle_timeout=timeout, notify_removed=True,
                                cookie=b.cookie))
        msgs.append(FlowMod(T_PRE_NAT, P_PAT, in_m,
                            (SetField("ipv4_dst", str(e.inside[0])),
                             SetField(f"{l4}_dst", e.inside[1])), goto=T_ROUTE,
                            cookie=b.cookie))
        return msgs

    @staticmethod
    def _timeout(c: NatInterface, e: Entry, b: Binding | None = None) -> int:
        if e.kind == "pool":
            return c.timeouts["pool"]
        if b is not None and b.closing:
            return c.timeouts["tcp_transitory"]
        return c.timeouts[L4[e.proto]]

    # ---- expiry -------------------------------------------------------------------------------
    def flow_removed(self, now: float, cookie: int, packets: int, nbytes: int) -> list[Message]:
        """A binding's timed flow went idle: the binding ends; the entry with its last one."""
        hit = self.by_cookie.pop(cookie, None)
        if hit is None:
            return []
        e, remote = hit
        b = e.bindings.pop(remote, None)
        self.state_log.append({"op": "unbind", "router": self.name, "cookie": cookie})
        if b is not None:
            e.done_packets += max(packets, b.packets)
            e.done_bytes += max(nbytes, b.bytes)
        msgs: list[Message] = [_delete(cookie)]
        if not e.bindings:
            msgs += self._forget(now, e, "idle timeout")
        return msgs

    def tick(self, now: float) -> list[Message]:
        """ICMP query mappings live in the controller alone: expire them here."""
        msgs: list[Message] = []
        for e in list(self.icmp_entries.values()):  # (not every entry, every tick)
            if now - e.last_seen >= self.configs[e.iface].timeouts["icmp"]:
                msgs += self._forget(now, e, "idle timeout")
        return msgs

    def _remove(self, now: float, e: Entry, why: str) -> list[Message]:
        msgs: list[Message] = []
        for b in e.bindings.values():
            self.by_cookie.pop(b.cookie, None)
            if b.cookie:
                msgs.append(_delete(b.cookie))
        e.done_packets, e.done_bytes = e.packets, e.bytes
        e.bindings.clear()
        return msgs + self._forget(now, e, why)

    def _keys(self, e: Entry) -> tuple[tuple, tuple | None]:
        """The entry's keys in by_inside and by_outside (as the creating code set them)."""
        if e.kind == "pool":
            return (e.iface, "pool", 0, e.inside[0], 0, ()), (0, e.outside[0], 0)
        if e.kind == "pat":
            return ((e.iface, "pat", e.proto, e.inside[0], e.inside[1], e.remote),
                    (e.proto, e.outside[0], e.outside[1]))
        if e.kind == "vip":
            return (e.iface, "vip", e.proto, e.remote[0], e.remote[1], e.outside), None
        return (e.iface, "hairpin", e.proto, e.inside[0], e.inside[1], e.remote_public), None

    def _forget(self, now: float, e: Entry, why: str) -> list[Message]:
        self.entries.pop(e.id, None)
        self.icmp_entries.pop(e.id, None)
        self.state_log.append({"op": "gone", "router": self.name, "id": e.id})
        in_key, out_key = self._keys(e)
        if self.by_inside.get(in_key) is e:
            del self.by_inside[in_key]
        if out_key is not None and self.by_outside.get(out_key) is e:
            del self.by_outside[out_key]
        if e.kind == "pool":
            self.pool_used.pop(e.outside[0], None)
            self.pool_free[e.iface].append(e.outside[0])
        elif e.kind == "pat" or (e.kind == "hairpin" and e.owns_port):
            self.used_ports.get((e.outside[0], e.proto), set()).discard(e.outside[1])
        if e.kind == "pat":
            key = (e.inside[0], e.proto)
            self.per_host[key] = self.per_host.get(key, 1) - 1
            if self.per_host[key] <= 0:
                del self.per_host[key]
        self.counters.expired += 1
        self._log(now, "expire", **_describe(e), reason=why, packets=e.packets,
                  bytes=e.bytes, age=round(now - e.created, 1))
        return []

    def flow_stats(self, now: float, stats: list[tuple[int, int, int]]) -> None:
        """(cookie, packets, bytes) of live NAT flows: counters and last-seen times."""
        self.counters.conntrack_dropped = sum(p for c, p, _ in stats if c == COOKIE_CT_DROP)
        per: dict[int, list[int]] = {}
        for cookie, packets, nbytes in stats:
            acc = per.setdefault(cookie, [0, 0])
            acc[0] += packets
            acc[1] += nbytes
        for cookie, (packets, nbytes) in per.items():
            hit = self.by_cookie.get(cookie)
            if hit is None:
                continue
            e, remote = hit
            b = e.bindings.get(remote)
            if b is not None and packets > b.packets:
                b.packets, b.bytes = packets, nbytes
                e.last_seen = now

    # ---- restart (issue 8) --------------------------------------------------------------------
    def restore(self, records: list[dict], now: float) -> int:
        """Rebuild the table from the state journal a previous controller process wrote
        (oldest first): same entries, ports and cookies, so the bindings in the switches
        keep working and no port is handed out twice. Returns the live entries."""
        top = 0
        for r in records:
            if r.get("router") != self.name:
                continue
            op = r.get("op")
            if op == "entry":
                e = Entry(int(r["id"]), r["kind"], r["iface"], int(r["proto"]),
                          _unjs(r["inside"]), _unjs(r["outside"]), now, now,
                          _unjs(r["remote"]))
                self.entries[e.id] = e
                top = max(top, e.id)
            elif op == "bind" and int(r["id"]) in self.entries:
                e = self.entries[int(r["id"])]
                remote = _unjs(r["remote"])
                e.remote_public = _unjs(r.get("remote_public", []))
                e.owns_port = bool(r.get("owns_port"))
                cookie = int(r["cookie"])
                e.bindings[remote] = Binding(cookie, remote)
                self.by_cookie[cookie] = (e, remote)
                top = max(top, cookie & 0xFFFFFFFF)
            elif op == "unbind":
                hit = self.by_cookie.pop(int(r["cookie"]), None)
                if hit is not None:
                    hit[0].bindings.pop(hit[1], None)
            elif op == "gone":
                self.entries.pop(int(r["id"]), None)
        for e in list(self.entries.values()):
            if not e.bindings and e.proto != pk.PROTO_ICMP:
                del self.entries[e.id]  # (its last binding went with the old process)
                continue
            if e.proto == pk.PROTO_ICMP:
                self.icmp_entries[e.id] = e
            in_key, out_key = self._keys(e)
            self.by_inside[in_key] = e
            if out_key is not None:
                self.by_outside[out_key] = e
            if e.kind == "pool":
                self.pool_used[e.outside[0]] = e
                if e.outside[0] in self.pool_free.get(e.iface, []):
                    self.pool_free[e.iface].remove(e.outside[0])
            if e.kind == "pat" or (e.kind == "hairpin" and e.owns_port):
                self.used_ports.setdefault((e.outside[0], e.proto), set()).add(e.outside[1])
            if e.kind == "pat":
                k = (e.inside[0], e.proto)
                self.per_host[k] = self.per_host.get(k, 0) + 1
        self._ids = itertools.count(top + 1)
        self.state_log.clear()
        return len(self.entries)

    def drain_state(self) -> list[dict]:
        out, self.state_log = self.state_log, []
        return out

    # ---- ports --------------------------------------------------------------------------------
    def _alloc_port(self, ip: IPv4Address, proto: int, want: int) -> int | None:
        """The inside port if free (port preservation, RFC 4787 REQ-3), else the next free
        one from a moving cursor; None when every port is taken."""
        used = self.used_ports.setdefault((ip, proto), set())
        if want and want not in used and (want >= PORT_LO or proto == pk.PROTO_ICMP):
            used.add(want)
            return want
        span = PORT_HI - PORT_LO + 1
        for _ in range(span):
            p = self._cursor
            self._cursor = PORT_LO + (self._cursor - PORT_LO + 1) % span
            if p not in used:
                used.add(p)
                return p
        return None

    # ---- views --------------------------------------------------------------------------------
    def _log(self, now: float, event: str, **fields: object) -> None:
        self.events.append({"event": event, "router": self.name, "mono": round(now, 3),
                            **fields})

    def drain_events(self) -> list[dict]:
        ev, self.events = self.events, []
        return ev

    def table(self, now: float) -> list[dict]:
        rows = [e.view(now) for e in self.entries.values()]
        rows += [{"kind": "pat", "interface": self._ct_iface(), "proto": "tcp",
                  "inside": r["inside"], "outside": r["outside"], "remotes": [r["remote"]],
                  "age": r["age"], "idle": "", "packets": "", "bytes": "",
                  "state": r["state"], "via": "conntrack"} for r in self.conntrack_rows]
        for c in self.configs.values():
            for s in c.static:  # one row per rule (a prefix rule maps each address)
                rows.append({"kind": "static", "interface": c.interface, "proto": "any",
                             "inside": _short(s.inside), "outside": _short(s.outside),
                             "remotes": ["*"]})
        return rows

    def state(self) -> dict:
        return {
            "counters": vars(self.counters).copy(),
            "entries": len(self.entries),
            "interfaces": {n: {"mapping": c.mapping, "filtering": c.filtering,
                               "pat": c.pat.address if isinstance(c.pat, PatRule) else None,
                               "pool_free": len(self.pool_free.get(n, [])),
                               "conntrack": c.conntrack,
                               "timeouts": c.timeouts}
                           for n, c in self.configs.items()},
        }


def _pairs(inside: str, outside: str) -> list[tuple[IPv4Address, IPv4Address]]:
    a, b = IPv4Network(inside), IPv4Network(outside)
    if a.prefixlen == 32:
        return [(a.network_address, b.network_address)]
    base_a, base_b = int(a.network_address), int(b.network_address)
    return [(IPv4Address(base_a + i), IPv4Address(base_b + i))
            for i in range(1, a.num_addresses - 1)]


_CT_RE = re.compile(
    r"^tcp,orig=\(src=([\d.]+),dst=([\d.]+),sport=(\d+),dport=(\d+)\),"
    r"reply=\(src=([\d.]+),dst=([\d.]+),sport=(\d+),dport=(\d+)\),zone=(\d+)"
    r"(?:.*?protoinfo=\(state=(\w+)\))?")


def parse_conntrack(text: str, zone: int) -> list[dict]:
    """TCP entries of `zone` from `ovs-appctl dpctl/dump-conntrack` (the fast path's
    table): inside, outside (what the remote saw) and remote endpoints, state."""
    rows = []
    for line in text.splitlines():
        m = _CT_RE.match(line.strip())
        if m is None or int(m.group(9)) != zone:
            continue
        osrc, odst, osport, odport, rsrc, rdst, rsport, rdport = m.groups()[:8]
        rows.append({"inside": f"{osrc}:{osport}", "outside": f"{rdst}:{rdport}",
                     "remote": f"{odst}:{odport}", "state": m.group(10) or ""})
    return rows


def conntrack_zones(plan) -> list[int]:
    """Conntrack zones a plan's routers use (flushed at teardown: leave nothing behind)."""
    return [CT_ZONE_BASE + r.dpid for r in plan.routers
            if any(n.get("conntrack") for n in r.nat)]


def _js(value: object) -> object:
    """A key part (tuples of addresses and ports) as JSON."""
    if isinstance(value, tuple):
        return [_js(v) for v in value]
    return str(value) if isinstance(value, IPv4Address) else value


def _unjs(value: object) -> object:
    if isinstance(value, list):
        return tuple(_unjs(v) for v in value)
    if isinstance(value, str):
        return IPv4Address(value)
    return value


def _short(prefix: str) -> str:
    return prefix[:-3] if prefix.endswith("/32") else prefix


def _in_any(ip: IPv4Address, prefixes: list[str]) -> bool:
    return any(ip in IPv4Network(p) for p in prefixes)


def _masked(net: IPv4Network) -> str | tuple[str, str]:
    return str(net.network_address) if net.prefixlen == 32 else \
        (str(net.network_address), str(net.netmask))


def _proto(name: str) -> int:
    return pk.PROTO_TCP if name == "tcp" else pk.PROTO_UDP


def _ports(f: pk.Frame) -> tuple[int, int] | None:
    """(source, destination) port; for ICMP echo, (id, id)."""
    if f.proto in (pk.PROTO_TCP, pk.PROTO_UDP) and len(f.l4) >= 4:
        return struct.unpack("!HH", f.l4[:4])
    if f.proto == pk.PROTO_ICMP and len(f.l4) >= 8 and f.icmp_type in (0, 8):
        ident = struct.unpack("!H", f.l4[4:6])[0]
        return ident, ident
    return None


def _grain(remote: tuple, grain: int) -> tuple:
    return tuple(remote[:grain])


def _delete(cookie: int) -> FlowMod:
    return FlowMod(0xFF, delete=True, cookie=cookie)


def _describe(e: Entry) -> dict:
    v = e.view(e.created)
    return {k: v[k] for k in ("kind", "interface", "proto", "inside", "outside")} | (
        {"remote": ":".join(map(str, e.remote))} if e.remote else {})
