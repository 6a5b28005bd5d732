"""DHCP-RELAY, DHCP-STARVE: the controller's relay pushed through simulated flow tables."""

from ipaddress import IPv4Address

import pytest

from controllers.pipeline import COOKIE_RELAY
from tests.unit.simnet import SimNet
from topologies import loader
from wire import dhcp
from wire import frames as pk
from wire.frames import udp_frame, udp_of_frame

RELAYNET = """
name: relaynet
routers:
  r1:
    interfaces: {lan1: 10.2.1.1/24, svc: 10.2.0.1/24}
    dhcp_relay: {servers: [10.2.0.10], interfaces: [lan1], max_macs_per_port: 2}
hosts:
  a: {subnet: lan1, address: 10.2.1.5}
  x: {subnet: lan1, address: 10.2.1.6}
  srv: {subnet: svc, address: 10.2.0.10}
"""


@pytest.fixture
def net() -> SimNet:
    n = SimNet(loader.loads(RELAYNET))
    n.hosts["srv"].udp_open.add(67)
    n.ping("srv", "10.2.0.1")  # the router learns srv's MAC
    return n


def discover(net: SimNet, host: str, chaddr: bytes, xid: int = 1) -> None:
    h = net.hosts[host]
    m = dhcp.DhcpMessage(dhcp.BOOTREQUEST, xid, chaddr=chaddr, flags=dhcp.FLAG_BROADCAST,
                   options={dhcp.OPT_MSG_TYPE: bytes([dhcp.DISCOVER])})
    net.events.append((host, 0, udp_frame(h.mac, pk.BROADCAST_MAC, dhcp.ZERO,
                                          IPv4Address("255.255.255.255"), 68, 67,
                                          m.to_bytes()), True))
    net.run()


def relayed(net: SimNet) -> list[dhcp.DhcpMessage]:
    out = []
    for f in net.hosts["srv"].received:
        got = udp_of_frame(f.raw, 67)
        if got is not None:
            out.append(dhcp.parse(got[2]))
    return out


def test_dhcp_relay_broadcast_becomes_unicast_with_giaddr_and_option_82(net):
    discover(net, "a", bytes.fromhex("020000000001"))
    (m,) = relayed(net)
    assert m.giaddr == IPv4Address("10.2.1.1") and m.hops == 1
    circuit = m.relay_info()[dhcp.RAI_CIRCUIT_ID].decode()
    assert circuit.startswith("r1/lan1/")
    f = net.hosts["srv"].received[-1]
    assert f.ip_src == IPv4Address("10.2.1.1") and f.ip_dst == IPv4Address("10.2.0.10")


def test_dhcp_relay_reply_goes_back_to_the_circuit_port_without_option_82(net):
    discover(net, "a", bytes.fromhex("020000000001"), xid=7)
    (req,) = relayed(net)
    offer = dhcp.DhcpMessage(dhcp.BOOTREPLY, 7, flags=dhcp.FLAG_BROADCAST, yiaddr=IPv4Address(
        "10.2.1.100"), giaddr=req.giaddr, chaddr=req.chaddr, options={
        dhcp.OPT_MSG_TYPE: bytes([dhcp.OFFER]), dhcp.OPT_RELAY_AGENT: req.options[82]})
    seg = offer.to_bytes()
    net.send("srv", "10.2.1.1", pk.PROTO_UDP, (67).to_bytes(2, "big") * 2
             + (8 + len(seg)).to_bytes(2, "big") + b"\0\0" + seg)
    got = [udp_of_frame(f.raw, 68) for f in net.hosts["a"].received]
    got = [dhcp.parse(g[2]) for g in got if g]
    assert got and got[-1].msg_type == dhcp.OFFER and dhcp.OPT_RELAY_AGENT not in got[-1].options
    assert not [f for f in net.hosts["x"].received if udp_of_frame(f.raw, 68)]  # a's port only


def test_dhcp_starve_mac_limit_per_port_drops_spoofed_macs(net):
    for i in range(5):
        discover(net, "x", bytes([2, 0x5A, 0, 0, 0, i]), xid=i)
    assert len(relayed(net)) == 2  # max_macs_per_port: 2
    relay = net.routers["r1"].relay
    assert relay.counters.dropped_mac_limit == 3
    discover(net, "a", bytes.fromhex("020000000001"), xid=99)  # another port: unaffected
    assert len(relayed(net)) == 3


def test_dhcp_relay_switched_off_relays_nothing_and_on_again_relays(net):
    """The relay itself switched off live (a lab's control run): its flows leave the
    switch and a client's broadcast reaches no server; on again, it is relayed."""
    r1 = net.routers["r1"]
    net._from_controller("r1", r1.relay.set_enabled(False))
    assert not [f for f in net.tables["r1"].flows if f.cookie & 0xFFFF000000000000 ==
                COOKIE_RELAY]
    discover(net, "a", bytes.fromhex("020000000001"))
    assert relayed(net) == [] and r1.relay.state()["enabled"] is False
    net._from_controller("r1", r1.relay.set_enabled(True))
    discover(net, "a", bytes.fromhex("020000000001"), xid=2)
    assert [m.xid for m in relayed(net)] == [2]
    assert r1.relay.set_enabled(True) == []  # (no change, nothing sent)
