"""The resolver's record cache: positive RRsets and negative answers (RFC 2308), clock injected.

Entries are keyed by (name, type) with lower-cased names; every read returns records with
their remaining TTL, so answers from the cache count down exactly as the notes describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslib import RCODE, RR, DNSBuffer, DNSLabel

from services.dns.authority import Name, name_key

MAX_TTL = 86400
MAX_ENTRIES = 200_000


@dataclass
class Entry:
    expires: float
    rrs: list[RR]            # positive: the RRset; negative: the SOA (if any)
    rcode: int = RCODE.NOERROR
    negative: bool = False   # NXDOMAIN (rcode 3) or NODATA (rcode 0)
    glue: bool = False       # learned from a referral: used to reach servers, never an answer


class WireEntry(Entry):
    """An RRset kept as the upstream reply's bytes, decoded on first use: the LDNS's fast
    miss path caches every answer it copies, and most are never read from the cache."""

    def __init__(self, expires: float, reply: bytes, offset: int, count: int) -> None:
        self.expires, self.rcode, self.negative, self.glue = expires, RCODE.NOERROR, False, False
        self._wire: tuple[bytes, int, int] | None = (reply, offset, count)
        self._rrs: list[RR] = []

    @property
    def rrs(self) -> list[RR]:
        if self._wire is not None:
            reply, offset, count = self._wire
            buf = DNSBuffer(reply)
            buf.offset = offset
            self._rrs, self._wire = [RR.parse(buf) for _ in range(count)], None
        return self._rrs

    @rrs.setter
    def rrs(self, value: list[RR]) -> None:
        self._rrs, self._wire = value, None


class RecordCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: dict[tuple[Name, int], Entry] = {}
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def _room(self, now: float) -> None:
        if len(self.entries) >= self.max_entries:
            self.entries = {k: e for k, e in self.entries.items() if e.expires > now}
            if len(self.entries) >= self.max_entries:
                self.entries.clear()

    def put(self, rrs: list[RR], now: float, glue: bool = False) -> None:
        """Cache one RRset (all records share owner and type); its TTL is the smallest.
        Glue never replaces live authoritative data (RFC 2181 5.4.1 ranking)."""
        if not rrs:
            return
        self._room(now)
        ttl = min(min(r.ttl for r in rrs), MAX_TTL)
        key = (name_key(rrs[0].rname), rrs[0].rtype)
        old = self.entries.get(key)
        if glue and old is not None and not old.glue and old.expires > now:
            return
        self.entries[key] = Entry(now + ttl, list(rrs), glue=glue)

    def put_wire(self, key: tuple[Name, int], ttl: int, reply: bytes, offset: int, count: int,
                 now: float) -> None:
        """Cache an authoritative RRset as it came (`count` records from `offset` of
        `reply`, already checked to decode: fixed-size A or AAAA data), `ttl` its smallest."""
        self._room(now)
        self.entries[key] = WireEntry(now + min(ttl, MAX_TTL), reply, offset, count)

    def put_negative(self, name: DNSLabel | str, qtype: int, rcode: int, soa: RR | None,
                     now: float) -> None:
        """RFC 2308: cache NXDOMAIN/NODATA for min(SOA TTL, SOA minimum); 0 without an SOA."""
        ttl = min(soa.ttl, soa.rdata.times[4]) if soa is not None else 0
        if ttl <= 0:
            return
        self._room(now)
        self.entries[(name_key(name), qtype)] = Entry(now + ttl, [soa], rcode, negative=True)

    def get(self, name: DNSLabel | str, qtype: int, now: float,
            glue: bool = True) -> Entry | None:
        """The entry with TTLs counted down to `now`, or None when absent or expired
        (or only glue, when `glue` is False)."""
        key = (name_key(name), qtype)
        e = self.entries.get(key)
        if e is not None and e.glue and not glue and e.expires > now:
            self.misses += 1
            return None
        if e is None or e.expires <= now:
            if e is not None:
                del self.entries[key]
            self.misses += 1
            return None
        self.hits += 1
        left = max(0, int(e.expires - now))
        rrs = [RR(r.rname, r.rtype, r.rclass, left, r.rdata) for r in e.rrs]
        return Entry(e.expires, rrs, e.rcode, e.negative, e.glue)

    def flush(self, name: DNSLabel | str | None = None) -> int:
        if name is None:
            n = len(self.entries)
            self.entries.clear()
            return n
        k = name_key(name)
        gone = [key for key in self.entries if key[0] == k]
        for key in gone:
            del self.entries[key]
        return len(gone)

    def dump(self, now: float) -> list[dict]:
        out = []
        for (name, qtype), e in sorted(self.entries.items()):
            if e.expires <= now:
                continue
            out.append({"name": ".".join(x.decode() for x in name) + ".", "type": qtype,
                        "ttl": int(e.expires - now), "negative": e.negative,
                        "rcode": e.rcode, "data": [str(r.rdata) for r in e.rrs]})
        return out
