"""DNS-RECURSIVE the LDNS's fast miss path: for the same queries in the same order, an
LDNS taking it answers what the full path answers and caches the same records (the
world's zone files behind pure responders, a fake clock, no sockets)."""

from __future__ import annotations

import asyncio

from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord

from services.dns.authority import ZoneSet
from services.dns.compiled import parse_query
from services.dns.fastmiss import FastMiss, Pending, client_reply, simple_answer, upstream_query
from services.dns.ldns import Ldns, dispatch
from services.dns.resolver import Resolver, read_root_hints
from services.dns.responder import Responder
from services.dns.zone import load_zone
from topologies import ZONES

from .test_dns_resolver import SERVERS, Clock

QUERIES = [("www.example.com", "A"), ("web.example.com", "A"), ("WEB.Example.COM", "A"),
           ("mail.example.com", "A"), ("nope.example.com", "A"), ("example.com", "MX"),
           ("x.apps.example.com", "A"), ("Y.apps.example.com", "A"), ("ftp.example.com", "A"),
           ("example.com", "TXT"), ("web.example.com", "AAAA"), ("mail.example.com", "AAAA"),
           ("example.co.kr", "A"), ("web.example.co.kr", "A"), ("ns1.example.com", "A"),
           ("11.100.51.198.in-addr.arpa", "PTR"), ("nothing.kr", "A"), ("a.b.c.d.com", "A")]


class Net:
    """The world's authoritative servers as pure responders, asked with bytes."""

    def __init__(self) -> None:
        self.servers = {a: Responder(ZoneSet([load_zone(ZONES / f) for f in files]),
                                     rotate=False) for a, files in SERVERS.items()}
        self.asked = 0

    def reply(self, addr: str, packet: bytes) -> bytes | None:
        self.asked += 1
        return self.servers[addr].respond(packet, tcp=True) if addr in self.servers else None

    async def send(self, addr: str, q: DNSRecord) -> DNSRecord:
        out = self.reply(addr, bytes(q.pack()))
        if out is None:
            raise TimeoutError
        return DNSRecord.parse(out)


class LoopbackFastMiss(FastMiss):
    """The fast path with the network replaced by `Net`: replies arrive on the next turn
    of the loop, as a datagram would; a server we do not have times out."""

    def __init__(self, ldns: Ldns, slow, net: Net) -> None:
        super().__init__(ldns.resolver, ldns.stats, ldns.wire, slow, logging=False)
        self.net = net

    def _open(self, key: bytes, p: Pending, packet: bytes) -> bool:
        out = self.net.reply(p.server, packet)
        loop = asyncio.get_running_loop()
        if out is None:
            loop.call_soon(self._timed_out, key, p)
        else:
            loop.call_soon(self._deliver, key, p, out, p.server)
        return True

    def _close(self, key: bytes, p: Pending) -> None:
        if self.pending.get(key) is p:
            del self.pending[key]


class Client:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def sendto(self, data: bytes, addr) -> None:
        self.got.append(bytes(data))


def query(name: str, qtype: str, qid: int, edns: bool) -> bytes:
    q = DNSRecord(q=DNSQuestion(name, getattr(QTYPE, qtype)))
    q.header.id, q.header.rd = qid, 1
    if edns:
        q.add_ar(EDNS0(udp_len=1232))
    return bytes(q.pack())


def normal(wire: bytes) -> tuple:
    r = DNSRecord.parse(wire)

    def rrs(section):
        return sorted((str(x.rname).lower(), x.rtype, x.ttl, str(x.rdata).lower())
                      for x in section)
    return (r.header.id, r.header.bitmap, r.header.rcode, str(r.q.qname), r.q.qtype,
            rrs(r.rr), rrs(r.auth), rrs(r.ar))


def run_ldns(fast: bool, queries: list[bytes]) -> tuple[list[tuple], Ldns, Net]:
    net, clock = Net(), Clock()
    ldns = Ldns(Resolver(read_root_hints(str(ZONES / "root.hints")), net.send, clock))
    client = Client()

    async def go() -> None:
        loop = asyncio.get_running_loop()

        def full_path(data, addr, sock) -> None:
            from services.dns.ldns import _answer_udp
            loop.create_task(_answer_udp(ldns, sock, data, addr))

        if fast:
            ldns.fast = LoopbackFastMiss(ldns, full_path, net)
        for data in queries:  # one at a time, as answers come back
            before = len(client.got)
            dispatch(ldns, data, ("198.18.10.5", 5300), client, loop)
            for _ in range(200):
                if len(client.got) > before:
                    break
                await asyncio.sleep(0)
            assert len(client.got) == before + 1, f"no answer to {DNSRecord.parse(data).q}"
            clock.t += 1

    asyncio.run(go())
    return [normal(w) for w in client.got], ldns, net


def test_dns_recursive_fast_miss_answers_and_caches_as_the_full_path():
    queries = [query(n, t, i, edns=bool(i % 2)) for i, (n, t) in enumerate(QUERIES * 2)]
    fast, fldns, fnet = run_ldns(True, queries)
    full, sldns, snet = run_ldns(False, queries)
    assert fast == full
    now = 1000.0 + len(queries)
    assert fldns.resolver.cache.dump(now) == sldns.resolver.cache.dump(now)
    assert fnet.asked == snet.asked  # no upstream query sent twice
    assert fldns.stats["fast_misses"] >= 8, fldns.stats  # it did take the plain ones


def test_dns_recursive_fast_miss_copies_only_the_questions_own_rrset():
    auth = Responder(ZoneSet([load_zone(ZONES / "example.com.zone")]), rotate=False)
    for name, qtype, simple in (("web.example.com", "A", True), ("x.apps.example.com", "A", True),
                                ("www.example.com", "A", False), ("ftp.example.com", "A", False),
                                ("nope.example.com", "A", False), ("web.example.com", "MX", False),
                                ("a.gslb.example.com", "A", False)):
        data = query(name, qtype, 7, edns=True)
        q = parse_query(data)
        assert q is not None
        reply = auth.respond(upstream_query(data, q, 99))
        assert reply is not None
        got = simple_answer(reply, data[12:q.end])
        assert (got is not None) == simple, name
        if got:
            out = DNSRecord.parse(client_reply(data, q, reply, *got[:2]))
            assert out.header.id == 7 and out.header.ra and not out.header.aa
            assert {str(r.rdata) for r in out.rr} == {
                str(r.rdata) for r in DNSRecord.parse(reply).rr}
            assert [r.rtype for r in out.ar] == [QTYPE.OPT]
