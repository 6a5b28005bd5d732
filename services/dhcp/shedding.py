"""Shedding new DISCOVERs while the DHCP server is behind (DHCP-SERVER under overload).

When more arrives than the server can answer, the exchanges already under way (their
REQUESTs) are worth finishing and new ones (DISCOVERs) are not worth starting: an OFFER
whose REQUEST is then lost in a full queue is work thrown away. `is_discover` tells one
from its first option without parsing it; `DiscoverFilter` goes further and drops them in
the kernel (a classic BPF socket filter, SO_ATTACH_FILTER), so a shed DISCOVER costs no
queue space, no copy and no system call. The kernel counts what it dropped in the
socket's drop counter (SO_MEMINFO).
"""

from __future__ import annotations

import ctypes
import socket
import struct

from wire import dhcp as p

MSG_TYPE_AT = 240  # where option 53 sits when it comes first (as every client sends it)
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
SO_MEMINFO = 55  # Linux: the socket's memory counters, u32 each
MEMINFO_RMEM_ALLOC, MEMINFO_DROPS = 0, 8  # bytes queued to read; datagrams dropped
UDP_HEADER = 8  # a UDP socket's filter sees the datagram from its UDP header on
RET_DROP, RET_KEEP = 0, 0x40000
_INSN = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k
_LD_LEN, _LDB_ABS, _JGE, _JEQ, _RET = 0x80, 0x30, 0x35, 0x15, 0x06


def is_discover(data: bytes) -> bool:
    """A DISCOVER, told from its first option without parsing the message."""
    return len(data) > MSG_TYPE_AT + 2 and data[MSG_TYPE_AT] == p.OPT_MSG_TYPE and \
        data[MSG_TYPE_AT + 1] == 1 and data[MSG_TYPE_AT + 2] == p.DISCOVER


def discover_program() -> list[tuple[int, int, int, int]]:
    """The filter: drop a datagram whose first option is message type DISCOVER (what
    `is_discover` says); keep everything else, short and malformed ones included."""
    at = UDP_HEADER + MSG_TYPE_AT
    return [
        (_LD_LEN, 0, 0, 0),
        (_JGE, 0, 7, at + 3),  # shorter than option 53's three bytes: keep
        (_LDB_ABS, 0, 0, at),
        (_JEQ, 0, 5, p.OPT_MSG_TYPE),
        (_LDB_ABS, 0, 0, at + 1),
        (_JEQ, 0, 3, 1),
        (_LDB_ABS, 0, 0, at + 2),
        (_JEQ, 0, 1, p.DISCOVER),
        (_RET, 0, 0, RET_DROP),
        (_RET, 0, 0, RET_KEEP),
    ]


def run_program(program: list[tuple[int, int, int, int]], datagram: bytes) -> int:
    """What the kernel would return for `datagram` (UDP header included): the few
    instructions `discover_program` uses, for tests without a socket."""
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == _LD_LEN:
            acc = len(datagram)
        elif code == _LDB_ABS:
            if k >= len(datagram):
                return RET_DROP  # (as the kernel does: a load past the end drops)
            acc = datagram[k]
        elif code in (_JGE, _JEQ):
            taken = acc >= k if code == _JGE else acc == k
            pc += jt if taken else jf
        elif code == _RET:
            return k
        else:
            raise ValueError(f"instruction {code:#x} not modelled")
        pc += 1


class DiscoverFilter:
    """The filter on one UDP socket, on and off; `detach` says how many it dropped."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.on = False
        self._drops_before = 0
        insns = discover_program()
        self._code = ctypes.create_string_buffer(b"".join(_INSN.pack(*i) for i in insns))
        self._fprog = struct.pack("HL", len(insns), ctypes.addressof(self._code))

    def attach(self) -> None:
        if not self.on:
            self._drops_before = meminfo(self.sock, MEMINFO_DROPS)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, self._fprog)
            self.on = True

    def detach(self) -> int:
        """Off again; the datagrams the socket dropped while it was on (the filter's,
        and any the full queue dropped)."""
        if not self.on:
            return 0
        self.sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        self.on = False
        return meminfo(self.sock, MEMINFO_DROPS) - self._drops_before


def meminfo(sock: socket.socket, field: int) -> int:
    """One of the socket's SO_MEMINFO counters (0 where the kernel cannot say)."""
    try:
        return struct.unpack_from("9I", sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[field]
    except (OSError, struct.error):
        return 0
