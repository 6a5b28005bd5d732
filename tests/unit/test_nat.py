"""NAT-*: the controller's NAT pushed through simulated flow tables (no switch, no root).

Each test states what the network must do — which address the server saw, whether an
unsolicited packet arrived, which host an ICMP error reached — and SimNet carries real
frames through the flows the NAT logic returned.
"""

from ipaddress import IPv4Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.simnet import SimNet
from topologies import loader
from topologies.model import TopologyError
from wire import frames as pk

NATNET = """
name: natnet
routers:
  rc:
    interfaces: {lan: 10.1.1.1/24, dmz: 10.1.9.1/24, wan: 198.18.0.1/30,
                 partner: 172.29.0.1/30}
    routes:
      - {to: default, via: 198.18.0.2}
      - {to: 172.30.1.0/24, via: 172.29.0.2}
    nat:
      wan:
        pat: {address: 203.0.113.1, inside: [10.1.1.0/25]}
        pool: {addresses: 203.0.113.16/30, inside: [10.1.1.128/25]}
        static: [{inside: 10.1.9.80, outside: 203.0.113.80}]
        vip: [{address: 203.0.113.90, port: 80, servers: [10.1.9.80, 10.1.9.81]}]
        timeouts: {udp: 30, pool: 20, icmp: 10}
      partner:
        static: [{inside: 10.1.1.0/24, outside: 172.31.1.0/24}]
  ri:
    interfaces: {wan: 198.18.0.2/30, net: 198.18.5.1/24}
    routes: [{to: 203.0.113.0/24, via: 198.18.0.1}]
  rp:
    interfaces: {partner: 172.29.0.2/30, plan: 10.1.1.1/24}
    routes: [{to: 172.31.1.0/24, via: 172.29.0.1}]
    nat:
      partner:
        static: [{inside: 10.1.1.0/24, outside: 172.30.1.0/24}]
hosts:
  c1: {subnet: lan, address: 10.1.1.11}
  c2: {subnet: lan, address: 10.1.1.12}
  c3: {subnet: lan, address: 10.1.1.200}
  c4: {subnet: lan, address: 10.1.1.201}
  c5: {subnet: lan, address: 10.1.1.202}
  webc: {subnet: dmz, address: 10.1.9.80}
  webd: {subnet: dmz, address: 10.1.9.81}
  srv: {subnet: net, address: 198.18.5.10}
  srv2: {subnet: net, address: 198.18.5.11}
  p1: {subnet: plan, address: 10.1.1.10}
"""
PAT = IPv4Address("203.0.113.1")


@pytest.fixture
def net() -> SimNet:
    n = SimNet(loader.loads(NATNET))
    n.hosts["srv"].udp_open.update({7000, 7001})
    n.hosts["c1"].udp_open.update({5000})
    n.hosts["c2"].udp_open.update({5000})
    return n


def ports(f: pk.Frame) -> tuple[int, int]:
    return int.from_bytes(f.l4[0:2], "big"), int.from_bytes(f.l4[2:4], "big")


def valid_l4(f: pk.Frame) -> bool:
    """The segment's checksum is right (what a real stack would check)."""
    assert f.ip_src is not None and f.ip_dst is not None
    return pk.l4_checksum(f.ip_src.packed, f.ip_dst.packed, f.proto, f.l4) in (0, 0xFFFF)


def test_nat_pat_hides_inside_hosts_behind_one_address_and_rewrites_ports(net):
    net.udp("c1", "srv", 5000, 7000)
    net.udp("c2", "srv", 5000, 7000)
    a, b = net.hosts["srv"].received[-2:]
    assert a.ip_src == b.ip_src == PAT  # NAT-HIDE: the server sees only the PAT address
    assert ports(a)[0] == 5000  # port preserved where free
    assert ports(b)[0] != 5000  # taken: c2 gets another port
    assert valid_l4(a) and valid_l4(b)
    # replies reach the right inside host, at its own port
    net.udp("srv", PAT, 7000, ports(b)[0])
    back = net.last("c2", pk.PROTO_UDP)
    assert back is not None and ports(back) == (7000, 5000) and valid_l4(back)
    assert back.ip_src == IPv4Address("198.18.5.10")


def test_nat_pat_second_packet_is_translated_by_flows_alone(net):
    net.udp("c1", "srv", 5000, 7000)
    before = net.routers["rc"].counters.packet_in
    net.udp("c1", "srv", 5000, 7000)
    net.udp("srv", PAT, 7000, 5000)
    assert net.routers["rc"].counters.packet_in == before
    assert net.last("c1", pk.PROTO_UDP) is not None


def test_nat_pat_unsolicited_inbound_is_dropped_and_counted(net):
    net.udp("srv", PAT, 7000, 5000)
    assert net.last("c1", pk.PROTO_UDP) is None and net.last("c2", pk.PROTO_UDP) is None
    nat = net.routers["rc"].nat
    assert nat.counters.inbound_dropped == 1
    assert nat.drain_events()[-1]["event"] == "drop"


def test_nat_pat_ping_ids_are_rewritten_so_two_hosts_can_share_one(net):
    r1 = net.ping("c1", "srv", ident=7)
    r2 = net.ping("c2", "srv", ident=7)
    assert r1 is not None and r1.icmp_type == 0 and r1.l4[4:6] == (7).to_bytes(2, "big")
    assert r2 is not None and r2.icmp_type == 0 and r2.l4[4:6] == (7).to_bytes(2, "big")
    seen = [f for f in net.hosts["srv"].received if f.proto == pk.PROTO_ICMP]
    assert {f.ip_src for f in seen} == {PAT}
    assert len({f.l4[4:6] for f in seen}) == 2  # two different ids on the outside
    assert all(pk.checksum(f.l4) == 0 for f in seen)


def test_nat_pat_translates_icmp_errors_back_to_the_inside_host(net):
    net.udp("c1", "srv", 5001, 9)  # closed port: srv answers port unreachable
    err = net.last("c1", pk.PROTO_ICMP)
    assert err is not None and (err.icmp_type, err.icmp_code) == (3, 3)
    q = pk.icmp_error_inner(err)
    assert q is not None and q.src == IPv4Address("10.1.1.11") and q.sport == 5001
    assert pk.checksum(err.l4) == 0


def test_nat_pat_traceroute_hop_beyond_the_nat_answers_the_inside_host(net):
    net.udp("c1", "srv", 5002, 33434, ttl=2)  # expires at ri, beyond the NAT
    err = net.last("c1", pk.PROTO_ICMP)
    assert err is not None and err.icmp_type == 11
    assert err.ip_src == IPv4Address("198.18.0.2")
    q = pk.icmp_error_inner(err)
    assert q is not None and (q.src, q.sport) == (IPv4Address("10.1.1.11"), 5002)


def test_nat_static_is_bidirectional_and_accepts_inbound(net):
    net.tcp("srv", "203.0.113.80", 40000, 80)
    got = net.last("webc", pk.PROTO_TCP)
    assert got is not None and got.ip_dst == IPv4Address("10.1.9.80") and valid_l4(got)
    net.tcp("webc", "srv", 80, 40000, flags=0x12)
    back = net.last("srv", pk.PROTO_TCP)
    assert back is not None and back.ip_src == IPv4Address("203.0.113.80") and valid_l4(back)


def test_nat_dynamic_pool_exhaustion_refuses_cleanly_and_recovers_after_timeout(net):
    net.udp("c3", "srv", 5000, 7000)
    net.udp("c4", "srv", 5000, 7000)
    pool_ips = {f.ip_src for f in net.hosts["srv"].received[-2:]}
    assert pool_ips == {IPv4Address("203.0.113.17"), IPv4Address("203.0.113.18")}
    net.udp("c5", "srv", 5000, 7000)
    err = net.last("c5", pk.PROTO_ICMP)
    assert err is not None and (err.icmp_type, err.icmp_code) == (3, 13)  # admin prohibited
    nat = net.routers["rc"].nat
    assert nat.counters.refused == 1
    assert any(e["event"] == "refuse" and e["inside"] == "10.1.1.202"
               for e in nat.drain_events())
    net.advance(22)  # pool timeout 20 s with no traffic: both addresses return
    net.udp("c5", "srv", 5000, 7000)
    assert net.hosts["srv"].received[-1].ip_src in pool_ips


def test_nat_timeout_udp_binding_expires_then_inbound_is_dropped(net):
    net.udp("c1", "srv", 5000, 7000)
    nat = net.routers["rc"].nat
    assert len(nat.entries) == 1
    net.advance(20)
    net.udp("srv", PAT, 7000, 5000)
    assert net.last("c1", pk.PROTO_UDP) is not None  # 20 s < 30 s: still there
    net.advance(31)
    assert not nat.entries
    ev = [e for e in nat.drain_events() if e["event"] == "expire"]
    assert ev and ev[-1]["reason"] == "idle timeout" and ev[-1]["packets"] >= 1
    before = len(net.hosts["c1"].received)
    net.udp("srv", PAT, 7000, 5000)
    assert len(net.hosts["c1"].received) == before


def test_nat_vip_spreads_connections_and_replies_come_from_the_vip(net):
    for sport in range(41000, 41004):
        net.tcp("srv", "203.0.113.90", sport, 80)
    hits = {h: len([f for f in net.hosts[h].received if f.proto == pk.PROTO_TCP])
            for h in ("webc", "webd")}
    assert hits == {"webc": 2, "webd": 2}
    net.tcp("webd", "srv", 80, 41001, flags=0x12)
    back = net.last("srv", pk.PROTO_TCP)
    assert back is not None and back.ip_src == IPv4Address("203.0.113.90")
    assert ports(back) == (80, 41001) and valid_l4(back)


def test_nat_double_nat_between_two_sites_with_the_same_prefix(net):
    net.udp("c1", "172.30.1.10", 5000, 7000)
    net.hosts["p1"].udp_open.add(7000)
    net.udp("c1", "172.30.1.10", 5000, 7000)
    got = net.last("p1", pk.PROTO_UDP)
    assert got is not None
    assert got.ip_src == IPv4Address("172.31.1.11")  # the partner sees campus as 172.31.1.x
    assert got.ip_dst == IPv4Address("10.1.1.10")
    net.udp("p1", "172.31.1.11", 7000, 5000)
    back = net.last("c1", pk.PROTO_UDP)
    assert back is not None and back.ip_src == IPv4Address("172.30.1.10") and valid_l4(back)


@pytest.mark.parametrize("filtering,delivered", [
    ("endpoint-independent", {"srv:7000", "srv:7001", "srv2:7000"}),
    ("address-dependent", {"srv:7000", "srv:7001"}),
    ("address-and-port-dependent", {"srv:7000"}),
])
def test_nat_holepunch_filtering_behaviours(net, filtering, delivered):
    nat = net.routers["rc"].nat
    net._from_controller("rc", nat.set_behaviour(net.now, "wan", filtering=filtering))
    net.udp("c1", "srv", 5000, 7000)
    got = set()
    for src, sport in (("srv", 7000), ("srv", 7001), ("srv2", 7000)):
        before = len(net.hosts["c1"].received)
        net.udp(src, PAT, sport, 5000)
        if len(net.hosts["c1"].received) > before:
            got.add(f"{src}:{sport}")
    assert got == delivered
    assert nat.counters.inbound_dropped == 3 - len(delivered)


@pytest.mark.parametrize("filtering,delivered", [
    ("endpoint-independent", {"srv:7000", "srv:7001", "srv2:7000"}),
    ("address-dependent", {"srv:7000", "srv:7001"}),
    ("address-and-port-dependent", {"srv:7000"}),
])
def test_nat_pat_tcp_filtering_of_new_inbound_connections(net, filtering, delivered):
    """RFC 5382 REQ-1/REQ-3 with the bindings in conntrack: c1's connection
    maps 10.1.1.11:5000 to PAT:5000 for every remote (endpoint-independent mapping: the
    second connection, to srv2, leaves from the same port); a SYN from outside to that
    port is a new connection conntrack does not know, so the controller lets it in by
    the filtering, commits it and c1 gets it; what the filtering refuses is dropped."""
    nat = net.routers["rc"].nat
    net._from_controller("rc", nat.set_behaviour(net.now, "wan", filtering=filtering))
    sent = []
    for dport in (7500, 7000):
        net.tcp("c1", "srv", 5000, dport)
        f = net.last("srv", pk.PROTO_TCP)
        sent += [ports(f)] if f is not None and f.ip_src == PAT else []
    assert sent == [(5000, 7500), (5000, 7000)]  # one mapping for both remotes
    got = set()
    for src, sport in (("srv", 7000), ("srv", 7001), ("srv2", 7000)):
        before = len(net.hosts["c1"].received)
        net.tcp(src, PAT, sport, 5000, flags=0x02 if sport != 7000 or src != "srv" else 0x12)
        new = net.hosts["c1"].received[before:]
        if new and new[-1].ip_dst == IPv4Address("10.1.1.11") and ports(new[-1])[1] == 5000:
            got.add(f"{src}:{sport}")
    assert got == delivered


def test_nat_holepunch_mapping_behaviour_endpoint_independent_vs_symmetric(net):
    nat = net.routers["rc"].nat
    net.udp("c1", "srv", 5000, 7000)
    net.udp("c1", "srv", 5000, 7001)
    eim = {ports(f)[0] for f in net.hosts["srv"].received[-2:]}
    assert eim == {5000}  # one mapping for every remote
    net._from_controller("rc", nat.set_behaviour(net.now, "wan",
                                                 mapping="address-and-port-dependent"))
    net.udp("c1", "srv", 5000, 7000)
    net.udp("c1", "srv", 5000, 7001)
    apdm = [ports(f)[0] for f in net.hosts["srv"].received[-2:]]
    assert len(set(apdm)) == 2  # symmetric: a new port per remote port


def test_nat_table_lists_entries_with_counters(net):
    net.udp("c1", "srv", 5000, 7000)
    rows = net.routers["rc"].nat.rows(net.now)
    pat = [r for r in rows if r["kind"] == "pat"]
    assert pat and pat[0]["inside"] == "10.1.1.11:5000" and pat[0]["outside"] == \
        "203.0.113.1:5000"
    assert any(r["kind"] == "static" and r["outside"] == "203.0.113.80" for r in rows)


@pytest.mark.parametrize("nat,problem", [
    ("{lan9: {pat: 203.0.113.1}}", "unknown interface 'lan9'"),
    ("{wan: {pat: 203.0.113.1, static: [{inside: 10.1.9.80, outside: 203.0.113.1}]}}",
     "overlaps"),
    ("{wan: {static: [{inside: 10.1.9.0/24, outside: 203.0.113.0/25}]}}", "differ in size"),
    ("{wan: {pat: 203.0.113.1, mapping: cone}}", "unknown behaviour"),
])
def test_nat_config_errors_name_the_rule(nat, problem):
    text = f"""name: bad
routers:
  rc:
    interfaces: {{lan: 10.1.1.1/24, dmz: 10.1.9.1/24, wan: 198.18.0.1/30}}
    nat: {nat}
"""
    with pytest.raises(TopologyError) as ei:
        loader.loads(text, source="bad.yaml")
    msg = str(ei.value)
    assert problem in msg and msg.startswith("bad.yaml:5: routers.rc.nat.")


CT_DUMP = (
    "tcp,orig=(src=10.0.1.10,dst=198.18.5.10,sport=34718,dport=80),reply=(src=198.18.5.10,"
    "dst=203.0.113.1,sport=80,dport=13633),zone=6657,protoinfo=(state=TIME_WAIT)\n"
    "tcp,orig=(src=10.9.9.9,dst=1.2.3.4,sport=1,dport=2),reply=(src=1.2.3.4,dst=5.6.7.8,"
    "sport=2,dport=1),zone=7,protoinfo=(state=ESTABLISHED)\n"
    "udp,orig=(src=10.0.1.10,dst=198.18.5.10,sport=1,dport=53),reply=(src=198.18.5.10,"
    "dst=203.0.113.1,sport=53,dport=1),zone=6657\n")


def test_nat_pat_conntrack_fast_path_flows_and_table():
    text = NATNET.replace("timeouts: {udp: 30, pool: 20, icmp: 10}",
                          "timeouts: {udp: 30, pool: 20, icmp: 10}\n        conntrack: true")
    n = SimNet(loader.loads(text))
    n.tcp("c1", "srv", 40000, 80)  # FlowSim hands it to (unmodelled) conntrack
    assert n.last("srv", pk.PROTO_TCP) is None
    nat = n.routers["rc"].nat
    out = [f for f in n.tables["rc"].flows if f.priority == 180 and f.table == 4]
    assert out and out[0].actions[0].nat_src == ("203.0.113.1", 1024, 65535)
    assert out[0].actions[0].zone == nat.zone and out[0].actions[0].commit
    assert nat.counters.created == 0  # no binding: TCP went to conntrack, not the controller
    from controllers.nat import parse_conntrack

    rows = parse_conntrack(CT_DUMP, nat.zone)
    assert rows == [{"inside": "10.0.1.10:34718", "outside": "203.0.113.1:13633",
                     "remote": "198.18.5.10:80", "state": "TIME_WAIT"}]
    nat.conntrack_update(1.0, rows)
    nat.conntrack_update(9.0, [])
    ev = nat.drain_events()
    assert [e["event"] for e in ev] == ["create", "expire"] and ev[1]["age"] == 8.0


@pytest.mark.parametrize("closer", ["srv", "c1"])
def test_nat_timeout_tcp_binding_lives_in_conntrack_and_ends_with_its_connections(net, closer):
    """NAT-PAT / NAT-TIMEOUT: a TCP binding costs the controller its first
    packet only: the port it picks is committed into conntrack with that packet, and every
    later packet either way (the FINs too) is translated by the switch. The binding ends
    when conntrack no longer has its connection (its timeouts, from the configured ones:
    RFC 5382 REQ-5), and the port is free again; a reading taken before the commit does
    not end a young binding."""
    from controllers.nat.conntrack import CT_ZONE_BASE, zone_timeouts
    from topologies.plan import make_plan

    text = NATNET.replace("timeouts: {udp: 30, pool: 20, icmp: 10}",
                          "timeouts: {udp: 30, pool: 20, icmp: 10, tcp: 600, "
                          "tcp_transitory: 60}")
    topo = loader.loads(text)
    n = SimNet(topo)
    nat = n.routers["rc"].nat
    zone = nat.zone
    n.tcp("c1", "srv", 40000, 80)
    syn = n.last("srv", pk.PROTO_TCP)
    assert syn is not None and syn.ip_src == PAT and ports(syn)[0] == 40000
    assert not [f for f in n.tables["rc"].flows if f.idle_timeout]  # no binding flows
    n.tcp("srv", PAT, 80, 40000, flags=0x12)  # SYN-ACK: un-NATed by conntrack
    back = n.last("c1", pk.PROTO_TCP)
    assert back is not None and str(back.ip_dst) == "10.1.1.11" and ports(back)[1] == 40000
    ins = n.packet_ins
    for _ in range(3):
        n.tcp("c1", "srv", 40000, 80, flags=0x10)
        n.tcp("srv", PAT, 80, 40000, flags=0x10)
    if closer == "srv":
        n.tcp("srv", PAT, 80, 40000, flags=0x11)
        fin = n.last("c1", pk.PROTO_TCP)
    else:
        n.tcp("c1", "srv", 40000, 80, flags=0x11)
        fin = n.last("srv", pk.PROTO_TCP)
    assert fin is not None and fin.l4[13] == 0x11
    assert n.packet_ins == ins  # the switch translated all of it: not one packet-in
    rows = n.tables["rc"].ct.rows(zone)
    assert [(r["inside"], r["outside"]) for r in rows] == [("10.1.1.11:40000",
                                                             f"{PAT}:40000")]
    nat.conntrack_update(n.now + 1, [])  # a reading from before the commit ...
    assert len(nat.entries) == 1  # ... spares the young binding
    nat.conntrack_update(n.now + 500, rows)  # long after: conntrack still has it
    assert len(nat.entries) == 1
    n.tables["rc"].ct.forget(zone)  # conntrack's timeout ran out
    nat.conntrack_update(n.now + 560, n.tables["rc"].ct.rows(zone))
    assert not nat.entries
    assert [e["reason"] for e in nat.drain_events() if e["event"] == "expire"] == [
        "connections closed"]
    assert nat.port_alloc.alloc(PAT, pk.PROTO_TCP, 40000) == 40000  # free
    policy = zone_timeouts(make_plan(topo))[CT_ZONE_BASE + n.routers["rc"].plan.dpid]
    assert policy["tcp_established"] == 600 and policy["tcp_time_wait"] == 60 and \
        policy["tcp_fin_wait"] == 60


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=120), table=st.sampled_from([0, 2, 4]),
       cut=st.integers(min_value=0, max_value=80))
def test_nat_fuzz_malformed_or_truncated_packet_ins_are_dropped_not_fatal(data, table, cut):
    """Whatever the switch sends up (garbage, or a real NAT packet cut short), the router
    and its NAT answer without raising; unreadable frames are counted."""
    r = FUZZ_NET.routers["rc"]
    before = r.counters.malformed
    r.packet_in(100.0, 8, data, 0, table, 8)
    if len(data) < 14:  # not even an Ethernet header: counted
        assert r.counters.malformed == before + 1
    real = FUZZ_FRAMES[cut % len(FUZZ_FRAMES)]
    r.packet_in(100.0, 8, real[:max(14, len(real) - cut)], 0, table, 8)


def _fuzz_frames() -> list[bytes]:
    n = SimNet(loader.loads(NATNET))
    out = []
    orig = n.routers["rc"].packet_in

    def spy(now, in_port, data, reason, table=0, metadata=0):
        out.append(data)
        return orig(now, in_port, data, reason, table, metadata)

    n.routers["rc"].packet_in = spy
    n.udp("c1", "srv", 5000, 9)  # PAT out, port unreachable back (an ICMP error)
    n.ping("c2", "srv")
    n.tcp("srv", "203.0.113.90", 41000, 80)
    return out


FUZZ_NET = SimNet(loader.loads(NATNET))
FUZZ_FRAMES = _fuzz_frames()


def test_nat_hairpin_inside_hosts_reach_each_other_by_public_addresses(net):
    # c1 -> webc by its static public address: webc sees c1's public endpoint, and the
    # reply comes back from the public address c1 used
    net.tcp("c1", "203.0.113.80", 40000, 80)
    got = net.last("webc", pk.PROTO_TCP)
    assert got is not None and got.ip_dst == IPv4Address("10.1.9.80") and valid_l4(got)
    assert (got.ip_src, ports(got)[0]) == (PAT, 40000)
    net.tcp("webc", PAT, 80, 40000, flags=0x12)
    back = net.last("c1", pk.PROTO_TCP)
    assert back is not None and back.ip_src == IPv4Address("203.0.113.80") and valid_l4(back)
    assert ports(back) == (80, 40000)
    # c2 -> c1's PAT mapping (made by c1 talking outside first): RFC 4787 REQ-9
    net.udp("c1", "srv", 5000, 7000)
    net.udp("c2", PAT, 5001, 5000)
    hp = net.last("c1", pk.PROTO_UDP)
    assert hp is not None and hp.ip_src == PAT and ports(hp) == (5001, 5000) and valid_l4(hp)


def test_nat_pat_port_quota_stops_one_host_from_taking_every_port():
    """NAT port exhaustion by one host: past its quota a host is refused (ICMP
    admin-prohibited, logged); other hosts keep getting mappings."""
    text = NATNET.replace("timeouts: {udp: 30, pool: 20, icmp: 10}",
                          "timeouts: {udp: 30, pool: 20, icmp: 10}\n        port_quota: 3")
    n = SimNet(loader.loads(text))
    n.hosts["srv"].udp_open.add(7000)
    for sport in (6001, 6002, 6003):
        n.udp("c1", "srv", sport, 7000)
    assert len(n.hosts["srv"].received) == 3
    n.udp("c1", "srv", 6004, 7000)
    err = n.last("c1", pk.PROTO_ICMP)
    assert err is not None and (err.icmp_type, err.icmp_code) == (3, 13)
    assert len(n.hosts["srv"].received) == 3
    ev = n.routers["rc"].nat.drain_events()
    assert any(e["event"] == "refuse" and "quota" in e["reason"] for e in ev)
    n.udp("c2", "srv", 6001, 7000)  # another host is not affected
    assert n.hosts["srv"].received[-1].ip_src == PAT and len(n.hosts["srv"].received) == 4
    n.advance(31)  # c1's mappings expire: it may map again
    n.udp("c1", "srv", 6005, 7000)
    assert len(n.hosts["srv"].received) == 5


def test_nat_controller_restart_restores_bindings_from_the_state_journal(net):
    """A new controller process replays the journal the old one wrote: inbound
    traffic for existing bindings keeps arriving, and no port is handed out twice."""
    from controllers.router import RouterLogic

    net.udp("c1", "srv", 5000, 7000)  # a PAT binding
    net.udp("c3", "srv", 5000, 7000)  # a pool address
    pool_ip = net.hosts["srv"].received[-1].ip_src
    old = net.routers["rc"]
    journal = old.nat.drain_state()
    fresh = RouterLogic(net.plan.router("rc"))  # the restarted controller
    assert fresh.nat.restore(journal, net.now) == 2
    net.routers["rc"] = fresh
    net._from_controller("rc", fresh.connect(net.now))  # the switch reconnects
    net.run()
    net.udp("srv", PAT, 7000, 5000)  # inbound to the old binding
    assert net.last("c1", pk.PROTO_UDP) is not None
    assert fresh.nat.counters.created == 0  # (the neighbours are ARPed again; NAT: nothing)
    net.udp("c2", "srv", 5000, 7000)  # wants port 5000 too: taken, so another
    assert ports(net.hosts["srv"].received[-1])[0] != 5000
    net.udp("c4", "srv", 5000, 7000)
    assert net.hosts["srv"].received[-1].ip_src not in (pool_ip, PAT)  # c3 keeps its own
    assert net.hosts["srv"].received[-1].ip_src in (IPv4Address("203.0.113.17"),
                                                    IPv4Address("203.0.113.18"))


def test_nat_flow_removed_by_our_own_delete_does_not_end_a_binding(net):
    """A reconnect wipes every flow; the switch reports those as FlowRemoved(DELETE). Only
    an idle or hard timeout ends a binding (this once wiped the whole NAT table)."""
    from controllers.messages import REMOVED_DELETE

    net.udp("c1", "srv", 5000, 7000)
    r = net.routers["rc"]
    (cookie,) = r.nat.table.cookies
    assert r.flow_removed(net.now, cookie, 1, 60, REMOVED_DELETE) == []
    assert len(r.nat.entries) == 1
    r.flow_removed(net.now, cookie, 1, 60)  # an idle timeout does
    assert not r.nat.entries
