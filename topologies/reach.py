"""Who should reach whom, and by which address: the plan behind the prompt's `pingall`.

A host behind a NAT has an address that means nothing outside it: from outside, it is
reached by the address its NAT maps it to (a `static` rule), or not at all (a PAT or a
dynamic pool admits no unsolicited inbound traffic). So `pingall` must not ping every
host's own address from everywhere and call the silence loss. For each ordered pair this
module says what the source should ping:

- the destination's own address, when no NAT stands between them (the same router's
  inside, or no NAT at all);
- the address a static rule maps it to, when the source's router has a route to it
  (ROUTE-SPF announces a NAT's public addresses only out of its outside interface);
- nothing, when the NAT hides it as configured: reported apart from loss.

Pure: the live addresses (DHCP leases) and each router's routes are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from .model import Topology
from .natconfig import NatInterface


@dataclass(frozen=True)
class Probe:
    """What `src` pings to reach `dst`. `address` None: nothing (see `hidden`, `why`)."""

    src: str
    dst: str
    address: IPv4Address | None
    hidden: bool = False  # True: a NAT hides dst from src as configured (not loss)
    why: str = ""  # for hidden or unaddressed pairs: the reason, for the report
    mapped: bool = False  # address is dst's NAT mapping, not its own


def _inside(nat: NatInterface) -> list[IPv4Network]:
    nets = [IPv4Network(p) for p in (nat.pat.inside if nat.pat else [])]
    nets += [IPv4Network(p) for p in (nat.pool.inside if nat.pool else [])]
    nets += [IPv4Network(s.inside) for s in nat.static]
    return nets


def _static_mapping(nat: NatInterface, addr: IPv4Address) -> IPv4Address | None:
    for s in nat.static:
        inside, outside = IPv4Network(s.inside), IPv4Network(s.outside)
        if addr in inside:
            return outside.network_address + (int(addr) - int(inside.network_address))
    return None


def nats_in_front(topo: Topology, host: str, addr: IPv4Address) -> list[tuple[str, NatInterface]]:
    """(router, NAT) pairs whose inside `host` is on: its own subnet's router translates
    its address on the way out of that NAT's outside interface."""
    subnet = topo.hosts[host].subnet
    out = []
    for r in topo.routers.values():
        if subnet not in r.interfaces:
            continue
        for nat in r.nat:
            if nat.interface != subnet and any(addr in n for n in _inside(nat)):
                out.append((r.name, nat))
    return out


Routes = dict[str, list[tuple[IPv4Network, str]]]  # router -> (prefix, subnet it leaves by)


def egress(topo: Topology, router: str, addr: IPv4Address, routes: Routes) -> str | None:
    """The subnet by which `router` sends to `addr`: a connected one, else its longest
    matching route's; None: no route."""
    for subnet, iface in topo.routers[router].interfaces.items():
        if addr in iface.network:
            return subnet
    best = max((r for r in routes.get(router, []) if addr in r[0]),
               key=lambda r: r[0].prefixlen, default=None)
    return best[1] if best else None


def probes(topo: Topology, addresses: dict[str, IPv4Address | None],
           routes: Routes) -> list[Probe]:
    """One Probe per ordered pair of the topology's hosts (in their order).

    `addresses`: each host's address now (static, or its lease; None: none yet);
    `routes`: each router's routes as configured, all links up (connected subnets need
    not be listed): a pair is judged by what the topology means, not by a failure."""
    names = list(topo.hosts)
    subnets = topo.subnets()
    gateway = {h: next(iter(subnets[topo.hosts[h].subnet].routers), None) for h in names}
    fronts = {h: nats_in_front(topo, h, a) for h, a in addresses.items() if a is not None}
    out = []
    for src in names:
        for dst in names:
            if src == dst:
                continue
            a_src, a_dst = addresses.get(src), addresses.get(dst)
            if a_src is None or a_dst is None:
                who = src if a_src is None else dst
                out.append(Probe(src, dst, None, why=f"{who} has no address"))
                continue
            out.append(_probe(topo, src, dst, a_src, a_dst, gateway[src], fronts, routes))
    return out


def _probe(topo: Topology, src: str, dst: str, a_src: IPv4Address, a_dst: IPv4Address,
           gw: str | None, fronts: dict[str, list[tuple[str, NatInterface]]],
           routes: Routes) -> Probe:
    src_subnet = topo.hosts[src].subnet
    outside = [(r, nat) for r, nat in fronts[dst]
               if src_subnet not in topo.routers[r].interfaces or src_subnet == nat.interface]
    target, mapped = a_dst, False
    if outside:
        candidates = [m for _r, nat in outside if (m := _static_mapping(nat, a_dst))]
        usable = [m for m in candidates if gw and egress(topo, gw, m, routes)]
        if not usable:
            r, nat = outside[0]
            return Probe(src, dst, None, hidden=True, why=f"behind {r}'s NAT on {nat.interface}")
        target, mapped = usable[0], True
    if gw is None:
        return Probe(src, dst, target, mapped=mapped)
    out_subnet = egress(topo, gw, target, routes)
    if out_subnet is None:
        return Probe(src, dst, None, hidden=True,
                     why=f"no route from {gw}: a NAT announces only its public addresses")
    out_nat = next((n for n in topo.routers[gw].nat if n.interface == out_subnet), None)
    if out_nat is not None and out_subnet != src_subnet and \
            not any(a_src in n for n in _inside(out_nat)):
        return Probe(src, dst, None, hidden=True,
                     why=f"{src} is not inside {gw}'s NAT on {out_subnet}")
    return Probe(src, dst, target, mapped=mapped)
