"""Iterative resolution from the root hints (RFC 1034 5.3.3), transport and clock injected.

`Resolver.resolve` follows referrals down from the closest cached delegation (or the
root), chases CNAMEs across zones, caches positive and negative answers, and refuses
out-of-bailiwick data: a server is believed only for names inside the zone it was asked
about. Every query it sends and what came back is recorded as a `Step`, which is what
`infralab dns trace` and the LDNS query log print.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSQuestion, DNSRecord

from services.dns.authority import Name, is_below, name_key
from services.dns.cache import RecordCache
from services.dns.zone import ZoneError

MAX_CNAME = 10
MAX_REFERRALS = 20
MAX_DEPTH = 4  # nested resolutions of name-server addresses
HOLD_DOWN_S = 60.0  # a server that did not answer is asked last for this long
UNRESPONSIVE_MAX = 10_000

Send = Callable[[str, DNSRecord], Awaitable[DNSRecord]]


@dataclass
class Step:
    """One query the resolver sent, and what it made of the answer."""
    server: str
    zone: str
    qname: str
    qtype: str
    outcome: str          # answer | cname | referral | nxdomain | nodata | lame | timeout ...
    detail: str = ""
    elapsed_ms: float = 0.0


@dataclass
class Result:
    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    from_cache: bool = True


def label_text(name: Name) -> str:
    return ".".join(x.decode(errors="replace") for x in name) + "." if name else "."


def _summary(rrs: list[RR]) -> str:
    return ", ".join(f"{r.rname} {QTYPE[r.rtype]} {r.rdata}" for r in rrs[:4]) + \
        (" ..." if len(rrs) > 4 else "")


class Resolver:
    def __init__(self, root_hints: list[tuple[str, str]], send: Send,
                 now: Callable[[], float] = time.monotonic,
                 cache: RecordCache | None = None, check_bailiwick: bool = True) -> None:
        """`root_hints`: (server name, address) pairs; `send(addr, query)` does the I/O."""
        self.hints = root_hints
        self.send = send
        self.now = now
        self.cache = cache or RecordCache()
        self.check_bailiwick = check_bailiwick
        self.unresponsive: dict[str, float] = {}  # server address -> asked last until then

    def ranked(self, addrs: list[str]) -> list[str]:
        """`addrs` in the order to ask them: a server that did not answer lately goes last
        for HOLD_DOWN_S (as Unbound's infrastructure cache and BIND's server RTTs do), so
        one dead root or TLD server costs one timeout, not one per query."""
        now = self.now()
        return sorted(addrs, key=lambda a: self.unresponsive.get(a, 0.0) > now)

    def note_unresponsive(self, addr: str) -> None:
        if len(self.unresponsive) >= UNRESPONSIVE_MAX:
            self.unresponsive.clear()
        self.unresponsive[addr] = self.now() + HOLD_DOWN_S

    async def resolve(self, qname: DNSLabel | str, qtype: int, depth: int = 0) -> Result:
        qname = DNSLabel(qname) if isinstance(qname, str) else qname
        res = Result(RCODE.NOERROR)
        name = qname
        for _ in range(MAX_CNAME):
            if self.from_cache(name, qtype, res):
                return res
            status = await self._iterate(name, qtype, res, depth)
            if status != "cname":
                return res
            name = res.answer[-1].rdata.label
        res.rcode = RCODE.SERVFAIL
        return res

    def from_cache(self, name: DNSLabel, qtype: int, res: Result) -> bool:
        """Fill `res` from the cache alone (following cached CNAMEs); True if it answered."""
        now = self.now()
        hit = self.cache.get(name, qtype, now, glue=False)
        if hit is not None:
            if hit.negative:
                res.rcode, res.authority = hit.rcode, [r for r in hit.rrs if r is not None]
            else:
                res.answer += hit.rrs
            return True
        if qtype != QTYPE.CNAME:
            cname = self.cache.get(name, QTYPE.CNAME, now, glue=False)
            if cname is not None:
                res.answer += cname.rrs
                return self.from_cache(cname.rrs[0].rdata.label, qtype, res) \
                    if len(res.answer) < MAX_CNAME else False
        return False

    def closest_servers(self, name: Name) -> tuple[Name, list[str]]:
        """The deepest zone at or above `name` whose NS set is cached, else the root."""
        now = self.now()
        for i in range(len(name) + 1):
            zone = name[i:]
            ns = self.cache.get(label_text(zone), QTYPE.NS, now)
            if ns is not None and not ns.negative:
                return zone, [str(r.rdata.label) for r in ns.rrs]
        return (), [n for n, _ in self.hints]

    async def _addresses(self, ns_names: list[str], depth: int, res: Result) -> list[str]:
        now = self.now()
        hint = dict(self.hints)
        addrs: list[str] = []
        missing = []
        for n in ns_names:
            a = self.cache.get(n, QTYPE.A, now)
            if a is not None and not a.negative:
                addrs += [str(r.rdata) for r in a.rrs]
            elif n in hint:
                addrs.append(hint[n])
            else:
                missing.append(n)
        if not addrs and depth < MAX_DEPTH:
            for n in missing:  # glueless delegation: resolve the server's own address
                sub = await self.resolve(n, QTYPE.A, depth + 1)
                res.steps += sub.steps
                addrs += [str(r.rdata) for r in sub.answer if r.rtype == QTYPE.A]
                if addrs:
                    break
        return addrs

    async def _iterate(self, name: DNSLabel, qtype: int, res: Result, depth: int) -> str:
        key = name_key(name)
        zone, ns_names = self.closest_servers(key)
        for _ in range(MAX_REFERRALS):
            addrs = await self._addresses(ns_names, depth, res)
            if not addrs:
                res.rcode = RCODE.SERVFAIL
                res.steps.append(Step("-", label_text(zone), str(name), QTYPE[qtype],
                                      "no-address", f"no address for {ns_names}"))
                return "fail"
            outcome = None
            for addr in self.ranked(addrs):
                outcome = await self._ask(addr, zone, name, qtype, res)
                if outcome[0] not in ("lame", "timeout", "error"):
                    break
            assert outcome is not None  # (a zone always has at least one address to ask)
            kind = outcome[0]
            if kind == "referral":
                zone, ns_names = outcome[1], outcome[2]
                continue
            if kind in ("lame", "timeout", "error"):
                res.rcode = RCODE.SERVFAIL
                return "fail"
            res.from_cache = False
            return kind
        res.rcode = RCODE.SERVFAIL
        return "fail"

    async def _ask(self, addr: str, zone: Name, name: DNSLabel, qtype: int, res: Result):
        q = DNSRecord(q=DNSQuestion(name, qtype))
        q.header.rd = 0
        t0 = time.monotonic()
        step = Step(addr, label_text(zone), str(name), QTYPE[qtype], "")
        res.steps.append(step)
        try:
            r = await self.send(addr, q)
        except TimeoutError:
            step.outcome = "timeout"
            self.note_unresponsive(addr)
            return ("timeout",)
        except OSError as e:
            step.outcome, step.detail = "error", str(e)
            self.note_unresponsive(addr)
            return ("error",)
        finally:
            step.elapsed_ms = round((time.monotonic() - t0) * 1000, 1)
        self.unresponsive.pop(addr, None)
        return self._classify(r, zone, name, qtype, res, step)

    def _in_bailiwick(self, rr: RR, zone: Name) -> bool:
        return not self.check_bailiwick or is_below(name_key(rr.rname), zone)

    def _classify(self, r: DNSRecord, zone: Name, name: DNSLabel, qtype: int, res: Result,
                  step: Step):
        now = self.now()
        key = name_key(name)
        rcode = r.header.rcode
        if rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
            step.outcome, step.detail = "lame", f"rcode {RCODE.get(rcode)}"
            return ("lame",)
        answers = [rr for rr in r.rr if self._in_bailiwick(rr, zone)]
        if not self.check_bailiwick:  # the old, trusting behaviour: keep whatever came along
            for rrset in _rrsets([rr for rr in r.rr + r.ar if rr.rtype != QTYPE.OPT]):
                self.cache.put(rrset, now)
        dropped = len(r.rr) - len(answers)
        if dropped:
            step.detail = f"ignored {dropped} out-of-bailiwick record(s); "
        # the answer for this name (following in-answer CNAMEs the server vouches for)
        cur = key
        chain: list[RR] = []
        for _ in range(MAX_CNAME):
            exact = [rr for rr in answers if name_key(rr.rname) == cur and rr.rtype == qtype]
            if exact:
                for rrset in _rrsets(chain + exact):
                    self.cache.put(rrset, now)
                res.answer += chain + exact
                step.outcome, step.detail = "answer", step.detail + _summary(chain + exact)
                return ("answer",)
            cn = [rr for rr in answers if name_key(rr.rname) == cur and rr.rtype == QTYPE.CNAME]
            if not cn or qtype == QTYPE.CNAME:
                break
            chain.append(cn[0])
            cur = name_key(cn[0].rdata.label)
        if chain:
            for rrset in _rrsets(chain):
                self.cache.put(rrset, now)
            res.answer += chain
            step.outcome, step.detail = "cname", step.detail + _summary(chain)
            return ("cname",)
        soa = next((rr for rr in r.auth if rr.rtype == QTYPE.SOA
                    and self._in_bailiwick(rr, zone)), None)
        if rcode == RCODE.NXDOMAIN:
            self.cache.put_negative(name, qtype, RCODE.NXDOMAIN, soa, now)
            res.rcode, res.authority = RCODE.NXDOMAIN, [soa] if soa else []
            step.outcome = "nxdomain"
            return ("nxdomain",)
        ns = [rr for rr in r.auth if rr.rtype == QTYPE.NS]
        if ns and not r.header.aa:
            cut = name_key(ns[0].rname)
            if not (is_below(cut, zone) and cut != zone and is_below(key, cut)):
                step.outcome, step.detail = "lame", f"referral to {ns[0].rname} out of bailiwick"
                return ("lame",)
            ns = [rr for rr in ns if name_key(rr.rname) == cut]
            self.cache.put(ns, now, glue=True)
            glue = [rr for rr in r.ar if rr.rtype == QTYPE.A and self._in_bailiwick(rr, zone)]
            for rrset in _rrsets(glue):
                self.cache.put(rrset, now, glue=True)
            step.outcome = "referral"
            step.detail += f"{label_text(cut)} NS " + ", ".join(str(x.rdata) for x in ns)
            if glue:
                step.detail += " (glue " + ", ".join(str(g.rdata) for g in glue) + ")"
            return ("referral", cut, [str(rr.rdata.label) for rr in ns])
        if r.header.aa:
            self.cache.put_negative(name, qtype, RCODE.NOERROR, soa, now)
            res.authority = [soa] if soa else []
            step.outcome = "nodata"
            return ("nodata",)
        step.outcome, step.detail = "lame", "no answer, no referral, not authoritative"
        return ("lame",)


def _rrsets(rrs: list[RR]) -> list[list[RR]]:
    groups: dict[tuple, list[RR]] = {}
    for rr in rrs:
        groups.setdefault((name_key(rr.rname), rr.rtype), []).append(rr)
    return list(groups.values())


def read_root_hints(path: str) -> list[tuple[str, str]]:
    """A root hints file (named.root format): the root's NS names and their A records."""
    def canon(n: str) -> str:
        n = n.lower()
        return n if n.endswith(".") else n + "."

    names: list[str] = []
    addrs: dict[str, str] = {}
    try:
        text = open(path).read()
    except OSError as e:
        raise ZoneError(path, 0, f"cannot read: {e.strerror}") from None
    for n, raw in enumerate(text.splitlines(), start=1):
        toks = raw.split(";")[0].split()
        if not toks:
            continue
        up = [t.upper() for t in toks]
        if "NS" in up and up.index("NS") + 1 < len(toks):
            names.append(canon(toks[up.index("NS") + 1]))
        elif "A" in up and up.index("A") + 1 < len(toks):
            addrs[canon(toks[0])] = toks[up.index("A") + 1]
        elif "AAAA" not in up:
            raise ZoneError(path, n, "root hints hold only NS, A and AAAA records")
    missing = [n for n in names if n not in addrs]
    if not names or missing:
        raise ZoneError(path, 1, f"root hints need NS names with A records (missing: {missing})")
    return [(n, addrs[n]) for n in names]
