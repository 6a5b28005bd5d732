"""`make demo`: build the reference topology and show, with real traffic, what works.

Each check prints what it saw; the demo exits non-zero if any fails, and always tears the
network down and shows that nothing was left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infralab import testing
from topologies.build import Emulation
from topologies.model import Topology


def run_demo(topo: Topology, log: Callable[[str], None] = print) -> int:
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
    emu = Emulation(topo, log=log)
    with emu:
        log(f"{topo.name}: {len(topo.routers)} routers, {len(topo.subnets())} subnets, "
            f"{len(topo.hosts)} hosts, up in {time.monotonic() - t0:.1f}s")
        names = list(topo.hosts)

        def matrix() -> str:
            testing.assert_connectivity(emu, names)
            return f"{len(names) * (len(names) - 1)} host pairs reach each other"

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
        manifest = emu.manifest
    left = manifest.leftovers()
    if left:
        failures += 1
        log(f"FAIL teardown left: {left}")
    else:
        log(f"PASS teardown: nothing left of {len(manifest.bridges)} bridges, "
            f"{len(manifest.interfaces)} interfaces, {len(manifest.processes)} processes")
    log("demo: all checks passed" if not failures else f"demo: {failures} check(s) failed")
    return 1 if failures else 0


