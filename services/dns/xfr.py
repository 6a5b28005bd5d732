"""Zone transfers (RFC 5936 AXFR, RFC 1995 IXFR) and the secondary's timers (RFC 1034 4.3.5).

Pure parts only: building the transfer messages a primary sends, reading the records a
secondary receives, the change journal that makes IXFR possible, serial arithmetic
(RFC 1982) and the `Secondary` state machine driven by an injected clock `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnslib import QTYPE, RR, DNSHeader, DNSQuestion, DNSRecord

from services.dns.authority import ZoneData
from services.dns.zone import Zone

RECORDS_PER_MESSAGE = 100
JOURNAL_MAX = 20


class TransferError(ValueError):
    """A transfer stream that does not follow RFC 5936/1995."""


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 sequence-space comparison a < b on 32-bit serials."""
    return a != b and ((a < b and b - a < 2**31) or (a > b and a - b > 2**31))


def rr_key(rr: RR) -> tuple:
    return (str(rr.rname).lower(), rr.rtype, str(rr.rdata))


@dataclass
class Change:
    """One serial step of a zone: what was removed and added (for IXFR)."""
    old_soa: RR
    new_soa: RR
    deleted: list[RR]
    added: list[RR]


def diff(old: ZoneData, new: ZoneData) -> Change:
    o = {rr_key(r): r for r in old.records if r.rtype != QTYPE.SOA}
    n = {rr_key(r): r for r in new.records if r.rtype != QTYPE.SOA}
    return Change(old.soa, new.soa, [o[k] for k in o.keys() - n.keys()],
                  [n[k] for k in n.keys() - o.keys()])


@dataclass
class Journal:
    changes: list[Change] = field(default_factory=list)

    def record(self, change: Change) -> None:
        self.changes = (self.changes + [change])[-JOURNAL_MAX:]

    def since(self, serial: int, current: int) -> list[Change] | None:
        """The chain of changes from `serial` to `current`, or None when it is not kept."""
        chain: list[Change] = []
        s = serial
        while s != current:
            step = next((c for c in self.changes if c.old_soa.rdata.times[0] == s), None)
            if step is None:
                return None
            chain.append(step)
            s = step.new_soa.rdata.times[0]
            if len(chain) > JOURNAL_MAX:
                return None
        return chain


def _messages(q: DNSRecord, rrs: list[RR]) -> list[DNSRecord]:
    out = []
    for i in range(0, max(len(rrs), 1), RECORDS_PER_MESSAGE):
        m = DNSRecord(DNSHeader(id=q.header.id, qr=1, aa=1), q=q.q)
        m.rr = rrs[i:i + RECORDS_PER_MESSAGE]
        out.append(m)
    return out


def axfr_records(zone: ZoneData) -> list[RR]:
    body = [r for r in zone.records if r.rtype != QTYPE.SOA]
    return [zone.soa, *body, zone.soa]


def transfer_messages(q: DNSRecord, zone: ZoneData, journal: Journal | None) -> list[DNSRecord]:
    """The messages answering an AXFR or IXFR query for `zone`."""
    if q.q.qtype == QTYPE.IXFR:
        theirs = next((r for r in q.auth if r.rtype == QTYPE.SOA), None)
        if theirs is not None:
            their_serial = theirs.rdata.times[0]
            if not serial_lt(their_serial, zone.serial):
                return _messages(q, [zone.soa])  # already current
            chain = journal.since(their_serial, zone.serial) if journal else None
            if chain:
                rrs = [zone.soa]
                for c in chain:
                    rrs += [c.old_soa, *c.deleted, c.new_soa, *c.added]
                rrs.append(zone.soa)
                return _messages(q, rrs)
    return _messages(q, axfr_records(zone))


class TransferReader:
    """Collects the records of an AXFR/IXFR response stream message by message."""

    def __init__(self, current: ZoneData | None) -> None:
        self.current = current
        self.rrs: list[RR] = []
        self.done = False

    def feed(self, msg: DNSRecord) -> None:
        if msg.header.rcode:
            raise TransferError(f"primary answered rcode {msg.header.rcode}")
        self.rrs.extend(msg.rr)
        if not self.rrs or self.rrs[0].rtype != QTYPE.SOA:
            raise TransferError("transfer does not start with an SOA")
        new_serial = self.rrs[0].rdata.times[0]
        if len(self.rrs) == 1:
            if self.current is not None and not serial_lt(self.current.serial, new_serial):
                self.done = True  # IXFR: already up to date
            return
        if self.rrs[1].rtype == QTYPE.SOA and len(self.rrs) > 1 and self._incremental_done():
            self.done = True
        elif self.rrs[1].rtype != QTYPE.SOA and self.rrs[-1].rtype == QTYPE.SOA \
                and self.rrs[-1].rdata.times[0] == new_serial:
            self.done = True

    def _incremental_done(self) -> bool:
        new_serial = self.rrs[0].rdata.times[0]
        phase = "start"
        for rr in self.rrs[1:]:
            if rr.rtype != QTYPE.SOA:
                continue
            if phase in ("start", "adds"):
                if phase == "adds" and rr.rdata.times[0] == new_serial:
                    return rr is self.rrs[-1]
                phase = "dels"
            else:
                phase = "adds"
        return False

    def zone(self, origin: str) -> Zone:
        """The full resulting zone (incremental changes applied to the current copy)."""
        if not self.done:
            raise TransferError("transfer ended early")
        rrs = self.rrs
        if len(rrs) == 1:
            assert self.current is not None  # (one SOA alone: "you are up to date")
            return self.current.zone
        if rrs[1].rtype != QTYPE.SOA:
            return Zone(self.current.label if self.current else rrs[0].rname, rrs[:-1], origin)
        if self.current is None:
            raise TransferError("incremental transfer without a current zone")
        records = {rr_key(r): r for r in self.current.records if r.rtype != QTYPE.SOA}
        phase = "dels"
        for rr in rrs[2:-1]:
            if rr.rtype == QTYPE.SOA:
                phase = "adds" if phase == "dels" else "dels"
                continue
            if phase == "dels":
                records.pop(rr_key(rr), None)
            else:
                records[rr_key(rr)] = rr
        return Zone(self.current.label, [rrs[0], *records.values()], origin)


def soa_query(origin: str, qtype: int = QTYPE.SOA, serial_soa: RR | None = None) -> DNSRecord:
    q = DNSRecord(DNSHeader(), q=DNSQuestion(origin, qtype))
    q.header.rd = 0
    if serial_soa is not None:
        q.add_auth(serial_soa)
    return q


@dataclass
class Secondary:
    """Refresh/retry/expire timers of one secondary zone, as a state machine over `now`.

    States: 'loading' (no copy yet), 'serving', 'expired' (copy too old: SERVFAIL),
    'primary' (promoted; no more transfers).
    """
    origin: str
    masters: list[tuple[str, int]]
    state: str = "loading"
    refresh_at: float = 0.0
    expire_at: float | None = None
    last_ok: float | None = None
    last_error: str = ""
    serial: int | None = None
    retry_default: float = 5.0
    notified: bool = False  # a NOTIFY arrived while a refresh was under way

    def due(self, now: float) -> bool:
        return self.state != "primary" and now >= self.refresh_at

    def on_notify(self, now: float) -> None:
        if self.state != "primary":
            self.refresh_at = now
            self.notified = True

    def on_attempt(self) -> None:
        self.notified = False

    def on_success(self, now: float, soa: RR) -> None:
        if self.state == "primary":  # a refresh under way when the zone was promoted
            return
        refresh, retry, expire = soa.rdata.times[1:4]
        self.serial = soa.rdata.times[0]
        self.state = "serving"
        self.last_ok, self.last_error = now, ""
        self.refresh_at = now + refresh
        self.expire_at = now + expire

    def on_failure(self, now: float, error: str, soa: RR | None) -> None:
        if self.state == "primary":
            return
        self.last_error = error
        retry = soa.rdata.times[2] if soa is not None else self.retry_default
        self.refresh_at = now if self.notified else now + retry
        self.check_expiry(now)

    def check_expiry(self, now: float) -> bool:
        """Move to 'expired' once SOA expire has passed without a successful refresh."""
        if self.state == "serving" and self.expire_at is not None and now >= self.expire_at:
            self.state = "expired"
            return True
        return False

    def promote(self) -> None:
        self.state = "primary"
