"""TB-CTRL: the routing logic, pushed through simulated flow tables (no switch, no root)."""

from ipaddress import IPv4Address

import pytest

import topologies
from controllers.messages import REASON_ACTION, FlowMod, Output, PacketOut
from controllers.router import ARP_TRIES, RouterLogic
from tests.unit.flowsim import FlowSim
from tests.unit.simnet import SimNet
from topologies.plan import make_plan
from wire import frames as pk


@pytest.fixture
def duo() -> SimNet:
    return SimNet(topologies.load(topologies.builtin("duo")))


def test_tb_ctrl_routers_resolve_static_next_hops_on_connect(duo):
    assert duo.routers["r1"].unresolved_next_hops() == []
    assert duo.routers["r2"].unresolved_next_hops() == []
    assert str(duo.routers["r1"].neighbors[IPv4Address("10.255.0.2")].mac).startswith("02:1a")


def test_tb_ctrl_same_subnet_hosts_are_switched_not_routed(duo):
    reply = duo.ping("h1", "h2")
    assert reply is not None and reply.icmp_type == 0
    assert reply.ttl == 64  # no router hop: TTL untouched


def test_tb_ctrl_cross_subnet_ping_decrements_ttl_once_per_router(duo):
    one = duo.ping("h1", "h3")
    assert one is not None and one.icmp_type == 0 and one.ttl == 63
    two = duo.ping("h1", "h5")
    assert two is not None and two.icmp_type == 0 and two.ttl == 62
    assert two.ip_src == IPv4Address("10.0.4.10")


def test_tb_ctrl_second_packet_is_forwarded_by_flows_alone(duo):
    duo.ping("h1", "h4")
    before = {n: r.counters.packet_in for n, r in duo.routers.items()}
    assert duo.ping("h1", "h4").icmp_type == 0
    assert {n: r.counters.packet_in for n, r in duo.routers.items()} == before


def test_tb_ctrl_gateway_answers_ping_on_any_of_its_addresses(duo):
    assert duo.ping("h1", "10.0.1.1").icmp_type == 0
    assert duo.ping("h1", "10.0.2.1").icmp_type == 0
    far = duo.ping("h1", "10.0.3.1")
    assert far.icmp_type == 0 and far.ip_src == IPv4Address("10.0.3.1")


def test_tb_ctrl_ttl_expiry_gives_time_exceeded_from_each_hop_in_order(duo):
    hops = []
    for ttl in (1, 2, 3):
        ans = duo.probe("h1", "h5", ttl)
        assert ans is not None
        hops.append((str(ans.ip_src), ans.icmp_type, ans.icmp_code))
    assert hops == [("10.0.1.1", 11, 0), ("10.255.0.2", 11, 0), ("10.0.4.10", 3, 3)]


def test_tb_ctrl_time_exceeded_quotes_the_original_probe(duo):
    ans = duo.probe("h1", "h5", 1)
    quoted = pk.parse(b"\0" * 12 + b"\x08\x00" + ans.l4[8:])
    assert quoted.ip_dst == IPv4Address("10.0.4.10") and quoted.proto == pk.PROTO_UDP


def test_tb_ctrl_no_route_gives_net_unreachable():
    t = topologies.load(topologies.builtin("duo"))
    t.routing = "static"  # only the routes written down: r2 has none back to h4's subnet
    t.routers["r2"].routes.clear()
    t.routers["r2"].routes.append(topologies.Route(
        __import__("ipaddress").IPv4Network("10.0.1.0/24"), IPv4Address("10.255.0.1")))
    net = SimNet(t)
    ans = net.ping("h4", "10.0.2.10")
    assert ans is not None and (ans.icmp_type, ans.icmp_code) == (3, 0)
    assert ans.ip_src == IPv4Address("10.0.3.1")


def test_tb_ctrl_silent_host_gives_host_unreachable_after_arp_retries(duo):
    assert duo.ping("h1", "10.0.3.99") is None  # queued while the router asks
    h1 = duo.hosts["h1"]
    duo.advance(ARP_TRIES * 1.0 + 1)
    ans = h1.received[-1]
    assert (ans.icmp_type, ans.icmp_code) == (3, 1)
    assert ans.ip_src == IPv4Address("10.255.0.2")  # r2 gave up, from its ingress address
    assert duo.routers["r2"].pending == {}


def test_tb_ctrl_router_answers_arp_only_for_its_own_address_on_the_asking_port(duo):
    r1 = duo.routers["r1"]

    def arp_replies(target: str) -> list:
        req = pk.arp(pk.ARP_REQUEST, "02:00:00:00:00:01", IPv4Address("10.0.1.10"),
                     pk.ZERO_MAC, IPv4Address(target))
        msgs = r1.packet_in(duo.now, 1, req, REASON_ACTION)  # port 1: lan1, h1's
        return [f for m in msgs if isinstance(m, PacketOut)
                and (f := pk.parse(m.data)).arp_op == pk.ARP_REPLY]

    own = arp_replies("10.0.1.1")  # positive control: its address on lan1
    assert len(own) == 1 and own[0].arp_spa == IPv4Address("10.0.1.1"), own
    assert arp_replies("10.0.1.99") == []  # an address nobody here owns
    assert arp_replies("10.0.2.1") == []  # its lan2 address, asked on lan1: no proxy ARP


def test_tb_ctrl_malformed_packet_in_is_counted_and_dropped(duo):
    r1 = duo.routers["r1"]
    for junk in (b"", b"\x01" * 13, b"\xff" * 12 + b"\x08\x00" + b"\x45", pk.ethernet(
            "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:09", pk.ETH_ARP, b"\0\1")):
        assert r1.packet_in(duo.now, 1, junk, REASON_ACTION) == []
    assert r1.counters.malformed == 4


def test_tb_ctrl_no_icmp_error_about_an_icmp_error(duo):
    r1 = duo.routers["r1"]
    err = pk.icmp(3, 1, b"\0" * 4, b"\x45" + b"\0" * 27)
    ip = pk.ipv4(IPv4Address("10.0.1.10"), IPv4Address("10.0.3.10"), pk.PROTO_ICMP, err, ttl=1)
    frame = pk.ethernet("02:1a:00:01:01:01", "02:00:00:00:00:01", pk.ETH_IPV4, ip)
    assert r1.packet_in(duo.now, 1, frame, 2) == []


def test_tb_ctrl_flow_tables_have_no_ambiguous_entries_for_any_packet(duo):
    # Exercising every pair of hosts would raise AmbiguousFlows on equal-priority overlaps.
    for a in duo.hosts:
        for b in duo.hosts:
            if a != b:
                assert duo.ping(a, b).icmp_type == 0, (a, b)


def test_tb_ctrl_reconnect_reinstalls_known_neighbours():
    plan = make_plan(topologies.load(topologies.builtin("duo")))
    r = RouterLogic(plan.router("r1"))
    r._learn(0.0, IPv4Address("10.0.1.10"), "02:00:00:00:00:01", 1, r.iface_by_port[1])
    sim = FlowSim()
    sim.apply(r.connect(1.0))
    host_flows = [f for f in sim.flows if isinstance(f, FlowMod)
                  and f.match.get("ipv4_dst") == "10.0.1.10"]
    assert len(host_flows) == 1 and Output(1) not in host_flows[0].actions
    assert host_flows[0].metadata == (1, 0xFFFFFFFF)


def test_tb_ctrl_generated_icmp_errors_are_rate_limited(duo):
    """A flood of TTL-1 packets cannot make the router answer without bound."""
    from controllers.router import ICMP_ERRORS_PER_S

    h = duo.hosts["h1"]
    before = len(h.received)
    for _ in range(ICMP_ERRORS_PER_S + 50):  # all within the same instant
        duo.probe("h1", "h5", 1)
    errors = len(h.received) - before
    assert errors == ICMP_ERRORS_PER_S
    assert duo.routers["r1"].counters.icmp_rate_limited == 50
    duo.advance(1.0)  # the bucket refills: the next probe gets its time exceeded again
    again = duo.probe("h1", "h5", 1)
    assert again is not None and (again.icmp_type, again.icmp_code) == (11, 0), again
