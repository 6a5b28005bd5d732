"""Query bytes in, response bytes out, for the authoritative server; no sockets.

Decides the message-level rules around `ZoneSet.lookup`: FORMERR/NOTIMP/REFUSED, EDNS0
(OPT echoed with our buffer size, BADVERS for unknown versions), the UDP size limit with
TC=1 so clients retry over TCP, and DNS round robin (each multi-record RRset rotated per
answer). UDP answers are cached as wire bytes keyed by the query minus its ID, one variant
per rotation, which is what makes the hot path fast.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable

from dnslib import CLASS, EDNS0, OPCODE, QTYPE, RCODE, RR, DNSHeader, DNSQuestion, DNSRecord

from services.dns.authority import Answer, ZoneSet
from services.dns.compiled import Compiled

OUR_UDP_SIZE = 1232  # DNS flag day 2020 default
CACHE_MAX = 100_000
BADVERS = 16
CLASS_ANY = 255
MAX_VARIANTS = 12


def rcode_name(code: int) -> str:
    return "BADVERS" if code == BADVERS else str(RCODE.get(code, code))


def header_only(data: bytes, rcode: int) -> bytes | None:
    """A bare error reply (question copied when it parses) for messages dnslib refused."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    opcode_rd = data[2] & 0x79  # opcode and RD kept, QR set below
    return data[:2] + bytes([0x80 | opcode_rd, rcode & 0x0F]) + bytes(8)


def rotated(rrs: list[RR], r: int) -> list[RR]:
    """Rotate each run of same-owner, same-type records by `r` (round robin)."""
    out: list[RR] = []
    i = 0
    while i < len(rrs):
        j = i
        while j < len(rrs) and rrs[j].rtype == rrs[i].rtype and rrs[j].rname == rrs[i].rname:
            j += 1
        group = rrs[i:j]
        k = r % len(group)
        out.extend(group[k:] + group[:k])
        i = j
    return out


def rotations(rrs: list[RR]) -> list[list[RR]]:
    """Every round-robin variant of an answer section, the unrotated one first."""
    return [rotated(rrs, r) if r else list(rrs) for r in range(variant_count(rrs))]


def variant_count(rrs: list[RR]) -> int:
    sizes = Counter((str(r.rname).lower(), r.rtype) for r in rrs).values()
    n = math.lcm(*sizes) if sizes else 1
    return n if n <= MAX_VARIANTS else max(sizes)


class Responder:
    """Turns queries into responses for one ZoneSet; counts everything it does."""

    def __init__(self, zones: ZoneSet, rotate: bool = True) -> None:
        self.zones = zones
        self.rotate = rotate
        self.stats: Counter[str] = Counter()
        self.cache: dict[bytes, Callable[[], bytes]] = {}
        self.turns: dict[tuple[str, int], int] = {}
        self.notify_handler: Callable[[DNSRecord, str], int] | None = None
        self.compiled = Compiled(zones, self.stats, rotate, rotations, self._remember)
        self.fast = True  # precompiled answers for plain queries that miss the cache

    def clear_cache(self) -> None:
        """The zones changed: forget every answer, and index the zones again now."""
        self.cache.clear()  # in place: the UDP loops hold on to it
        if self.fast:
            self.compiled.prepare()
        else:
            self.compiled.clear()

    def precompiled(self, data: bytes) -> bytes | None:
        """A UDP query's answer from the precompiled templates; None: `respond` must."""
        return self.compiled.answer(data) if self.fast else None

    def respond(self, data: bytes, source: str = "", tcp: bool = False,
                tried: bool = False) -> bytes | None:
        """The response to one query, or None when it must be dropped (counted).
        `tried`: the wire cache and `precompiled` have had it already."""
        data = bytes(data)
        if not tcp and not tried:
            hit = self.cache.get(data[2:])
            if hit is not None:
                self.stats["cache_hits"] += 1
                return data[:2] + hit()
            out = self.precompiled(data)
            if out is not None:
                return out
        self.stats["queries"] += 1
        try:
            q = DNSRecord.parse(data)
        except Exception:
            self.stats["malformed"] += 1
            out = header_only(data, RCODE.FORMERR)
            if out is None:
                self.stats["dropped"] += 1
            return out
        if q.header.qr:
            self.stats["dropped"] += 1
            return None
        opts = edns_opts(q)
        limit = size_limit(opts, tcp)
        if len(q.questions) != 1 or len(opts) > 1:
            return self._finish(q, self._error(q, RCODE.FORMERR), limit, opts)
        if opts and (opts[0].ttl >> 16) & 0xFF != 0:
            return self._finish(q, self._error(q, RCODE.NOERROR, ext=BADVERS), limit, opts)
        opcode = q.header.opcode
        if opcode == OPCODE.NOTIFY and self.notify_handler is not None:
            rcode = self.notify_handler(q, source)
            self.stats["notify_in"] += 1
            r = self._error(q, rcode)
            r.header.aa = 1
            return self._finish(q, r, limit, opts)
        if opcode != OPCODE.QUERY:
            return self._finish(q, self._error(q, RCODE.NOTIMP), limit, opts)
        question = q.q
        if question.qclass not in (CLASS.IN, CLASS_ANY):
            return self._finish(q, self._error(q, RCODE.REFUSED), limit, opts)
        if question.qtype in (QTYPE.AXFR, QTYPE.IXFR):
            return self._finish(q, self._error(q, RCODE.REFUSED), limit, opts)
        ans = self.zones.lookup(question.qname, question.qtype)
        if tcp:
            return self._finish(q, self._reply(q, ans, 0), limit, opts)
        n, start = 1, 0
        if self.rotate:
            n = variant_count(ans.answer)
            # per-name turn, so clients whose queries differ (EDNS cookies) still rotate
            turn_key = (str(question.qname).lower(), question.qtype)
            start = self.turns.get(turn_key, 0)
            if len(self.turns) > CACHE_MAX:
                self.turns = {}
            self.turns[turn_key] = start + 1
        # counted once: the other variants are answers to later queries (cache hits)
        variants = [finish(self._reply(q, ans, start + r), limit, opts,
                           self.stats if r == 0 else Counter()) for r in range(n)]
        self._remember(data[2:], [v[2:] for v in variants])
        return variants[0]

    def _remember(self, query: bytes, replies: list[bytes]) -> None:
        """The wire cache: the same query again gets the next reply (round robin) with
        its own ID; `replies[0]` is the one being sent now."""
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()
        if len(replies) == 1:
            self.cache[query] = itertools.repeat(replies[0]).__next__
        else:
            nxt = self.cache[query] = itertools.cycle(replies).__next__
            nxt()

    def _reply(self, q: DNSRecord, ans: Answer, r: int) -> DNSRecord:
        h = DNSHeader(id=q.header.id, qr=1, aa=int(ans.aa), rd=q.header.rd, rcode=ans.rcode)
        reply = DNSRecord(h, q=DNSQuestion(q.q.qname, q.q.qtype, q.q.qclass))
        reply.rr = rotated(ans.answer, r) if r else list(ans.answer)
        reply.auth = list(ans.authority)
        reply.ar = list(ans.additional)
        return reply

    def _error(self, q: DNSRecord, rcode: int, ext: int = 0) -> DNSRecord:
        return error_reply(q, rcode, ext)

    def _finish(self, q: DNSRecord, reply: DNSRecord, limit: int, opts: list[RR]) -> bytes:
        return finish(reply, limit, opts, self.stats)


def error_reply(q: DNSRecord, rcode: int, ext: int = 0) -> DNSRecord:
    """A reply carrying only the question and an rcode (`ext`: extended rcode, e.g. BADVERS)."""
    r = DNSRecord(DNSHeader(id=q.header.id, qr=1, opcode=q.header.opcode, rd=q.header.rd,
                            rcode=rcode))
    r.questions = list(q.questions[:1])
    r.ext_rcode = ext
    return r


def edns_opts(q: DNSRecord) -> list[RR]:
    return [rr for rr in q.ar if rr.rtype == QTYPE.OPT]


def size_limit(opts: list[RR], tcp: bool) -> int:
    """RFC 6891: the client's advertised UDP size (at least 512), no limit but 64k on TCP."""
    return 65535 if tcp else (max(512, opts[0].rclass) if opts else 512)


def finish(reply: DNSRecord, limit: int, opts: list[RR], stats: Counter) -> bytes:
    """Add OPT when the client sent one, pack, and truncate (TC=1) to the transport's limit."""
    ext = getattr(reply, "ext_rcode", 0)
    if opts:
        reply.ar.append(EDNS0(udp_len=OUR_UDP_SIZE, ext_rcode=ext >> 4))
    stats[f"rcode_{rcode_name(reply.header.rcode | (ext & ~0xF))}"] += 1
    wire = reply.pack()
    if len(wire) > limit:
        stats["truncated"] += 1
        reply.rr, reply.auth = [], []
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        reply.header.tc = 1
        wire = reply.pack()
    return bytes(wire)
