"""DNS-AUTH precompiled answers: for any query, the fast path's answer is the full path's
(hypothesis over names of every shape, case, types, EDNS and options; the fast path warmed
first with other names, so templates built for one name answer for another)."""

from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord, EDNSOption
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dns.authority import ZoneSet
from services.dns.compiled import parse_query
from services.dns.responder import Responder
from services.dns.zone import parse_zone

from .test_dns_authority import ZONE

EXAMPLE = ZONE + """
@ TXT "v=spf1 -all"
web AAAA 2001:db8::11
*.wild A 198.51.100.7
*.alias CNAME web
*.chain CNAME x.chain
*.out CNAME www.other.org.
_sip._udp SRV 10 5 5060 mail
big TXT "{long}"
big TXT "{long}"
big TXT "{long}"
child NS ns1.child
ns1.child A 198.18.2.30
""".replace("{long}", "x" * 200)
CHILD = """
$ORIGIN child.example.com.
$TTL 60
@ SOA ns1 hm 7 60 10 120 30
  NS ns1
ns1 A 198.18.2.30
*  A 198.51.100.99
host A 198.51.100.98
"""
ROOT = """
$ORIGIN .
$TTL 86400
@ SOA a.root. nstld.root. 1 1800 900 604800 86400
  NS a.root.
a.root. A 198.18.0.1
com. NS a.gtld.
a.gtld. A 198.18.0.2
"""
ZONES = [parse_zone(EXAMPLE, "example.zone"), parse_zone(CHILD, "child.zone"),
         parse_zone(ROOT, "root.zone")]
LABELS = ["www", "web", "WEB", "mail", "ns1", "x", "y7", "wild", "alias", "chain", "out",
          "sub", "a", "b", "c", "loop1", "ext", "_sip", "_udp", "big", "child", "host",
          "example", "Example", "com", "org", "root", "gtld", "nope", "*"]
TYPES = [QTYPE.A, QTYPE.AAAA, QTYPE.TXT, QTYPE.MX, QTYPE.NS, QTYPE.SOA, QTYPE.CNAME,
         QTYPE.SRV, QTYPE.DS, QTYPE.PTR, QTYPE.ANY, 99, 65280]
SUFFIXES = ["example.com", "wild.example.com", "chain.example.com", "child.example.com",
            "sub.example.com", "alias.example.com", "com", "", "out.example.com"]

names = st.builds(lambda labels, suffix: ".".join([*labels, suffix]).strip(".") or ".",
                  st.lists(st.sampled_from(LABELS), max_size=3), st.sampled_from(SUFFIXES))
edns = st.one_of(st.none(), st.tuples(st.integers(0, 65535), st.booleans()))


def query(name: str, qtype: int, rd: bool, opt: tuple | None, qid: int) -> bytes:
    q = DNSRecord(q=DNSQuestion(name, qtype))
    q.header.id, q.header.rd = qid, int(rd)
    if opt is not None:
        size, cookie = opt
        q.add_ar(EDNS0(udp_len=size, opts=[EDNSOption(10, b"12345678")] if cookie else []))
    return bytes(q.pack())


def normal(wire: bytes) -> tuple:
    """A reply as sets of records, names lower-cased: the two paths may differ only in
    round-robin order and in where compression points (the question's case)."""
    r = DNSRecord.parse(wire)
    h = r.header

    def rrs(section):
        return sorted((str(x.rname).lower(), x.rtype, x.rclass, x.ttl, str(x.rdata).lower())
                      for x in section)
    return (h.id, h.qr, h.opcode, h.aa, h.tc, h.rd, h.ra, h.rcode, str(r.q.qname), r.q.qtype,
            rrs(r.rr), rrs(r.auth), rrs(r.ar))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(names, st.sampled_from(TYPES)), max_size=4), names,
       st.sampled_from(TYPES), st.booleans(), edns, st.integers(0, 65535))
def test_dns_auth_fast_path_answer_equals_full_path_answer(warm, name, qtype, rd, opt, qid):
    fast = Responder(ZoneSet(ZONES))
    full = Responder(ZoneSet(ZONES))
    full.fast = False
    for n, t in warm:
        fast.respond(query(n, t, True, None, 1))
    data = query(name, qtype, rd, opt, qid)
    a, b = fast.respond(data), full.respond(data)
    assert a is not None and b is not None
    assert normal(a) == normal(b)


def test_dns_auth_fast_path_answers_a_wildcard_name_never_seen_from_its_template():
    r = Responder(ZoneSet(ZONES))
    first = r.respond(query("n1.wild.example.com", QTYPE.A, True, None, 1))
    hits = r.compiled.templates.copy()
    second = r.respond(query("other-name.wild.example.com", QTYPE.A, True, None, 2))
    assert first is not None and second is not None
    assert r.compiled.templates == hits  # no new template: the first one answered
    rec = DNSRecord.parse(second)
    assert [(str(x.rname), str(x.rdata)) for x in rec.rr] == [
        ("other-name.wild.example.com.", "198.51.100.7")]
    assert r.stats["queries"] == r.stats["precompiled"] == r.stats["rcode_NOERROR"] == 2


def test_dns_auth_fast_path_leaves_unusual_queries_to_the_full_path():
    plain = query("www.example.com", QTYPE.A, True, None, 1)
    assert parse_query(plain) is not None
    two_opts = bytearray(query("www.example.com", QTYPE.A, True, (1232, False), 1))
    two_opts[11] = 2
    for data in (
        query("www.example.com", QTYPE.AXFR, True, None, 1),
        query("www.example.com", QTYPE.ANY, True, None, 1),
        plain[:2] + bytes([plain[2] | 0x80]) + plain[3:],  # a response
        plain[:2] + bytes([plain[2] | 0x10]) + plain[3:],  # opcode 2 (STATUS)
        plain + b"\0",  # trailing bytes
        plain[:-2] + b"\x00\x03",  # class CH
        bytes(two_opts),
        query("www.example.com", QTYPE.A, True, (1232, False), 1)[:-1],  # OPT cut short
    ):
        assert parse_query(data) is None


def test_dns_auth_fast_path_truncation_and_reload_go_through_the_full_path():
    zs = ZoneSet(ZONES)
    r = Responder(zs)
    out = r.respond(query("big.example.com", QTYPE.TXT, True, None, 1))
    assert out is not None and DNSRecord.parse(out).header.tc == 1
    assert r.stats["truncated"] == 1
    r.respond(query("n.wild.example.com", QTYPE.A, True, None, 1))
    zs.add(parse_zone(EXAMPLE.replace("*.wild A 198.51.100.7", "*.wild A 198.51.100.8"),
                      "example.zone"))
    out = r.respond(query("m.wild.example.com", QTYPE.A, True, None, 1))
    assert out is not None and str(DNSRecord.parse(out).rr[0].rdata) == "198.51.100.8"


def test_dns_auth_fast_path_answers_most_plain_queries_and_each_as_the_full_path():
    """Every label under every suffix, six types, one responder for all: the fast path
    answers nearly all (so the property above is not vacuous) and each equals the full."""
    fast = Responder(ZoneSet(ZONES))
    asked = 0
    for label in LABELS:
        for suffix in SUFFIXES:
            for qtype in TYPES[:6]:
                data = query(f"{label}.{suffix}", qtype, True, (1232, False), asked)
                full = Responder(ZoneSet(ZONES))
                full.fast = False
                a, b = fast.respond(data), full.respond(data)
                assert a is not None and b is not None and normal(a) == normal(b)
                asked += 1
    assert fast.stats["queries"] == asked
    assert fast.stats["precompiled"] >= 0.9 * asked, fast.stats
