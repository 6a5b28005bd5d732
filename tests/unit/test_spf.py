"""ROUTE-SPF (with ECMP) / ROUTE-FAILOVER: routes the controller computes from the graph,
checked by where packets go in the software network (no root)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

import topologies
from controllers.messages import Bundle, FlowMod
from controllers.pipeline import T_ROUTE
from controllers.router import _masked
from controllers.spf import Graph, compute
from tests.unit.simnet import SimNet
from topologies import loader
from topologies.plan import make_plan
from wire import frames as pk

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
    assert bundles(net, "r1", LAN4) == [Bundle((2, 3))]  # by the 5-tuple, UDP ports too


def test_route_cost_and_delay_steer_the_path():
    t = loader.loads(SQUARE)
    t.links["e"].cost = 0.5  # r1 -- r5 -- r4 now costs 2.5 > 2: still the square
    assert [h.router for h in compute(Graph(make_plan(t)))["r1"][LAN4].hops] == ["r2", "r3"]
    t.links["f"].cost = 1  # 1.5 < 2: the long way round is now the short one
    assert [h.router for h in compute(Graph(make_plan(t)))["r1"][LAN4].hops] == ["r5"]
    t = loader.loads(SQUARE.replace("e: {cost: 3}", "e: {delay: 1ms}").replace(
        "f: {cost: 2}", "f: {delay: 500us}"))
    assert [h.router for h in compute(Graph(make_plan(t)))["r1"][LAN4].hops] == ["r5"]


def bundles(net: SimNet, router: str, prefix: IPv4Network) -> list[Bundle]:
    """The bundle_load actions of `router`'s route flow for `prefix`."""
    (flow,) = [f for f in net.tables[router].table(T_ROUTE)
               if f.match.get("ipv4_dst") == _masked(prefix)]
    return [a for a in flow.actions if isinstance(a, Bundle)]


def test_route_failover_fast_failover_moves_traffic_before_any_recompute():
    net = SimNet(loader.loads(TRIANGLE))
    route = net.routing.routes["r1"][IPv4Network("10.0.2.0/24")]
    assert [h.router for h in route.hops] == ["r2"] and route.backup.router == "r3"
    assert bundles(net, "r1", IPv4Network("10.0.2.0/24")) == [Bundle((2, 3), failover=True)]
    assert net.ping("h1", "h2").icmp_type == 0
    net.link("r1", "r2", up=False, recompute=False)  # only the switches know
    ans = net.ping("h1", "h2")
    assert ans is not None and ans.icmp_type == 0, "the backup did not carry the ping"
    assert hops_seen(net, "h1", "h2", 2, [6000]) == {IPv4Address("10.255.0.6")}  # via r3


def test_route_failover_without_a_backup_needs_the_recompute():
    t = loader.loads(SQUARE)
    net = SimNet(t)
    # r1 -- r2 down: r1 still has r3 (the bundle picks live ports only), for every flow
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
    before = {r: dict(t) for r, t in net.routing.routes.items()}
    (port,) = [a.port for a in net.routing.graph.adjacent["r1"] if a.neighbour == "r5"]
    changed = net.routing.port_status("r1", port, False)
    assert changed and set(changed) < set(net.routers), "every router was sent something"
    for name, routes in changed.items():
        msgs = net.routers[name].set_routes(net.now, routes)
        sent = {m.match.get("ipv4_dst") for m in msgs
                if isinstance(m, FlowMod) and m.table == T_ROUTE}
        moved = {p for p in routes.keys() | before[name].keys()
                 if routes.get(p) != before[name].get(p)}
        assert sent == {_masked(p) for p in moved}, (name, sent, moved)
    assert "r2" not in changed and "r3" not in changed  # nothing of theirs used r1 -- r5


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


def test_route_spf_ecmp_and_failover_work_through_a_nat_outside_port():
    """The chosen port goes to the metadata like a single next hop's, so the NAT's
    post-routing table still sees its outside port: a PAT over two equal uplinks."""
    t = loader.loads(SQUARE.replace(
        "r1: {interfaces: {lan1: 10.0.1.1/24, a: 10.255.0.1/30, b: 10.255.0.5/30, "
        "e: 10.255.0.17/30}}",
        "r1:\n    interfaces: {lan1: 10.0.1.1/24, a: 10.255.0.1/30, b: 10.255.0.5/30, "
        "e: 10.255.0.17/30}\n    nat: {a: {pat: 10.255.0.1}, b: {pat: 10.255.0.5}}"))
    net = SimNet(t)
    assert bundles(net, "r1", LAN4) == [Bundle((2, 3))]
    seen = set()
    for sport in range(5000, 5012):
        net.udp("h1", "h4", sport, 7)
        f = net.last("h4")
        assert f is not None and f.proto == pk.PROTO_UDP, "the datagram did not arrive"
        seen.add(f.ip_src)
    assert seen == {IPv4Address("10.255.0.1"), IPv4Address("10.255.0.5")}  # both uplinks


def test_route_failover_can_be_left_to_the_recompute_alone():
    t = loader.loads(TRIANGLE.replace("name: triangle", "name: triangle\nfast_failover: false"))
    net = SimNet(t)
    assert net.routing.routes["r1"][IPv4Network("10.0.2.0/24")].backup is None
    assert bundles(net, "r1", IPv4Network("10.0.2.0/24")) == []
    net.link("r1", "r2", up=False, recompute=False)
    assert net.ping("h1", "h2") is None  # nothing in the switch moves the traffic
    net.link("r1", "r2", up=False)
    assert net.ping("h1", "h2").icmp_type == 0


def test_route_spf_link_prefixes_can_be_suppressed_to_keep_tables_small():
    """announce_links: false (as OSPF's prefix-suppression): host subnets are routed, the
    routers' link prefixes are not (but a NAT address on a link still is)."""
    t = loader.loads(SQUARE.replace("name: square", "name: square\nannounce_links: false"))
    t.nat("r4", {"f": {"pat": "10.255.0.22"}})  # a PAT on r4's own address on link f
    routes = compute(Graph(make_plan(t)))
    assert LAN4 in routes["r1"]
    assert not [p for p in routes["r1"] if p.subnet_of(IPv4Network("10.255.0.0/16"))
                and p.prefixlen == 30], routes["r1"].keys()
    assert routes["r1"][IPv4Network("10.255.0.22/32")].hops  # the PAT address is routed
    full = compute(Graph(make_plan(loader.loads(SQUARE))))
    assert len(full["r1"]) == 4 and len(routes["r1"]) == 2  # (3 links + lan4; lan4 + PAT)
