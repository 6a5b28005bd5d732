"""The topology as plain objects: routers, their subnets, hosts, links, routes, services.

One model serves the YAML loader and the Python API, so both are validated by the same
code. Nothing here touches Mininet or the machine: `validate()` is pure and every problem
it finds names the field it is about (``hosts.c1.subnet``) so that the loader can turn the
field into a file line.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from .natconfig import NatConfigError, NatInterface, RuleError
from .natconfig import parse as parse_nat
from .relayconfig import RelayConfig
from .relayconfig import parse as parse_relay
from .yamlfile import ConfigFileError, address

# Mininet names interfaces "<node>-eth<N>"; Linux allows 15 characters.
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
TOPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")

# Address space a topology may use: nothing here is routable on the real internet, and the
# emulation never connects to a real interface anyway (safety belt and braces).
ALLOWED_SPACE = [
    IPv4Network(p)
    for p in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "198.18.0.0/15",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
    )
]
DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")
DELAY_NODE_PREFIX = "dly"  # Mininet nodes the builder adds in the middle of delayed links


class TopologyError(ConfigFileError):
    """A topology that cannot be built; `where` is the field path, `source` the file."""

    def render(self) -> str:
        return super().render().replace("<config>", "<topology>", 1)


@dataclass
class LinkParams:
    """Properties of a link: bandwidth (HTB), and what a real link does to packets (delay,
    loss...). Where the kernel has netem, netem does all of it on both ends; elsewhere a
    user-space delay node does delay and loss (emulation/delayline.py) and the fields
    only netem can do (NETEM_ONLY) are refused with a clear error."""

    bw: float | None = None  # Mbit/s, shaped with HTB
    delay: str | None = None  # one way, e.g. "20ms"
    loss: float | None = None  # percent of frames dropped, each direction
    cost: float | None = None  # routing metric (router links); None: from the delay, else 1
    jitter: str | None = None  # netem: delay varies by up to this ("5ms"), needs delay
    distribution: str | None = None  # netem: of the jitter (uniform when not given)
    loss_correlation: float | None = None  # netem: percent, each loss depends on the last
    gilbert_elliott: dict[str, float] | None = None  # netem gemodel: bursts of loss
    duplicate: float | None = None  # netem: percent of frames sent twice
    corrupt: float | None = None  # netem: percent of frames with a flipped bit
    reorder: float | None = None  # netem: percent of frames sent at once (others: delayed)
    rate: float | None = None  # netem: Mbit/s, the link's own serialisation rate
    queue: int | None = None  # netem: the queue's limit, packets

    @property
    def emulated(self) -> bool:
        return bool(self.delay) or bool(self.loss) or bool(self.netem_only())

    def netem_only(self) -> list[str]:
        """The fields set that only netem can emulate (the delay line cannot)."""
        return [f for f in NETEM_ONLY if getattr(self, f) not in (None, 0)]

    def shape(self) -> dict:
        """The netem-only fields that are set, for the plan (JSON-ready)."""
        return {f: getattr(self, f) for f in self.netem_only()}


NETEM_ONLY = ("jitter", "distribution", "loss_correlation", "gilbert_elliott", "duplicate",
              "corrupt", "reorder", "rate", "queue")
DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")
GILBERT_KEYS = ("p", "r", "bad_loss", "good_loss")  # netem: gemodel p r 1-h 1-k, percents
DATAPATHS = ("auto", "kernel", "user")  # OVS: kernel module, or userspace (netdev)
LINK_EMULATIONS = ("auto", "netem", "delayline")


ROUTING_MODES = ("shortest-path", "static")


@dataclass
class Route:
    prefix: IPv4Network
    via: IPv4Address


@dataclass
class Router:
    name: str
    interfaces: dict[str, IPv4Interface] = field(default_factory=dict)  # subnet -> address
    routes: list[Route] = field(default_factory=list)
    nat: list[NatInterface] = field(default_factory=list)  # NAT-*: per outside interface
    relay: RelayConfig | None = None  # DHCP-RELAY


@dataclass
class Service:
    """A process started on a host when the topology is up, ended by its PID at teardown."""

    name: str
    run: str
    ready_port: int | None = None  # TCP/UDP port to wait for before declaring the service up


@dataclass
class Host:
    name: str
    subnet: str
    address: IPv4Address | None = None  # None: the host gets its address by DHCP
    link: LinkParams = field(default_factory=LinkParams)
    services: list[Service] = field(default_factory=list)
    dns: IPv4Address | None = None  # the host's resolver (its resolv.conf in the emulation)
    mac: str | None = None  # fixed MAC (e.g. for a DHCP reservation); None: random
    dhcp_client: bool = True  # no address: start infralab's DHCP client (False: "manual")

    @property
    def dhcp(self) -> bool:
        return self.address is None


@dataclass
class Subnet:
    """A subnet as the routers see it: derived from their interfaces."""

    name: str
    network: IPv4Network
    routers: dict[str, IPv4Address]  # router name -> its address on this subnet
    hosts: list[str]

    @property
    def is_transit(self) -> bool:
        return len(self.routers) == 2


@dataclass
class Topology:
    """A whole emulated network; build it with the API methods or `topologies.loader`."""

    name: str
    routers: dict[str, Router] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    controller_port: int | None = None  # None: pick a free port at start
    description: str = ""
    base_dir: str = "."  # where relative files named by services live ({dir})
    links: dict[str, LinkParams] = field(default_factory=dict)  # transit subnet -> params
    placement: dict[str, str] = field(default_factory=dict)  # router -> server (cluster runs)
    # ROUTE-SPF: the controller computes routes from the graph (static `routes:` win);
    # "static": only the routes written down, as before routes were computed
    routing: str = "shortest-path"
    fast_failover: bool = True  # ROUTE-FAILOVER: a backup next hop in the switch itself
    # ROUTE-SPF: route the router-to-router link prefixes everywhere (False: only host
    # subnets and NAT addresses, as OSPF's prefix-suppression: flow tables then grow with
    # the subnets, not the links - the research generators and imported networks)
    announce_links: bool = True
    # OVS's datapath and how links are emulated: "auto" picks the kernel's (openvswitch
    # module, sch_netem) where it has them, else userspace OVS and the delay line
    datapath: str = "auto"
    link_emulation: str = "auto"
    # imported topologies (ROUTE-ZOO): a router's place name, and its (longitude, latitude)
    labels: dict[str, str] = field(default_factory=dict)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    # files the services read ({dir}/PATH), made with the topology (the services overlay);
    # written to the run directory at start, and {dir} then names that copy
    files: dict[str, str] = field(default_factory=dict)
    # the `faults:` block (a topologies.faults.FaultPlan), None when there is none
    faults: Any = None

    # ---- Python API -------------------------------------------------------------------
    def router(self, name: str) -> Router:
        """Add (or return) router `name`."""
        return self.routers.setdefault(name, Router(name))

    def interface(self, router: str, subnet: str, address: str) -> None:
        """Give `router` an interface on `subnet` with `address` ("10.0.1.1/24")."""
        self.router(router).interfaces[subnet] = _interface(address, f"routers.{router}."
                                                            f"interfaces.{subnet}")

    def route(self, router: str, prefix: str, via: str) -> None:
        where = f"routers.{router}.routes"
        self.router(router).routes.append(Route(_network(prefix, where), _address(via, where)))

    def nat(self, router: str, rules: dict) -> None:
        """NAT rules of `router`, as in the file's `nat:` ({"wan": {"pat": "203.0.113.1"}})."""
        r = self.router(router)
        try:
            r.nat = parse_nat(rules, router, {s: i.network for s, i in r.interfaces.items()},
                              {i.ip for i in r.interfaces.values()})
        except NatConfigError as e:
            raise TopologyError(e.where, e.problem) from None

    def dhcp_relay(self, router: str, rules: dict) -> None:
        """DHCP relay of `router`, as in the file's `dhcp_relay:` ({"servers": [...], ...})."""
        r = self.router(router)
        try:
            r.relay = parse_relay(rules, router, set(r.interfaces))
        except RuleError as e:
            raise TopologyError(e.where, e.problem) from None

    def host(self, name: str, subnet: str, address: str | None = None, *,
             bw: float | None = None, services: list[Service] | None = None,
             dns: str | None = None) -> Host:
        """Add host `name` on `subnet`; address None means DHCP; `dns`: its resolver."""
        h = Host(name, subnet, _address(address, f"hosts.{name}.address") if address else None,
                 LinkParams(bw=bw), list(services or []),
                 _address(dns, f"hosts.{name}.dns") if dns else None)
        self.hosts[name] = h
        return h

    # ---- derived views ------------------------------------------------------------------
    def subnets(self) -> dict[str, Subnet]:
        out: dict[str, Subnet] = {}
        for r in self.routers.values():
            for sname, iface in r.interfaces.items():
                s = out.setdefault(sname, Subnet(sname, iface.network, {}, []))
                s.routers[r.name] = iface.ip
        for h in self.hosts.values():
            if h.subnet in out:
                out[h.subnet].hosts.append(h.name)
        return out

    def gateway(self, host: str) -> IPv4Address:
        s = self.subnets()[self.hosts[host].subnet]
        return next(iter(s.routers.values()))

    def host_interface(self, host: str) -> IPv4Interface | None:
        h = self.hosts[host]
        if h.address is None:
            return None
        net = self.subnets()[h.subnet].network
        return IPv4Interface(f"{h.address}/{net.prefixlen}")

    # ---- validation ---------------------------------------------------------------------
    def validate(self) -> Topology:
        """Raise TopologyError for the first problem found; return self when buildable."""
        if not TOPO_NAME_RE.match(self.name):
            raise TopologyError("name", f"bad topology name {self.name!r}: use letters, digits, "
                                "'-' or '_' (at most 32)")
        if not self.routers:
            raise TopologyError("routers", "a topology needs at least one router")
        for key, allowed in (("routing", ROUTING_MODES), ("datapath", DATAPATHS),
                             ("link_emulation", LINK_EMULATIONS)):
            if getattr(self, key) not in allowed:
                raise TopologyError(key, f"unknown {key} {getattr(self, key)!r} (one of "
                                    + ", ".join(allowed) + ")")
        seen: set[str] = set()
        for kind, names in (("routers", self.routers), ("hosts", self.hosts)):
            for n in names:
                if not NAME_RE.match(n):
                    raise TopologyError(f"{kind}.{n}", f"bad name {n!r}: use 1-8 lower-case "
                                        "letters/digits starting with a letter")
                if n in seen:
                    raise TopologyError(f"{kind}.{n}", f"name {n!r} is used twice")
                if n.startswith(DELAY_NODE_PREFIX):
                    raise TopologyError(f"{kind}.{n}", f"names starting with "
                                        f"{DELAY_NODE_PREFIX!r} are the delay nodes' own")
                seen.add(n)
        for r in self.routers.values():
            self._validate_router(r)
        subnets = self.subnets()
        for s in subnets.values():
            if len(s.routers) > 2:
                raise TopologyError(f"routers.{list(s.routers)[2]}.interfaces.{s.name}",
                                    f"subnet {s.name!r} is on {len(s.routers)} routers; a subnet "
                                    "is on one router (with hosts) or joins two (a link)")
            nets = {self.routers[r].interfaces[s.name].network for r in s.routers}
            if len(nets) > 1:
                second = list(s.routers)[1]
                raise TopologyError(f"routers.{second}.interfaces.{s.name}",
                                    f"subnet {s.name!r} has different prefixes: "
                                    + ", ".join(sorted(map(str, nets))))
            if len(set(s.routers.values())) < len(s.routers):
                second = list(s.routers)[1]
                raise TopologyError(f"routers.{second}.interfaces.{s.name}",
                                    f"both routers use the same address on {s.name!r}")
        for h in self.hosts.values():
            self._validate_host(h, subnets)
        for sname, lp in self.links.items():
            if sname not in subnets or not subnets[sname].is_transit:
                raise TopologyError(f"links.{sname}", f"{sname!r} is not a subnet joining two "
                                    "routers (give a host's access link `link:` instead)")
            check_link(lp, f"links.{sname}")
        for r in self.routers.values():
            for i, rt in enumerate(r.routes):
                if not any(rt.via in iface.network and rt.via != iface.ip
                           for iface in r.interfaces.values()):
                    raise TopologyError(f"routers.{r.name}.routes[{i}].via",
                                        f"next hop {rt.via} is not on a subnet of {r.name}")
        return self

    def _validate_router(self, r: Router) -> None:
        if not r.interfaces:
            raise TopologyError(f"routers.{r.name}.interfaces", "a router needs an interface")
        items = list(r.interfaces.items())
        for i, (sname, iface) in enumerate(items):
            where = f"routers.{r.name}.interfaces.{sname}"
            if not NAME_RE.match(sname.replace("_", "")):
                raise TopologyError(where, f"bad subnet name {sname!r}")
            _check_space(iface.ip, where)
            if iface.network.prefixlen > 30:
                raise TopologyError(where, f"prefix /{iface.network.prefixlen} is too small; "
                                    "use /30 or larger")
            if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
                raise TopologyError(where, f"{iface.ip} is the network or broadcast address")
            for other, oface in items[:i]:
                if iface.network.overlaps(oface.network):
                    raise TopologyError(where, f"{iface.network} overlaps {other} "
                                        f"({oface.network}) on the same router")

    def _validate_host(self, h: Host, subnets: dict[str, Subnet]) -> None:
        where = f"hosts.{h.name}"
        s = subnets.get(h.subnet)
        if s is None:
            raise TopologyError(f"{where}.subnet", f"unknown subnet {h.subnet!r} (known: "
                                + ", ".join(sorted(subnets)) + ")")
        if s.is_transit:
            raise TopologyError(f"{where}.subnet", f"{h.subnet!r} joins two routers; "
                                "hosts attach to a subnet of one router")
        if h.address is not None:
            _check_space(h.address, f"{where}.address")
            if h.address not in s.network:
                raise TopologyError(f"{where}.address", f"{h.address} is not in {h.subnet} "
                                    f"({s.network})")
            if h.address in (s.network.network_address, s.network.broadcast_address):
                raise TopologyError(f"{where}.address", f"{h.address} is the network or "
                                    "broadcast address")
            if h.address in s.routers.values():
                raise TopologyError(f"{where}.address", f"{h.address} is the router's address")
            for other in s.hosts:
                o = self.hosts[other]
                if other != h.name and o.address == h.address:
                    raise TopologyError(f"{where}.address", f"{h.address} is also {other}'s")
                if other == h.name:
                    break
        check_link(h.link, f"{where}.link")
        if h.mac is not None and not re.match(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$", h.mac):
            raise TopologyError(f"{where}.mac", f"not a MAC address: {h.mac!r} "
                                "(lower-case, colon-separated)")
        names = set()
        for i, svc in enumerate(h.services):
            if svc.name in names:
                raise TopologyError(f"{where}.services[{i}].name", f"service {svc.name!r} twice")
            names.add(svc.name)
            if not svc.run.strip():
                raise TopologyError(f"{where}.services[{i}].run", "empty command")


def check_link(lp: LinkParams, where: str) -> None:
    """Raise TopologyError (naming `where` and the field) for a link that cannot be."""
    if lp.bw is not None and not (0 < lp.bw <= 10000):
        raise TopologyError(f"{where}.bw", f"bandwidth {lp.bw} Mbit/s not in (0, 10000]")
    for key in ("delay", "jitter"):
        value = getattr(lp, key)
        if value is None:
            continue
        try:
            seconds = delay_seconds(value)
        except ValueError:
            raise TopologyError(f"{where}.{key}", f"bad {key} {value!r} (e.g. '5ms')") \
                from None
        if seconds > 5:
            raise TopologyError(f"{where}.{key}", f"{key} {value} is over 5 s")
    for key in ("loss", "loss_correlation", "duplicate", "corrupt", "reorder"):
        value = getattr(lp, key)
        if value is not None and not (0 <= value <= 100):
            raise TopologyError(f"{where}.{key}", f"{key} {value} not in [0, 100] %")
    if lp.cost is not None and not (0 < lp.cost <= 1e6):
        raise TopologyError(f"{where}.cost", f"cost {lp.cost} not in (0, 1000000]")
    if lp.rate is not None and not (0 < lp.rate <= 100000):
        raise TopologyError(f"{where}.rate", f"rate {lp.rate} Mbit/s not in (0, 100000]")
    if lp.rate is not None and lp.bw is not None:
        raise TopologyError(f"{where}.rate", "give bw (HTB shaping) or rate (netem's own "
                            "serialisation rate), not both")
    if lp.queue is not None and not (isinstance(lp.queue, int) and 1 <= lp.queue <= 1000000):
        raise TopologyError(f"{where}.queue", f"queue {lp.queue!r}: a number of packets, "
                            "1..1000000")
    if lp.distribution is not None and lp.distribution not in DISTRIBUTIONS:
        raise TopologyError(f"{where}.distribution", f"unknown distribution "
                            f"{lp.distribution!r} (one of {', '.join(DISTRIBUTIONS)})")
    needs = (("jitter", "delay"), ("distribution", "jitter"), ("reorder", "delay"),
             ("loss_correlation", "loss"))
    for key, base in needs:
        if getattr(lp, key) and not getattr(lp, base):
            raise TopologyError(f"{where}.{key}", f"{key} needs {base} as well")
    if lp.gilbert_elliott is not None:
        ge = lp.gilbert_elliott
        unknown = set(ge) - set(GILBERT_KEYS)
        if unknown or "p" not in ge:
            raise TopologyError(f"{where}.gilbert_elliott", "expected {p, r, bad_loss, "
                                "good_loss} in percent (p: good->bad; r: bad->good)")
        for k, v in ge.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 100:
                raise TopologyError(f"{where}.gilbert_elliott.{k}", f"{v!r} not in [0, 100] %")
        if lp.loss:
            raise TopologyError(f"{where}.gilbert_elliott", "give loss or gilbert_elliott "
                                "(a loss model of its own), not both")


def delay_seconds(delay: str) -> float:
    """'20ms' / '1.5s' / '500us' -> seconds (the format check_link accepts; the delay
    line reads its --delay with it too)."""
    m = re.match(r"^(\d+(\.\d+)?)(us|ms|s)$", delay)
    if not m:
        raise ValueError(f"bad delay {delay!r} (e.g. '20ms')")
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1}[m.group(3)]


def _check_space(ip: IPv4Address, where: str) -> None:
    if not any(ip in net for net in ALLOWED_SPACE):
        raise TopologyError(where, f"{ip} is outside the private, testing (198.18.0.0/15) "
                            "and documentation ranges an emulation may use")


def _address(text: object, where: str) -> IPv4Address:
    return address(text, where, TopologyError)


def _network(text: object, where: str) -> IPv4Network:
    if str(text) == "default":
        return DEFAULT_ROUTE
    try:
        return IPv4Network(str(text), strict=True)
    except ValueError as e:
        raise TopologyError(where, f"not an IPv4 prefix: {text!r} ({e})") from None


def _interface(text: object, where: str) -> IPv4Interface:
    s = str(text)
    if "/" not in s:
        raise TopologyError(where, f"{s!r} needs a prefix length, e.g. {s}/24")
    try:
        return ipaddress.IPv4Interface(s)
    except ValueError:
        raise TopologyError(where, f"not an IPv4 address/prefix: {s!r}") from None
