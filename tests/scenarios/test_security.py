"""Issue 8 on a live network: attacks demonstrated, then defended (see docs/SECURITY.md).

DNS amplification: an attacker floods an authoritative server with queries whose source
is the victim's address (nothing on the path checks sources, as on much of the real
internet); the server's answers — larger than the queries — hit the victim. With response
rate limiting the victim gets a trickle of tiny truncated replies instead.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import topologies
from infralab.testing import Capture
from topologies import Service, Topology
from topologies.build import Emulation, wait_listening

ZONE = "{dir}/zones/example.com.zone"
FLOOD = 100


@pytest.fixture(scope="module")
def amp():
    t = Topology("amp")
    t.interface("ra", "att", "10.30.1.1/24")
    t.interface("ra", "srv", "10.30.2.1/24")
    t.interface("ra", "vic", "10.30.3.1/24")
    serve = ("{infralab} dns serve --zone-file " + ZONE + " --listen {ip}:53 --rrl 5 & "
             "exec {infralab} dns serve --zone-file " + ZONE + " --listen {ip}:5353")
    t.host("attk", "att", "10.30.1.10")
    t.host("auth", "srv", "10.30.2.53", services=[Service("dns", serve, ready_port=5353)])
    t.host("victim", "vic", "10.30.3.10")
    t.base_dir = str(topologies.builtin("world").parent)
    with Emulation(t) as emu:
        wait_listening(emu.host("auth"), 53, 10, None, "the rate-limited server")
        yield emu


def flood(emu: Emulation, port: int) -> None:
    code = ("from scapy.all import IP,UDP,DNS,DNSQR,send,conf;conf.verb=0;"
            f"send([IP(src='10.30.3.10',dst='10.30.2.53')/UDP(sport=40000+i,dport={port})/"
            "DNS(rd=0,qd=DNSQR(qname='example.com',qtype=2)) "
            f"for i in range({FLOOD})],inter=0.01)")
    p = emu.host("attk").popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    assert p.wait(60) == 0, p.stderr.read()


def test_dns_amplification_is_capped_by_response_rate_limiting(amp):
    counts = {}
    for port, label in ((5353, "no rrl"), (53, "rrl 5/s")):
        with Capture(amp, "victim", f"udp and src host 10.30.2.53 and src port {port}",
                     snaplen=1500) as cap:
            flood(amp, port)
        sizes = [len(p["UDP"].payload) for p in cap.packets if p.haslayer("UDP")]
        counts[label] = (len(sizes), sum(sizes))
    print(f"DNS amplification: {FLOOD} spoofed NS queries (answers carry glue) in ~1 s; "
          "the victim received "
          f"{counts['no rrl'][0]} answers ({counts['no rrl'][1]} bytes) without RRL, "
          f"{counts['rrl 5/s'][0]} ({counts['rrl 5/s'][1]} bytes) with --rrl 5")
    assert counts["no rrl"][0] >= FLOOD * 0.95
    no_rrl_bytes, rrl_bytes = counts["no rrl"][1], counts["rrl 5/s"][1]
    assert counts["rrl 5/s"][0] <= 5 + 10 + FLOOD // 2  # budget + refill + slipped TCs
    assert rrl_bytes * 4 < no_rrl_bytes  # what reaches the victim shrinks, by far
