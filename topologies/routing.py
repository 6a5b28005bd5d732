"""The graph builder of generated and imported topologies: routers joined by /30 links in
10.255.0.0/16 and host subnets, written straight into a Topology. No route is written: the
controller computes them from the graph (controllers/spf.py, ROUTE-SPF), with ECMP over
equal paths per flow.
"""

from __future__ import annotations

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
