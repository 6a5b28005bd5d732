"""Mininet's Cluster Edition (mininet/examples/cluster.py), as infralab uses it.

Nodes on another server are Cluster Edition's `RemoteHost` / `RemoteOVSSwitch`: their shells
are ssh sessions (`ssh -tt root@server sudo -E mnexec …`), so everything Mininet does with a
node — `cmd`, interfaces, `ovs-vsctl` — happens on that server. What is added here:

- our ssh options (key, no host-key prompts) on every ssh Cluster Edition runs;
- switch start-up through one ssh command per server, not typed into the shell's pty (its
  4096-byte line limit cuts a large batch, as it did locally);
- `RemoteVXLANLink`: Cluster Edition's GRE link, with VXLAN as the tunnel. Kernels without
  `ip_gre` (this one) have VXLAN; GRE and ssh tunnels remain choosable (`--tunnel`).
  A tunnel carries whole 1500-byte frames only when the management network's MTU leaves
  room for the 50-byte header (simulated servers: 9000; real ones: see README).
- `remote_popen`: a process in a remote node's namespaces, leading its own process group,
  its PID and start time in a pid file on the server, where teardown ends it.
"""

from __future__ import annotations

import shlex
from subprocess import PIPE, Popen
from typing import Any

from mininet.examples.cluster import (
    RemoteGRELink,
    RemoteHost,
    RemoteLink,
    RemoteOVSSwitch,
    RemoteSSHLink,
)
from mininet.link import Link
from mininet.node import Node, OVSSwitch

from emulation.runtime import pidfile_line
from emulation.servers import Server

VXLAN_PORT = 4789


def node_classes(servers: list[Server]) -> tuple[type, type]:
    """Host and switch classes whose ssh uses the servers' options (the same for all)."""
    sshbase = ["ssh", "-q", *servers[0].ssh_options, "-o", "ForwardAgent=no", "-tt"]

    class ClusterHost(RemoteHost):
        def popen(self, *args: Any, **kwargs: Any) -> Popen:
            """Mininet's `popen([argv])`, with each argument quoted for the remote shell
            (Cluster Edition passes them to ssh as they are: `python -c CODE` broke)."""
            if len(args) == 1 and isinstance(args[0], list):
                args = ([shlex.quote(a) for a in args[0]],)
            # Ended with its ssh session: a terminal (-tt) whose hang-up reaches it, as it
            # stays in the session (mnexec -a, not Mininet's default -da, which detaches).
            # Cluster Edition's own popen outlived a kill: the demo's HTTP server lingered.
            kwargs.setdefault("mncmd", ["mnexec", "-a", str(self.pid)])
            # and its own ssh connection: through the shared one, the local end of the
            # pipes would be held by the connection's master after the kill
            shared: list[str] = self.sshcmd  # type: ignore[has-type]  # (RemoteMixin)
            self.sshcmd = _unshared(shared)
            try:
                return Node.popen(self, *args, tt=True, **kwargs)
            finally:
                self.sshcmd = shared

    class ClusterSwitch(RemoteOVSSwitch):
        @classmethod
        def batchStartup(cls, switches, **_kw):  # noqa: N802 (Mininet's name)
            by_server: dict[str, list] = {}
            for s in switches:
                by_server.setdefault(s.server, []).append(s)
            for group in by_server.values():
                def run(line: str, _group: list = group, **_kw: Any) -> str:
                    return _group[0].rcmd(line)  # (a remote shell line: no shell=True)

                OVSSwitch.batchStartup(group, run=run)
            return switches

    ClusterHost.sshbase = sshbase
    ClusterSwitch.sshbase = sshbase
    return ClusterHost, ClusterSwitch


def _unshared(sshcmd: list[str]) -> list[str]:
    """An ssh command line without its ControlMaster/ControlPath options."""
    out: list[str] = []
    for arg in sshcmd:
        if arg.startswith("Control") and out and out[-1] == "-o":
            out.pop()
        else:
            out.append(arg)
    return out


class RemoteVXLANLink(RemoteGRELink):
    """A link whose ends may be on different servers: a veth pair on one server, a VXLAN
    tunnel (one VNI per link) between two."""

    VNI = 0

    def makeIntfPair(self, intfname1, intfname2, addr1=None, addr2=None,  # noqa: N802
                     node1=None, node2=None, deleteIntfs=True):  # noqa: N803
        node1 = self.node1 if node1 is None else node1
        node2 = self.node2 if node2 is None else node2
        if node1.server == node2.server:  # (unlike the GRE link: no MTU lowered to 1450)
            return Link.makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2,
                                     deleteIntfs=deleteIntfs)
        self.makeTunnel(node1, node2, intfname1, intfname2, addr1, addr2)
        self.tunnel = 1
        return None

    def makeTunnel(self, node1, node2, intfname1, intfname2,  # noqa: N802
                   addr1=None, addr2=None):
        cls = type(self)
        cls.VNI += 1
        for node, intf, addr, local, remote in (
                (node1, intfname1, addr1, node1.serverIP, node2.serverIP),
                (node2, intfname2, addr2, node2.serverIP, node1.serverIP)):
            out = node.rcmd(
                f"ip link add name {intf} type vxlan id {cls.VNI} local {local} "
                f"remote {remote} dstport {VXLAN_PORT}"
                + (f" && ip link set {intf} address {addr}" if addr else "")
                + f" && ip link set {intf} up")
            if out.strip():
                raise RuntimeError(f"VXLAN tunnel {intf} on {node.server}: {out.strip()}")
            if not self.moveIntf(intf, node):
                raise RuntimeError(f"VXLAN tunnel {intf}: cannot move it to {node}")
        return None


class RemoteSSHTunnelLink(RemoteSSHLink):
    """Cluster Edition's ssh tunnel (`ssh -w`, a tap device at each end, frames carried in
    the ssh session), with infralab's ssh options on the server-to-server ssh as well."""

    def makeTunnel(self, node1, node2, intfname1, intfname2,  # noqa: N802
                   addr1=None, addr2=None):
        for node in (node1, node2):
            out = node.rcmd("ip tuntap add dev tap9 mode tap")
            if out.strip():
                raise RuntimeError(f"ssh tunnel on {node.server}: {out.strip()}")
        opts = " ".join(shlex.quote(o) for o in node1.sshbase[2:] if o != "-tt")
        cmd = (f"ssh -n {opts} -o Tunnel=ethernet -o ServerAliveInterval=5 -w 9:9 "
               f"root@{node2.serverIP} echo @").split()
        tunnel = node1.rpopen(cmd, sudo=False)
        ch = tunnel.stdout.read(1).decode()
        if ch != "@":
            raise RuntimeError(f"ssh tunnel {node1.server} -> {node2.server} failed: "
                               f"{ch + tunnel.stdout.read().decode()}")
        for node, intf, addr in ((node1, intfname1, addr1), (node2, intfname2, addr2)):
            if not self.moveIntf("tap9", node):
                raise RuntimeError(f"ssh tunnel: cannot move tap9 to {node}")
            out = node.cmd(f"ip link set tap9 name {intf}"
                           + (f" address {addr}" if addr else "") + f" && ip link set {intf} up")
            if out.strip():
                raise RuntimeError(f"ssh tunnel: renaming tap9 to {intf}: {out.strip()}")
        return tunnel


def link_class(tunnel: str) -> type[RemoteLink]:
    return {"vxlan": RemoteVXLANLink, "gre": RemoteGRELink,
            "ssh": RemoteSSHTunnelLink}[tunnel]


def remote_popen(node: Any, argv: list[str], pidfile: str, env: dict[str, str] | None = None,
                 cwd: str | None = None, **popen_kw: Any) -> Popen:
    """Run argv in `node`'s namespaces on its server, as the leader of its own session and
    process group, which writes "PID START" to `pidfile` there: teardown ends it by that
    (the local Popen is the ssh session, and it ends when the process does; a process that
    ends on a hang-up is not assumed — a DNS server reloads on SIGHUP). ssh joins its
    arguments into one remote shell line, so every argument is quoted here."""
    inner = " ".join(shlex.quote(a) for a in argv)
    pf = shlex.quote(pidfile)
    script = (f'mkdir -p "$(dirname {pf})"; {pidfile_line(pidfile)}; '
              + (f"cd {shlex.quote(cwd)} && " if cwd else "") + f"exec {inner}")
    prefix = ["env"] + [f"{k}={v}" for k, v in (env or {}).items()]
    cmd = ["mnexec", "-a", str(node.pid), *prefix, "setsid", "-w", "/bin/sh", "-c", script]
    popen_kw.setdefault("stdin", PIPE)
    return node._popen([shlex.quote(c) for c in cmd], sudo=True, tt=False, **popen_kw)
