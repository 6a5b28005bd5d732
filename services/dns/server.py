"""The authoritative DNS server process: sockets, threads and timers around the pure parts.

One thread per UDP socket runs the hot loop (wire-cache hit -> sendto), one thread accepts
TCP (queries and AXFR/IXFR, ACL-checked), one drives secondary zones (SOA polls, transfers,
expiry) and one answers the control socket (`stats`, `zones`, `reload`, `promote ZONE`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from dnslib import OPCODE, QTYPE, RCODE, DNSHeader, DNSQuestion, DNSRecord

from services.common.control import control_loop
from services.common.lifecycle import settle_heap
from services.dns.authority import ZoneSet, name_key
from services.dns.responder import Responder, header_only
from services.dns.rrl import SEND, SLIP, RateLimiter
from services.dns.transport import bind_udp_tcp, tcp_accept_loop, tcp_exchange, udp_exchange
from services.dns.udpbatch import UdpBatch
from services.dns.xfr import (
    Journal,
    Secondary,
    TransferError,
    TransferReader,
    diff,
    serial_lt,
    soa_query,
    transfer_messages,
)
from services.dns.zone import Zone, ZoneError, load_zone, parse_zone

XFR_TIMEOUT_S = 5.0


class Acl:
    """Source addresses allowed to transfer zones (empty = nobody)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.nets = [ipaddress.ip_network(e, strict=False) for e in entries]

    def allows(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip in n for n in self.nets)


def truncated(query: bytes) -> bytes:
    """A header-only reply with TC=1 (RRL's slip): "ask again over TCP"."""
    return query[:2] + bytes([0x80 | (query[2] & 0x79) | 0x02, 0]) + b"\0\0" * 4


class AuthServer:
    def __init__(self, primaries: list[tuple[str | None, Path]],
                 secondaries: list[tuple[str, list[tuple[str, int]]]],
                 listen: list[tuple[str, int]], allow_transfer: list[str] | None = None,
                 notify: list[tuple[str, int]] | None = None, state_dir: Path | None = None,
                 control: Path | None = None, rotate: bool = True, log=print,
                 rrl: RateLimiter | None = None, reuse_port: bool = False) -> None:
        self.zones = ZoneSet()
        self.reuse_port = reuse_port  # one of several workers on the same address
        self.on_reload: Callable[[], None] | None = None  # (workers: tell the others)
        self.rrl = rrl  # response rate limiting (None: off)
        self.files: dict[str, Path] = {}  # origin -> zone file
        self.journals: dict[str, Journal] = {}
        self.secondaries: dict[str, Secondary] = {}
        self.acl = Acl(allow_transfer or [])
        self.notify_targets = notify or []
        self.state_dir = state_dir
        self.control = control
        self.listen = listen
        self.log = log
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.responder = Responder(self.zones, rotate=rotate)
        self.responder.notify_handler = self._on_notify
        for origin, path in primaries:
            z = load_zone(path, origin)
            self.zones.add(z)
            self.files[str(z.origin).lower()] = path
            self.journals[str(z.origin).lower()] = Journal()
        for origin, masters in secondaries:
            origin = origin.rstrip(".").lower() + "."
            self.secondaries[origin] = Secondary(origin, masters, retry_default=1.0)
            self.zones.pending.add(name_key(origin))
            self._load_saved(origin)
        self.sockets: list[socket.socket] = []

    # ---- sockets ------------------------------------------------------------------
    def start(self, wait_loaded: float = 0.0) -> None:
        """Open the sockets; with `wait_loaded`, first give secondary zones that long to
        load, so a server that is listening is a server that answers."""
        if self.secondaries:
            self._thread(self._secondary_loop)
        deadline = time.monotonic() + wait_loaded
        while time.monotonic() < deadline and any(
                s.state == "loading" for s in self.secondaries.values()):
            time.sleep(0.05)
        with self.lock:
            self.responder.compiled.prepare()  # before the first query, not during it
        settle_heap()  # (the zones and their index)
        for host, port in self.listen:
            u, t = bind_udp_tcp(host, port, self.reuse_port)
            self.sockets += [u, t]
            self._thread(self._udp_loop, u)
            self._thread(self._tcp_accept, t)
        if self.control:
            self._thread(self._control_loop)
        if self.notify_targets:
            for origin in self.files:
                self._thread(self._send_notify, origin)
        self.log(f"dns: serving {', '.join(sorted(self.files) + sorted(self.secondaries))} "
                 f"on {', '.join(f'{h}:{p}' for h, p in self.listen)}")

    def _thread(self, fn, *args) -> None:
        threading.Thread(target=fn, args=args, daemon=True).start()

    def _udp_loop(self, sock: socket.socket) -> None:
        """Batches in, batches out (`UdpBatch`); wire-cache hits answered in the loop."""
        batch = UdpBatch(sock)
        stats = self.responder.stats
        cached = self.responder.cache.get  # (the responder clears it in place, never swaps it)
        answer, rrl = self._answer, self.rrl
        while True:
            queries = batch.recv()
            if queries is None:
                return
            replies: list[bytes | None] = []
            hits = 0
            for i, data in enumerate(queries):
                if rrl is None:
                    hit = cached(data[2:])
                    if hit is not None:
                        hits += 1
                        replies.append(data[:2] + hit())
                        continue
                replies.append(answer(data, batch, i))
            stats["cache_hits"] += hits
            batch.send(replies)

    def _answer(self, data: bytes, batch: UdpBatch, i: int) -> bytes | None:
        """Datagram `i`'s reply (None: none) past the wire cache, or under RRL. Its source
        is worked out only where it matters: RRL, and the full path (NOTIFY, logs)."""
        responder = self.responder
        if self.rrl is not None:  # amplification defence: per-/24 answer budget
            verdict = self.rrl.check(time.monotonic(), batch.source(i)[0])
            if verdict != SEND:
                return truncated(data) if verdict == SLIP and len(data) >= 12 else None
            hit = responder.cache.get(data[2:])
            if hit is not None:
                responder.stats["cache_hits"] += 1
                return data[:2] + hit()
        try:
            with self.lock:
                out = responder.precompiled(data)
                if out is None:
                    out = responder.respond(data, batch.source(i)[0], tried=True)
                return out
        except Exception as e:  # never die on one packet: answer SERVFAIL, log, go on
            responder.stats["errors"] += 1
            self.log(f"dns: error answering {batch.source(i)[0]}: {e!r}")
            return header_only(data, RCODE.SERVFAIL)

    def _tcp_accept(self, sock: socket.socket) -> None:
        tcp_accept_loop(sock, self._tcp_answers)

    def _tcp_answers(self, data: bytes, source: str) -> list[bytes]:
        stats = self.responder.stats
        stats["tcp_queries"] += 1
        try:
            q = DNSRecord.parse(data)
            is_xfr = q.header.opcode == OPCODE.QUERY and q.q.qtype in (QTYPE.AXFR, QTYPE.IXFR)
        except Exception:
            is_xfr = False
        if not is_xfr:
            with self.lock:
                out = self.responder.respond(data, source, tcp=True)
            return [out] if out is not None else []
        with self.lock:
            zone = self.zones.zones.get(name_key(q.q.qname))
            journal = self.journals.get(str(q.q.qname).lower())
            if zone is not None and zone.serving and self.acl.allows(source):
                stats["xfr_out"] += 1
                self.log(f"dns: {QTYPE[q.q.qtype]} of {zone.label} (serial {zone.serial}) "
                         f"to {source}")
                return [m.pack() for m in transfer_messages(q, zone, journal)]
        stats["xfr_refused"] += 1
        self.log(f"dns: refused {QTYPE[q.q.qtype]} of {q.q.qname} to {source}")
        r = DNSRecord(DNSHeader(id=q.header.id, qr=1, rcode=RCODE.REFUSED), q=q.q)
        return [r.pack()]

    # ---- primaries: reload and NOTIFY ----------------------------------------------
    def reload(self) -> list[str]:
        """Re-read every primary zone file; a higher serial is journaled and NOTIFY sent."""
        changed = []
        for origin, path in self.files.items():
            new = load_zone(path, origin)
            with self.lock:
                old = self.zones.zones[name_key(origin)]
                if new.records == old.records:
                    continue
                if not serial_lt(old.serial, new.soa.rdata.times[0]):
                    self.log(f"dns: {origin} changed but its serial {old.serial} did not grow; "
                             "secondaries will not see it")
                data = self.zones.add(new)
                self.journals[origin].record(diff(old, data))
                self.responder.clear_cache()
            changed.append(origin)
            self.log(f"dns: reloaded {origin} serial {data.serial}")
            self._thread(self._send_notify, origin)
        if self.on_reload is not None:
            self.on_reload()
        return changed

    def _send_notify(self, origin: str) -> None:
        for target in self.notify_targets:
            q = DNSRecord(DNSHeader(opcode=OPCODE.NOTIFY, aa=1), q=DNSQuestion(origin, QTYPE.SOA))
            q.header.rd = 0
            for _attempt in range(5):
                try:
                    r = udp_exchange(target, q, 1.0)
                    self.responder.stats["notify_out"] += 1
                    self.log(f"dns: NOTIFY {origin} -> {target[0]}:{target[1]}: "
                             f"{RCODE.get(r.header.rcode)}")
                    break
                except Exception:  # unreachable, refused, garbled: try again
                    if self.stopping.wait(1.0):
                        return

    # ---- secondaries ----------------------------------------------------------------
    def _on_notify(self, q: DNSRecord, source: str) -> int:
        sec = self.secondaries.get(str(q.q.qname).lower())
        if sec is None or all(source != m[0] for m in sec.masters):
            self.log(f"dns: NOTIFY for {q.q.qname} from {source} refused")
            return RCODE.REFUSED
        self.log(f"dns: NOTIFY for {sec.origin} from {source}")
        sec.on_notify(time.monotonic())
        self.wake.set()
        return RCODE.NOERROR

    def _secondary_loop(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            for sec in list(self.secondaries.values()):
                with self.lock:
                    if sec.check_expiry(now):
                        self._set_serving(sec.origin, False)
                        self.log(f"dns: {sec.origin} EXPIRED: no refresh from "
                                 f"{sec.masters[0][0]} within SOA expire; answering SERVFAIL")
                if sec.due(now):
                    self._refresh(sec)
            waits = [s.refresh_at for s in self.secondaries.values() if s.state != "primary"]
            waits += [s.expire_at for s in self.secondaries.values()
                      if s.state == "serving" and s.expire_at]
            timeout = max(0.05, min(waits, default=now + 1) - time.monotonic())
            self.wake.wait(min(timeout, 1.0))
            self.wake.clear()

    def _refresh(self, sec: Secondary) -> None:
        key = name_key(sec.origin)
        current = self.zones.zones.get(key)
        now = time.monotonic()
        sec.on_attempt()
        errors = []
        for master in sec.masters:
            try:
                r = udp_exchange(master, soa_query(sec.origin), 2.0)
                soa = next((x for x in r.rr if x.rtype == QTYPE.SOA), None)
                if soa is None:
                    raise TransferError(f"no SOA in answer (rcode {RCODE.get(r.header.rcode)})")
                serial = soa.rdata.times[0]
                if sec.state == "primary":  # promoted meanwhile: nothing to take
                    return
                if current is not None and not serial_lt(current.serial, serial):
                    with self.lock:
                        sec.on_success(time.monotonic(), current.soa)
                        self._set_serving(sec.origin, True)
                    return
                kind = QTYPE.IXFR if current is not None else QTYPE.AXFR
                q = soa_query(sec.origin, kind, current.soa if current is not None else None)
                reader = TransferReader(current)
                tcp_exchange(master, q, XFR_TIMEOUT_S, reader)
                zone = reader.zone(f"AXFR from {master[0]}")
                with self.lock:
                    if sec.state == "primary":
                        return
                    data = self.zones.add(zone)
                    self.responder.clear_cache()
                    sec.on_success(time.monotonic(), data.soa)
                self.log(f"dns: {QTYPE[kind]} of {sec.origin} from {master[0]}: serial "
                         f"{data.serial}, {len(zone.records)} records")
                self._save(sec.origin, zone)
                return
            except Exception as e:  # network, transfer or parse error: next master
                errors.append(f"{master[0]}: {e}")
        with self.lock:
            sec.on_failure(now, "; ".join(errors), current.soa if current else None)
            if sec.state == "expired":
                self._set_serving(sec.origin, False)
        self.log(f"dns: refresh of {sec.origin} failed ({'; '.join(errors)}); "
                 f"retry in {sec.refresh_at - now:.0f}s")

    def _set_serving(self, origin: str, serving: bool) -> None:
        z = self.zones.zones.get(name_key(origin))
        if z is not None and z.serving != serving:
            z.serving = serving
            self.responder.clear_cache()

    def _save(self, origin: str, zone: Zone) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{origin.rstrip('.') or 'root'}.zone"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"$ORIGIN {origin}\n" + "\n".join(r.toZone() for r in zone.records) + "\n")
        os.replace(tmp, path)

    def _load_saved(self, origin: str) -> None:
        """A secondary restarts from its saved copy; its expire clock restarts at file age."""
        if self.state_dir is None:
            return
        path = self.state_dir / f"{origin.rstrip('.') or 'root'}.zone"
        if not path.exists():
            return
        try:
            zone = parse_zone(path.read_text(), str(path))
        except ZoneError as e:
            self.log(f"dns: ignoring saved copy: {e}")
            return
        data = self.zones.add(zone)
        sec = self.secondaries[origin]
        age = time.time() - path.stat().st_mtime
        sec.on_success(time.monotonic() - age, data.soa)
        sec.refresh_at = 0.0

    def promote(self, origin: str) -> str:
        origin = origin.rstrip(".").lower() + "."
        sec = self.secondaries.get(origin)
        if sec is None:
            return f"{origin} is not a secondary zone here"
        with self.lock:
            if name_key(origin) not in self.zones.zones:
                return f"{origin} has no copy to promote"
            sec.promote()
            self._set_serving(origin, True)
            self.journals.setdefault(origin, Journal())
        self.log(f"dns: {origin} promoted to primary")
        return f"{origin} promoted to primary"

    # ---- control --------------------------------------------------------------------
    def status(self) -> dict:
        with self.lock:
            zones: dict[str, dict[str, object]] = {}
            for z in self.zones.zones.values():
                origin = str(z.label).lower()
                sec = self.secondaries.get(origin)
                zones[origin] = {"serial": z.serial, "records": len(z.records),
                                 "serving": z.serving,
                                 "role": "secondary" if sec and sec.state != "primary"
                                 else "primary"}
                if sec:
                    now = time.monotonic()
                    zones[origin].update(state=sec.state, last_error=sec.last_error,
                                         refresh_in=round(sec.refresh_at - now, 1),
                                         expire_in=round(sec.expire_at - now, 1)
                                         if sec.expire_at else None)
            for origin, sec in self.secondaries.items():
                zones.setdefault(origin, {"role": "secondary", "state": sec.state,
                                          "last_error": sec.last_error})
            return {"zones": zones, "stats": dict(self.responder.stats),
                    **({"rrl": dict(self.rrl.stats)} if self.rrl is not None else {})}

    def command(self, line: str) -> dict | str:
        words = line.split()
        if not words:
            return "commands: stats | reload | promote ZONE"
        if words[0] in ("stats", "status", "zones"):
            return self.status()
        if words[0] == "reload":
            try:
                return {"reloaded": self.reload()}
            except ZoneError as e:
                return f"error: {e}"
        if words[0] == "promote" and len(words) == 2:
            return self.promote(words[1])
        return f"unknown command {line!r}"

    def _control_loop(self) -> None:
        assert self.control is not None
        control_loop(self.control, self.command)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        if self.control and os.path.exists(self.control):
            os.unlink(self.control)
