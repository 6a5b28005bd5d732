"""`infralab dhcp serve`: the DHCP server process around `logic.DhcpLogic`.

One UDP socket on port 67 (bound to the interface) receives broadcasts and relayed
unicasts; replies to relays and configured clients go out through it, replies to a client
without an address through an AF_PACKET socket at its MAC (or broadcast). Requests are
taken in batches; the batch's lease changes are appended to the lease file and fsynced
once, *then* its replies are sent (group commit: no ACK leaves before its lease is on
disk). Malformed packets are counted and dropped.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from services.common.control import control_loop
from wire import dhcp as p
from wire.frames import udp_frame

from .config import Config
from .leases import read_journal
from .logic import BROADCAST, CIADDR, RELAY, DhcpLogic, Reply
from .rawlink import if_address, if_mac, raw_socket

BATCH = 64
SO_BINDTODEVICE = 25


class DhcpServer:
    def __init__(self, config: Config, interface: str, lease_file: str | Path,
                 control: str | None = None, log_file: str | None = None,
                 log=print) -> None:
        self.config = config
        self.interface = interface
        self.lease_path = Path(lease_file)
        self.control = control
        self.log = log
        self.logic = DhcpLogic(config)
        self.event_log = open(log_file, "a", buffering=1) if log_file else None  # noqa: SIM115
        self._stop = threading.Event()
        self.lock = threading.Lock()  # the serving thread and the control socket
        self.local: IPv4Interface | None = None
        self.sent = 0

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, _wait: float = 0.0) -> None:
        local = if_address(self.interface)
        if local is None:
            raise SystemExit(f"infralab dhcp serve: {self.interface} has no IPv4 address")
        self.local = local
        self.mac = if_mac(self.interface)
        live = self._load_leases()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.udp.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.udp.bind(("0.0.0.0", 67))
        self.raw = raw_socket(self.interface)
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        threading.Thread(target=self._serve, daemon=True).start()
        if self.control:
            threading.Thread(target=control_loop, args=(self.control, self._command),
                             daemon=True).start()
        self.log(f"dhcp: serving {len(self.config.subnets)} subnet(s) on {self.interface} "
                 f"({local}), {live} lease(s) restored from {self.lease_path}")

    def stop(self) -> None:
        self._stop.set()

    def _load_leases(self) -> int:
        """Replay the lease file, then rewrite it compacted (atomically, fsynced)."""
        records = read_journal(self.lease_path.read_text()) if self.lease_path.exists() else []
        now = time.time()
        live = sum(pool.replay(records, now) for pool in self.logic.pools.values())
        tmp = self.lease_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            for pool in self.logic.pools.values():
                for rec in pool.snapshot():
                    f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.lease_path)
        self.leases_out = open(self.lease_path, "a")  # noqa: SIM115
        return live

    # ---- the loop ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp, self.raw], [], [], 0.5)
            if self.raw in ready:  # only to keep its buffer empty: we send on it
                try:
                    while True:
                        self.raw.recv(65535, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
            if self.udp not in ready:
                continue
            batch: list[bytes] = []
            try:
                while len(batch) < BATCH:
                    batch.append(self.udp.recv(4096, socket.MSG_DONTWAIT))
            except BlockingIOError:
                pass
            self._handle_batch(batch)

    def _handle_batch(self, batch: list[bytes]) -> None:
        with self.lock:
            replies = self._decide(batch)
        for r in replies:
            self._send(r)

    def _decide(self, batch: list[bytes]) -> list[Reply]:
        assert self.local is not None  # (known once the socket is bound)
        now = time.time()
        replies: list[Reply] = []
        for data in batch:
            try:
                m = p.parse(data)
            except p.DhcpError as e:
                self.logic.counters.malformed += 1
                self.logic.events.append({"time": round(now, 3), "event": "malformed",
                                          "why": str(e)})
                continue
            replies += self.logic.handle(now, m, self.local)
        journal = self.logic.drain_journal()
        if journal:  # on disk before any ACK of this batch leaves
            self.leases_out.write("".join(json.dumps(r) + "\n" for r in journal))
            self.leases_out.flush()
            os.fsync(self.leases_out.fileno())
        if self.event_log is not None and self.logic.events:
            self.event_log.write("".join(json.dumps(e) + "\n" for e in self.logic.events))
            self.logic.events.clear()
        elif len(self.logic.events) > 1000:
            self.logic.events.clear()
        return replies

    def _send(self, r: Reply) -> None:
        assert self.local is not None
        data = r.msg.to_bytes()
        try:
            if r.how == RELAY:
                self.udp.sendto(data, (str(r.ip), 67))
            elif r.how == CIADDR:
                self.udp.sendto(data, (str(r.ip), 68))
            else:
                dst_ip = IPv4Address("255.255.255.255") if r.how == BROADCAST else r.ip
                self.raw.send(udp_frame(self.mac, r.mac, self.local.ip, dst_ip, 67, 68, data))
            self.sent += 1
        except OSError as e:
            self.log(f"dhcp: sending {r.msg.describe()} to {r.ip}: {e}")

    # ---- control ----------------------------------------------------------------------------
    def _command(self, line: str) -> object:
        with self.lock:
            return self._answer(line, time.time())

    def _answer(self, line: str, now: float) -> object:
        if line == "leases":
            return self.logic.table(now)
        if line == "stats":
            return {**vars(self.logic.counters), "sent": self.sent,
                    "free": {n: pool.free_count(now) for n, pool in self.logic.pools.items()}}
        return {"error": f"unknown command {line!r} (leases, stats)"}
