"""Which server each node of a plan runs on, when an emulation is spread over servers.

A router keeps its own hosts (and the delay nodes of its links) on its server, so only
router-to-router links ever cross between servers, as tunnels. Routers named in the
topology's `placement:` block go where it says (a server's name, or its position in the
server list, from 1); the rest are balanced by weight — one for the router plus one per host
it serves — heaviest first, each onto the least loaded server. Pure: plan in, mapping out.
"""

from __future__ import annotations

from topologies.model import TopologyError
from topologies.plan import Plan


def _server_of(spec: str, servers: list[str], router: str) -> str:
    if spec in servers:
        return spec
    if spec.isdigit() and 1 <= int(spec) <= len(servers):
        return servers[int(spec) - 1]
    raise TopologyError(f"placement.{router}", f"server {spec!r} is not one of "
                        f"{', '.join(servers)} (nor a position 1..{len(servers)})")


def place(plan: Plan, servers: list[str], pinned: dict[str, str] | None = None
          ) -> dict[str, str]:
    """{node name: server name} for every router and host of `plan`."""
    if not servers:
        raise ValueError("no servers to place on")
    routers = {r.name for r in plan.routers}
    hosts_of: dict[str, list[str]] = {r: [] for r in routers}
    for link in plan.links:
        if link.b in routers and link.a not in routers:
            hosts_of[link.b].append(link.a)
        elif link.a in routers and link.b not in routers:
            hosts_of[link.a].append(link.b)
    where: dict[str, str] = {}
    load = dict.fromkeys(servers, 0)
    for r, spec in sorted((pinned or {}).items()):
        if r not in routers:
            raise TopologyError(f"placement.{r}", "no such router")
        where[r] = _server_of(spec, servers, r)
        load[where[r]] += 1 + len(hosts_of[r])
    for r in sorted(routers - set(where), key=lambda r: (-len(hosts_of[r]), r)):
        s = min(servers, key=lambda s: (load[s], servers.index(s)))
        where[r] = s
        load[s] += 1 + len(hosts_of[r])
    for r, hosts in hosts_of.items():
        for h in hosts:
            where[h] = where[r]
    return where


def crossing(plan: Plan, where: dict[str, str]) -> list[tuple[str, str]]:
    """The router-to-router links whose ends are on different servers (the tunnels)."""
    return [(lk.a, lk.b) for lk in plan.links if where[lk.a] != where[lk.b]]
