"""NAT/PAT of one router (NAT-*): what to do with a packet the switch sent up.

Pure, like the router: every entry point takes `now` and returns OpenFlow messages. The
switch translates established traffic itself with `set_field` flows (flows.py); the
controller sees the first packet of a new binding (a POST_NAT/PRE_NAT miss), ICMP (query
ids cannot be rewritten by OpenFlow 1.3, and errors quote a datagram that must be
translated too) and the FlowRemoved of a binding whose idle timeout ran out. The table
(table.py) alone keeps the entries; ports and pool addresses come from ports.py.

Flow cookies: NAT flows carry COOKIE_NAT | binding id, so a FlowRemoved or a flow-stats
reply names its binding; both flows of a binding share the cookie.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from topologies.natconfig import NatInterface, PatRule, VipRule
from topologies.plan import RouterPlan
from wire import frames as pk

from ..messages import TABLE, FlowMod, Message, Output, PacketOut, SetField
from ..pipeline import COOKIE_NAT, T_POST_NAT, T_PRE_NAT, T_ROUTE
from . import flows, icmp, journal
from .conntrack import CT_ZONE_BASE, ConntrackView, live_bindings
from .ports import PortAllocator
from .rules import Rules, frame_ports, in_any, proto_number, short
from .table import L4, Binding, Entry, InsideKey, Kind, NatTable

LOG_DROPS_PER_S = 5  # unsolicited inbound packets are counted; only this many logged/s
CT_GRACE_S = 3.0  # a TCP binding this young is not expired by a conntrack reading


def _endpoint(text: str) -> tuple[IPv4Address, int]:
    ip, _, port = text.rpartition(":")
    return IPv4Address(ip), int(port)


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
        self.rules = Rules(configs)
        self.configs = self.rules.configs
        self.ifaces = {i.subnet: i for i in plan.interfaces}
        self.own_ips = {IPv4Address(i.ip) for i in plan.interfaces}
        self.ports = {c.interface: [p.port for p in self.ifaces[c.interface].ports]
                      for c in configs}
        self.table = NatTable()
        self.port_alloc = PortAllocator()
        self.conntrack = ConntrackView()
        self.vip_next: dict[tuple, int] = {}
        self.counters = Counters()
        self.events: list[dict] = []  # translation log, drained by the app
        self.state_log: list[dict] = []  # state journal (restore after a restart), drained
        self._ids = itertools.count(1)
        self._drop_log = (0.0, 0)
        self._held: dict[str, list[IPv4Address]] = {}  # pool addresses a fault holds
        # The PAT's TCP bindings in conntrack (flows.tcp_binding_flows), which the
        # controller must be able to read (dpctl) to end them: a switch on another
        # server (cluster mode) keeps a pair of flows per binding instead.
        self.tcp_conntrack = True

    @property
    def entries(self) -> dict[int, Entry]:
        return self.table.entries

    @property
    def uses_conntrack(self) -> bool:
        return any(c.conntrack for c in self.configs.values())

    # ---- the one entry point for packets ---------------------------------------------------
    def packet_in(self, now: float, table: int, in_port: int, f: pk.Frame,
                  egress_port: int) -> Outcome | None:
        """A packet sent up from `table` (`egress_port`: where POST_NAT would send it).
        None: not the NAT's; the router goes on with it (its own address, a route miss)."""
        if table == T_POST_NAT:
            return self._outbound(now, f, egress_port)
        if table == T_PRE_NAT and self.rules.is_hairpin(f):
            return self._hairpin(now, in_port, f)
        if table in (T_PRE_NAT, T_ROUTE) or f.ip_dst in self.own_ips:
            return self._inbound(now, in_port, f)
        return None

    # ---- configuration ------------------------------------------------------------------
    def set_behaviour(self, now: float, iface: str, mapping: str | None = None,
                      filtering: str | None = None) -> list[Message]:
        """Change a NAT's RFC 4787 behaviour live (labs, the STUN scenario); drops the PAT
        bindings made under the old behaviour, which no longer fit it."""
        c = self.configs[iface]
        c.mapping = mapping or c.mapping
        c.filtering = filtering or c.filtering
        msgs: list[Message] = []
        for e in self.table:
            if e.iface == iface and e.kind is Kind.PAT:
                msgs += self._remove(now, e, "reconfigured")
        return msgs

    # ---- switch connected -----------------------------------------------------------------
    def connect(self, now: float) -> list[Message]:
        """Rule flows (static, misses, ICMP errors to the controller) and live bindings."""
        msgs: list[Message] = []
        for c in self.configs.values():
            msgs += flows.rule_flows(self.rules, c, self.ports[c.interface], self.own_ips,
                                     self.zone, self.tcp_conntrack)
        for e in self.table:  # reconnect: re-install what is still live
            for key, b in e.bindings.items():
                msgs += self._binding_flows(e, key, b)
        return msgs

    def _binding_flows(self, e: Entry, remote: tuple, b: Binding) -> list[FlowMod]:
        return flows.binding_flows(self.configs[e.iface], self.ports[e.iface], e, remote, b,
                                   self.tcp_conntrack)

    # ---- outbound: first packet of a new binding ------------------------------------------
    def _outbound(self, now: float, f: pk.Frame, egress_port: int) -> Outcome:
        """A packet POST_NAT sent up: leaving by an outside port with no binding yet."""
        c = self._config_of_port(egress_port)
        if c is None or f.ip_src is None or f.ip_dst is None:
            return Outcome()
        if f.is_icmp_error:
            return Outcome(self._icmp_error_out(f, c, egress_port))
        if c.pool and in_any(f.ip_src, c.pool.inside):
            return self._pool_out(now, f, c, egress_port)
        if c.pat and in_any(f.ip_src, c.pat.inside):
            return self._pat_out(now, f, c, egress_port)
        return Outcome()

    def _pool_out(self, now: float, f: pk.Frame, c: NatInterface, port: int) -> Outcome:
        assert f.ip_src is not None
        e = self.table.find(InsideKey(c.interface, Kind.POOL, 0, f.ip_src, 0, ()))
        if e is None:
            pub = self.rules.pools[c.interface].take()
            if pub is None:
                return self._refuse(now, f, c, port, Kind.POOL, "pool exhausted")
            e = self._new(now, Kind.POOL, c.interface, 0, (f.ip_src, 0), (pub, 0))
        msgs = self._add_binding(now, e, (), f)
        msgs.append(PacketOut(f.raw, (SetField("ipv4_src", str(e.outside[0])), Output(port))))
        return Outcome(msgs)

    def _pat_out(self, now: float, f: pk.Frame, c: NatInterface, port: int) -> Outcome:
        assert c.pat is not None and f.ip_src is not None and f.ip_dst is not None
        ports = frame_ports(f)
        if ports is None or f.frag_offset:
            self.counters.malformed += 1
            return Outcome()
        sport, dport = ports
        remote_full = (f.ip_dst, dport)
        mkey = remote_full[:flows.GRAIN[c.mapping]]
        e = self.table.find(InsideKey(c.interface, Kind.PAT, f.proto, f.ip_src, sport, mkey))
        pub_ip = IPv4Address(c.pat.address)
        if e is None:
            if c.port_quota is not None and \
                    self.table.held_by(f.ip_src, f.proto) >= c.port_quota:
                return self._refuse(now, f, c, port, Kind.PAT,
                                    f"port quota ({c.port_quota}) reached")
            pub_port = self.port_alloc.alloc(pub_ip, f.proto, sport)
            if pub_port is None:
                return self._refuse(now, f, c, port, Kind.PAT, "PAT ports exhausted")
            e = self._new(now, Kind.PAT, c.interface, f.proto, (f.ip_src, sport),
                          (pub_ip, pub_port), mkey)
        e.last_seen = now
        bkey = remote_full[:max(flows.GRAIN[c.mapping], flows.GRAIN[c.filtering])]
        if f.proto == pk.PROTO_ICMP:  # query id rewritten here; no flows for ICMP
            if f.icmp_type != 8:
                return Outcome()
            data = pk.rewrite_ipv4(f.raw, src=pub_ip, sport=e.outside[1])
            e.count(now, len(f.raw) - 14)
            if bkey not in e.bindings:
                self.table.bind(e, bkey, 0)
            return Outcome([PacketOut(data, (Output(port),))])
        msgs = self._add_binding(now, e, bkey, f)
        if f.proto == pk.PROTO_TCP and self.tcp_conntrack:  # into conntrack with this packet
            msgs.append(PacketOut(f.raw, (flows.tcp_binding_commit(self.zone, e, False),
                                          Output(port))))
            return Outcome(msgs)
        msgs.append(PacketOut(f.raw, (SetField("ipv4_src", str(pub_ip)),
                                      SetField(f"{L4[f.proto]}_src", e.outside[1]),
                                      Output(port))))
        return Outcome(msgs)

    def _refuse(self, now: float, f: pk.Frame, c: NatInterface, port: int, kind: Kind,
                why: str) -> Outcome:
        assert f.ip_src is not None
        self.counters.refused += 1
        self._log(now, "refuse", kind=str(kind), interface=c.interface, inside=str(f.ip_src),
                  remote=str(f.ip_dst), reason=why)
        return Outcome([flows.refusal_drop(port, f.ip_src)], refused=True)

    # ---- hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8) ---------------------------------
    def _hairpin(self, now: float, in_port: int, f: pk.Frame) -> Outcome:
        """First packet of a hairpinned flow: source to its public mapping (made as for
        outbound traffic), destination to the inside endpoint behind the public one."""
        ports = frame_ports(f)
        assert f.ip_dst is not None and f.ip_src is not None
        c = self.configs[self.rules.public[f.ip_dst][0]]
        if ports is None or f.proto not in (pk.PROTO_TCP, pk.PROTO_UDP):
            return Outcome()
        sport, dport = ports
        dst = self._inside_of_public(f.proto, f.ip_dst, dport, c)
        if dst is None:
            return self._drop_inbound(now, f, "hairpin to nothing behind the NAT")
        public = (f.ip_dst, dport)
        e = self.table.find(InsideKey(c.interface, Kind.HAIRPIN, f.proto, f.ip_src, sport,
                                      public))
        if e is None:
            src = self._public_of_inside(f, c, sport)
            if src is None:
                return self._drop_inbound(now, f, "hairpin: no public address for the source")
            e = self._new(now, Kind.HAIRPIN, c.interface, f.proto, (f.ip_src, sport),
                          src[:2], dst, remote_public=public, owns_port=src[2])
        msgs = self._add_binding(now, e, (), f)
        msgs.append(PacketOut(f.raw, (Output(TABLE),), in_port=in_port))
        return Outcome(msgs)

    def _inside_of_public(self, proto: int, ip: IPv4Address, port: int,
                          c: NatInterface) -> tuple[IPv4Address, int] | None:
        pool = self.table.pool_entry(ip)
        if pool is not None:
            return pool.inside[0], port
        static = self.rules.static_inside(c, ip)
        if static is not None:
            return static, port
        e = self.table.find_outside(proto, ip, port)
        return e.inside if e is not None and e.kind is Kind.PAT else None

    def _public_of_inside(self, f: pk.Frame, c: NatInterface,
                          sport: int) -> tuple[IPv4Address, int, bool] | None:
        """The source's public endpoint: its static address, its pool address, or its PAT
        mapping (endpoint-independent: the one outside hosts see). Without a mapping yet,
        a port is allocated for the hairpin itself (third value True: free it after)."""
        assert f.ip_src is not None
        static = self.rules.static_outside(c, f.ip_src)
        if static is not None:
            return static, sport, False
        if c.pool and in_any(f.ip_src, c.pool.inside):
            e = self.table.find(InsideKey(c.interface, Kind.POOL, 0, f.ip_src, 0, ()))
            return (e.outside[0], sport, False) if e is not None else None
        if c.pat and in_any(f.ip_src, c.pat.inside):
            e = self.table.find(InsideKey(c.interface, Kind.PAT, f.proto, f.ip_src, sport, ()))
            if e is not None:
                return e.outside[0], e.outside[1], False
            pub = IPv4Address(c.pat.address)
            port = self.port_alloc.alloc(pub, f.proto, sport)
            return (pub, port, True) if port is not None else None
        return None

    # ---- inbound ---------------------------------------------------------------------------
    def _inbound(self, now: float, in_port: int, f: pk.Frame) -> Outcome | None:
        """A packet to an outside address that no flow translated; None: not NAT's."""
        if f.ip_dst is None or f.ip_dst not in self.rules.public:
            return None
        iface, kind = self.rules.public[f.ip_dst]
        c = self.configs[iface]
        if f.is_icmp_error:
            return Outcome(self._icmp_error_in(now, in_port, f))
        if kind is Kind.VIP:
            return self._vip_in(now, in_port, f, c)
        if f.proto == pk.PROTO_ICMP and kind is Kind.PAT:
            if f.icmp_type == 0 and len(f.l4) >= 8:
                ident = struct.unpack("!H", f.l4[4:6])[0]
                e = self.table.find_outside(f.proto, f.ip_dst, ident)
                if e is not None and self._permits(c, e, (f.ip_src, ident)):
                    e.count(now, len(f.raw) - 14)
                    data = pk.rewrite_ipv4(f.raw, dst=e.inside[0], dport=e.inside[1])
                    return Outcome([PacketOut(data, (Output(TABLE),), in_port=in_port)])
            if f.ip_dst in self.own_ips:
                return None  # e.g. a ping of the router's own (PAT) address
        if f.ip_dst in self.own_ips and f.proto not in (pk.PROTO_TCP, pk.PROTO_UDP):
            return None
        if f.proto == pk.PROTO_TCP and kind is Kind.PAT and not c.conntrack and \
                self.tcp_conntrack:
            return self._tcp_in(now, in_port, f, c)
        return self._drop_inbound(now, f, "no binding")

    def _tcp_in(self, now: float, in_port: int, f: pk.Frame, c: NatInterface) -> Outcome:
        """A new TCP connection from outside to the PAT address (conntrack knew nothing
        of it): let in if a mapping has that port and the filtering permits the sender
        (RFC 5382 REQ-3); committed into conntrack, translated, and routed inside."""
        ports = frame_ports(f)
        if ports is None or f.ip_dst is None:
            self.counters.malformed += 1
            return Outcome()
        e = self.table.find_outside(pk.PROTO_TCP, f.ip_dst, ports[1])
        if e is None or e.kind is not Kind.PAT:
            return self._drop_inbound(now, f, "no binding")
        if not self._permits(c, e, (f.ip_src, ports[0])):
            return self._drop_inbound(now, f, "filtered")
        e.last_seen = now
        e.count(now, len(f.raw) - 14)
        return Outcome([PacketOut(f.raw, (flows.tcp_binding_commit(self.zone, e, True),
                                          Output(TABLE)), in_port=in_port)])

    def _drop_inbound(self, now: float, f: pk.Frame, why: str) -> Outcome:
        self.counters.inbound_dropped += 1
        t, n = self._drop_log
        if now - t >= 1.0:
            t, n = now, 0
        if n < LOG_DROPS_PER_S:
            ports = frame_ports(f) or (0, 0)
            self._log(now, "drop", proto=L4.get(f.proto, str(f.proto)),
                      outside=f"{f.ip_dst}:{ports[1]}", remote=f"{f.ip_src}:{ports[0]}",
                      reason=why)
        self._drop_log = (t, n + 1)
        return Outcome()

    @staticmethod
    def _permits(c: NatInterface, e: Entry, remote: tuple) -> bool:
        """Filtering (RFC 4787 sec. 5): may `remote` send to this mapping?"""
        g = flows.GRAIN[c.filtering]
        return g == 0 or remote[:g] in {b.remote[:g] for b in e.bindings.values()}

    def _vip_in(self, now: float, in_port: int, f: pk.Frame, c: NatInterface) -> Outcome:
        ports = frame_ports(f)
        if ports is None or f.ip_src is None or f.ip_dst is None:
            return self._drop_inbound(now, f, "not TCP/UDP to a VIP")
        sport, dport = ports
        rule = next((v for v in c.vip if IPv4Address(v.address) == f.ip_dst
                     and v.port == dport and proto_number(v.proto) == f.proto), None)
        if rule is None:
            return self._drop_inbound(now, f, "no VIP on this port")
        client, vip = (f.ip_src, sport), (f.ip_dst, dport)
        e = self.table.find(InsideKey(c.interface, Kind.VIP, f.proto, *client, vip))
        if e is None:
            e = self._new(now, Kind.VIP, c.interface, f.proto, self._pick_server(rule), vip,
                          client)
        msgs = self._add_binding(now, e, client, f)
        msgs.append(PacketOut(f.raw, (Output(TABLE),), in_port=in_port))
        return Outcome(msgs)

    def _pick_server(self, rule: VipRule) -> tuple[IPv4Address, int]:
        """Fewest live connections; ties broken round robin (NAT-DNAT-VIP)."""
        servers = []
        for s in rule.servers:
            host, _, p = s.partition(":")
            servers.append((IPv4Address(host), int(p) if p else rule.port))
        load = {s: 0 for s in servers}
        for e in self.table:
            if e.kind is Kind.VIP and e.inside in load:
                load[e.inside] += 1
        k = (rule.address, rule.port)
        start = self.vip_next.get(k, 0)
        order = servers[start:] + servers[:start]
        best = min(order, key=lambda s: load[s])
        self.vip_next[k] = (servers.index(best) + 1) % len(servers)
        return best

    # ---- ICMP errors (RFC 5508) --------------------------------------------------------------
    def _icmp_error_in(self, now: float, in_port: int, f: pk.Frame) -> list[Message]:
        q = pk.icmp_error_inner(f)
        if q is None:
            self.counters.malformed += 1
            return []
        e = icmp.entry_for_quote(self.table, self.rules, q)
        if e is None:
            self._drop_inbound(now, f, "ICMP error about no binding")
            return []
        self.counters.icmp_translated += 1
        e.last_seen = now
        return [PacketOut(icmp.inbound_error(f, e, q), (Output(TABLE),), in_port=in_port)]

    def _icmp_error_out(self, f: pk.Frame, c: NatInterface, port: int) -> list[Message]:
        q = pk.icmp_error_inner(f)
        if q is None or f.ip_src is None:
            return []
        data = icmp.outbound_error(self.table, self.rules, c, f, q)
        if data is None:
            return []
        self.counters.icmp_translated += 1
        return [PacketOut(data, (Output(port),))]

    # ---- entries and bindings ------------------------------------------------------------------
    def _config_of_port(self, port: int) -> NatInterface | None:
        for name, ports in self.ports.items():
            if port in ports:
                return self.configs[name]
        return None

    def _new(self, now: float, kind: Kind, iface: str, proto: int, inside: tuple,
             outside: tuple, remote: tuple = (), remote_public: tuple = (),
             owns_port: bool = False) -> Entry:
        e = self.table.add(Entry(next(self._ids), kind, iface, proto, inside, outside, now, now,
                                 remote, remote_public, owns_port))
        self.counters.created += 1
        self._log(now, "create", **e.describe())
        self.state_log.append(journal.entry_record(self.name, e))
        return e

    def _add_binding(self, now: float, e: Entry, remote: tuple, first: pk.Frame) -> list[Message]:
        """A binding for `remote`; `first` is the packet that made it (sent by the
        controller, so no flow counts it)."""
        e.count(now, len(first.raw) - 14)
        if remote in e.bindings:  # raced its own flow: the flow is on its way
            return []
        b = self.table.bind(e, remote, COOKIE_NAT | next(self._ids))
        self.state_log.append(journal.bind_record(self.name, e, remote, b.cookie))
        return list[Message](self._binding_flows(e, remote, b))

    # ---- expiry -------------------------------------------------------------------------------
    def flow_removed(self, now: float, cookie: int, packets: int, nbytes: int) -> list[Message]:
        """A binding's timed flow went idle: the binding ends; the entry with its last one."""
        hit = self.table.unbind(cookie)
        if hit is None:
            return []
        e, b = hit
        self.state_log.append(journal.unbind_record(self.name, cookie))
        if b is not None:
            e.done_packets += max(packets, b.packets)
            e.done_bytes += max(nbytes, b.bytes)
        msgs: list[Message] = [flows.delete(cookie)]
        if not e.bindings:
            self._forget(now, e, "idle timeout")
        return msgs

    def tick(self, now: float) -> list[Message]:
        """ICMP query mappings live in the controller alone: expire them here."""
        for e in list(self.table.icmp.values()):  # (not every entry, every tick)
            if now - e.last_seen >= self.configs[e.iface].timeouts["icmp"]:
                self._forget(now, e, "idle timeout")
        return []

    def _remove(self, now: float, e: Entry, why: str) -> list[Message]:
        msgs: list[Message] = [flows.delete(c) for c in self.table.unbind_all(e)]
        self._forget(now, e, why)
        return msgs

    def _forget(self, now: float, e: Entry, why: str) -> None:
        """The entry is gone: its outside address or port goes back, the log says why."""
        self.table.remove(e)
        self.state_log.append(journal.gone_record(self.name, e))
        if e.kind is Kind.POOL:
            self.rules.pools[e.iface].give_back(e.outside[0])
        elif e.kind is Kind.PAT or (e.kind is Kind.HAIRPIN and e.owns_port):
            self.port_alloc.free(e.outside[0], e.proto, e.outside[1])
        self.counters.expired += 1
        self._log(now, "expire", **e.describe(), reason=why, packets=e.packets,
                  bytes=e.bytes, age=round(now - e.created, 1))

    def flow_stats(self, now: float, stats: list[tuple[int, int, int]]) -> None:
        """(cookie, packets, bytes) of live NAT flows: counters and last-seen times."""
        self.counters.conntrack_dropped = sum(p for c, p, _ in stats
                                              if c == flows.COOKIE_CT_DROP)
        per: dict[int, list[int]] = {}
        for cookie, packets, nbytes in stats:
            acc = per.setdefault(cookie, [0, 0])
            acc[0] += packets
            acc[1] += nbytes
        for cookie, (packets, nbytes) in per.items():
            hit = self.table.by_cookie(cookie)
            if hit is None:
                continue
            e, remote = hit
            b = e.bindings.get(remote)
            if b is not None and packets > b.packets:
                b.packets, b.bytes = packets, nbytes
                e.last_seen = now

    # ---- the conntrack fast path ---------------------------------------------------------------
    @property
    def reads_conntrack(self) -> bool:
        """Whether the zone's entries matter now: the fast path's, or TCP bindings of a
        PAT to end (no dump of the conntrack table while there are none)."""
        return self.uses_conntrack or (self.tcp_conntrack and any(
            e.kind is Kind.PAT and e.proto == pk.PROTO_TCP for e in self.table.entries.values()))

    def conntrack_update(self, now: float, rows: list[dict]) -> None:
        """The zone's entries as read from the conntrack table (parse_conntrack): the
        PAT's TCP bindings end when their connections are gone (expire_tcp); the fast
        path's are kept for the table view, new and vanished ones go to the log."""
        bound = {c.pat.address for c in self.configs.values() if c.pat and not c.conntrack}
        if bound and self.tcp_conntrack:
            self.expire_tcp(now, live_bindings(rows, bound))
        if not self.uses_conntrack:
            return
        fast = {c.pat.address for c in self.configs.values() if c.pat and c.conntrack}
        rows = [r for r in rows if r["outside"].rpartition(":")[0] in fast]
        new, gone = self.conntrack.update(now, rows)
        iface = self.rules.conntrack_iface()
        for r in new:
            self.counters.created += 1
            self._log(now, "create", kind="pat", interface=iface, proto="tcp",
                      inside=r["inside"], outside=r["outside"], remote=r["remote"],
                      via="conntrack")
        for r, first in gone:
            self.counters.expired += 1
            self._log(now, "expire", kind="pat", interface=iface, proto="tcp",
                      inside=r["inside"], outside=r["outside"], remote=r["remote"],
                      via="conntrack", reason="conntrack entry gone", age=round(now - first, 1))

    def expire_tcp(self, now: float, live: dict[str, set[str]]) -> None:
        """End the PAT's TCP bindings whose connections conntrack no longer has (it
        applies the timeouts: established, and transitory once closing, RFC 5382 REQ-5),
        and an entry with its last connection. `live`: outside endpoint -> remotes
        (live_bindings). Bindings made within CT_GRACE_S are left alone: the reading
        may predate their commit."""
        for e in self.table:
            if e.kind is not Kind.PAT or e.proto != pk.PROTO_TCP or \
                    now - e.last_seen < CT_GRACE_S:
                continue
            remotes = live.get(f"{e.outside[0]}:{e.outside[1]}")
            if remotes is None:
                self.table.unbind_all(e)
                self._forget(now, e, "connections closed")
                continue
            seen = {_endpoint(r) for r in remotes}
            by_grain = {n: {r[:n] for r in seen} for n in (1, 2)}  # (ip,) and (ip, port)
            for key, b in list(e.bindings.items()):
                if key and key not in by_grain[len(key)]:
                    self.table.unbind(b.cookie)
                    self.state_log.append(journal.unbind_record(self.name, b.cookie))

    # ---- restart -------------------------------------------------------------------------------
    def restore(self, records: list[dict], now: float) -> int:
        """Rebuild the table from the state journal a previous controller process wrote
        (oldest first): same entries, ports and cookies, so the bindings in the switches
        keep working and no port is handed out twice. Returns the live entries."""
        live, top = journal.replay(records, self.name, now)
        for e in live:
            bindings = dict(e.bindings)
            e.bindings.clear()
            self.table.add(e)
            for remote, b in bindings.items():
                self.table.bind(e, remote, b.cookie)
            if e.kind is Kind.POOL:
                self.rules.pools[e.iface].take(e.outside[0])
            if e.kind is Kind.PAT or (e.kind is Kind.HAIRPIN and e.owns_port):
                self.port_alloc.take(e.outside[0], e.proto, e.outside[1])
        self._ids = itertools.count(top + 1)
        self.state_log.clear()
        return len(self.table)

    def drain_state(self) -> list[dict]:
        out, self.state_log = self.state_log, []
        return out

    # ---- views --------------------------------------------------------------------------------
    def _log(self, now: float, event: str, **fields: object) -> None:
        self.events.append({"event": event, "router": self.name, "mono": round(now, 3),
                            **fields})

    def drain_events(self) -> list[dict]:
        ev, self.events = self.events, []
        return ev

    def row_count(self) -> int:
        return len(self.table) + len(self.conntrack.rows) + sum(
            len(c.static) for c in self.configs.values())

    def rows(self, now: float, limit: int | None = None) -> list[dict]:
        """The translation table as the CLI and the API show it (the first `limit` rows:
        a poller need not have thousands of bindings built every time)."""
        entries = self.table if limit is None else itertools.islice(self.table, limit)
        rows = [e.view(now) for e in entries]
        rows += [{"kind": "pat", "interface": self.rules.conntrack_iface(), "proto": "tcp",
                  "inside": r["inside"], "outside": r["outside"], "remotes": [r["remote"]],
                  "age": r["age"], "idle": "", "packets": "", "bytes": "",
                  "state": r["state"], "via": "conntrack"} for r in self.conntrack.rows]
        for c in self.configs.values():
            for s in c.static:  # one row per rule (a prefix rule maps each address)
                rows.append({"kind": "static", "interface": c.interface, "proto": "any",
                             "inside": short(s.inside), "outside": short(s.outside),
                             "remotes": ["*"]})
        return rows if limit is None else rows[:limit]

    def fill_pool(self, iface: str) -> int:
        """The nat-pool-fill fault: every free address of `iface`'s pool held, so a new
        inside host is refused ("pool exhausted") until unfill_pool. Returns how many."""
        pool = self.rules.pools.get(iface)
        if pool is None:
            raise ValueError(f"no NAT address pool on {iface!r}")
        held = pool.hold_all()
        self._held.setdefault(iface, []).extend(held)
        return len(held)

    def unfill_pool(self, iface: str) -> int:
        held = self._held.pop(iface, [])
        for ip in held:
            self.rules.pools[iface].give_back(ip)
        return len(held)

    def state(self) -> dict:
        return {
            "counters": vars(self.counters).copy(),
            "entries": len(self.table),
            "interfaces": {n: {"mapping": c.mapping, "filtering": c.filtering,
                               "pat": c.pat.address if isinstance(c.pat, PatRule) else None,
                               "pool_free": len(self.rules.pools[n]) if n in self.rules.pools
                               else 0,
                               "pool_held": len(self._held.get(n, [])),
                               "conntrack": c.conntrack,
                               "timeouts": c.timeouts}
                           for n, c in self.configs.items()},
        }
