"""Authoritative lookup (RFC 1034 4.3.2), pure: zones in, sections out, no sockets.

`ZoneSet.lookup(qname, qtype)` decides everything an authoritative server answers:
REFUSED outside its zones, referrals with glue at delegation points, exact answers with the
AA flag, in-zone CNAME chasing, wildcards (RFC 4592), NODATA vs NXDOMAIN with the SOA in
authority (RFC 2308) and additional A/AAAA for NS/MX/SRV targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, DNSLabel

from services.dns.zone import Zone

Name = tuple[bytes, ...]  # lower-cased labels, most specific first; the root is ()
ADDRESS_TYPES = (QTYPE.A, QTYPE.AAAA)
MAX_CHAIN = 12


def name_key(label: DNSLabel | str) -> Name:
    if isinstance(label, str):
        label = DNSLabel(label)
    return tuple(part.lower() for part in label.label)


def is_below(name: Name, origin: Name) -> bool:
    """True when `name` is `origin` or inside it."""
    return len(name) >= len(origin) and name[len(name) - len(origin):] == origin


def _target(rr: RR) -> DNSLabel | None:
    rd = rr.rdata
    if rr.rtype in (QTYPE.NS, QTYPE.CNAME, QTYPE.PTR):
        return rd.label
    if rr.rtype == QTYPE.MX:
        return rd.label
    if rr.rtype == QTYPE.SRV:
        return rd.target
    return None


class ZoneData:
    """One zone indexed by owner name and type; `serving` is False once a secondary expires."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.origin = name_key(zone.origin)
        self.label = zone.origin
        self.serving = True
        self.nodes: dict[Name, dict[int, list[RR]]] = {}
        self.exists: set[Name] = set()
        for rr in zone.records:
            k = name_key(rr.rname)
            self.nodes.setdefault(k, {}).setdefault(rr.rtype, []).append(rr)
            for i in range(len(k) - len(self.origin) + 1):
                self.exists.add(k[i:])
        self.soa = self.nodes[self.origin][QTYPE.SOA][0]
        self.cuts = {k for k, types in self.nodes.items() if QTYPE.NS in types and k != self.origin}

    @property
    def serial(self) -> int:
        return self.soa.rdata.times[0]

    @property
    def records(self) -> list[RR]:
        return self.zone.records

    def negative_soa(self) -> RR:
        """The SOA for negative answers: TTL = min(SOA TTL, SOA minimum) (RFC 2308 s3)."""
        ttl = min(self.soa.ttl, self.soa.rdata.times[4])
        return RR(self.soa.rname, QTYPE.SOA, ttl=ttl, rdata=self.soa.rdata)

    def cut_above(self, name: Name) -> Name | None:
        """The highest delegation point at or above `name` (inside this zone), if any."""
        for i in range(len(name) - len(self.origin) - 1, -1, -1):
            if name[i:] in self.cuts:
                return name[i:]
        return None


@dataclass
class Answer:
    rcode: int = RCODE.NOERROR
    aa: bool = True
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)


class ZoneSet:
    """All zones a server is authoritative for, found by longest suffix match."""

    def __init__(self, zones: list[Zone] | None = None) -> None:
        self.zones: dict[Name, ZoneData] = {}
        self.pending: set[Name] = set()  # configured secondaries without a copy yet
        self.version = 0  # grows with every zone added or replaced (compiled answers)
        for z in zones or []:
            self.add(z)

    def add(self, zone: Zone) -> ZoneData:
        data = ZoneData(zone)
        self.zones[data.origin] = data
        self.pending.discard(data.origin)
        self.version += 1
        return data

    def find(self, name: Name) -> ZoneData | None:
        for i in range(len(name) + 1):
            z = self.zones.get(name[i:])
            if z is not None:
                return z
        return None

    def lookup(self, qname: DNSLabel, qtype: int) -> Answer:
        """Everything the server answers for one question, or REFUSED outside its zones."""
        key = name_key(qname)
        zone = self.find(key)
        if zone is None or (self.pending and any(
                is_below(key, p) and len(p) > len(zone.origin) for p in self.pending)):
            waiting = any(is_below(key, p) for p in self.pending)
            return Answer(RCODE.SERVFAIL if waiting else RCODE.REFUSED, aa=False)
        if not zone.serving:
            return Answer(RCODE.SERVFAIL, aa=False)
        ans = Answer()
        owner, name = qname, name_key(qname)
        for _ in range(MAX_CHAIN):
            cut = zone.cut_above(name)
            if cut is not None and not (cut == name and qtype == QTYPE.DS):
                if not ans.answer:
                    ans.aa = False
                ans.authority = list(zone.nodes[cut][QTYPE.NS])
                ans.additional = self._addresses(zone, ans.authority, glue=True)
                return ans
            node = zone.nodes.get(name)
            if node is None and name not in zone.exists:
                node = self._wildcard(zone, name)
                if node is None:
                    ans.rcode = RCODE.NXDOMAIN
                    ans.authority = [zone.negative_soa()]
                    return ans
            node = node or {}
            if QTYPE.CNAME in node and qtype not in (QTYPE.CNAME, QTYPE.ANY):
                rr = node[QTYPE.CNAME][0]
                ans.answer.append(RR(owner, QTYPE.CNAME, ttl=rr.ttl, rdata=rr.rdata))
                owner = rr.rdata.label
                name = name_key(owner)
                if not is_below(name, zone.origin) or any(r.rname == owner for r in ans.answer):
                    return ans  # out of zone, or a loop: the resolver follows from here
                continue
            if qtype == QTYPE.ANY and node:
                # RFC 8482: one RRset (the first in zone-file order), as NSD answers
                rrs = next(iter(node.values()))
                ans.answer.extend(RR(owner, r.rtype, ttl=r.ttl, rdata=r.rdata) for r in rrs)
                return ans
            if qtype == QTYPE.ANY:
                rrsets = []
            else:
                rrsets = [node[qtype]] if qtype in node else []
            if not rrsets:
                ans.authority = [zone.negative_soa()]
                return ans
            for rrs in rrsets:
                ans.answer.extend(RR(owner, r.rtype, ttl=r.ttl, rdata=r.rdata) for r in rrs)
            ans.additional = self._addresses(zone, ans.answer, glue=False)
            return self._with_apex_ns(zone, ans)
        ans.rcode = RCODE.SERVFAIL
        return ans

    def _with_apex_ns(self, zone: ZoneData, ans: Answer) -> Answer:
        """Positive answers carry the zone's NS set in authority (as NSD and BIND do)."""
        apex_ns = zone.nodes[zone.origin].get(QTYPE.NS, [])
        if any(r.rtype == QTYPE.NS and name_key(r.rname) == zone.origin for r in ans.answer):
            return ans
        ans.authority = list(apex_ns)
        # an RRset already in the answer is not repeated in additional (as NSD and BIND)
        have = {(name_key(r.rname), r.rtype) for r in ans.answer + ans.additional}
        for rr in self._addresses(zone, apex_ns, glue=False):
            if (name_key(rr.rname), rr.rtype) not in have:
                ans.additional.append(rr)
        return ans

    @staticmethod
    def _wildcard(zone: ZoneData, name: Name) -> dict[int, list[RR]] | None:
        """RFC 4592: `*.<closest encloser>` answers for names that do not exist."""
        for i in range(1, len(name) - len(zone.origin) + 1):
            if name[i:] in zone.exists:
                return zone.nodes.get((b"*",) + name[i:])
        return None

    @staticmethod
    def _addresses(zone: ZoneData, rrs: list[RR], glue: bool) -> list[RR]:
        """A/AAAA of NS/MX/SRV targets held in this zone (glue below a cut only for referrals)."""
        out: list[RR] = []
        seen: set[Name] = set()
        for rr in rrs:
            if rr.rtype not in (QTYPE.NS, QTYPE.MX, QTYPE.SRV):
                continue
            t = name_key(_target(rr))
            if t in seen or not is_below(t, zone.origin):
                continue
            seen.add(t)
            if not glue and zone.cut_above(t) is not None:
                continue
            node = zone.nodes.get(t, {})
            for qt in ADDRESS_TYPES:
                out.extend(node.get(qt, []))
        return out
