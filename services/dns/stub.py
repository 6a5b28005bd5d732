"""Host-side name lookup in the notes' order: hosts file, then local cache, then the LDNS.

Each emulated host has its own files (in its run directory, `$INFRALAB_HOST_DIR`):
`hosts`, `resolv.conf` and `dnscache.json`; outside an emulation /etc is used.
`lookup()` reports which step answered, which is the point of the exercise.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dnslib import QTYPE, RCODE, DNSRecord

from services.dns.transport import udp_exchange


@dataclass
class Lookup:
    name: str
    addresses: list[str]
    source: str          # "hosts file" | "local cache" | "LDNS 10.1.0.53" | "failed"
    detail: str = ""


def host_dir() -> Path | None:
    d = os.environ.get("INFRALAB_HOST_DIR")
    return Path(d) if d else None


def default_paths() -> tuple[Path, Path, Path]:
    d = host_dir()
    if d is not None:
        return d / "hosts", d / "dnscache.json", d / "resolv.conf"
    return (Path("/etc/hosts"), Path.home() / ".cache" / "infralab-dnscache.json",
            Path("/etc/resolv.conf"))


def from_hosts_file(path: Path, name: str) -> list[str]:
    want = name.rstrip(".").lower()
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        toks = line.split("#")[0].split()
        if len(toks) >= 2 and want in (t.rstrip(".").lower() for t in toks[1:]) \
                and ":" not in toks[0]:
            out.append(toks[0])
    return out


def nameservers(path: Path) -> list[str]:
    try:
        return [line.split()[1] for line in path.read_text().splitlines()
                if line.strip().startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return []


class LocalCache:
    """The host's own small cache: name -> (addresses, expiry in wall-clock seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def get(self, name: str, now: float) -> tuple[list[str], int] | None:
        e = self.data.get(name.rstrip(".").lower())
        if e and e["expires"] > now:
            return e["addresses"], int(e["expires"] - now)
        return None

    def put(self, name: str, addresses: list[str], ttl: int, now: float) -> None:
        self.data[name.rstrip(".").lower()] = {"addresses": addresses, "expires": now + ttl}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def lookup(name: str, hosts: Path, cache: Path, resolv: Path, server: str | None = None,
           now: float | None = None) -> Lookup:
    now = time.time() if now is None else now
    found = from_hosts_file(hosts, name)
    if found:
        return Lookup(name, found, "hosts file", str(hosts))
    c = LocalCache(cache)
    hit = c.get(name, now)
    if hit is not None:
        return Lookup(name, hit[0], "local cache", f"{hit[1]}s left")
    servers = [server] if server else nameservers(resolv)
    for ns in servers:
        try:
            r = udp_exchange((ns, 53), DNSRecord.question(name, "A"), 3.0)
        except OSError as e:
            last = f"{ns}: {e}"
            continue
        addrs = [str(rr.rdata) for rr in r.rr if rr.rtype == QTYPE.A]
        if r.header.rcode != RCODE.NOERROR or not addrs:
            return Lookup(name, [], "failed", f"LDNS {ns}: {RCODE.get(r.header.rcode)}")
        ttl = min(rr.ttl for rr in r.rr)
        c.put(name, addrs, ttl, now)
        return Lookup(name, addrs, f"LDNS {ns}", f"RA={r.header.ra}, TTL {ttl}s, now cached")
    return Lookup(name, [], "failed", last if servers else f"no nameserver in {resolv}")
