"""An experiment for `infralab sweep`: TCP goodput between two hosts over a router link
whose delay and loss are the sweep's parameters.

    infralab sweep examples/tcp_goodput.py --grid delay=5ms,20ms,50ms loss=0,1% \\
        --repeat 3 --parallel 2 --out results.jsonl

Each run builds its own two-router network under the name the sweep gives it, so runs
side by side share nothing; iperf3 measures three seconds of TCP from h1 to h2.
"""

from __future__ import annotations

import json

from emulation.build import Emulation, wait_listening
from topologies import LinkParams, Topology

SECONDS = 3


def network(delay: str, loss: float) -> Topology:
    t = Topology("goodput", description="two hosts, two routers, one emulated link")
    t.interface("r1", "lan1", "10.0.1.1/24")
    t.interface("r1", "core", "10.255.0.1/30")
    t.interface("r2", "core", "10.255.0.2/30")
    t.interface("r2", "lan2", "10.0.2.1/24")
    t.links["core"] = LinkParams(delay=delay, loss=loss or None)
    t.host("h1", "lan1", "10.0.1.10")
    t.host("h2", "lan2", "10.0.2.10")
    return t


def experiment(params: dict[str, str], seed: int, name: str) -> dict[str, float]:
    delay = params.get("delay", "0ms")
    loss = float(params.get("loss", "0").rstrip("%"))
    with Emulation(network(delay, loss), name=name) as emu:
        server = emu.host("h2").popen(["iperf3", "-s", "-1", "-p", "5201"])
        try:
            wait_listening(emu.host("h2"), 5201, 10, server, "iperf3")
            out = emu.host("h1").cmd(f"iperf3 -c 10.0.2.10 -p 5201 -t {SECONDS} -J")
        finally:
            server.kill()
            server.wait()
        end = json.loads(out[out.index("{"):])["end"]
        rtt = emu.host("h1").cmd("ping -c3 -i0.2 -q 10.0.2.10")
    avg = float(rtt.split("=")[-1].split("/")[1]) if "rtt" in rtt else float("nan")
    return {"goodput_mbps": end["sum_received"]["bits_per_second"] / 1e6,
            "retransmits": float(end["sum_sent"].get("retransmits", 0)), "rtt_ms": avg}
