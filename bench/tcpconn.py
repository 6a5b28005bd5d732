"""Bounded TCP connection-rate load: `server PORT` accepts, answers one byte and closes;
`client HOST PORT SECONDS CONCURRENCY` opens connections back to back from CONCURRENCY
workers for SECONDS (at most 600) and prints JSON {"connections": n, "errors": e, "seconds": s};
`latency HOST PORT COUNT` times COUNT connection set-ups one by one (p50/p99 in ms).

Both ends are the same code for our router and for the peer, so the ratio is fair."""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _serve(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(1)
            writer.write(b"k")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=1024)
    async with server:
        await server.serve_forever()


async def _client(host: str, port: int, seconds: float, concurrency: int) -> dict:
    done = errors = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.monotonic() < end:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                writer.write(b"x")
                await writer.drain()
                await asyncio.wait_for(reader.readexactly(1), 2)
                writer.close()
                done += 1
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"connections": done, "errors": errors, "seconds": time.monotonic() - t0}


async def _latency(host: str, port: int, count: int) -> dict:
    """`count` connections one after another, each from a new source port: the first
    packet of each meets no flow (a new NAT binding), so this times flow setup."""
    times = []
    errors = 0
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            times.append(time.perf_counter() - t0)
            writer.write(b"x")
            await writer.drain()
            await asyncio.wait_for(reader.readexactly(1), 2)
            writer.close()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            errors += 1
    times.sort()
    pick = (lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000) if times \
        else (lambda q: float("nan"))
    return {"count": len(times), "errors": errors, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def main(argv: list[str]) -> int:
    if argv[:1] == ["server"]:
        asyncio.run(_serve(int(argv[1])))
        return 0
    if argv[:1] == ["client"]:
        host, port, seconds, conc = argv[1], int(argv[2]), float(argv[3]), int(argv[4])
        print(json.dumps(asyncio.run(_client(host, port, min(seconds, 600), min(conc, 512)))))
        return 0
    if argv[:1] == ["latency"]:
        host, port, count = argv[1], int(argv[2]), min(int(argv[3]), 5000)
        print(json.dumps(asyncio.run(_latency(host, port, count))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
