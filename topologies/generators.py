"""Topology generators for research use (TB-VM research part of issue 7): a topology of a
given size from parameters, e.g. `infralab up gen:campus,subnets=8,hosts=10`.

Each generator returns a validated `Topology`, the same object the YAML loader builds, so
everything else (plan, builder, checks, draw) is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import Topology, TopologyError


def campus(subnets: int = 4, hosts: int = 4, nat: bool = True) -> Topology:
    """A campus router with `subnets` × `hosts` (10.<s>.<h> addresses), a core router
    beyond it with one server, and (by default) PAT on the campus edge."""
    if not 1 <= subnets <= 200 or not 1 <= hosts <= 250:
        raise TopologyError("gen:campus", "subnets must be 1..200 and hosts 1..250")
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


GENERATORS: dict[str, Callable[..., Topology]] = {"campus": campus, "chain": chain}


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
        kwargs[k] = v.lower() in ("1", "true", "yes") if k == "nat" else int(v)
    try:
        return gen(**kwargs)
    except TypeError as e:
        raise TopologyError(f"gen:{name}", str(e)) from None
