"""What spreading over servers costs, on two simulated servers of this machine.

- A router-to-router link inside one machine against the same link carried between two
  servers, by VXLAN (infralab's default) and by Cluster Edition's ssh tunnel: TCP throughput
  (iperf3, 3 s) and RTT (20 pings) from h1 to h4 of `duo`, whose routers are split.
- The start and stop time of the world on one machine against two servers.
- Each simulated server runs its own, fresh ovs-vswitchd: the growth of its resident memory
  while a topology is up, per host placed there, is the per-host figure the shared
  vswitchd of this machine could not give (its RSS does not move for a build).

Rounds are interleaved (one machine, VXLAN, ssh, ...) and every figure is the median of
RUNS with its range. Simulated servers share this machine's two cores, so the tunnels' cost
is the encapsulation alone: on real servers the network between them adds its own.
`python -m bench --only cluster` writes bench/out/cluster.json.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench import stats
from bench.scale import rss_mb
from bench.stats import show, summary
from emulation import servers as srv
from emulation.build import Emulation
from emulation.progress import Progress
from topologies import builtin, load

CONFIGS = ("one machine", "2 servers, vxlan", "2 servers, ssh")


def _emulation(name: str, config: str, servers: list[srv.Server]) -> Emulation:
    topo = load(builtin(name))
    if config == "one machine":
        return Emulation(topo)
    return Emulation(topo, servers=servers, tunnel=config.rsplit(" ", 1)[1])


def _vswitchd_mb(s: srv.Server) -> float:
    out = s.ssh("cat /run/openvswitch/ovs-vswitchd.pid").stdout.split()
    return rss_mb(int(out[0])) if out else 0.0  # (a simulated server: its PID is ours too)


def link_run(config: str, servers: list[srv.Server]) -> dict:
    emu = _emulation("duo", config, servers)
    before = {s.name: _vswitchd_mb(s) for s in servers}
    with emu:
        h1, h4 = emu.host("h1"), emu.host("h4")
        h4.cmd("iperf3 -s -D -1 >/dev/null 2>&1")
        time.sleep(0.3)  # (iperf3 -D returns before it listens; a refused run is retried)
        for _ in range(3):
            out = h1.cmd("iperf3 -c 10.0.3.10 -t 3 -f m")
            m = re.search(r"([\d.]+) Mbits/sec\s+\d*\s*sender", out)
            if m:
                break
            time.sleep(0.5)
        if not m:
            raise RuntimeError(f"iperf3 {config}: {out}")
        ping = h1.cmd("ping -n -q -c 20 -i 0.05 10.0.3.10")
        r = re.search(r"= [\d.]+/([\d.]+)/", ping)
        if not r or " 0% packet loss" not in ping:
            raise RuntimeError(f"ping {config}: {ping}")
        grown = {s.name: _vswitchd_mb(s) - before[s.name] for s in servers}
    return {"mbps": float(m.group(1)), "rtt_ms": float(r.group(1)), "vswitchd_mb": grown}


def start_run(config: str, servers: list[srv.Server]) -> dict:
    emu = _emulation("world", config, servers)
    before = {s.name: _vswitchd_mb(s) for s in servers}
    t0 = time.monotonic()
    emu.start()
    t1 = time.monotonic()
    grown, hosts = {}, {}
    for s in servers:  # a fresh vswitchd's growth per host it serves
        grown[s.name] = _vswitchd_mb(s) - before[s.name]
        hosts[s.name] = sum(1 for n, w in emu.where.items() if w == s.name
                            and n in emu.topo.hosts)
    emu.stop()
    per_host = [grown[n] / hosts[n] for n in hosts if hosts[n]]
    return {"start_s": t1 - t0, "stop_s": time.monotonic() - t1,
            "vswitchd_kb_per_host": 1024 * sum(per_host) / len(per_host) if per_host else 0.0}


def bench_cluster() -> dict:
    servers = srv.simulate(2, log=lambda s: None)
    try:
        links: dict[str, list[dict]] = {c: [] for c in CONFIGS}
        starts: dict[str, list[dict]] = {c: [] for c in CONFIGS[:2]}
        step = Progress(lines=True).step("cluster rounds", stats.RUNS)
        for _ in range(stats.RUNS):
            for c in CONFIGS:
                links[c].append(link_run(c, servers))
            for c in starts:
                starts[c].append(start_run(c, servers))
            step.advance()
        step.finish()
    finally:
        srv.clean(log=lambda s: None)
    out: dict[str, Any] = {"cluster_link": {c: {k: summary([r[k] for r in rs])
                                                for k in ("mbps", "rtt_ms")}
                                            for c, rs in links.items()},
                           "cluster_world": {c: {k: summary([r[k] for r in rs])
                                                 for k in rs[0]} for c, rs in starts.items()}}
    return out


def report(res: dict) -> None:
    link, world = res["cluster_link"], res["cluster_world"]
    base = link["one machine"]
    print(f"\n{'duo h1 -> h4 (routers split)':<30}{'TCP Mbit/s':>24}{'ratio':>7}"
          f"{'RTT ms':>24}{'ratio':>7}")
    for c, v in link.items():
        print(f"{c:<30}{show(v['mbps']):>24}{stats.ratio(v['mbps'], base['mbps']):>7.2f}"
              f"{show(v['rtt_ms'], 3):>24}{stats.ratio(v['rtt_ms'], base['rtt_ms']):>7.2f}")
    one = world["one machine"]
    print(f"\n{'world':<30}{'start s':>24}{'ratio':>7}{'stop s':>24}{'ratio':>7}"
          f"{'vswitchd KB/host':>24}")
    for c, v in world.items():
        print(f"{c:<30}{show(v['start_s'], 1):>24}"
              f"{stats.ratio(v['start_s'], one['start_s']):>7.2f}{show(v['stop_s'], 1):>24}"
              f"{stats.ratio(v['stop_s'], one['stop_s']):>7.2f}"
              f"{show(v['vswitchd_kb_per_host']) if c != 'one machine' else '-':>24}")
