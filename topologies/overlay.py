"""The course's services on any routed topology (ROUTE-ZOO overlay): a DNS hierarchy (root,
the com. TLD, example.com.'s server), one resolver and one data centre per region, a
GSLB that sends each region to its nearest data centre, and a campus behind a NAT edge,
placed on a generated or imported network so the world's scenarios can be replayed on a
real backbone.

`apply(topo, placement)` is pure: it adds hosts with their services and the zone and GSLB
files those services read (`Topology.files`, written to the run directory at start).
`placement` names routers (YAML or Python):

    dns: {root: r1, tld: r2, domain: r3}   # where each server's host is
    gslb: r4                               # the GSLB (gslb.example.com. is delegated to it)
    sites: [r5, r9]                        # one data centre (a web server) and one resolver
                                           # per site; each router's hosts are in the region
                                           # of the nearest site and use its resolver
    nat: r7                                # this router's hosts are a campus behind PAT

`auto(topo)` chooses for you: the root at the most central router, the two sites at the
two routers furthest apart, the NAT at an edge router (fewest links).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .model import Service, Topology, TopologyError
from .yamlfile import load_yaml, read_text

# fixed last octets in a router's host subnet (imported/generated hosts start at .10)
ADDR = {"root": 241, "tld": 242, "domain": 243, "gslb": 244, "web": 245, "ldns": 253}
PUBLIC = "203.0.113"  # the NAT's PAT addresses: 203.0.113.1, .2, ... one per router link
KEYS = {"dns", "gslb", "sites", "nat"}


def router_adjacency(topo: Topology) -> dict[str, set[str]]:
    """Each router's neighbours over router-to-router links."""
    adj: dict[str, set[str]] = {r: set() for r in topo.routers}
    for s in topo.subnets().values():
        if s.is_transit:
            a, b = s.routers
            adj[a].add(b)
            adj[b].add(a)
    return adj


def hops(adj: dict[str, set[str]], start: str) -> dict[str, int]:
    """Router hops from `start` to every router it reaches (breadth first)."""
    dist, queue = {start: 0}, deque([start])
    while queue:
        u = queue.popleft()
        for v in sorted(adj[u]):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def auto(topo: Topology) -> dict:
    """A placement chosen from the graph alone (deterministic)."""
    adj = router_adjacency(topo)
    routers = sorted(topo.routers, key=lambda r: (len(r), r))
    dist = {r: hops(adj, r) for r in routers}
    central = sorted(routers, key=lambda r: (max(dist[r].values()), r))
    a, b, _ = max(((x, y, d) for x in routers for y, d in dist[x].items()),
                  key=lambda t: (t[2], t[0] < t[1]))
    others = [r for r in central if r not in (a, b)] or central
    dns = {"root": central[0], "tld": others[min(1, len(others) - 1)],
           "domain": others[min(2, len(others) - 1)]}
    placed = {*dns.values(), a, b}
    nat = min((r for r in routers if r not in placed and adj[r]),
              key=lambda r: (len(adj[r]), r), default=None)
    return {"dns": dns, "gslb": central[0], "sites": [a, b], **({"nat": nat} if nat else {})}


def load(path: str, topo: Topology) -> Topology:
    """Apply an overlay file (YAML, the keys above at its top; or the word `auto`)."""
    if path == "auto":
        return apply(topo, auto(topo))
    text = read_text(path, TopologyError)
    data, lines = load_yaml(text, path, TopologyError)
    if not isinstance(data, dict):
        raise TopologyError("overlay", "expected a mapping: dns, gslb, sites, nat")
    try:
        return apply(topo, {k: v for k, v in data.items()})
    except TopologyError as e:
        if e.where.startswith("overlay."):
            e.where = e.where.removeprefix("overlay.")
        raise e.located(path, lines) from None


def _lan(topo: Topology, router: str, where: str) -> tuple[str, str]:
    """(subnet name, "a.b.c") of `router`'s host subnet (a /24 with no other router)."""
    if router not in topo.routers:
        raise TopologyError(where, f"no router {router!r}")
    for sname, iface in topo.routers[router].interfaces.items():
        s = topo.subnets()[sname]
        if not s.is_transit and iface.network.prefixlen == 24:
            return sname, str(iface.network.network_address).rsplit(".", 1)[0]
    raise TopologyError(where, f"router {router} has no /24 host subnet to put a server on")


def apply(topo: Topology, placement: dict[str, Any]) -> Topology:
    """Add the services of `placement` to `topo` (in place; returned validated)."""
    unknown = set(placement) - KEYS
    if unknown:
        raise TopologyError(f"overlay.{sorted(unknown)[0]}", f"unknown key (one of "
                            f"{', '.join(sorted(KEYS))})")
    dns = placement.get("dns") or {}
    for role in ("root", "tld", "domain"):
        if role not in dns:
            raise TopologyError(f"overlay.dns.{role}", "missing: the router of the "
                                f"{role} server")
    sites = list(placement.get("sites") or [])
    if not sites:
        raise TopologyError("overlay.sites", "give at least one site (a router)")
    ip: dict[str, str] = {}

    def add(name: str, router: str, role: str, where: str, services: list[Service],
            dns_ip: str | None = None) -> str:
        if name in topo.hosts:
            raise TopologyError(where, f"host {name!r} exists already")
        sname, net = _lan(topo, router, where)
        addr = f"{net}.{ADDR[role]}"
        if any(str(h.address) == addr for h in topo.hosts.values()):
            raise TopologyError(where, f"{addr} is taken on {router}")
        topo.host(name, sname, addr, services=services, dns=dns_ip)
        ip[name] = addr
        return addr

    serve = "{infralab} dns serve --zone-file {dir}/zones/%s --listen {ip}:53 " \
            "--control {run}/control"
    add("root", dns["root"], "root", "overlay.dns.root",
        [Service("dns", serve % "root.zone", 53)])
    add("tldcom", dns["tld"], "tld", "overlay.dns.tld", [Service("dns", serve % "com.zone", 53)])
    add("ns1", dns["domain"], "domain", "overlay.dns.domain",
        [Service("dns", serve % "example.com.zone", 53)])
    gslb_router = placement.get("gslb") or dns["root"]
    add("gslb", gslb_router, "gslb", "overlay.gslb", [Service(
        "gslb", "{infralab} gslb serve --config {dir}/gslb.yaml --listen {ip}:53 "
        "--control {run}/control --decision-log {run}/decisions.jsonl", 53)])
    resolve = ("{infralab} dns resolve --root-hints {dir}/zones/root.hints --listen {ip}:53 "
               "--query-log {run}/queries.jsonl --control {run}/control")
    web = "{infralab} web serve --listen {ip}:80 --name {host} --site %s"
    for i, r in enumerate(sites, start=1):
        add(f"ldns{i}", r, "ldns", f"overlay.sites[{i - 1}]", [Service("resolver", resolve, 53)])
        add(f"web{i}", r, "web", f"overlay.sites[{i - 1}]", [Service("web", web % f"dc{i}", 80)])
    # every host's resolver: its region's (the nearest site by router hops)
    adj = router_adjacency(topo)
    dist = {i: hops(adj, r) for i, r in enumerate(sites, start=1)}
    region_of = {r: min(dist, key=lambda i: (dist[i].get(r, 1 << 30), i))
                 for r in topo.routers}
    subnets = topo.subnets()
    for h in topo.hosts.values():
        if h.dns is None:
            router = next(iter(subnets[h.subnet].routers))
            h.dns = topo.hosts[f"ldns{region_of[router]}"].address
    nat_router = placement.get("nat")
    public: dict[str, list[str]] = {}
    if nat_router:
        if nat_router not in topo.routers:
            raise TopologyError("overlay.nat", f"no router {nat_router!r}")
        placed = {dns["root"], dns["tld"], dns["domain"], gslb_router, *sites}
        if nat_router in placed:
            raise TopologyError("overlay.nat", f"{nat_router} carries a server, which its "
                                "NAT would hide: choose another router for the campus")
        links = [s for s in topo.routers[nat_router].interfaces if subnets[s].is_transit]
        if not links:
            raise TopologyError("overlay.nat", f"{nat_router} has no link to put a NAT on")
        inside = [str(i.network) for s, i in topo.routers[nat_router].interfaces.items()
                  if not subnets[s].is_transit]
        topo.nat(nat_router, {s: {"pat": {"address": f"{PUBLIC}.{k}", "inside": inside}}
                              for k, s in enumerate(links, start=1)})
        public[nat_router] = [f"{PUBLIC}.{k}/32" for k in range(1, len(links) + 1)]
    topo.files.update(_files(topo, ip, sites, region_of, public))
    topo.description += " + services (DNS hierarchy, GSLB, " \
        f"{len(sites)} sites{', NAT edge ' + nat_router if nat_router else ''})"
    return topo.validate()


def _files(topo: Topology, ip: dict[str, str], sites: list[str], region_of: dict[str, int],
           public: dict[str, list[str]]) -> dict[str, str]:
    soa = "( 2026112801 1800 900 604800 60 )"
    root = (f"$ORIGIN .\n$TTL 86400\n@ IN SOA ns.root. hostmaster.root. {soa}\n"
            f"  IN NS ns.root.\nns.root. IN A {ip['root']}\n"
            f"com. IN NS a.gtld.com.\na.gtld.com. IN A {ip['tldcom']}\n")
    com = (f"$ORIGIN com.\n$TTL 86400\n@ IN SOA a.gtld.com. hostmaster.nic.com. {soa}\n"
           f"  IN NS a.gtld.com.\na.gtld IN A {ip['tldcom']}\n"
           f"example IN NS ns1.example.com.\nns1.example IN A {ip['ns1']}\n")
    example = (f"$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster {soa}\n"
               f"  IN NS ns1\nns1 IN A {ip['ns1']}\n"
               "www IN CNAME www.gslb\ngslb IN NS ns.gslb\n"
               f"ns.gslb IN A {ip['gslb']}\n"
               + "".join(f"web{i} IN A {ip[f'web{i}']}\n"
                         for i in range(1, len(sites) + 1)))
    hints = f". 3600000 NS ns.root.\nns.root. 3600000 A {ip['root']}\n"
    subnets = topo.subnets()
    regions: dict[int, list[str]] = {i: [] for i in range(1, len(sites) + 1)}
    for s in subnets.values():
        if not s.is_transit:
            (router,) = s.routers
            regions[region_of[router]].append(str(s.network))
    for router, prefixes in public.items():
        regions[region_of[router]] += prefixes
    lines = ["# generated by topologies/overlay.py", "zones: {gslb.example.com: null}",
             f"ns: {{ns.gslb.example.com.: {ip['gslb']}}}", "ttl: 5", "regions:"]
    lines += [f"  region{i}: [{', '.join(nets)}]" for i, nets in regions.items()]
    lines.append("sites:")
    lines += [f"  dc{i}: {{region: region{i}}}" for i in regions]
    lines.append("topology:")
    for i in regions:
        order = [i] + [j for j in regions if j != i]
        lines.append(f"  region{i}: [{', '.join(f'dc{j}' for j in order)}]")
    lines += ["pools:", "  web:", "    algorithm: [topology, round-robin]",
              "    check: {type: http, port: 80, path: /health, expect: 200, interval: 1, "
              "timeout: 0.8, rise: 2, fall: 2}", "    members:"]
    lines += [f"      - {{name: web{i}, address: {ip[f'web{i}']}, site: dc{i}}}" for i in regions]
    lines += ["names: {www: web, \"*\": web}"]
    return {"zones/root.zone": root, "zones/com.zone": com,
            "zones/example.com.zone": example, "zones/root.hints": hints,
            "gslb.yaml": "\n".join(lines) + "\n"}
