"""DNS-AUTH: the pure authoritative lookup and responder (no sockets)."""

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from services.dns.authority import ZoneSet
from services.dns.responder import Responder
from services.dns.zone import parse_zone

ZONE = """
$ORIGIN example.com.
$TTL 300
@ IN SOA ns1 hostmaster ( 1 60 10 120 30 )
  NS ns1
  NS ns2
  MX 10 mail
ns1 A 198.18.2.1
ns2 A 198.18.2.2
mail A 198.18.2.25
www CNAME web
web A 198.51.100.11
    A 198.51.100.12
    A 198.51.100.131
*.wild TXT "wildcard"
sub NS ns.sub
ns.sub A 198.18.2.9
a.b.c A 10.0.0.1
ext CNAME www.other.org.
loop1 CNAME loop2
loop2 CNAME loop1
"""


@pytest.fixture
def zones():
    return ZoneSet([parse_zone(ZONE, "t.zone")])


def names(rrs):
    return [(str(r.rname).lower(), QTYPE[r.rtype], str(r.rdata)) for r in rrs]


def test_dns_auth_exact_answer_is_authoritative_with_apex_ns(zones):
    a = zones.lookup("mail.example.com", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and a.aa
    assert names(a.answer) == [("mail.example.com.", "A", "198.18.2.25")]
    assert {r[2] for r in names(a.authority)} == {"ns1.example.com.", "ns2.example.com."}
    assert {r[2] for r in names(a.additional)} == {"198.18.2.1", "198.18.2.2"}


def test_dns_auth_additional_does_not_repeat_the_answer(zones):
    """NSD and BIND leave out of additional what the answer already holds: asked for
    ns1's address, the NS set in authority brings only ns2's."""
    a = zones.lookup("ns1.example.com", QTYPE.A)
    assert names(a.answer) == [("ns1.example.com.", "A", "198.18.2.1")]
    assert names(a.additional) == [("ns2.example.com.", "A", "198.18.2.2")]


def test_dns_auth_cname_is_chased_inside_the_zone(zones):
    a = zones.lookup("www.example.com", QTYPE.A)
    assert [t for _, t, _ in names(a.answer)] == ["CNAME", "A", "A", "A"]
    assert names(a.answer)[1][0] == "web.example.com."


def test_dns_auth_cname_leaving_the_zone_stops_there(zones):
    a = zones.lookup("ext.example.com", QTYPE.A)
    assert names(a.answer) == [("ext.example.com.", "CNAME", "www.other.org.")]
    assert a.rcode == RCODE.NOERROR and not a.authority


def test_dns_auth_cname_loop_ends(zones):
    a = zones.lookup("loop1.example.com", QTYPE.A)
    assert [t for _, t, _ in names(a.answer)] == ["CNAME", "CNAME"]


def test_dns_auth_nxdomain_vs_nodata(zones):
    nx = zones.lookup("nope.example.com", QTYPE.A)
    assert nx.rcode == RCODE.NXDOMAIN and nx.aa
    assert names(nx.authority)[0][1] == "SOA" and nx.authority[0].ttl == 30  # SOA minimum
    nodata = zones.lookup("web.example.com", QTYPE.AAAA)
    assert nodata.rcode == RCODE.NOERROR and not nodata.answer
    assert names(nodata.authority)[0][1] == "SOA"
    ent = zones.lookup("b.c.example.com", QTYPE.A)  # empty non-terminal: exists, no data
    assert ent.rcode == RCODE.NOERROR and not ent.answer


def test_dns_auth_referral_with_glue_below_a_cut(zones):
    a = zones.lookup("host.sub.example.com", QTYPE.A)
    assert not a.aa and not a.answer and a.rcode == RCODE.NOERROR
    assert names(a.authority) == [("sub.example.com.", "NS", "ns.sub.example.com.")]
    assert names(a.additional) == [("ns.sub.example.com.", "A", "198.18.2.9")]


def test_dns_auth_wildcard_synthesises_the_query_name(zones):
    a = zones.lookup("anything.wild.example.com", QTYPE.TXT)
    assert names(a.answer)[0][:2] == ("anything.wild.example.com.", "TXT")
    assert zones.lookup("wild.example.com", QTYPE.TXT).rcode == RCODE.NOERROR  # ENT


def test_dns_auth_refused_outside_its_zones(zones):
    assert zones.lookup("example.org", QTYPE.A).rcode == RCODE.REFUSED


def test_dns_auth_expired_zone_answers_servfail(zones):
    next(iter(zones.zones.values())).serving = False
    assert zones.lookup("www.example.com", QTYPE.A).rcode == RCODE.SERVFAIL


def ask(responder, name, qtype="A", edns=None, **kw):
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    data = responder.respond(q.pack(), **kw)
    return q, DNSRecord.parse(data)


def test_dns_auth_round_robin_rotates_and_echoes_case(zones):
    r = Responder(zones)
    firsts = []
    for _ in range(3):
        q, a = ask(r, "WeB.Example.COM")
        firsts.append(str(a.rr[0].rdata))
        assert str(a.q.qname) == "WeB.Example.COM." and a.header.id == q.header.id
    assert sorted(firsts) == ["198.51.100.11", "198.51.100.12", "198.51.100.131"]
    hit = r.cache  # later queries come from the wire cache and keep rotating
    assert len(hit) == 1


def test_dns_auth_truncates_over_udp_limit_and_not_over_tcp():
    big = ZONE + "".join(f"big A 10.9.{i // 250}.{i % 250 + 1}\n" for i in range(60))
    r = Responder(ZoneSet([parse_zone(big, "t.zone")]))
    _, a = ask(r, "big.example.com")
    assert a.header.tc and not a.rr
    _, a = ask(r, "big.example.com", edns=4096)
    assert not a.header.tc and len(a.rr) == 60 and a.ar[-1].rtype == QTYPE.OPT
    _, a = ask(r, "big.example.com", tcp=True)
    assert not a.header.tc and len(a.rr) == 60


def test_dns_auth_malformed_input_is_counted_and_never_raises(zones):
    r = Responder(zones)
    assert r.respond(b"\x01") is None
    out = r.respond(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07exa")
    assert out[:2] == b"\x12\x34" and out[3] & 0x0F == RCODE.FORMERR
    assert r.stats["malformed"] == 2 and r.stats["dropped"] == 1
    q = DNSRecord.question("www.example.com")
    q.header.opcode = 2  # STATUS
    assert DNSRecord.parse(r.respond(q.pack())).header.rcode == RCODE.NOTIMP
    q = DNSRecord.question("www.example.com")
    q.add_ar(EDNS0(udp_len=1232, version=1))
    a = DNSRecord.parse(r.respond(q.pack()))
    assert a.ar[0].rtype == QTYPE.OPT and (a.ar[0].ttl >> 24) == 1  # BADVERS (16)


def test_dns_rrl_caps_answers_per_client_network_and_slips_some_truncated():
    """DNS amplification: past its budget a /24 gets nothing, except every
    slip-th answer as a tiny TC=1 reply; other networks are not affected; the budget
    refills with time."""
    from services.dns.rrl import DROP, SEND, SLIP, RateLimiter
    from services.dns.server import truncated

    rrl = RateLimiter(rate=5, slip=2)
    got = [rrl.check(100.0, f"198.51.100.{i % 7}") for i in range(20)]
    assert got[:5] == [SEND] * 5 and set(got[5:]) == {DROP, SLIP}
    assert got[5:].count(SLIP) == 7 and got[5:].count(DROP) == 8
    assert rrl.check(100.0, "192.0.2.1") == SEND  # another /24
    assert rrl.check(101.0, "198.51.100.9") == SEND  # one second later: refilled
    q = DNSRecord.question("example.com", "ANY").pack()
    tc = DNSRecord.parse(truncated(q))
    assert tc.header.tc == 1 and tc.header.qr == 1 and tc.header.id == DNSRecord.parse(
        q).header.id and len(truncated(q)) == 12 < len(q)
