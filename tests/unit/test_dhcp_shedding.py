"""DHCP-SERVER under overload: the DISCOVER filter drops exactly what `is_discover` says,
in the model and in the kernel (a loopback UDP socket: no root needed)."""

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from services.dhcp.shedding import (
    MEMINFO_DROPS,
    RET_DROP,
    DiscoverFilter,
    discover_program,
    is_discover,
    meminfo,
    run_program,
)
from wire import dhcp as p

UDP_HEADER = bytes(8)


def message(mtype: int | None) -> bytes:
    opts = {p.OPT_MSG_TYPE: bytes([mtype])} if mtype is not None else {}
    return p.DhcpMessage(p.BOOTREQUEST, 7, chaddr=bytes([2, 0, 0, 0, 0, 1]),
                         options=opts).to_bytes()


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.binary(min_size=240, max_size=240), st.binary(max_size=8))
                 .map(lambda t: t[0] + t[1]),
                 st.sampled_from([p.DISCOVER, p.REQUEST, p.INFORM, None]).map(message)))
def test_dhcp_shedding_filter_drops_exactly_the_discovers(data):
    dropped = run_program(discover_program(), UDP_HEADER + data) == RET_DROP
    assert dropped == is_discover(data)


def test_dhcp_shedding_filter_in_the_kernel_drops_discovers_and_counts_them():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        shed = DiscoverFilter(rx)
        shed.attach()
        before = meminfo(rx, MEMINFO_DROPS)
        for t in (p.DISCOVER, p.REQUEST, p.DISCOVER, p.INFORM):
            tx.sendto(message(t), rx.getsockname())
        got = [p.parse(rx.recv(2048)).msg_type for _ in range(2)]
        assert got == [p.REQUEST, p.INFORM]
        assert meminfo(rx, MEMINFO_DROPS) - before == 2
        shed.detach()
        tx.sendto(message(p.DISCOVER), rx.getsockname())
        assert p.parse(rx.recv(2048)).msg_type == p.DISCOVER


def test_dhcp_server_behind_finishes_exchanges_and_sheds_new_ones(tmp_path):
    """A queue more than half full: the REQUESTs in it are all answered, the DISCOVERs
    in it dropped unparsed, the DISCOVERs that come while it drains dropped by the
    kernel; once drained, DISCOVERs are served again."""
    from ipaddress import IPv4Address, IPv4Interface

    from services.dhcp.config import loads
    from services.dhcp.server import BATCH, DhcpServer

    config = loads("subnets:\n  - {subnet: 10.7.0.0/16, pool: [10.7.1.0-10.7.9.255]}\n")
    server = DhcpServer(config, "lo", tmp_path / "leases.jsonl", log=lambda _: None)
    server.local = IPv4Interface("10.7.0.1/16")
    sent: list = []
    server._send = lambda r, committed=False: sent.append(r)  # type: ignore[method-assign]
    relay = IPv4Address("10.7.0.2")

    def msg(t: int, i: int) -> bytes:
        return p.DhcpMessage(p.BOOTREQUEST, i, giaddr=relay, chaddr=i.to_bytes(6, "big"),
                             options={p.OPT_MSG_TYPE: bytes([t])}).to_bytes()

    offers = {}
    for i in range(1, 41):
        (r,) = server.logic.handle(1.0, p.parse(msg(p.DISCOVER, i)), server.local)
        offers[i] = r.msg.yiaddr
    server.logic.record_events = False
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(("127.0.0.1", 0))
        server.udp, server.rcvbuf = rx, rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        to = rx.getsockname()
        n = 1000
        for i in offers:  # the exchanges under way, among new ones
            tx.sendto(p.DhcpMessage(p.BOOTREQUEST, i, giaddr=relay, chaddr=i.to_bytes(6, "big"),
                                    options={p.OPT_MSG_TYPE: bytes([p.REQUEST]),
                                             p.OPT_SERVER_ID: server.local.ip.packed,
                                             p.OPT_REQUESTED_IP: offers[i].packed}).to_bytes(),
                      to)
            tx.sendto(msg(p.DISCOVER, n := n + 1), to)
        while meminfo(rx, 0) * 10 < server.rcvbuf * 6:  # fill to 60 %
            tx.sendto(msg(p.DISCOVER, n := n + 1), to)
        shed = DiscoverFilter(rx)
        server._turn(shed)
        assert shed.on and server.shed == BATCH // 2  # the first batch: half were new
        for i in range(100):  # while it drains: dropped in the kernel
            tx.sendto(msg(p.DISCOVER, 100000 + i), to)
        while shed.on:
            server._turn(shed)
        while meminfo(rx, 0):  # (the last eighth, served as usual)
            server._turn(shed)
        assert server.logic.counters.request == 40 and server.logic.counters.ack == 40
        queued = n - 1000  # each answered or shed, none lost
        assert server.shed > 0 and server.logic.counters.discover - 40 + server.shed == queued
        late = {(100000 + i).to_bytes(6, "big") for i in range(100)}
        assert server.filtered >= 100 and not late & {r.msg.chaddr for r in sent}
        tx.sendto(msg(p.DISCOVER, 200000), to)  # caught up: served again
        server._turn(shed)
        assert sent[-1].msg.msg_type == p.OFFER and sent[-1].msg.chaddr == \
            (200000).to_bytes(6, "big")
