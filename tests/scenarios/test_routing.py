"""TB-CTRL on a live network: the controller turns OVS switches into IPv4 routers."""

import re

from infralab.testing import (
    assert_connectivity,
    assert_path,
    assert_reachable,
    assert_unreachable,
    http_fetch_check,
    ping_matrix,
)

CAMPUS = ["c1", "c2", "c3", "c4", "dhcp1", "ldns", "webc", "webd"]  # behind rc's NAT
HOMES = ["h1", "h2"]  # behind na, nb
PARTNER = ["p1"]  # reached through the double NAT only (tests/scenarios/test_nat.py)


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
    # rc sends everything unknown to ri; ri has no route to 10.99.0.0/16
    out = world.host("c1").cmd("ping -n -c1 -w3 10.99.0.1")
    assert re.search(r"From 198\.18\.0\.2 icmp_seq=\d+ Destination Net Unreachable", out), out


def test_tb_ctrl_silent_address_gets_host_unreachable_after_arp_fails(world):
    out = world.host("c1").cmd("ping -n -c1 -w6 10.1.2.99")
    assert re.search(r"From 10\.1\.1\.1 icmp_seq=\d+ Destination Host Unreachable", out), out


def test_tb_ctrl_same_subnet_traffic_is_switched_without_a_router_hop(world):
    out = world.host("c1").cmd("ping -n -c1 -w3 10.1.1.12")
    assert re.search(r"ttl=64 ", out), out
    assert all(ping_matrix(world, ["web1a"], ["web1b"]).values())
