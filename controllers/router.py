"""IPv4 router logic for one OVS switch: ARP, neighbours, FIB flows, ICMP errors.

Pure: every entry point takes the time `now` and returns the OpenFlow messages to send
(see messages.py); nothing here touches a socket. The switch does the forwarding once
flows are in; the controller only sees ARP, traffic for the router itself, packets whose
TTL expires, and packets towards neighbours it has not resolved yet.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from topologies.natconfig import NatInterface
from topologies.plan import InterfacePlan, RouterPlan
from topologies.relayconfig import RelayConfig
from wire import frames as pk

from .messages import (
    CONTROLLER,
    IN_PORT,
    META_MASK,
    REASON_INVALID_TTL,
    REMOVED_DELETE,
    REMOVED_IDLE,
    TABLE,
    Bundle,
    DecTTL,
    FlowMod,
    Group,
    GroupMod,
    Message,
    Output,
    PacketOut,
    SetField,
    SwitchConfig,
)
from .nat import Nat
from .pipeline import (
    DEFAULT,
    NAT,
    P_ARP,
    P_EGRESS,
    P_FLOOD,
    P_HAIRPIN_OUT,
    P_KNOWN_MAC,
    P_L2,
    P_L3,
    P_LOCAL,
    RELAY,
    T_CLASSIFY,
    T_EGRESS,
    T_L2,
    T_POST_NAT,
    T_PRE_NAT,
    T_RELAY,
    T_ROUTE,
    owner_of,
    route_priority,
)
from .relay import Relay
from .spf import NextHop
from .spf import Route as SpfRoute

log = logging.getLogger("infralab.router")

ARP_RETRY_S = 1.0  # resend an unanswered ARP request after this long
ARP_TRIES = 3  # then give up: queued packets get ICMP host unreachable
NEXTHOP_RETRY_S = 2.0  # static-route next hops are asked for until they answer
PENDING_PER_DEST = 16  # packets held per unresolved destination (RFC 1812 says "small")
ICMP_ERRORS_PER_S = 200  # token bucket for generated ICMP errors

@dataclass
class Neighbor:
    ip: IPv4Address
    mac: str
    port: int
    iface: InterfacePlan
    learned: float


@dataclass
class Pending:
    iface: InterfacePlan
    tries: int = 0
    next_try: float = 0.0
    packets: deque = field(default_factory=lambda: deque(maxlen=PENDING_PER_DEST))


@dataclass
class RouteEntry:
    prefix: IPv4Network
    via: IPv4Address | None  # None: connected; else the (first) next hop
    iface: InterfacePlan | None  # for connected routes
    hops: tuple[NextHop, ...] = ()  # computed (spf.py): equal-cost next hops
    backup: NextHop | None = None  # computed: loop-free alternate for fast failover
    origin: str = "connected"  # connected | static | computed

    @property
    def candidates(self) -> tuple[NextHop, ...]:
        return self.hops + ((self.backup,) if self.backup is not None else ())


@dataclass
class Counters:
    packet_in: int = 0
    malformed: int = 0
    arp_replies_sent: int = 0
    arp_requests_sent: int = 0
    icmp_errors_sent: int = 0
    icmp_rate_limited: int = 0
    echo_replies_sent: int = 0
    pending_dropped: int = 0


class RouterLogic:
    """Control-plane logic of one router (a switch whose plan is `plan`); the router as
    declared in a topology is topologies.model.Router."""

    def __init__(self, plan: RouterPlan,
                 computed: dict[IPv4Network, SpfRoute] | None = None) -> None:
        self.plan = plan
        self.name = plan.name
        self.iface_by_port: dict[int, InterfacePlan] = {}
        self.iface_index: dict[str, int] = {}
        for idx, iface in enumerate(plan.interfaces, start=1):
            self.iface_index[iface.subnet] = idx
            for p in iface.ports:
                self.iface_by_port[p.port] = iface
        self.own_ips = {IPv4Address(i.ip): i for i in plan.interfaces}
        self.neighbors: dict[IPv4Address, Neighbor] = {}
        self.on_port: dict[int, Neighbor] = {}  # the neighbour last learned on each port
        self.pending: dict[IPv4Address, Pending] = {}
        self.routes: list[RouteEntry] = []
        self.next_hops: set[IPv4Address] = set()
        self._build_routes(computed or {})
        self._next_hop_try: float = 0.0
        self.counters = Counters()
        self._icmp_tokens = float(ICMP_ERRORS_PER_S)
        self._icmp_last = 0.0
        self.nat = Nat(plan, [NatInterface.from_dict(d) for d in plan.nat]) if plan.nat \
            else None
        self.relay = Relay(plan, RelayConfig.from_dict(plan.relay)) if plan.relay else None

    def _build_routes(self, computed: dict[IPv4Network, SpfRoute]) -> None:
        """Connected, then written (static) routes, then computed ones for the prefixes
        neither covers exactly: a written route wins over a computed one (ROUTE-SPF)."""
        routes = [RouteEntry(i.network, None, i) for i in self.plan.interfaces]
        routes += [RouteEntry(IPv4Network(r["prefix"]), IPv4Address(r["via"]), None,
                              origin="static") for r in self.plan.routes]
        taken = {r.prefix for r in routes}
        routes += [RouteEntry(c.prefix, c.hops[0].ip, None, c.hops, c.backup, "computed")
                   for c in computed.values() if c.prefix not in taken and c.hops]
        routes.sort(key=lambda r: r.prefix.prefixlen, reverse=True)
        self.routes = routes
        self.next_hops = {r.via for r in routes if r.via is not None} | \
            {h.ip for r in routes for h in r.candidates}

    def set_routes(self, now: float, computed: dict[IPv4Network, SpfRoute]) -> list[Message]:
        """New computed routes (a link went down or up): the flows of the prefixes whose
        next hops changed, nothing else (ROUTE-FAILOVER)."""
        old = {r.prefix: r for r in self.routes}
        self._build_routes(computed)
        msgs: list[Message] = []
        new = {r.prefix: r for r in self.routes}
        for prefix, r in new.items():
            o = old.get(prefix)
            if o is None or (o.via, o.hops, o.backup) != (r.via, r.hops, r.backup):
                msgs += self._route_flows(r)
        for prefix in old:
            if prefix not in new:  # unreachable now: the controller answers for it
                msgs.append(FlowMod(T_ROUTE, route_priority(prefix.prefixlen),
                                    _route_match(prefix), (Output(CONTROLLER),)))
        msgs += self.tick(now)
        return msgs

    # ---- lookups --------------------------------------------------------------------
    def lookup(self, dst: IPv4Address) -> RouteEntry | None:
        """Longest-prefix match in the routing table."""
        for r in self.routes:
            if dst in r.prefix:
                return r
        return None

    def connected_iface(self, ip: IPv4Address) -> InterfacePlan | None:
        for i in self.plan.interfaces:
            if ip in i.network:
                return i
        return None

    # ---- switch connected -----------------------------------------------------------
    def connect(self, now: float) -> list[Message]:
        """Everything a freshly connected switch needs: wipe, defaults, classifier, FIB."""
        msgs: list[Message] = [
            SwitchConfig(),
            FlowMod(table=0xFF, delete=True, cookie_mask=0),  # every flow: all are ours
            GroupMod(0, (), delete_all=True),
        ]
        # Pass-through defaults of the tables later features fill in.
        msgs += [
            FlowMod(T_RELAY, DEFAULT, goto=T_L2),
            FlowMod(T_PRE_NAT, DEFAULT, goto=T_ROUTE),
            FlowMod(T_POST_NAT, DEFAULT, goto=T_EGRESS),
            FlowMod(T_ROUTE, DEFAULT, actions=(Output(CONTROLLER),)),  # no route: unreachable
            FlowMod(T_CLASSIFY, P_ARP, {"eth_type": pk.ETH_ARP}, (Output(CONTROLLER),)),
        ]
        for ip in self.own_ips:
            msgs.append(FlowMod(T_CLASSIFY, P_LOCAL,
                                {"eth_type": pk.ETH_IPV4, "ipv4_dst": str(ip)},
                                (Output(CONTROLLER),)))
        for idx, iface in enumerate(self.plan.interfaces, start=1):
            ports = tuple(p.port for p in iface.ports)
            msgs.append(GroupMod(idx, ports))
            msgs.append(FlowMod(T_L2, P_FLOOD, {"metadata": (idx, META_MASK)}, (Group(idx),)))
            for port in ports:
                msgs.append(FlowMod(T_CLASSIFY, P_L3, {"in_port": port, "eth_type":
                                    pk.ETH_IPV4, "eth_dst": iface.mac}, goto=T_PRE_NAT))
                msgs.append(FlowMod(T_CLASSIFY, P_L2, {"in_port": port},
                                    goto=T_L2, metadata=(idx, META_MASK)))
                msgs.append(FlowMod(T_EGRESS, P_EGRESS, {"metadata": (port, META_MASK)},
                                    (Output(port),)))
                msgs.append(FlowMod(T_EGRESS, P_HAIRPIN_OUT, {"metadata": (port, META_MASK),
                                    "in_port": port}, (Output(IN_PORT),)))
        for r in self.routes:
            msgs += self._route_flows(r)
        for n in self.neighbors.values():  # reconnect: re-install what we know
            msgs += self._neighbor_flows(n)
        if self.nat is not None:
            msgs += self.nat.connect(now)
        if self.relay is not None:
            msgs += self.relay.flows()
        msgs += self.tick(now)
        return msgs

    def _route_flows(self, r: RouteEntry) -> list[Message]:
        """A route with several next hops (ECMP) or a backup (fast failover) picks its
        egress port in the switch, per flow, among the live ones: Nicira's bundle_load
        writes it to the metadata, as a one-next-hop route writes its port, so the NAT's
        post-routing table and the egress table (which rewrites the MACs for the
        neighbour on that port) work alike for both."""
        if len(r.candidates) < 2:
            return [self._route_flow(r)]
        ports = tuple(h.port for h in r.candidates
                      if (nb := self.neighbors.get(h.ip)) is not None and nb.port == h.port)
        if not ports:  # nothing resolved yet: the controller asks (as for one hop)
            return [FlowMod(T_ROUTE, route_priority(r.prefix.prefixlen),
                            _route_match(r.prefix), (Output(CONTROLLER),))]
        return [FlowMod(T_ROUTE, route_priority(r.prefix.prefixlen), _route_match(r.prefix),
                        (DecTTL(), Bundle(ports, failover=len(r.hops) == 1)),
                        goto=T_POST_NAT)]

    def _route_flow(self, r: RouteEntry) -> FlowMod:
        match = _route_match(r.prefix)
        nb = self.neighbors.get(r.via) if r.via is not None else None
        if nb is None:  # connected subnet (glean) or unresolved next hop: ask the controller
            return FlowMod(T_ROUTE, route_priority(r.prefix.prefixlen), match,
                           (Output(CONTROLLER),))
        return self._forward_flow(route_priority(r.prefix.prefixlen), match, nb)

    def _forward_flow(self, priority: int, match: dict, nb: Neighbor) -> FlowMod:
        return FlowMod(T_ROUTE, priority, match,
                       (DecTTL(), *_addressing(nb)),
                       goto=T_POST_NAT, metadata=(nb.port, META_MASK))

    def _neighbor_flows(self, nb: Neighbor) -> list[Message]:
        idx = self.iface_index[nb.iface.subnet]
        msgs: list[Message] = [
            self._forward_flow(route_priority(32) + 5,
                               {"eth_type": pk.ETH_IPV4, "ipv4_dst": str(nb.ip)}, nb),
            FlowMod(T_L2, P_KNOWN_MAC, {"metadata": (idx, META_MASK), "eth_dst": nb.mac},
                    (Output(nb.port),)),
        ]
        if self._is_link_next_hop(nb):
            # leaving by its port, a packet is addressed to it (what a bundle-chosen egress
            # needs; a no-op after a route that set the same MACs already)
            macs = _addressing(nb)
            msgs += [FlowMod(T_EGRESS, P_EGRESS, {"metadata": (nb.port, META_MASK)},
                             (*macs, Output(nb.port))),
                     FlowMod(T_EGRESS, P_HAIRPIN_OUT, {"metadata": (nb.port, META_MASK),
                             "in_port": nb.port}, (*macs, Output(IN_PORT)))]
        for r in self.routes:
            if r.via == nb.ip or any(h.ip == nb.ip for h in r.candidates):
                msgs += self._route_flows(r)
        return msgs

    # ---- timers ---------------------------------------------------------------------
    def tick(self, now: float) -> list[Message]:
        """ARP retries and give-ups; asks for unresolved static-route next hops; NAT."""
        msgs: list[Message] = self.nat.tick(now) if self.nat is not None else []
        for ip, p in list(self.pending.items()):
            if now < p.next_try:
                continue
            if p.tries >= ARP_TRIES:
                del self.pending[ip]
                for in_port, f in p.packets:
                    msgs += self._icmp_error(now, in_port, f, 3, 1)  # host unreachable
                self.counters.pending_dropped += len(p.packets)
                continue
            p.tries += 1
            p.next_try = now + ARP_RETRY_S
            msgs += self._arp_request(p.iface, ip)
        if now >= self._next_hop_try:
            self._next_hop_try = now + NEXTHOP_RETRY_S
            for nh in sorted(self.next_hops):
                if nh not in self.neighbors and nh not in self.pending:
                    iface = self.connected_iface(nh)
                    if iface is not None:
                        msgs += self._arp_request(iface, nh)
        return msgs

    def unresolved_next_hops(self) -> list[IPv4Address]:
        return sorted(nh for nh in self.next_hops if nh not in self.neighbors)

    # ---- packet-in ------------------------------------------------------------------
    def packet_in(self, now: float, in_port: int, data: bytes, reason: int,
                  table: int = T_CLASSIFY, metadata: int = 0) -> list[Message]:
        """A packet the switch sent up from `table` (`metadata`: its egress port once
        routed)."""
        self.counters.packet_in += 1
        f = pk.parse(data)
        iface = self.iface_by_port.get(in_port)
        if f is None or iface is None:
            self.counters.malformed += 1
            return []
        if f.eth_type == pk.ETH_ARP:
            return self._arp_in(now, in_port, iface, f)
        if f.eth_type != pk.ETH_IPV4 or f.ip_dst is None:
            return []
        if reason == REASON_INVALID_TTL:
            return self._icmp_error(now, in_port, f, 11, 0)
        if self.relay is not None:
            if table == T_RELAY:
                return self.relay.from_client(now, in_port, f)
            if self.relay.for_relay(f):
                return self.relay.from_server(now, f)
        if self.nat is not None:
            out = self.nat.packet_in(now, table, in_port, f, metadata & META_MASK)
            if out is not None:
                return [self._addressed(m) for m in out.msgs] + \
                    (self._refusal(now, in_port, f) if out.refused else [])
        if f.ip_dst in self.own_ips:
            return self._local_in(now, in_port, iface, f)
        return self._route_miss(now, in_port, f)

    def _arp_in(self, now: float, in_port: int, iface: InterfacePlan, f: pk.Frame) -> list:
        msgs: list[Message] = []
        spa, tpa = f.arp_spa, f.arp_tpa
        assert spa is not None and tpa is not None
        if spa in iface.network and spa != IPv4Address(iface.ip) and \
                spa != iface.network.network_address:
            msgs += self._learn(now, spa, f.arp_sha, in_port, iface)
        if tpa == IPv4Address(iface.ip):
            if f.arp_op == pk.ARP_REQUEST:
                self.counters.arp_replies_sent += 1
                reply = pk.arp(pk.ARP_REPLY, iface.mac, tpa, f.arp_sha, spa)
                msgs.append(PacketOut(reply, (Output(in_port),)))
            return msgs
        # ARP between hosts of one subnet: the router is their switch too.
        dst = self._port_of_mac(iface, f.eth_dst)
        if dst is not None and dst != in_port:
            msgs.append(PacketOut(f.raw, (Output(dst),)))
        elif dst is None:
            outs = tuple(Output(p.port) for p in iface.ports if p.port != in_port)
            if outs:
                msgs.append(PacketOut(f.raw, outs))
        return msgs

    def _port_of_mac(self, iface: InterfacePlan, mac: str) -> int | None:
        for n in self.neighbors.values():
            if n.iface is iface and n.mac == mac:
                return n.port
        return None

    def _learn(self, now: float, ip: IPv4Address, mac: str, port: int,
               iface: InterfacePlan) -> list[Message]:
        old = self.neighbors.get(ip)
        nb = Neighbor(ip, mac, port, iface, now)
        self.neighbors[ip] = nb
        self.on_port[port] = nb
        msgs: list[Message] = []
        if old is None or (old.mac, old.port) != (mac, port):
            log.info("%s: neighbour %s is %s on port %d", self.name, ip, mac, port)
            msgs += self._neighbor_flows(nb)
        p = self.pending.pop(ip, None)
        if p is not None:
            for in_port, f in p.packets:  # re-run the pipeline, which now knows the way
                msgs.append(PacketOut(f.raw, (Output(TABLE),), in_port=in_port))
        return msgs

    def _local_in(self, now: float, in_port: int, iface: InterfacePlan,
                  f: pk.Frame) -> list[Message]:
        assert f.ip_src is not None and f.ip_dst is not None  # (IPv4, for one of ours)
        if f.proto == pk.PROTO_ICMP and f.icmp_type == 8 and f.icmp_code == 0:
            self.counters.echo_replies_sent += 1
            body = pk.icmp(0, 0, f.l4[4:8], f.l4[8:])
            ip = pk.ipv4(f.ip_dst, f.ip_src, pk.PROTO_ICMP, body)
            frame = pk.ethernet(f.eth_src, iface.mac, pk.ETH_IPV4, ip)
            return [PacketOut(frame, (Output(in_port),))]
        if f.proto == pk.PROTO_UDP:  # nothing listens: traceroute's last hop
            return self._icmp_error(now, in_port, f, 3, 3, src=f.ip_dst)
        return []

    def _route_miss(self, now: float, in_port: int, f: pk.Frame) -> list[Message]:
        """A packet the FIB sent up: no route, or its next hop is not resolved yet."""
        assert f.ip_dst is not None
        r = self.lookup(f.ip_dst)
        if r is None:
            return self._icmp_error(now, in_port, f, 3, 0)  # net unreachable
        if f.ttl <= 1:
            return self._icmp_error(now, in_port, f, 11, 0)
        target = f.ip_dst if r.via is None else r.via
        iface = r.iface if r.iface is not None else self.connected_iface(target)
        if iface is None:
            return self._icmp_error(now, in_port, f, 3, 0)
        if target in (iface.network.network_address, iface.network.broadcast_address):
            return []  # directed broadcast: not forwarded (RFC 2644)
        if target in self.neighbors:  # flow raced the packet: run it through again
            return [PacketOut(f.raw, (Output(TABLE),), in_port=in_port)]
        p = self.pending.get(target)
        if p is None:
            p = self.pending[target] = Pending(iface)
        p.packets.append((in_port, f))
        return self.tick(now) if p.tries == 0 else []

    def _addressed(self, m: Message) -> Message:
        """A packet the NAT sends straight out of a router link, addressed to the
        neighbour there: when the route's port was chosen in the switch (a bundle), the
        packet the switch sent up still had its old MACs (the egress table, which the
        packet-out skips, would have set them)."""
        if not isinstance(m, PacketOut):
            return m
        for i, a in enumerate(m.actions):
            if isinstance(a, Output):
                nb = self.on_port.get(a.port)  # (a NAT packet-out: no scan of neighbours)
                if nb is not None and self._is_link_next_hop(nb):
                    return dataclasses.replace(
                        m, actions=m.actions[:i] + _addressing(nb) + m.actions[i:])
        return m

    def _is_link_next_hop(self, nb: Neighbor) -> bool:
        """A router next hop alone on a point-to-point link (its port reaches only it)."""
        return nb.ip in self.next_hops and len(nb.iface.ports) == 1

    def _refusal(self, now: float, in_port: int, f: pk.Frame) -> list[Message]:
        """ICMP admin-prohibited to an inside host the NAT could not translate. The packet
        was already routed (MACs rewritten): address the error to the sender's own MAC."""
        nb = self.neighbors.get(f.ip_src) if f.ip_src is not None else None
        if nb is None:
            return []
        return self._icmp_error(now, in_port, dataclasses.replace(f, eth_src=nb.mac), 3, 13)

    def flow_removed(self, now: float, cookie: int, packets: int, nbytes: int,
                     reason: int = REMOVED_IDLE) -> list[Message]:
        """A flow asked to be reported when it went away (NAT bindings). Only a timeout
        ends a binding: a DELETE is our own doing (a reconnect's wipe, an expiry)."""
        if self.nat is None or reason == REMOVED_DELETE or owner_of(cookie) != NAT:
            return []
        return self.nat.flow_removed(now, cookie, packets, nbytes)

    def flow_stats(self, now: float, stats: list[tuple[int, int, int]]) -> None:
        """(cookie, packets, bytes) of flows the switch reported: each part gets its own
        cookie space's (the NAT's bindings, the relay's snooping drops)."""
        if self.nat is not None:
            self.nat.flow_stats(now, [s for s in stats if owner_of(s[0]) == NAT])
        if self.relay is not None:
            self.relay.flow_stats([s for s in stats if owner_of(s[0]) == RELAY])

    # ---- generated packets -----------------------------------------------------------
    def _arp_request(self, iface: InterfacePlan, target: IPv4Address) -> list[Message]:
        self.counters.arp_requests_sent += 1
        req = pk.arp(pk.ARP_REQUEST, iface.mac, IPv4Address(iface.ip), pk.ZERO_MAC, target)
        return [PacketOut(req, tuple(Output(p.port) for p in iface.ports))]

    def _icmp_error(self, now: float, in_port: int, f: pk.Frame, icmp_type: int, code: int,
                    src: IPv4Address | None = None) -> list[Message]:
        """ICMP error back towards the sender, from the ingress interface (RFC 1812)."""
        if f.ip_src is None or f.is_icmp_error or f.frag_offset or \
                f.ip_src == IPv4Address(0) or f.eth_dst == pk.BROADCAST_MAC or \
                f.ip_dst is None or f.ip_dst.is_multicast:
            return []
        self._icmp_tokens = min(float(ICMP_ERRORS_PER_S),
                                self._icmp_tokens + (now - self._icmp_last) * ICMP_ERRORS_PER_S)
        self._icmp_last = now
        if self._icmp_tokens < 1:
            self.counters.icmp_rate_limited += 1
            return []
        self._icmp_tokens -= 1
        iface = self.iface_by_port[in_port]
        body = pk.icmp(icmp_type, code, b"\0\0\0\0", pk.icmp_error_body(f))
        ip = pk.ipv4(src or IPv4Address(iface.ip), f.ip_src, pk.PROTO_ICMP, body)
        self.counters.icmp_errors_sent += 1
        return [PacketOut(pk.ethernet(f.eth_src, iface.mac, pk.ETH_IPV4, ip),
                          (Output(in_port),))]

    # ---- views ----------------------------------------------------------------------
    def route_table(self) -> list[dict]:
        """The routes that are not connected: prefix, origin, next hops (several: ECMP),
        backup (what `routes` at the prompt shows; kept out of the status file, which is
        rewritten on every change and would grow with routers x prefixes)."""
        return [{"prefix": str(r.prefix), "origin": r.origin,
                 "via": [str(h.ip) for h in r.hops] or ([str(r.via)] if r.via else []),
                 **({"backup": str(r.backup.ip)} if r.backup else {})}
                for r in self.routes if r.origin != "connected"]

    def state(self) -> dict:
        return {
            "neighbors": {str(ip): {"mac": n.mac, "port": n.port, "subnet": n.iface.subnet}
                          for ip, n in sorted(self.neighbors.items())},
            "unresolved_next_hops": [str(ip) for ip in self.unresolved_next_hops()],
            "routes": len(self.routes),  # (the table itself: route_table(), by the API)
            "pending": {str(ip): len(p.packets) for ip, p in self.pending.items()},
            "counters": vars(self.counters).copy(),
            **({"nat": self.nat.state()} if self.nat is not None else {}),
            **({"relay": self.relay.state()} if self.relay is not None else {}),
        }


def _addressing(nb: Neighbor) -> tuple[SetField, SetField]:
    """The MACs of a frame routed to neighbour `nb`."""
    return SetField("eth_src", nb.iface.mac), SetField("eth_dst", nb.mac)


def _route_match(prefix: IPv4Network) -> dict:
    match: dict = {"eth_type": pk.ETH_IPV4}
    if prefix.prefixlen:
        match["ipv4_dst"] = _masked(prefix)
    return match


def _masked(net: IPv4Network) -> str | tuple[str, str]:
    if net.prefixlen == 32:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))
