"""TB-CTRL on a live network: the controller turns OVS switches into IPv4 routers."""

import re
import subprocess
import sys

import pytest

from emulation.build import wait_for
from infralab.testing import (
    assert_connectivity,
    assert_path,
    assert_reachable,
    assert_unreachable,
    http_fetch_check,
    ping_matrix,
    service_ctl,
)

CAMPUS = ["c1", "c2", "c3", "c4", "dhcp1", "ldns", "webc", "webd"]  # behind rc's NAT
HOMES = ["h1", "h2"]  # behind na, nb
PARTNER = ["p1", "p2"]  # reached through the double NATs only (tests/scenarios/test_nat.py)


def test_tb_ctrl_world_reachability_follows_the_nat_edges(world):
    outside = [h for h in world.topo.hosts if h not in CAMPUS + HOMES + PARTNER]
    assert_connectivity(world, outside)  # the emulated internet: everyone reaches everyone
    assert_connectivity(world, CAMPUS)  # inside the campus, by private addresses
    assert_reachable(world, CAMPUS + HOMES, outside)  # out through the NATs
    # NAT-HIDE: private space behind a NAT is not reachable from outside by its address
    assert_unreachable(world, ["xs", "xb", "root", "h2"], ["c1", "c3", "ldns", "h1"])


def test_tb_ctrl_traceroute_shows_each_router_hop(world):
    # c1 (campus) -> rc -> ri (core) -> rb (busan) -> web2a (dc2)
    assert_path(world, "c1", "web2a",
                ["10.1.1.1", "198.18.0.2", "198.18.0.10", "198.51.100.131"])
    assert_path(world, "xs", "web1a", ["198.18.10.1", "198.51.100.11"])


def test_tb_ctrl_each_router_decrements_ttl(world):
    out = world.host("c1").cmd("ping -n -c1 -w3 198.51.100.131")
    # the reply left web2a with TTL 64 and crossed rb, ri, rc
    assert re.search(r"from 198\.51\.100\.131: icmp_seq=\d+ ttl=61 ", out), out
    out = world.host("c1").cmd("ping -n -c1 -w3 10.1.2.13")
    assert re.search(r"ttl=63 ", out), out  # one router: rc


def test_tb_ctrl_tcp_file_transfer_arrives_intact_across_routers(world):
    http_fetch_check(world, "web2a", "c1", size=4_000_000)
    http_fetch_check(world, "webc", "xb", size=1_000_000, address="203.0.113.80")  # static NAT


def test_tb_ctrl_gateways_answer_ping_on_every_interface(world):
    c1 = world.host("c1")
    for gw in ("10.1.1.1", "10.1.9.1", "198.18.0.1"):
        assert " 0% packet loss" in c1.cmd(f"ping -n -c1 -w3 {gw}"), gw


def test_tb_ctrl_unrouted_destination_gets_net_unreachable_from_the_router(world):
    # routes are computed from the graph (ROUTE-SPF): no router has a default route, so
    # the first router answers for a prefix nobody originates
    out = world.host("c1").cmd("ping -n -c1 -w3 10.99.0.1")
    assert re.search(r"From 10\.1\.1\.1 icmp_seq=\d+ Destination Net Unreachable", out), out
    out = world.host("xs").cmd("ping -n -c1 -w3 203.0.113.5")  # campus space, no NAT rule
    assert re.search(r"From 198\.18\.10\.1 icmp_seq=\d+ Destination Net Unreachable",
                     out), out


def test_tb_ctrl_silent_address_gets_host_unreachable_after_arp_fails(world):
    out = world.host("c1").cmd("ping -n -c1 -w6 10.1.2.99")
    assert re.search(r"From 10\.1\.1\.1 icmp_seq=\d+ Destination Host Unreachable", out), out


def test_tb_ctrl_same_subnet_traffic_is_switched_without_a_router_hop(world):
    out = world.host("c1").cmd("ping -n -c1 -w3 10.1.1.12")
    assert re.search(r"ttl=64 ", out), out
    assert all(ping_matrix(world, ["web1a"], ["web1b"]).values())


DC1_NET = "198.51.100.0/25"


def route_via(world, router: str, prefix: str) -> list[str]:
    table = world.api(f"/routes/{router}")["routers"][router]
    return next((r["via"] for r in table if r["prefix"] == prefix), [])


@pytest.fixture
def core_restored(world):
    """Whatever link a test takes down comes back, and the routes with it."""
    yield
    world.link("ri", "rs", up=True)
    wait_for(lambda: route_via(world, "ri", DC1_NET) == ["198.18.0.6"], 10,
             "ri routing to dc1 by rs again")


def test_route_spf_world_runs_on_computed_routes_with_a_fast_failover_backup(world):
    """No route is written in world.yaml: the controller's (ROUTE-SPF), and ri's way to
    data centre 1 has a loop-free backup through rk, which the switch itself fails over
    to (bundle_load, active-backup over the two ports)."""
    st = world.controller_status()
    assert st["routing"]["mode"] == "shortest-path" and st["routing"]["down_links"] == []
    ri = world.api("/routes/ri")["routers"]["ri"]
    assert ri and all(r["origin"] == "computed" for r in ri)
    dc1 = next(r for r in ri if r["prefix"] == DC1_NET)
    assert dc1["via"] == ["198.18.0.6"] and dc1["backup"] == "198.18.0.14", dc1
    flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows",
                            world.plan.bridge("ri"), "table=3"],
                           capture_output=True, text=True, check=True).stdout
    (dc1_flow,) = [f for f in flows.splitlines() if "nw_dst=198.51.100.0/25" in f]
    assert re.search(r"bundle_load\(symmetric_l3l4\+udp,0,active_backup,ofport,"
                     r"OXM_OF_METADATA\[0..31\],members:\d+,\d+\)", dc1_flow), dc1_flow


def test_route_failover_core_link_down_reroutes_and_keeps_nat_and_gslb(world, core_restored):
    """ROUTE-FAILOVER: ri -- rs fails under a live NAT'ed connection: campus -> dc1 moves
    to ri -- rk -- rs (traceroute before and after), the connection (its PAT binding on rc)
    lives on, and the GSLB never withdraws a dc1 member."""
    # (before: to web1b, after: to web1a; a host answers a traceroute's last hop with
    # port unreachables the kernel rate-limits per destination, about one a second)
    assert_path(world, "c1", "web1b", ["10.1.1.1", "198.18.0.2", "198.18.0.6",
                                       "198.51.100.12"])

    def c1_tcp() -> dict[str, str]:  # c1's TCP bindings on rc: inside -> outside
        return {r["inside"]: r["outside"] for r in world.api("/nat/rc")["rc"]["table"]
                if r["inside"].startswith("10.1.1.11:") and r.get("proto") == "tcp"}

    earlier = c1_tcp()
    held = world.host("c1").popen(["curl", "-s", "-m", "30",
                                   "http://198.51.100.11/hold?s=4"], stdout=subprocess.PIPE)

    def binding() -> tuple[str, str] | None:
        new = {k: v for k, v in c1_tcp().items() if k not in earlier}
        return next(iter(new.items()), None)

    outside: tuple[str, str] = wait_for(binding, 10, "c1's connection to web1a bound on rc")
    gslb_before = service_ctl(world, "gslb.gslb", "status")["pools"]["web"]
    world.link("ri", "rs", up=False)
    wait_for(lambda: route_via(world, "ri", DC1_NET) == ["198.18.0.14"], 10,
             "the controller routing ri to dc1 by rk")
    assert world.api("/routing")["down_links"], "no link seen down"
    # (the switches' new flows may trail the controller's view: in the course VM, under
    # software emulation, a traceroute at once saw nothing at all)
    wait_for(lambda: "1 received" in world.host("c1").cmd("ping -c1 -W2 198.51.100.11"), 20,
             "c1 reaching web1a by the new route")
    assert_path(world, "c1", "web1a", ["10.1.1.1", "198.18.0.2", "198.18.0.14",
                                       "198.18.0.18", "198.51.100.11"])
    assert c1_tcp().get(outside[0]) == outside[1], "the PAT binding changed under the reroute"
    out, _ = held.communicate(timeout=30)
    assert out.decode().startswith("web1a dc1"), f"the held connection broke: {out!r}"

    def checked() -> dict | None:  # 3 more checks of each (fall is 2: a withdrawal shows)
        now = service_ctl(world, "gslb.gslb", "status")["pools"]["web"]
        return now if all(now[n]["checks"] >= gslb_before[n]["checks"] + 3
                          for n in ("web1a", "web1b")) else None

    gslb_after = wait_for(checked, 15, "three more health checks of web1a and web1b")
    for name in ("web1a", "web1b"):
        assert gslb_after[name]["state"] == "up", gslb_after[name]
        assert gslb_after[name]["for_s"] > gslb_before[name]["for_s"], \
            f"{name} changed state during the reroute: {gslb_after[name]}"


def test_route_failover_infralab_link_command_from_another_terminal(world, core_restored):
    """`infralab link down|up A B` on a running emulation (as a second terminal would):
    the controller sees the link go and come back and routes accordingly."""
    def cli(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "infralab", "link", *args, "--run",
                            str(world.rundir)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stderr + r.stdout

    assert "link ri rs down" in cli("down", "ri", "rs")
    wait_for(lambda: route_via(world, "ri", DC1_NET) == ["198.18.0.14"], 10,
             "ri routing to dc1 by rk")
    assert len(world.api("/routing")["down_links"]) == 1
    cli("up", "ri", "rs")
    wait_for(lambda: route_via(world, "ri", DC1_NET) == ["198.18.0.6"], 10,
             "ri routing to dc1 directly again")
    assert world.api("/routing")["down_links"] == []
    r = subprocess.run([sys.executable, "-m", "infralab", "link", "down", "rc", "rs",
                        "--run", str(world.rundir)], capture_output=True, text=True)
    assert r.returncode == 1 and "no link joins routers rc and rs" in r.stderr, r.stderr
