"""A running emulation's links: cables pulled and plugged (ROUTE-FAILOVER), a router
failed as a whole, and what a link does (delay, loss, rate) set at start and changed
live (LINK-NETEM: netem on both ends, or the delay node's line)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from emulation import runtime
from emulation.errors import BuildError
from emulation.polling import wait_for

if TYPE_CHECKING:
    from emulation.build import Emulation

Place = tuple[list[str], list[str], Callable[[str], str]]  # bridges, interfaces, run a line


class LinkControl:
    def __init__(self, emu: Emulation) -> None:
        self.emu = emu

    def places(self) -> list[Place]:
        """Per place (this machine, or each server): the bridges and router-side
        interfaces the manifest lists there, and how to run a shell line there."""
        def here(line: str) -> str:
            return subprocess.run(["sh", "-c", line], capture_output=True, text=True).stdout

        built = self.emu.built
        if not self.emu.servers:
            return [(built.bridges, built.interfaces, here)]
        return [(rec["bridges"], rec["interfaces"], partial(runtime.remote_sh, rec))
                for rec in built.remote.values()]

    def shape(self) -> None:
        """netem on both ends of every emulated link (after Mininet's TCIntf made the HTB
        of a `bw` link, under which netem goes); links.json for live changes."""
        from emulation import linkemu

        emu = self.emu

        def ns_pid(name: str) -> int | None:
            return None if name in emu.topo.routers else emu.net[name].pid

        node_of = {id(lk): d for d, lk in emu.delay_nodes.items()}
        records = []
        for link in emu.plan.links:
            d = node_of.get(id(link))
            mech = ("netem" if emu.link_emulation == "netem" else
                    "delayline" if d else "none")
            rec = linkemu.record(link.a, link.b, link.a_intf, link.b_intf, mech,
                                 delay=link.delay, loss=link.loss, shape=link.shape,
                                 bw=link.bw, a_pid=ns_pid(link.a), b_pid=ns_pid(link.b),
                                 delay_node=d)
            records.append(rec)
            if link.bw and not emu.servers:  # a router end's HTB again (as Mininet's
                for end, intf in ((link.a, link.a_intf), (link.b, link.b_intf)):  # TCReapply)
                    if end in emu.topo.routers:  # (no address there to disturb)
                        i = emu.net[end].intf(intf)
                        i.config(**i.params)
            if mech == "netem" and link.emulated:
                for (_pid, line), end in zip(linkemu.netem_lines(rec), (link.a, link.b),
                                             strict=True):  # (a switch's shell: root ns)
                    out = emu.net[end].cmd(line + " 2>&1; echo rc=$?")
                    if "rc=0" not in out:
                        raise BuildError(f"netem on link {link.a} -- {link.b}: {out.strip()}")
                emu.log(linkemu.describe(rec))
        linkemu.save(emu.rundir, records)

    def set(self, a: str, b: str, changes: dict) -> list[str]:
        """Change what the link(s) between nodes a and b do, live: netem on both ends,
        or the delay node's line. Returns a description of each link."""
        from emulation import linkemu

        if self.emu.servers:
            raise BuildError("live link changes are not supported in cluster runs yet")
        return [linkemu.describe(r) for r in linkemu.set_in_run(
            self.emu.rundir, self.emu.built.processes, a, b, changes)]

    def updown(self, a: str, b: str, up: bool, wait: bool = False) -> list[str]:
        """Take the link(s) between nodes a and b down or up: between two routers, their
        router-side interfaces, delay node or not (the switches report the port state,
        the controller reroutes); between a host and its router, the router's end (a
        pulled cable: the host keeps its routes); else as Mininet's `link` does. With
        `wait`, return once the controller has rerouted and every switch has confirmed
        its new flows (a barrier: what a prompt user expects; a convergence measurement
        must not wait). Returns the interfaces changed."""
        emu = self.emu
        state = "up" if up else "down"
        try:
            ends = emu.plan.router_link_ends(a, b)
        except LookupError:
            host_port = self._host_port(a, b) or self._host_port(b, a)
            if host_port is None:
                emu.net.configLinkStatus(a, b, state)  # raises nothing: Mininet prints
                return [f"{a}-{b}"]
            # a host's cable: the router's end only. The host sees its carrier go (as
            # with a real cable) and keeps its address and routes; Mininet's way, both
            # ends set down, makes the kernel drop the host's default route for good.
            self._set_router_ends([host_port], state)
            return [host_port[1]]
        ours = {(router, port) for router, _intf, port in ends}  # as the controller names them
        self._set_router_ends([(router, intf) for router, intf, _port in ends], state)
        if wait:  # the controller saw it, and every switch has its new flows (barriers)
            def rerouted() -> bool:
                view = emu.api("/routing")
                down = {tuple(x) for x in view["down_links"]}
                seen = not (ours & down) if up else bool(ours & down)
                return seen and not view.get("switches_updating")

            wait_for(rerouted, 5, f"the controller seeing {a} -- {b} {state}", 0.05)
        return [intf for _r, intf, _p in ends]

    def router_updown(self, router: str, up: bool, wait: bool = False) -> list[str]:
        """A router failure (or repair): every link to another router goes down (up)."""
        plan = self.emu.plan
        if router not in {r.name for r in plan.routers}:
            raise LookupError(f"no router {router!r}")
        peers = sorted({lk.b if lk.a == router else lk.a for lk in plan.links
                        if router in (lk.a, lk.b) and lk.a_port and lk.b_port})
        return [i for p in peers for i in self.updown(router, p, up, wait)]

    def _set_router_ends(self, ends: list[tuple[str, str]], state: str) -> None:
        """`ip link set INTF up|down` for each (router, router-side interface), where the
        router is (on its server, in a cluster run)."""
        places = self.places()
        for router, intf in ends:
            bridge = self.emu.plan.bridge(router)
            run = next(run for bridges, _intfs, run in places if bridge in bridges)
            run(f"ip link set {shlex.quote(intf)} {state}")

    def _host_port(self, host: str, router: str) -> tuple[str, str] | None:
        """(router, router-side interface) of host `host`'s link to `router`, if any."""
        if host not in self.emu.topo.hosts:
            return None
        return next(((r.name, p.intf) for r in self.emu.plan.routers if r.name == router
                     for i in r.interfaces for p in i.ports if p.peer == host), None)
