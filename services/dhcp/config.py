"""The DHCP server's configuration (DHCP-POOL): YAML, errors naming file:line:field.

    lease_time: 3600          # seconds; per subnet too
    t1: 0.5                   # renew at this fraction of the lease (RFC 2131: 0.5)
    t2: 0.875                 # rebind at this fraction (RFC 2131: 0.875; the notes: 0.75)
    dns: [10.1.0.53]
    domain: example.com
    subnets:
      - subnet: 10.1.1.0/24
        pool: [10.1.1.100-10.1.1.199]        # ranges or single addresses
        exclude: [10.1.1.150]
        router: 10.1.1.1
        reservations: [{mac: "02:00:00:00:01:0b", address: 10.1.1.11}]

A pool range outside its subnet, overlapping subnets, a reservation outside its subnet:
each is an error naming the field and its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from topologies.yamlfile import (
    ConfigFileError,
    address,
    load_yaml,
    mapping,
    number,
    read_text,
)

MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class DhcpConfigError(ConfigFileError):
    pass


@dataclass
class Subnet:
    network: IPv4Network
    pool: list[IPv4Address]  # every address that may be handed out, in order
    router: IPv4Address | None = None
    dns: list[IPv4Address] = field(default_factory=list)
    domain: str | None = None
    lease_time: int = 3600
    reservations: dict[str, IPv4Address] = field(default_factory=dict)  # mac -> address


@dataclass
class Config:
    subnets: list[Subnet]
    t1: float = 0.5
    t2: float = 0.875
    server_id: IPv4Address | None = None  # default: the address of the receiving interface
    bootp: bool = True  # answer BOOTP requests (infinite leases from the pool)
    bootp_only: bool = False  # `bootp: only`: an RFC 951 server, every request is BOOTP
    source: str = "<config>"

    def subnet_for(self, addr: IPv4Address) -> Subnet | None:
        for s in self.subnets:
            if addr in s.network:
                return s
        return None


def load(path: str | Path) -> Config:
    return loads(read_text(path, DhcpConfigError), str(path))


def loads(text: str, source: str = "<config>") -> Config:
    data, lines = load_yaml(text, source, DhcpConfigError)
    try:
        cfg = _build(data)
    except DhcpConfigError as e:
        raise e.located(source, lines) from None
    cfg.source = source
    return cfg


def _m(v: Any, where: str, keys: set[str] | None = None) -> dict:
    return mapping(v, where, keys, DhcpConfigError)


def _addr(v: Any, where: str) -> IPv4Address:
    return address(v, where, DhcpConfigError)


def _addrs(v: Any, where: str) -> list[IPv4Address]:
    items = v if isinstance(v, list) else [v]
    return [_addr(x, f"{where}[{i}]") for i, x in enumerate(items)]


def _lease(v: Any, where: str) -> int:
    n = number(v, where, DhcpConfigError)
    if not 10 <= n <= 0xFFFFFFFE:
        raise DhcpConfigError(where, f"lease time {v!r} not in 10..4294967294 seconds")
    return int(n)


TOP = {"lease_time", "t1", "t2", "dns", "domain", "subnets", "server_id", "bootp"}
SUB = {"subnet", "pool", "exclude", "router", "dns", "domain", "lease_time", "reservations"}


def _build(data: Any) -> Config:
    top = _m(data, "", TOP)
    lease = _lease(top["lease_time"], "lease_time") if "lease_time" in top else 3600
    t1 = number(top.get("t1", 0.5), "t1", DhcpConfigError)
    t2 = number(top.get("t2", 0.875), "t2", DhcpConfigError)
    if not 0 < t1 < t2 < 1:
        raise DhcpConfigError("t2" if "t2" in top else "t1",
                              f"need 0 < t1 < t2 < 1 (got t1={t1}, t2={t2})")
    dns = _addrs(top["dns"], "dns") if "dns" in top else []
    subnets: list[Subnet] = []
    raw = top.get("subnets")
    if not isinstance(raw, list) or not raw:
        raise DhcpConfigError("subnets", "need a list of subnets")
    for i, sd in enumerate(raw):
        w = f"subnets[{i}]"
        sd = _m(sd, w, SUB)
        if "subnet" not in sd:
            raise DhcpConfigError(w, "needs 'subnet'")
        try:
            net = IPv4Network(str(sd["subnet"]), strict=True)
        except ValueError as e:
            raise DhcpConfigError(f"{w}.subnet", f"not a prefix: {sd['subnet']!r} ({e})") \
                from None
        for j, other in enumerate(subnets):
            if net.overlaps(other.network):
                raise DhcpConfigError(f"{w}.subnet", f"{net} overlaps subnets[{j}] "
                                      f"({other.network})")
        excl = set(_addrs(sd["exclude"], f"{w}.exclude")) if "exclude" in sd else set()
        pool: list[IPv4Address] = []
        items = sd.get("pool") or []
        if not isinstance(items, list):
            items = [items]
        for j, item in enumerate(items):
            pw = f"{w}.pool[{j}]"
            lo_s, _, hi_s = str(item).partition("-")
            lo = _addr(lo_s.strip(), pw)
            hi = _addr(hi_s.strip(), pw) if hi_s else lo
            for a in (lo, hi):
                if a not in net or a in (net.network_address, net.broadcast_address):
                    raise DhcpConfigError(pw, f"{a} is outside subnet {net} (or its "
                                          "network/broadcast address)")
            if int(hi) < int(lo):
                raise DhcpConfigError(pw, f"range {lo}-{hi} runs backwards")
            pool += [IPv4Address(x) for x in range(int(lo), int(hi) + 1)
                     if IPv4Address(x) not in excl]
        router = _addr(sd["router"], f"{w}.router") if "router" in sd else None
        if router is not None and router not in net:
            raise DhcpConfigError(f"{w}.router", f"router {router} is outside {net}")
        if router in pool:
            raise DhcpConfigError(f"{w}.pool", f"the pool contains the router {router}")
        res: dict[str, IPv4Address] = {}
        for j, r in enumerate(sd.get("reservations") or []):
            rw = f"{w}.reservations[{j}]"
            rd = _m(r, rw, {"mac", "address"})
            mac = str(rd.get("mac", "")).lower()
            if not MAC_RE.match(mac):
                raise DhcpConfigError(f"{rw}.mac", f"not a MAC address: {rd.get('mac')!r}")
            a = _addr(rd.get("address"), f"{rw}.address")
            if a not in net:
                raise DhcpConfigError(f"{rw}.address", f"{a} is outside subnet {net}")
            if a in res.values():
                raise DhcpConfigError(f"{rw}.address", f"{a} is reserved twice")
            res[mac] = a
        subnets.append(Subnet(
            net, pool, router, _addrs(sd["dns"], f"{w}.dns") if "dns" in sd else dns,
            str(sd.get("domain", top.get("domain", ""))) or None,
            _lease(sd["lease_time"], f"{w}.lease_time") if "lease_time" in sd else lease, res))
    server_id = _addr(top["server_id"], "server_id") if "server_id" in top else None
    bootp = top.get("bootp", True)
    if not isinstance(bootp, bool) and bootp != "only":
        raise DhcpConfigError("bootp", "expected true, false or only")
    return Config(subnets, t1, t2, server_id, bootp is not False, bootp_only=bootp == "only")
