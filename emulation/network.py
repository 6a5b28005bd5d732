"""The emulated network itself: Mininet hosts, OVS bridges as routers, links (with a delay
node in the middle of an emulated link where there is no netem), each host's set-up, and
the teardown reordered for size. Which OVS datapath and link emulation a run uses is
chosen here, before anything exists."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from emulation import runtime
from emulation.errors import BuildError
from emulation.polling import wait_for
from topologies.model import DELAY_NODE_PREFIX
from topologies.plan import LinkPlan

if TYPE_CHECKING:
    from emulation.build import Emulation

SETUP_BATCH = 64  # hosts set up at once (each its own shell; bounded, for small machines)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Network:
    """Builds and stops the run's Mininet network; owns its datapath and link choices."""

    def __init__(self, emu: Emulation) -> None:
        self.emu = emu
        self.net: Any = None  # the Mininet object (Mininet has no type hints)
        self.delay_nodes: dict[str, LinkPlan] = {}  # delay node name -> the link it delays
        # OVS's datapath ("kernel" | "user") and how links are emulated
        # ("netem" | "delayline"), each with why (`infralab up` prints both)
        self.datapath, self.datapath_why = "user", ""
        self.link_emulation, self.link_emulation_why = "delayline", ""

    # ---- before anything exists --------------------------------------------------------
    def check_names_free(self) -> None:
        emu = self.emu
        if emu.servers:
            return self._check_names_free_on_servers()
        bridges = runtime.ovs_bridges()
        for r in emu.plan.routers:
            name = emu.plan.bridge(r.name)
            if name in bridges or runtime.link_exists(name):
                raise BuildError(f"an OVS bridge or interface named {name!r} already exists "
                                 "and infralab did not create it; remove or rename it")
        for r in emu.plan.routers:
            for i in r.interfaces:
                for p in i.ports:
                    if runtime.link_exists(p.intf):
                        raise BuildError(f"interface {p.intf} already exists and infralab "
                                         "did not create it")

    def _check_names_free_on_servers(self) -> None:
        emu = self.emu
        for name, srv in emu.servers.items():
            there = set(srv.ssh("ovs-vsctl --timeout=5 list-br; ls /sys/class/net").stdout
                        .split())
            mine = [r for r in emu.plan.routers if emu.where[r.name] == name]
            taken = [emu.plan.bridge(r.name) for r in mine
                     if emu.plan.bridge(r.name) in there] + [
                p.intf for r in mine for i in r.interfaces for p in i.ports if p.intf in there]
            if taken:
                raise BuildError(f"on server {name}: {', '.join(taken)} already exist(s) and "
                                 "this run did not create them; remove or rename them")

    def choose_kernel_paths(self) -> None:
        """Kernel datapath and netem where this kernel has them (`auto`), else userspace
        OVS and the delay line; an impossible choice fails here, before anything exists.
        Cluster runs keep userspace OVS and delay lines (the servers' kernels are not
        probed) unless the topology asks otherwise."""
        from emulation import kernel

        emu = self.emu
        dp_mode, link_mode = emu.topo.datapath, emu.topo.link_emulation
        remote = bool(emu.servers)
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
                link_mode, netem, emu.plan.links)
        except ValueError as e:
            raise BuildError(str(e)) from None
        emu.log(f"datapath: {self.datapath} ({self.datapath_why})")
        emu.log(f"links: {self.link_emulation} ({self.link_emulation_why})")

    def set_zone_policies(self) -> None:
        """The PAT routers' conntrack zones time connections out as their NAT config
        says (controllers.nat.conntrack.zone_timeouts), recorded before they are set."""
        from controllers.nat.conntrack import zone_timeouts

        built = self.emu.built
        policies = zone_timeouts(self.emu.plan)
        if not policies:
            return
        dp = "system" if self.datapath == "kernel" else "netdev"
        built.ct_policies = {"dp": dp, "zones": list(policies), "created_dp": False}
        built.save()
        built.ct_policies = runtime.set_zone_policies(dp, policies, self.emu.log)
        built.save()

    # ---- building ----------------------------------------------------------------------
    def build(self) -> None:
        from mininet.link import Link, TCIntf
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch, RemoteController

        emu = self.emu
        setLogLevel("info" if emu.verbose else "error")
        net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                      waitConnected=False)
        self.net = net
        from emulation.batchlinks import BatchHost, PremadeLink, make_pairs

        host_cls: Any = BatchHost  # (locally: host and link set-up in batches)
        switch_cls: Any = OVSSwitch
        link_cls: Any = Link
        plain_link_cls: Any = PremadeLink
        if emu.servers:  # Mininet's Cluster Edition: nodes on servers, tunnels between
            from emulation.cluster import link_class, node_classes

            host_cls, switch_cls = node_classes(list(emu.servers.values()))
            link_cls = plain_link_cls = link_class(emu.tunnel)

        def on(node: str) -> dict:
            """The node's server, for the Cluster Edition's classes (nothing locally)."""
            if not emu.servers:
                return {}
            s = emu.servers[emu.where[node]]
            # one ssh connection per server, shared by every node's session (ControlMaster):
            # a session then costs a channel, not a key exchange; the master ends on its
            # own a second after the last session
            return {"server": s.name, "serverIP": s.ip, "user": "root",
                    "controlPath": str(emu.rundir / f"ssh-{s.name}")}

        topo = emu.topo
        step = emu.progress.step("hosts", len(topo.hosts))
        for h in topo.hosts.values():
            iface = topo.host_interface(h.name)
            params = {"ip": str(iface) if iface else None}
            if h.mac:
                params["mac"] = h.mac
            if iface is not None:
                params["defaultRoute"] = f"via {topo.gateway(h.name)}"
            net.addHost(h.name, cls=host_cls, **params, **on(h.name))
            step.advance()
        step.finish()
        for r in emu.plan.routers:
            # batch: ovs-vsctl runs as a subprocess; unbatched, Mininet types it into a
            # pty, whose 4096-byte line limit cut a 60-port bridge's command (no bridge)
            # (the switch is named as its bridge: the run's prefix, then the router)
            net.addSwitch(emu.plan.bridge(r.name), cls=switch_cls, datapath=self.datapath,
                          protocols="OpenFlow13", batch=True, failMode="secure",
                          dpid=f"{r.dpid:016x}", **on(r.name))
        step = emu.progress.step("links", len(emu.plan.links))
        def node(name: str) -> str:  # a router's Mininet node is its bridge
            return emu.plan.bridge(name) if name in topo.routers else name

        for link in emu.plan.links:
            a, b = node(link.a), node(link.b)
            kw = {"intfName1": link.a_intf, "intfName2": link.b_intf, "port2": link.b_port}
            if link.a_port:
                kw["port1"] = link.a_port
            extra = {"intf": TCIntf, "bw": link.bw} if link.bw else {}
            if link.emulated and self.link_emulation == "delayline":
                # a -- dlyN -- b: the delay node repeats frames, late
                d = f"{DELAY_NODE_PREFIX}{len(self.delay_nodes) + 1}"
                self.delay_nodes[d] = link
                if emu.where:
                    emu.where[d] = emu.where[link.a]
                net.addHost(d, cls=host_cls, ip=None, **on(link.a))
                first = {k: v for k, v in kw.items() if k in ("intfName1", "port1")}
                net.addLink(a, d, cls=link_cls, intfName2=f"{d}-eth0", **first, **extra)
                net.addLink(d, b, cls=link_cls, intfName1=f"{d}-eth1",
                            intfName2=link.b_intf, port2=link.b_port)
            else:
                net.addLink(a, b, cls=link_cls if extra else plain_link_cls, **kw, **extra)
            step.advance()
        make_pairs([lk for lk in net.links if isinstance(lk, PremadeLink)])
        step.finish()

        class Controller(RemoteController):
            def checkListening(self) -> None:
                """Already checked (ControllerProcess.start). Mininet's own check pipes a
                telnet session through a UTF-8 decoder, which fails when the controller's
                binary OpenFlow HELLO arrives first: a flaky build otherwise."""

        net.addController(Controller("c0", ip=emu.ctl.ip, port=emu.ctl.port))
        net.build()
        for r in emu.plan.routers:  # users and tests name routers as the topology does
            net.nameToNode.setdefault(r.name, net.nameToNode[emu.plan.bridge(r.name)])
        emu.built.add_nodes(net.hosts + net.switches)
        venv_bin = os.path.dirname(sys.executable)
        self._start_delay_nodes()
        hosts = [h for h in net.hosts if h.name not in self.delay_nodes]
        with emu.progress.step("host set-up", len(hosts)) as step:
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
        for _bridges, intfs, run in emu.links.places() if self.datapath == "user" else []:
            run("; ".join(f"ethtool -K {shlex.quote(i)} tx off >/dev/null 2>&1"
                          for i in intfs) or "true")
        net.start()
        # after the switches have their ports: OVS deletes a qdisc it finds on a port it
        # adds (and keeps its first look at it after that), so netem and HTB go on now
        emu.links.shape()
        emu.ctl.short_backoff()
        emu.log(f"built {len(topo.hosts)} hosts, {len(topo.routers)} routers"
                + (f" ({len(self.delay_nodes)} delay node(s) on emulated links)"
                   if self.delay_nodes else ""))

    def _host_setup(self, h: Any, venv_bin: str) -> str:
        """One shell line that sets a host up: userspace OVS does not fill in checksums
        the veth left for offload; no IPv6; the shell finds `infralab` and the host's own
        files in the run dir; and, in the host's own mount namespace (mnexec -n), its
        /etc/hosts and /etc/resolv.conf are its own, so glibc, dig and ping use its LDNS."""
        emu = self.emu
        hdir = emu.host_dir(h.name)
        mounts = "; ".join(f"mount --bind {shlex.quote(str(hdir / f))} /etc/{f}"
                           for f in ("hosts", "resolv.conf"))
        first = f"{h.setup_line()}; " if hasattr(h, "setup_line") else ""
        return (f"{first}ethtool -K {h.defaultIntf()} tx off >/dev/null 2>&1; "
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "  # (builtins: no process)
                "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
                f"export INFRALAB_HOST_DIR={shlex.quote(str(hdir))} "
                f"INFRALAB_RUN={shlex.quote(str(emu.rundir))} "
                f"INFRALAB_HOST={h.name} PATH={shlex.quote(venv_bin)}:$PATH; {mounts}")

    def _start_delay_nodes(self) -> None:
        """Start the frame repeater of each delay node (before routing needs the links)."""
        emu = self.emu
        for d, link in self.delay_nodes.items():
            node = self.net[d]
            a, b = f"{d}-eth0", f"{d}-eth1"
            node.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                     "net.ipv6.conf.default.disable_ipv6=1")
            for i in (a, b):  # whole frames as sent: no offload merging or splitting
                node.cmd(f"ip link set {i} promisc on; ethtool -K {i} tx off rx off gro off "
                         "gso off tso off >/dev/null 2>&1")
            label = f"{d}.delayline"
            # (supervised like a service: a dead line is a dead link)
            emu.supervisor.add(label, partial(self._spawn_delay_line, d, link, label))
            emu.log(f"{d}: {link.a} <-> {link.b} delay {link.delay or '0ms'} "
                    f"loss {link.loss or 0}%")

    def _spawn_delay_line(self, d: str, link: LinkPlan, label: str) -> subprocess.Popen:
        """A delay node's frame repeater; started again after a crash, it takes the link's
        live settings (`infralab link set`) from its settings file."""
        rundir = self.emu.rundir
        cmd = [sys.executable, "-m", "emulation.delayline", "--a", f"{d}-eth0", "--b",
               f"{d}-eth1", "--delay", link.delay or "0ms", "--loss", str(link.loss or 0),
               "--settings", str(rundir / f"{d}.json")]
        return self.emu.supervisor.popen_in(self.net[d], cmd,
                                            log=open(rundir / f"{d}.log", "ab"), label=label)

    # ---- stopping ----------------------------------------------------------------------
    def stop(self) -> None:
        """Mininet's stop (a cluster run), or the local one reordered for size."""
        if self.net is None:
            return
        from mininet.log import setLogLevel

        setLogLevel("error")
        try:
            if self.emu.servers:
                self.net.stop()  # (Cluster Edition's links and switches stop themselves)
            else:
                self._stop_local()
        except Exception as e:  # keep tearing down; the manifest removes the rest
            self.emu.log(f"mininet stop: {e}")

    def _stop_local(self) -> None:
        """Mininet's stop, reordered for size. net.stop() deletes both ends of every link
        through a node's shell (two round trips a link, and the kernel's per-device cost
        each time) and then the bridges. Here every host's shell is hung up at once: the
        kernel tears the namespaces down together, and with them the hosts' veths and so
        their router ends (a thousand in under a second, where deleting them one by one
        took twenty). Then the bridges go in one ovs-vsctl call, with no ports left to
        close, and the router-to-router veths in one `ip -batch`."""
        net, plan = self.net, self.emu.plan

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

        namespaces = {ns for h in net.hosts if h.shell is not None
                      and (ns := runtime.netns_of(h.pid)) is not None}
        hang_up(net.hosts)
        # what else runs in our hosts' namespaces (started in a host by a user or a test:
        # `h2 iperf3 -s &`) would keep a namespace, and its veth, alive: it ends here
        runtime.end_processes([(pid, start, False) for pid, start in
                               runtime.processes_in(namespaces)], grace=1.0)
        routers = {r.name for r in plan.routers}
        to_hosts = [p.intf for r in plan.routers for i in r.interfaces for p in i.ports
                    if p.peer not in routers]
        try:
            wait_for(lambda: not any(runtime.link_exists(i) for i in to_hosts), 20,
                     "the hosts' namespaces to go", 0.1)
        except TimeoutError:
            pass  # the manifest removes what is left
        subprocess.run(["ovs-vsctl", "--timeout=60"] + [
            x for n in sorted(routers) for x in ("--", "--if-exists", "del-br", plan.bridge(n))],
            capture_output=True)
        hang_up(net.switches)
        left = [i for i in self.emu.built.interfaces if runtime.link_exists(i)]
        if left:  # (one end of a pair takes the other: -force goes on past those)
            subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                           input="".join(f"link del {i}\n" for i in left))
