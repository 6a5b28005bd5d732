"""The plan behind the prompt's pingall (TB-TOPO): which address each host pings each
other host by, and which pairs the world's NATs hide as configured (not loss)."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from emulation.reachability import Result, configured_routes
from topologies import loader
from topologies.plan import make_plan
from topologies.reach import probes

WORLD = Path(__file__).resolve().parents[2] / "topologies" / "world.yaml"
LEASES = {"c1": "10.1.1.11", "c2": "10.1.1.12", "c3": "10.1.2.13", "c4": "10.1.2.14"}


def world_probes(**leases: str | None):
    topo = loader.load(WORLD)
    addresses = {n: h.address for n, h in topo.hosts.items()}
    addresses.update({n: IPv4Address(a) if a else None for n, a in {**LEASES, **leases}.items()})
    got = probes(topo, addresses, configured_routes(topo, make_plan(topo)))
    return topo, {(p.src, p.dst): p for p in got}


def test_pingall_plan_covers_every_ordered_pair_of_the_topologys_hosts_only():
    topo, by_pair = world_probes()
    n = len(topo.hosts)
    assert len(by_pair) == n * (n - 1)
    assert not any(a.startswith("dly") or b.startswith("dly") for a, b in by_pair)


def test_pingall_plan_uses_leases_and_private_addresses_inside_the_campus():
    _, by_pair = world_probes()
    p = by_pair[("webc", "c3")]
    assert (p.address, p.hidden, p.mapped) == (IPv4Address("10.1.2.13"), False, False)


def test_pingall_plan_reaches_a_host_behind_a_nat_by_its_static_mapping():
    _, by_pair = world_probes()
    webc = by_pair[("ns1", "webc")]  # static 10.1.9.80 <-> 203.0.113.80 on rc's wan
    assert (webc.address, webc.mapped) == (IPv4Address("203.0.113.80"), True)
    p1 = by_pair[("c1", "p1")]  # the double NAT: the partner as 172.30.1.10
    assert (p1.address, p1.mapped) == (IPv4Address("172.30.1.10"), True)
    back = by_pair[("p1", "c1")]  # and c1 as rc shows lan1 to that partner
    assert (back.address, back.mapped) == (IPv4Address("172.31.1.11"), True)


def test_pingall_plan_hides_pat_and_pool_hosts_from_unsolicited_inbound():
    _, by_pair = world_probes()
    for src, dst in (("ns1", "c1"), ("ns1", "c3"), ("h1", "h2"), ("ns1", "webd")):
        p = by_pair[(src, dst)]
        assert p.hidden and p.address is None, (src, dst, p)
    assert "behind rc's NAT on wan" == by_pair[("ns1", "c1")].why
    # a source its own NAT does not translate: lan2 is not in rc's partner rule
    assert by_pair[("c3", "p1")].hidden and "not inside rc's NAT on plink" in \
        by_pair[("c3", "p1")].why
    # the partner line carries no route to the internet
    assert by_pair[("p1", "ns1")].hidden and "no route from rp" in by_pair[("p1", "ns1")].why


def test_pingall_plan_pings_outbound_through_a_pat():
    _, by_pair = world_probes()
    for src, dst in (("c1", "ns1"), ("h1", "rv"), ("c3", "web2a")):
        p = by_pair[(src, dst)]
        assert not p.hidden and not p.mapped and p.address is not None, (src, dst, p)


def test_pingall_counts_an_unleased_host_as_loss_not_as_hidden():
    _, by_pair = world_probes(c2=None)
    p = by_pair[("c1", "c2")]
    assert p.address is None and not p.hidden and "c2 has no address" in p.why
    result = Result([p])
    assert result.lost == [p] and result.loss_percent == 100.0


def test_pingall_summary_separates_loss_from_hidden_pairs():
    _, by_pair = world_probes()
    ps = [by_pair[("c1", "ns1")], by_pair[("c1", "c2")], by_pair[("ns1", "c1")]]
    result = Result(ps, reached={("c1", "ns1"): True, ("c1", "c2"): False})
    assert result.summary() == "1/2 reachable, 50% loss; 1 pairs hidden by NAT as configured"
    assert [(p.src, p.dst) for p in result.lost] == [("c1", "c2")]
