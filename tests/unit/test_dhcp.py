"""DHCP-*: the server's decisions, the lease pool and the wire format, without sockets."""

from ipaddress import IPv4Address, IPv4Interface

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dhcp.config import DhcpConfigError, loads
from services.dhcp.leases import read_journal
from services.dhcp.logic import BROADCAST, CIADDR, RELAY, UNICAST, DhcpLogic
from wire import dhcp as p

CONFIG = """
lease_time: 20
t1: 0.5
t2: 0.75
dns: [10.1.0.53]
domain: example.com
subnets:
  - subnet: 10.1.1.0/24
    pool: [10.1.1.100-10.1.1.103]
    exclude: [10.1.1.101]
    router: 10.1.1.1
    reservations: [{mac: "02:00:00:00:00:99", address: 10.1.1.50}]
  - subnet: 10.1.2.0/24
    pool: [10.1.2.100-10.1.2.199]
    router: 10.1.2.1
  - subnet: 10.1.0.0/24
    pool: [10.1.0.200-10.1.0.210]
"""
LOCAL = IPv4Interface("10.1.0.10/24")
GI1, GI2 = IPv4Address("10.1.1.1"), IPv4Address("10.1.2.1")
SERVER = IPv4Address("10.1.0.10")


def mac(i: int) -> bytes:
    return bytes([2, 0, 0, 0, 0, i])


def msg(t: int, i: int = 1, giaddr=GI1, **kw) -> p.DhcpMessage:
    opts = {p.OPT_MSG_TYPE: bytes([t])}
    for code, v in kw.pop("opts", {}).items():
        opts[code] = v
    m = p.DhcpMessage(p.BOOTREQUEST, 0x1000 + i, chaddr=mac(i), giaddr=giaddr, options=opts,
                  **kw)
    return p.parse(m.to_bytes())  # every test message crosses the wire format


def dora(logic: DhcpLogic, now: float, i: int = 1, giaddr=GI1) -> IPv4Address:
    (offer,) = logic.handle(now, msg(p.DISCOVER, i, giaddr), LOCAL)
    ip = offer.msg.yiaddr
    (ack,) = logic.handle(now, msg(p.REQUEST, i, giaddr, opts={
        p.OPT_SERVER_ID: p.ip_opt(SERVER), p.OPT_REQUESTED_IP: p.ip_opt(ip)}), LOCAL)
    assert ack.msg.msg_type == p.ACK and ack.msg.yiaddr == ip
    return ip


@pytest.fixture
def logic() -> DhcpLogic:
    return DhcpLogic(loads(CONFIG, "dhcp.yaml"))


def test_dhcp_dora_relayed_offer_carries_every_option_and_goes_to_the_relay(logic):
    (offer,) = logic.handle(100.0, msg(p.DISCOVER), LOCAL)
    o = p.parse(offer.msg.to_bytes())
    assert offer.how == RELAY and offer.ip == GI1  # giaddr: back to the relay, port 67
    assert o.msg_type == p.OFFER and o.yiaddr == IPv4Address("10.1.1.100")
    assert o.addr(p.OPT_MASK) == IPv4Address("255.255.255.0")
    assert o.addr(p.OPT_ROUTER) == GI1 and o.addrs(p.OPT_DNS) == [IPv4Address("10.1.0.53")]
    assert o.text(p.OPT_DOMAIN) == "example.com" and o.addr(p.OPT_SERVER_ID) == SERVER
    assert (o.u32(p.OPT_LEASE_TIME), o.u32(p.OPT_T1), o.u32(p.OPT_T2)) == (20, 10, 15)


def test_dhcp_pool_selected_by_giaddr_exclusions_and_reservations(logic):
    assert dora(logic, 100.0, 1, GI2) == IPv4Address("10.1.2.100")  # lan2's pool
    got = [dora(logic, 100.0, i) for i in (2, 3)]
    assert IPv4Address("10.1.1.101") not in got  # excluded
    assert dora(logic, 100.0, 0x99) == IPv4Address("10.1.1.50")  # reservation


def test_dhcp_reply_delivery_follows_rfc2131_4_1(logic):
    direct = IPv4Interface("10.1.1.2/24")  # a server on the clients' own segment
    (o,) = logic.handle(1.0, msg(p.DISCOVER, 5, p.ZERO), direct)
    assert o.how == UNICAST and o.mac == "02:00:00:00:00:05" and o.ip == o.msg.yiaddr
    (o,) = logic.handle(1.0, msg(p.DISCOVER, 6, p.ZERO, flags=p.FLAG_BROADCAST), direct)
    assert o.how == BROADCAST and str(o.ip) == "255.255.255.255"


def test_dhcp_lease_renew_is_acked_to_ciaddr_and_extends_the_lease(logic):
    ip = dora(logic, 100.0)
    (ack,) = logic.handle(110.0, msg(p.REQUEST, 1, p.ZERO, ciaddr=ip),
                          IPv4Interface("10.1.1.2/24"))
    assert ack.how == CIADDR and ack.ip == ip and ack.msg.msg_type == p.ACK
    lease = logic.pools["10.1.1.0/24"].owner(ip, 125.0)
    assert lease is not None and lease.expires == 130.0  # 110 + 20


def test_dhcp_lease_expiry_returns_the_address_and_release_frees_at_once(logic):
    pool = logic.pools["10.1.1.0/24"]
    ip = dora(logic, 100.0)
    assert pool.owner(ip, 119.0) is not None and pool.owner(ip, 121.0) is None
    ip2 = dora(logic, 200.0, 2)
    logic.handle(201.0, msg(p.RELEASE, 2, p.ZERO, ciaddr=ip2,
                            opts={p.OPT_SERVER_ID: p.ip_opt(SERVER)}), LOCAL)
    assert pool.owner(ip2, 202.0) is None and logic.counters.release == 1


def test_dhcp_nak_for_a_request_from_the_wrong_subnet(logic):
    (nak,) = logic.handle(1.0, msg(p.REQUEST, 1, GI2, opts={
        p.OPT_REQUESTED_IP: p.ip_opt("10.1.1.100")}), LOCAL)  # INIT-REBOOT, moved subnet
    assert nak.msg.msg_type == p.NAK and nak.how == RELAY and nak.msg.broadcast


def test_dhcp_pool_exhaustion_gives_no_offer_and_is_counted(logic):
    got = {dora(logic, 1.0, i) for i in range(1, 4)}
    assert len(got) == 3  # .100, .102, .103 (.101 excluded)
    assert logic.handle(1.0, msg(p.DISCOVER, 9), LOCAL) == []
    assert logic.counters.exhausted == 1


def test_dhcp_pool_declined_address_is_not_handed_out_again(logic):
    ip = dora(logic, 1.0)
    logic.handle(2.0, msg(p.DECLINE, 1, opts={p.OPT_REQUESTED_IP: p.ip_opt(ip),
                                              p.OPT_SERVER_ID: p.ip_opt(SERVER)}), LOCAL)
    assert {dora(logic, 3.0, i) for i in (2, 3)} .isdisjoint({ip})


def test_dhcp_multi_client_chose_the_other_server_so_our_offer_is_freed(logic):
    (offer,) = logic.handle(1.0, msg(p.DISCOVER), LOCAL)
    assert logic.handle(1.5, msg(p.REQUEST, 1, opts={
        p.OPT_SERVER_ID: p.ip_opt("10.1.0.11"),
        p.OPT_REQUESTED_IP: p.ip_opt("10.1.1.200")}), LOCAL) == []
    assert logic.counters.withdrawn == 1
    assert logic.pools["10.1.1.0/24"].owner(offer.msg.yiaddr, 2.0) is None
    assert dora(logic, 2.0, 2) == offer.msg.yiaddr  # free again for the next client


def test_dhcp_inform_gets_options_without_an_address(logic):
    (ack,) = logic.handle(1.0, msg(p.INFORM, 1, p.ZERO, ciaddr=IPv4Address("10.1.0.77")),
                          LOCAL)
    assert ack.how == CIADDR and ack.msg.yiaddr == p.ZERO
    assert ack.msg.addrs(p.OPT_DNS) and p.OPT_LEASE_TIME not in ack.msg.options


def test_dhcp_bootp_request_gets_a_bootp_reply_with_an_infinite_binding(logic):
    req = p.parse(p.DhcpMessage(p.BOOTREQUEST, 77, chaddr=mac(7), giaddr=GI1, bootp=True)
                  .to_bytes())
    assert req.bootp
    (r,) = logic.handle(1.0, req, LOCAL)
    back = p.parse(r.msg.to_bytes())
    assert back.bootp and back.msg_type is None and back.op == p.BOOTREPLY
    assert r.msg.yiaddr == IPv4Address("10.1.1.100") and r.msg.siaddr == SERVER
    lease = logic.pools["10.1.1.0/24"].owner(r.msg.yiaddr, 1e9)
    assert lease is not None and lease.state == "bound"


def test_dhcp_bootp_client_falls_back_to_bootp_when_only_a_bootp_server_answers():
    """DHCP-BOOTP: an RFC 951 server (`bootp: only`) answers a DISCOVER with a plain
    BOOTREPLY; the client waits `bootp_wait` for a DHCP OFFER, then takes it: an infinite
    binding, never renewed, nothing to release. A DHCP server's OFFER still wins."""
    import random

    from services.dhcp.client import (
        BOUND,
        INFINITE,
        REQUESTING,
        SELECTING,
        ClientMachine,
        Configure,
        Send,
        Unconfigure,
    )

    only = DhcpLogic(loads(CONFIG + "bootp: only\n", "bootp.yaml"))
    c = ClientMachine(mac(9), rng=random.Random(1))
    (send,) = c.start(0.0)
    assert isinstance(send, Send) and send.msg.msg_type == p.DISCOVER
    (r,) = only.handle(0.0, p.parse(send.msg.to_bytes()), LOCAL)
    reply = p.parse(r.msg.to_bytes())
    assert reply.msg_type is None and reply.bootp and reply.yiaddr == IPv4Address("10.1.0.200")
    assert c.receive(0.1, reply) == [] and c.state == SELECTING  # an OFFER may yet come
    assert c.tick(0.6) == [] and c.next_wakeup == pytest.approx(1.1)
    (cfg,) = c.tick(1.1)
    assert isinstance(cfg, Configure) and cfg.bootp and cfg.lease == INFINITE
    assert cfg.address == IPv4Interface("10.1.0.200/24") and cfg.server == SERVER
    assert c.state == BOUND and c.tick(1e9) == [] and c.state == BOUND  # never renews
    (gone,) = c.stop(2.0)
    assert isinstance(gone, Unconfigure)  # and no RELEASE: BOOTP has none

    dhcp = DhcpLogic(loads(CONFIG, "dhcp.yaml"))
    c = ClientMachine(mac(10), rng=random.Random(2))
    (send,) = c.start(0.0)
    discover = p.parse(send.msg.to_bytes())
    (b,) = only.handle(0.0, discover, LOCAL)
    (o,) = dhcp.handle(0.0, discover, LOCAL)
    assert c.receive(0.1, p.parse(b.msg.to_bytes())) == []
    (req,) = c.receive(0.2, p.parse(o.msg.to_bytes()))
    assert c.state == REQUESTING and req.msg.msg_type == p.REQUEST  # DHCP preferred
    assert c.tick(5.0)[0].msg.msg_type == p.REQUEST and c.state == REQUESTING


def test_dhcp_lease_persistence_replay_keeps_bindings_and_never_doubles(logic):
    a = dora(logic, 100.0, 1)
    b = dora(logic, 100.0, 2)
    logic.handle(101.0, msg(p.RELEASE, 2, p.ZERO, ciaddr=b), LOCAL)
    text = "".join(__import__("json").dumps(r) + "\n" for r in logic.drain_journal())
    text += '{"ip": "10.1.1.10'  # a torn last line (crash mid-write)
    again = DhcpLogic(loads(CONFIG, "dhcp.yaml"))
    pool = again.pools["10.1.1.0/24"]
    assert pool.replay(read_journal(text), 105.0) == 1
    assert pool.owner(a, 105.0).client == "02:00:00:00:00:01"
    assert dora(again, 105.0, 3) != a  # the restarted server never gives a's address away
    (o,) = again.handle(105.0, msg(p.DISCOVER, 1), LOCAL)
    assert o.msg.yiaddr == a  # and the client keeps its address


@pytest.mark.parametrize("text,where", [
    ("subnets: [{subnet: 10.1.1.0/24, pool: [10.1.2.5-10.1.2.9]}]", "subnets[0].pool[0]"),
    ("subnets: [{subnet: 10.1.1.0/24}, {subnet: 10.1.1.128/25}]", "subnets[1].subnet"),
    ("t1: 0.9\nt2: 0.5\nsubnets: [{subnet: 10.1.1.0/24}]", "t2"),
])
def test_dhcp_config_errors_name_file_line_and_field(text, where):
    with pytest.raises(DhcpConfigError) as ei:
        loads(text, "bad.yaml")
    assert f": {where}:" in str(ei.value) and str(ei.value).startswith("bad.yaml:")


@pytest.mark.parametrize("raw,why", [
    (b"\x01" * 100, "truncated"),
    (p.DhcpMessage(options={p.OPT_MSG_TYPE: b"\x01"}).to_bytes()[:236] + b"\x01\x02\x03\x04"
     + b"\x35\x01\x01", "magic cookie"),
    (p.DhcpMessage().to_bytes()[:240] + b"\x35\x05\x01", "runs past the end"),
    (p.DhcpMessage().to_bytes()[:240] + b"\x35\x01\x01\x34\x01\x09\xff", "overload"),
])
def test_dhcp_malformed_messages_are_rejected_with_a_reason(raw, why):
    with pytest.raises(p.DhcpError, match=why):
        p.parse(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_dhcp_fuzz_parser_raises_only_dhcp_errors(data):
    try:
        m = p.parse(data)
    except p.DhcpError:
        return
    DhcpLogic(loads(CONFIG, "dhcp.yaml")).handle(1.0, m, LOCAL)  # and the logic copes


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(1, 254).filter(lambda c: c not in (52, 53)),
                       st.binary(max_size=600), max_size=8))
def test_dhcp_fuzz_options_round_trip_long_values_split_and_joined(options):
    """RFC 3396: values over 255 bytes go out as several pieces and come back whole."""
    m = p.DhcpMessage(chaddr=mac(1), options={**options, p.OPT_MSG_TYPE: bytes([p.DISCOVER])})
    assert p.parse(m.to_bytes()).options == {**options, p.OPT_MSG_TYPE: bytes([p.DISCOVER])}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.sampled_from([0, p.FLAG_BROADCAST]),
                          st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          st.binary(min_size=1, max_size=16)), min_size=1, max_size=4),
       st.sampled_from([{}, {p.OPT_RELAY_AGENT: b"\x01\x02ab"}]))
def test_dhcp_replies_sharing_options_keep_their_own_header_fields(clients, extra):
    """Option bytes are kept by value and reused: each reply still carries its own xid,
    flags, addresses and chaddr, and the options it was given."""
    options = {p.OPT_MSG_TYPE: bytes([p.OFFER]), p.OPT_SERVER_ID: SERVER.packed,
               p.OPT_LEASE_TIME: p.u32_opt(20), **extra}
    for xid, flags, yi, gi, ch in clients:
        m = p.DhcpMessage(p.BOOTREPLY, xid, 0, flags, yiaddr=IPv4Address(yi),
                          giaddr=IPv4Address(gi), chaddr=ch, options=dict(options))
        back = p.parse(m.to_bytes())
        assert (back.xid, back.flags, back.yiaddr, back.giaddr, back.chaddr, back.options) == \
            (xid, flags, IPv4Address(yi), IPv4Address(gi), ch, options)


def test_dhcp_reply_options_follow_the_server_id_and_echo_each_relays_option_82(logic):
    """Reply options are built once per subnet and type: a reply still names the address
    it was received on (no configured server id) and echoes its own relay's option 82,
    and only its own."""
    other = IPv4Interface("10.1.0.11/24")
    for i, (local, circuit) in enumerate([(LOCAL, b"a"), (other, b"b")], 1):
        rai = p.relay_agent_option(circuit, b"r")
        (offer,) = logic.handle(1.0, msg(p.DISCOVER, i, opts={p.OPT_RELAY_AGENT: rai}), local)
        back = p.parse(offer.msg.to_bytes())
        assert back.addr(p.OPT_SERVER_ID) == local.ip
        assert back.options[p.OPT_RELAY_AGENT] == rai and back.xid == 0x1000 + i
    (offer,) = logic.handle(1.0, msg(p.DISCOVER, 3), other)  # a relay without option 82
    back = p.parse(offer.msg.to_bytes())
    assert back.addr(p.OPT_SERVER_ID) == other.ip and p.OPT_RELAY_AGENT not in back.options
