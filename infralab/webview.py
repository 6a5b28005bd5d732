"""`infralab view`: a live web page of a running emulation.

The page shows the topology (`infralab draw`'s SVG, its names as text) and, as they
change, the routers (ready, neighbours, counters), links down and per-link packet
rates, each NAT router's translation table, each DHCP server's leases, each GSLB pool's
members with their health, and each resolver's cache; along the bottom, an event stream
gathered from the logs the services already write (NAT create/expire/refuse, DHCP
decisions, GSLB health transitions, links down and up, faults).

How: an aiohttp server in the root namespace, bound to loopback only, that polls what
a run already exposes (its run directory's status file and logs, the controller's API,
the services' control sockets) once a second and pushes a snapshot and the new events
to every open page by server-sent events — at most one snapshot a second and
EVENTS_PER_S events a second, however busy the network. Changes (a NAT's RFC 4787
behaviour) need the token printed on the terminal that started the view.

`Snapshot` gathers, `EventTail` follows the logs (both pure apart from reading files
and sockets, and testable without a network); `make_app` is the web layer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from aiohttp import web

from infralab.labs import Live
from topologies import Topology

WEB = Path(__file__).resolve().parent / "web"
POLL_S = 1.0  # a snapshot at most once a second
LINK_POLL_S = 2.0  # interface counters (one ovs-vsctl call) every two seconds
LABS_POLL_S = 5.0  # the labs' checkers (they read logs) every five seconds
HUB_TASK = web.AppKey("hub", asyncio.Task)  # the poller, in the application's state
DECISIONS = 10  # the GSLB's last decisions shown
NAT_STATS_S = 10.0  # the NAT flows' counters (a flow-stats request) every ten seconds
EVENTS_PER_S = 50  # events passed on to pages per second; beyond that, counted
TABLE_ROWS = 300  # NAT rows and leases per server sent to the page (the count is exact)
LOGS = {  # a run's logs the event stream follows: file (under the run dir) -> source
    "nat.jsonl": "nat",
    "faults.jsonl": "fault",
    "supervisor.jsonl": "supervisor",  # services and the controller restarted
}
SERVICE_LOGS = {"dhcp": "dhcp.jsonl"}  # service kind -> the log it writes (its --log)


# ---- the event stream ------------------------------------------------------------------------
@dataclass
class EventTail:
    """New lines of JSON-lines logs since the last look, as page events."""

    files: dict[Path, str]  # log file -> source name shown on the page
    offsets: dict[Path, int] = field(default_factory=dict)
    skipped: int = 0

    def start_at_end(self) -> None:
        """Only what happens from now on (a page opened late sees the snapshot)."""
        for f in self.files:
            try:
                self.offsets[f] = f.stat().st_size
            except OSError:
                self.offsets[f] = 0

    def read(self, limit: int) -> list[dict]:
        out: list[dict] = []
        for f, source in self.files.items():
            try:
                with open(f, "rb") as fh:
                    fh.seek(self.offsets.get(f, 0))
                    data = fh.read(1 << 20)
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # whole lines only: the writer may be mid-line
            self.offsets[f] = self.offsets.get(f, 0) + end
            for rec in Live.jsonl(data[:end].decode(errors="replace")):
                if len(out) >= limit:
                    self.skipped += 1
                    continue
                out.append(page_event(source, rec))
        return out


def page_event(source: str, rec: dict) -> dict:
    """One log record as the page shows it: time, source, kind and a line of text."""
    kind = str(rec.get("event") or rec.get("kind") or rec.get("what") or "")
    skip = {"time", "event", "kind", "what", "mono"}
    text = " ".join(f"{k}={v}" for k, v in rec.items() if k not in skip and v not in ("", None))
    return {"time": rec.get("time", time.time()), "source": source, "kind": kind,
            "text": text[:300]}


def diff_events(before: dict, after: dict) -> list[dict]:
    """Events the snapshots imply: links down and up, routers ready or not, GSLB members
    turning healthy or not."""
    if not before:  # the first snapshot: what already was is no event
        return []
    now = time.time()
    out = []
    down0, down1 = set(before.get("links_down", [])), set(after.get("links_down", []))
    for link in sorted(down1 - down0):
        out.append({"time": now, "source": "link", "kind": "down", "text": link})
    for link in sorted(down0 - down1):
        out.append({"time": now, "source": "link", "kind": "up", "text": link})
    r0, r1 = before.get("routers", {}), after.get("routers", {})
    for name in sorted(r1):
        if name in r0 and r0[name].get("ready") != r1[name].get("ready"):
            out.append({"time": now, "source": "controller",
                        "kind": "ready" if r1[name].get("ready") else "not ready",
                        "text": name})
    g0 = {(h, p, m): v.get("state") for h, pools in before.get("gslb", {}).items()
          for p, ms in pools.items() for m, v in ms.items()}
    for h, pools in after.get("gslb", {}).items():
        for p, ms in pools.items():
            for m, v in ms.items():
                was = g0.get((h, p, m))
                if was is not None and was != v.get("state"):
                    out.append({"time": now, "source": "gslb", "kind": str(v.get("state")),
                                "text": f"{h}: pool {p} member {m} ({v.get('address')}): "
                                        f"{v.get('last', '')}"})
    return out


# ---- the snapshot ----------------------------------------------------------------------------
def link_rates(prev: dict[str, tuple[float, int, int]], now: float,
               stats: dict[str, tuple]) -> tuple[dict[str, dict], dict]:
    """Per interface packets/s and bytes/s (received + sent) since the previous reading;
    returns (rates, the reading to keep)."""
    rates, keep = {}, {}
    for name, (pkts, octets, *_) in stats.items():
        keep[name] = (now, pkts, octets)
        p = prev.get(name)
        if p is not None and now > p[0]:
            dt = now - p[0]
            rates[name] = {"pps": round(max(0, pkts - p[1]) / dt, 1),
                           "bps": round(max(0, octets - p[2]) * 8 / dt)}
    return rates, keep


def last_lines(path: Path, n: int) -> list[dict]:
    """The last `n` JSON lines of a log, read from its end (a busy log is large)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 300 * n))
            lines = f.read().splitlines()[-n:]
    except OSError:
        return []
    return Live.jsonl(b"\n".join(lines).decode(errors="replace"))  # (the first may be cut)


def ovs_interface_stats() -> dict[str, tuple[int, int, bool]]:
    """name -> (packets, bytes, link up), received plus sent, of every OVS interface (one
    call; OVS refreshes the counters every few seconds, the link state at once)."""
    r = subprocess.run(["ovs-vsctl", "--timeout=2", "--format=json",
                        "--columns=name,statistics,link_state", "list", "Interface"],
                       capture_output=True, text=True, timeout=5)
    if r.returncode:
        return {}
    out = {}
    for name, stats, state in json.loads(r.stdout).get("data", []):
        counters = dict(stats[1]) if isinstance(stats, list) and stats[0] == "map" else {}
        out[name] = (counters.get("rx_packets", 0) + counters.get("tx_packets", 0),
                     counters.get("rx_bytes", 0) + counters.get("tx_bytes", 0),
                     state != "down")
    return out


class Snapshot:
    """What the page shows, gathered from one run's directory, its controller's API and
    its services' control sockets."""

    def __init__(self, rundir: Path) -> None:
        self.live = Live(rundir)
        self.rundir = Path(rundir)
        manifest = json.loads((self.rundir / "manifest.json").read_text())
        self.topology = manifest.get("topology", "")
        self.services = sorted(p.split(":", 1)[1] for p in manifest.get("processes", {})
                               if p.startswith("service:"))
        try:
            self.ports = json.loads((self.rundir / "ports.json").read_text())
        except (OSError, ValueError):
            self.ports = []
        self._link_prev: dict[str, tuple[float, int, int]] = {}
        self._link_at = self._nat_stats_at = float("-inf")
        self._labs: list[dict] = []
        self._unplugged: list[str] = []
        self._rates: dict[str, dict] = {}

    def labels(self, kind: str) -> list[tuple[str, Path]]:
        """(host, control socket) of every service named `kind` (HOST.KIND)."""
        return [(s.split(".", 1)[0], self.rundir / "services" / s / "control")
                for s in self.services if s.split(".", 1)[1:] == [kind]]

    def gather(self, now: float, link_stats=ovs_interface_stats) -> dict:
        st = self.live.status()
        routes: dict = {}
        if st.get("api"):
            try:
                routes = self.live.api("/routes")
            except (OSError, ValueError):
                routes = {}
        routing = routes.get("routing") or st.get("routing") or {}
        routers = {n: {"ready": bool(r.get("ready")), "neighbors": sorted(r.get("neighbors", {})),
                       "counters": r.get("counters", {}),
                       "nat": bool(r.get("nat")), "relay": bool(r.get("relay"))}
                   for n, r in st.get("routers", {}).items()}
        out: dict[str, Any] = {
            "topology": self.topology, "time": time.time(), "routers": routers,
            "routes": {n: t[:TABLE_ROWS] for n, t in routes.get("routers", {}).items()},
            "services": {s.split(".", 1)[0]: [] for s in self.services},
            "nat": {}, "leases": {}, "gslb": {}, "decisions": {}, "caches": {}, "links": {},
        }
        for s in self.services:
            out["services"][s.split(".", 1)[0]].append(s.split(".", 1)[1])
        if st.get("api"):
            # the switches' counters (a flow-stats request, costly for the controller under
            # load) only every NAT_STATS_S; the table itself every poll, its first rows
            fresh = now - self._nat_stats_at >= NAT_STATS_S
            self._nat_stats_at = now if fresh else self._nat_stats_at
            try:
                for name, n in self.live.api(f"/nat?stats={int(fresh)}"
                                             f"&limit={TABLE_ROWS}").items():
                    rows = n.get("table", [])
                    out["nat"][name] = {"interfaces": n.get("interfaces", {}),
                                        "counters": n.get("counters", {}), "rows": rows,
                                        "count": n.get("table_count", len(rows))}
            except (OSError, ValueError):
                pass
        for host, ctl in self.labels("dhcp"):
            rows = self._ask(ctl, "leases")
            if isinstance(rows, list):
                stats = self._ask(ctl, "stats")
                out["leases"][host] = {"rows": rows[:TABLE_ROWS], "count": len(rows),
                                       "free": stats.get("free", {})
                                       if isinstance(stats, dict) else {}}
        for host, ctl in self.labels("gslb"):
            status = self._ask(ctl, "status")
            if isinstance(status, dict):
                out["gslb"][host] = status.get("pools", {})
            recent = last_lines(ctl.parent / "decisions.jsonl", DECISIONS)
            out["decisions"][host] = [d for d in recent if "name" in d][::-1]
        for host, ctl in self.labels("resolver"):
            rows = self._ask(ctl, "cache")
            if isinstance(rows, list):
                out["caches"][host] = {"rows": rows[:TABLE_ROWS], "count": len(rows)}
        if now - self._link_at >= LINK_POLL_S:
            self._link_at = now
            try:
                reading = link_stats()
                self._rates, self._link_prev = link_rates(self._link_prev, now, reading)
                self._unplugged = sorted({"--".join(sorted([p["router"], p["peer"]]))
                                          for p in self.ports
                                          if not reading.get(p["intf"], (0, 0, True))[2]})
            except (OSError, ValueError, subprocess.SubprocessError):
                self._rates, self._unplugged = {}, []
        # what the controller reports down, and links set down at a router's port (a host
        # unplugged, `link A B down`)
        out["links_down"] = sorted({self._link_name(x) for x in routing.get("down_links", [])}
                                   | set(self._unplugged))
        out["labs"] = self._labs  # (checked apart: Hub.run, every LABS_POLL_S)
        for p in self.ports:  # a router port's rate, by router and peer, and by subnet
            r = self._rates.get(p["intf"])
            if r is None:
                continue
            out["links"][f"{p['router']}--{p['peer']}"] = r
            agg = out["links"].setdefault(f"{p['router']}--{p['subnet']}", {"pps": 0, "bps": 0})
            if agg is not r:
                agg["pps"] = round(agg["pps"] + r["pps"], 1)
                agg["bps"] += r["bps"]
        return out

    def _link_name(self, down: Any) -> str:
        """The controller's (router, OpenFlow port) of a link down, as ROUTER--PEER in
        name order (the peer from ports.json), e.g. ri--rs."""
        router, port = (down + [None, None])[:2] if isinstance(down, list) else (down, None)
        peer = next((p["peer"] for p in self.ports
                     if p["router"] == router and p.get("port") == port), None)
        return "--".join(sorted([str(router), peer])) if peer else f"{router} port {port}"

    def labs(self) -> list[dict]:
        """Every lab on this run's topology, checked (what `lab check` says)."""
        from infralab.labs import LABS

        out = []
        for lab in LABS.values():
            if lab.topology != self.topology:
                continue
            steps = [{"step": i, "title": t, "ok": ok, "why": why}
                     for i, t, ok, why in lab.run(self.live)]
            out.append({"name": lab.name, "title": lab.title, "steps": steps})
        return out

    def _ask(self, ctl: Path, line: str) -> Any:
        """A service's answer on its control socket; None when it does not answer."""
        try:
            return self.live.control(ctl, line)
        except (OSError, ValueError):
            return None

    def log_files(self) -> dict[Path, str]:
        files = {self.rundir / name: source for name, source in LOGS.items()}
        for s in self.services:
            host, kind = s.split(".", 1)
            if kind in SERVICE_LOGS:
                files[self.rundir / "services" / s / SERVICE_LOGS[kind]] = f"{kind}@{host}"
        return files


# ---- paths and traces ----------------------------------------------------------------------
def route_path(interfaces: dict[str, list[IPv4Interface]], routes: dict[str, list[dict]],
               start: str, dst: IPv4Address) -> tuple[list[str], str]:
    """The routers a packet to `dst` crosses from router `start`, by the controller's
    routes (the first next hop of an ECMP set), and how it ends: "delivered" (`dst` is on
    a subnet of the last router), "no route" or "loop"."""
    owner = {i.ip: r for r, ifaces in interfaces.items() for i in ifaces}
    path, here = [start], start
    while True:
        if any(dst in i.network for i in interfaces.get(here, [])):
            return path, "delivered"
        best = None
        for r in routes.get(here, []):
            net = IPv4Network(r["prefix"])
            if dst in net and r.get("via") and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, IPv4Address(r["via"][0]))
        nxt = owner.get(best[1]) if best else None
        if nxt is None:
            return path, "no route"
        if nxt in path:
            return path + [nxt], "loop"
        path.append(nxt)
        here = nxt


def host_address(rundir: Path, topo: Topology, host: str) -> IPv4Address | None:
    """A host's address: the topology's, or the last one its DHCP client was bound to."""
    h = topo.hosts.get(host)
    if h is None:
        return None
    if h.address is not None:
        return h.address
    log = Live(rundir).service_file(f"{host}.dhcp-client", "client.jsonl")
    bound = [r["address"] for r in Live.jsonl(log) if r.get("event") == "bound"]
    return IPv4Interface(bound[-1]).ip if bound else None


def path_between(rundir: Path, topo: Topology, routes: dict[str, list[dict]], src: str,
                 dst: str) -> dict:
    """What the page highlights for `src` -> `dst` (hosts or routers)."""
    interfaces = {n: list(r.interfaces.values()) for n, r in topo.routers.items()}
    if src in topo.routers:
        first = src
    elif src in topo.hosts:
        first = next(iter(topo.subnets()[topo.hosts[src].subnet].routers))
    else:
        raise LookupError(f"no host or router {src!r}")
    if dst in topo.routers:
        ip: IPv4Address | None = interfaces[dst][0].ip
    else:
        ip = host_address(rundir, topo, dst)
    if ip is None:
        raise LookupError(f"no address for {dst!r}")
    routers, end = route_path(interfaces, routes, first, ip)
    return {"src": src, "dst": dst, "address": str(ip), "routers": routers, "end": end,
            "nodes": ([src] if src not in routers else []) + routers +
                     ([dst] if end == "delivered" and dst not in routers else [])}


def trace_in_host(rundir: Path, topo: Topology, host: str, name: str) -> dict:
    """`infralab dns trace NAME --json` run in `host`'s namespace; its steps, each server
    named by the host or router that has its address."""
    manifest = json.loads((rundir / "manifest.json").read_text())
    node = manifest.get("processes", {}).get(f"node:{host}")
    if node is None or host not in topo.hosts:
        raise LookupError(f"no host {host!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", name):
        raise ValueError(f"not a domain name: {name!r}")
    r = subprocess.run(["mnexec", "-a", str(node["pid"]), sys.executable, "-m", "infralab",
                        "dns", "trace", name, "--json"], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "INFRALAB_HOST": host})
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"dns trace: {(r.stderr or r.stdout).strip()[-300:]}") from None
    names = {str(h.address): n for n, h in topo.hosts.items() if h.address is not None}
    for step in out["steps"]:
        step["node"] = names.get(step["server"], "")
    return out


# ---- the web layer ---------------------------------------------------------------------------
class Hub:
    """The poller's latest snapshot and recent events, for every open page."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.state: dict = {}
        self.state_json = "{}"
        self.events: deque[tuple[int, dict]] = deque(maxlen=500)
        self.seq = 0
        self.changed = asyncio.Condition()
        self.tail = EventTail(snap.log_files())
        self.tail.start_at_end()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        labs: asyncio.Future | None = None
        labs_at = float("-inf")
        while True:
            t0 = time.monotonic()
            # the labs' checkers read whole logs (slow under load): beside the snapshots,
            # never in their way
            if labs is not None and labs.done():
                if labs.exception() is None:
                    self.snap._labs = labs.result()
                labs = None
            if labs is None and t0 - labs_at >= LABS_POLL_S:
                labs_at, labs = t0, loop.run_in_executor(None, self.snap.labs)
            try:
                state = await loop.run_in_executor(None, self.snap.gather, t0)
                new = await loop.run_in_executor(None, self.tail.read, EVENTS_PER_S)
            except Exception as e:  # a poll that fails is shown, and the next one tried
                state, new = dict(self.state, error=repr(e)), []
            new = diff_events(self.state, state) + new
            text = json.dumps(state, sort_keys=True, default=str)
            async with self.changed:
                if text != self.state_json:
                    self.state, self.state_json = state, text
                for ev in new:
                    self.seq += 1
                    self.events.append((self.seq, ev))
                self.changed.notify_all()
            await asyncio.sleep(max(0.05, POLL_S - (time.monotonic() - t0)))


def make_app(snap: Snapshot, token: str, topology_svg: str, topo: Topology | None = None):
    """The aiohttp application: the page, its files, the SSE stream, the API."""
    hub = Hub(snap)

    @web.middleware
    async def loopback_only(request, handler):
        # Only this machine (and no DNS-rebinding page elsewhere) may talk to the view.
        peer = request.remote or ""
        host = request.host.rsplit(":", 1)[0].strip("[]")
        if peer not in ("127.0.0.1", "::1") or host not in ("127.0.0.1", "localhost", "::1"):
            raise web.HTTPForbidden(text="infralab view answers loopback only\n")
        return await handler(request)

    async def index(_request):
        return web.FileResponse(WEB / "index.html")

    async def svg(_request):
        return web.Response(text=topology_svg, content_type="image/svg+xml")

    async def facts(_request):  # (addresses and rules the compact drawing leaves out)
        from infralab.draw import facts as topology_facts

        return web.json_response(topology_facts(topo) if topo is not None else {})

    async def state(_request):
        return web.Response(text=hub.state_json, content_type="application/json")

    async def events(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        sent_state, seq = "", hub.seq
        try:
            while True:
                async with hub.changed:
                    await hub.changed.wait_for(
                        lambda s=sent_state, n=seq: hub.state_json != s or hub.seq != n)
                    text, batch = hub.state_json, [e for s, e in hub.events if s > seq]
                    seq = hub.seq
                if text != sent_state:
                    await resp.write(f"event: state\ndata: {text}\n\n".encode())
                    sent_state = text
                if batch:
                    await resp.write(f"event: log\ndata: {json.dumps(batch)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def set_nat(request):
        if not hmac.compare_digest(request.headers.get("X-Infralab-Token", ""), token):
            raise web.HTTPForbidden(text="a change needs the token printed by infralab view\n")
        router, iface = request.match_info["router"], request.match_info["iface"]
        q = "&".join(f"{k}={request.query[k]}" for k in ("mapping", "filtering")
                     if k in request.query)
        try:
            answer = _post(snap, f"/nat/{router}/{iface}?{q}")
        except (OSError, ValueError) as e:
            raise web.HTTPBadRequest(text=f"{e}\n") from e
        return web.json_response(answer)

    async def set_link_state(request):
        if not hmac.compare_digest(request.headers.get("X-Infralab-Token", ""), token):
            raise web.HTTPForbidden(text="a change needs the token printed by infralab view\n")
        from emulation.linkstate import set_link

        a, b = request.match_info["a"], request.match_info["b"]
        state = request.query.get("state", "")
        if state not in ("up", "down"):
            raise web.HTTPBadRequest(text="state: up or down\n")
        if json.loads((snap.rundir / "manifest.json").read_text()).get("remote"):
            raise web.HTTPBadRequest(text="this run spans servers: use its prompt\n")
        loop = asyncio.get_running_loop()
        try:
            ends = await loop.run_in_executor(None, set_link, snap.rundir, a, b, state == "up")
        except (LookupError, OSError, subprocess.SubprocessError) as e:
            raise web.HTTPBadRequest(text=f"{e}\n") from e
        return web.json_response({"link": f"{a}--{b}", "state": state, "interfaces": ends})

    async def path(request):
        if topo is None:
            raise web.HTTPNotFound(text="no topology to find paths in\n")
        try:
            answer = path_between(snap.rundir, topo, hub.state.get("routes", {}),
                                  request.query.get("src", ""), request.query.get("dst", ""))
        except (LookupError, ValueError) as e:
            raise web.HTTPBadRequest(text=f"{e}\n") from e
        return web.json_response(answer)

    async def trace(request):
        if topo is None:
            raise web.HTTPNotFound(text="no topology to trace in\n")
        host, name = request.query.get("host", ""), request.query.get("name", "")
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(None, trace_in_host, snap.rundir, topo, host,
                                                name)
        except (LookupError, ValueError, RuntimeError, OSError,
                subprocess.SubprocessError) as e:
            raise web.HTTPBadRequest(text=f"{e}\n") from e
        return web.json_response(answer)

    async def start_hub(app):
        app[HUB_TASK] = asyncio.get_running_loop().create_task(hub.run())

    async def stop_hub(app):
        app[HUB_TASK].cancel()

    app = web.Application(middlewares=[loopback_only])
    app.router.add_get("/", index)
    app.router.add_get("/topology.svg", svg)
    app.router.add_get("/topology.json", facts)
    app.router.add_get("/state", state)
    app.router.add_get("/events", events)
    app.router.add_post("/nat/{router}/{iface}", set_nat)
    app.router.add_post("/link/{a}/{b}", set_link_state)
    app.router.add_get("/path", path)
    app.router.add_get("/trace", trace)
    app.router.add_static("/static/", WEB)
    app.on_startup.append(start_hub)
    app.on_cleanup.append(stop_hub)
    return app


def _post(snap: Snapshot, path: str) -> Any:
    from emulation.build import api_request

    base = snap.live.status().get("api")
    if not base:
        raise OSError("the controller has no API")
    return api_request(base, path, "POST")


class PageReader:
    """An open page, as a browser's EventSource sees the view: follows /events in a
    thread and notes when each snapshot arrived and how many events came (benches and
    tests measure the view's responsiveness with it)."""

    def __init__(self, url: str) -> None:
        import urllib.request

        self.snapshots: list[float] = []
        self.events = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._resp = urllib.request.urlopen(url + "events", timeout=30)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self._resp.read1(65536)
            except (OSError, AttributeError, ValueError):  # closed under it
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            buf += chunk
            *messages, buf = buf.split(b"\n\n")
            for m in messages:
                kind, _, data = m.partition(b"\ndata: ")
                if kind == b"event: state":
                    self.snapshots.append(time.monotonic())
                elif kind == b"event: log":
                    self.events += len(json.loads(data))

    def longest_gap(self) -> float:
        """The longest wait between two snapshots (one a second is the aim)."""
        t = self.snapshots
        return max((b - a for a, b in zip(t, t[1:], strict=False)), default=0.0)

    def close(self) -> None:
        self._stop.set()
        self._resp.close()
        self._thread.join(5)


@dataclass
class View:
    """A running view: `url`, `token`, and `stop()`."""

    url: str
    token: str
    stop: Any


def serve(rundir: Path, topo: Topology, port: int = 0, token: str | None = None) -> View:
    """Start the view of `topo`'s run in a thread of this process (loopback, `port` 0:
    any free one)."""
    from infralab.draw import svg_text

    topology_svg = svg_text(topo, compact=True)  # (addresses: the side panel)
    token = token or secrets.token_urlsafe(12)
    ready: dict[str, Any] = {}
    started = threading.Event()

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(make_app(Snapshot(rundir), token, topology_svg, topo),
                               access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", port)
        loop.run_until_complete(site.start())
        ready["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready["loop"], ready["runner"] = loop, runner
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, name="infralab-view", daemon=True)
    thread.start()
    if not started.wait(15):
        raise RuntimeError("infralab view did not start")

    def stop() -> None:
        ready["loop"].call_soon_threadsafe(ready["loop"].stop)
        thread.join(10)

    return View(f"http://127.0.0.1:{ready['port']}/", token, stop)
