"""DNS-XFR / DNS-EXPIRE: transfer messages, the IXFR journal and the secondary's timers."""

from dnslib import QTYPE, DNSRecord

from services.dns.authority import ZoneData
from services.dns.xfr import (
    Journal,
    Secondary,
    TransferReader,
    diff,
    serial_lt,
    soa_query,
    transfer_messages,
)
from services.dns.zone import parse_zone

V1 = """$ORIGIN example.com.
$TTL 300
@ SOA ns1 hm ( {serial} 60 10 {expire} 30 )
  NS ns1
ns1 A 198.18.2.1
{extra}
"""


def zone(serial=1, extra="mail A 198.18.2.25", expire=120):
    return ZoneData(parse_zone(V1.format(serial=serial, extra=extra, expire=expire), "t"))


def roundtrip(msgs):
    return [DNSRecord.parse(m.pack()) for m in msgs]


def test_dns_xfr_serial_arithmetic_wraps():
    assert serial_lt(1, 2) and not serial_lt(2, 1)
    assert serial_lt(2**32 - 1, 5)  # RFC 1982: wrapped is still newer


def test_dns_xfr_axfr_starts_and_ends_with_soa_and_rebuilds_the_zone():
    z = zone()
    msgs = roundtrip(transfer_messages(soa_query("example.com.", QTYPE.AXFR), z, None))
    reader = TransferReader(None)
    for m in msgs:
        reader.feed(m)
    assert reader.done
    got = ZoneData(reader.zone("t"))
    assert got.serial == 1 and {str(r.rdata) for r in got.records} >= {"198.18.2.25"}


def test_dns_xfr_ixfr_sends_only_the_difference_and_applies_it():
    old, new = zone(1), zone(2, "mail A 198.18.2.26")
    journal = Journal()
    journal.record(diff(old, new))
    q = soa_query("example.com.", QTYPE.IXFR, old.soa)
    msgs = roundtrip(transfer_messages(q, new, journal))
    rrs = [r for m in msgs for r in m.rr]
    assert [QTYPE[r.rtype] for r in rrs] == ["SOA", "SOA", "A", "SOA", "A", "SOA"]
    reader = TransferReader(old)
    for m in msgs:
        reader.feed(m)
    assert reader.done
    applied = ZoneData(reader.zone("t"))
    assert applied.serial == 2
    assert "198.18.2.26" in {str(r.rdata) for r in applied.records}
    assert "198.18.2.25" not in {str(r.rdata) for r in applied.records}


def test_dns_xfr_ixfr_without_journal_falls_back_to_full_zone_and_current_gets_one_soa():
    old, new = zone(1), zone(3)
    full = roundtrip(transfer_messages(soa_query("example.com.", QTYPE.IXFR, old.soa), new,
                                       Journal()))
    assert full[0].rr[1].rtype != QTYPE.SOA  # AXFR-style
    same = roundtrip(transfer_messages(soa_query("example.com.", QTYPE.IXFR, new.soa), new,
                                       Journal()))
    assert len(same[0].rr) == 1


def test_dns_expire_secondary_timers_follow_the_soa():
    z = zone(expire=120)
    sec = Secondary("example.com.", [("198.18.2.1", 53)])
    assert sec.due(0) and sec.state == "loading"
    sec.on_success(0, z.soa)
    assert sec.state == "serving" and not sec.due(59) and sec.due(60)  # refresh 60
    sec.on_failure(60, "timeout", z.soa)
    assert sec.refresh_at == 70  # retry 10
    assert not sec.check_expiry(119) and sec.check_expiry(120)
    assert sec.state == "expired"
    sec.promote()
    assert sec.state == "primary" and not sec.due(10_000)
    # a refresh that was under way when it was promoted, ending once the master is back,
    # and the master's NOTIFY at its restart: the zone stays promoted
    sec.on_success(10_001, z.soa)
    sec.on_failure(10_002, "timeout", z.soa)
    sec.on_notify(10_003)
    assert sec.state == "primary" and not sec.due(20_000)


def test_dns_xfr_notify_during_a_failed_refresh_retries_at_once():
    z = zone()
    sec = Secondary("example.com.", [("198.18.2.1", 53)])
    sec.on_success(0, z.soa)
    sec.on_attempt()
    sec.on_notify(5)
    sec.on_failure(6, "timeout", z.soa)
    assert sec.refresh_at == 6
