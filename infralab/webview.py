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

What the page shows is gathered by `infralab.viewstate` (`Snapshot`, `EventTail`); this
module is the web layer: the poller that pushes it (`Hub`), the aiohttp application
(`make_app`), `serve`, and `PageReader`, a page's reader for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from infralab.viewstate import (  # noqa: F401 - the view's public names, re-exported
    DECISIONS,
    LABS_POLL_S,
    LINK_POLL_S,
    LOGS,
    NAT_STATS_S,
    POLL_S,
    SERVICE_LOGS,
    TABLE_ROWS,
    EventTail,
    Snapshot,
    diff_events,
    host_address,
    last_lines,
    link_rates,
    ovs_interface_stats,
    page_event,
    path_between,
    route_path,
    trace_in_host,
)
from topologies import Topology

WEB = Path(__file__).resolve().parent / "web"
HUB_TASK = web.AppKey("hub", asyncio.Task)  # the poller, in the application's state
EVENTS_PER_S = 50  # events passed on to pages per second; beyond that, counted




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
