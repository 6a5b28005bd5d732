"""`infralab draw FILE`: a picture of a topology (TB-OBSERVE) — routers, subnets, hosts,
links with their delay, NAT edges and DHCP relays, services on their hosts.

`to_dot()` is pure: it turns the validated model into Graphviz text; `render()` hands it
to Graphviz's `dot` for SVG or PNG. Nothing needs to be running.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from topologies.model import Topology


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _short(prefix: str) -> str:
    return prefix.removesuffix("/32")


def facts(topo: Topology) -> dict:
    """What the compact drawing leaves out, for the live view's side panel: each
    router's role, interfaces, NAT rules and relay; each host's subnet, address and
    services."""
    relays = {n: r.relay.servers for n, r in topo.routers.items() if r.relay is not None}
    return {
        "routers": {n: {"role": role(topo, n),
                        "interfaces": {s: str(i) for s, i in r.interfaces.items()},
                        "nat": nat_summary(topo, n),
                        "relay": [str(x) for x in relays.get(n, [])]}
                    for n, r in topo.routers.items()},
        "hosts": {n: {"subnet": h.subnet, "address": str(h.address) if h.address else "DHCP",
                      "services": [s.name for s in h.services]}
                  for n, h in topo.hosts.items()},
    }


def nat_summary(topo: Topology, router: str) -> list[str]:
    out = []
    for n in topo.routers[router].nat:
        parts = []
        if n.pat:
            parts.append(f"PAT {n.pat.address}")
        if n.pool:
            parts.append(f"pool {n.pool.addresses[0]}…({len(n.pool.addresses)})")
        parts += [f"static {_short(s.inside)}↔{_short(s.outside)}" for s in n.static]
        parts += [f"VIP {v.address}:{v.port}" for v in n.vip]
        out.append(f"NAT on {n.interface}: " + ", ".join(parts))
    return out


def geo_dot(topo: Topology) -> str:
    """An imported topology on its map (ROUTE-ZOO): each router at its longitude and
    latitude, named by its place, links labelled with their one-way delay; hosts are
    summed up in the title (one subnet per router)."""
    xs = [p[0] for p in topo.positions.values()]
    ys = [p[1] for p in topo.positions.values()]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    scale = 10.0 / span  # the map's longer side is 10 inches
    lines = [f"graph {_q(topo.name)} {{",
             f'  graph [layout=neato, fontname="Helvetica", fontsize=12, '
             f'label={_q(f"{topo.description}, {len(topo.hosts)} hosts")}, labelloc=t, '
             'outputorder=edgesfirst];',
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'color="#5b8def", fontname="Helvetica", fontsize=8, margin="0.04,0.02", '
             'width=0, height=0];',
             '  edge [fontname="Helvetica", fontsize=7, color="#777777", '
             'fontcolor="#c77c02"];']
    for name in topo.routers:
        pos = topo.positions.get(name)
        where = f', pos="{(pos[0] - min(xs)) * scale:.3f},{(pos[1] - min(ys)) * scale:.3f}!"' \
            if pos else ""
        label = f"{name}\n{topo.labels[name]}" if name in topo.labels else name
        lines.append(f"  {_q('r:' + name)} [label={_q(label)}{where}];")
    for s in topo.subnets().values():
        if s.is_transit:
            a, b = list(s.routers)
            lp = topo.links.get(s.name)
            label = f", label={_q(lp.delay)}" if lp and lp.delay else ""
            lines.append(f"  {_q('r:' + a)} -- {_q('r:' + b)} [penwidth=1.5{label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def role(topo: Topology, router: str) -> str:
    """What a router does besides routing, in a few words (the live view's boxes)."""
    r = topo.routers[router]
    parts = (["NAT"] if r.nat else []) + (["DHCP relay"] if r.relay is not None else [])
    return ", ".join(parts) or "router"


def to_dot(topo: Topology, compact: bool = False) -> str:
    """Graphviz text for the topology: routers as boxes, subnets as small notes, hosts as
    ellipses; router-to-router subnets are labelled edges. A topology with coordinates
    (an imported one) is drawn on its map instead (geo_dot). `compact`: names and roles
    only, in larger type (the live view, whose side panel shows the addresses)."""
    if topo.positions:
        return geo_dot(topo)
    subnets = topo.subnets()
    # compact: large type, tight spacing, so that the world fitted to a 1,080-pixel panel
    # still shows its labels at about 10 pixels (the live view's test measures them)
    size, sep = ((18, 14), "nodesep=0.1, ranksep=0.3") if compact else \
        ((9, 8), "nodesep=0.25, ranksep=0.5")
    lines = [f"graph {_q(topo.name)} {{",
             f'  graph [rankdir=TB, fontname="Helvetica", fontsize=11, {sep}, '
             f'label={_q(topo.name + ": " + topo.description)}, labelloc=t];',
             f'  node [fontname="Helvetica", fontsize={size[0]}];',
             f'  edge [fontname="Helvetica", fontsize={size[1]}, color="#555555"];']
    for name, r in topo.routers.items():
        if compact:
            label = [name, role(topo, name)]
        else:
            label = [f"{name}"] + [f"{s}: {a}" for s, a in r.interfaces.items()
                                   if not subnets[s].is_transit]
            label += nat_summary(topo, name)
        if r.relay is not None and not compact:
            label.append(f"DHCP relay → {', '.join(r.relay.servers)}")
        color = "#d9534f" if r.nat else ("#5b8def" if r.relay else "#333333")
        lines.append(f"  {_q('r:' + name)} [shape=box, style=\"rounded,bold\", "
                     f"color={_q(color)}, label={_q(chr(10).join(label))}];")
    for s in subnets.values():
        if s.is_transit:
            a, b = list(s.routers)
            lp = topo.links.get(s.name)
            text, attrs = (s.name if compact else f"{s.name} {s.network}"), "penwidth=2"
            if lp and lp.delay:
                text += f"\n{lp.delay}" + ("" if compact else " each way")
                attrs += ', color="#c77c02"'
            lines.append(f"  {_q('r:' + a)} -- {_q('r:' + b)} [label={_q(text)}, {attrs}];")
            continue
        (router,) = list(s.routers)
        lines.append(f"  {_q('s:' + s.name)} [shape=note, style=filled, fillcolor=\"#f3f3f3\", "
                     f"label={_q(s.name if compact else s.name + chr(10) + str(s.network))}];")
        lines.append(f"  {_q('r:' + router)} -- {_q('s:' + s.name)};")
        for hname in s.hosts:
            h = topo.hosts[hname]
            addr = str(h.address) if h.address else "DHCP"
            label = [hname] + ([] if compact else [addr]) + [f"[{svc.name}]"
                                                              for svc in h.services]
            shade = "#fff4d6" if h.services else "#ffffff"
            lines.append(f"  {_q('h:' + hname)} [shape=ellipse, style=filled, "
                         f"fillcolor={_q(shade)}, label={_q(chr(10).join(label))}];")
            delay = f" [label={_q(h.link.delay)}, color=\"#c77c02\"]" if h.link.delay else ""
            lines.append(f"  {_q('s:' + s.name)} -- {_q('h:' + hname)}{delay};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg_text(topo: Topology, compact: bool = False) -> str:
    """The picture as SVG text (the live view draws on its compact form)."""
    r = subprocess.run(["dot", "-Tsvg"], input=to_dot(topo, compact), text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"dot failed: {r.stderr.strip()}")
    return r.stdout


def render(topo: Topology, out: Path) -> Path:
    """Write `out` (.svg or .png) with Graphviz's dot."""
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png"):
        raise ValueError(f"{out}: write .svg or .png")
    r = subprocess.run(["dot", f"-T{fmt}", "-o", str(out)], input=to_dot(topo), text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"dot failed: {r.stderr.strip()}")
    return out
