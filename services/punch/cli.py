"""`infralab punch rendezvous|peer`: UDP hole punching between hosts behind NATs."""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import sys
import time

from services.common.endpoint import endpoint_arg

from .protocol import Peer, Rendezvous


def cmd_rendezvous(args: argparse.Namespace) -> int:
    host, port = args.listen
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    r = Rendezvous()
    log = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"rendezvous listening on {host}:{port}", flush=True)
    try:
        while True:
            try:
                data, src = sock.recvfrom(2048)
            except OSError:  # e.g. an ICMP error for an earlier send: keep serving
                continue
            now = time.monotonic()
            out = r.handle(now, src, data)
            if log is not None:
                log.write(json.dumps({"time": round(time.time(), 3), "from": f"{src[0]}:{src[1]}",
                                      "message": data[:200].decode(errors="replace")}) + "\n")
            for dst, msg in out:
                _send(sock, msg, dst)
    except KeyboardInterrupt:
        return 130


def _send(sock: socket.socket, msg: bytes, dst: tuple[str, int]) -> None:
    try:
        sock.sendto(msg, dst)
    except OSError:  # unreachable now: the state machine retries or times out
        pass


def _pump(sock: socket.socket, peer: Peer) -> None:
    ready, _, _ = select.select([sock], [], [], 0.05)
    if ready:
        try:
            data, src = sock.recvfrom(2048)
        except OSError:  # ICMP error for an earlier punch (Linux reports it here)
            return
        for dst, msg in peer.receive(time.monotonic(), src, data):
            _send(sock, msg, dst)


def cmd_peer(args: argparse.Namespace) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.port))
    peer = Peer(args.name, args.peer, args.rendezvous, time.monotonic(), timeout=args.timeout)
    while not peer.done:
        for dst, msg in peer.tick(time.monotonic()):
            _send(sock, msg, dst)
        _pump(sock, peer)
    end = time.monotonic() + args.linger  # keep answering so the peer gets our acks too
    while time.monotonic() < end:
        _pump(sock, peer)
    print(json.dumps(peer.result(time.monotonic())), flush=True)
    return 0 if peer.succeeded else 1


def register(sub) -> None:
    p = sub.add_parser("punch", help="UDP hole punching: rendezvous server and peer")
    psub = p.add_subparsers(dest="punch_cmd", required=True)
    r = psub.add_parser("rendezvous", help="tell registered peers each other's public endpoint")
    r.add_argument("--listen", type=endpoint_arg, required=True, help="ADDR:PORT (UDP)")
    r.add_argument("--log", help="append every registration here (JSON lines)")
    r.set_defaults(fn=cmd_rendezvous)
    q = psub.add_parser("peer", help="register, learn the peer's endpoint, punch, report")
    q.add_argument("--rendezvous", type=endpoint_arg, required=True, help="ADDR:PORT")
    q.add_argument("--name", required=True)
    q.add_argument("--peer", required=True, help="the name the other side registered")
    q.add_argument("--port", type=int, default=0, help="local UDP port (default: any)")
    q.add_argument("--timeout", type=float, default=10.0)
    q.add_argument("--linger", type=float, default=1.0, help="keep answering this long")
    q.set_defaults(fn=cmd_peer)
