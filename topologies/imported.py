"""Real research topologies as routed networks (ROUTE-ZOO): the Internet Topology Zoo,
SNDlib, CAIDA AS graphs and synthetic backbones, from the `topohub` package.

`infralab up zoo:Abilene` (or `sndlib:polska`, `caida:…`, `topohub:gabriel/25/0`) builds
one router per node with one host subnet (`hosts=N` hosts, default 1), one /30 link per
edge, each link delayed by its great-circle length at the speed of light in fibre (about
5 µs per km; `delay=off` keeps only the cost) and costed by that delay; no route is
written: the controller computes them from the graph (ROUTE-SPF). Node names and
coordinates are kept for `infralab draw`. `services=on` adds the course's services,
placed from the graph (topologies/overlay.py).
"""

from __future__ import annotations

import re
from typing import Any

from .model import LinkParams, Topology, TopologyError
from .routing import Graph

US_PER_KM = 5.0  # light in fibre: about 200,000 km/s
MAX_NODES = 1000
PREFIXES = {"zoo": "topozoo", "sndlib": "sndlib", "caida": "caida", "backbone": "backbone",
            "gabriel": "gabriel", "topohub": ""}
SHORT = {group: prefix for prefix, group in PREFIXES.items() if group}  # topozoo -> zoo


def is_imported(spec: str) -> bool:
    return spec.split(":", 1)[0] in PREFIXES and ":" in spec


def _topohub() -> Any:
    try:
        import topohub
    except ImportError:
        raise TopologyError("topohub", "the topohub package is not installed "
                            "(pip install topohub; `make install` does it)") from None
    return topohub


def parse(spec: str) -> tuple[str, dict[str, str]]:
    """'zoo:Abilene,hosts=2' -> ('topozoo/Abilene', {'hosts': '2'})."""
    kind, _, rest = spec.partition(":")
    key, *params = rest.split(",")
    opts = {}
    for p in params:
        k, _, v = p.partition("=")
        if k not in ("hosts", "delay", "services") or not v:
            raise TopologyError(spec, f"unknown parameter {p!r} (hosts=N, delay=on|off, "
                                "services=on|off)")
        opts[k] = v
    group = PREFIXES[kind]
    return (f"{group}/{key}" if group else key), opts


def load(spec: str) -> Topology:
    """The routed network of an imported topology spec (see the module's docstring)."""
    key, opts = parse(spec)
    try:
        hosts = int(opts.get("hosts", "1"))
    except ValueError:
        raise TopologyError(spec, f"hosts={opts['hosts']!r} is not a number") from None
    if not 0 <= hosts <= 200:
        raise TopologyError(spec, "hosts must be 0..200 per router")
    delay = opts.get("delay", "on")
    if delay not in ("on", "off"):
        raise TopologyError(spec, "delay must be on or off")
    services = opts.get("services", "off")
    if services not in ("on", "off"):
        raise TopologyError(spec, "services must be on or off")
    try:
        data = _topohub().get(key)
    except KeyError:
        raise TopologyError(spec, f"topohub has no topology {key!r} (see `infralab "
                            "list-topologies`)") from None
    topo = build(data, key, hosts, delay == "on")
    if services == "on":  # the course's DNS, GSLB and NAT, placed from the graph
        from . import overlay

        overlay.apply(topo, overlay.auto(topo))
    return topo


def build(data: dict, key: str, hosts: int = 1, delay: bool = True) -> Topology:
    """A Topology from a node-link dict (topohub's format: nodes with id, name and
    pos = [longitude, latitude]; edges with source, target and dist in km)."""
    nodes = data["nodes"]
    if len(nodes) > MAX_NODES:
        raise TopologyError(key, f"{len(nodes)} nodes: at most {MAX_NODES} routers")
    name = re.sub(r"[^A-Za-z0-9_-]", "-", key.split("/", 1)[-1])[:32].strip("-") or "imported"
    gname = data.get("graph", {}).get("name") or key
    t = Topology(name, description=f"{gname} ({key}): {len(nodes)} routers, "
                 f"{len(data['edges'])} links")
    t.announce_links = False  # flows grow with the nodes, not the links (up to 1,000)
    g = Graph(t)
    router = {}
    for i, n in enumerate(nodes, start=1):
        r = f"r{i}"
        router[str(n["id"])] = r
        t.labels[r] = str(n.get("name") or n["id"])
        if n.get("pos"):
            t.positions[r] = (float(n["pos"][0]), float(n["pos"][1]))
        if hosts:
            g.lan(r, f"n{i}", f"10.{i >> 8}.{i & 255}", hosts)
        else:
            g.subnet(r, f"n{i}", f"10.{i >> 8}.{i & 255}.1/24")
    for e in data["edges"]:
        a, b = router[str(e["source"])], router[str(e["target"])]
        if a == b:
            continue  # a self-loop carries nothing
        g.link(a, b)
        dist = e.get("dist")
        if dist is None:
            continue
        us = max(1, round(float(dist) * US_PER_KM))
        ms = f"{us / 1000:.3f}".rstrip("0").rstrip(".")
        t.links[f"k{g.links}"] = LinkParams(delay=f"{ms}ms" if delay else None,
                                            cost=us / 1000)
    return t.validate()


def catalogue(group: str | None = None) -> dict[str, list[str]]:
    """What topohub offers: {group: [keys]} (one group's keys when `group` is given)."""
    import importlib.resources

    root = importlib.resources.files(_topohub()) / "data"
    out: dict[str, list[str]] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".json"):
                out.setdefault(prefix.split("/", 1)[0], []).append(
                    prefix + child.name.removesuffix(".json"))

    for top in sorted(root.iterdir(), key=lambda c: c.name):
        if top.is_dir() and (group is None or top.name == PREFIXES.get(group, group)):
            walk(top, f"{top.name}/")
    return out
