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


def _nat_summary(topo: Topology, router: str) -> list[str]:
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


def to_dot(topo: Topology) -> str:
    """Graphviz text for the topology: routers as boxes, subnets as small notes, hosts as
    ellipses; router-to-router subnets are labelled edges. A topology with coordinates
    (an imported one) is drawn on its map instead (geo_dot)."""
    if topo.positions:
        return geo_dot(topo)
    subnets = topo.subnets()
    lines = [f"graph {_q(topo.name)} {{",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.25, '
             f'ranksep=0.5, label={_q(topo.name + ": " + topo.description)}, labelloc=t];',
             '  node [fontname="Helvetica", fontsize=9];',
             '  edge [fontname="Helvetica", fontsize=8, color="#555555"];']
    for name, r in topo.routers.items():
        label = [f"{name}"] + [f"{s}: {a}" for s, a in r.interfaces.items()
                               if not subnets[s].is_transit]
        label += _nat_summary(topo, name)
        if r.relay is not None:
            label.append(f"DHCP relay → {', '.join(r.relay.servers)}")
        color = "#d9534f" if r.nat else ("#5b8def" if r.relay else "#333333")
        lines.append(f"  {_q('r:' + name)} [shape=box, style=\"rounded,bold\", "
                     f"color={_q(color)}, label={_q(chr(10).join(label))}];")
    for s in subnets.values():
        if s.is_transit:
            a, b = list(s.routers)
            lp = topo.links.get(s.name)
            text, attrs = f"{s.name} {s.network}", "penwidth=2"
            if lp and lp.delay:
                text += f"\n{lp.delay} each way"
                attrs += ', color="#c77c02"'
            lines.append(f"  {_q('r:' + a)} -- {_q('r:' + b)} [label={_q(text)}, {attrs}];")
            continue
        (router,) = list(s.routers)
        lines.append(f"  {_q('s:' + s.name)} [shape=note, style=filled, fillcolor=\"#f3f3f3\", "
                     f"label={_q(s.name + chr(10) + str(s.network))}];")
        lines.append(f"  {_q('r:' + router)} -- {_q('s:' + s.name)};")
        for hname in s.hosts:
            h = topo.hosts[hname]
            addr = str(h.address) if h.address else "DHCP"
            label = [hname, addr] + [f"[{svc.name}]" for svc in h.services]
            shade = "#fff4d6" if h.services else "#ffffff"
            lines.append(f"  {_q('h:' + hname)} [shape=ellipse, style=filled, "
                         f"fillcolor={_q(shade)}, label={_q(chr(10).join(label))}];")
            delay = f" [label={_q(h.link.delay)}, color=\"#c77c02\"]" if h.link.delay else ""
            lines.append(f"  {_q('s:' + s.name)} -- {_q('h:' + hname)}{delay};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg_text(topo: Topology) -> str:
    """The picture as SVG text (the live view draws on it)."""
    r = subprocess.run(["dot", "-Tsvg"], input=to_dot(topo), text=True, capture_output=True)
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
