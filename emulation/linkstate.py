"""Links of a running emulation set down or up from outside its process (`infralab link`,
the live view): by the router-side interfaces its run directory names, as the prompt's
`link A B down` does from inside (a host keeps its own end, and so its routes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from topologies.plan import Plan


def router_ends(run: Path, a: str, b: str) -> list[str]:
    """The router-side interfaces of the link between `a` and `b`: both ends of a link
    between two routers (where a delay node sits between them too), the router's end of
    a host's cable. LookupError when no link joins them."""
    plan = Plan.from_json((run / "plan.json").read_text())
    if {a, b} <= {r.name for r in plan.routers}:
        return [intf for _router, intf, _port in plan.router_link_ends(a, b)]
    ports = json.loads((run / "ports.json").read_text())
    ends = [p["intf"] for p in ports if {p["router"], p["peer"]} == {a, b}]
    if not ends:
        raise LookupError(f"no link joins {a} and {b}")
    return ends


def set_link(run: Path, a: str, b: str, up: bool) -> list[str]:
    """Set the link between `a` and `b` up or down; the interfaces it changed."""
    ends = router_ends(run, a, b)
    for intf in ends:
        subprocess.run(["ip", "link", "set", intf, "up" if up else "down"], check=True,
                       capture_output=True)
    return ends
