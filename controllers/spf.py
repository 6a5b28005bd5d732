"""Routes computed from the wiring plan (ROUTE-SPF): shortest paths by link cost, equal-cost
next hops (ECMP), and a loop-free backup next hop for fast failover (ROUTE-FAILOVER).

Pure: the plan and the set of failed links in, every router's computed routes out; the
router logic turns them into flows, and only what changed is sent again. What
each router may tell its neighbours follows the NAT boundaries the way a real network's
routing policy would: out of a NAT's outside interface a router announces only that
interface's own subnet and the NAT's public addresses, so the private space behind a NAT
stays private (the partner's 10.1.1.0/24 and the campus's never meet) and the public
addresses are reached through the NAT.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from topologies.natconfig import NatInterface
from topologies.plan import COST_UNIT, Plan


@dataclass(frozen=True, order=True)
class NextHop:
    ip: IPv4Address  # the neighbour's address on the link
    port: int  # our port towards it
    router: str  # the neighbour


@dataclass(frozen=True)
class Route:
    prefix: IPv4Network
    hops: tuple[NextHop, ...]  # equal-cost next hops, sorted (ECMP when more than one)
    backup: NextHop | None  # loop-free alternate when there is a single next hop
    cost: int


@dataclass(frozen=True)
class Adjacency:
    """One direction of a router link, as `router` sees it."""

    router: str
    port: int
    subnet: str
    ip: IPv4Address  # router's own address on the link
    neighbour: str
    neighbour_port: int
    cost: int
    announces: frozenset[IPv4Network] | None  # None: everything; else only these (a NAT)


Link = tuple[str, int]  # (router, port): one end of a link; either end names the link


class Graph:
    """The routers, their links and the prefixes each one originates."""

    def __init__(self, plan: Plan) -> None:
        self.routers = [r.name for r in plan.routers]
        self.adjacent: dict[str, list[Adjacency]] = {r: [] for r in self.routers}
        self.origins: dict[IPv4Network, set[str]] = {}
        addr: dict[tuple[str, int], tuple[str, IPv4Address]] = {}
        nat_on: dict[tuple[str, str], frozenset[IPv4Network]] = {}
        names = {r.name for r in plan.routers}
        for r in plan.routers:
            for iface in r.interfaces:
                link = bool(iface.ports) and all(p.peer in names for p in iface.ports)
                if plan.announce_links or not link:  # (else: OSPF's prefix-suppression)
                    self.origins.setdefault(iface.network, set()).add(r.name)
                for p in iface.ports:
                    addr[(r.name, p.port)] = (iface.subnet, IPv4Address(iface.ip))
            for d in r.nat:
                nat = NatInterface.from_dict(d)
                own = next(i.network for i in r.interfaces if i.subnet == nat.interface)
                # (a PAT on the interface's own address is reached by the link's prefix,
                # unless link prefixes are suppressed)
                public = frozenset(p for p in nat.public_prefixes()
                                   if not (p.subnet_of(own) and plan.announce_links))
                for net in public:
                    self.origins.setdefault(net, set()).add(r.name)
                nat_on[(r.name, nat.interface)] = public | {own}
        for lp in plan.links:
            if lp.a not in names or lp.b not in names:
                continue  # a host's access link
            for (me, mp), (nb, np_) in (((lp.a, lp.a_port), (lp.b, lp.b_port)),
                                        ((lp.b, lp.b_port), (lp.a, lp.a_port))):
                subnet, ip = addr[(me, mp)]
                self.adjacent[me].append(Adjacency(
                    me, mp, subnet, ip, nb, np_, lp.cost or COST_UNIT,
                    nat_on.get((me, subnet))))
        # every router link's end, (router, port) -> its adjacency
        self.ends: dict[Link, Adjacency] = {(a.router, a.port): a
                                            for adj in self.adjacent.values() for a in adj}

    def reverse(self, a: Adjacency) -> Adjacency:
        """The neighbour's side of adjacency `a` (its announcements are what a.router
        hears, its address is the next hop)."""
        return self.ends[(a.neighbour, a.neighbour_port)]

    def canonical(self, link: Link) -> Link:
        """The same link named by its end that sorts first (so either end finds it)."""
        a = self.ends.get(link)
        return min(link, (a.neighbour, a.neighbour_port)) if a is not None else link


def _announces(a: Adjacency, prefix: IPv4Network) -> bool:
    return a.announces is None or prefix in a.announces


def compute(g: Graph, down: Iterable[Link] = (),
            backups: bool = True) -> dict[str, dict[IPv4Network, Route]]:
    """Every router's routes to the prefixes other routers originate, with the links in
    `down` (either end's name) treated as failed. A router originating a prefix gets no
    route to it; an unreachable prefix gets none either (the FIB's miss answers for it).
    Without `backups`, no loop-free alternate is chosen (recomputation only)."""
    dead = {g.canonical(x) for x in down}
    live = {r: [a for a in adj if g.canonical((a.router, a.port)) not in dead]
            for r, adj in g.adjacent.items()}
    out: dict[str, dict[IPv4Network, Route]] = {r: {} for r in g.routers}
    # Prefixes that propagate alike share one search: same origins, same NAT allowances.
    classes: dict[tuple, list[IPv4Network]] = {}
    nat_adj = [a for adj in live.values() for a in adj if a.announces is not None]
    for prefix, origins in g.origins.items():
        allowed = frozenset((a.router, a.port) for a in nat_adj if _announces(a, prefix))
        classes.setdefault((frozenset(origins), allowed, prefix.version), []).append(prefix)
    for (origins, _, _), prefixes in classes.items():
        probe = prefixes[0]
        dist = _distances(live, origins, probe)
        for r in g.routers:
            if r in origins or r not in dist:
                continue
            hops, backup = _next_hops(live[r], dist, r, probe, g)
            backup = backup if backups else None
            for p in prefixes:
                out[r][p] = Route(p, hops, backup, dist[r])
    return out


def _distances(live: dict[str, list[Adjacency]], origins: frozenset[str],
               prefix: IPv4Network) -> dict[str, int]:
    """Dijkstra from the origins over the announcements allowed for `prefix`."""
    dist = {o: 0 for o in origins}
    heap = [(0, o) for o in sorted(origins)]
    done: set[str] = set()
    while heap:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for a in live[u]:  # u announces the prefix to a.neighbour over a
            if not _announces(a, prefix):
                continue
            nd = d + a.cost
            if nd < dist.get(a.neighbour, 1 << 62):
                dist[a.neighbour] = nd
                heapq.heappush(heap, (nd, a.neighbour))
    return dist


def _next_hops(adj: list[Adjacency], dist: dict[str, int], r: str, prefix: IPv4Network,
               g: Graph) -> tuple[tuple[NextHop, ...], NextHop | None]:
    """Equal-cost next hops of r, and (with one) the best loop-free alternate (RFC 5286:
    a neighbour whose own distance is shorter than going back through r)."""
    best: list[NextHop] = []
    alternates: list[tuple[int, NextHop]] = []
    for a in adj:
        nb = a.neighbour
        back = g.reverse(a)
        if nb not in dist or not _announces(back, prefix):
            continue
        hop = NextHop(back.ip, a.port, nb)
        if dist[nb] + a.cost == dist[r]:
            best.append(hop)
        elif dist[nb] < a.cost + dist[r]:
            alternates.append((dist[nb] + a.cost, hop))
    best.sort()
    backup = min(alternates)[1] if len(best) == 1 and alternates else None
    return tuple(best), backup


class Routing:
    """The whole network's computed routes and the link states they were computed from:
    a port going down or up at either end of a router link changes the link, and
    `port_status` says which routers' routes changed (the others are left alone)."""

    def __init__(self, plan: Plan) -> None:
        self.enabled = plan.routing == "shortest-path"
        self.backups = plan.fast_failover
        self.graph = Graph(plan)
        self.down_ends: set[Link] = set()  # (router, port) ends reported down
        self.routes = compute(self.graph, backups=self.backups) if self.enabled else \
            {r: {} for r in self.graph.routers}
        self.changes = 0  # recomputations that changed something

    def is_router_link(self, router: str, port: int) -> bool:
        return (router, port) in self.graph.ends

    def down_links(self) -> list[Link]:
        return sorted({self.graph.canonical(e) for e in self.down_ends})

    def port_status(self, router: str, port: int, up: bool) -> dict[str, dict] | None:
        """A port of `router` is now up or down: {router: its new routes} for each router
        whose routes changed; None when no link changed state (or it is no router link)."""
        if not self.is_router_link(router, port):
            return None
        before = self.down_links()
        (self.down_ends.discard if up else self.down_ends.add)((router, port))
        after = self.down_links()
        if after == before:
            return None
        if not self.enabled:
            return {}
        new = compute(self.graph, after, self.backups)
        changed = {r: routes for r, routes in new.items() if routes != self.routes.get(r)}
        self.routes = new
        if changed:
            self.changes += 1
        return changed
