"""The fixed fuzz corpus (tests/corpus/) replays through every parser: each input
is answered, counted or rejected with the parser's own error — never a crash."""

from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from services.dhcp.config import loads as dhcp_config
from services.dhcp.logic import DhcpLogic
from services.dns.authority import ZoneSet
from services.dns.responder import Responder
from services.dns.zone import ZoneError, parse_zone
from tests.unit.simnet import SimNet
from tests.unit.test_nat import NATNET
from topologies import loader
from wire import dhcp

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
ZONE = parse_zone("$ORIGIN example.com.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n  NS ns\n"
                  "ns A 10.0.0.1\nwww A 10.0.0.2\n", "t")
VALID = {"valid-query.bin", "valid.zone", "valid-discover.bin", "bootp-no-cookie.bin",
         "option-82-bad-suboption.bin"}  # (option 82 is read only by a relay: valid here)


def files(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).iterdir())


@pytest.mark.parametrize("path", files("dns"), ids=lambda p: p.name)
def test_corpus_dns_messages(path):
    r = Responder(ZoneSet([ZONE]))
    before = r.stats["dropped"]
    out = r.respond(path.read_bytes())
    assert out is not None or r.stats["dropped"] == before + 1
    if path.name in VALID:
        assert out is not None and out[3] & 0x0F == 0  # NOERROR


@pytest.mark.parametrize("path", files("zone"), ids=lambda p: p.name)
def test_corpus_zone_files(path):
    try:
        parse_zone(path.read_text(), path.name, origin="example.com.")
    except ZoneError as e:
        assert path.name not in VALID and e.source == path.name
    else:
        assert path.name in VALID


@pytest.mark.parametrize("path", files("dhcp"), ids=lambda p: p.name)
def test_corpus_dhcp_messages(path):
    logic = DhcpLogic(dhcp_config("subnets: [{subnet: 10.0.0.0/24, pool: [10.0.0.100]}]"))
    try:
        m = dhcp.parse(path.read_bytes())
    except dhcp.DhcpError:
        assert path.name not in VALID
        return
    assert path.name in VALID
    assert logic.handle(1.0, m, IPv4Interface("10.0.0.1/24"))  # and it is answered


@pytest.mark.parametrize("path", files("packetin"), ids=lambda p: p.name)
def test_corpus_controller_packet_ins(path):
    topo = loader.loads(NATNET)
    topo.dhcp_relay("rc", {"servers": ["10.1.9.80"], "interfaces": ["lan"]})
    r = SimNet(topo).routers["rc"]
    assert r.nat is not None and r.relay is not None

    def malformed() -> int:  # the router's, its NAT's and its relay's counts together
        return r.counters.malformed + r.nat.counters.malformed + r.relay.counters.malformed

    before = malformed()
    data = path.read_bytes()
    for table in (0, 1, 2, 4):
        for port in (1, 8):
            r.packet_in(100.0, port, data, 0, table, port)  # must not raise
    assert malformed() > before  # every input here is bad: counted where it was read
