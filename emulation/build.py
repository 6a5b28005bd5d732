"""Build a Topology as a live Mininet network driven by the infralab controller.

`Emulation` is a context manager: entering builds everything (controller process, OVS
userspace bridges, hosts, links, services) and waits until routing works; leaving — also on
an exception or Ctrl-C — tears down exactly what it created. Everything is recorded in the
run manifest *before* it is created, so a crash half-way is cleaned up by `infralab clean`
or by the next run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from emulation import runtime
from emulation.progress import SILENT, Progress
from emulation.servers import TUNNELS, Server, ServerError, head_address, wait_reachable
from topologies.model import DELAY_NODE_PREFIX, Topology, TopologyError
from topologies.placement import place
from topologies.plan import LinkPlan, Plan, make_plan

READY_TIMEOUT_S = 20.0
SETUP_BATCH = 64  # hosts set up at once (each its own shell; bounded, for small machines)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class BuildError(RuntimeError):
    """The emulation could not be built; nothing of it is left behind."""


def api_request(base: str, path: str, method: str = "GET") -> Any:
    """One request to a controller's API (no proxy: it is on this machine's loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST"
                                 else None)
    try:
        with opener.open(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise ValueError(json.loads(e.read()).get("error", str(e))) from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> object:
    """Poll `cond` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Emulation:
    """A running topology. Use as `with Emulation(topo) as emu: emu.net['h1'].cmd(...)`."""

    def __init__(self, topo: Topology, *, controller_port: int | None = None,
                 log: Callable[[str], None] | None = None, verbose: bool = False,
                 progress: Progress | None = None, servers: list[Server] | None = None,
                 tunnel: str = "vxlan") -> None:

        self.topo = topo.validate()
        self.plan: Plan = make_plan(topo)
        # cluster runs (issue 15): which server each node is on; empty: all on this machine
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
        self.port = controller_port or topo.controller_port or _free_port()
        self.log = log or (lambda s: None)
        self.progress = progress or SILENT  # bars for the long steps (the CLI shows them)
        self.verbose = verbose
        self.net: Any = None  # the Mininet object (Mininet has no type hints)
        self.manifest: runtime.Manifest | None = None
        self.controller: subprocess.Popen | None = None
        self.services: dict[str, subprocess.Popen] = {}
        self.delay_nodes: dict[str, LinkPlan] = {}  # delay node name -> the link it delays
        # issue 17: OVS's datapath ("kernel" | "user") and how links are emulated
        # ("netem" | "delayline"), each with why (`infralab up` prints both)
        self.datapath, self.datapath_why = "user", ""
        self.link_emulation, self.link_emulation_why = "delayline", ""
        self._stopped = False
        # supervision (issue 8): how to start each service again, and which were stopped
        # on purpose (stop_service) and so stay down
        self._spawners: dict[str, Callable[[], subprocess.Popen]] = {}
        self._held_down: set[str] = set()
        self._restarts: dict[str, list[float]] = {}
        self._lock = threading.Lock()
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
        self._check_names_free()
        self._choose_kernel_paths()
        self.manifest = runtime.Manifest.create(self.topo.name)
        if self.datapath == "kernel" and not self.servers and \
                not runtime.link_exists("ovs-system"):
            self.built.kernel_datapaths = ["ovs-system"]  # ours: the first bridge makes it
        from controllers.nat import conntrack_zones

        self.built.conntrack_zones = conntrack_zones(self.plan)
        if not self.servers:  # (cluster runs keep the PAT's TCP bindings in flows)
            self._set_zone_policies()
        # which router port leads where: `infralab capture ROUTER:PEER` finds links by it
        ports = [{"router": r.name, "subnet": i.subnet, "peer": p.peer, "intf": p.intf,
                  **({"server": self.where[r.name]} if self.where else {})}
                 for r in self.plan.routers for i in r.interfaces for p in i.ports]
        if self.servers:  # each server's share, written down before anything is made
            self.built.remote = {n: s.record() for n, s in self.servers.items()}
            for r in self.plan.routers:
                self.built.remote[self.where[r.name]]["bridges"].append(r.name)
            for p in ports:
                self.built.remote[p["server"]]["interfaces"].append(p["intf"])
        else:
            self.built.bridges = [r.name for r in self.plan.routers]
            self.built.interfaces = sorted({p["intf"] for p in ports})
        self.built.save()
        numbers = [p.port for r in self.plan.routers for i in r.interfaces for p in i.ports]
        (self.rundir / "ports.json").write_text(json.dumps(  # (+ OpenFlow port numbers)
            [dict(p, port=n) for p, n in zip(ports, numbers, strict=True)], indent=0))
        if self.topo.files:  # made with the topology (overlay): {dir} is their copy here
            files = self.rundir / "files"
            for rel, text in self.topo.files.items():
                (files / rel).parent.mkdir(parents=True, exist_ok=True)
                (files / rel).write_text(text)
            self.topo.base_dir = str(files)
        # Ctrl-C / SIGTERM during the build must still reach our teardown.
        old = signal.signal(signal.SIGTERM, raise_interrupt)
        try:
            self._start_controller()
            self._build_network()
            self._wait_routing()
            self._start_services()
            threading.Thread(target=self._supervise, daemon=True).start()
        except BaseException:
            self.stop()
            raise
        finally:
            signal.signal(signal.SIGTERM, old)

    def start_service(self, label: str) -> subprocess.Popen:
        """Start a service stopped by stop_service again (the supervisor resumes watching)."""
        p = self._launch(label)
        self._held_down.discard(label)
        return p

    def restart_controller(self) -> float:
        """Kill the controller (SIGKILL, as a crash) and start it again; returns the
        seconds until every router is connected and routing again (issue 8)."""

        assert self.controller is not None
        t0 = time.monotonic()
        with self._lock:  # (the supervisor must not start a second one meanwhile)
            os.killpg(self.controller.pid, signal.SIGKILL)
            self.controller.wait(10)
            self._replace_controller()
        self._wait_routing()
        return time.monotonic() - t0

    def _replace_controller(self) -> None:
        """End what is left of the old controller's process group and start a new one,
        which replays the NAT state journal and takes the wiring plan (switches keep
        their flows meanwhile: fail-mode secure)."""
        assert self.controller is not None
        p = self.built.processes.get("controller", {})
        runtime.end_process(self.controller.pid, p.get("start"), group=True)
        self.status_path.unlink(missing_ok=True)
        self._start_controller()

    def stop_service(self, label: str) -> int | None:
        """End one service (its whole process group) and keep it down (supervision leaves
        it alone); returns its exit status. To see a crash recovered, kill its PID instead."""

        self._held_down.add(label)
        p = self.built.processes.get(f"service:{label}")
        if p is not None:
            self.built.end_remote([f"service:{label}"])
            runtime.end_process(p["pid"], p.get("start"), group=True)
        return self.services[label].wait(10)

    @property
    def faults(self) -> Any:
        """Faults on purpose (issue 21): `emu.faults.inject({"kind": "link-down", "link":
        ["ri", "rs"], "duration": 5})`, `emu.faults.run(schedule)`; see emulation/faults.py."""
        if self._faults is None:
            from emulation.faults import FaultEngine

            self._faults = FaultEngine(self)
        return self._faults

    def stop(self) -> None:
        """Tear everything down; safe to call twice, and after a partial start."""
        if self._faults is not None:  # links up, processes continued, pools given back
            try:
                self._faults.close()
            except Exception as e:  # noqa: BLE001 - teardown goes on; the manifest ends the rest
                self.log(f"healing faults: {e}")
        with self._lock:  # no restart by the supervisor once teardown has begun
            if self._stopped:
                return
            self._stopped = True

        if self.manifest is not None:  # services on servers: there, one ssh per server
            self.built.end_remote([f"service:{label}" for label in self.services])
        for label, proc in list(self.services.items()):
            p = self.manifest.processes.get(f"service:{label}") if self.manifest else None
            if p:
                runtime.end_process(p["pid"], p.get("start"), group=True)
                try:
                    proc.wait(5)  # reap it: a zombie is not a leftover
                except subprocess.TimeoutExpired:
                    pass
        if self.controller is not None and self.manifest is not None:
            p = self.built.processes.get("controller", {})
            runtime.end_process(self.controller.pid, p.get("start"), group=True)
            self.controller.wait()
        if self.net is not None:
            from mininet.log import setLogLevel

            setLogLevel("error")
            try:
                if self.servers:
                    self.net.stop()  # (Cluster Edition's links and switches stop themselves)
                else:
                    self._stop_network()
            except Exception as e:  # keep tearing down; the manifest removes the rest
                self.log(f"mininet stop: {e}")
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

    def _stop_network(self) -> None:
        """Mininet's stop, reordered for size. net.stop() deletes both ends of every link
        through a node's shell (two round trips a link, and the kernel's per-device cost
        each time) and then the bridges. Here every host's shell is hung up at once: the
        kernel tears the namespaces down together, and with them the hosts' veths and so
        their router ends (a thousand in under a second, where deleting them one by one
        took twenty). Then the bridges go in one ovs-vsctl call, with no ports left to
        close, and the router-to-router veths in one `ip -batch`."""
        net = self.net

        def hang_up(nodes: list) -> None:
            nodes = [n for n in nodes if n.shell is not None]
            for n in nodes:
                if n.shell.poll() is None:
                    try:
                        os.killpg(n.shell.pid, signal.SIGHUP)
                    except ProcessLookupError:
                        pass
            for n in nodes:
                n.cleanup()  # (closes its pty and reaps the shell)

        hang_up(net.hosts)
        routers = {r.name for r in self.plan.routers}
        to_hosts = [p.intf for r in self.plan.routers for i in r.interfaces for p in i.ports
                    if p.peer not in routers]
        try:
            wait_for(lambda: not any(runtime.link_exists(i) for i in to_hosts), 20,
                     "the hosts' namespaces to go", 0.1)
        except TimeoutError:
            pass  # the manifest removes what is left
        subprocess.run(["ovs-vsctl", "--timeout=60"] + [
            x for n in sorted(routers) for x in ("--", "--if-exists", "del-br", n)],
            capture_output=True)
        hang_up(net.switches)
        left = [i for i in self.built.interfaces if runtime.link_exists(i)]
        if left:  # (one end of a pair takes the other: -force goes on past those)
            subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                           input="".join(f"link del {i}\n" for i in left))

    # ---- steps --------------------------------------------------------------------------
    def _check_names_free(self) -> None:
        if self.servers:
            return self._check_names_free_on_servers()
        bridges = runtime.ovs_bridges()
        for r in self.plan.routers:
            if r.name in bridges or runtime.link_exists(r.name):
                raise BuildError(f"an OVS bridge or interface named {r.name!r} already exists "
                                 "and infralab did not create it; remove or rename it")
        for r in self.plan.routers:
            for i in r.interfaces:
                for p in i.ports:
                    if runtime.link_exists(p.intf):
                        raise BuildError(f"interface {p.intf} already exists and infralab "
                                         "did not create it")

    def _check_names_free_on_servers(self) -> None:
        for name, srv in self.servers.items():
            there = set(srv.ssh("ovs-vsctl --timeout=5 list-br; ls /sys/class/net").stdout
                        .split())
            mine = [r for r in self.plan.routers if self.where[r.name] == name]
            taken = [r.name for r in mine if r.name in there] + [
                p.intf for r in mine for i in r.interfaces for p in i.ports if p.intf in there]
            if taken:
                raise BuildError(f"on server {name}: {', '.join(taken)} already exist(s) and "
                                 "this run did not create them; remove or rename them")

    @property
    def rundir(self) -> Path:
        assert self.manifest is not None
        return self.built.dir

    def _start_controller(self) -> None:
        plan_path = self.rundir / "plan.json"
        plan_path.write_text(self.plan.to_json())
        logf = open(self.rundir / "controller.log", "ab")  # (appended on a restart)
        self.api_port = getattr(self, "api_port", None) or _free_port()
        self.controller_ip = (head_address(list(self.servers.values())) if self.servers
                              else "127.0.0.1")  # cluster: where the servers reach us
        cmd = [sys.executable, "-m", "controllers.main", "--plan", str(plan_path),
               "--port", str(self.port), "--listen", self.controller_ip,
               "--status", str(self.status_path),
               "--api", f"127.0.0.1:{self.api_port}",
               "--nat-log", str(self.rundir / "nat.jsonl"),
               "--nat-state", str(self.rundir / "nat-state.jsonl"),
               "--settings", str(self.rundir / "controller-settings.json")]
        ctl = self.controller = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
        self.built.add_process("controller", ctl.pid, group=True)

        def listening() -> bool:
            if ctl.poll() is not None:
                raise BuildError(f"controller exited with {ctl.returncode}\n"
                                 + self.controller_log_tail())
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex((self.controller_ip, self.port)) == 0

        wait_for(listening, 30, "the controller to listen")
        self.log(f"controller up on {self.controller_ip}:{self.port} "
                 f"(pid {self.controller.pid})")

    @property
    def status_path(self) -> Path:
        return self.rundir / "controller-status.json"

    def controller_status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def api(self, path: str, method: str = "GET") -> Any:
        """The controller's HTTP/JSON API (controllers/api.py), e.g. api("/nat/rc")."""
        return api_request(f"http://127.0.0.1:{self.api_port}", path, method)

    def _build_network(self) -> None:
        from mininet.link import Link, TCIntf
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch, RemoteController

        setLogLevel("info" if self.verbose else "error")
        net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                      waitConnected=False)
        self.net = net
        from emulation.batchlinks import BatchHost, PremadeLink, make_pairs

        host_cls: Any = BatchHost  # (locally: host and link set-up in batches)
        switch_cls: Any = OVSSwitch
        link_cls: Any = Link
        plain_link_cls: Any = PremadeLink
        if self.servers:  # Mininet's Cluster Edition: nodes on servers, tunnels between
            from emulation.cluster import link_class, node_classes

            host_cls, switch_cls = node_classes(list(self.servers.values()))
            link_cls = plain_link_cls = link_class(self.tunnel)

        def on(node: str) -> dict:
            """The node's server, for the Cluster Edition's classes (nothing locally)."""
            if not self.servers:
                return {}
            s = self.servers[self.where[node]]
            # one ssh connection per server, shared by every node's session (ControlMaster):
            # a session then costs a channel, not a key exchange; the master ends on its
            # own a second after the last session
            return {"server": s.name, "serverIP": s.ip, "user": "root",
                    "controlPath": str(self.rundir / f"ssh-{s.name}")}

        step = self.progress.step("hosts", len(self.topo.hosts))
        for h in self.topo.hosts.values():
            iface = self.topo.host_interface(h.name)
            params = {"ip": str(iface) if iface else None}
            if h.mac:
                params["mac"] = h.mac
            if iface is not None:
                params["defaultRoute"] = f"via {self.topo.gateway(h.name)}"
            net.addHost(h.name, cls=host_cls, **params, **on(h.name))
            step.advance()
        step.finish()
        for r in self.plan.routers:
            # batch: ovs-vsctl runs as a subprocess; unbatched, Mininet types it into a
            # pty, whose 4096-byte line limit cut a 60-port bridge's command (no bridge)
            net.addSwitch(r.name, cls=switch_cls, datapath=self.datapath, protocols="OpenFlow13",
                          batch=True, failMode="secure", dpid=f"{r.dpid:016x}", **on(r.name))
        step = self.progress.step("links", len(self.plan.links))
        for link in self.plan.links:
            kw = {"intfName1": link.a_intf, "intfName2": link.b_intf, "port2": link.b_port}
            if link.a_port:
                kw["port1"] = link.a_port
            extra = {"intf": TCIntf, "bw": link.bw} if link.bw else {}
            if link.emulated and self.link_emulation == "delayline":
                # a -- dlyN -- b: the delay node repeats frames, late
                d = f"{DELAY_NODE_PREFIX}{len(self.delay_nodes) + 1}"
                self.delay_nodes[d] = link
                if self.where:
                    self.where[d] = self.where[link.a]
                net.addHost(d, cls=host_cls, ip=None, **on(link.a))
                first = {k: v for k, v in kw.items() if k in ("intfName1", "port1")}
                net.addLink(link.a, d, cls=link_cls, intfName2=f"{d}-eth0", **first, **extra)
                net.addLink(d, link.b, cls=link_cls, intfName1=f"{d}-eth1",
                            intfName2=link.b_intf, port2=link.b_port)
            else:
                net.addLink(link.a, link.b, cls=link_cls if extra else plain_link_cls, **kw,
                            **extra)
            step.advance()
        make_pairs([lk for lk in net.links if isinstance(lk, PremadeLink)])
        step.finish()
        class Controller(RemoteController):
            def checkListening(self) -> None:
                """Already checked (`_start_controller`). Mininet's own check pipes a
                telnet session through a UTF-8 decoder, which fails when the controller's
                binary OpenFlow HELLO arrives first: a flaky build otherwise."""

        net.addController(Controller("c0", ip=self.controller_ip, port=self.port))
        net.build()
        self.built.add_nodes(net.hosts + net.switches)
        venv_bin = os.path.dirname(sys.executable)
        self._start_delay_nodes()
        hosts = [h for h in net.hosts if h.name not in self.delay_nodes]
        with self.progress.step("host set-up", len(hosts)) as step:
            for group in _chunks(hosts, SETUP_BATCH):  # each host's shell works in parallel
                for h in group:
                    h.sendCmd(self._host_setup(h, venv_bin))
                for h in group:
                    h.waitOutput()
                    step.advance()
        # the router side of every veth: userspace OVS does not fill in checksums left
        # for offload (the kernel datapath does); one shell for all, not a process per
        # interface (on each server, by one ssh). The hosts' side stays off on both: raw
        # sockets (DHCP) and captures there must see whole checksums.
        for _bridges, intfs, run in self._places() if self.datapath == "user" else []:
            run("; ".join(f"ethtool -K {shlex.quote(i)} tx off >/dev/null 2>&1"
                          for i in intfs) or "true")
        net.start()
        # after the switches have their ports: OVS deletes a qdisc it finds on a port it
        # adds (and keeps its first look at it after that), so netem and HTB go on now
        self._shape_links()
        self._controller_backoff()
        self.log(f"built {len(self.topo.hosts)} hosts, {len(self.topo.routers)} routers"
                 + (f" ({len(self.delay_nodes)} delay node(s) on emulated links)"
                    if self.delay_nodes else ""))

    def _host_setup(self, h: Any, venv_bin: str) -> str:
        """One shell line that sets a host up: userspace OVS does not fill in checksums
        the veth left for offload; no IPv6; the shell finds `infralab` and the host's own
        files in the run dir; and, in the host's own mount namespace (mnexec -n), its
        /etc/hosts and /etc/resolv.conf are its own, so glibc, dig and ping use its LDNS."""
        hdir = self.host_dir(h.name)
        mounts = "; ".join(f"mount --bind {shlex.quote(str(hdir / f))} /etc/{f}"
                           for f in ("hosts", "resolv.conf"))
        first = f"{h.setup_line()}; " if hasattr(h, "setup_line") else ""
        return (f"{first}ethtool -K {h.defaultIntf()} tx off >/dev/null 2>&1; "
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "  # (builtins: no process)
                "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
                f"export INFRALAB_HOST_DIR={shlex.quote(str(hdir))} "
                f"INFRALAB_RUN={shlex.quote(str(self.rundir))} "
                f"INFRALAB_HOST={h.name} PATH={shlex.quote(venv_bin)}:$PATH; {mounts}")

    def _set_zone_policies(self) -> None:
        """The PAT routers' conntrack zones time connections out as their NAT config
        says (controllers.nat.conntrack.zone_timeouts), recorded before they are set."""
        from controllers.nat.conntrack import zone_timeouts

        policies = zone_timeouts(self.plan)
        if not policies:
            return
        dp = "system" if self.datapath == "kernel" else "netdev"
        self.built.ct_policies = {"dp": dp, "zones": list(policies), "created_dp": False}
        self.built.save()
        self.built.ct_policies = runtime.set_zone_policies(dp, policies, self.log)
        self.built.save()

    def _choose_kernel_paths(self) -> None:
        """Kernel datapath and netem where this kernel has them (`auto`), else userspace
        OVS and the delay line; an impossible choice fails here, before anything exists.
        Cluster runs keep userspace OVS and delay lines (the servers' kernels are not
        probed) unless the topology asks otherwise."""
        from emulation import kernel

        dp_mode, link_mode = self.topo.datapath, self.topo.link_emulation
        remote = bool(self.servers)
        try:
            if remote and dp_mode == "auto":
                self.datapath, self.datapath_why = "user", "cluster run: userspace datapath"
            else:
                self.datapath, self.datapath_why = kernel.choose_datapath(
                    dp_mode, kernel.probe("openvswitch", load=dp_mode != "user"))
            netem = (kernel.Module("sch_netem", False, "cluster run")
                     if remote and link_mode == "auto" else
                     kernel.probe("sch_netem", load=link_mode != "delayline"))
            self.link_emulation, self.link_emulation_why = kernel.choose_links(
                link_mode, netem, self.plan.links)
        except ValueError as e:
            raise BuildError(str(e)) from None
        self.log(f"datapath: {self.datapath} ({self.datapath_why})")
        self.log(f"links: {self.link_emulation} ({self.link_emulation_why})")

    def _shape_links(self) -> None:
        """netem on both ends of every emulated link (after Mininet's TCIntf made the HTB
        of a `bw` link, under which netem goes); links.json for live changes."""
        from emulation import linkemu

        def ns_pid(name: str) -> int | None:
            return None if name in self.topo.routers else self.net[name].pid

        node_of = {id(lk): d for d, lk in self.delay_nodes.items()}
        records = []
        for link in self.plan.links:
            d = node_of.get(id(link))
            mech = ("netem" if self.link_emulation == "netem" else
                    "delayline" if d else "none")
            rec = linkemu.record(link.a, link.b, link.a_intf, link.b_intf, mech,
                                 delay=link.delay, loss=link.loss, shape=link.shape,
                                 bw=link.bw, a_pid=ns_pid(link.a), b_pid=ns_pid(link.b),
                                 delay_node=d)
            records.append(rec)
            if link.bw and not self.servers:  # a router end's HTB again (as Mininet's
                for end, intf in ((link.a, link.a_intf), (link.b, link.b_intf)):  # TCReapply)
                    if end in self.topo.routers:  # (no address there to disturb)
                        i = self.net[end].intf(intf)
                        i.config(**i.params)
            if mech == "netem" and link.emulated:
                for (_pid, line), end in zip(linkemu.netem_lines(rec), (link.a, link.b),
                                             strict=True):  # (a switch's shell: root ns)
                    out = self.net[end].cmd(line + " 2>&1; echo rc=$?")
                    if "rc=0" not in out:
                        raise BuildError(f"netem on link {link.a} -- {link.b}: {out.strip()}")
                self.log(linkemu.describe(rec))
        linkemu.save(self.rundir, records)

    def set_link(self, a: str, b: str, changes: dict) -> list[str]:
        """Change what the link(s) between nodes a and b do, live (issue 17): netem on
        both ends, or the delay node's line. Returns a description of each link."""
        from emulation import linkemu

        if self.servers:
            raise BuildError("live link changes are not supported in cluster runs yet")
        return [linkemu.describe(r) for r in linkemu.set_in_run(
            self.rundir, self.built.processes, a, b, changes)]

    def _places(self) -> list[tuple[list[str], list[str], Callable[[str], str]]]:
        """Per place (this machine, or each server): the bridges and router-side
        interfaces the manifest lists there, and how to run a shell line there."""
        def here(line: str) -> str:
            return subprocess.run(["sh", "-c", line], capture_output=True, text=True).stdout

        if not self.servers:
            return [(self.built.bridges, self.built.interfaces, here)]
        return [(rec["bridges"], rec["interfaces"], partial(runtime.remote_sh, rec))
                for rec in self.built.remote.values()]

    def _controller_backoff(self) -> None:
        """Every bridge reconnects within a second when the controller is back: two
        ovs-vsctl calls for all the routers (of each server), not two per router."""
        for names, _intfs, run in self._places():
            if not names:
                continue
            got = run("ovs-vsctl --timeout=10 " + " ".join(
                f"-- get Bridge {n} controller" for n in names)).split()
            uuids = [u.strip("[]") for u in got if u.strip("[]")]
            if uuids:
                run("ovs-vsctl --timeout=10 " + " ".join(
                    f"-- set Controller {u} max_backoff=1000" for u in uuids))

    def link(self, a: str, b: str, up: bool, wait: bool = False) -> list[str]:
        """Take the link(s) between nodes a and b down or up (ROUTE-FAILOVER): between two
        routers, their router-side interfaces, delay node or not (the switches report
        the port state, the controller reroutes); between a host and its router, the
        router's end (a pulled cable: the host keeps its routes); else as Mininet's
        `link` does. With `wait`, return once the controller has rerouted and every
        switch has confirmed its new flows (a barrier: what a prompt user expects; a
        convergence measurement must not wait). Returns the interfaces changed."""
        state = "up" if up else "down"
        try:
            ends = self.plan.router_link_ends(a, b)
        except LookupError:
            host_port = self._host_port(a, b) or self._host_port(b, a)
            if host_port is None:
                self.net.configLinkStatus(a, b, state)  # raises nothing: Mininet prints
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
                view = self.api("/routing")
                down = {tuple(x) for x in view["down_links"]}
                seen = not (ours & down) if up else bool(ours & down)
                return seen and not view.get("switches_updating")

            wait_for(rerouted, 5, f"the controller seeing {a} -- {b} {state}", 0.05)
        return [intf for _r, intf, _p in ends]

    def _set_router_ends(self, ends: list[tuple[str, str]], state: str) -> None:
        """`ip link set INTF up|down` for each (router, router-side interface), where the
        router is (on its server, in a cluster run)."""
        places = self._places()
        for router, intf in ends:
            run = next(run for bridges, _intfs, run in places if router in bridges)
            run(f"ip link set {shlex.quote(intf)} {state}")

    def _host_port(self, host: str, router: str) -> tuple[str, str] | None:
        """(router, router-side interface) of host `host`'s link to `router`, if any."""
        if host not in self.topo.hosts:
            return None
        return next(((r.name, p.intf) for r in self.plan.routers if r.name == router
                     for i in r.interfaces for p in i.ports if p.peer == host), None)

    def router_links(self, router: str, up: bool, wait: bool = False) -> list[str]:
        """A router failure (or repair): every link to another router goes down (up)."""
        if router not in {r.name for r in self.plan.routers}:
            raise LookupError(f"no router {router!r}")
        peers = sorted({lk.b if lk.a == router else lk.a for lk in self.plan.links
                        if router in (lk.a, lk.b) and lk.a_port and lk.b_port})
        return [i for p in peers for i in self.link(router, p, up, wait)]

    def popen_in(self, node: Any, argv: list[str], *, log: Any, label: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
        """A long-running process in `node`'s namespaces (service, delay line, client),
        the leader of its own process group so that it and its children end together;
        recorded in the manifest as `service:<label>`. On a server, the local process is
        its ssh session and the process itself is known there by a pid file (see
        emulation.cluster)."""
        cwd = str(Path(__file__).resolve().parent.parent)
        if getattr(node, "isRemote", False):
            from emulation.cluster import remote_popen

            pidfile = str(self.rundir / "pids" / f"{label}.pid")
            p = remote_popen(node, argv, pidfile, env=env, cwd=cwd, stdout=log,
                             stderr=subprocess.STDOUT)
            self.built.add_process(f"service:{label}", p.pid, group=True,
                                   server=node.server, pidfile=pidfile)
            return p
        # `mnexec -a` only enters the host's namespaces and execs (its -d would fork
        # away from a group leader, and the PID we record would exit at once); the
        # new session makes the PID lead the service's process group.
        p = node.popen(argv, stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
                       env=dict(os.environ, **(env or {})),
                       mncmd=["mnexec", "-a", str(node.pid)])
        self.built.add_process(f"service:{label}", p.pid, group=True)
        return p

    def _start_delay_nodes(self) -> None:
        """Start the frame repeater of each delay node (before routing needs the links)."""
        for d, link in self.delay_nodes.items():
            node = self.net[d]
            a, b = f"{d}-eth0", f"{d}-eth1"
            node.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                     "net.ipv6.conf.default.disable_ipv6=1")
            for i in (a, b):  # whole frames as sent: no offload merging or splitting
                node.cmd(f"ip link set {i} promisc on; ethtool -K {i} tx off rx off gro off "
                         "gso off tso off >/dev/null 2>&1")
            label = f"{d}.delayline"
            self._spawners[label] = partial(self._spawn_delay_line, d, link, label)
            self._launch(label)  # (supervised like a service: a dead line is a dead link)
            self.log(f"{d}: {link.a} <-> {link.b} delay {link.delay or '0ms'} "
                     f"loss {link.loss or 0}%")

    def _spawn_delay_line(self, d: str, link: LinkPlan, label: str) -> subprocess.Popen:
        """A delay node's frame repeater; started again after a crash, it takes the link's
        live settings (`infralab link set`) from its settings file."""
        cmd = [sys.executable, "-m", "emulation.delayline", "--a", f"{d}-eth0", "--b",
               f"{d}-eth1", "--delay", link.delay or "0ms", "--loss", str(link.loss or 0),
               "--settings", str(self.rundir / f"{d}.json")]
        return self.popen_in(self.net[d], cmd, log=open(self.rundir / f"{d}.log", "ab"),
                             label=label)

    def _wait_routing(self) -> None:
        names = [r.name for r in self.plan.routers]
        step = self.progress.step("routers ready", len(names))

        ctl = self.controller
        assert ctl is not None

        def ready() -> bool:
            if ctl.poll() is not None:
                raise BuildError(f"controller exited with {ctl.returncode}\n"
                                 + self.controller_log_tail())
            st = self.controller_status().get("routers", {})
            done = sum(1 for n in names if st.get(n, {}).get("ready")
                       and not st[n].get("unresolved_next_hops"))
            step.update(done)
            return done == len(names)

        try:
            wait_for(ready, READY_TIMEOUT_S + 0.02 * len(self.topo.hosts),  # (big ones: more)
                     "routers to connect and resolve next hops", 0.1)
            step.finish()
        except TimeoutError as e:
            st = self.controller_status().get("routers", {})
            missing = {n: st.get(n, {}) for n in names}
            detail = "; ".join(
                f"{n}: connected={s.get('connected')} ready={s.get('ready')} "
                f"unresolved={s.get('unresolved_next_hops')}" for n, s in missing.items())
            raise BuildError(f"{e}: {detail}\n{self.controller_log_tail()}") from None
        self.log("routing ready")

    @property
    def built(self) -> runtime.Manifest:
        """The run's manifest: it exists from the first step of start() on."""
        assert self.manifest is not None, "the emulation was not started"
        return self.manifest

    def service_dir(self, label: str) -> Path:
        """Where service `host.name` runs: its log, control socket and working files."""
        return self.rundir / "services" / label

    def host_dir(self, name: str) -> Path:
        """The host's own files: resolv.conf, hosts, its DNS cache (created on first use)."""
        d = self.rundir / "hosts" / name
        if not d.exists():
            d.mkdir(parents=True)
            h = self.topo.hosts[name]
            iface = self.topo.host_interface(name)
            (d / "hosts").write_text("127.0.0.1 localhost\n"
                                     + (f"{iface.ip} {name}\n" if iface else ""))
            (d / "resolv.conf").write_text(f"nameserver {h.dns}\n" if h.dns else "")
        return d

    def _start_services(self) -> None:
        waits = []
        for h in self.topo.hosts.values():
            for svc in h.services:
                label = f"{h.name}.{svc.name}"
                self._spawners[label] = partial(self._spawn_service, h, svc, label)
                p = self._launch(label)
                waits.append((self.net[h.name], svc, p, label))
        with self.progress.step("services up", len(waits)) as step:
            for node, svc, p, label in waits:  # all start at once; then each must come up
                if svc.ready_port:
                    wait_listening(node, svc.ready_port, 30, p, f"service {label}")
                step.advance()
                self.log(f"service {label} started (pid {p.pid})")
        self._start_dhcp_clients()

    def _spawn_service(self, h, svc, label: str) -> subprocess.Popen:
        d = self.service_dir(label)
        d.mkdir(parents=True, exist_ok=True)
        iface = self.topo.host_interface(h.name)
        py = shlex.quote(sys.executable)
        cmd = svc.run.format(python=py, infralab=f"{py} -m infralab",
                             run=shlex.quote(str(d)), dir=shlex.quote(self.topo.base_dir),
                             host=h.name, ip=str(iface.ip) if iface else "")
        # An explicit /bin/sh: Mininet's shell=True reads $SHELL, unset under CI.
        env = {"INFRALAB_HOST_DIR": str(self.host_dir(h.name)), "INFRALAB_HOST": h.name,
               "PYTHONUNBUFFERED": "1"}
        return self.popen_in(self.net[h.name], ["/bin/sh", "-c", cmd],
                             log=open(d / "log", "ab"), env=env, label=label)

    def _launch(self, label: str) -> subprocess.Popen:
        p = self.services[label] = self._spawners[label]()  # (popen_in records it)
        return p

    def _spawn_dhcp_client(self, h, label: str) -> subprocess.Popen:
        d = self.service_dir(label)
        d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "infralab", "dhcp", "client", f"{h.name}-eth0",
               "--resolv-conf", "/etc/resolv.conf", "--hostname", h.name, "--retry", "1",
               "--log", str(d / "client.jsonl")]
        return self.popen_in(self.net[h.name], cmd, log=open(d / "log", "ab"), label=label)

    # ---- supervision (issue 8) -----------------------------------------------------------
    RESTARTS_PER_MINUTE = 5

    def _supervise(self) -> None:
        """A service that exits while the emulation runs is started again and the restart
        written to supervisor.jsonl; one that keeps failing is given up after
        RESTARTS_PER_MINUTE restarts in a minute (and logged as such)."""
        log = self.rundir / "supervisor.jsonl"
        while not self._stopped:
            time.sleep(0.5)
            self._supervise_controller(log)
            for label, p in list(self.services.items()):
                if label not in self._spawners or label in self._held_down or \
                        p.poll() is None:
                    continue
                with self._lock:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    recent = [t for t in self._restarts.get(label, []) if now - t < 60]
                    rec = {"time": round(time.time(), 3), "service": label,
                           "exit_status": p.returncode, "old_pid": p.pid}
                    if len(recent) >= self.RESTARTS_PER_MINUTE:
                        self._held_down.add(label)
                        rec["action"] = "given up"
                    else:
                        recent.append(now)
                        self._restarts[label] = recent
                        new = self._launch(label)
                        rec.update(action="restarted", new_pid=new.pid,
                                   restarts_last_minute=len(recent))
                    self.log(f"supervisor: {label} exited ({p.returncode}): {rec['action']}")
                    with open(log, "a") as f:
                        f.write(json.dumps(rec) + "\n")

    def _supervise_controller(self, log: Path) -> None:
        """The controller is watched like a service (issue 21): a crash is noticed
        within half a second and a new one started, at most RESTARTS_PER_MINUTE times a
        minute; the restart and how long it took go to supervisor.jsonl."""
        ctl = self.controller
        if ctl is None or ctl.poll() is None or "controller" in self._held_down:
            return
        with self._lock:
            if self._stopped or self.controller is not ctl:
                return  # torn down, or replaced meanwhile (restart_controller)
            now = time.monotonic()
            recent = [t for t in self._restarts.get("controller", []) if now - t < 60]
            rec: dict[str, Any] = {"time": round(time.time(), 3), "service": "controller",
                                   "exit_status": ctl.returncode, "old_pid": ctl.pid}
            if len(recent) >= self.RESTARTS_PER_MINUTE:
                self._held_down.add("controller")
                rec["action"] = "given up"
            else:
                recent.append(now)
                self._restarts["controller"] = recent
                try:
                    self._replace_controller()
                    rec.update(action="restarted", new_pid=self.controller.pid,
                               listening_after_s=round(time.monotonic() - now, 2),
                               restarts_last_minute=len(recent))
                except BuildError as e:
                    rec.update(action="restart failed", error=str(e)[:300])
            self.log(f"supervisor: the controller exited ({ctl.returncode}): {rec['action']}")
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def _start_dhcp_clients(self) -> None:
        """Hosts without a static address run infralab's DHCP client (DHCP-CLIENT) once
        every service (the DHCP server among them) is up; `up` returns when all are bound."""
        hosts = [h for h in self.topo.hosts.values() if h.dhcp and h.dhcp_client]
        for h in hosts:
            label = f"{h.name}.dhcp-client"
            self._spawners[label] = partial(self._spawn_dhcp_client, h, label)
            self._launch(label)
        if hosts:
            with self.progress.step("DHCP clients bound", len(hosts)) as step:
                def bound() -> bool:
                    done = sum(1 for h in hosts if self.ip(h.name))
                    step.update(done)
                    return done == len(hosts)

                wait_for(bound, 30, "DHCP clients to get their leases")
            self.log(f"{len(hosts)} DHCP client(s) bound: " + ", ".join(
                f"{h.name} {self.ip(h.name)}" for h in hosts))

    # ---- helpers for tests and the CLI ---------------------------------------------------
    def controller_log_tail(self, chars: int = 3000) -> str:
        try:
            text = (self.rundir / "controller.log").read_text(errors="replace")
        except OSError:
            return ""
        return "controller log (tail):\n" + text[-chars:]

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


def wait_listening(node, port: int, timeout: float = 10, proc: subprocess.Popen | None = None,
                   what: str = "a server") -> None:
    """Poll until something on `node` listens on TCP/UDP `port`; fail early if `proc`,
    the process meant to listen, has exited."""
    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            raise BuildError(f"{what} exited with {proc.returncode} before it was ready")
        return bool(node.cmd(f"ss -Hltnu 'sport = :{port}'").strip())

    wait_for(listening, timeout, f"{what} to listen on port {port}", 0.1)

def raise_interrupt(*_args) -> None:
    """Signal handler: turn SIGTERM/SIGHUP into the Ctrl-C path, so teardown runs."""
    raise KeyboardInterrupt
