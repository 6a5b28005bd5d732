"""DNS-XFR / DNS-EXPIRE with BIND as the peer, on a small network with short SOA timers:
BIND slaves from our master, our slave pulls from a BIND master, and our slave outlives
its master only until SOA expire, then SERVFAILs until promoted."""

from __future__ import annotations

import time

import pytest

from emulation.build import Emulation, wait_for, wait_listening
from infralab.testing import dig, service_ctl
from topologies.model import Service, Topology

ZONE = """$ORIGIN lab.test.
$TTL 30
@   IN SOA m.lab.test. hm.lab.test. ( 1 2 1 8 5 )  ; refresh 2 s, retry 1 s, expire 8 s
    IN NS m
    IN NS s
m   IN A 10.20.0.10
s   IN A 10.20.0.11
www IN A 10.20.0.80
"""
BIND_ZONE = """$ORIGIN bind.test.
$TTL 30
@   IN SOA b.bind.test. hm.bind.test. ( 7 2 1 60 5 )
    IN NS b
b   IN A 10.20.0.12
api IN A 10.20.0.81
"""


def named_conf(d) -> str:
    return f"""options {{ directory "{d}"; listen-on port 53 {{ 10.20.0.12; }};
  listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; dnssec-validation no;
  allow-transfer {{ 10.20.0.11; }}; notify explicit; also-notify {{ 10.20.0.11; }}; }};
controls {{ }};
zone "lab.test" {{ type secondary; primaries {{ 10.20.0.10; }}; file "{d}/lab.test.sec"; }};
zone "bind.test" {{ type primary; file "{d}/bind.test.zone"; }};
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("dnsxfr")
    (d / "lab.test.zone").write_text(ZONE)
    (d / "bind.test.zone").write_text(BIND_ZONE)
    (d / "named.conf").write_text(named_conf(d))
    t = Topology("dnsxfr")
    t.base_dir = str(d)
    t.interface("rx", "lan", "10.20.0.1/24")
    t.host("m", "lan", "10.20.0.10", services=[Service("dns", (
        "{infralab} dns serve --zone-file {dir}/lab.test.zone --listen {ip}:53 "
        "--allow-transfer 10.20.0.11/32 --allow-transfer 10.20.0.12/32 "
        "--notify 10.20.0.11 --notify 10.20.0.12 --control {run}/control"), 53)])
    t.host("b", "lan", "10.20.0.12", services=[Service(
        "named", "exec named -g -u root -c {dir}/named.conf", 53)])
    t.host("s", "lan", "10.20.0.11", services=[Service("dns", (
        "{infralab} dns serve --secondary lab.test=10.20.0.10 --secondary bind.test=10.20.0.12 "
        "--listen {ip}:53 --control {run}/control --wait-loaded 15"), 53)])
    t.host("c", "lan", "10.20.0.50")
    with Emulation(t) as emu:
        emu.zone_dir = d
        yield emu


def test_dns_xfr_bind_slaves_from_our_master_and_we_slave_from_bind(lab):
    wait_for(lambda: dig(lab, "c", "www.lab.test", "A", "10.20.0.12", "+norec").data()
             == ["10.20.0.80"], 15, "BIND to transfer lab.test from our master")
    assert "aa" in dig(lab, "c", "www.lab.test", "A", "10.20.0.12", "+norec").flags
    wait_for(lambda: dig(lab, "c", "api.bind.test", "A", "10.20.0.11", "+norec").data()
             == ["10.20.0.81"], 15, "our slave to transfer bind.test from BIND")
    # a change on our master reaches BIND by NOTIFY (BIND then asks for IXFR)
    zone = lab.zone_dir / "lab.test.zone"
    zone.write_text(ZONE.replace("( 1 2", "( 2 2") + "new IN A 10.20.0.90\n")
    service_ctl(lab, "m.dns", "reload")
    wait_for(lambda: dig(lab, "c", "new.lab.test", "A", "10.20.0.12", "+norec").data()
             == ["10.20.0.90"], 10, "BIND to pick up serial 2")
    assert "IXFR of lab.test." in (lab.service_dir("m.dns") / "log").read_text()


def test_dns_expire_slave_recovers_when_its_master_returns(lab):
    """The slave outlives its master until expire (SERVFAIL after), keeps retrying,
    and serves the zone again, transferred afresh, once the master is back."""
    wait_for(lambda: dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec").rcode
             == "NOERROR", 15, "our slave to serve lab.test")
    lab.stop_service("m.dns")
    wait_for(lambda: dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec").rcode
             == "SERVFAIL", 20, "the slave's copy to expire")
    t0 = time.monotonic()
    p = lab.start_service("m.dns")
    wait_listening(lab.host("m"), 53, 10, p, "the master again")
    wait_for(lambda: dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec").rcode
             == "NOERROR", 15, "the slave to transfer from its returned master")
    print(f"DNS-EXPIRE: the slave served lab.test again {time.monotonic() - t0:.1f} s after "
          "its master was started again (SOA retry 1 s)")
    assert service_ctl(lab, "s.dns", "stats")["zones"]["lab.test."]["state"] != "expired"


def test_dns_expire_slave_answers_until_expire_then_servfail_until_promoted(lab):
    wait_for(lambda: dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec").rcode
             == "NOERROR", 15, "our slave to serve lab.test")
    lab.stop_service("m.dns")  # the master goes away
    assert "10.20.0.10" not in lab.host("m").cmd("ss -Hlun 'sport = :53'")
    t0 = time.monotonic()
    still = dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec")
    assert still.rcode == "NOERROR" and still.data() == ["10.20.0.80"]
    wait_for(lambda: dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec").rcode
             == "SERVFAIL", 20, "the slave's copy to expire")
    expired_after = time.monotonic() - t0
    print(f"DNS-EXPIRE: slave stopped answering {expired_after:.1f} s after the master died "
          f"(SOA expire 8 s after its last good refresh)")
    # not before expire (8 s from the last good refresh, which was at most refresh = 2 s
    # before the master died), and not long after it
    assert 8 - 2 - 0.5 <= expired_after <= 8 + 2, expired_after
    assert service_ctl(lab, "s.dns", "stats")["zones"]["lab.test."]["state"] == "expired"
    assert service_ctl(lab, "s.dns", "promote lab.test") == "lab.test. promoted to primary"
    d = dig(lab, "c", "www.lab.test", "A", "10.20.0.11", "+norec")
    assert d.rcode == "NOERROR" and "aa" in d.flags and d.data() == ["10.20.0.80"]
