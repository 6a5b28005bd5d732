"""DNS-AUTH speed: datagrams read and answered in batches (recvmmsg/sendmmsg), each reply
to its own datagram's source (loopback sockets, no root)."""

import socket
import threading

import pytest

from services.dns.udpbatch import QUERY_MAX, REPLY_MAX, UdpBatch


@pytest.fixture
def server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


def clients(n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        c.settimeout(5)
        out.append(c)
    return out


def test_dns_udpbatch_one_call_reads_every_waiting_datagram_and_replies_go_to_each_source(server):
    cs = clients(5)
    for i, c in enumerate(cs):
        c.sendto(b"query %d" % i, server.getsockname())
    batch = UdpBatch(server)
    got = batch.recv()
    assert got == [b"query %d" % i for i in range(5)]
    assert [batch.source(i) for i in range(5)] == [c.getsockname() for c in cs]
    batch.send([b"reply to " + q for q in got])
    for i, c in enumerate(cs):
        assert c.recv(100) == b"reply to query %d" % i
    for c in cs:
        c.close()


def test_dns_udpbatch_no_reply_a_long_reply_and_a_long_query(server):
    cs = clients(3)
    cs[0].sendto(b"a", server.getsockname())
    cs[1].sendto(b"b", server.getsockname())
    cs[2].sendto(b"x" * (QUERY_MAX + 10), server.getsockname())
    batch = UdpBatch(server)
    got = batch.recv()
    assert got == [b"a", b"b", b""]  # the cut one comes empty
    long = b"L" * (REPLY_MAX + 100)
    batch.send([None, long, b"short"])
    assert cs[1].recv(REPLY_MAX + 200) == long and cs[2].recv(100) == b"short"
    cs[0].settimeout(0.2)
    with pytest.raises(TimeoutError):
        cs[0].recv(100)  # None: nothing sent
    for c in cs:
        c.close()


def test_dns_udpbatch_recv_ends_once_the_socket_is_closed(server):
    batch = UdpBatch(server)
    done = threading.Event()

    def loop() -> None:
        while batch.recv() is not None:
            pass
        done.set()

    threading.Thread(target=loop, daemon=True).start()
    where = server.getsockname()
    server.close()
    (c,) = clients(1)
    with c:  # a call blocked on the closed socket ends with the next datagram to it
        for _ in range(50):
            if done.wait(0.1):
                break
            c.sendto(b"wake", where)
    assert done.is_set()
