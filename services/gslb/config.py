"""The GSLB configuration (YAML) as plain objects, validated with file:line:field errors.

    zone: gslb.example.com.            # the domain the GSLB is authoritative for
    zone_file: gslb.zone               # optional static records (whole-domain deployment)
    ns: {ns.gslb.example.com.: 198.18.3.1}
    ttl: 5
    regions: {seoul: [198.18.10.0/24], busan: [198.18.20.0/24]}
    sites:   {dc1: {region: seoul, agent: 198.51.100.11:8080}, dc2: {...}}
    topology: {seoul: [dc1, dc2], busan: [dc2, dc1]}   # region -> sites, nearest first
    pools:
      web:
        algorithm: [topology, round-robin]   # preferred -> alternate -> fallback
        when_all_down: all | none | 192.0.2.1
        answers: 1
        check: {type: http, port: 8080, path: /health, expect: 200, interval: 1, ...}
        members: [{name: web1a, address: 198.51.100.11, site: dc1, weight: 2}, ...]
    names: {www: web, "*": web}             # relative to zone, or absolute with a dot
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from topologies.yamlfile import ConfigFileError, load_yaml, mapping, number, read_text

ALGORITHMS = ("round-robin", "weighted", "least-conn", "hash", "rtt", "topology", "all")
CHECK_TYPES = ("icmp", "tcp", "http", "none")
TOP_KEYS = {"zone", "zone_file", "zones", "ns", "ttl", "regions", "sites", "topology", "pools",
            "names", "rtt"}
POOL_KEYS = {"algorithm", "when_all_down", "answers", "check", "members"}
MEMBER_KEYS = {"name", "address", "site", "weight"}
CHECK_KEYS = {"type", "port", "path", "expect", "body", "interval", "timeout", "rise", "fall",
              "initial", "load_path"}
SITE_KEYS = {"region", "agent"}
RTT_KEYS = {"source", "max_age"}


class GslbConfigError(ConfigFileError):
    """A GSLB config that cannot be served; names the file, line and field."""


@dataclass
class Check:
    """How a member's health is probed. `initial`: the state before the first verdict."""
    type: str = "tcp"
    port: int = 80
    path: str = "/"
    expect: int = 200
    body: str | None = None
    interval: float = 2.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 2
    initial: str = "up"
    load_path: str | None = None  # HTTP path whose JSON {"active": N} reports the load


@dataclass
class Member:
    name: str
    address: IPv4Address
    site: str
    weight: int = 1


@dataclass
class Pool:
    name: str
    members: list[Member]
    algorithms: list[str] = field(default_factory=lambda: ["round-robin"])
    when_all_down: str = "all"  # "all", "none" or a fallback address
    answers: int = 1
    check: Check = field(default_factory=Check)


@dataclass
class Site:
    name: str
    region: str | None = None
    agent: tuple[str, int] | None = None  # the site's prober (infralab web agent)


@dataclass
class GslbConfig:
    zone: str  # the first zone: relative names in `names:` are relative to it
    pools: dict[str, Pool]
    names: dict[str, str]  # absolute lower-case name (or "*.zone.") -> pool
    ttl: int = 5
    zone_file: Path | None = None
    zones: dict[str, Path | None] = field(default_factory=dict)  # every zone -> its file
    ns: dict[str, IPv4Address] = field(default_factory=dict)
    regions: dict[str, list[IPv4Network]] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    topology: dict[str, list[str]] = field(default_factory=dict)
    rtt_source: str = "gslb"  # "gslb": own probes to members; "sites": agents probe the LDNS
    rtt_max_age: float = 300.0

    def pool_for(self, qname: str) -> Pool | None:
        """The pool answering `qname` (lower-case, absolute): exact name, then wildcard."""
        p = self.names.get(qname)
        rest = qname
        while p is None and "." in rest[:-1]:  # a wildcard covers every depth below it
            rest = rest.split(".", 1)[1]
            p = self.names.get("*." + rest)
        return self.pools.get(p) if p else None


def _err(where: str, problem: str) -> GslbConfigError:
    return GslbConfigError(where, problem)


def _absolute(name: str, zone: str) -> str:
    name = str(name).lower()
    if name == "@":
        return zone
    return name if name.endswith(".") else f"{name}.{zone}"


def _addr(v: Any, where: str) -> IPv4Address:
    try:
        return IPv4Address(str(v))
    except ValueError:
        raise _err(where, f"not an IPv4 address: {v!r}") from None


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    n = number(v, where, GslbConfigError)
    if n != int(n) or not lo <= n <= hi:
        raise _err(where, f"{v!r} is not a whole number in {lo}..{hi}")
    return int(n)


def _check(d: Any, where: str) -> Check:
    cd = mapping(d, where, CHECK_KEYS, GslbConfigError)
    c = Check()
    if "type" in cd:
        if cd["type"] not in CHECK_TYPES:
            raise _err(f"{where}.type", f"unknown check type {cd['type']!r} (known: "
                       + ", ".join(CHECK_TYPES) + ")")
        c.type = cd["type"]
    c.port = _int(cd.get("port", 80 if c.type == "http" else c.port), f"{where}.port", 1, 65535)
    for k in ("interval", "timeout"):
        if k in cd:
            v = number(cd[k], f"{where}.{k}", GslbConfigError)
            if not 0.05 <= v <= 3600:
                raise _err(f"{where}.{k}", f"{v} s not in 0.05..3600")
            setattr(c, k, v)
    for k in ("rise", "fall"):
        if k in cd:
            setattr(c, k, _int(cd[k], f"{where}.{k}", 1, 100))
    if "expect" in cd:
        c.expect = _int(cd["expect"], f"{where}.expect", 100, 599)
    if "initial" in cd:
        if cd["initial"] not in ("up", "down"):
            raise _err(f"{where}.initial", "expected 'up' or 'down'")
        c.initial = cd["initial"]
    c.path = str(cd.get("path", c.path))
    c.body = str(cd["body"]) if "body" in cd else None
    c.load_path = str(cd["load_path"]) if "load_path" in cd else None
    return c


def parse(data: Any) -> GslbConfig:
    top = mapping(data, "", TOP_KEYS, GslbConfigError)
    zones: dict[str, Path | None] = {}
    if "zone" in top:
        zones[str(top["zone"]).lower().rstrip(".") + "."] = (
            Path(str(top["zone_file"])) if "zone_file" in top else None)
    for z, f in mapping(top.get("zones"), "zones", None, GslbConfigError).items():
        zones[str(z).lower().rstrip(".") + "."] = Path(str(f)) if f else None
    if not zones:
        raise _err("zone", "missing: the domain the GSLB answers for (zone: or zones:)")
    zone = next(iter(zones))
    regions = {}
    for r, nets in mapping(top.get("regions"), "regions", None, GslbConfigError).items():
        if not isinstance(nets, list):
            raise _err(f"regions.{r}", "expected a list of prefixes")
        out = []
        for i, n in enumerate(nets):
            try:
                out.append(IPv4Network(str(n)))
            except ValueError:
                raise _err(f"regions.{r}[{i}]", f"not an IPv4 prefix: {n!r}") from None
        regions[str(r)] = out
    sites = {}
    for s, sd in mapping(top.get("sites"), "sites", None, GslbConfigError).items():
        sdd = mapping(sd, f"sites.{s}", SITE_KEYS, GslbConfigError)
        region = sdd.get("region")
        if region is not None and region not in regions:
            raise _err(f"sites.{s}.region", f"unknown region {region!r}")
        agent = None
        if "agent" in sdd:
            host, _, port = str(sdd["agent"]).rpartition(":")
            port_n = int(port) if port.isdigit() else port
            agent = (str(_addr(host, f"sites.{s}.agent")),
                     _int(port_n, f"sites.{s}.agent", 1, 65535))
        sites[str(s)] = Site(str(s), region, agent)
    topology = {}
    for r, order in mapping(top.get("topology"), "topology", None, GslbConfigError).items():
        if r not in regions:
            raise _err(f"topology.{r}", f"unknown region {r!r}")
        if not isinstance(order, list):
            raise _err(f"topology.{r}", "expected a list of sites, nearest first")
        for i, s in enumerate(order):
            if s not in sites:
                raise _err(f"topology.{r}[{i}]", f"unknown site {s!r}")
        topology[str(r)] = [str(s) for s in order]
    pools = {}
    for pname, pd in mapping(top.get("pools"), "pools", None, GslbConfigError).items():
        where = f"pools.{pname}"
        pdd = mapping(pd, where, POOL_KEYS, GslbConfigError)
        algos = pdd.get("algorithm", ["round-robin"])
        algos = [algos] if isinstance(algos, str) else algos
        if not isinstance(algos, list) or not algos:
            raise _err(f"{where}.algorithm", "expected an algorithm or a list of them")
        for a in algos:
            if a not in ALGORITHMS:
                raise _err(f"{where}.algorithm", f"unknown algorithm {a!r} (known: "
                           + ", ".join(ALGORITHMS) + ")")
            if a == "topology" and not topology:
                raise _err(f"{where}.algorithm", "'topology' needs a topology: section")
        members = []
        mlist = pdd.get("members")
        if not isinstance(mlist, list) or not mlist:
            raise _err(f"{where}.members", "a pool needs a list of members")
        for i, md in enumerate(mlist):
            mw = f"{where}.members[{i}]"
            mdd = mapping(md, mw, MEMBER_KEYS, GslbConfigError)
            for k in ("name", "address"):
                if k not in mdd:
                    raise _err(mw, f"member needs '{k}'")
            site = str(mdd.get("site", "default"))
            if sites and site not in sites:
                raise _err(f"{mw}.site", f"unknown site {site!r}")
            members.append(Member(str(mdd["name"]), _addr(mdd["address"], f"{mw}.address"),
                                  site, _int(mdd.get("weight", 1), f"{mw}.weight", 0, 1000)))
        down = str(pdd.get("when_all_down", "all"))
        if down not in ("all", "none"):
            _addr(down, f"{where}.when_all_down")
        pools[str(pname)] = Pool(str(pname), members, [str(a) for a in algos], down,
                                 _int(pdd.get("answers", 1), f"{where}.answers", 1, 16),
                                 _check(pdd.get("check"), f"{where}.check"))
    names = {}
    for n, p in mapping(top.get("names"), "names", None, GslbConfigError).items():
        if p not in pools:
            raise _err(f"names.{n}", f"unknown pool {p!r} (pools: " + ", ".join(pools) + ")")
        full = _absolute(str(n), zone)
        if not any(full == z or full.endswith("." + z) for z in zones):
            raise _err(f"names.{n}", f"{full} is in none of the zones " + ", ".join(zones))
        names[full] = str(p)
    ns = {}
    for n, a in mapping(top.get("ns"), "ns", None, GslbConfigError).items():
        ns[_absolute(str(n), zone)] = _addr(a, f"ns.{n}")
    rtt = mapping(top.get("rtt"), "rtt", RTT_KEYS, GslbConfigError)
    source = str(rtt.get("source", "gslb"))
    if source not in ("gslb", "sites"):
        raise _err("rtt.source", "expected 'gslb' (own probes) or 'sites' (site agents)")
    if source == "sites":
        for s in sites.values():
            if s.agent is None:
                raise _err(f"sites.{s.name}", "rtt.source 'sites' needs an agent per site")
    return GslbConfig(zone, pools, names, _int(top.get("ttl", 5), "ttl", 0, 86400),
                      zones[zone], zones, ns,
                      regions, sites, topology, source,
                      number(rtt.get("max_age", 300), "rtt.max_age", GslbConfigError))


def load(path: str | Path) -> GslbConfig:
    """Read and validate a GSLB config file; errors name the file and line."""
    path = Path(path)
    data, lines = load_yaml(read_text(path, GslbConfigError), str(path), GslbConfigError)
    try:
        cfg = parse(data)
    except GslbConfigError as e:
        raise e.located(str(path), lines) from None
    cfg.zones = {z: (f if f is None or f.is_absolute() else path.parent / f)
                 for z, f in cfg.zones.items()}
    cfg.zone_file = cfg.zones[cfg.zone]
    return cfg
