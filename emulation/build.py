"""Build a Topology as a live Mininet network driven by the infralab controller.

`Emulation` is a context manager: entering builds everything (controller process, OVS
bridges, hosts, links, services) and waits until routing works; leaving — also on an
exception or Ctrl-C — tears down exactly what it created. Everything is recorded in the
run manifest *before* it is created, so a crash half-way is cleaned up by `infralab clean`
or by the next run.

`Emulation` is the facade users and tests call; each concern is a part of its own, as
faucet's Valve delegates to its managers:

- `emulation.network.Network`: Mininet hosts, OVS bridges, links, delay nodes, teardown;
- `emulation.controlproc.ControllerProcess`: the controller process, its status and API;
- `emulation.supervisor.Supervisor`: services, DHCP clients and delay lines, restarted
  after a crash;
- `emulation.linkcontrol.LinkControl`: links down and up, and what a link does, live;
- `emulation.faults.FaultEngine`: faults on purpose (made on first use).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulation import runtime
from emulation.controlproc import ControllerProcess, api_request, free_port
from emulation.errors import BuildError
from emulation.linkcontrol import LinkControl
from emulation.network import Network
from emulation.polling import wait_for, wait_listening
from emulation.progress import SILENT, Progress
from emulation.servers import TUNNELS, Server, ServerError, wait_reachable
from emulation.supervisor import Supervisor
from topologies.model import Topology, TopologyError
from topologies.placement import place
from topologies.plan import LinkPlan, Plan, make_plan

READY_TIMEOUT_S = 20.0

__all__ = ["BuildError", "Emulation", "READY_TIMEOUT_S", "api_request", "raise_interrupt",
           "wait_for", "wait_listening"]


class Emulation:
    """A running topology. Use as `with Emulation(topo) as emu: emu.net['h1'].cmd(...)`."""

    def __init__(self, topo: Topology, *, controller_port: int | None = None,
                 log: Callable[[str], None] | None = None, verbose: bool = False,
                 progress: Progress | None = None, servers: list[Server] | None = None,
                 tunnel: str = "vxlan", name: str | None = None) -> None:

        self.topo = topo.validate()
        self.plan: Plan = make_plan(topo)
        # cluster runs (SCALE-CLUSTER): which server each node is on; empty: all local
        self.servers = {s.name: s for s in servers or []}
        self.where: dict[str, str] = {}
        if servers:
            if tunnel not in TUNNELS:
                raise BuildError(f"tunnel {tunnel!r}: use one of {', '.join(TUNNELS)}")
            try:
                self.where = place(self.plan, [s.name for s in servers], topo.placement)
            except TopologyError as e:
                raise BuildError(str(e)) from None
        self.tunnel = tunnel
        self.name = name  # the run's name (RUNS-MANY); None: the topology's, made unique
        self.log = log or (lambda s: None)
        self.progress = progress or SILENT  # bars for the long steps (the CLI shows them)
        self.verbose = verbose
        self.manifest: runtime.Manifest | None = None
        self.network = Network(self)
        self.ctl = ControllerProcess(self, controller_port or topo.controller_port
                                     or free_port())
        self.supervisor = Supervisor(self)
        self.links = LinkControl(self)
        self._faults: Any = None  # emulation.faults.FaultEngine, made on first use

    # ---- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> Emulation:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if os.geteuid() != 0:
            raise BuildError("building a topology needs root (Mininet and OVS); "
                             "run as root or with sudo")
        runtime.clean(self.log)  # a crashed earlier run may hold our names
        for srv in self.servers.values():
            try:
                wait_reachable(srv, timeout=10)
            except ServerError as e:
                raise BuildError(str(e)) from None
        self.network.choose_kernel_paths()
        runtime.check_memory(self.topo)  # (RunError: refused before anything is made)
        self.manifest = runtime.Manifest.create(self.topo.name, self.name)
        try:  # the run's own names (its slot's prefix), free before anything is made
            self.name = self.manifest.name
            self.plan = make_plan(self.topo, self.manifest.slot)
            self.network.check_names_free()
        except (BuildError, ValueError) as e:
            shutil.rmtree(self.manifest.dir, ignore_errors=True)
            self.manifest = None
            raise BuildError(str(e)) from None
        self.log(f"run {self.name}: names in the kernel and OVS begin with "
                 f"{self.plan.prefix!r}")
        self._record_plan()
        # Ctrl-C / SIGTERM during the build must still reach our teardown.
        old = signal.signal(signal.SIGTERM, raise_interrupt)
        try:
            self.ctl.start()
            self.network.build()
            self.ctl.wait_routing(READY_TIMEOUT_S + 0.02 * len(self.topo.hosts))
            self.supervisor.start_services()
            self.supervisor.watch()
        except BaseException:
            self.stop()
            raise
        finally:
            signal.signal(signal.SIGTERM, old)

    def _record_plan(self) -> None:
        """What this run will make, in its manifest before it is made; the ports' map
        and the topology's own files in its directory."""
        built = self.built
        if self.network.datapath == "kernel" and not self.servers and \
                not runtime.link_exists("ovs-system"):
            built.kernel_datapaths = ["ovs-system"]  # ours: the first bridge makes it
        from controllers.nat import conntrack_zones

        built.conntrack_zones = conntrack_zones(self.plan)
        if not self.servers:  # (cluster runs keep the PAT's TCP bindings in flows)
            self.network.set_zone_policies()
        # which router port leads where: `infralab capture ROUTER:PEER` finds links by it
        ports = [{"router": r.name, "subnet": i.subnet, "peer": p.peer, "intf": p.intf,
                  **({"server": self.where[r.name]} if self.where else {})}
                 for r in self.plan.routers for i in r.interfaces for p in i.ports]
        if self.servers:  # each server's share, written down before anything is made
            built.remote = {n: s.record() for n, s in self.servers.items()}
            for r in self.plan.routers:
                built.remote[self.where[r.name]]["bridges"].append(self.plan.bridge(r.name))
            for p in ports:
                built.remote[p["server"]]["interfaces"].append(p["intf"])
        else:
            built.bridges = [self.plan.bridge(r.name) for r in self.plan.routers]
            built.interfaces = sorted({p["intf"] for p in ports})
        built.save()
        numbers = [p.port for r in self.plan.routers for i in r.interfaces for p in i.ports]
        (self.rundir / "ports.json").write_text(json.dumps(  # (+ OpenFlow port numbers)
            [dict(p, port=n) for p, n in zip(ports, numbers, strict=True)], indent=0))
        if self.topo.files:  # made with the topology (overlay): {dir} is their copy here
            files = self.rundir / "files"
            for rel, text in self.topo.files.items():
                (files / rel).parent.mkdir(parents=True, exist_ok=True)
                (files / rel).write_text(text)
            self.topo.base_dir = str(files)

    def stop(self) -> None:
        """Tear everything down; safe to call twice, and after a partial start."""
        if self._faults is not None:  # links up, processes continued, pools given back
            try:
                self._faults.close()
            except Exception as e:  # noqa: BLE001 - teardown goes on; the manifest ends the rest
                self.log(f"healing faults: {e}")
        if not self.supervisor.halt():  # (no restart once teardown has begun)
            return
        self.supervisor.end_all()
        if self.manifest is not None:
            self.ctl.end()
        self.network.stop()
        for name, srv in self.servers.items():  # the shared ssh connection, now unused
            subprocess.run(["ssh", *srv.ssh_options, "-O", "exit", "-o",
                            f"ControlPath={self.rundir / f'ssh-{name}'}", f"root@{srv.ip}"],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=10)
        if self.manifest is not None and self.built.ct_policies:  # ours, set at start
            runtime.clear_zone_policies(self.built.ct_policies)
            self.built.ct_policies = {}
            self.built.save()
        if self.manifest is not None:
            leftovers = self.built.remove_all(self.log)
            if leftovers:
                self.log(f"teardown removed {len(leftovers)} leftover(s)")

    # ---- the run's record ---------------------------------------------------------------
    @property
    def built(self) -> runtime.Manifest:
        """The run's manifest: it exists from the first step of start() on."""
        assert self.manifest is not None, "the emulation was not started"
        return self.manifest

    @property
    def rundir(self) -> Path:
        return self.built.dir

    # ---- the network (emulation.network) ------------------------------------------------
    @property
    def net(self) -> Any:
        """The Mininet object."""
        return self.network.net

    @property
    def delay_nodes(self) -> dict[str, LinkPlan]:
        return self.network.delay_nodes

    @property
    def datapath(self) -> str:
        return self.network.datapath

    @property
    def datapath_why(self) -> str:
        return self.network.datapath_why

    @property
    def link_emulation(self) -> str:
        return self.network.link_emulation

    @property
    def link_emulation_why(self) -> str:
        return self.network.link_emulation_why

    def host(self, name: str):
        return self.net[name]

    def ip(self, host: str) -> str:
        """The host's address: its static one, or what DHCP gave it (read live)."""
        iface = self.topo.host_interface(host)
        if iface is None:  # (its own process: the host's shell may be busy)
            node = self.net[host]
            cmd = ["mnexec", "-a", str(node.pid), "ip", "-4", "-o", "addr", "show", "dev",
                   f"{host}-eth0"]
            out = (node.rcmd(" ".join(cmd)) if getattr(node, "isRemote", False) else
                   subprocess.run(cmd, capture_output=True, text=True).stdout)
            m = re.search(r"inet (\S+)/", out)
            return m.group(1) if m else ""
        return str(iface.ip)

    # ---- the controller (emulation.controlproc) -------------------------------------------
    @property
    def controller(self) -> subprocess.Popen | None:
        return self.ctl.proc

    @property
    def port(self) -> int:
        return self.ctl.port

    @property
    def api_port(self) -> int | None:
        return self.ctl.api_port

    @property
    def status_path(self) -> Path:
        return self.ctl.status_path

    def controller_status(self) -> dict:
        return self.ctl.status()

    def api(self, path: str, method: str = "GET") -> Any:
        """The controller's HTTP/JSON API (controllers/api.py), e.g. api("/nat/rc")."""
        return self.ctl.api(path, method)

    def controller_log_tail(self, chars: int = 3000) -> str:
        return self.ctl.log_tail(chars)

    def restart_controller(self) -> float:
        """Kill the controller (SIGKILL, as a crash) and start it again; returns the
        seconds until every router is connected and routing again."""
        proc = self.ctl.proc
        assert proc is not None
        t0 = time.monotonic()
        with self.supervisor.lock:  # (the supervisor must not start a second one meanwhile)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            self.ctl.replace()
        self.ctl.wait_routing(READY_TIMEOUT_S + 0.02 * len(self.topo.hosts))
        return time.monotonic() - t0

    # ---- services (emulation.supervisor) ------------------------------------------------
    @property
    def services(self) -> dict[str, subprocess.Popen]:
        return self.supervisor.services

    def service_dir(self, label: str) -> Path:
        return self.supervisor.service_dir(label)

    def host_dir(self, name: str) -> Path:
        return self.supervisor.host_dir(name)

    def popen_in(self, node: Any, argv: list[str], *, log: Any, label: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
        return self.supervisor.popen_in(node, argv, log=log, label=label, env=env)

    def start_service(self, label: str) -> subprocess.Popen:
        """Start a service stopped by stop_service again (the supervisor resumes watching)."""
        return self.supervisor.start_service(label)

    def stop_service(self, label: str) -> int | None:
        """End one service (its whole process group) and keep it down (supervision leaves
        it alone); returns its exit status. To see a crash recovered, kill its PID instead."""
        return self.supervisor.stop_service(label)

    # ---- links (emulation.linkcontrol) --------------------------------------------------
    def link(self, a: str, b: str, up: bool, wait: bool = False) -> list[str]:
        """Take the link(s) between nodes a and b down or up (ROUTE-FAILOVER); see
        LinkControl.updown."""
        return self.links.updown(a, b, up, wait)

    def router_links(self, router: str, up: bool, wait: bool = False) -> list[str]:
        """A router failure (or repair): every link to another router goes down (up)."""
        return self.links.router_updown(router, up, wait)

    def set_link(self, a: str, b: str, changes: dict) -> list[str]:
        """Change what the link(s) between nodes a and b do, live (LINK-NETEM)."""
        return self.links.set(a, b, changes)

    # ---- faults (emulation.faults) ------------------------------------------------------
    @property
    def faults(self) -> Any:
        """Faults on purpose (FAULT-INJECT): `emu.faults.inject({"kind": "link-down",
        "link": ["ri", "rs"], "duration": 5})`, `emu.faults.run(schedule)`."""
        if self._faults is None:
            from emulation.faults import FaultEngine

            self._faults = FaultEngine(self)
        return self._faults


def raise_interrupt(*_args) -> None:
    """Signal handler: turn SIGTERM/SIGHUP into the Ctrl-C path, so teardown runs."""
    raise KeyboardInterrupt
