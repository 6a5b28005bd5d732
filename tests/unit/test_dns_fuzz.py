"""DNS-AUTH bad input: random and mutated messages never raise; each gets an answer or a
counted drop (hypothesis, bounded so CI stays fast)."""

import pytest
from dnslib import DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dns.authority import ZoneSet
from services.dns.responder import Responder
from services.dns.zone import ZoneError, parse_zone

ZONE = parse_zone("$ORIGIN example.com.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n  NS ns\n"
                  "ns A 10.0.0.1\nwww A 10.0.0.2\n", "t")
SEED = DNSRecord.question("www.example.com").pack()


def check(responder: Responder, data: bytes) -> None:
    before = responder.stats["dropped"]
    out = responder.respond(data)
    assert out is not None or responder.stats["dropped"] == before + 1
    if out is not None:
        assert out[:2] == data[:2]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_dns_fuzz_random_bytes(data):
    check(Responder(ZoneSet([ZONE])), data)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(SEED)))
def test_dns_fuzz_mutated_queries(flips, cut):
    data = bytearray(SEED)
    for i, v in flips:
        data[i] = v
    check(Responder(ZoneSet([ZONE])), bytes(data[:max(cut, 0)] if cut < 12 else data))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_dns_fuzz_zone_parser_only_raises_zone_errors(text):
    try:
        parse_zone(text, "fuzz.zone", origin="example.com.")
    except ZoneError as e:
        assert e.source == "fuzz.zone"


def test_dns_fuzz_regression_non_ascii_owner_is_a_zone_error():
    """Found by the fuzzer: a non-ASCII owner name crashed dnslib's IDNA encoding."""
    try:
        parse_zone("\x80", "fuzz.zone", origin="example.com.")
    except ZoneError as e:
        assert "bad domain name" in str(e)
    else:
        raise AssertionError("expected a ZoneError")


def test_dns_fuzz_regression_address_record_without_address_is_a_zone_error():
    """Found by the fuzzer: `0 A` (no address) raised IndexError, because the missing-field
    ZoneError (a ValueError) was caught by the bad-address handler, which read d[0]."""
    with pytest.raises(ZoneError, match="A takes 1 field"):
        parse_zone("0\tA", "fuzz.zone", origin="example.com.")


@pytest.mark.parametrize("text,problem", [
    ("www 99999999999999 A 10.0.0.1", r"over 2\^31-1"),
    ("$TTL 60\n@ SOA ns hm 1 99999999999 3 4 5", "SOA: Attribute 'times'"),
])
def test_dns_fuzz_regression_out_of_range_numbers_are_zone_errors(text, problem):
    """Found by the corpus replay: a TTL or SOA timer past dnslib's range raised its
    ValueError (a crash of `dns serve` at load) instead of a ZoneError with the line."""
    with pytest.raises(ZoneError, match=problem) as ei:
        parse_zone(text, "fuzz.zone", origin="example.com.")
    assert ei.value.source == "fuzz.zone"
