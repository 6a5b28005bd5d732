"""A whole topology in software: each router is its control logic plus a FlowSim, each host
a tiny IPv4 stack (ARP, ping, traceroute-style probes). Lets unit tests state network
behaviour — who reaches whom, which hops answer — without root or a switch."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from controllers.router import RouterLogic
from controllers.spf import Routing
from tests.unit.flowsim import FlowSim
from topologies.model import Topology
from topologies.plan import make_plan
from wire import frames as pk

LIMITED_BROADCAST = IPv4Address("255.255.255.255")


@dataclass
class SimHost:
    name: str
    iface: IPv4Interface
    mac: str
    gateway: IPv4Address
    arp: dict = field(default_factory=dict)
    queue: list = field(default_factory=list)  # (next hop, ip packet) waiting for ARP
    received: list = field(default_factory=list)  # decoded IPv4 frames delivered to us
    answer_ping: bool = True
    udp_open: set = field(default_factory=set)  # ports "listening": no port unreachable


class SimNet:
    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.plan = make_plan(topo)
        self.now = 100.0
        self.routing = Routing(self.plan)
        self.routers = {r.name: RouterLogic(r, self.routing.routes[r.name])
                        for r in self.plan.routers}
        self.tables = {name: FlowSim() for name in self.routers}
        for t in self.tables.values():
            t.now = self.now
        self.hosts: dict[str, SimHost] = {}
        for i, h in enumerate(topo.hosts.values(), start=1):
            iface = topo.host_interface(h.name)
            assert iface is not None
            self.hosts[h.name] = SimHost(h.name, iface, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}",
                                         topo.gateway(h.name))
        self.wire: dict[tuple[str, int], tuple[str, int]] = {}
        for link in self.plan.links:
            self.wire[(link.a, link.a_port)] = (link.b, link.b_port)
            self.wire[(link.b, link.b_port)] = (link.a, link.a_port)
        self.events: deque = deque()
        self.frames_seen = 0
        self.packet_ins = 0  # sent up to the controller, all routers
        for name, r in self.routers.items():
            self._from_controller(name, r.connect(self.now))
        self.run()

    # ---- plumbing -------------------------------------------------------------------
    def _from_controller(self, router: str, msgs: list) -> None:
        for po in self.tables[router].apply(msgs):
            self._switch_result(router, self.tables[router].packet_out(po))

    def _switch_result(self, router: str, res) -> None:
        for port, data in res.outputs:
            self.events.append((router, port, data, True))
        for in_port, data, why, table, metadata in res.packet_ins:
            self.packet_ins += 1
            msgs = self.routers[router].packet_in(self.now, in_port, data, why, table, metadata)
            self._from_controller(router, msgs)

    def run(self, limit: int = 10000) -> None:
        """Deliver frames until the network is quiet."""
        n = 0
        while self.events:
            n += 1
            assert n < limit, "frame storm"
            node, port, data, egress = self.events.popleft()
            if egress:  # leaving `node` on `port`: cross the wire
                peer = self.wire.get((node, port))
                if peer is not None and not self._cut(node, port):
                    self.events.append((peer[0], peer[1], data, False))
                continue
            self.frames_seen += 1
            if node in self.routers:
                self._switch_result(node, self.tables[node].run(port, data))
            else:
                self._host_rx(self.hosts[node], data)

    def _cut(self, node: str, port: int) -> bool:
        return node in self.tables and port in self.tables[node].down_ports

    def link(self, a: str, b: str, up: bool, recompute: bool = True) -> int:
        """Take the link between routers a and b down (or up): both switches see their
        port's state (bundles stop picking it), and with `recompute` the controller
        hears of it and pushes what changed. Returns how many messages that took."""
        (end,) = [(la.a_port, la.b_port) if la.a == a else (la.b_port, la.a_port)
                  for la in self.plan.links if {la.a, la.b} == {a, b}]
        sent = 0
        for router, port in ((a, end[0]), (b, end[1])):
            (self.tables[router].down_ports.discard if up else
             self.tables[router].down_ports.add)(port)
            if not recompute:
                continue
            for name, routes in (self.routing.port_status(router, port, up) or {}).items():
                msgs = self.routers[name].set_routes(self.now, routes)
                sent += len(msgs)
                self._from_controller(name, msgs)
        self.run()
        return sent

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for name, r in self.routers.items():
                for cookie, packets, nbytes in self.tables[name].expire(self.now):
                    self._from_controller(name, r.flow_removed(self.now, cookie, packets,
                                                                nbytes))
                self._from_controller(name, r.tick(self.now))
            self.run()

    # ---- host stack -----------------------------------------------------------------
    def _host_tx(self, h: SimHost, frame: bytes) -> None:
        self.events.append((h.name, 0, frame, True))

    def _host_rx(self, h: SimHost, data: bytes) -> None:
        f = pk.parse(data)
        if f is None or f.eth_dst not in (h.mac, pk.BROADCAST_MAC):
            return
        if f.eth_type == pk.ETH_ARP:
            h.arp[f.arp_spa] = f.arp_sha
            if f.arp_op == pk.ARP_REQUEST and f.arp_tpa == h.iface.ip:
                self._host_tx(h, pk.arp(pk.ARP_REPLY, h.mac, h.iface.ip, f.arp_sha, f.arp_spa))
            still = []
            for nh, ip in h.queue:
                if nh in h.arp:
                    self._host_tx(h, pk.ethernet(h.arp[nh], h.mac, pk.ETH_IPV4, ip))
                else:
                    still.append((nh, ip))
            h.queue = still
            return
        if f.eth_type != pk.ETH_IPV4 or f.ip_dst not in (h.iface.ip, LIMITED_BROADCAST):
            return
        h.received.append(f)
        if h.answer_ping and f.proto == pk.PROTO_ICMP and f.icmp_type == 8:
            self.send(h.name, f.ip_src, pk.PROTO_ICMP, pk.icmp(0, 0, f.l4[4:8], f.l4[8:]))
        elif f.proto == pk.PROTO_UDP and int.from_bytes(f.l4[2:4], "big") not in h.udp_open:
            # no listener: port unreachable, like a real host
            body = pk.icmp(3, 3, b"\0" * 4, pk.icmp_error_body(f))
            self.send(h.name, f.ip_src, pk.PROTO_ICMP, body)

    def send(self, host: str, dst: IPv4Address | str, proto: int, payload: bytes,
             ttl: int = 64) -> None:
        h = self.hosts[host]
        dst = IPv4Address(dst)
        ip = pk.ipv4(h.iface.ip, dst, proto, payload, ttl=ttl)
        nh = dst if dst in h.iface.network else h.gateway
        if nh in h.arp:
            self._host_tx(h, pk.ethernet(h.arp[nh], h.mac, pk.ETH_IPV4, ip))
        else:
            h.queue.append((nh, ip))
            self._host_tx(h, pk.arp(pk.ARP_REQUEST, h.mac, h.iface.ip, pk.ZERO_MAC, nh))
        self.run()

    # ---- what tests ask ---------------------------------------------------------------
    def udp(self, src: str, dst: str | IPv4Address, sport: int, dport: int,
            data: bytes = b"infralab", ttl: int = 64) -> None:
        """Send one UDP datagram (with a correct checksum) from host `src`."""
        h = self.hosts[src]
        target = self.hosts[dst].iface.ip if dst in self.hosts else IPv4Address(dst)
        seg = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + \
            (8 + len(data)).to_bytes(2, "big") + b"\0\0" + data
        c = pk.l4_checksum(h.iface.ip.packed, target.packed, pk.PROTO_UDP, seg)
        seg = seg[:6] + c.to_bytes(2, "big") + seg[8:]
        self.send(src, target, pk.PROTO_UDP, seg, ttl=ttl)

    def tcp(self, src: str, dst: str | IPv4Address, sport: int, dport: int,
            flags: int = 0x02) -> None:
        """Send one TCP segment (SYN by default) from host `src`."""
        h = self.hosts[src]
        target = self.hosts[dst].iface.ip if dst in self.hosts else IPv4Address(dst)
        seg = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + b"\0\0\0\1\0\0\0\0" \
            + bytes([0x50, flags]) + b"\xff\xff\0\0\0\0"
        c = pk.l4_checksum(h.iface.ip.packed, target.packed, pk.PROTO_TCP, seg)
        seg = seg[:16] + c.to_bytes(2, "big") + seg[18:]
        self.send(src, target, pk.PROTO_TCP, seg)

    def last(self, host: str, proto: int | None = None) -> pk.Frame | None:
        """The last frame `host` received (of protocol `proto`)."""
        got = [f for f in self.hosts[host].received if proto is None or f.proto == proto]
        return got[-1] if got else None

    def ping(self, src: str, dst: str | IPv4Address, ttl: int = 64,
             ident: int = 7) -> pk.Frame | None:
        """Send one echo request; return what came back to `src` (reply or ICMP error)."""
        h = self.hosts[src]
        target = self.hosts[dst].iface.ip if dst in self.hosts else IPv4Address(dst)
        before = len(h.received)
        self.send(src, target, pk.PROTO_ICMP, pk.icmp(8, 0, ident.to_bytes(2, "big") + b"\0\1",
                                                      b"infralab"), ttl=ttl)
        got = h.received[before:]
        return got[-1] if got else None

    def probe(self, src: str, dst: str, ttl: int) -> pk.Frame | None:
        """A traceroute probe (UDP to port 33434) with `ttl`; returns the ICMP answer."""
        h = self.hosts[src]
        before = len(h.received)
        udp = (40000).to_bytes(2, "big") + (33434).to_bytes(2, "big") + b"\0\x10\0\0" + b"x" * 8
        self.send(src, self.hosts[dst].iface.ip, pk.PROTO_UDP, udp, ttl=ttl)
        got = h.received[before:]
        return got[-1] if got else None
