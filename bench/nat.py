"""NAT benchmarks (NAT-PAT) against real peers in the same run, on the same layout:
one client 10.0.1.10, one server 10.0.2.10, one NAT router between them.

    bulk TCP throughput    infralab PAT  vs  infralab without NAT (same path)
                                         and the kernel's ceiling (MASQUERADE, no OVS)
    new TCP connections/s  infralab PAT  vs  Linux router with iptables MASQUERADE
                                         vs  one OVS bridge doing conntrack NAT (ct(nat))
                                         and the same ceiling
    flow set-up latency    connect() time of fresh connections (each a new binding):
                           p50/p99 for each of the above

The PAT address is the router's own outside address (10.0.2.1), as on a home router, so
no peer needs extra routes. Every measurement is bounded in time; every process is ended
by its PID and every bridge/interface by the run's manifest.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from bench import stats
from bench.net import (
    HERE_TCPCONN,
    conn_rate,
    iperf,
    linux_router_net,
    one_router,
)
from bench.stats import header, row, show, summary
from emulation import runtime
from emulation.build import Emulation, wait_for, wait_listening

SERVER = "10.0.2.10"


def pat_router(conntrack: bool = False):
    t = one_router()
    t.nat("br1", {"right": {"pat": "10.0.2.1", "conntrack": conntrack}})
    return t


def latency(client, server, count: int = 300) -> dict:
    srv = server.popen([sys.executable, str(HERE_TCPCONN), "server", "7000"])
    try:
        wait_listening(server, 7000, proc=srv, what="connection server")
        out = client.cmd(f"{sys.executable} {HERE_TCPCONN} latency {SERVER} 7000 {count}")
        return json.loads(out[out.index("{"):])
    finally:
        srv.terminate()
        srv.wait()


@contextlib.contextmanager
def ovs_ct_nat_net() -> Iterator[Any]:
    """bl0 - pct - bh0: one OVS bridge (userspace datapath) routing and NATing with
    conntrack, flows from ovs-ofctl (no controller). Static neighbours on the hosts stand
    in for ARP, which the bridge does not answer."""
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    setLogLevel("error")
    m = runtime.Manifest.create("bench-ct")
    m.bridges = ["pct"]
    m.interfaces = ["pct-eth1", "pct-eth2"]
    m.save()
    net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
    gw1, gw2 = "02:00:00:00:01:01", "02:00:00:00:02:01"
    try:
        h1 = net.addHost("bl0", ip="10.0.1.10/24", mac="02:00:00:00:01:10",
                         defaultRoute="via 10.0.1.1")
        h2 = net.addHost("bh0", ip="10.0.2.10/24", mac="02:00:00:00:02:10")
        s = net.addSwitch("pct", cls=OVSSwitch, datapath="user", failMode="secure",
                          dpid="00000000000000fc", protocols="OpenFlow13")
        net.addLink(h1, s, intfName2="pct-eth1")
        net.addLink(h2, s, intfName2="pct-eth2")
        net.build()
        m.add_nodes(net.hosts + net.switches)
        net.start()
        h1.cmd(f"ip neigh replace 10.0.1.1 lladdr {gw1} dev bl0-eth0 nud permanent")
        h2.cmd(f"ip neigh replace 10.0.2.1 lladdr {gw2} dev bh0-eth0 nud permanent")
        for h in (h1, h2):
            h.cmd(f"ethtool -K {h.defaultIntf()} tx off >/dev/null 2>&1")
        flows = [
            "table=0,priority=10,ip,in_port=1,actions=ct(nat,table=1)",
            "table=0,priority=10,ip,in_port=2,actions=ct(nat,table=2)",
            "table=1,priority=10,ct_state=+new+trk,ip,actions=ct(commit,nat(src=10.0.2.1)),"
            f"mod_dl_src:{gw2},mod_dl_dst:02:00:00:00:02:10,dec_ttl,output:2",
            "table=1,priority=10,ct_state=+est+trk,ip,"
            f"actions=mod_dl_src:{gw2},mod_dl_dst:02:00:00:00:02:10,dec_ttl,output:2",
            "table=2,priority=10,ct_state=+est+trk,ip,"
            f"actions=mod_dl_src:{gw1},mod_dl_dst:02:00:00:00:01:10,dec_ttl,output:1",
        ]
        for f in flows:
            s.cmd(f"ovs-ofctl -O OpenFlow13 add-flow pct '{f}'")
        wait_for(lambda: "1 received" in h1.cmd(f"ping -c1 -w2 {SERVER}"), 30, "ct NAT path")
        yield net
    finally:
        net.stop()
        m.remove_all()


def bench_nat(seconds: int) -> dict:
    """RUNS rounds; each round builds every layout in turn, measures it and tears it down
    (they share host and bridge names, so they cannot run side by side)."""
    got: dict[str, list] = {}

    def put(key: str, value) -> None:
        got.setdefault(key, []).append(value)

    def measure(label: str, a, b, throughput: bool = True, conns: bool = True) -> None:
        if throughput:
            put(f"nat_throughput_gbps.{label}", iperf(a, b, SERVER, seconds))
        if conns:
            errors = got.setdefault(f"nat_conn_errors.{label}", [])
            put(f"nat_conn_per_s.{label}", conn_rate(a, b, SERVER, seconds, errors=errors))
        put(f"nat_setup.{label}", latency(a, b))

    for _ in range(stats.RUNS):
        with Emulation(one_router()) as emu:
            measure("no_nat", emu.host("bl0"), emu.host("bh0"), conns=False)
        with Emulation(pat_router()) as emu:
            measure("infralab", emu.host("bl0"), emu.host("bh0"))
            put("nat_bindings_created.infralab",
                emu.api("/nat/br1")["br1"]["counters"]["created"])
        with Emulation(pat_router(conntrack=True)) as emu:
            measure("infralab_ct", emu.host("bl0"), emu.host("bh0"))
        with linux_router_net(True) as net:
            net["plr"].cmd("iptables -t nat -A POSTROUTING -o plr-eth2 -j MASQUERADE")
            measure("masquerade", net["bl0"], net["bh0"])
        with linux_router_net(False) as net:  # the kernel's ceiling: no OVS at all
            net["plr"].cmd("iptables -t nat -A POSTROUTING -o plr-eth2 -j MASQUERADE")
            measure("masquerade_no_ovs", net["bl0"], net["bh0"])
        with ovs_ct_nat_net() as net:
            measure("ovs_ct", net["bl0"], net["bh0"], throughput=False)
    res: dict[str, Any] = {}
    for key, values in got.items():
        if key.startswith("nat_conn_errors."):
            res[key] = sum(values)  # failed connections over all the runs
        elif key.startswith("nat_setup."):
            res[key] = {"p50_ms": summary([v["p50_ms"] for v in values]),
                        "p99_ms": summary([v["p99_ms"] for v in values]),
                        "count": sum(v["count"] for v in values),
                        "errors": sum(v["errors"] for v in values)}
        else:
            res[key] = summary(values)
    # ours must not lose a connection: the run fails (after its figures are saved) if it
    # did; a peer's failures are reported beside its figure
    res["failed"] = [f"{k}: {v} failed connections" for k, v in res.items()
                     if k.startswith("nat_conn_errors.infralab") and v] + [
        f"{k}: {v['errors']} failed connection set-ups" for k, v in res.items()
        if k.startswith("nat_setup.infralab") and v["errors"]]
    return res


def report(res: dict) -> None:
    print(header())
    # "default": the controller picks each binding's port and commits it into conntrack;
    # "fast path": `conntrack: true`, the switch picks the ports itself
    for ours_key, how in (("infralab", "default"), ("infralab_ct", "fast path")):
        print(row(f"bulk TCP, PAT ({how}), Gbit/s", res[f"nat_throughput_gbps.{ours_key}"],
                  res["nat_throughput_gbps.no_nat"], "infralab, same path without NAT", 2,
                  0.9))
        print(row(f"  ceiling: {how} vs kernel MASQUERADE", res[
            f"nat_throughput_gbps.{ours_key}"], res["nat_throughput_gbps.masquerade_no_ovs"],
            "Linux router + MASQUERADE, hosts on its veths (no OVS)", 2))
        for peer, name in (("masquerade", "Linux router, iptables MASQUERADE (OVS subnets)"),
                           ("ovs_ct", "one OVS bridge, ct(nat)"),
                           ("masquerade_no_ovs", "ceiling: MASQUERADE, no OVS")):
            print(row(f"new TCP conn/s, PAT ({how})", res[f"nat_conn_per_s.{ours_key}"],
                      res[f"nat_conn_per_s.{peer}"], name,
                      target=0.5 if peer != "masquerade_no_ovs" else None))
    print("failed connections in the connection-rate runs, all runs together: " + ", ".join(
        f"{k.split('.', 1)[1]} {v}" for k, v in res.items() if k.startswith("nat_conn_errors.")))
    print("connection set-up (connect() of a fresh connection), ms, median of the runs' "
          "p50 / p99 (range):")
    for who in ("infralab", "infralab_ct", "no_nat", "masquerade", "masquerade_no_ovs",
                "ovs_ct"):
        d = res[f"nat_setup.{who}"]
        print(f"  {who:<18} p50 {show(d['p50_ms'], 2):>22}  p99 {show(d['p99_ms'], 2):>22}  "
              f"({d['count']} connections, {d['errors']} errors)")
