"""`make bench`: infralab's routing against real peers, measured in the same run.

    routed TCP throughput (iperf3)   infralab router  vs  Linux router (ip_forward netns)
    TCP connections/s (64 workers)   infralab router  vs  Linux router
    topology start+stop              infralab         vs  plain Mininet, same hosts/switches
    DNS authoritative / resolver     infralab         vs  NSD, dnslib / Unbound (bench/dns.py)
    GSLB answers/s, failover         infralab gslb    vs  static auth, PowerDNS LUA (bench/gslb.py)
    NAT throughput, conn/s, set-up   infralab PAT     vs  no NAT, MASQUERADE, OVS ct (bench/nat.py)
    DHCP 4-way exchanges/s           infralab dhcp    vs  Kea 2.2 memfile, persisted (bench/dhcp.py)
    start-up/stop by size (--only scale)  generated campuses vs plain Mininet (bench/scale.py)
    two servers (--only cluster)     link by VXLAN / ssh tunnel vs one machine (bench/cluster.py)
    the live view (--only view)      NAT conn/s with a view page open vs none (bench/view.py)
    convergence after a link fails   fast-failover / recompute vs FRR ospfd (bench/convergence.py)
    kernel paths (--only kernel)     kernel vs userspace datapath, netem vs delay line
                                     (bench/kernel.py)

The peer topology has the same hosts and subnets; as in Mininet's linuxrouter example each
subnet is an OVS switch (userspace datapath, the only OVS this kernel runs) in front of
the Linux router. A third line, hosts wired straight into the Linux router (no OVS at all),
shows the kernel's ceiling. Results: bench/out/results.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import stats
from bench.net import conn_rate, iperf, linux_router_net, one_router, plain_mininet
from bench.stats import header, row, summary
from emulation.build import Emulation
from emulation.progress import Progress

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def bench_routing(seconds: int) -> dict:
    """RUNS rounds; each builds our router, the Linux router with OVS subnets and the
    Linux router alone (the kernel's ceiling) in turn, measures and tears it down."""
    got: dict[str, list[float]] = {}
    peer_errors: dict[str, list[int]] = {}  # a peer's failed connections, reported
    for _ in range(stats.RUNS):
        with Emulation(one_router()) as emu:
            a, b = emu.host("bl0"), emu.host("bh0")
            got.setdefault("throughput_gbps.infralab", []).append(
                iperf(a, b, "10.0.2.10", seconds))
            got.setdefault("conn_per_s.infralab", []).append(
                conn_rate(a, b, "10.0.2.10", seconds))  # (ours: any failure raises)
        for label, switches in (("linux_router", True), ("linux_router_no_ovs", False)):
            with linux_router_net(switches) as net:
                a, b = net["bl0"], net["bh0"]
                got.setdefault(f"throughput_gbps.{label}", []).append(
                    iperf(a, b, "10.0.2.10", seconds))
                got.setdefault(f"conn_per_s.{label}", []).append(conn_rate(
                    a, b, "10.0.2.10", seconds,
                    errors=peer_errors.setdefault(f"conn_errors.{label}", [])))
    return {**{k: summary(v) for k, v in got.items()},
            **{k: sum(v) for k, v in peer_errors.items()}}


def bench_startup(hosts: int) -> dict:
    """Start+stop of a one-router topology with `hosts` hosts vs plain Mininet of the same
    size (hosts on one OVS switch, standalone, no controller), interleaved."""
    got: dict[str, list[float]] = {}
    for _ in range(stats.RUNS):
        t0 = time.monotonic()
        emu = Emulation(one_router(hosts // 2))
        emu.start()
        t1 = time.monotonic()
        emu.stop()
        t2 = time.monotonic()
        plain = plain_mininet(1, hosts)
        for k, v in (("start_s.infralab", t1 - t0), ("stop_s.infralab", t2 - t1),
                     ("start_s.mininet", plain["start_s"]), ("stop_s.mininet", plain["stop_s"])):
            got.setdefault(k, []).append(v)
    return {"hosts": hosts, **{k: summary(v) for k, v in got.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5, help="per measurement (max 30)")
    ap.add_argument("--hosts", type=int, default=50, help="hosts for the start-up benchmark")
    ap.add_argument("--runs", type=int, default=stats.RUNS,
                    help=f"interleaved runs per figure (default and minimum for a quoted "
                         f"figure: {stats.RUNS})")
    ap.add_argument("--sweep", default="hosts,routers", choices=["hosts,routers", "hosts",
                                                                 "routers"],
                    help="with --only scale: which sweeps")
    ap.add_argument("--only", choices=["routing", "convergence", "dns", "gslb", "nat", "dhcp",
                                       "scale", "cluster", "kernel", "view"],
                    help="run one group")
    args = ap.parse_args(argv)
    seconds = max(1, min(args.seconds, 30))
    stats.RUNS = max(1, min(args.runs, 20))
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.node(),
           "kernel": platform.release(), "cpus": len(__import__("os").sched_getaffinity(0))}
    from bench import convergence, dhcp, gslb, nat
    from bench.dns import bench_dns, report

    if args.only == "scale":  # (not in the default run: it builds eight topologies)
        from bench import scale

        res.update(scale.bench_scale(tuple(args.sweep.split(","))))
        OUT.mkdir(exist_ok=True)
        (OUT / f"scale-{args.sweep.replace(',', '-')}.json").write_text(json.dumps(res, indent=1))
        for key, what, svg in (("scale", "hosts", "scale.svg"),
                               ("scale_routers", "routers", "scale-routers.svg")):
            if res[key]:
                scale.report(res[key], what)
                print(f"plot: {scale.plot(res[key], OUT / svg, what)}")
        return 0
    if args.only == "kernel":  # (not in the default run: it needs a kernel with both)
        from bench import kernel

        res.update(kernel.bench_kernel(seconds))
        OUT.mkdir(exist_ok=True)
        (OUT / "kernel.json").write_text(json.dumps(res, indent=1))
        kernel.report(res)
        return 0
    if args.only == "view":  # (not in the default run: the live view's cost)
        from bench import view

        res.update(view.bench_view(seconds))
        OUT.mkdir(exist_ok=True)
        (OUT / "view.json").write_text(json.dumps(res, indent=1))
        view.report(res)
        return 0
    if args.only == "cluster":  # (not in the default run: two simulated servers)
        from bench import cluster

        res.update(cluster.bench_cluster())
        OUT.mkdir(exist_ok=True)
        (OUT / "cluster.json").write_text(json.dumps(res, indent=1))
        cluster.report(res)
        return 0
    groups = [("dns", lambda: bench_dns(seconds)), ("gslb", lambda: gslb.bench_gslb(seconds)),
              ("nat", lambda: nat.bench_nat(seconds)), ("dhcp", lambda: dhcp.bench_dhcp(seconds)),
              ("routing", lambda: bench_routing(seconds)),
              ("startup", lambda: bench_startup(max(2, min(args.hosts, 200)))),
              ("convergence", convergence.bench_convergence)]
    if args.only:  # ("routing": throughput, start-up and convergence together)
        groups = [g for g in groups if g[0] == args.only
                  or (args.only == "routing" and g[0] in ("startup", "convergence"))]
    # minutes in all: a line as each group ends (lines, not a bar: the groups print too)
    with Progress(lines=True).step("bench groups", len(groups)) as step:
        OUT.mkdir(exist_ok=True)
        partial = OUT / (f"results-{args.only}.json" if args.only else "results.json")
        for name, run in groups:
            try:
                res.update(run())
            except Exception as e:  # noqa: BLE001 - a group's failure is reported, not raised
                res[f"failed.{name}"] = f"{type(e).__name__}: {e}"
                print(f"bench group {name} failed: {type(e).__name__}: {e} (the other "
                      "groups' figures are kept)", flush=True)
            partial.write_text(json.dumps(res, indent=1))  # nothing lost if a later group fails
            step.advance()
    failed = {k: v for k, v in res.items() if k.startswith("failed.")}
    if failed:
        (OUT / (f"results-{args.only}.json" if args.only else "results.json")).write_text(
            json.dumps(res, indent=1))
        for k, v in failed.items():
            print(f"{k.split('.', 1)[1]}: no figures ({v})")
        if len(failed) == len(groups):
            return 1
        if not args.only:  # the groups that did measure, each its own report
            for key, show in (("outage_ms.fast-failover", convergence.report),
                              ("auth_qps.infralab", report), ("gslb_qps.infralab", gslb.report),
                              ("nat_conn_per_s.infralab", nat.report),
                              ("dhcp.infralab", dhcp.report)):
                if key in res:
                    show(res)
            return 1
    if args.only in ("dns", "gslb", "nat", "dhcp", "convergence"):
        OUT.mkdir(exist_ok=True)
        (OUT / f"results-{args.only}.json").write_text(json.dumps(res, indent=1))
        {"dns": report, "gslb": gslb.report, "nat": nat.report, "dhcp": dhcp.report,
         "convergence": convergence.report}[args.only](res)
        return _verdict(res)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(res, indent=1))
    print(header())
    print(row("routed TCP throughput, Gbit/s", res["throughput_gbps.infralab"],
              res["throughput_gbps.linux_router"], "Linux router, OVS switch per subnet", 2,
              0.9))
    print(row("  ceiling", res["throughput_gbps.infralab"],
              res["throughput_gbps.linux_router_no_ovs"],
              "Linux router, hosts on its veths (no OVS)", 2))
    print(row("TCP connections/s, 64 workers", res["conn_per_s.infralab"],
              res["conn_per_s.linux_router"], "Linux router, OVS switch per subnet",
              target=0.5))
    print(row("  ceiling", res["conn_per_s.infralab"], res["conn_per_s.linux_router_no_ovs"],
              "Linux router, hosts on its veths (no OVS)"))
    print("  failed connections of the peers, all runs: " + ", ".join(
        f"{k.split('.', 1)[1]} {v}" for k, v in res.items() if k.startswith("conn_errors."))
          + " (ours: none, or the run stops)")
    print(row(f"start, {res['hosts']} hosts, s", res["start_s.infralab"],
              res["start_s.mininet"], "plain Mininet, one OVS switch", 2, lower_is_better=True))
    print(row(f"stop, {res['hosts']} hosts, s", res["stop_s.infralab"], res["stop_s.mininet"],
              "plain Mininet, one OVS switch", 2, lower_is_better=True))
    if "outage_ms.recompute" in res:
        convergence.report(res)
    if "auth_qps.infralab" in res:
        report(res)
    if "gslb_qps.infralab" in res:
        gslb.report(res)
    if "nat_conn_per_s.infralab" in res:
        nat.report(res)
    if "dhcp.infralab" in res:
        dhcp.report(res)
    print(f"\nresults: {OUT / 'results.json'}")
    return _verdict(res)


def _verdict(res: dict) -> int:
    """Loud, and exit status 1, when one of our own measurements saw failures."""
    if res.get("failed"):
        print("\nBENCH FAILED: " + "; ".join(res["failed"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
