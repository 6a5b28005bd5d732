"""Routes for generated topologies: a graph of routers joined by /30 links, and static
routes along shortest paths (hop count) to every router's host subnets.

Where several neighbours are equally close to a destination, the one taken is chosen by
the source and destination together, so traffic between different pairs spreads over the
equal paths (a static stand-in for ECMP: one path per pair, not per flow).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .model import Topology, TopologyError

LINK_SPACE = 16383  # /30 links in 10.255.0.0/16 (link 0 unused)


@dataclass
class Graph:
    """What a generator wires, beside the topology it writes to."""

    topo: Topology
    subnets: dict[str, list[str]] = field(default_factory=dict)  # router -> host prefixes
    # router -> [(neighbour, the neighbour's address on the link between them)]
    adjacent: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    links: int = 0
    hosts: int = 0  # hosts made so far: they are named h1, h2, ...

    def subnet(self, router: str, name: str, address: str) -> None:
        """A host subnet on `router` ("10.1.2.1/24": the router's address on it)."""
        self.topo.interface(router, name, address)
        net = address.rsplit(".", 1)[0] + ".0/" + address.split("/")[1]
        self.subnets.setdefault(router, []).append(net)
        self.adjacent.setdefault(router, [])

    def lan(self, router: str, name: str, net: str, hosts: int) -> None:
        """Host subnet `name` = `net`.0/24 on `router` (.1), with `hosts` hosts from .10."""
        self.subnet(router, name, f"{net}.1/24")
        for h in range(hosts):
            self.hosts += 1
            self.topo.host(f"h{self.hosts}", name, f"{net}.{10 + h}")

    def link(self, a: str, b: str) -> None:
        """A /30 point-to-point link k<n> between routers `a` and `b`."""
        self.links += 1
        if self.links > LINK_SPACE:
            raise TopologyError("gen", f"more than {LINK_SPACE} links")
        base = 4 * self.links
        ip_a = f"10.255.{base // 256}.{base % 256 + 1}"
        ip_b = f"10.255.{base // 256}.{base % 256 + 2}"
        self.topo.interface(a, f"k{self.links}", f"{ip_a}/30")
        self.topo.interface(b, f"k{self.links}", f"{ip_b}/30")
        self.adjacent.setdefault(a, []).append((b, ip_b))
        self.adjacent.setdefault(b, []).append((a, ip_a))


def distances(g: Graph, to: str) -> dict[str, int]:
    """Hop count from every router to `to` (breadth first)."""
    dist = {to: 0}
    queue = deque([to])
    while queue:
        r = queue.popleft()
        for nb, _ in g.adjacent[r]:
            if nb not in dist:
                dist[nb] = dist[r] + 1
                queue.append(nb)
    return dist


def static_routes(g: Graph) -> None:
    """Every router gets a route to every other router's host subnets, via a neighbour
    one hop closer to it; raises TopologyError when the graph is not connected."""
    order = {r: i for i, r in enumerate(sorted(g.adjacent))}
    for dest, prefixes in g.subnets.items():
        dist = distances(g, dest)
        if len(dist) < len(g.adjacent):
            lost = sorted(set(g.adjacent) - set(dist))
            raise TopologyError("gen", f"routers {', '.join(lost[:5])} cannot reach {dest}")
        for src in g.adjacent:
            if src == dest:
                continue
            closer = sorted((nb, ip) for nb, ip in g.adjacent[src] if dist[nb] == dist[src] - 1)
            _, via = closer[(order[src] + order[dest]) % len(closer)]
            for prefix in prefixes:
                g.topo.route(src, prefix, via)
