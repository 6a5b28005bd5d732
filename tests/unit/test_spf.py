"""ROUTE-SPF (with ECMP) / ROUTE-FAILOVER: routes the controller computes from the graph,
checked by where packets go in the software network (no root)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

import topologies
from controllers.messages import FAST_FAILOVER, SELECT, GroupMod
from controllers.spf import Graph, compute
from tests.unit.simnet import SimNet
from topologies import loader
from topologies.plan import make_plan

# r1 -- r2 -- r4 and r1 -- r3 -- r4 (a square: two equal paths from h1 to h4), plus a
# long way round r1 -- r5 -- r4 with cost 5; no route written anywhere
SQUARE = """
name: square
routers:
  r1: {interfaces: {lan1: 10.0.1.1/24, a: 10.255.0.1/30, b: 10.255.0.5/30, e: 10.255.0.17/30}}
  r2: {interfaces: {a: 10.255.0.2/30, c: 10.255.0.9/30}}
  r3: {interfaces: {b: 10.255.0.6/30, d: 10.255.0.13/30}}
  r4: {interfaces: {c: 10.255.0.10/30, d: 10.255.0.14/30, f: 10.255.0.22/30,
                    lan4: 10.0.4.1/24}}
  r5: {interfaces: {e: 10.255.0.18/30, f: 10.255.0.21/30}}
links:
  e: {cost: 3}
  f: {cost: 2}
hosts:
  h1: {subnet: lan1, address: 10.0.1.10}
  h4: {subnet: lan4, address: 10.0.4.10}
"""

# a triangle: r1 -- r2 direct (cost 1) and r1 -- r3 -- r2 (cost 2): one best path, and a
# loop-free alternate through r3
TRIANGLE = """
name: triangle
routers:
  r1: {interfaces: {lan1: 10.0.1.1/24, a: 10.255.0.1/30, b: 10.255.0.5/30}}
  r2: {interfaces: {a: 10.255.0.2/30, c: 10.255.0.9/30, lan2: 10.0.2.1/24}}
  r3: {interfaces: {b: 10.255.0.6/30, c: 10.255.0.10/30}}
hosts:
  h1: {subnet: lan1, address: 10.0.1.10}
  h2: {subnet: lan2, address: 10.0.2.10}
"""

LAN4 = IPv4Network("10.0.4.0/24")


def hops_seen(net: SimNet, src: str, dst: str, ttl: int, sports) -> set[IPv4Address]:
    """Which router answered a TTL-`ttl` UDP probe, over several source ports (flows)."""
    seen = set()
    for sport in sports:
        net.udp(src, dst, sport, 33434, ttl=ttl)
        f = net.last(src)
        assert f is not None and f.icmp_type == 11, f"probe from port {sport} not answered"
        seen.add(f.ip_src)
    return seen


def test_route_spf_every_host_reaches_every_other_with_no_route_written():
    net = SimNet(loader.loads(SQUARE))
    for a, b in (("h1", "h4"), ("h4", "h1")):
        ans = net.ping(a, b)
        assert ans is not None and ans.icmp_type == 0, f"{a} -> {b}: {ans}"
    # router addresses are reachable too (traceroute's hops answer from them)
    ans = net.ping("h1", "10.255.0.21")
    assert ans is not None and ans.icmp_type == 0


def test_route_spf_ecmp_spreads_flows_over_both_equal_paths():
    net = SimNet(loader.loads(SQUARE))
    r1 = net.routing.routes["r1"][LAN4]
    assert [h.router for h in r1.hops] == ["r2", "r3"] and r1.backup is None
    # the second hop of different flows is r2 for some and r3 for others
    assert hops_seen(net, "h1", "h4", 2, range(5000, 5016)) == {
        IPv4Address("10.255.0.2"), IPv4Address("10.255.0.6")}
    # one flow always takes one path (no reordering within a flow)
    assert len(hops_seen(net, "h1", "h4", 2, [5000] * 6)) == 1
    groups = [g for g in net.tables["r1"].groups.values() if g.kind == SELECT]
    assert len(groups) == 1 and len(groups[0].buckets) == 2


def test_route_cost_and_delay_steer_the_path():
    t = loader.loads(SQUARE)
    t.links["e"].cost = 0.5  # r1 -- r5 -- r4 now costs 2.5 > 2: still the square
    assert [h.router for h in compute(Graph(make_plan(t)))["r1"][LAN4].hops] == ["r2", "r3"]
    t.links["f"].cost = 1  # 1.5 < 2: the long way round is now the short one
    assert [h.router for h in compute(Graph(make_plan(t)))["r1"][LAN4].hops] == ["r5"]
    t = loader.loads(SQUARE.replace("e: {cost: 3}", "e: {delay: 1ms}").replace(
        "f: {cost: 2}", "f: {delay: 500us}"))
    assert [h.router for h in compute(Graph(make_plan(t)))["r1"][LAN4].hops] == ["r5"]


def test_route_failover_fast_failover_group_moves_traffic_before_any_recompute():
    net = SimNet(loader.loads(TRIANGLE))
    route = net.routing.routes["r1"][IPv4Network("10.0.2.0/24")]
    assert [h.router for h in route.hops] == ["r2"] and route.backup.router == "r3"
    assert any(g.kind == FAST_FAILOVER for g in net.tables["r1"].groups.values())
    assert net.ping("h1", "h2").icmp_type == 0
    net.link("r1", "r2", up=False, recompute=False)  # only the switches know
    ans = net.ping("h1", "h2")
    assert ans is not None and ans.icmp_type == 0, "the backup did not carry the ping"
    assert hops_seen(net, "h1", "h2", 2, [6000]) == {IPv4Address("10.255.0.6")}  # via r3


def test_route_failover_without_a_backup_needs_the_recompute():
    t = loader.loads(SQUARE)
    net = SimNet(t)
    # r1 -- r2 down: r1 still has r3 (the ECMP group's bucket liveness), for every flow
    net.link("r1", "r2", up=False, recompute=False)
    assert hops_seen(net, "h1", "h4", 2, range(5000, 5008)) == {IPv4Address("10.255.0.6")}
    net.link("r1", "r3", up=False, recompute=False)  # now both equal paths are gone
    assert net.ping("h1", "h4") is None  # the switches alone cannot find r5
    net.link("r1", "r3", up=False)  # the controller hears of both and recomputes
    net.link("r1", "r2", up=False)
    assert [h.router for h in net.routing.routes["r1"][LAN4].hops] == ["r5"]
    ans = net.ping("h1", "h4")
    assert ans is not None and ans.icmp_type == 0
    # and back: the square is shorter again
    net.link("r1", "r3", up=True)
    net.link("r1", "r2", up=True)
    assert [h.router for h in net.routing.routes["r1"][LAN4].hops] == ["r2", "r3"]
    assert net.ping("h1", "h4").icmp_type == 0


def test_route_failover_recompute_sends_only_what_changed():
    net = SimNet(loader.loads(SQUARE))
    everything = sum(len(r.connect(net.now)) for r in net.routers.values())
    sent = net.link("r1", "r5", up=False)
    assert 0 < sent < everything // 4, (sent, everything)
    # r2 and r3 never route through r1 -- r5 for anything but that link's own /30
    assert net.routing.routes["r4"][LAN4.__class__("10.0.1.0/24")].hops  # still routed


def test_route_spf_written_routes_win_over_computed_ones():
    t = loader.loads(SQUARE)
    t.router("r1").routes.append(topologies.Route(LAN4, IPv4Address("10.255.0.18")))  # r5
    net = SimNet(t)
    assert hops_seen(net, "h1", "h4", 2, range(5000, 5008)) == {IPv4Address("10.255.0.18")}


def test_route_spf_static_mode_computes_nothing():
    t = loader.loads(SQUARE.replace("name: square", "name: square\nrouting: static"))
    net = SimNet(t)
    assert net.routing.routes["r1"] == {}
    ans = net.ping("h1", "h4")
    assert ans is not None and (ans.icmp_type, ans.icmp_code) == (3, 0)  # no route


def test_route_spf_unknown_mode_is_refused_with_its_line():
    with pytest.raises(topologies.TopologyError, match=r":3: routing: unknown routing 'ospf'"):
        loader.loads(SQUARE.replace("name: square", "name: square\nrouting: ospf"))


def test_route_spf_nat_boundaries_keep_private_space_private():
    """World without a route written: the partner's and the campus's 10.1.1.0/24 never
    meet; the internet reaches the campus only by the NAT's public addresses."""
    t = topologies.load(topologies.builtin("world"))
    for r in t.routers.values():
        r.routes.clear()
    routes = compute(Graph(make_plan(t)))
    lan1 = IPv4Network("10.1.1.0/24")
    assert lan1 not in routes["rc"] and lan1 not in routes["rp"]  # each has its own
    private = [IPv4Network(p) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
    for r in ("ri", "rs", "rb", "na", "nb"):
        assert not [p for p in routes[r] if any(p.subnet_of(x) for x in private)], r
    assert routes["ri"][IPv4Network("203.0.113.1/32")].hops[0].router == "rc"
    assert routes["ri"][IPv4Network("203.0.113.80/32")].hops[0].router == "rc"
    assert routes["rc"][IPv4Network("172.30.1.0/24")].hops[0].router == "rp"  # partner, NATed
    assert routes["rp"][IPv4Network("172.31.1.0/24")].hops[0].router == "rc"
    assert IPv4Network("192.168.1.0/24") not in routes["ri"]  # behind the home NAT na
    assert routes["na"][IPv4Network("198.51.100.0/25")].hops[0].router == "ri"


def test_route_spf_group_ids_are_shared_and_released():
    net = SimNet(loader.loads(SQUARE))
    r1 = net.routers["r1"]
    before = {g for g in net.tables["r1"].groups if g >= 0x10000}
    assert before  # the ECMP group (shared by every prefix behind r4)
    msgs = []
    for a, b in (("r1", "r2"), ("r1", "r3")):
        msgs += [m for m in (net.routing.port_status(a, *[
            x.port for x in net.routing.graph.adjacent[a] if x.neighbour == b], False)
            or {}).items()]
    for name, routes in msgs:
        net._from_controller(name, net.routers[name].set_routes(net.now, routes))
    left = {g for g in net.tables["r1"].groups if g >= 0x10000}
    assert not (before & left), "a group no route uses was left installed"
    assert not any(isinstance(m, GroupMod) and m.delete for m in r1.connect(net.now)[3:])


def test_route_failover_can_be_left_to_the_recompute_alone():
    t = loader.loads(TRIANGLE.replace("name: triangle", "name: triangle\nfast_failover: false"))
    net = SimNet(t)
    assert net.routing.routes["r1"][IPv4Network("10.0.2.0/24")].backup is None
    assert not any(g.kind == FAST_FAILOVER for g in net.tables["r1"].groups.values())
    net.link("r1", "r2", up=False, recompute=False)
    assert net.ping("h1", "h2") is None  # nothing in the switch moves the traffic
    net.link("r1", "r2", up=False)
    assert net.ping("h1", "h2").icmp_type == 0
