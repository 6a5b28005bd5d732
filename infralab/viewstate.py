"""What the live view shows, gathered from a run: the snapshot (routers, routes, NAT
tables, leases, GSLB pools and decisions, resolver caches, link rates, the labs' verdicts)
and the event stream followed from the logs the services already write; the trace and
path boxes' answers. Pure apart from reading files and sockets, so testable without a
network; `infralab.webview` serves it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from infralab.labs import Live
from topologies import Topology

POLL_S = 1.0  # a snapshot at most once a second
LINK_POLL_S = 2.0  # interface counters (one ovs-vsctl call) every two seconds
LABS_POLL_S = 5.0  # the labs' checkers (they read logs) every five seconds
DECISIONS = 10  # the GSLB's last decisions shown
NAT_STATS_S = 10.0  # the NAT flows' counters (a flow-stats request) every ten seconds
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
