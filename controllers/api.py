"""The controller's small HTTP/JSON API (NAT-TABLE): what `infralab nat show` reads.

    GET  /nat                   every NAT router: counters, behaviours, the live table
    GET  /nat/<router>          one router
         ?stats=0 (counters as last read, no flow-stats request) &limit=N (rows)
    POST /nat/<router>/<iface>?mapping=M&filtering=F   change RFC 4787 behaviour live
    POST /nat/<router>/<iface>/fill | unfill   hold every free pool address (a fault) or
                                give them back
    GET  /relay/<router>        the DHCP relay's counters and limits
    POST /relay/<router>?defence=on|off   switch the starvation defence live
    POST /relay/<router>?snooping=on|off  switch rogue-server snooping live
    POST /relay/<router>?relay=on|off     switch the relay itself live
    GET  /status                the controller's status document
    GET  /routes[/<router>]     each router's routes (ROUTE-SPF) and the links that are down
    GET  /routing               the routing state alone: mode, links down, recomputes

Listens on the root namespace's loopback only (never inside the emulation) and runs in
the controller's own green threads, so it reads the same state the handlers change. The
transport is eventlet's WSGI server (os-ken's hub.WSGIServer) and WebOb, as os-ken's
REST apps use; `handle` is pure apart from `app`'s methods and is tested without a socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from topologies.natconfig import BEHAVIOURS


def handle(app: Any, method: str, target: str) -> tuple[int, Any]:
    """(HTTP status, JSON body) for one request; pure apart from `app`'s methods."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if method == "GET" and parts == ["status"]:
        return 200, app.status_doc()
    if method == "GET" and parts == ["routing"]:
        return 200, app.routing_view()
    if method == "GET" and parts[:1] == ["routes"] and len(parts) <= 2:
        view = app.routes_view(parts[1] if len(parts) == 2 else None)
        if len(parts) == 2 and not view["routers"]:
            return 404, {"error": f"no router {parts[1]!r}"}
        return 200, view
    if method == "GET" and parts[:1] == ["nat"] and len(parts) <= 2:
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            return 400, {"error": "limit: a number of rows"}
        view = app.nat_view(parts[1] if len(parts) == 2 else None,
                            fresh=q.get("stats", "1") != "0", limit=limit)
        if len(parts) == 2 and not view:
            return 404, {"error": f"no NAT on router {parts[1]!r}"}
        return 200, view
    if method == "POST" and parts[:1] == ["nat"] and len(parts) == 3:
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        for k in ("mapping", "filtering"):
            if k in q and q[k] not in BEHAVIOURS:
                return 400, {"error": f"{k}: one of {', '.join(BEHAVIOURS)}"}
        try:
            return 200, app.nat_set(parts[1], parts[2], q.get("mapping"), q.get("filtering"))
        except KeyError as e:
            return 404, {"error": str(e.args[0])}
    if method == "POST" and parts[:1] == ["nat"] and len(parts) == 4 and \
            parts[3] in ("fill", "unfill"):
        try:
            return 200, app.nat_fill(parts[1], parts[2], parts[3] == "fill")
        except KeyError as e:
            return 404, {"error": str(e.args[0])}
    if parts[:1] == ["relay"] and len(parts) == 2:
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        switches = {k: q.get(k) for k in ("defence", "snooping", "relay") if k in q}
        if method == "POST" and (not switches or
                                 any(v not in ("on", "off") for v in switches.values())):
            return 400, {"error": "defence=on|off, snooping=on|off and/or relay=on|off"}
        onoff = {("enabled" if k == "relay" else k): v == "on"
                 for k, v in switches.items()} if method == "POST" else {}
        try:
            return 200, app.relay(parts[1], **onoff)
        except KeyError as e:
            return 404, {"error": str(e.args[0])}
    return 404, {"error": f"no such endpoint: {method} {url.path}"}


def wsgi_app(app: Any) -> Callable:
    """The API as a WSGI application (WebOb, as os-ken's own REST apps use): every request
    goes to `handle`, and a bug answers 500 instead of taking the controller down."""
    from webob import Request, Response

    def application(environ: dict, start_response: Callable) -> Any:
        req = Request(environ)
        try:
            code, body = handle(app, req.method, req.path_qs)
        except Exception as e:
            code, body = 500, {"error": f"{type(e).__name__}: {e}"}
        resp = Response(body=json.dumps(body, indent=1).encode(), status=code,
                        content_type="application/json", charset=None)
        return resp(environ, start_response)

    return application


def serve_api(app: Any, host: str, port: int) -> None:
    """Serve on eventlet's WSGI server, the one os-ken's hub.WSGIServer runs, in the
    controller's green threads (without its access log: the live view polls)."""
    import eventlet
    import eventlet.wsgi

    eventlet.wsgi.server(eventlet.listen((host, port)), wsgi_app(app), log_output=False)
