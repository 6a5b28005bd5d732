"""Link delay and loss in user space: the kernel here has no netem.

A delay node sits in the middle of a link (`router -- dlyN -- router`, or host -- dlyN --
router) and repeats every Ethernet frame from one side to the other after `delay`,
dropping a `loss` share of them: to both ends it is a wire that is long (and lossy).
`DelayLine` is the pure part (a FIFO per direction, clock and randomness injected); `run`
is the packet loop over two AF_PACKET sockets. Constant delay keeps frames in order (also
across a change: a frame never leaves before the one queued ahead of it). SIGUSR1 makes it
read new settings from its `--settings` file (`infralab link set`: emulation/linkemu.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import socket
import time
from collections import deque

from topologies.model import delay_seconds

ETH_P_ALL = 0x0003


class DelayLine:
    """Frames in, the same frames out `delay` seconds later (minus the lost ones)."""

    def __init__(self, delay: float, loss_pct: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.delay = delay
        self.loss = loss_pct / 100.0
        self.rng = rng or random.Random()
        self.queue: deque[tuple[float, bytes]] = deque()
        self.passed = 0
        self.dropped = 0

    def push(self, frame: bytes, now: float) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.queue.append((now + self.delay, frame))

    def due(self, now: float) -> list[bytes]:
        out = []
        q = self.queue
        while q and q[0][0] <= now:
            out.append(q.popleft()[1])
        self.passed += len(out)
        return out

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None


def read_settings(path: str) -> tuple[float, float]:
    """(delay seconds, loss percent) from a settings file: {"delay": "80ms", "loss": 2}."""
    with open(path) as f:
        d = json.load(f)
    return delay_seconds(str(d.get("delay") or "0ms")), float(d.get("loss") or 0)


def run(a: str, b: str, delay: float, loss: float, seed: int | None = None,
        settings: str | None = None) -> None:
    """Repeat frames between interfaces `a` and `b` until SIGTERM/SIGINT."""
    socks = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        socks[name] = s
    rng = random.Random(seed)
    lines = {a: DelayLine(delay, loss, rng), b: DelayLine(delay, loss, rng)}  # by input side
    out_of = {a: socks[b], b: socks[a]}
    stop = []
    reload: list[int] = [1] if settings and os.path.exists(settings) else []  # a restart:
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # the live settings, not argv
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGUSR1, lambda *_: reload.append(1))
    fds = {socks[n].fileno(): n for n in socks}
    # a signal wakes the select below at once (Python would otherwise retry it, and a
    # frame arriving meanwhile would still take the old delay)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    print(f"delayline {a} <-> {b}: delay {delay * 1000:.1f}ms loss {loss}%", flush=True)
    while not stop:
        now = time.monotonic()
        dues = [t for t in (lines[a].next_due(), lines[b].next_due()) if t is not None]
        timeout = 0.0 if reload else max(0.0, min(dues) - now) if dues else 0.5
        try:
            ready, _, _ = select.select([*fds, wake_r], [], [], timeout)
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
        if reload and settings:  # (before the frames that came with it are queued)
            reload.clear()
            try:
                delay, loss = read_settings(settings)
            except (OSError, ValueError) as e:
                print(f"delayline: settings {settings} not read: {e}", flush=True)
            else:
                for line in lines.values():
                    line.delay, line.loss = delay, loss / 100.0
                print(f"delayline: now delay {delay * 1000:.1f}ms loss {loss}%", flush=True)
        now = time.monotonic()
        for fd in ready:
            if fd == wake_r:
                continue
            name = fds[fd]
            s = socks[name]
            for _ in range(64):
                try:
                    frame, addr = s.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == socket.PACKET_OUTGOING:  # our own transmission, seen again
                    continue
                lines[name].push(frame, now)
        now = time.monotonic()
        for name, line in lines.items():
            for frame in line.due(now):
                try:
                    out_of[name].send(frame)
                except OSError:
                    line.dropped += 1
    print(f"delayline: passed {lines[a].passed}+{lines[b].passed}, "
          f"dropped {lines[a].dropped}+{lines[b].dropped}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--delay", default="0ms")
    p.add_argument("--loss", type=float, default=0.0, help="percent of frames dropped")
    p.add_argument("--seed", type=int)
    p.add_argument("--settings", help="JSON file re-read on SIGUSR1 ({delay, loss})")
    args = p.parse_args(argv)
    run(args.a, args.b, delay_seconds(args.delay), args.loss, args.seed, args.settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
