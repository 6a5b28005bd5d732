"""Ping every pair of a running topology's hosts at once: the prompt's `pingall`.

Mininet's pingAll pings one pair after another by `Node.IP()`, which is None for a host
that took its address by DHCP and for the delay nodes (the emulator's own machinery); it
then reports those as loss. Here the pairs are the topology's hosts only, each ping goes
to the address `topologies.reach` chose (a lease, or a NAT's mapping), pairs a NAT hides
are not pinged, and each source pings all its targets in parallel, so the world's ~600
pairs take seconds.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from topologies.model import Topology
from topologies.plan import Plan
from topologies.reach import Probe, Routes, probes

TRIES = 3  # pings per pair before it counts as lost (the first may wait for ARP)


@dataclass
class Result:
    """The outcome of one `pingall`."""

    probes: list[Probe]
    reached: dict[tuple[str, str], bool] = field(default_factory=dict)
    rtt_ms: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def tried(self) -> list[Probe]:
        return [p for p in self.probes if not p.hidden]

    @property
    def hidden(self) -> list[Probe]:
        return [p for p in self.probes if p.hidden]

    @property
    def lost(self) -> list[Probe]:
        return [p for p in self.tried if not self.reached.get((p.src, p.dst))]

    @property
    def loss_percent(self) -> float:
        return 100.0 * len(self.lost) / len(self.tried) if self.tried else 0.0

    def summary(self) -> str:
        tried = len(self.tried)
        text = (f"{tried - len(self.lost)}/{tried} reachable, "
                f"{self.loss_percent:.0f}% loss")
        if self.hidden:
            text += f"; {len(self.hidden)} pairs hidden by NAT as configured"
        return text


def plan(emu: Any) -> list[Probe]:
    """The probes for `emu` now: live addresses (leases too) and the controller's routes."""
    addresses = {}
    for name in emu.topo.hosts:
        ip = emu.ip(name)
        addresses[name] = IPv4Address(ip) if ip else None
    return probes(emu.topo, addresses, configured_routes(emu.topo, emu.plan))


def configured_routes(topo: Topology, plan: Plan) -> Routes:
    """Every router's routes with all links up, as (prefix, subnet it leaves by): the
    topology's own `routes:` and, unless routing is static, the controller's SPF on the
    intact graph (the same pure computation the controller runs)."""
    from controllers import spf

    out: Routes = {}
    for r in topo.routers.values():
        for rt in r.routes:
            subnet = next((s for s, i in r.interfaces.items() if rt.via in i.network), None)
            if subnet:
                out.setdefault(r.name, []).append((rt.prefix, subnet))
    if plan.routing != "static":
        graph = spf.Graph(plan)
        for router, table in spf.compute(graph, backups=False).items():
            for prefix, route in table.items():
                if route.hops:
                    subnet = graph.ends[(router, route.hops[0].port)].subnet
                    out.setdefault(router, []).append((prefix, subnet))
    return out


def _script(targets: list[IPv4Address]) -> str:
    """One shell line: ping each target in the background (up to TRIES times), print
    `ok ADDR RTT` or `no ADDR` for each, and wait for all."""
    one = ("(i=0; while [ $i -lt {n} ]; do out=$(ping -n -c1 -W1 {a} 2>/dev/null) && "
           "{{ echo \"ok {a} $(echo \"$out\" | sed -n 's/.*time=\\([0-9.]*\\).*/\\1/p')\"; "
           "exit; }}; i=$((i+1)); done; echo 'no {a}') &")
    return " ".join(one.format(n=TRIES, a=a) for a in targets) + " wait"


def run(emu: Any, todo: list[Probe]) -> Result:
    """Ping every probe that has an address, each source's probes in parallel and all
    sources at once; returns what reached."""
    result = Result(todo)
    by_src: dict[str, list[Probe]] = {}
    for p in todo:
        if p.address is not None:
            by_src.setdefault(p.src, []).append(p)
    procs = {}
    for src, ps in by_src.items():
        node = emu.net[src]
        line = _script(sorted({p.address for p in ps if p.address is not None}))
        if getattr(node, "isRemote", False):  # (cluster: through the node's own shell)
            procs[src] = node.cmd(line)
        else:
            procs[src] = subprocess.Popen(["mnexec", "-a", str(node.pid), "sh", "-c", line],
                                          stdout=subprocess.PIPE, text=True)
    for src, ps in by_src.items():
        proc = procs[src]
        out = proc if isinstance(proc, str) else proc.communicate(timeout=60)[0]
        seen = {}
        for m in re.finditer(r"^(ok|no) (\S+)(?: (\S+))?$", out, re.M):
            seen[m.group(2)] = (m.group(1) == "ok", m.group(3))
        for p in ps:
            ok, rtt = seen.get(str(p.address), (False, None))
            result.reached[(p.src, p.dst)] = ok
            if ok and rtt:
                result.rtt_ms[(p.src, p.dst)] = float(rtt)
    return result


def pingall(emu: Any) -> Result:
    return run(emu, plan(emu))
