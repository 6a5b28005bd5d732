"""`make demo`: build the reference topology and show, with real traffic, what works.

Each check prints what it saw; the demo exits non-zero if any fails, and always tears the
network down and shows that nothing was left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from emulation.build import Emulation
from emulation.progress import Progress
from emulation.servers import Server
from infralab import testing
from topologies.model import Topology


def run_demo(topo: Topology, log: Callable[[str], None] = print,
             progress: Progress | None = None, servers: list[Server] | None = None,
             tunnel: str = "vxlan") -> int:
    """Build `topo` (on `servers`, when given: a cluster run), check it, tear it down."""
    failures = 0

    def check(title: str, fn: Callable[[], str]) -> None:
        nonlocal failures
        t0 = time.monotonic()
        try:
            detail = fn()
            log(f"PASS {title} ({time.monotonic() - t0:.1f}s) {detail}")
        except AssertionError as e:
            failures += 1
            log(f"FAIL {title}: {e}")

    t0 = time.monotonic()
    emu = Emulation(topo, log=log, progress=progress, servers=servers, tunnel=tunnel)
    with emu:
        log(f"{topo.name}: {len(topo.routers)} routers, {len(topo.subnets())} subnets, "
            f"{len(topo.hosts)} hosts, up in {time.monotonic() - t0:.1f}s")
        names = list(topo.hosts)

        def matrix() -> str:  # (the prompt's pingall: NAT-hidden pairs are not loss)
            from emulation import reachability

            res = reachability.pingall(emu)
            lost = [f"{p.src}->{p.dst}" + (f" ({p.why})" if p.why else "") for p in res.lost]
            assert not lost, f"{res.summary()}: {', '.join(lost[:20])}"
            return res.summary() + (" (the NATs are checked below)" if res.hidden else "")

        check("TB-CTRL connectivity across every subnet", matrix)
        if {"c1", "web2a"} <= set(names):
            def path() -> str:
                hops = testing.traceroute(emu, "c1", "web2a")
                assert hops and hops[-1] == emu.ip("web2a") and "*" not in hops, hops
                return "c1 -> web2a via " + " -> ".join(hops)

            check("TB-CTRL traceroute shows router hops", path)
            check("TB-CTRL HTTP transfer across routers", lambda: "sha256 "
                  + testing.http_fetch_check(emu, "web2a", "c1")[:16] + "… matches")
        if {"c1", "ldns", "ns1"} <= set(names):
            def dns() -> str:
                d = testing.dig(emu, "c1", "mail.example.com")
                assert d.rcode == "NOERROR" and d.data("A") == ["198.51.100.25"], d.raw
                return "c1 -> LDNS 10.1.0.53 -> root -> com. -> ns1: mail.example.com " \
                    + d.data("A")[0]

            check("DNS-RECURSIVE DNS-HIER resolution from the root", dns)
        if {"xs", "xb", "gslb"} <= set(names):
            def gslb() -> str:
                seoul = testing.dig(emu, "xs", "www.example.com").data("A")
                busan = testing.dig(emu, "xb", "www.example.com").data("A")
                assert seoul and set(seoul) <= {"198.51.100.11", "198.51.100.12"}, seoul
                assert busan == ["198.51.100.131"], busan
                page = emu.host("xb").cmd("curl -s -m5 http://www.example.com/").strip()
                assert page.startswith("web2a dc2"), page
                return f"www.example.com: seoul -> {seoul[0]} (dc1), busan -> {busan[0]} " \
                    f"(dc2); xb's browser got '{page}'"

            check("GSLB-DC nearest data centre per region", gslb)
        if {"c1", "c3", "xb", "webc", "webd", "p1", "web2a"} <= set(names):
            def pat() -> str:
                lan1 = emu.host("c1").cmd("curl -s -m5 http://198.51.100.131/whoami").strip()
                lan2 = emu.host("c3").cmd("curl -s -m5 http://198.51.100.131/whoami").strip()
                assert lan1.startswith("203.0.113.1:"), lan1
                assert lan2.startswith("203.0.113.") and not lan2.startswith("203.0.113.1:"), \
                    lan2
                return f"web2a saw c1 (10.1.1.11) as {lan1} (PAT), c3 (10.1.2.13) as " \
                    f"{lan2} (dynamic pool)"

            check("NAT-PAT NAT-DYNAMIC NAT-HIDE campus seen by its public addresses", pat)

            def inbound() -> str:
                static = emu.host("xb").cmd("curl -s -m5 http://203.0.113.80/").split()[:1]
                vip = {emu.host("xb").cmd("curl -s -m5 http://203.0.113.90/").split()[0]
                       for _ in range(4)}
                assert static == ["webc"] and vip == {"webc", "webd"}, (static, vip)
                return "xb -> 203.0.113.80 reached webc (static); 4 connections to the VIP " \
                    "203.0.113.90 reached " + " and ".join(sorted(vip))

            check("NAT-STATIC NAT-DNAT-VIP inbound to the campus", inbound)

            def double() -> str:
                out = emu.host("c1").cmd("ping -n -c1 -w3 172.30.1.10")
                assert " 0% packet loss" in out, out
                return "c1 (10.1.1.11) pinged partner p1 (also 10.1.1.x) as 172.30.1.10"

            check("NAT-DOUBLE overlapping campus and partner prefixes", double)
        manifest = emu.manifest
    assert manifest is not None  # (made by start())
    left = manifest.leftovers()
    if left:
        failures += 1
        log(f"FAIL teardown left: {left}")
    else:
        where = manifest.remote or {"this machine": {"bridges": manifest.bridges,
                                                     "interfaces": manifest.interfaces}}
        log("PASS teardown: nothing left of " + "; ".join(
            f"{len(r['bridges'])} bridges, {len(r['interfaces'])} interfaces on {name}"
            for name, r in where.items()) + f"; {len(manifest.processes)} processes")
    log("demo: all checks passed" if not failures else f"demo: {failures} check(s) failed")
    return 1 if failures else 0


