"""Mininet node and link classes that let the builder do per-host and per-link set-up in
batches: Mininet makes each veth pair, brings each end up and gives each host its
address, MAC, route and loopback with one shell round trip after another — about seven per
host, so a thousand hosts wait seconds on that alone.

- `PremadeLink` / `PremadeIntf`: the Link and Intf objects Mininet needs (ports, names, the
  CLI's view), while the veth pairs themselves are made by `make_pairs`, one `ip -batch`
  for all links, ends created straight in their namespaces.
- `BatchHost`: its configuration is recorded (the CLI still knows its address) and applied
  by `setup_line`, which the builder runs in every host's shell at once.
"""

from __future__ import annotations

import subprocess
from typing import Any

from mininet.link import Intf, Link
from mininet.node import Host


def _note(intf: Any, mac: str | None, ip: str | None) -> None:
    """Tell Mininet's interface object its MAC and address ("10.0.1.10/24") without a
    command: what MAC() and IP() — and so the CLI's `h1 ping h2` — answer."""
    if mac:
        intf.mac = mac
    if ip:
        addr, _, plen = ip.partition("/")
        intf.ip, intf.prefixLen = addr, int(plen or 8)


class PremadeIntf(Intf):
    """An interface whose veth already exists: no command to configure it."""

    def config(self, mac: str | None = None, ip: str | None = None, **_params: Any) -> dict:
        _note(self, mac, ip)
        return {}


class PremadeLink(Link):
    """A link whose veth pair `make_pairs` creates, with all the others, in one process."""

    def __init__(self, node1: Any, node2: Any, **kwargs: Any) -> None:
        kwargs["intf"] = PremadeIntf  # (Mininet.addLink always passes its default)
        super().__init__(node1, node2, **kwargs)

    @classmethod
    def makeIntfPair(cls, *_args: Any, **_kwargs: Any) -> None:  # noqa: N802 (Mininet's)
        return None


def make_pairs(links: list[Any]) -> None:
    """Create the veth pairs of `links` (PremadeLinks) in one `ip -batch`: each end in its
    node's network namespace; the ends in this one (switch ports) are brought up here,
    those in hosts by the host's set-up line."""
    lines, ups = [], []
    for link in links:
        ends = []
        for intf in (link.intf1, link.intf2):  # (the MACs Mininet chose: MAC() tells them)
            mac = f" address {intf.mac}" if intf.mac else ""
            if intf.node.inNamespace:
                ends.append(f"name {intf.name}{mac} netns {intf.node.pid}")
            else:
                ends.append(f"name {intf.name}{mac}")
                ups.append(f"link set {intf.name} up")
        lines.append(f"link add {ends[0]} type veth peer {ends[1]}")
    if not lines:
        return
    r = subprocess.run(["ip", "-batch", "-"], input="\n".join(lines + ups) + "\n",
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"making {len(lines)} veth pairs: {r.stderr.strip()}")


class BatchHost(Host):
    """A host whose address, MAC, default route and loopback are set by `setup_line`."""

    def config(self, mac: str | None = None, ip: str | None = None,
               defaultRoute: str | None = None, lo: str = "up",  # noqa: N803 (Mininet's)
               **_params: Any) -> dict:
        self.wanted = {"mac": mac, "ip": ip, "route": defaultRoute}
        intf = self.defaultIntf()
        if intf is not None:
            _note(intf, mac, ip)
        return {}

    def setup_line(self) -> str:
        """Shell commands that do what Mininet's host configuration would, in one line."""
        w = getattr(self, "wanted", {})
        cmds = ["link set lo up"]
        intf = self.defaultIntf()
        for i in self.intfList():
            if i.name != "lo" and isinstance(i, PremadeIntf):
                cmds.append(f"link set {i.name} up")
        if intf is not None:
            if w.get("mac"):
                cmds.append(f"link set {intf.name} address {w['mac']}")
            if w.get("ip"):
                cmds.append(f"addr add {w['ip']} dev {intf.name}")
            if w.get("route"):
                cmds.append(f"route add default {w['route']}")
        return "ip -batch - <<< $'" + "\\n".join(cmds) + "'"  # (one process: bash's here-string)
