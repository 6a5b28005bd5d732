"""Cluster runs: which server each router, host and delay node goes to."""

import pytest

import topologies
from tests.unit.test_topology import GOOD, error_of
from topologies import loads
from topologies.generators import generate
from topologies.model import TopologyError
from topologies.placement import crossing, place
from topologies.plan import make_plan

SERVERS = ["s1", "s2"]


def _world():
    topo = topologies.load(topologies.builtin("world"))
    return topo, make_plan(topo)


def test_every_host_is_on_its_routers_server_so_only_router_links_cross():
    topo, plan = _world()
    where = place(plan, SERVERS)
    assert set(where) == set(topo.routers) | set(topo.hosts)
    subnets = topo.subnets()
    for h in topo.hosts:
        (router,) = subnets[topo.hosts[h].subnet].routers  # a host subnet has one router
        assert where[h] == where[router], h
    crossed = crossing(plan, where)
    assert crossed and all(a in topo.routers and b in topo.routers for a, b in crossed)
    assert set(where.values()) == set(SERVERS)  # both servers are used


def test_default_placement_balances_hosts_over_servers():
    topo = generate("campus,routers=4,subnets=2,hosts=10")
    plan = make_plan(topo)
    where = place(plan, ["a", "b", "c"])
    load = {s: sum(1 for n in where if where[n] == s) for s in ("a", "b", "c")}
    heaviest = 1 + 2 * 10  # one access router with its two subnets of ten hosts
    assert max(load.values()) - min(load.values()) <= heaviest, load
    assert min(load.values()) > 0


def test_pinned_routers_go_where_the_topology_says_by_name_or_position():
    topo, plan = _world()
    where = place(plan, SERVERS, {"rc": "s2", "ri": "1"})
    assert where["rc"] == "s2" and where["ri"] == "s1"
    assert where["c1"] == "s2"  # a campus host follows its router


@pytest.mark.parametrize("pinned,problem", [({"rc": "s9"}, "not one of s1, s2"),
                                            ({"rc": "3"}, "position 1..2"),
                                            ({"zz": "s1"}, "no such router")])
def test_bad_placement_is_refused_naming_the_router(pinned, problem):
    _, plan = _world()
    with pytest.raises(TopologyError, match=problem) as e:
        place(plan, SERVERS, pinned)
    assert e.value.where == f"placement.{next(iter(pinned))}"


def test_placement_block_loads_and_an_unknown_router_names_the_line():
    t = loads(GOOD + "placement: {r1: 2, r2: east}\n")
    assert t.placement == {"r1": "2", "r2": "east"}
    e = error_of(GOOD + "placement:\n  r9: 1\n")
    assert e.where == "placement.r9" and "no such router" in str(e)
    assert e.line is not None and e.line > GOOD.count("\n")
