"""`infralab dhcp serve`: the DHCP server process around `logic.DhcpLogic`.

One UDP socket on port 67 (bound to the interface) receives broadcasts and relayed
unicasts; replies to relays and configured clients go out through it, replies to a client
without an address through an AF_PACKET socket at its MAC (or broadcast). Malformed
packets are counted and dropped.

Group commit: the serving thread takes requests in batches and decides them in memory;
a batch that changed leases hands its journal records and its replies to the commit
thread, which appends everything queued since its last turn to the lease file, fsyncs
once and only then sends those replies (no ACK leaves before its lease is on disk). While
one fsync runs, the next batches gather, so the batching follows the load. Offers change
nothing on disk and leave at once.

Overload: when half the receive buffer is taken by waiting requests (more arrives than
is answered: left alone, the kernel would drop REQUESTs and DISCOVERs alike, and the
work spent on the DISCOVERs whose REQUESTs it drops is lost), new DISCOVERs are dropped
(counted as `shed`): those already queued unparsed, the next ones in the kernel by a
socket filter (`shedding`), until the queue is down to an eighth. The REQUESTs of
exchanges already under way are finished first, so completed exchanges level off as the
offered load rises.
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
from services.common.lifecycle import settle_heap
from wire import dhcp as p
from wire.frames import udp_frame

from .config import Config
from .leases import ip_text, read_journal
from .logic import BROADCAST, CIADDR, RELAY, DhcpLogic, Reply
from .rawlink import if_address, if_mac, raw_socket
from .shedding import MEMINFO_RMEM_ALLOC, DiscoverFilter, is_discover, meminfo

BATCH = 64  # datagrams per turn at most (a full read: behind); its replies leave back to back,
# and 256 at a time overflowed a relay's receive buffer (perfdhcp: 5-8k lost in 4 s, 2-3k at 64)
SO_BINDTODEVICE = 25
SHED_SHARE = 2  # shed new DISCOVERs once 1/SHED_SHARE of the receive buffer is queued
RESUME_SHARE = 8  # and take them again once it is down to 1/RESUME_SHARE


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
        self.logic.record_events = log_file is not None  # (nobody else reads them)
        self.event_log = open(log_file, "a", buffering=1) if log_file else None  # noqa: SIM115
        self._stop = threading.Event()
        self.lock = threading.Lock()  # the serving thread and the control socket
        self.local: IPv4Interface | None = None
        self.sent = 0
        self.sent_committed = 0
        self.shed = 0  # DISCOVERs dropped unparsed under overload (by us)
        self.filtered = 0  # and by the kernel's filter (its drop count while on)
        self.commits = 0  # fsyncs of the lease file
        self.to_commit: list[tuple[list[dict], list[Reply]]] = []
        self.commit_ready = threading.Condition()

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, _wait: float = 0.0) -> None:
        local = if_address(self.interface)
        if local is None:
            raise SystemExit(f"infralab dhcp serve: {self.interface} has no IPv4 address")
        self.local = local
        self.mac = if_mac(self.interface)
        live = self._load_leases()
        settle_heap()  # (the pool's addresses and the restored leases)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.udp.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)  # a commit's ACKs
        self.rcvbuf = self.udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.udp.bind(("0.0.0.0", 67))
        self.raw = raw_socket(self.interface, receive=False)  # replies at a MAC: sent only
        threading.Thread(target=self._serve, daemon=True).start()
        threading.Thread(target=self._commit_loop, daemon=True).start()
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
        shed = DiscoverFilter(self.udp)
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp], [], [], 0.5)
            if self.udp in ready:
                self._turn(shed)

    def _turn(self, shed: DiscoverFilter) -> None:
        """Read what waits (BATCH at most); while behind, drop new exchanges; answer."""
        batch: list[bytes] = []
        try:
            while len(batch) < BATCH:
                batch.append(self.udp.recv(4096, socket.MSG_DONTWAIT))
        except BlockingIOError:
            pass
        if len(batch) == BATCH or shed.on:
            backlog = meminfo(self.udp, MEMINFO_RMEM_ALLOC)
            if backlog * SHED_SHARE > self.rcvbuf:
                shed.attach()
                kept = [d for d in batch if not is_discover(d)]  # finish exchanges first
                self.shed += len(batch) - len(kept)
                batch = kept
            elif shed.on and backlog * RESUME_SHARE < self.rcvbuf:
                self.filtered += shed.detach()
        self._handle_batch(batch)

    def _handle_batch(self, batch: list[bytes]) -> None:
        with self.lock:
            replies, journal = self._decide(batch)
        if not journal:
            for r in replies:
                self._send(r)
            return
        later: list[Reply] = []
        for r in replies:
            if r.msg.msg_type in (p.OFFER, p.NAK):
                self._send(r)  # nothing of theirs needs to be on disk
            else:
                later.append(r)
        self._queue_commit(journal, later)

    def _queue_commit(self, journal: list[dict], replies: list[Reply]) -> None:
        """Hand lease changes (and the replies that must wait for them) to the commit
        thread."""
        with self.commit_ready:
            self.to_commit.append((journal, replies))
            self.commit_ready.notify()

    def _commit_loop(self) -> None:
        """Everything queued since the last turn: one write, one fsync, then its replies."""
        while True:
            with self.commit_ready:
                while not self.to_commit:
                    self.commit_ready.wait()
                work, self.to_commit = self.to_commit, []
            self.leases_out.write("".join(json.dumps(r) + "\n" for journal, _ in work
                                          for r in journal))
            self.leases_out.flush()
            os.fsync(self.leases_out.fileno())
            self.commits += 1
            for _, replies in work:
                for r in replies:
                    self._send(r, committed=True)

    def _decide(self, batch: list[bytes]) -> tuple[list[Reply], list[dict]]:
        """The batch's replies and the lease changes that must be on disk before them."""
        assert self.local is not None  # (known once the socket is bound)
        now = time.time()
        replies: list[Reply] = []
        for data in batch:
            try:
                m = p.parse(data)
            except p.DhcpError as e:
                self.logic.counters.malformed += 1
                if self.logic.record_events:
                    self.logic.events.append({"time": round(now, 3), "event": "malformed",
                                              "why": str(e)})
                continue
            replies += self.logic.handle(now, m, self.local)
        journal = self.logic.drain_journal()
        if self.event_log is not None and self.logic.events:
            self.event_log.write("".join(json.dumps(e) + "\n" for e in self.logic.events))
            self.logic.events.clear()
        elif len(self.logic.events) > 1000:
            self.logic.events.clear()
        return replies, journal

    def _send(self, r: Reply, committed: bool = False) -> None:
        """(Each thread counts its own sends: `sent` and `sent_committed`.)"""
        assert self.local is not None
        data = r.msg.to_bytes()
        try:
            if r.how == RELAY:
                self.udp.sendto(data, (ip_text(r.ip), 67))
            elif r.how == CIADDR:
                self.udp.sendto(data, (ip_text(r.ip), 68))
            else:
                dst_ip = IPv4Address("255.255.255.255") if r.how == BROADCAST else r.ip
                self.raw.send(udp_frame(self.mac, r.mac, self.local.ip, dst_ip, 67, 68, data))
            if committed:
                self.sent_committed += 1
            else:
                self.sent += 1
        except OSError as e:
            self.log(f"dhcp: sending {r.msg.describe()} to {r.ip}: {e}")

    # ---- control ----------------------------------------------------------------------------
    def _command(self, line: str) -> object:
        with self.lock:
            out = self._answer(line, time.time())
            journal = self.logic.drain_journal()
        if journal:  # (fill/unfill: on disk like any lease change)
            self._queue_commit(journal, [])
        return out

    def _answer(self, line: str, now: float) -> object:
        if line == "leases":
            return self.logic.table(now)
        if line == "stats":
            return {**vars(self.logic.counters), "sent": self.sent + self.sent_committed,
                    "shed": self.shed, "filtered": self.filtered,
                    "commits": self.commits,
                    "free": {n: pool.free_count(now) for n, pool in self.logic.pools.items()}}
        words = line.split()
        if words[:1] == ["fill"]:  # a dhcp-pool-fill fault: every free address parked for SECONDS
            try:
                seconds = float(words[1]) if len(words) > 1 else 60.0
            except ValueError:
                return {"error": "fill SECONDS"}
            return {"held": sum(pool.park_free(now, seconds)
                                for pool in self.logic.pools.values())}
        if line == "unfill":
            return {"freed": sum(pool.unpark(now) for pool in self.logic.pools.values())}
        return {"error": f"unknown command {line!r} (leases, stats, fill SECONDS, unfill)"}
