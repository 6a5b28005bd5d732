"""Read a topology file (YAML) into a validated `Topology`.

Every error names the file, the line and the field: the YAML is composed once to learn the
line of each field path, then the plain data is turned into the model and validated; a
field path from either step is mapped back to its line.

File format (topologies/world.yaml is the full example):

    name: duo
    controller: {port: 6653}          # optional; default: a free port
    routers:
      r1:
        interfaces: {lan1: 10.0.1.1/24, core: 10.255.0.1/30}
        routes: [{to: 10.0.2.0/24, via: 10.255.0.2}]
    hosts:
      h1: {subnet: lan1, address: 10.0.1.10, link: {bw: 100}}
      h2: {subnet: lan1, dhcp: true, services: [{name: web, run: "python3 -m http.server 80"}]}
      h3: {subnet: lan1, address: 10.0.1.12, link: {delay: 5ms, loss: 1}}
    links:                            # router-to-router subnets: delay/loss (delay nodes)
      core: {delay: 20ms, cost: 5}    # cost: routing metric (default: the delay in ms, else 1)
    routing: shortest-path            # default: the controller computes routes from the
                                      # graph (written routes win); `static`: only those
    fast_failover: true               # backup next hops in the switches (default true)
    announce_links: true              # route link prefixes everywhere (false: host subnets
                                      # and NAT addresses only, fewer flows)
    datapath: auto                    # OVS: kernel where the openvswitch module is, else user
    link_emulation: auto              # netem where the kernel has it, else the delay line
    faults: {seed: 7, schedule: [...], random: {...}}   # faults on purpose: topologies/faults.py

Links (hosts' `link:` and `links:`) take, besides bw/delay/loss/cost, what netem can do:
jitter (with distribution: uniform, normal, pareto, paretonormal), loss_correlation,
gilbert_elliott {p, r, bad_loss, good_loss}, duplicate, corrupt, reorder (percents), rate
(Mbit/s) and queue (packets). Without netem only delay and loss can be emulated, and a
link asking for more is refused before anything is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .faults import parse_plan
from .model import (
    Host,
    LinkParams,
    Route,
    Router,
    Service,
    Topology,
    TopologyError,
    _address,
    _interface,
    _network,
)
from .yamlfile import load_yaml, mapping, number, read_text

TOP_KEYS = {"name", "description", "controller", "routers", "hosts", "links", "placement",
            "routing", "fast_failover", "announce_links", "datapath", "link_emulation",
            "faults"}
ROUTER_KEYS = {"interfaces", "routes", "nat", "dhcp_relay"}
HOST_KEYS = {"subnet", "address", "dhcp", "link", "services", "dns", "mac"}
LINK_KEYS = {"bw", "delay", "loss", "cost", "jitter", "distribution", "loss_correlation",
             "gilbert_elliott", "duplicate", "corrupt", "reorder", "rate", "queue"}
SERVICE_KEYS = {"name", "run", "ready_port"}


def load(path: str | Path) -> Topology:
    """Load and validate a topology file; raise TopologyError naming file and line."""
    path = Path(path)
    topo = loads(read_text(path, TopologyError), source=str(path))
    topo.base_dir = str(path.resolve().parent)
    return topo


def loads(text: str, source: str = "<string>") -> Topology:
    data, lines = load_yaml(text, source, TopologyError)
    try:
        topo = _build(data).validate()
        if isinstance(data, dict) and data.get("faults") is not None:
            topo.faults = parse_plan(data["faults"], topo)
        return topo
    except TopologyError as e:
        raise e.located(source, lines) from None


def _mapping(value: Any, where: str, keys: set[str] | None = None) -> dict:
    return mapping(value, where, keys, TopologyError)


def _number(value: Any, where: str) -> float:
    return number(value, where, TopologyError)


def _build(data: Any) -> Topology:
    top = _mapping(data, "", TOP_KEYS)
    if "name" not in top:
        raise TopologyError("name", "missing: every topology has a name")
    topo = Topology(str(top["name"]), description=str(top.get("description") or ""))
    for key in ("routing", "datapath", "link_emulation"):
        if key in top:
            setattr(topo, key, str(top[key]))
    for key in ("fast_failover", "announce_links"):
        if key in top:
            if not isinstance(top[key], bool):
                raise TopologyError(key, "expected true or false")
            setattr(topo, key, top[key])
    ctl = _mapping(top.get("controller"), "controller", {"port"})
    if "port" in ctl:
        port = ctl["port"]
        if not isinstance(port, int) or not (1024 <= port <= 65535):
            raise TopologyError("controller.port", f"port {port!r} not in 1024..65535")
        topo.controller_port = port
    for rname, rdata in _mapping(top.get("routers"), "routers").items():
        where = f"routers.{rname}"
        rd = _mapping(rdata, where, ROUTER_KEYS)
        router = Router(str(rname))
        for sname, addr in _mapping(rd.get("interfaces"), f"{where}.interfaces").items():
            router.interfaces[str(sname)] = _interface(addr, f"{where}.interfaces.{sname}")
        routes = rd.get("routes") or []
        if not isinstance(routes, list):
            raise TopologyError(f"{where}.routes", "expected a list of {to, via}")
        for i, rt in enumerate(routes):
            rw = f"{where}.routes[{i}]"
            rtd = _mapping(rt, rw, {"to", "via"})
            for k in ("to", "via"):
                if k not in rtd:
                    raise TopologyError(rw, f"route needs '{k}'")
            router.routes.append(Route(_network(rtd["to"], f"{rw}.to"),
                                       _address(rtd["via"], f"{rw}.via")))
        topo.routers[router.name] = router
        if rd.get("nat") is not None:
            topo.nat(router.name, rd["nat"])
        if rd.get("dhcp_relay") is not None:
            topo.dhcp_relay(router.name, rd["dhcp_relay"])
    for hname, hdata in _mapping(top.get("hosts"), "hosts").items():
        topo.hosts[str(hname)] = _host(str(hname), hdata)
    for sname, ldata in _mapping(top.get("links"), "links").items():
        topo.links[str(sname)] = _link(ldata, f"links.{sname}")
    for rname, server in _mapping(top.get("placement"), "placement").items():
        if str(rname) not in topo.routers:
            raise TopologyError(f"placement.{rname}", "no such router")
        if not isinstance(server, (str, int)) or not str(server):
            raise TopologyError(f"placement.{rname}", "expected a server: its name or its "
                                "position in --servers (1, 2, ...)")
        topo.placement[str(rname)] = str(server)
    return topo


def _link(data: Any, where: str) -> LinkParams:
    ld = _mapping(data, where, LINK_KEYS)

    def num(key: str) -> float | None:
        return _number(ld[key], f"{where}.{key}") if key in ld else None

    ge = ld.get("gilbert_elliott")
    queue = ld.get("queue")
    return LinkParams(
        bw=num("bw"), delay=str(ld["delay"]) if "delay" in ld else None, loss=num("loss"),
        cost=num("cost"), jitter=str(ld["jitter"]) if "jitter" in ld else None,
        distribution=str(ld["distribution"]) if "distribution" in ld else None,
        loss_correlation=num("loss_correlation"),
        gilbert_elliott=dict(_mapping(ge, f"{where}.gilbert_elliott")) if ge is not None
        else None,
        duplicate=num("duplicate"), corrupt=num("corrupt"), reorder=num("reorder"),
        rate=num("rate"), queue=queue,
    )


def _host(name: str, hdata: Any) -> Host:
    where = f"hosts.{name}"
    hd = _mapping(hdata, where, HOST_KEYS)
    if "subnet" not in hd:
        raise TopologyError(where, "missing 'subnet'")
    dhcp = hd.get("dhcp", False)
    if not isinstance(dhcp, bool) and dhcp != "manual":
        raise TopologyError(f"{where}.dhcp", "expected true, false or manual (no address, "
                            "no client started: run one yourself)")
    if bool(dhcp) == ("address" in hd):
        raise TopologyError(where, "give exactly one of 'address' or 'dhcp: true'")
    address = None if dhcp else _address(hd["address"], f"{where}.address")
    link = _link(hd.get("link"), f"{where}.link")
    services = []
    sdata = hd.get("services") or []
    if not isinstance(sdata, list):
        raise TopologyError(f"{where}.services", "expected a list of services")
    for i, s in enumerate(sdata):
        sw = f"{where}.services[{i}]"
        sd = _mapping(s, sw, SERVICE_KEYS)
        for k in ("name", "run"):
            if k not in sd:
                raise TopologyError(sw, f"service needs '{k}'")
        rp = sd.get("ready_port")
        if rp is not None and (not isinstance(rp, int) or not 1 <= rp <= 65535):
            raise TopologyError(f"{sw}.ready_port", f"not a port: {rp!r}")
        services.append(Service(str(sd["name"]), str(sd["run"]), rp))
    dns = _address(hd["dns"], f"{where}.dns") if "dns" in hd else None
    mac = str(hd["mac"]).lower() if "mac" in hd else None
    return Host(name, str(hd["subnet"]), address, link, services, dns, mac,
                dhcp_client=dhcp is True)
