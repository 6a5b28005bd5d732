"""`infralab web serve`: the data centres' web server and site agent.

GET /            "<name> <site> <address>" (which server answered: what clients check);
                 for a name given with --vhost NAME=SITE, "<SITE> on <name> <address>":
                 several sites by name on one address (the Host: header picks one)
GET /whoami      "<client address>:<port>": the address this server saw (NAT-HIDE)
GET /health      200 ok, or the failure it was told to show (see /admin/mode)
GET /status      JSON {"name", "site", "active", "served", "mode"}: the load it reports
GET /hold?s=N    keep the connection N seconds (a long download: load for least-conn)
GET /rtt?to=IP   the site agent: RTT from here to IP by ICMP echo, JSON {"rtt_ms"}
GET /admin/mode?set=ok|error|degraded|slow|down[&delay=S]   tell the server how to fail
                (error: 500; degraded: /health says 200 "degraded"; down: connections cut)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from services.common.pinger import Pinger

MODES = ("ok", "error", "degraded", "slow", "down")


class WebState:
    def __init__(self, name: str, site: str, address: str,
                 vhosts: dict[str, str] | None = None) -> None:
        self.vhosts = {k.lower().rstrip("."): v for k, v in (vhosts or {}).items()}
        self.name, self.site, self.address = name, site, address
        self.mode = "ok"
        self.delay = 5.0
        self.active = 0
        self.served = 0
        self.lock = threading.Lock()


def measure_rtt(target: str, count: int = 3, timeout: float = 1.0) -> float | None:
    """Lowest of `count` ICMP echo RTTs to `target`, in ms (None: no reply)."""
    async def go() -> float | None:
        p = Pinger()
        best = None
        for _ in range(count):
            r = await p.ping(target, timeout)
            if r.ok and r.rtt_ms is not None and (best is None or r.rtt_ms < best):
                best = r.rtt_ms
        return best

    return asyncio.run(go())


def handler_for(state: WebState):
    class Handler(BaseHTTPRequestHandler):
        server_version = "infralab-web"

        def log_message(self, fmt, *args) -> None:  # one line per request on stdout
            print(f"web {state.name}: {self.client_address[0]} {fmt % args}", flush=True)

        def _send(self, code: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", f"{state.name} {state.site}")
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a health check's timeout): nothing to tell it

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            qs = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with state.lock:
                state.active += 1
                state.served += 1
            try:
                self._route(url.path, qs)
            finally:
                with state.lock:
                    state.active -= 1

        def _route(self, path: str, qs: dict[str, str]) -> None:
            if path == "/whoami":
                return self._send(200, f"{self.client_address[0]}:{self.client_address[1]}\n")
            if path == "/admin/mode":
                mode = qs.get("set", "")
                if mode not in MODES:
                    return self._send(400, f"mode must be one of {', '.join(MODES)}\n")
                state.mode = mode
                state.delay = float(qs.get("delay", state.delay))
                print(f"web {state.name}: mode {mode}", flush=True)
                return self._send(200, f"mode {mode}\n")
            if path == "/status":
                return self._send(200, json.dumps({
                    "name": state.name, "site": state.site, "active": state.active - 1,
                    "served": state.served, "mode": state.mode}), "application/json")
            if path == "/rtt":
                try:
                    target = str(ipaddress.IPv4Address(qs.get("to", "")))
                except ValueError:
                    return self._send(400, "want /rtt?to=IPv4\n")
                rtt = measure_rtt(target)
                if rtt is None:
                    return self._send(504, json.dumps({"rtt_ms": None}), "application/json")
                return self._send(200, json.dumps({"rtt_ms": round(rtt, 3), "from": state.site,
                                                   "to": target}), "application/json")
            if path == "/hold":
                time.sleep(min(float(qs.get("s", "5")), 120))
            if state.mode == "down":  # the process is there, the service is not
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if state.mode == "slow":
                time.sleep(state.delay)
            if state.mode == "error" and path != "/":
                return self._send(500, "error (told to fail)\n")
            if path == "/health":  # degraded: a 200 whose body a body check must catch
                return self._send(200, "degraded\n" if state.mode == "degraded" else "ok\n")
            vhost = state.vhosts.get(self.headers.get("Host", "").rpartition(":")[0].lower()
                                     or self.headers.get("Host", "").lower())
            if vhost is not None:
                return self._send(200, f"{vhost} on {state.name} {state.address}\n")
            return self._send(200, f"{state.name} {state.site} {state.address}\n")

    return Handler


class WebServer(ThreadingHTTPServer):
    """The HTTP server with the state its handlers share (mode, load, counters)."""

    daemon_threads = True

    def __init__(self, listen: tuple[str, int], state: WebState) -> None:
        super().__init__(listen, handler_for(state))
        self.state = state


def serve(listen: tuple[str, int], name: str, site: str,
          vhosts: dict[str, str] | None = None) -> WebServer:
    return WebServer(listen, WebState(name, site, listen[0], vhosts))
