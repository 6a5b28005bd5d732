"""Topology generators for research use (research use): a topology of a
given size from parameters, e.g. `infralab up gen:campus,subnets=8,hosts=10`.

Each generator returns a validated `Topology`, the same object the YAML loader builds, so
everything else (plan, builder, checks, draw) is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import Topology, TopologyError
from .routing import Graph

MAX_HOSTS = 245  # hosts .10 to .254 of a /24


def campus(subnets: int = 4, hosts: int = 4, nat: bool = True, routers: int = 1) -> Topology:
    """A campus of `routers` edge routers, each with `subnets` x `hosts`, joined to a core
    router that has one server beyond it; by default each edge router does PAT. With one
    edge router (the default) the names are those of earlier versions: gc, gi, h<s>x<h>."""
    if routers == 1:
        return _one_campus(subnets, hosts, nat)
    if not 2 <= routers <= 250 or not 1 <= subnets <= 250 or not 1 <= hosts <= MAX_HOSTS:
        raise TopologyError("gen:campus", f"routers must be 2..250 (or 1), subnets 1..250 and "
                            f"hosts 1..{MAX_HOSTS} (addresses .10 to .254 of each /24)")
    t = Topology(f"campus{routers}x{subnets}x{hosts}", description=f"generated: {routers} "
                 f"campus routers x {subnets} subnets x {hosts} hosts")
    n = 0
    for r in range(1, routers + 1):
        for s in range(1, subnets + 1):
            t.interface(f"gc{r}", f"s{r}x{s}", f"10.{r}.{s}.1/24")
            for h in range(hosts):
                n += 1
                t.host(f"h{n}", f"s{r}x{s}", f"10.{r}.{s}.{10 + h}")
        a, b = _link_addresses(r)
        t.interface(f"gc{r}", f"k{r}", f"{a}/30")
        t.interface("gi", f"k{r}", f"{b}/30")
        t.route(f"gc{r}", "default", b)
        if nat:
            t.nat(f"gc{r}", {f"k{r}": {"pat": f"203.0.113.{r}"}})
            t.route("gi", f"203.0.113.{r}/32", a)
        else:
            t.route("gi", f"10.{r}.0.0/16", a)
    t.interface("gi", "srv", "198.51.100.1/24")
    t.host("server", "srv", "198.51.100.10")
    return t.validate()


def _link_addresses(i: int) -> tuple[str, str]:
    """The two addresses of transit link i (1..16383) in 10.255.0.0/16."""
    base = 4 * i
    return (f"10.255.{base // 256}.{base % 256 + 1}", f"10.255.{base // 256}.{base % 256 + 2}")


def _one_campus(subnets: int, hosts: int, nat: bool) -> Topology:
    if not 1 <= subnets <= 200 or not 1 <= hosts <= MAX_HOSTS:
        raise TopologyError("gen:campus", f"subnets must be 1..200 and hosts 1..{MAX_HOSTS} "
                            "(addresses .10 to .254 of each /24)")
    t = Topology(f"campus{subnets}x{hosts}", description=f"generated: {subnets} subnets "
                 f"x {hosts} hosts")
    for s in range(1, subnets + 1):
        t.interface("gc", f"s{s}", f"10.{s // 256}.{s % 256}.1/24")
        for h in range(1, hosts + 1):
            t.host(f"h{s}x{h}", f"s{s}", f"10.{s // 256}.{s % 256}.{h + 9}")
    t.interface("gc", "up", "198.18.0.1/30")
    t.interface("gi", "up", "198.18.0.2/30")
    t.interface("gi", "srv", "198.51.100.1/24")
    t.host("server", "srv", "198.51.100.10")
    t.route("gc", "default", "198.18.0.2")
    if nat:
        t.nat("gc", {"up": {"pat": "203.0.113.1"}})
        t.route("gi", "203.0.113.0/24", "198.18.0.1")
    else:
        t.route("gi", "10.0.0.0/8", "198.18.0.1")
    return t.validate()


def chain(routers: int = 4, hosts: int = 2) -> Topology:
    """`routers` routers in a line, each with one subnet of `hosts` hosts: long paths."""
    if not 1 <= routers <= 60 or not 1 <= hosts <= 100:
        raise TopologyError("gen:chain", "routers must be 1..60 and hosts 1..100")
    # (hosts .10 to .109 of 10.0.<r>.0/24: always valid addresses)
    t = Topology(f"chain{routers}x{hosts}", description=f"generated: {routers} routers in "
                 f"a line, {hosts} hosts each")
    for r in range(1, routers + 1):
        t.interface(f"c{r}", f"l{r}", f"10.0.{r}.1/24")
        for h in range(1, hosts + 1):
            t.host(f"h{r}x{h}", f"l{r}", f"10.0.{r}.{h + 9}")
        if r < routers:
            base = 4 * r
            t.interface(f"c{r}", f"k{r}", f"10.255.{base // 256}.{base % 256 + 1}/30")
            t.interface(f"c{r + 1}", f"k{r}", f"10.255.{base // 256}.{base % 256 + 2}/30")
    for r in range(1, routers + 1):  # static routes: everything left / right of me
        for other in range(1, routers + 1):
            if other == r:
                continue
            link = r if other > r else r - 1
            base = 4 * link
            via = base % 256 + (2 if other > r else 1)
            t.route(f"c{r}", f"10.0.{other}.0/24", f"10.255.{base // 256}.{via}")
    return t.validate()


def fattree(k: int = 4, hosts: int = 0) -> Topology:
    """A k-ary fat-tree of routers (Al-Fares et al.): k pods of k/2 edge and k/2
    aggregation routers, (k/2)^2 core routers, `hosts` per edge router (default k/2, so
    k^3/4 hosts). Every edge subnet is 10.<pod>.<edge>.0/24; the controller routes it,
    spreading flows over the equal paths (ECMP)."""
    hosts = hosts or k // 2
    if k % 2 or not 2 <= k <= 16 or not 1 <= hosts <= MAX_HOSTS:
        raise TopologyError("gen:fattree", f"k must be even, 2..16, and hosts 1..{MAX_HOSTS}")
    half = k // 2
    t = Topology(f"fattree{k}x{hosts}", description=f"generated: {k}-ary fat-tree, "
                 f"{k * half * hosts} hosts")
    t.announce_links = False  # flows grow with the subnets, not the links
    g = Graph(t)
    for p in range(k):
        for e in range(half):
            edge = f"e{p}x{e}"
            g.lan(edge, f"s{p}x{e}", f"10.{p}.{e}", hosts)
            for a in range(half):
                g.link(edge, f"a{p}x{a}")
        for a in range(half):
            for j in range(half):
                g.link(f"a{p}x{a}", f"c{a}x{j}")
    return t.validate()


def leafspine(spines: int = 2, leaves: int = 4, hosts: int = 4) -> Topology:
    """Every leaf router linked to every spine router; `hosts` on each leaf's subnet
    10.<i/256>.<i%256>.0/24. Leaf-to-leaf flows spread over every spine (ECMP, by the
    controller's routes)."""
    if not 1 <= spines <= 16 or not 2 <= leaves <= 200 or not 1 <= hosts <= MAX_HOSTS:
        raise TopologyError("gen:leafspine", f"spines must be 1..16, leaves 2..200 and "
                            f"hosts 1..{MAX_HOSTS}")
    t = Topology(f"leafspine{spines}x{leaves}x{hosts}", description=f"generated: {spines} "
                 f"spines, {leaves} leaves, {hosts} hosts each")
    t.announce_links = False  # flows grow with the subnets, not the links
    g = Graph(t)
    for i in range(1, leaves + 1):
        g.lan(f"l{i}", f"n{i}", f"10.{i // 256}.{i % 256}", hosts)
        for j in range(1, spines + 1):
            g.link(f"l{i}", f"s{j}")
    return t.validate()


def random(routers: int = 10, degree: float = 3, seed: int = 1, hosts: int = 2) -> Topology:
    """A random connected graph of `routers` routers with average degree `degree` (a
    random spanning tree, then random extra links), the same for the same `seed`; one
    subnet of `hosts` hosts per router; routes from the controller (shortest paths)."""
    if not 2 <= routers <= 250 or not 1 <= hosts <= MAX_HOSTS:
        raise TopologyError("gen:random", f"routers must be 2..250 and hosts 1..{MAX_HOSTS}")
    low = 2 * (routers - 1) / routers
    if not low <= degree <= routers - 1:
        raise TopologyError("gen:random", f"degree must be {low:.2f}..{routers - 1} for "
                            f"{routers} routers (a tree .. every pair linked)")
    import random as rnd

    rng = rnd.Random(seed)
    t = Topology(f"random{routers}d{degree:g}s{seed}", description=f"generated: {routers} "
                 f"routers, average degree {degree:g}, seed {seed}")
    t.announce_links = False  # flows grow with the subnets, not the links
    g = Graph(t)
    for i in range(1, routers + 1):
        g.lan(f"r{i}", f"n{i}", f"10.{i // 256}.{i % 256}", hosts)
    pairs: set[tuple[int, int]] = set()
    for i in range(2, routers + 1):  # a random spanning tree: connected whatever the seed
        pairs.add((rng.randrange(1, i), i))
    while 2 * len(pairs) / routers < degree:
        a, b = sorted(rng.sample(range(1, routers + 1), 2))
        pairs.add((a, b))
    for a, b in sorted(pairs):
        g.link(f"r{a}", f"r{b}")
    return t.validate()


GENERATORS: dict[str, Callable[..., Topology]] = {
    "campus": campus, "chain": chain, "fattree": fattree, "leafspine": leafspine,
    "random": random}


def generate(spec: str) -> Topology:
    """'campus,subnets=8,hosts=10' -> the generated topology."""
    name, *params = spec.split(",")
    gen = GENERATORS.get(name)
    if gen is None:
        raise TopologyError("gen:" + name, f"unknown generator {name!r} (known: "
                            + ", ".join(GENERATORS) + ")")
    kwargs: dict[str, object] = {}
    for p in params:
        k, _, v = p.partition("=")
        if not v:
            raise TopologyError(f"gen:{name}", f"parameter {p!r} is not key=value")
        try:
            kwargs[k] = v.lower() in ("1", "true", "yes") if k == "nat" else \
                float(v) if k == "degree" else int(v)
        except ValueError:
            raise TopologyError(f"gen:{name}", f"parameter {k}={v!r} is not a number") \
                from None
    try:
        return gen(**kwargs)
    except TypeError as e:
        raise TopologyError(f"gen:{name}", str(e)) from None
