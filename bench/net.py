"""Shared pieces of the benchmarks: the one-router topology, the Linux-router peer built
with plain Mininet (cleaned by a manifest), iperf3 and the connection-rate load."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emulation import runtime
from emulation.build import wait_for, wait_listening
from topologies.model import Topology

HERE = Path(__file__).resolve().parent
HERE_TCPCONN = HERE / "tcpconn.py"


class BenchError(RuntimeError):
    """A measurement that went wrong (errors, no answer): the run stops, loudly."""


def one_router(hosts_per_subnet: int = 1) -> Topology:
    t = Topology("bench")
    t.interface("br1", "left", "10.0.1.1/24")
    t.interface("br1", "right", "10.0.2.1/24")
    for i in range(hosts_per_subnet):
        t.host(f"bl{i}", "left", f"10.0.1.{10 + i}")
        t.host(f"bh{i}", "right", f"10.0.2.{10 + i}")
    return t.validate()


@contextlib.contextmanager
def linux_router_net(with_switches: bool) -> Iterator[Any]:
    """Plain Mininet: bl0 -[ps1]- plr (Linux router) -[ps2]- bh0, cleaned by manifest."""
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import Host, OVSSwitch

    setLogLevel("error")
    m = runtime.Manifest.create("bench-peer")
    intfs = ["plr-eth1", "plr-eth2"]
    if with_switches:
        m.bridges = ["ps1", "ps2"]
        intfs += ["ps1-eth1", "ps1-eth2", "ps2-eth1", "ps2-eth2"]
    m.interfaces = intfs
    m.save()
    net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
    try:
        h1 = net.addHost("bl0", ip="10.0.1.10/24", defaultRoute="via 10.0.1.1")
        h2 = net.addHost("bh0", ip="10.0.2.10/24", defaultRoute="via 10.0.2.1")
        r = net.addHost("plr", cls=Host, ip=None)
        if with_switches:
            s1 = net.addSwitch("ps1", cls=OVSSwitch, datapath="user", failMode="standalone",
                               dpid="00000000000000f1")
            s2 = net.addSwitch("ps2", cls=OVSSwitch, datapath="user", failMode="standalone",
                               dpid="00000000000000f2")
            net.addLink(h1, s1, intfName2="ps1-eth1")
            net.addLink(r, s1, intfName1="plr-eth1", intfName2="ps1-eth2")
            net.addLink(h2, s2, intfName2="ps2-eth1")
            net.addLink(r, s2, intfName1="plr-eth2", intfName2="ps2-eth2")
        else:
            net.addLink(h1, r, intfName2="plr-eth1")
            net.addLink(h2, r, intfName2="plr-eth2")
        net.build()
        m.add_nodes(net.hosts + net.switches)
        r.cmd("ip addr add 10.0.1.1/24 dev plr-eth1; ip addr add 10.0.2.1/24 dev plr-eth2;"
              "ip link set plr-eth1 up; ip link set plr-eth2 up; sysctl -qw net.ipv4.ip_forward=1")
        for h in (h1, h2, r):
            for intf in h.intfNames():
                h.cmd(f"ethtool -K {intf} tx off >/dev/null 2>&1")
        net.start()
        wait_for(lambda: "1 received" in h1.cmd("ping -c1 -w2 10.0.2.10"), 30, "peer routing")
        yield net
    finally:
        net.stop()
        m.remove_all()


def iperf(client, server, server_ip: str, seconds: int) -> float:
    """Gbit/s of one TCP stream, client -> server."""
    srv = server.popen(["iperf3", "-s", "-1", "-B", server_ip])
    try:
        wait_listening(server, 5201, proc=srv, what="iperf3 server")
        out = client.cmd(f"iperf3 -J -c {server_ip} -t {seconds}")
        doc = json.loads(out[out.index("{"):])
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        srv.terminate()
        srv.wait()


def conn_rate(client, server, server_ip: str, seconds: int, workers: int = 64,
              errors: list[int] | None = None) -> float:
    """Completed connections per second; each failed connection is appended to `errors`
    (its count for this run), and without an `errors` list any failure raises."""
    srv = server.popen([sys.executable, str(HERE_TCPCONN), "server", "7000"])
    try:
        wait_listening(server, 7000, proc=srv, what="connection server")
        out = client.cmd(f"{sys.executable} {HERE_TCPCONN} client {server_ip} 7000 "
                         f"{seconds} {workers}")
        doc = json.loads(out[out.index("{"):])
        if errors is not None:
            errors.append(doc["errors"])
        elif doc["errors"]:  # a failed connection is a bug or a drop: never a silent figure
            raise BenchError(f"connection rate {client.name} -> {server_ip}: {doc['errors']} "
                             f"of {doc['connections'] + doc['errors']} connections failed")
        return doc["connections"] / doc["seconds"]
    finally:
        srv.terminate()
        srv.wait()


def plain_mininet(subnets: int, hosts: int, probe: Callable[[], float] | None = None) -> dict:
    """Start+stop of plain Mininet: `subnets` standalone OVS switches (userspace), each
    with `hosts` hosts, no controller: the peer of the start-up benchmarks."""
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    setLogLevel("error")
    m = runtime.Manifest.create("bench-plain")
    m.bridges = [f"ps{s}" for s in range(subnets)]
    m.interfaces = [f"ps{s}-eth{h + 1}" for s in range(subnets) for h in range(hosts)]
    m.save()
    t0 = time.monotonic()
    net = Mininet(topo=None, build=False, controller=None)
    try:
        for s in range(subnets):
            sw = net.addSwitch(f"ps{s}", cls=OVSSwitch, datapath="user", failMode="standalone",
                               dpid=f"{0xf000 + s:016x}")
            for h in range(hosts):
                net.addLink(net.addHost(f"p{s}x{h}"), sw, intfName2=f"ps{s}-eth{h + 1}")
        net.build()
        m.add_nodes(net.hosts + net.switches)
        net.start()
        t1 = time.monotonic()
        measured = probe() if probe is not None else None
    finally:
        net.stop()
        t2 = time.monotonic()
        m.remove_all()
    return {"start_s": t1 - t0, "stop_s": t2 - t1,
            **({"probe": measured} if measured is not None else {})}
