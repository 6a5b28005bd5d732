"""The lease pool (DHCP-POOL, DHCP-LEASE): which address belongs to whom until when.

Pure and clock-injected (`now` is wall-clock seconds, so persisted expiry times survive a
restart). Every change is also returned as a journal record; the server process appends
the records to its lease file and fsyncs *before* it sends the ACK, and `replay()` rebuilds
the pool from that file at start — so a crash or restart loses no acknowledged lease and
never hands one address to two clients.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address

from .config import Subnet

OFFER_HOLD_S = 30.0  # an offered address is kept for its client this long (RFC 2131 4.3.1)
DECLINE_HOLD_S = 600.0  # an address a client declined (in use by someone) is parked
INFINITE = 0xFFFFFFFF
FILL_CLIENT = "fault:pool-fill"  # who holds the addresses a dhcp-pool-fill parked


@dataclass
class Lease:
    ip: str
    client: str  # client identifier (option 61) or MAC
    mac: str
    state: str  # offered | bound | declined | free
    expires: float  # wall clock; INFINITE for BOOTP bindings
    hostname: str = ""

    def view(self, now: float) -> dict:
        left = "infinite" if self.expires >= INFINITE else max(0, round(self.expires - now))
        return {**asdict(self), "remaining": left}


@dataclass
class LeasePool:
    subnet: Subnet
    leases: dict[IPv4Address, Lease] = field(default_factory=dict)
    journal: list[dict] = field(default_factory=list)  # records not yet persisted

    def __post_init__(self) -> None:
        self.by_client: dict[str, IPv4Address] = {}
        self._pool_set = set(self.subnet.pool)
        self._reserved = set(self.subnet.reservations.values())
        self._free = deque(a for a in self.subnet.pool if a not in self._reserved)
        self._free_set = set(self._free)
        self._expiry: list[tuple[float, int, IPv4Address]] = []  # heap: (expires, n, ip)
        self._n = 0

    # ---- queries ----------------------------------------------------------------------
    def owner(self, ip: IPv4Address, now: float) -> Lease | None:
        lease = self.leases.get(ip)
        if lease is None or lease.state == "free":
            return None
        if lease.expires <= now:
            self._set(ip, None)  # lazily expired: the address goes back to the pool
            return None
        return lease

    def lease_of(self, client: str, now: float) -> Lease | None:
        ip = self.by_client.get(client)
        if ip is None:
            return None
        lease = self.owner(ip, now)
        return lease if lease is not None and lease.client == client else None

    def free_count(self, now: float) -> int:
        self.expire(now)
        return len(self._free_set)

    # ---- changes ----------------------------------------------------------------------
    def offer(self, now: float, client: str, mac: str, requested: IPv4Address | None,
              hostname: str = "") -> IPv4Address | None:
        """An address for a DISCOVER: the client's reservation, its current/previous
        lease, the one it asks for if free, else the first free one; None: exhausted."""
        reserved = self.subnet.reservations.get(mac)
        if reserved is not None:
            other = self.owner(reserved, now)
            if other is None or other.client == client:
                return self._hold(now, reserved, client, mac, hostname)
        mine = self.lease_of(client, now)
        if mine is not None and mine.state in ("offered", "bound"):
            return ip_of(mine.ip) if mine.state == "bound" else \
                self._hold(now, ip_of(mine.ip), client, mac, hostname)
        prev = self.by_client.get(client)  # an expired lease: same address if still free
        for cand in (prev, requested):
            if cand is not None and cand in self._free_set and self.owner(cand, now) is None:
                return self._hold(now, cand, client, mac, hostname)
        self.expire(now)
        while self._free:
            cand = self._free[0]
            if cand in self._free_set and self.owner(cand, now) is None:
                return self._hold(now, cand, client, mac, hostname)
            self._free.popleft()
        return None

    def _hold(self, now: float, ip: IPv4Address, client: str, mac: str,
              hostname: str) -> IPv4Address:
        self._set(ip, Lease(ip_text(ip), client, mac, "offered", now + OFFER_HOLD_S, hostname))
        return ip

    def bind(self, now: float, client: str, mac: str, ip: IPv4Address, seconds: int,
             hostname: str = "") -> bool:
        """Commit `ip` to `client` for `seconds` (REQUEST, renew, BOOTP); False when the
        address is someone else's or not ours to give."""
        if ip not in self._pool_set and self.subnet.reservations.get(mac) != ip:
            return False
        other = self.owner(ip, now)
        if other is not None and other.client != client:
            return False
        old = self.lease_of(client, now)
        if old is not None and ip_of(old.ip) != ip:
            self._set(ip_of(old.ip), None)  # one address per client
        expires = float(INFINITE) if seconds >= INFINITE else now + seconds
        self._set(ip, Lease(ip_text(ip), client, mac, "bound", expires, hostname))
        return True

    def release(self, now: float, client: str, ip: IPv4Address) -> bool:
        lease = self.owner(ip, now)
        if lease is None or lease.client != client:
            return False
        self._set(ip, None)
        return True

    def withdraw_offer(self, now: float, client: str) -> IPv4Address | None:
        """The client took another server's offer (DHCP-MULTI): free ours at once."""
        lease = self.lease_of(client, now)
        if lease is None or lease.state != "offered":
            return None
        self._set(ip_of(lease.ip), None)
        return ip_of(lease.ip)

    def decline(self, now: float, client: str, ip: IPv4Address) -> bool:
        """The client found the address in use: park it so nobody else gets it either."""
        lease = self.owner(ip, now)
        if lease is None or lease.client != client:
            return False
        self._set(ip, Lease(ip_text(ip), "", "", "declined", now + DECLINE_HOLD_S))
        return True

    def park_free(self, now: float, seconds: float) -> int:
        """A pool filled on purpose (the dhcp-pool-fill fault): every free address is
        parked as declined by FILL_CLIENT for `seconds` - journaled, so a restart keeps
        it, and it ends by itself. Returns how many were parked."""
        self.expire(now)
        ips = [ip for ip in self._free if ip in self._free_set and self.owner(ip, now) is None]
        for ip in ips:
            self._set(ip, Lease(ip_text(ip), FILL_CLIENT, "", "declined", now + seconds))
        return len(ips)

    def unpark(self, now: float) -> int:
        """End a fill: the addresses it parked are free again. Returns how many."""
        ips = [ip for ip, lease in self.leases.items()
               if lease.client == FILL_CLIENT and lease.state == "declined"]
        for ip in ips:
            self._set(ip, None)
        return len(ips)

    def expire(self, now: float) -> list[Lease]:
        """Free every lease whose time is up (a heap: no scan of the whole table)."""
        gone = []
        while self._expiry and self._expiry[0][0] <= now:
            expires, _, ip = heapq.heappop(self._expiry)
            lease = self.leases.get(ip)
            if lease is not None and lease.state != "free" and lease.expires == expires:
                gone.append(lease)
                self._set(ip, None)
        return gone

    def _set(self, ip: IPv4Address, lease: Lease | None) -> None:
        old = self.leases.get(ip)  # (by_client keeps pointing at a freed address: a
        if lease is None:          # returning client prefers its old one; lease_of checks)
            if old is not None:
                self.leases[ip] = Lease(ip_text(ip), old.client, old.mac, "free", 0.0)
            if ip in self._pool_set and ip not in self._reserved and ip not in self._free_set:
                self._free_set.add(ip)
                self._free.append(ip)
            self.journal.append({"ip": ip_text(ip), "state": "free",
                                 "client": old.client if old else "", "mac": "",
                                 "expires": 0.0})
            return
        self.leases[ip] = lease
        self.by_client[lease.client] = ip
        self._free_set.discard(ip)
        if lease.expires < INFINITE:
            self._n += 1
            heapq.heappush(self._expiry, (lease.expires, self._n, ip))
        if lease.state != "offered":  # offers are not worth a disk write
            self.journal.append({"ip": lease.ip, "client": lease.client, "mac": lease.mac,
                                 "state": lease.state, "expires": lease.expires,
                                 "hostname": lease.hostname})

    # ---- persistence ------------------------------------------------------------------
    def replay(self, records: list[dict], now: float) -> int:
        """Rebuild from journal records (oldest first); returns the leases still live."""
        for r in records:
            try:
                ip = IPv4Address(r["ip"])
            except (KeyError, ValueError):
                continue
            if ip not in self.subnet.network:
                continue
            if r.get("state") in ("bound", "declined") and float(r.get("expires", 0)) > now:
                self._set(ip, Lease(ip_text(ip), str(r.get("client", "")), str(r.get("mac", "")),
                                    str(r["state"]), float(r["expires"]),
                                    str(r.get("hostname", ""))))
            else:
                self._set(ip, None)
        self.journal.clear()
        return sum(1 for lease in self.leases.values() if lease.state == "bound")

    def snapshot(self) -> list[dict]:
        """Live records only: what a compacted lease file holds."""
        return [asdict(lease) for lease in self.leases.values() if lease.state in
                ("bound", "declined")]

    def table(self, now: float) -> list[dict]:
        self.expire(now)
        return [lease.view(now) for ip, lease in sorted(self.leases.items())
                if lease.state != "free"]


_TEXT: dict[IPv4Address, str] = {}
_ADDR: dict[str, IPv4Address] = {}
KEPT_MAX = 1 << 17


def _kept(table: dict, key, make):
    """table[key], made once: a pool's addresses are converted again and again."""
    value = table.get(key)
    if value is None:
        if len(table) > KEPT_MAX:
            table.clear()
        value = table[key] = make(key)
    return value


def _text_of(ip: IPv4Address) -> str:
    text = str(ip)
    _ADDR[text] = ip  # (and back: the text comes back as a lease's address)
    return text


def ip_text(ip: IPv4Address) -> str:
    """str(ip), kept."""
    return _kept(_TEXT, ip, _text_of)


def ip_of(text: str) -> IPv4Address:
    """IPv4Address(text), kept."""
    return _kept(_ADDR, text, IPv4Address)


def read_journal(text: str) -> list[dict]:
    """Journal lines; a torn last line (crash mid-write) is skipped, not fatal."""
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
