"""ROUTE-ZOO on a live network: Topology Zoo backbones of three sizes built as routed
networks, reachable end to end on a sample, rerouting when a link on a long path fails."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
import topohub  # noqa: F401 - a dependency: missing, it fails the module, never skips it

from emulation.build import Emulation, wait_for
from infralab.testing import assert_dns_record, assert_reachable, traceroute
from topologies import imported, overlay


def router_of(hop: str, emu: Emulation) -> str:
    """The router that owns address `hop` (a traceroute hop)."""
    return next(r.name for r in emu.topo.routers.values()
                if any(str(i.ip) == hop for i in r.interfaces.values()))


@pytest.mark.parametrize("spec, pairs", [
    ("zoo:Abilene", 40),               # 11 routers, delays from the map
    ("zoo:Geant2012,delay=off", 40),   # 37 routers
    ("zoo:Dfn,delay=off", 40),         # 51 routers, 80 links
])
def test_route_zoo_backbone_reachable_and_reroutes_around_a_failed_link(spec, pairs):
    topo = imported.load(spec)
    with Emulation(topo) as emu:
        hosts = sorted(topo.hosts)
        rng = random.Random(16)
        sample = rng.sample(hosts, min(len(hosts), 8))
        assert_reachable(emu, sample[:4], sample[4:])  # 16 pairs both ways round
        # the two routers furthest apart (by hops) and their hosts
        adj = overlay.router_adjacency(topo)
        far = max(((a, b, d) for a in sorted(topo.routers)
                   for b, d in overlay.hops(adj, a).items()), key=lambda x: (x[2], x[0], x[1]))
        src, dst = f"h{far[0][1:]}", f"h{far[1][1:]}"
        before = traceroute(emu, src, dst, max_hops=30)  # (routed by distance, not hops)
        assert before and before[-1] == emu.ip(dst) and "*" not in before, before
        assert len(before) >= far[2] + 2, f"{far}: fewer hops than the fewest? {before}"
        # fail a link in the middle of the path that leaves the two connected
        routers = [router_of(h, emu) for h in before[:-1]]
        for i in range(len(routers) // 2, len(routers) - 1):
            a, b = routers[i], routers[i + 1]
            without = {r: nbs - ({a, b} - {r}) if r in (a, b) else nbs
                       for r, nbs in adj.items()}  # (the graph without a -- b)
            if routers[-1] in overlay.hops(without, routers[0]):
                break
        else:
            pytest.fail(f"every link of {routers} is a bridge")
        emu.link(a, b, up=False)
        wait_for(lambda: emu.controller_status()["routing"]["down_links"], 10,
                 f"the controller seeing {a} -- {b} down")

        def moved() -> list[str] | None:
            after = traceroute(emu, src, dst, max_hops=len(before) + 8)
            return after if after and after[-1] == emu.ip(dst) and "*" not in after else None

        after = wait_for(moved, 20, f"{src} -> {dst} reaching it again", interval=0.5)
        crossed = [router_of(h, emu) for h in after[:-1]]
        assert not any({x, y} == {a, b} for x, y in zip(crossed, crossed[1:], strict=False)), \
            f"still over {a} -- {b}: {crossed}"
        print(f"{spec}: {src} -> {dst} over {routers}; {a} -- {b} down: over {crossed}")
        if spec == "zoo:Abilene":  # New York -> Los Angeles: at least the fibre's delay
            out = emu.host("h1").cmd("ping -n -c3 -i0.2 10.0.6.10")
            rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
            assert rtts and min(rtts) >= 2 * 22.6, out


def test_route_zoo_course_services_replayed_on_abilene():
    """The overlay on a real backbone: names resolve from the root down through each
    region's resolver, the GSLB sends each region to its own data centre, and the campus
    behind the NAT edge reaches the web by name and is seen by its public address."""
    topo = imported.load("zoo:Abilene,services=on")
    with Emulation(topo) as emu:
        web1, web2 = str(topo.hosts["web1"].address), str(topo.hosts["web2"].address)
        # New York's site and resolver serve Washington (h3); Seattle's serve L.A. (h6)
        assert_dns_record(emu, "h3", "www.example.com", "A", {web1})
        assert_dns_record(emu, "h6", "www.example.com", "A", {web2})
        assert_dns_record(emu, "h6", "web1.example.com", "A", {web1})  # plain records
        edge = next(r for r, x in topo.routers.items() if x.nat)  # Chicago's router
        campus = next(h for h in topo.hosts.values()
                      if next(iter(topo.subnets()[h.subnet].routers)) == edge)
        seen = emu.host(campus.name).cmd("curl -s -m8 http://www.example.com/whoami").strip()
        assert seen.startswith("203.0.113."), f"{campus.name} seen as {seen!r}"


def test_route_zoo_up_with_a_script_as_a_user_types_it(tmp_path):
    """`infralab up zoo:Abilene --script FILE`, the CLI's `routes`, `link` and `router`
    commands (a link fails, then a whole router)."""
    script = tmp_path / "failover.cli"
    script.write_text("routes r1\nh1 ping -c1 -W2 10.0.6.10\nlink r1 r3 down\n"
                      "h1 ping -c1 -W2 10.0.6.10\nroutes r1\nlink r1 r3 up\n"
                      "router r2 down\n-h1 ping -c1 -W2 10.0.2.10\nh1 ping -c1 -W2 10.0.4.10\n"
                      "router r2 up\nh1 ping -c1 -W2 10.0.2.10\n")
    r = subprocess.run([sys.executable, "-m", "infralab", "up", "zoo:Abilene,delay=off",
                        "--script", str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "routing: shortest-path; links down: none" in out, out
    assert re.search(r"link r1 r3 down: i\wr1-eth", out) and out.count(" 0% packet loss") == 4, \
        out  # (the router ports carry the run's prefix: i0, i1...)
    # Chicago (r2) failed: its own hosts are cut off, Seattle is reached the other way
    assert "router r2 down: " in out and re.search(r"i\wr2-eth1", out) and \
        out.count("100% packet loss") == 1, out
    # New York -> L.A. leaves by Washington (r3) until that link is down, then by Chicago
    before, after = out.split("infralab> link r1 r3 down", 1)
    topo = imported.load("zoo:Abilene,delay=off")
    (washington,) = [str(topo.routers["r3"].interfaces[s].ip)
                     for s in topo.routers["r3"].interfaces if s in topo.routers["r1"].interfaces]
    la = re.compile(r"10\.0\.6\.0/24\s+via (\S+)")
    assert la.search(before).group(1) == washington != la.search(after).group(1), out


def test_route_spf_ecmp_spreads_flows_on_the_switches():
    """Two equal paths h1 -> h4 (r1 - r2 - r4, r1 - r3 - r4): the bundle on r1
    sends different flows (source ports) different ways, one flow always one way."""
    from tests.unit.test_spf import SQUARE
    from topologies import loader

    with Emulation(loader.loads(SQUARE)) as emu:
        def second_hop(sport: int) -> str:
            out = emu.host("h1").cmd(f"traceroute -n -q1 -w2 -f2 -m2 --sport={sport} "
                                     "10.0.4.10")
            m = re.search(r"^\s*2\s+(\S+)", out, re.M)
            assert m and m.group(1) != "*", out
            return m.group(1)

        hops = {second_hop(sport) for sport in range(40000, 40016)}
        assert hops == {"10.255.0.2", "10.255.0.6"}, hops  # r2 and r3
        assert len({second_hop(40001) for _ in range(4)}) == 1
