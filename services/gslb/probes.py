"""Real probes on the wire: ICMP echo, TCP connect, HTTP GET, and asking a site's agent
for its RTT to a resolver. Each takes a timeout and returns a Probe, never raises, so a
hanging server costs one probe its timeout and nothing else."""

from __future__ import annotations

import asyncio
import json
import os
import time

from services.common.pinger import Pinger, Probe
from services.gslb.config import Check


def _why(e: OSError) -> str:
    """'Connection refused', not asyncio's 'Connect call failed (...)'."""
    return os.strerror(e.errno) if e.errno else str(e)


async def tcp_connect(addr: str, port: int, timeout: float) -> Probe:
    t0 = time.monotonic()
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
    except TimeoutError:
        return Probe(False, f"tcp {port}: no connection in {timeout}s")
    except OSError as e:
        return Probe(False, f"tcp {port}: {_why(e)}")
    rtt = (time.monotonic() - t0) * 1000
    w.close()
    return Probe(True, f"tcp {port}: connected in {rtt:.1f}ms", rtt)


async def http_get(addr: str, port: int, path: str, timeout: float) -> tuple[int, bytes, float]:
    """(status, body, connect RTT ms); raises OSError/TimeoutError/ValueError."""
    async def go() -> tuple[int, bytes, float]:
        t0 = time.monotonic()
        r, w = await asyncio.open_connection(addr, port)
        rtt = (time.monotonic() - t0) * 1000
        try:
            w.write(f"GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: infralab-gslb\r\n\r\n"
                    .encode())
            data = b""
            while len(data) < 65536:  # HTTP/1.0: the answer ends when the server closes
                chunk = await r.read(65536 - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            w.close()
        head, _, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP response: {head[:40]!r}")
        return int(parts[1]), body, rtt

    return await asyncio.wait_for(go(), timeout)


async def http_check(addr: str, check: Check) -> Probe:
    try:
        status, body, rtt = await http_get(addr, check.port, check.path, check.timeout)
    except TimeoutError:
        return Probe(False, f"http {check.path}: no answer in {check.timeout}s")
    except (OSError, ValueError) as e:
        return Probe(False, f"http {check.path}: {_why(e) if isinstance(e, OSError) else e}")
    if status != check.expect:
        return Probe(False, f"http {check.path}: status {status}, want {check.expect}")
    if check.body is not None and check.body.encode() not in body:
        return Probe(False, f"http {check.path}: body lacks {check.body!r}")
    load = None
    if check.load_path:
        try:
            _s, lb, _ = await http_get(addr, check.port, check.load_path, check.timeout)
            load = int(json.loads(lb)["active"])
        except Exception:
            load = None
    return Probe(True, f"http {check.path}: {status} in {rtt:.1f}ms", rtt, load)


async def run_check(pinger: Pinger, addr: str, check: Check) -> Probe:
    if check.type == "icmp":
        return await pinger.ping(addr, check.timeout)
    if check.type == "tcp":
        return await tcp_connect(addr, check.port, check.timeout)
    if check.type == "http":
        return await http_check(addr, check)
    return Probe(True, "no check configured")


async def agent_rtt(agent: tuple[str, int], target: str, timeout: float) -> float | None:
    """Ask a site agent (`infralab web serve`) for its measured RTT to `target`, in ms."""
    try:
        status, body, _ = await http_get(agent[0], agent[1], f"/rtt?to={target}", timeout)
        return float(json.loads(body)["rtt_ms"]) if status == 200 else None
    except Exception:
        return None
