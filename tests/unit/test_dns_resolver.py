"""DNS-RECURSIVE / DNS-HIER: the resolver walks the world's real zone files through a fake
network of pure responders, with a fake clock (no sockets, no root)."""

import asyncio

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from services.dns.authority import ZoneSet
from services.dns.resolver import Resolver, read_root_hints
from services.dns.responder import Responder
from services.dns.zone import ZoneError, load_zone
from topologies import ZONES

SERVERS = {
    "198.18.1.1": ["root.zone"],
    "198.18.1.11": ["com.zone"],
    "198.18.1.12": ["kr.zone"],
    "198.18.2.1": ["example.com.zone", "example.co.kr.zone", "100.51.198.in-addr.arpa.zone"],
}


class FakeNet:
    def __init__(self):
        self.servers = {a: Responder(ZoneSet([load_zone(ZONES / f) for f in files]),
                                     rotate=False) for a, files in SERVERS.items()}
        self.sent = []
        self.tamper = None

    async def send(self, addr, q):
        self.sent.append((addr, str(q.q.qname), QTYPE[q.q.qtype], q.header.rd))
        if addr not in self.servers:
            raise TimeoutError
        r = DNSRecord.parse(self.servers[addr].respond(q.pack(), tcp=True))
        return self.tamper(addr, r) if self.tamper else r


class Clock:
    t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def net():
    return FakeNet()


@pytest.fixture
def clock():
    return Clock()


def resolver(net, clock, **kw):
    return Resolver(read_root_hints(str(ZONES / "root.hints")), net.send, clock, **kw)


def run(coro):
    return asyncio.run(coro)


def test_dns_hier_walks_root_tld_domain_with_iterative_queries(net, clock):
    res = run(resolver(net, clock).resolve("web.example.com", QTYPE.A))
    assert res.rcode == RCODE.NOERROR
    assert {str(r.rdata) for r in res.answer if r.rtype == QTYPE.A} == {
        "198.51.100.11", "198.51.100.12", "198.51.100.131"}
    assert [s.server for s in res.steps] == ["198.18.1.1", "198.18.1.11", "198.18.2.1"]
    assert [s.outcome for s in res.steps] == ["referral", "referral", "answer"]
    assert all(rd == 0 for *_, rd in net.sent)  # iterative, never recursive


def test_dns_recursive_cache_answers_second_time_and_counts_ttl_down(net, clock):
    r = resolver(net, clock)
    run(r.resolve("mail.example.com", QTYPE.A))
    n = len(net.sent)
    clock.t += 100
    res = run(r.resolve("mail.example.com", QTYPE.A))
    assert len(net.sent) == n and res.from_cache and res.answer[0].ttl == 200
    clock.t += 201  # expired: asks again, but starts at example.com's cached servers
    res = run(r.resolve("mail.example.com", QTYPE.A))
    assert not res.from_cache and net.sent[n:] == [("198.18.2.1", "mail.example.com.", "A", 0)]


def test_dns_recursive_negative_answers_are_cached_for_soa_minimum(net, clock):
    r = resolver(net, clock)
    res = run(r.resolve("nope.example.com", QTYPE.A))
    assert res.rcode == RCODE.NXDOMAIN and res.authority[0].rtype == QTYPE.SOA
    n = len(net.sent)
    clock.t += 59
    assert run(r.resolve("nope.example.com", QTYPE.A)).rcode == RCODE.NXDOMAIN
    assert len(net.sent) == n
    clock.t += 2  # SOA minimum is 60 s
    run(r.resolve("nope.example.com", QTYPE.A))
    assert len(net.sent) == n + 1
    nodata = run(r.resolve("mail.example.com", QTYPE.AAAA))
    assert nodata.rcode == RCODE.NOERROR and not nodata.answer and nodata.authority


def test_dns_recursive_follows_cname_across_zones_and_glueless_delegation(net, clock):
    res = run(resolver(net, clock).resolve("www.example.co.kr", QTYPE.A))
    assert [QTYPE[r.rtype] for r in res.answer][:2] == ["CNAME", "CNAME"]
    assert any(s.qname == "ns1.example.com." for s in res.steps)  # no glue under kr.


def test_dns_ptr_reverse_lookup(net, clock):
    res = run(resolver(net, clock).resolve("131.100.51.198.in-addr.arpa", QTYPE.PTR))
    assert [str(r.rdata) for r in res.answer] == ["web2a.example.com."]


def test_dns_recursive_out_of_bailiwick_records_are_refused(net, clock):
    def poison(addr, r):
        if addr == "198.18.2.1":  # example.com's server tries to vouch for a com. name
            r.add_answer(RR("evil.com.", QTYPE.A, ttl=3600, rdata=A("203.0.113.66")))
        return r
    net.tamper = poison
    r = resolver(net, clock)
    res = run(r.resolve("mail.example.com", QTYPE.A))
    assert "out-of-bailiwick" in res.steps[-1].detail
    assert r.cache.get("evil.com.", QTYPE.A, clock()) is None
    weak = resolver(FakeNet(), clock, check_bailiwick=False)
    weak.send.__self__.tamper = poison
    run(weak.resolve("mail.example.com", QTYPE.A))
    assert weak.cache.get("evil.com.", QTYPE.A, clock()) is not None  # why the check matters


def test_dns_recursive_dead_server_gives_servfail(net, clock):
    del net.servers["198.18.2.1"]
    res = run(resolver(net, clock).resolve("www.example.com", QTYPE.A))
    assert res.rcode == RCODE.SERVFAIL and res.steps[-1].outcome == "timeout"


def test_dns_root_hints_errors_name_the_file(tmp_path):
    p = tmp_path / "hints"
    p.write_text(". NS ns.root.\n")
    with pytest.raises(ZoneError, match="hints.*missing"):
        read_root_hints(str(p))


def test_dns_root_servers_a_dead_root_costs_one_timeout_then_is_asked_last(net, clock):
    """DNS-HIER: three root servers in the hints. With the first one dead, the resolver asks
    the next and still answers; for HOLD_DOWN_S it asks the dead one last, then tries it
    again (it may be back)."""
    from services.dns.resolver import HOLD_DOWN_S

    for addr in ("198.18.1.2", "198.18.1.3"):
        net.servers[addr] = net.servers["198.18.1.1"]
    hints = read_root_hints(str(ZONES / "root.hints"))
    assert [a for _, a in hints] == ["198.18.1.1", "198.18.1.2", "198.18.1.3"]
    dead = net.servers.pop("198.18.1.1")
    r = resolver(net, clock)
    res = run(r.resolve("mail.example.com", QTYPE.A))
    assert res.rcode == RCODE.NOERROR and res.answer, res.steps
    roots = [(s.server, s.outcome) for s in res.steps if s.zone == "."]
    assert roots == [("198.18.1.1", "timeout"), ("198.18.1.2", "referral")], roots
    net.sent.clear()
    res = run(r.resolve("example.co.kr", QTYPE.NS))  # kr. not cached: the root again
    assert res.rcode == RCODE.NOERROR and res.answer
    assert [a for a, *_ in net.sent][0] == "198.18.1.2", net.sent  # the dead one not first
    clock.t += HOLD_DOWN_S + 1
    net.servers["198.18.1.1"] = dead
    r.cache.flush(None)
    net.sent.clear()
    run(r.resolve("mail.example.com", QTYPE.A))
    assert net.sent[0][0] == "198.18.1.1", net.sent  # back in its place once it answers
