"""RFC 1035 master files ("zone files") into dnslib resource records.

Handles $ORIGIN, $TTL, relative names and '@', an omitted owner (same as the line before),
TTL and class in either order, parentheses spanning lines, quoted strings and ';' comments.
Record types: SOA NS A AAAA CNAME MX PTR TXT SRV. Every error names the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RR, SOA, SRV, TXT, A, DNSLabel

TTL_RE = re.compile(r"^(\d+[smhdwSMHDW]?)+$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TYPES = {"SOA", "NS", "A", "AAAA", "CNAME", "MX", "PTR", "TXT", "SRV"}


class ZoneError(ValueError):
    def __init__(self, source: str, line: int, problem: str) -> None:
        self.source, self.line, self.problem = source, line, problem
        super().__init__(f"{source}:{line}: {problem}")


@dataclass
class Zone:
    origin: DNSLabel
    records: list[RR] = field(default_factory=list)
    source: str = "<zone>"

    @property
    def soa(self) -> RR:
        return next(r for r in self.records if r.rtype == QTYPE.SOA)


def parse_ttl(text: str) -> int:
    """'3600', '1h', '1h30m' -> seconds (BIND-style units)."""
    if text.isdigit():
        return int(text)
    total = 0
    for num, unit in re.findall(r"(\d+)([smhdwSMHDW])", text):
        total += int(num) * UNITS[unit.lower()]
    return total


MAX_TTL = 2**31 - 1  # RFC 2181 8: a TTL above is treated as an error here


def _ttl(text: str, source: str, line: int) -> int:
    ttl = parse_ttl(text)
    if ttl > MAX_TTL:
        raise ZoneError(source, line, f"TTL {text} is over 2^31-1 seconds (RFC 2181)")
    return ttl


def _tokens(text: str, source: str):
    """Yield (line number, tokens, starts_with_blank) per logical line."""
    buf: list[str] = []
    depth = 0
    start_line = 0
    blank_owner = False
    for n, raw in enumerate(text.splitlines(), start=1):
        i = 0
        if depth == 0:
            start_line = n
            blank_owner = raw[:1] in (" ", "\t")
        while i < len(raw):
            c = raw[i]
            if c == ";":
                break
            if c in " \t":
                i += 1
            elif c == "(":
                depth += 1
                i += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise ZoneError(source, n, "')' without '('")
                i += 1
            elif c == '"':
                j = i + 1
                s = []
                while j < len(raw) and raw[j] != '"':
                    if raw[j] == "\\" and j + 1 < len(raw):
                        j += 1
                    s.append(raw[j])
                    j += 1
                if j >= len(raw):
                    raise ZoneError(source, n, "unterminated quoted string")
                buf.append('"' + "".join(s))
                i = j + 1
            else:
                j = i
                while j < len(raw) and raw[j] not in ' \t;()"':
                    j += 1
                buf.append(raw[i:j])
                i = j
        if depth == 0 and buf:
            yield start_line, buf, blank_owner
            buf = []
    if depth:
        raise ZoneError(source, start_line, "'(' not closed")


def _name(tok: str, origin: DNSLabel | None, source: str, line: int) -> DNSLabel:
    try:
        name = _raw_name(tok, origin, source, line)
    except ZoneError:
        raise
    except Exception:
        raise ZoneError(source, line, f"bad domain name {tok!r}") from None
    if any(len(part) > 63 for part in name.label) or sum(len(p) + 1 for p in name.label) > 254:
        raise ZoneError(source, line, f"domain name too long: {tok!r}")
    return name


def _raw_name(tok: str, origin: DNSLabel | None, source: str, line: int) -> DNSLabel:
    if tok == "@":
        if origin is None:
            raise ZoneError(source, line, "'@' used before $ORIGIN is known")
        return origin
    if tok.endswith("."):
        return DNSLabel(tok)
    if origin is None:
        raise ZoneError(source, line, f"relative name {tok!r} before $ORIGIN is known")
    return DNSLabel(f"{tok}.{origin}" if str(origin) != "." else f"{tok}.")


def parse_zone(text: str, source: str = "<zone>", origin: str | None = None) -> Zone:
    """Parse master-file text; `origin` is the zone's name when the file has no $ORIGIN."""
    cur_origin = DNSLabel(origin) if origin else None
    default_ttl: int | None = None
    last_owner: DNSLabel | None = None
    zone_origin = cur_origin
    records: list[RR] = []
    for line, toks, blank in _tokens(text, source):
        if toks[0].upper() == "$ORIGIN":
            if len(toks) != 2 or not toks[1].endswith("."):
                raise ZoneError(source, line, "$ORIGIN needs one absolute name")
            cur_origin = DNSLabel(toks[1])
            zone_origin = zone_origin or cur_origin
            continue
        if toks[0].upper() == "$TTL":
            if len(toks) != 2 or not TTL_RE.match(toks[1]):
                raise ZoneError(source, line, "$TTL needs one TTL value")
            default_ttl = _ttl(toks[1], source, line)
            continue
        if toks[0].startswith("$"):
            raise ZoneError(source, line, f"unsupported directive {toks[0]}")
        if blank:
            if last_owner is None:
                raise ZoneError(source, line, "record without an owner name")
            owner = last_owner
        else:
            owner = _name(toks[0], cur_origin, source, line)
            toks = toks[1:]
        last_owner = owner
        ttl = None
        while toks and (TTL_RE.match(toks[0]) or toks[0].upper() in ("IN", "CH", "HS")):
            if toks[0].upper() in ("CH", "HS"):
                raise ZoneError(source, line, f"class {toks[0]} is not supported (IN only)")
            if toks[0].upper() != "IN":
                ttl = _ttl(toks[0], source, line)
            toks = toks[1:]
        if not toks:
            raise ZoneError(source, line, "missing record type")
        rtype, data = toks[0].upper(), toks[1:]
        if rtype not in TYPES:
            raise ZoneError(source, line, f"unknown or unsupported record type {toks[0]!r}")
        try:
            rdata = _rdata(rtype, data, cur_origin, source, line)
        except ZoneError:
            raise
        except ValueError as e:  # dnslib's own range checks (found by the corpus)
            raise ZoneError(source, line, f"{rtype}: {e}") from None
        if ttl is None:
            if default_ttl is None and rtype == "SOA":
                default_ttl = rdata.times[4]  # RFC 1035: SOA minimum as the default
            if default_ttl is None:
                raise ZoneError(source, line, "no TTL: give one or set $TTL")
            ttl = default_ttl
        records.append(RR(owner, getattr(QTYPE, rtype), ttl=ttl, rdata=rdata))
    if zone_origin is None:
        raise ZoneError(source, 1, "no $ORIGIN and no zone name given")
    soas = [r for r in records if r.rtype == QTYPE.SOA]
    if len(soas) != 1 or soas[0].rname != zone_origin:
        raise ZoneError(source, 1, f"zone {zone_origin} needs exactly one SOA at its apex")
    return Zone(zone_origin, records, source)


def load_zone(path: str | Path, origin: str | None = None) -> Zone:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ZoneError(str(p), 0, f"cannot read: {e.strerror}") from None
    return parse_zone(text, str(p), origin)


def _rdata(rtype: str, d: list[str], origin, source: str, line: int):
    def need(n: int) -> None:
        if len(d) != n:
            raise ZoneError(source, line, f"{rtype} takes {n} field(s), got {len(d)}")

    def num(tok: str, hi: int = 65535) -> int:
        if not tok.isdigit() or int(tok) > hi:
            raise ZoneError(source, line, f"{rtype}: bad number {tok!r}")
        return int(tok)

    name = lambda tok: _name(tok, origin, source, line)  # noqa: E731
    if rtype in ("A", "AAAA"):
        need(1)  # outside the try: ZoneError is a ValueError too
    try:
        if rtype == "A":
            return A(str(IPv4Address(d[0])))
        if rtype == "AAAA":
            return AAAA(str(IPv6Address(d[0])))
    except ValueError:
        raise ZoneError(source, line, f"{rtype}: bad address {d[0]!r}") from None
    if rtype in ("NS", "CNAME", "PTR"):
        need(1)
        return {"NS": NS, "CNAME": CNAME, "PTR": PTR}[rtype](name(d[0]))
    if rtype == "MX":
        need(2)
        return MX(name(d[1]), num(d[0]))
    if rtype == "SRV":
        need(4)
        return SRV(num(d[0]), num(d[1]), num(d[2]), name(d[3]))
    if rtype == "TXT":
        if not d:
            raise ZoneError(source, line, "TXT needs at least one string")
        return TXT([t[1:] if t.startswith('"') else t for t in d])
    need(7)  # SOA
    for t in d[2:]:
        if not TTL_RE.match(t):
            raise ZoneError(source, line, f"SOA: bad timer {t!r}")
    return SOA(name(d[0]), name(d[1]), tuple(parse_ttl(t) for t in d[2:]))
