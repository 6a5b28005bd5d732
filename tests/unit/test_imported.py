"""ROUTE-ZOO: research topologies (topohub) become routed networks; no root needed."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from controllers.spf import Graph, compute
from infralab.draw import to_dot
from tests.unit.simnet import SimNet
from topologies import TopologyError, imported
from topologies.plan import make_plan

# three cities in a line, 100 km and 1,000 km apart, plus a self-loop to ignore
TOY = {"graph": {"name": "toy"},
       "nodes": [{"id": 0, "name": "Alpha", "pos": [10.0, 50.0]},
                 {"id": 1, "name": "Beta", "pos": [11.0, 50.0]},
                 {"id": 2, "name": "Gamma", "pos": [20.0, 50.0]}],
       "edges": [{"source": 0, "target": 1, "dist": 100.0},
                 {"source": 1, "target": 2, "dist": 1000.0},
                 {"source": 2, "target": 2, "dist": 0.0}]}


def test_route_zoo_nodes_become_routers_and_edges_delayed_links():
    t = imported.build(TOY, "test/toy", hosts=2)
    assert sorted(t.routers) == ["r1", "r2", "r3"] and len(t.hosts) == 6
    assert t.labels["r2"] == "Beta" and t.positions["r3"] == (20.0, 50.0)
    delays = sorted(lp.delay for lp in t.links.values())
    assert delays == ["0.5ms", "5ms"]  # 5 us per km of fibre
    assert t.routing == "shortest-path" and not any(r.routes for r in t.routers.values())
    net = SimNet(t)
    ans = net.ping("h1", "h6")  # Alpha's first host to Gamma's second host
    assert ans is not None and ans.icmp_type == 0 and ans.ttl == 61  # 3 routers crossed


def test_route_zoo_delay_off_keeps_the_cost():
    t = imported.build(TOY, "test/toy", delay=False)
    assert all(lp.delay is None and lp.cost for lp in t.links.values())
    routes = compute(Graph(make_plan(t)))
    assert routes["r1"][IPv4Network("10.0.3.0/24")].cost == 500 + 5000


def test_route_zoo_abilene_from_topohub_is_connected_and_routed():
    pytest.importorskip("topohub")
    t = imported.load("zoo:Abilene")
    assert len(t.routers) == 11 and t.labels["r1"] == "New York"
    routes = compute(Graph(make_plan(t)))
    lans = {IPv4Network(f"10.0.{i}.0/24") for i in range(1, 12)}
    for r, table in routes.items():
        assert lans - set(table) == {IPv4Network(f"10.0.{r[1:]}.0/24")}, r
    # New York to Los Angeles: by Washington, Atlanta and Houston (4,536 km of fibre),
    # not by Chicago and Denver (5,039 km)
    ny_la = routes["r1"][IPv4Network("10.0.6.0/24")]
    assert [h.router for h in ny_la.hops] == ["r3"]
    assert round(ny_la.cost / 5) == 4536  # the metric: microseconds of one-way delay


@pytest.mark.parametrize("spec, problem", [
    ("zoo:NoSuchNet", "topohub has no topology 'topozoo/NoSuchNet'"),
    ("zoo:Abilene,hosts=x", "is not a number"),
    ("zoo:Abilene,colour=red", "unknown parameter"),
    ("zoo:Abilene,delay=maybe", "delay must be on or off"),
])
def test_route_zoo_bad_specs_say_what_is_wrong(spec, problem):
    pytest.importorskip("topohub")
    with pytest.raises(TopologyError, match=problem):
        imported.load(spec)


def test_route_zoo_draw_puts_routers_on_their_map():
    dot = to_dot(imported.build(TOY, "test/toy"))
    assert "layout=neato" in dot and '"r1\nAlpha"' in dot
    assert 'pos="0.000,0.000!"' in dot and 'pos="10.000,0.000!"' in dot
    assert 'label="5ms"' in dot
