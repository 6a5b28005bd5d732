"""ROUTE-ZOO: research topologies (topohub) become routed networks; no root needed."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from controllers.spf import Graph, compute
from infralab.draw import to_dot
from services.dns.zone import load_zone, parse_zone
from services.gslb import config as gslb_config
from tests.unit.simnet import SimNet
from topologies import TopologyError, imported, overlay
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
    with pytest.raises(TopologyError, match=problem):
        imported.load(spec)


def test_route_zoo_draw_puts_routers_on_their_map():
    dot = to_dot(imported.build(TOY, "test/toy"))
    assert "layout=neato" in dot and '"r1\nAlpha"' in dot
    assert 'pos="0.000,0.000!"' in dot and 'pos="10.000,0.000!"' in dot
    assert 'label="5ms"' in dot


# ---- the services overlay --------------------------------------------------------------

def _abilene():
    return imported.load("zoo:Abilene")


def test_route_zoo_overlay_auto_places_the_course_services_from_the_graph():
    t = _abilene()
    placement = overlay.auto(t)
    assert [t.labels[r] for r in placement["sites"]] == ["New York", "Seattle"]  # furthest
    overlay.apply(t, placement)
    for name in ("root", "tldcom", "ns1", "gslb", "ldns1", "ldns2", "web1", "web2"):
        assert t.hosts[name].services, name
    # every host asks the resolver of its region: Los Angeles is nearer Seattle's site
    assert t.hosts["h6"].dns == t.hosts["ldns2"].address
    assert t.hosts["h3"].dns == t.hosts["ldns1"].address  # Washington: New York's
    # the NAT edge hides its router's hosts behind one PAT address per link
    nat = t.routers[placement["nat"]].nat
    assert nat and all(n.pat is not None for n in nat)
    assert {str(n.pat.address) for n in nat} == {f"203.0.113.{i}" for i in
                                                  range(1, len(nat) + 1)}


def test_route_zoo_overlay_files_are_valid_zones_and_gslb_config(tmp_path):
    t = overlay.apply(_abilene(), {"dns": {"root": "r1", "tld": "r2", "domain": "r3"},
                                   "gslb": "r8", "sites": ["r4", "r10"]})
    for rel, text in t.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    root = parse_zone(t.files["zones/root.zone"], origin=".")
    assert "a.gtld.com." in str(root.records)
    example = load_zone(tmp_path / "zones/example.com.zone")
    assert "ns.gslb.example.com." in str(example.records) and "10.0.8.244" in str(
        example.records)
    cfg = gslb_config.load(str(tmp_path / "gslb.yaml"))
    assert [m.address for m in cfg.pools["web"].members] == [
        t.hosts["web1"].address, t.hosts["web2"].address]
    assert cfg.topology == {"region1": ["dc1", "dc2"], "region2": ["dc2", "dc1"]}


@pytest.mark.parametrize("placement, problem", [
    ({"dns": {"root": "r1", "tld": "r2"}, "sites": ["r4"]}, "dns.domain: missing"),
    ({"dns": {"root": "r1", "tld": "r2", "domain": "r99"}, "sites": ["r4"]},
     "no router 'r99'"),
    ({"dns": {"root": "r1", "tld": "r2", "domain": "r3"}, "sites": ["r4"], "nat": "r1"},
     "r1 carries a server"),
    ({"dns": {"root": "r1", "tld": "r2", "domain": "r3"}, "sites": ["r4"], "cdn": "r5"},
     "unknown key"),
])
def test_route_zoo_overlay_bad_placements_say_what_is_wrong(placement, problem):
    with pytest.raises(TopologyError, match=problem):
        overlay.apply(_abilene(), placement)


def test_route_zoo_overlay_file_errors_name_the_line(tmp_path):
    f = tmp_path / "services.yaml"
    f.write_text("dns: {root: r1, tld: r2, domain: r3}\nsites: [r4]\nnat: r77\n")
    with pytest.raises(TopologyError, match=r"services.yaml:3: nat: no router 'r77'"):
        overlay.load(str(f), _abilene())
