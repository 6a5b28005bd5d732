"""Precompiled answers (as NSD does): the authoritative miss path without dnslib objects.

A query is parsed by hand (one question, class IN, at most an OPT record; anything else
returns None and goes to the full path in `responder`). Its lower-cased wire name is
walked suffix by suffix against an index of every name that exists in the served zones;
the first hit, the closest encloser E, decides the answer's shape: the name itself when
E is the whole name, otherwise everything below E (a wildcard, a referral at a cut above,
NXDOMAIN) answers alike. So one `Template` per (E, whole-or-below, qtype) serves every
name of that shape: it is built once from `ZoneSet.lookup` and packed per question
length, with the question's own bytes (case kept) spliced in and the answer's owner a
pointer to it. Answers are the full path's, record for record; only name compression
may differ (a template points only into the part of the question its names share).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from dnslib import QTYPE, RCODE, DNSBuffer, DNSLabel

from services.dns.authority import Answer, Name, ZoneData, ZoneSet

OPT_REPLY_SIZE = 1232  # as the full path: our UDP size, version 0, no flags, no options
OPT_REPLY = b"\x00\x00\x29" + OPT_REPLY_SIZE.to_bytes(2, "big") + bytes(6)
FULL_PATH_TYPES = {QTYPE.AXFR, QTYPE.IXFR, QTYPE.ANY, QTYPE.OPT, 253, 254}  # MAILA/B
MAX_TEMPLATES = 200_000
BELOW = b"\xff"  # marks "below E" keys: 255 is never a label length


def wire(name: Name) -> bytes:
    """A lower-cased name (labels, most specific first) in wire form, root byte included."""
    return b"".join(bytes([len(label)]) + label for label in name) + b"\0"


def labels_of(lname: bytes) -> Name:
    """The labels of a name in wire form (no compression pointers): `wire`'s inverse."""
    out, i = [], 0
    while lname[i]:
        out.append(lname[i + 1:i + 1 + lname[i]])
        i += lname[i] + 1
    return tuple(out)


class Query:
    """What the fast path needs of a query: where the question ends, label offsets, the
    lower-cased name, qtype, the client's size limit and whether it sent OPT."""

    __slots__ = ("end", "starts", "lname", "qtype", "limit", "opt", "options")

    def __init__(self, end: int, starts: list[int], lname: bytes, qtype: int, limit: int,
                 opt: bool, options: bool = False) -> None:
        self.end, self.starts, self.lname = end, starts, lname
        self.qtype, self.limit, self.opt = qtype, limit, opt
        self.options = options  # the OPT carried options (ECS, cookies...)


def parse_query(data: bytes) -> Query | None:
    """A plain query (QR=0, opcode QUERY, no AA/TC, one IN question, no answer or
    authority records, nothing or one well-formed version-0 OPT), else None."""
    n = len(data)
    if n < 17 or data[2] & 0xFE or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    arcount = data[10:12]
    if arcount != b"\x00\x00" and arcount != b"\x00\x01":
        return None
    i = 12
    starts = []
    while True:
        if i >= n:
            return None
        length = data[i]
        if length == 0:
            break
        if length > 63:
            return None  # a pointer (or reserved bits) in a question: full path
        starts.append(i)
        i += length + 1
    i += 1
    end = i + 4
    if i - 12 > 255 or end > n or data[i + 2:end] != b"\x00\x01":
        return None
    qtype = data[i] << 8 | data[i + 1]
    if qtype in FULL_PATH_TYPES:
        return None
    if arcount == b"\x00\x00":
        if end != n:
            return None
        return Query(end, starts, data[12:i].lower(), qtype, 512, False)
    # OPT: root name, type 41, class = UDP size, ext-rcode, version, flags, rdlen, options
    if n < end + 11 or data[end:end + 3] != b"\x00\x00\x29" or data[end + 6] != 0:
        return None
    rdlen = data[end + 9] << 8 | data[end + 10]
    j = end + 11
    if j + rdlen != n:
        return None
    while j < n:  # each option: code, length, data; they must fill rdata exactly
        if j + 4 > n:
            return None
        j += 4 + (data[j + 2] << 8 | data[j + 3])
    if j != n:
        return None
    size = data[end + 3] << 8 | data[end + 4]
    return Query(end, starts, data[12:i].lower(), qtype, max(512, size), True, rdlen > 0)


class Template:
    """One answer shape: flags, counts and, per question length, the packed sections of
    each round-robin variant. `shared` is how many trailing labels every name using it
    has in common (all of them for a name's own template), which is what its name
    compression may point into."""

    def __init__(self, ans: Answer, rep: Name, shared: int, zone: ZoneData | None,
                 variants: list[list], owners: set[bytes]) -> None:
        self.rep, self.shared, self.zone = rep, shared, zone
        self.variants = variants  # per variant, the records of all three sections in order
        self.owners = owners  # answer owners other than the query name (CNAME chains)
        self.counts = (len(ans.answer), len(ans.authority), len(ans.additional))
        self.flags = 0x80 | (0x04 if ans.aa else 0)
        self.rcode = ans.rcode
        self.rcode_stat = f"rcode_{RCODE.get(ans.rcode, ans.rcode)}"
        self.turn = 0
        self.bodies: dict[int, list[bytes]] = {}
        an, ns, ar = self.counts
        self.headers = {  # (rd, opt) -> bytes 2..11 of the reply header
            (rd, opt): bytes([self.flags | rd, self.rcode, 0, 1]) + an.to_bytes(2, "big")
            + ns.to_bytes(2, "big") + (ar + opt).to_bytes(2, "big")
            for rd in (0, 1) for opt in (0, 1)}

    def bodies_for(self, qlen: int) -> list[bytes]:
        """The packed sections for a question name of `qlen` wire bytes (built once)."""
        out = self.bodies.get(qlen)
        if out is None:
            out = self.bodies[qlen] = [self._pack(qlen, rrs) for rrs in self.variants]
        return out

    def _pack(self, qlen: int, rrs: list) -> bytes:
        start = 12 + qlen + 4
        buf = DNSBuffer()
        buf.data = bytearray(start)
        buf.offset = start
        # compression targets: the question name itself at 12, and its shared suffixes
        # at their distance from the question's end (the same for every name here)
        buf.names = {self.rep: 12}
        tail = 12 + qlen - 1  # the root byte
        for k in range(1, self.shared + 1):
            suffix = self.rep[len(self.rep) - k:]
            tail -= len(suffix[0]) + 1
            buf.names[suffix] = tail
        for rr in rrs:
            rr.pack(buf)
        return bytes(buf.data[start:])


class Compiled:
    """The fast path of one `Responder`: its index of existing names, its templates and
    the same counters the full path keeps. `clear()` whenever the zones change."""

    def __init__(self, zones: ZoneSet, stats: Counter, rotate: bool,
                 rotations: Callable[[list], list[list]],
                 remember: Callable[[bytes, list[bytes]], None]) -> None:
        self.zones, self.stats, self.rotate, self.rotations = zones, stats, rotate, rotations
        self.remember = remember  # query minus ID -> its replies minus ID, in turn
        self.index: dict[bytes, ZoneData] | None = None
        self.version = -1
        self.templates: dict[bytes, Template] = {}

    def clear(self) -> None:
        self.index = None
        self.templates = {}

    def prepare(self) -> None:
        """Index the zones now (at load and after every change) rather than on the first
        query that needs it: a million names take a second or two."""
        self.templates = {}
        self.index, self.version = self._build_index(), self.zones.version

    def _build_index(self) -> dict[bytes, ZoneData]:
        """Every existing name of every zone, in wire form, with its zone; a name below
        another served zone's apex belongs to that zone only (`ZoneSet.find`)."""
        index: dict[bytes, ZoneData] = {}
        origins = set(self.zones.zones)
        for origin, zone in sorted(self.zones.zones.items(), key=lambda kv: len(kv[0])):
            inner = [o for o in origins if len(o) > len(origin) and o[len(o) - len(origin):]
                     == origin]  # served zones below this one
            for name in zone.exists:
                if inner and any(name[i:] in origins for i in range(len(name) - len(origin))):
                    continue
                index[wire(name)] = zone
        return index

    def answer(self, data: bytes) -> bytes | None:
        """The reply, or None: the full path must answer (an unusual query, a zone still
        loading, a reply too big for the client, a name a template cannot stand for)."""
        zones = self.zones
        if zones.pending:
            return None
        q = parse_query(data)
        if q is None:
            return None
        index = self.index
        if index is None or self.version != zones.version:
            self.prepare()
            index = self.index
            assert index is not None
        lname = q.lname
        qt = data[q.end - 4:q.end - 2]
        key = b"\x00" + qt  # outside every zone: REFUSED
        zone: ZoneData | None = None
        shared = 0
        starts = q.starts
        for k, s in enumerate(starts):
            zone = index.get(lname[s - 12:])
            if zone is not None:
                key = (lname if k == 0 else BELOW + lname[s - 12:]) + qt
                shared = len(starts) - k
                break
        else:
            zone = index.get(b"\x00")  # the root zone, when served
            if zone is not None:
                key = (BELOW + b"\x00" if starts else lname) + qt
        t = self.templates.get(key)
        if t is None:
            t = self._template(key, q, zone, shared)
            if t is None:
                return None
        elif t.owners and lname in t.owners:
            return None  # this name is a link of the template's CNAME chain
        if t.zone is not None and not t.zone.serving:
            return None
        bodies = t.bodies_for(q.end - 16)
        head = t.headers[data[2] & 1, q.opt] + data[12:q.end]
        opt = OPT_REPLY if q.opt else b""
        if len(head) + len(bodies[0]) + len(opt) + 2 > q.limit:
            return None  # the full path truncates it (TC=1)
        if len(bodies) > 1:
            k = t.turn % len(bodies)
            t.turn += 1
            tails = [head + b + opt for b in bodies[k:] + bodies[:k]]
        else:
            tails = [head + bodies[0] + opt]
        self.remember(data[2:], tails)
        stats = self.stats
        stats["queries"] += 1
        stats["precompiled"] += 1
        stats[t.rcode_stat] += 1
        return data[:2] + tails[0]

    def _template(self, key: bytes, q: Query, zone: ZoneData | None,
                  shared: int) -> Template | None:
        lname = q.lname
        name = labels_of(lname)
        ans = self.zones.lookup(DNSLabel(list(name)), q.qtype)  # this name stands for all
        if ans.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN, RCODE.REFUSED):
            return None  # SERVFAIL and the like are for the full path to say
        # a CNAME chain's later owners: a query for one of them answers differently
        owners = {wire(tuple(p.lower() for p in rr.rname.label)) for rr in ans.answer}
        owners.discard(lname)
        if any(rr.rtype == QTYPE.CNAME and wire(tuple(p.lower() for p in rr.rdata.label.label))
               == lname for rr in ans.answer):
            return None  # the chain came back to this name: not representative
        rotations = self.rotations(ans.answer) if self.rotate else [list(ans.answer)]
        variants = [r + list(ans.authority) + list(ans.additional) for r in rotations]
        t = Template(ans, name, shared, zone if ans.rcode != RCODE.REFUSED else None,
                     variants, owners)
        if len(self.templates) >= MAX_TEMPLATES:
            self.templates = {}
        self.templates[key] = t
        return t
