"""A steady, bounded UDP stream for convergence measurements.

`send HOST PORT RATE SECONDS` sends RATE numbered datagrams a second for SECONDS (at most
120); `recv PORT SECONDS` counts them and prints JSON {"received", "lost", "max_gap_ms",
"gap_after_ms"}: the longest time without a delivery is the outage a failure caused (its
resolution is the send interval), `gap_after_ms` says when it began after the first packet.
The same code measures every router under test, so the figures compare fairly."""

from __future__ import annotations

import json
import socket
import sys
import time


def send(host: str, port: int, rate: int, seconds: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    interval = 1.0 / rate
    t0 = time.perf_counter()
    n = 0
    while True:
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        due = t0 + n * interval
        if now < due:
            time.sleep(due - now)
        try:
            s.sendto(n.to_bytes(8, "big"), (host, port))
        except OSError:
            pass  # no route for a moment: counted as lost at the receiver
        n += 1
    print(json.dumps({"sent": n}))


def recv(port: int, seconds: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)
    end = time.monotonic() + seconds
    seen: set[int] = set()
    first = last = None
    gap, gap_at = 0.0, 0.0
    while time.monotonic() < end:
        try:
            data = s.recv(64)
        except TimeoutError:
            continue
        now = time.monotonic()
        seen.add(int.from_bytes(data[:8], "big"))
        if first is None:
            first = now
        if last is not None and now - last > gap:
            gap, gap_at = now - last, last - first
        last = now
    top = max(seen) + 1 if seen else 0
    print(json.dumps({"received": len(seen), "lost": top - len(seen),
                      "max_gap_ms": round(gap * 1000, 2), "gap_after_ms": round(gap_at * 1000)}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"]:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), min(float(sys.argv[5]), 120))
    elif sys.argv[1:2] == ["recv"]:
        recv(int(sys.argv[2]), min(float(sys.argv[3]), 130))
    else:
        sys.exit(__doc__)
