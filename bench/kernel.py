"""Kernel paths against userspace ones, in the same machine (run it inside the
course VM, where the kernel has both: `python -m bench --only kernel`).

    routed TCP throughput     one router, kernel datapath  vs  userspace datapath
    new TCP connections/s     through the default PAT, kernel vs userspace datapath
    delayed link (10 ms)      netem vs the delay line: RTT error, TCP throughput

Under software emulation (QEMU TCG) absolute figures mean little: only the ratios, measured
interleaved in the same guest, are reported. On a kernel without the openvswitch module or
netem, the comparison that needs them is left out and says so.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from typing import Any

from bench import stats
from bench.nat import SERVER, pat_router
from bench.net import conn_rate, iperf, one_router
from emulation import kernel
from emulation.build import Emulation
from topologies.model import LinkParams, Topology


def _with(t: Topology, datapath: str = "auto", links: str = "auto") -> Topology:
    t.datapath, t.link_emulation = datapath, links
    return t


def delayed(links: str) -> Topology:
    t = one_router()
    t.hosts["bl0"].link = LinkParams(delay="10ms")
    return _with(t, links=links)


def _rtt_error_ms(emu: Emulation) -> float:
    """|median RTT - 20 ms| over a 10 ms link (both ways): how far from what was asked."""
    out = emu.host("bl0").cmd(f"ping -n -c20 -i0.05 {SERVER}")
    got = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
    if len(got) < 10:
        raise RuntimeError(f"ping over the delayed link: {out[-300:]}")
    return abs(statistics.median(got) - 20.0)


def bench_kernel(seconds: int) -> dict:
    ovs = kernel.probe("openvswitch")
    netem = kernel.probe("sch_netem")
    res: dict[str, Any] = {"kernel": {"openvswitch": ovs.how, "sch_netem": netem.how}}

    def build(t: Topology, measure: Callable[[Emulation], float]) -> Callable[[], float]:
        def run() -> float:
            with Emulation(t) as emu:
                return measure(emu)
        return run

    def hosts(emu: Emulation) -> tuple[Any, Any]:
        return emu.host("bl0"), emu.host("bh0")

    measures: dict[str, Callable[[], float]] = {}
    if ovs.present:
        for dp in ("kernel", "user"):
            measures[f"throughput_gbps.{dp}"] = build(
                _with(one_router(), dp), lambda e: iperf(*hosts(e), SERVER, seconds))
            errors: list[int] = res.setdefault(f"nat_conn_errors.{dp}", [])

            def conns(e: Emulation, errs: list[int] = errors) -> float:
                # 16 workers, failures counted (not fatal): under software emulation 64
                # concurrent set-ups wait longer than the load's 2 s per connection
                return conn_rate(*hosts(e), SERVER, seconds, workers=16, errors=errs)

            measures[f"nat_conn_per_s.{dp}"] = build(_with(pat_router(), dp), conns)
    if netem.present:
        for mech in ("netem", "delayline"):
            measures[f"delayed_rtt_error_ms.{mech}"] = build(delayed(mech), _rtt_error_ms)
            measures[f"delayed_throughput_gbps.{mech}"] = build(
                delayed(mech), lambda e: iperf(*hosts(e), SERVER, seconds))
    res.update(stats.interleave(measures))
    return res


def report(res: dict) -> None:
    k = res["kernel"]
    print(f"\nKernel paths (KERNEL-DP, LINK-NETEM): openvswitch {k['openvswitch']}; sch_netem "
          f"{k['sch_netem']}")
    print(stats.header())
    rows = [("routed TCP, Gbit/s", "throughput_gbps", "kernel", "user", 2,
             "same router on the userspace datapath"),
            ("new TCP conns/s via the PAT", "nat_conn_per_s", "kernel", "user", 0,
             "same PAT on the userspace datapath"),
            ("10 ms link: TCP, Gbit/s", "delayed_throughput_gbps", "netem", "delayline", 3,
             "the same link by the delay line"),
            ("10 ms link: |RTT - 20 ms|, ms", "delayed_rtt_error_ms", "netem", "delayline",
             2, "the same link by the delay line (lower is better)")]
    for dp in ("kernel", "user"):
        if f"nat_conn_errors.{dp}" in res:
            print(f"(failed connections through the PAT, {dp} datapath, all runs: "
                  f"{sum(res[f'nat_conn_errors.{dp}'])})")
    for title, key, ours, theirs, digits, peer in rows:
        a, b = res.get(f"{key}.{ours}"), res.get(f"{key}.{theirs}")
        if a is None or b is None:
            print(f"{title:<40}  not measured: the kernel lacks what it compares")
            continue
        print(stats.row(title, a, b, peer, digits))
