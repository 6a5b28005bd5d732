"""DHCP/BOOTP messages (RFC 2131, 2132, 951, 3046): parse and build, nothing else.

`parse()` raises `DhcpError` (a ValueError) for anything malformed — truncated header,
wrong magic cookie, an option running past the end, an overload pointing nowhere — so a
server counts and drops it; it never raises anything else. Options are kept as raw bytes
by code (repeated codes concatenated, RFC 3396) with typed accessors for the ones used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address

MAGIC = b"\x63\x82\x53\x63"
BOOTREQUEST, BOOTREPLY = 1, 2
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE",
              ACK: "ACK", NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM"}
OPT_PAD, OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN = 0, 1, 3, 6, 12, 15
OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_OVERLOAD, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 52, 53, 54
OPT_PARAMS, OPT_MESSAGE, OPT_MAX_SIZE, OPT_T1, OPT_T2, OPT_CLIENT_ID = 55, 56, 57, 58, 59, 61
OPT_RELAY_AGENT, OPT_END = 82, 255
RAI_CIRCUIT_ID, RAI_REMOTE_ID = 1, 2
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes
FLAG_BROADCAST = 0x8000
ZERO = IPv4Address(0)
_ADDRS: dict[bytes, IPv4Address] = {bytes(4): ZERO}  # packed -> address, as they recur


def addr_of(packed: bytes) -> IPv4Address:
    """The address of 4 packed bytes (kept: a server sees the same few again and again)."""
    a = _ADDRS.get(packed)
    if a is None:
        if len(_ADDRS) > 1 << 17:
            _ADDRS.clear()
            _ADDRS[bytes(4)] = ZERO
        a = _ADDRS[packed] = IPv4Address(packed)
    return a
MAX_OPTION_BYTES = 4096  # sum of one code's pieces; more is an attack, not a client


class DhcpError(ValueError):
    """A message that is not valid DHCP/BOOTP; `why` says what."""


@dataclass
class DhcpMessage:
    op: int = BOOTREQUEST
    xid: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    chaddr: bytes = b"\0" * 6  # hardware address (Ethernet: 6 bytes)
    hops: int = 0
    sname: bytes = b""
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)
    bootp: bool = False  # no magic cookie / no message type: plain BOOTP (RFC 951)

    # ---- typed views ----------------------------------------------------------------
    @property
    def msg_type(self) -> int | None:
        v = self.options.get(OPT_MSG_TYPE)
        return v[0] if v and len(v) == 1 else None

    @property
    def mac(self) -> str:
        return self.chaddr[:6].hex(":")

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    def addr(self, code: int) -> IPv4Address | None:
        v = self.options.get(code)
        return addr_of(v[:4]) if v is not None and len(v) >= 4 else None

    def addrs(self, code: int) -> list[IPv4Address]:
        v = self.options.get(code, b"")
        return [IPv4Address(v[i:i + 4]) for i in range(0, len(v) - 3, 4)]

    def u32(self, code: int) -> int | None:
        v = self.options.get(code)
        return struct.unpack("!I", v[:4])[0] if v is not None and len(v) >= 4 else None

    def text(self, code: int) -> str | None:
        v = self.options.get(code)
        return v.decode("utf-8", "replace") if v is not None else None

    def relay_info(self) -> dict[int, bytes]:
        """Option 82's sub-options (circuit id 1, remote id 2, ...)."""
        return _tlvs(self.options.get(OPT_RELAY_AGENT, b""), "option 82")

    @property
    def client_key(self) -> str:
        """Who the client is: option 61 when given (RFC 2131 4.2), else the MAC."""
        cid = self.options.get(OPT_CLIENT_ID)
        return "id:" + cid.hex() if cid else self.mac

    def describe(self) -> str:
        t = TYPE_NAMES.get(self.msg_type or 0, "BOOTP" if self.bootp else "?")
        return f"{t} xid={self.xid:#010x} mac={self.mac}"

    # ---- wire -------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        out = HEADER.pack(self.op, 1, len(self.chaddr[:16]) or 6, self.hops, self.xid,
                          self.secs, self.flags, _packed(self.ciaddr), _packed(self.yiaddr),
                          _packed(self.siaddr), _packed(self.giaddr), self.chaddr, self.sname,
                          self.file)  # (struct pads each field with NULs and cuts it to size)
        if self.bootp and not self.options:
            return out + bytes(64)  # BOOTP: 64-byte vendor area, no cookie needed
        return out + encode_options(self.options)


ZERO4 = bytes(4)


def _packed(a: IPv4Address) -> bytes:
    return ZERO4 if a is ZERO else a.packed


_OPTIONS_WIRE: dict[tuple[tuple[int, bytes], ...], bytes] = {}


def encode_options(options: dict[int, bytes]) -> bytes:
    """The cookie, the options (message type first, then by code; RFC 3396: long values
    split), END, and padding to the 300-byte BOOTP minimum some clients insist on. Kept
    by value: a server's replies carry the same few option sets again and again."""
    key = tuple(options.items())
    wire = _OPTIONS_WIRE.get(key)
    if wire is not None:
        return wire
    opts = bytearray(MAGIC)
    order = [OPT_MSG_TYPE] + sorted(c for c in options if c != OPT_MSG_TYPE)
    for code in order:
        if code not in options:
            continue
        v = options[code]
        for i in range(0, max(len(v), 1), 255):
            piece = v[i:i + 255]
            opts += bytes([code, len(piece)]) + piece
    opts.append(OPT_END)
    if HEADER.size + len(opts) < 300:
        opts += bytes(300 - HEADER.size - len(opts))
    if len(_OPTIONS_WIRE) > 4096:
        _OPTIONS_WIRE.clear()
    wire = _OPTIONS_WIRE[key] = bytes(opts)
    return wire


def _tlvs(data: bytes, what: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        if i + 2 > len(data) or i + 2 + data[i + 1] > len(data):
            raise DhcpError(f"{what}: sub-option runs past the end")
        out[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    return out


def _options(data: bytes, into: dict[int, bytes], where: str) -> None:
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return
        if i + 1 >= len(data):
            raise DhcpError(f"{where}: option {code} has no length")
        n = data[i + 1]
        if i + 2 + n > len(data):
            raise DhcpError(f"{where}: option {code} runs past the end ({n} bytes)")
        value = into.get(code, b"") + data[i + 2:i + 2 + n]
        if len(value) > MAX_OPTION_BYTES:
            raise DhcpError(f"{where}: option {code} longer than {MAX_OPTION_BYTES} bytes")
        into[code] = value
        i += 2 + n
    # no END: tolerated (many BOOTP clients pad to the end instead)


def parse(data: bytes) -> DhcpMessage:
    """Decode a DHCP or BOOTP message; DhcpError says what is wrong with a bad one."""
    if len(data) < HEADER.size:
        raise DhcpError(f"truncated: {len(data)} bytes, a BOOTP header is {HEADER.size}")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = HEADER.unpack_from(data)
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise DhcpError(f"op {op} is neither BOOTREQUEST nor BOOTREPLY")
    if hlen > 16:
        raise DhcpError(f"hardware address length {hlen} > 16")
    m = DhcpMessage(op, xid, secs, flags, addr_of(ciaddr), addr_of(yiaddr),
                addr_of(siaddr), addr_of(giaddr), chaddr[:hlen or 6], hops,
                sname.rstrip(b"\0"), file.rstrip(b"\0"))
    rest = data[HEADER.size:]
    if rest[:4] != MAGIC:
        if any(rest[:4]) and len(rest) >= 4:
            raise DhcpError(f"wrong magic cookie {rest[:4].hex()}")
        m.bootp = True  # RFC 951: vendor area without (or zero) cookie
        return m
    _options(rest[4:], m.options, "options")
    overload = m.options.get(OPT_OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise DhcpError(f"option 52 (overload) has a bad value {overload.hex()}")
        if overload[0] & 1:
            _options(file, m.options, "file field")
            m.file = b""
        if overload[0] & 2:
            _options(sname, m.options, "sname field")
            m.sname = b""
    if OPT_MSG_TYPE not in m.options:
        m.bootp = True
    elif m.msg_type not in TYPE_NAMES:
        raise DhcpError(f"unknown message type {m.options[OPT_MSG_TYPE].hex()}")
    return m


def ip_opt(*addrs: IPv4Address | str) -> bytes:
    return b"".join(a.packed if isinstance(a, IPv4Address) else IPv4Address(a).packed
                    for a in addrs)


def u32_opt(v: int) -> bytes:
    return struct.pack("!I", v)


def relay_agent_option(circuit_id: bytes, remote_id: bytes) -> bytes:
    """Option 82 with circuit id and remote id sub-options (RFC 3046)."""
    return bytes([RAI_CIRCUIT_ID, len(circuit_id)]) + circuit_id + \
        bytes([RAI_REMOTE_ID, len(remote_id)]) + remote_id
