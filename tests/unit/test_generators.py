"""Research use: generated topologies are valid and route end to end."""

from ipaddress import IPv4Network

import pytest

from controllers.spf import Graph, compute
from tests.unit.simnet import SimNet
from topologies.generators import generate
from topologies.model import TopologyError
from topologies.plan import make_plan


def test_generated_chain_routes_from_one_end_to_the_other():
    net = SimNet(generate("chain,routers=5,hosts=1"))
    reply = net.ping("h1x1", "h5x1")
    assert reply is not None and reply.icmp_type == 0 and reply.ttl == 64 - 5  # 5 routers


def test_generated_campus_reaches_the_server_through_its_nat():
    topo = generate("campus,subnets=3,hosts=2")
    assert len(topo.hosts) == 3 * 2 + 1
    net = SimNet(topo)
    reply = net.ping("h3x2", "server")
    assert reply is not None and reply.icmp_type == 0
    seen = net.hosts["server"].received[-1]
    assert str(seen.ip_src) == "203.0.113.1"  # the PAT hides the campus


@pytest.mark.parametrize("spec,problem", [("campus,subnets=0", "1..200"),
                                          ("campus,size=3", "unexpected keyword"),
                                          ("mesh", "unknown generator")])
def test_generator_errors_are_topology_errors(spec, problem):
    with pytest.raises(TopologyError, match=problem):
        generate(spec)


# ---- research shapes (SCALE-1K), computed routes, sizes up to 1,000 hosts / 100 routers ----

@pytest.mark.parametrize("spec,hosts,routers,far", [
    ("campus,routers=3,subnets=2,hosts=2", 13, 4, ("h1", "server")),
    ("fattree,k=4", 16, 20, ("h1", "h16")),
    ("leafspine,spines=2,leaves=4,hosts=2", 8, 6, ("h1", "h8")),
    ("random,routers=12,degree=3,seed=7,hosts=1", 12, 12, ("h1", "h12")),
])
def test_generated_research_shapes_route_end_to_end(spec, hosts, routers, far):
    topo = generate(spec)
    assert (len(topo.hosts), len(topo.routers)) == (hosts, routers)
    net = SimNet(topo)
    reply = net.ping(*far)
    assert reply is not None and reply.icmp_type == 0, spec
    if not spec.startswith("campus"):  # no NAT: the far end saw the sender's own address
        assert str(net.hosts[far[1]].received[-1].ip_src) == str(topo.hosts[far[0]].address)


def test_generated_fattree_takes_a_shortest_path_and_spreads_equal_ones():
    topo = generate("fattree,k=4")
    net = SimNet(topo)
    reply = net.ping("h1", "h16")  # pod 0 -> pod 3: edge, agg, core, agg, edge
    assert reply is not None and reply.ttl == 64 - 5
    routes = compute(Graph(make_plan(topo)))["e0x0"]
    hops = routes[IPv4Network("10.3.1.0/24")].hops  # to pod 3: by both aggregation routers
    assert sorted(h.router for h in hops) == ["a0x0", "a0x1"], hops


def test_generated_leafspine_spreads_leaf_pairs_over_the_spines():
    topo = generate("leafspine,spines=4,leaves=8,hosts=1")
    hops = compute(Graph(make_plan(topo)))["l1"][IPv4Network("10.0.2.0/24")].hops
    assert sorted(h.router for h in hops) == ["s1", "s2", "s3", "s4"]  # every spine


def test_generated_random_graph_is_the_same_for_a_seed_and_connected():
    a, b = generate("random,routers=30,degree=3,seed=5"), generate("random,routers=30,seed=5")
    c = generate("random,routers=30,degree=3,seed=6")
    wiring = [sorted(f"{r} {s} {i}" for r in t.routers
                     for s, i in t.routers[r].interfaces.items()) for t in (a, b, c)]
    assert wiring[0] == wiring[1] and wiring[0] != wiring[2]
    net = SimNet(a)
    for far in ("h30", "h15"):  # every router reaches every subnet (routes computed)
        reply = net.ping("h1", far)  # an echo reply from far itself, not an ICMP error
        assert reply is not None and reply.icmp_type == 0, (far, reply)
        assert reply.ip_src == net.hosts[far].iface.ip


@pytest.mark.parametrize("spec", ["campus,routers=10,subnets=10,hosts=10",
                                  "random,routers=100,degree=3,seed=1,hosts=10",
                                  "fattree,k=16"])
def test_generated_thousand_hosts_and_a_hundred_routers_validate(spec):
    topo = generate(spec)
    assert len(topo.hosts) >= 1000 or len(topo.routers) >= 100, spec
    make_plan(topo)  # the wiring plan the controller gets: ports, MACs, routes


@pytest.mark.parametrize("spec,problem", [
    ("campus,subnets=2,hosts=250", "hosts 1..245"),  # 10.0.1.259 does not exist
    ("campus,routers=3,hosts=246", "hosts 1..245"),
    ("fattree,k=3", "k must be even"),
    ("leafspine,leaves=1", "leaves 2..200"),
    ("random,routers=10,degree=12", "degree must be 1.80..9"),
    ("random,routers=10,degree=x", "not a number"),
])
def test_generator_parameters_that_cannot_work_are_refused_up_front(spec, problem):
    with pytest.raises(TopologyError, match=problem):
        generate(spec)
