"""DNS-AUTH groundwork: RFC 1035 master files parse to the right records; errors name
file and line."""

import pytest
from dnslib import QTYPE

from services.dns.zone import ZoneError, parse_ttl, parse_zone

ZONE = """\
$ORIGIN example.com.
$TTL 1h
@   IN SOA ns1 hostmaster (
        2026112501 ; serial
        3600 600 86400
        300 )
    IN NS  ns1
    IN NS  ns2.example.com.
    IN MX  10 mail
ns1     A     198.18.2.1
ns2  300 IN A 198.18.2.2
www     CNAME www.gslb
mail IN 60 A  10.1.9.25
txt     TXT   "hello world" "second; not a comment"
_sip._udp SRV 10 5 5060 sip
v6      AAAA  2001:db8::1
$ORIGIN sub.example.com.
deep    A     192.0.2.7
"""


def records(text=ZONE):
    return {(str(r.rname), QTYPE[r.rtype], str(r.rdata), r.ttl) for r in parse_zone(text).records}


def test_dns_auth_zone_file_parses_every_supported_type():
    got = records()
    assert ("example.com.", "NS", "ns1.example.com.", 3600) in got  # blank owner = '@'
    assert ("ns2.example.com.", "A", "198.18.2.2", 300) in got
    assert ("www.example.com.", "CNAME", "www.gslb.example.com.", 3600) in got
    assert ("mail.example.com.", "A", "10.1.9.25", 60) in got  # class before TTL
    assert ("example.com.", "MX", "10 mail.example.com.", 3600) in got
    assert ("_sip._udp.example.com.", "SRV", "10 5 5060 sip.example.com.", 3600) in got
    assert ("v6.example.com.", "AAAA", "2001:db8::1", 3600) in got
    assert ("deep.sub.example.com.", "A", "192.0.2.7", 3600) in got
    txt = next(r for r in parse_zone(ZONE).records if r.rtype == QTYPE.TXT)
    assert [s.decode() for s in txt.rdata.data] == ["hello world", "second; not a comment"]


def test_dns_auth_multi_line_soa_keeps_all_timers():
    z = parse_zone(ZONE)
    assert str(z.origin) == "example.com."
    assert z.soa.rdata.times == (2026112501, 3600, 600, 86400, 300)
    assert str(z.soa.rdata.mname) == "ns1.example.com."


def test_dns_auth_ttl_units():
    assert (parse_ttl("3600"), parse_ttl("1h30m"), parse_ttl("2d"), parse_ttl("1w")) == (
        3600, 5400, 172800, 604800)


@pytest.mark.parametrize("bad,line,problem", [
    ("ns1     A     198.18.2.1", "ns1 A 198.18.2.999", "bad address"),
    ("txt     TXT", "txt BOGUS x", "unsupported record type"),
    ("    IN MX  10 mail", "    IN MX  mail", "MX takes 2"),
    ("$TTL 1h", "$INCLUDE other.zone", "unsupported directive"),
    ("mail IN 60 A", "mail CH 60 A", "class CH"),
])
def test_dns_auth_zone_errors_name_file_and_line(bad, line, problem):
    lineno = next(i for i, t in enumerate(ZONE.splitlines(), 1) if t.startswith(bad))
    text = "\n".join(line if i == lineno else t for i, t in enumerate(ZONE.splitlines(), 1))
    with pytest.raises(ZoneError) as e:
        parse_zone(text, source="db.example")
    assert (e.value.source, e.value.line) == ("db.example", lineno), str(e.value)
    assert problem in e.value.problem
    assert str(e.value).startswith(f"db.example:{lineno}: ")


def test_dns_auth_unclosed_parenthesis_and_missing_soa_are_errors():
    with pytest.raises(ZoneError, match=r":3: '\(' not closed"):
        parse_zone("$ORIGIN a.\n$TTL 60\n@ SOA ns h ( 1 2 3 4 5\n")
    with pytest.raises(ZoneError, match="exactly one SOA"):
        parse_zone("$ORIGIN a.\n$TTL 60\n@ NS ns\n")
