"""GSLB-HEALTH: the probes against real sockets on loopback. Each check type must fail
for the reason it exists (refused, silent, wrong status, wrong body, hanging server) and
pass only on the real thing; the probe never raises and never outlives its timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.gslb.config import Check
from services.gslb.probes import http_check, run_check, tcp_connect
from services.web.server import serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def web(mode: str = "ok") -> Iterator[int]:
    """`infralab web serve` on loopback, told how to fail."""
    port = free_port()
    srv = serve(("127.0.0.1", port), "w1", "dc1")
    srv.state.mode, srv.state.delay = mode, 3.0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield port
    finally:
        srv.shutdown()
        srv.server_close()


def check(**kw) -> Check:
    return Check(**{"type": "http", "path": "/health", "expect": 200, "body": "ok",
                    "timeout": 0.5, **kw})


def run(coro):
    return asyncio.run(coro)


def test_gslb_health_tcp_check_passes_on_a_listener_fails_when_refused_or_silent():
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        ok = run(tcp_connect("127.0.0.1", lst.getsockname()[1], 0.5))
    assert ok.ok and ok.rtt_ms is not None and "connected" in ok.detail
    refused = run(tcp_connect("127.0.0.1", free_port(), 0.5))
    assert not refused.ok and "refused" in refused.detail.lower(), refused
    with socket.socket() as full:  # a listener whose backlog is full never completes
        full.bind(("127.0.0.1", 0))  # the handshake: the probe must give up in time
        full.listen(0)
        port = full.getsockname()[1]
        hogs = []
        for _ in range(3):
            try:
                hogs.append(socket.create_connection(("127.0.0.1", port), timeout=0.2))
            except OSError:
                break  # the backlog is full: SYNs are dropped from here on
        t0 = time.monotonic()
        silent = run(tcp_connect("127.0.0.1", port, 0.3))
        took = time.monotonic() - t0
        for h in hogs:
            h.close()
    assert not silent.ok and "no connection in 0.3s" in silent.detail, silent
    assert took < 1.5, took  # bounded by its timeout


def test_gslb_health_http_check_status_and_body_must_both_match():
    with web("ok") as port:
        good = run(http_check("127.0.0.1", check(port=port)))
        wrong_body = run(http_check("127.0.0.1", check(port=port, body="healthy")))
        wrong_status = run(http_check("127.0.0.1", check(port=port, expect=204)))
    assert good.ok and "200" in good.detail, good
    assert not wrong_body.ok and "body lacks 'healthy'" in wrong_body.detail, wrong_body
    assert not wrong_status.ok and "status 200, want 204" in wrong_status.detail
    with web("error") as port:  # /admin/mode?set=error: the server answers 500
        err = run(http_check("127.0.0.1", check(port=port)))
    assert not err.ok and "status 500" in err.detail, err
    with web("degraded") as port:  # 200, but the body is not the one the check wants
        deg = run(http_check("127.0.0.1", check(port=port)))
    assert not deg.ok and "body lacks 'ok'" in deg.detail, deg


def test_gslb_health_http_check_times_out_on_a_hanging_server_and_a_closed_port():
    with web("slow") as port:  # answers after 3 s
        t0 = time.monotonic()
        slow = run(http_check("127.0.0.1", check(port=port, timeout=0.4)))
        took = time.monotonic() - t0
    assert not slow.ok and "no answer in 0.4s" in slow.detail and took < 1.5, (slow, took)
    with web("down") as port:  # accepts, then shuts the connection
        down = run(http_check("127.0.0.1", check(port=port)))
    assert not down.ok, down
    closed = run(http_check("127.0.0.1", check(port=free_port())))
    assert not closed.ok, closed


def test_gslb_health_http_check_reads_the_load_the_server_reports():
    with web("ok") as port:
        got = run(http_check("127.0.0.1", check(port=port, load_path="/status")))
    assert got.ok and got.load == 0, got


def test_gslb_health_run_check_dispatches_by_type():
    with web("ok") as port:
        tcp = run(run_check(None, "127.0.0.1", Check(type="tcp", port=port, timeout=0.5)))
        http = run(run_check(None, "127.0.0.1", check(port=port)))
    assert tcp.ok and tcp.detail.startswith("tcp") and http.ok and http.detail.startswith("http")
    none = run(run_check(None, "127.0.0.1", Check(type="none")))
    assert none.ok and none.detail == "no check configured"


def test_web_server_answers_several_sites_by_name_on_one_address():
    """One IP, many names: the Host: header picks the site (`--vhost NAME=SITE`); any
    other name, or the bare address, gets the server's own answer."""
    import urllib.request

    port = free_port()
    srv = serve(("127.0.0.1", port), "web1a", "dc1",
                {"old.example.com": "old-site", "Shop.Apps.Example.com.": "shop"})
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def get(host: str) -> str:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=3) as r:
            return r.read().decode()
    try:
        assert get("old.example.com") == "old-site on web1a 127.0.0.1\n"
        assert get(f"shop.apps.example.com:{port}") == "shop on web1a 127.0.0.1\n"
        assert get("web1a.example.com") == "web1a dc1 127.0.0.1\n"
        assert get(f"127.0.0.1:{port}") == "web1a dc1 127.0.0.1\n"
    finally:
        srv.shutdown()
        srv.server_close()
