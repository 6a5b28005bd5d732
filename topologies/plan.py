"""Turn a validated Topology into a wiring plan: who is plugged into which router port.

The plan is the contract between the Mininet builder (which creates the links with exactly
these port numbers) and the controller (which routes by them). It is pure data, written to
JSON for the controller process, so both sides agree without talking to each other.

A router is an L3 switch: each host of a subnet gets its own router port, and the ports of
one subnet form one L2 segment switched by the router itself; a subnet on two routers is
a point-to-point link between them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Network

from .model import LinkParams, Topology, delay_seconds


@dataclass
class PortPlan:
    port: int  # OpenFlow port number on the router
    intf: str  # interface name on the router side, e.g. "rc-eth3"
    peer: str  # host or router at the other end
    peer_intf: str


@dataclass
class InterfacePlan:
    """One router interface: an address on a subnet, served on one or more ports."""

    subnet: str
    ip: str
    prefixlen: int
    mac: str
    ports: list[PortPlan] = field(default_factory=list)

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.ip}/{self.prefixlen}", strict=False)


@dataclass
class RouterPlan:
    name: str
    dpid: int
    interfaces: list[InterfacePlan]
    routes: list[dict]  # {"prefix": "a.b.c.d/n", "via": "a.b.c.d"}
    nat: list[dict] = field(default_factory=list)  # natconfig.NatInterface.to_dict()
    relay: dict | None = None  # relayconfig.RelayConfig.to_dict()

    def interface_of_port(self, port: int) -> InterfacePlan | None:
        for iface in self.interfaces:
            if any(p.port == port for p in iface.ports):
                return iface
        return None


@dataclass
class LinkPlan:
    a: str
    a_intf: str
    a_port: int
    b: str
    b_intf: str
    b_port: int
    bw: float | None = None
    delay: str | None = None  # emulated by a delay node between a and b
    loss: float | None = None
    cost: int = 0  # router links: routing metric in micro-units (1000 = cost 1 = 1 ms)
    shape: dict = field(default_factory=dict)  # what only netem does (LinkParams.shape)

    @property
    def emulated(self) -> bool:
        return bool(self.delay) or bool(self.loss) or bool(self.shape)


@dataclass
class Plan:
    name: str
    routers: list[RouterPlan]
    links: list[LinkPlan]
    routing: str = "shortest-path"  # or "static" (topologies.model.ROUTING_MODES)
    fast_failover: bool = True  # precompute backup next hops for the switches
    announce_links: bool = True  # route router-to-router link prefixes network-wide
    # RUNS-MANY: what the run's kernel and OVS names begin with (bridges, router ports)
    prefix: str = ""

    def bridge(self, router: str) -> str:
        """The OVS bridge of router `router` (its name, with the run's prefix)."""
        return self.prefix + router

    def router(self, name: str) -> RouterPlan:
        return next(r for r in self.routers if r.name == name)

    def router_link_ends(self, a: str, b: str) -> list[tuple[str, str, int]]:
        """(router, interface, OpenFlow port) at both ends of every link joining routers a
        and b (their router-side interfaces, also where a delay node sits between them);
        LookupError when no link joins them."""
        routers = {r.name for r in self.routers}
        ends = [e for lk in self.links if {lk.a, lk.b} == {a, b} and {a, b} <= routers
                for e in ((lk.a, lk.a_intf, lk.a_port), (lk.b, lk.b_intf, lk.b_port))]
        if not ends:
            raise LookupError(f"no link joins routers {a} and {b}")
        return ends

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        d = json.loads(text)
        routers = [
            RouterPlan(r["name"], r["dpid"],
                       [InterfacePlan(i["subnet"], i["ip"], i["prefixlen"], i["mac"],
                                      [PortPlan(**p) for p in i["ports"]])
                        for i in r["interfaces"]],
                       r["routes"], r.get("nat", []), r.get("relay"))
            for r in d["routers"]
        ]
        return cls(d["name"], routers, [LinkPlan(**link) for link in d["links"]],
                   d.get("routing", "shortest-path"), d.get("fast_failover", True),
                   d.get("announce_links", True), d.get("prefix", ""))


def router_mac(router_index: int, iface_index: int) -> str:
    """Locally administered MAC for interface `iface_index` of router `router_index`."""
    return f"02:1a:{router_index >> 8:02x}:{router_index & 0xff:02x}:{iface_index:02x}:01"


RUN_SLOTS = 36  # runs on one machine at once: each has a slot, and its prefix from it
SLOT_DPIDS = 1024  # datapath ids (and so NAT conntrack zones) each slot's routers take
IFNAMSIZ = 15  # Linux's longest interface name


def run_prefix(slot: int | None) -> str:
    """The two characters a run's kernel and OVS names begin with: "i" and its slot in
    base 36 (i0 ... iz); none outside a run (a plan for a picture, a test)."""
    if slot is None:
        return ""
    if not 0 <= slot < RUN_SLOTS:
        raise ValueError(f"run slot {slot} is not in 0..{RUN_SLOTS - 1}")
    return "i" + "0123456789abcdefghijklmnopqrstuvwxyz"[slot]


def make_plan(topo: Topology, slot: int | None = None) -> Plan:
    """Assign ports and MACs deterministically from the topology's order; with a run's
    `slot`, its router bridges and ports are named with the slot's prefix, and its
    datapath ids (conntrack zones with them) are the slot's own, so that runs on one
    machine never share a name or a zone (RUNS-MANY)."""
    prefix, first_dpid = run_prefix(slot), (slot or 0) * SLOT_DPIDS
    subnets = topo.subnets()
    next_port = {r: 1 for r in topo.routers}
    iplans: dict[tuple[str, str], InterfacePlan] = {}
    routers: list[RouterPlan] = []
    links: list[LinkPlan] = []
    for ri, r in enumerate(topo.routers.values(), start=1):
        ifaces = []
        for ii, (sname, addr) in enumerate(r.interfaces.items(), start=1):
            ip = InterfacePlan(sname, str(addr.ip), addr.network.prefixlen, router_mac(ri, ii))
            iplans[(r.name, sname)] = ip
            ifaces.append(ip)
        routes = [{"prefix": str(rt.prefix), "via": str(rt.via)} for rt in r.routes]
        routers.append(RouterPlan(r.name, first_dpid + ri, ifaces, routes,
                                  [n.to_dict() for n in r.nat],
                                  r.relay.to_dict() if r.relay else None))

    def take_port(router: str) -> int:
        n = next_port[router]
        next_port[router] = n + 1
        return n

    for s in subnets.values():
        rnames = list(s.routers)
        if s.is_transit:
            a, b = rnames
            pa, pb = take_port(a), take_port(b)
            ia, ib = f"{prefix}{a}-eth{pa}", f"{prefix}{b}-eth{pb}"
            iplans[(a, s.name)].ports.append(PortPlan(pa, ia, b, ib))
            iplans[(b, s.name)].ports.append(PortPlan(pb, ib, a, ia))
            lp = topo.links.get(s.name)
            links.append(LinkPlan(a, ia, pa, b, ib, pb, lp.bw if lp else None,
                                  lp.delay if lp else None, lp.loss if lp else None,
                                  link_cost(lp), lp.shape() if lp else {}))
            continue
        (rname,) = rnames
        for hname in s.hosts:
            port = take_port(rname)
            ri_, hi = f"{prefix}{rname}-eth{port}", f"{hname}-eth0"
            iplans[(rname, s.name)].ports.append(PortPlan(port, ri_, hname, hi))
            hl = topo.hosts[hname].link
            links.append(LinkPlan(hname, hi, 0, rname, ri_, port, hl.bw, hl.delay, hl.loss,
                                  shape=hl.shape()))
    long = sorted({n for lk in links for n in (lk.a_intf, lk.b_intf) if len(n) > IFNAMSIZ}
                  | {prefix + r for r in topo.routers if len(prefix + r) > IFNAMSIZ})
    if long:
        raise ValueError(f"interface or bridge names longer than Linux's {IFNAMSIZ} "
                         f"characters: {', '.join(long[:5])}; use shorter router or host "
                         "names")
    return Plan(topo.name, routers, links, topo.routing, topo.fast_failover,
                topo.announce_links, prefix)


COST_UNIT = 1000  # a cost of 1 (one millisecond of delay) in the plan's integer metric


def link_cost(lp: LinkParams | None) -> int:
    """A router link's metric: its `cost:`, else its one-way delay in ms, else 1."""
    if lp is not None and lp.cost is not None:
        return max(1, round(lp.cost * COST_UNIT))
    if lp is not None and lp.delay:
        return max(1, round(delay_seconds(lp.delay) * 1000 * COST_UNIT))
    return COST_UNIT
