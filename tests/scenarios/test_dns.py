"""DNS-* on the live world topology: real dig/ping against our servers and resolvers."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from emulation.build import wait_for
from infralab.peers import nsd_conf
from infralab.testing import assert_dns_record, dig, service_ctl, within

TTL_SHORT = 5  # moved.example.com's TTL in the zone file
WEB = {"198.51.100.11", "198.51.100.12", "198.51.100.131"}


@pytest.mark.parametrize("host", ["c1", "xs", "xb"])  # campus behind the NAT, both regions
def test_dns_hier_dig_trace_walks_root_tld_and_domain(world, host):
    out = world.host(host).cmd("dig +trace +nodnssec www.example.com")
    assert re.search(r"^com\.\s+\d+\s+IN\s+NS\s+a\.gtld\.com\.", out, re.M), out
    # the com. referral came from one of the three root servers (dig picks one at random)
    roots = ("198.18.1.1#53(ns.root)", "198.18.1.2#53(ns2.root)", "198.18.1.3#53(ns3.root)")
    assert any(f"from {r}" in out for r in roots), out
    assert re.search(r"^example\.com\.\s+\d+\s+IN\s+NS\s+ns[12]\.example\.com\.", out, re.M)
    assert "from 198.18.1.11#53(a.gtld.com)" in out
    assert re.search(r"^www\.example\.com\.\s+300\s+IN\s+CNAME\s+www\.gslb\.example\.com\.",
                     out, re.M), out


def test_dns_auth_answers_authoritatively_with_the_right_sections(world):
    ns1 = "198.18.2.1"
    d = dig(world, "c1", "mail.example.com", "A", ns1, "+norec")
    assert d.rcode == "NOERROR" and "aa" in d.flags and d.data() == ["198.51.100.25"]
    assert {x[3] for x in d.authority} == {"ns1.example.com.", "ns2.example.com."}
    nx = dig(world, "c1", "nope.example.com", "A", ns1, "+norec")
    assert nx.rcode == "NXDOMAIN" and nx.authority[0][2] == "SOA" and nx.authority[0][1] == 60
    nodata = dig(world, "c1", "mail.example.com", "AAAA", ns1, "+norec")
    assert nodata.rcode == "NOERROR" and not nodata.answer and nodata.authority[0][2] == "SOA"
    mx = dig(world, "c1", "example.com", "MX", ns1, "+norec")
    assert mx.data("MX") == ["10 mail.example.com."]
    assert ("mail.example.com.", 300, "A", "198.51.100.25") in mx.additional
    srv = dig(world, "c1", "_http._tcp.example.com", "SRV", ns1, "+norec", "+tcp")
    assert srv.data("SRV") == ["10 50 80 web.example.com."]
    wild = dig(world, "c1", "anything.apps.example.com", "A", ns1, "+norec")
    assert wild.answer == [("anything.apps.example.com.", 300, "A", "198.51.100.11")]
    case = dig(world, "c1", "MaIl.ExAmPlE.cOm", "A", ns1, "+norec")
    assert "MaIl.ExAmPlE.cOm" in case.raw and case.data() == ["198.51.100.25"]
    ref = dig(world, "c1", "www.example.com", "A", "198.18.1.11", "+norec")  # the com. server
    assert "aa" not in ref.flags and not ref.answer
    assert {x[3] for x in ref.authority} == {"ns1.example.com.", "ns2.example.com."}
    assert {x[3] for x in ref.additional} == {"198.18.2.1", "198.18.2.2"}  # glue
    assert dig(world, "c1", "example.org", "A", ns1, "+norec").rcode == "REFUSED"


def test_dns_auth_round_robin_rotates_the_web_addresses(world):
    firsts = set()
    for _ in range(3):
        d = assert_dns_record(world, "c1", "web.example.com", "A", WEB, "198.18.2.1")
        firsts.add(d.data("A")[0])
    assert firsts == WEB  # each address led one answer


def test_dns_auth_answers_equal_nsd_for_the_same_zone_files(world, tmp_path):
    """Interop: NSD serves the same files on ns1:5353; every answer must match as sets."""
    zones = ["example.com.zone", "100.51.198.in-addr.arpa.zone"]
    conf = tmp_path / "nsd.conf"
    conf.write_text(nsd_conf("198.18.2.1@5353", f"{world.topo.base_dir}/zones",
                             {z[:-5]: z for z in zones}, tmp_path))
    nsd = world.host("ns1").popen(["nsd", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "5353" in world.host("ns1").cmd("ss -Hlun 'sport = :5353'"), 10,
                 "nsd to listen")
        queries = [("www.example.com", "A"), ("web.example.com", "AAAA"), ("example.com", "MX"),
                   ("ns1.example.com", "A"), ("ns2.example.com", "A"),
                   ("example.com", "NS"), ("example.com", "SOA"), ("example.com", "TXT"),
                   ("nope.example.com", "A"), ("mail.example.com", "TXT"),
                   ("x.apps.example.com", "A"), ("apps.example.com", "A"),
                   ("_http._tcp.example.com", "SRV"), ("ftp.example.com", "A"),
                   ("example.com", "ANY"), ("131.100.51.198.in-addr.arpa", "PTR"),
                   ("9.100.51.198.in-addr.arpa", "PTR"), ("example.net", "A")]
        for name, qt in queries:
            ours = dig(world, "c1", name, qt, "198.18.2.1", "+norec")
            theirs = dig(world, "c1", name, qt, "198.18.2.1", "+norec", "-p 5353")
            for part in ("rcode", "flags"):
                assert getattr(ours, part) == getattr(theirs, part), (name, qt, part)
            for part in ("answer", "authority", "additional"):
                assert set(getattr(ours, part)) == set(getattr(theirs, part)), (name, qt, part)
    finally:
        nsd.terminate()
        nsd.wait(10)


def test_dns_recursive_ldns_resolves_for_clients_and_caches(world):
    service_ctl(world, "ldns.resolver", "flush")
    d = assert_dns_record(world, "c2", "mail.example.com", "A", {"198.51.100.25"})
    assert {"rd", "ra"} <= d.flags and "aa" not in d.flags  # recursive in, not authoritative
    ttl = d.answer[0][1]
    # the cached copy's TTL counts down: within a few seconds another client sees less
    again = wait_for(lambda: (a := dig(world, "c3", "mail.example.com")).answer
                     and a.answer[0][1] < ttl and a, 5, "the cached TTL to count down", 0.3)
    assert 0 < again.answer[0][1] < ttl, (again.answer, ttl)
    log = (world.service_dir("ldns.resolver") / "queries.jsonl").read_text()
    entries = [json.loads(x) for x in log.splitlines() if "mail.example.com" in x]
    first = [e for e in entries if e["client"] == "10.1.1.12"][-1]
    second = entries[-1]
    assert first["client"] == "10.1.1.12" and first["rd"] == 1 and first["how"] == "resolved"
    assert [s["server"] for s in first["steps"]][-1] in ("198.18.2.1", "198.18.2.2")
    assert second["client"] == "10.1.2.13" and second["how"] == "cache"
    neg = dig(world, "c1", "nothing-here.example.com")
    assert neg.rcode == "NXDOMAIN" and neg.authority[0][2] == "SOA"


def test_dns_recursive_regional_resolvers_work_from_the_root_too(world):
    d = dig(world, "xs", "www.example.co.kr")  # -> www.example.com -> the GSLB (seoul: dc1)
    assert d.data("CNAME") == ["www.example.com.", "www.gslb.example.com."], d.raw
    assert within(d.data("A"), {"198.51.100.11", "198.51.100.12"}), d.raw
    assert_dns_record(world, "xb", "web2a.example.com", "A", {"198.51.100.131"})


def test_dns_ptr_reverse_names_for_every_address(world):
    """Every address the example.com zone names inside the two reverse zones has exactly
    one PTR, and that name's A records lead back to the address (forward-confirmed)."""
    reverse = [ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("198.18.2.0/24")]
    zone = (Path(world.topo.base_dir) / "zones" / "example.com.zone").read_text()
    addrs = sorted({a for a in re.findall(r"\bIN\s+A\s+(\S+)", zone)
                    if any(ipaddress.ip_address(a) in n for n in reverse)})
    assert len(addrs) == 6, addrs  # ns1, ns2, mail, web1a, web1b, web2a
    for addr in addrs:
        d = dig(world, "c1", "-x", addr)
        (name,) = d.data("PTR") or [None]
        assert name is not None and len(d.data("PTR")) == 1, (addr, d.raw)
        assert addr in dig(world, "c1", name, "A", "198.18.2.1", "+norec").data("A"), addr


def test_dns_stub_hosts_file_then_local_cache_then_ldns(world):
    c4 = world.host("c4")
    first = c4.cmd("infralab dns lookup web1b.example.com")
    assert "198.51.100.12" in first and "answered by: LDNS 10.1.0.53" in first, first
    second = c4.cmd("infralab dns lookup web1b.example.com")
    assert "answered by: local cache" in second, second
    (world.host_dir("c4") / "hosts").write_text("127.0.0.1 localhost\n"
                                                "198.51.100.131 intranet.example.com\n")
    third = c4.cmd("infralab dns lookup intranet.example.com")
    assert "198.51.100.131" in third and "answered by: hosts file" in third, third
    # the same hosts file is the host's /etc/hosts: glibc (ping) uses it, c3 does not see it
    assert "(198.51.100.131)" in c4.cmd("ping -c1 -W2 intranet.example.com")
    assert "198.51.100.131" not in world.host("c3").cmd("getent hosts intranet.example.com")


def test_dns_trace_prints_the_ladder_root_tld_domain(world):
    out = world.host("c1").cmd("infralab dns trace www.example.co.kr")
    lines = [x for x in out.splitlines() if "-->" in x]
    assert [re.search(r"--> (\S+)", x).group(1) for x in lines][:2] == ["198.18.1.1",
                                                                        "198.18.1.12"]
    assert "REFERRAL: kr. NS ns.nic.kr." in out and "result: NOERROR" in out
    assert re.search(r"ANSWER: .*www\.gslb\.example\.com\. A 198\.51\.100\.1", out), out
    dig(world, "c1", "mail.example.com")  # one query through the LDNS for its log
    log = world.host("c1").cmd(f"infralab dns querylog "
                               f"{world.service_dir('ldns.resolver')}/queries.jsonl --last 3")
    assert "--> LDNS" in log and "(RD=1)" in log


def test_dns_xfr_ns2_serves_ns1s_zone_and_refuses_strangers(world):
    wait_for(lambda: service_ctl(world, "ns2.dns", "stats")["zones"]["example.com."]
             .get("serving"), 15, "ns2 to load example.com by AXFR")
    a = dig(world, "c1", "example.com", "SOA", "198.18.2.1", "+norec").data("SOA")
    b = dig(world, "c1", "example.com", "SOA", "198.18.2.2", "+norec")
    assert "aa" in b.flags and b.data("SOA") == a
    stranger = world.host("c1").cmd("dig @198.18.2.1 example.com AXFR")
    assert "Transfer failed" in stranger or "REFUSED" in stranger, stranger
    slave = world.host("ns2").cmd("dig @198.18.2.1 example.com AXFR +onesoa")
    assert re.search(r"XFR size: \d+ records", slave), slave


def test_dns_xfr_notify_pushes_an_edit_to_ns2_by_ixfr(world):
    zone = world.service_dir("ns1.dns") / "example.com.zone"
    text = zone.read_text()
    serial = int(re.search(r"(\d+) ; serial", text).group(1))
    zone.write_text(text.replace(f"{serial} ; serial", f"{serial + 1} ; serial")
                    + "printer IN A 198.51.100.77\n")
    assert service_ctl(world, "ns1.dns", "reload") == {"reloaded": ["example.com."]}
    wait_for(lambda: dig(world, "c1", "printer.example.com", "A", "198.18.2.2",
                         "+norec").data() == ["198.51.100.77"], 10, "ns2 to get the edit")
    log = (world.service_dir("ns2.dns") / "log").read_text()
    assert "NOTIFY for example.com." in log and f"IXFR of example.com. from 198.18.2.1: " \
        f"serial {serial + 1}" in log, log


def test_dns_ttl_short_ttl_moves_clients_fast_long_ttl_keeps_the_old_answer(world):
    for name in ("old", "moved"):
        assert_dns_record(world, "c1", f"{name}.example.com", "A", {"198.51.100.11"})
    zone = world.service_dir("ns1.dns") / "example.com.zone"
    text = zone.read_text()
    serial = int(re.search(r"(\d+) ; serial", text).group(1))
    text = text.replace(f"{serial} ; serial", f"{serial + 1} ; serial")
    zone.write_text(text.replace("IN A 198.51.100.11\nmoved", "IN A 198.51.100.131\nmoved")
                    .replace("moved   5   IN A 198.51.100.11", "moved   5   IN A 198.51.100.131"))
    service_ctl(world, "ns1.dns", "reload")
    t0 = time.monotonic()
    wait_for(lambda: dig(world, "c1", "moved.example.com").data() == ["198.51.100.131"], 15,
             "the LDNS to hand out the short-TTL name's new address")
    short_s = time.monotonic() - t0
    old = dig(world, "c1", "old.example.com")
    assert old.data() == ["198.51.100.11"]  # still the cached, pre-migration answer
    assert dig(world, "c1", "old.example.com", "A", "198.18.2.1").data() == ["198.51.100.131"]
    print(f"DNS-TTL: TTL 5 s name moved after {short_s:.1f} s; TTL 300 s name still old, "
          f"for {old.answer[0][1]} s more")
    assert short_s <= TTL_SHORT + 2 and old.answer[0][1] > 200  # the README's "within 7 s"


def test_dns_recursive_ldns_randomises_source_port_and_id_on_the_wire(world):
    """DNS-RECURSIVE: a capture at the LDNS shows every upstream query from its own random
    port with a random ID (what makes Kaminsky-style spoofing hard)."""
    from scapy.layers.dns import DNS
    from scapy.layers.inet import UDP

    from infralab.testing import Capture

    with Capture(world, "ldns", "udp and dst port 53 and src host 10.1.0.53") as cap:
        for i in range(24):
            assert dig(world, "c1", f"rand{i}-{time.time_ns()}.example.com").rcode == "NXDOMAIN"
    queries = [(p[UDP].sport, p[DNS].id) for p in cap.packets if p.haslayer(DNS)]
    ports = [sp for sp, _ in queries]
    ids = [i for _, i in queries]
    assert len(queries) >= 24, queries
    assert len(set(ports)) >= 0.9 * len(ports) and len(set(ids)) >= 0.9 * len(ids), queries
    steps = {abs(a - b) for a, b in zip(ports, ports[1:], strict=False)}
    assert max(ports) - min(ports) > 2000 and not steps <= {0, 1, 2}, ports  # not sequential
    print(f"DNS-RECURSIVE: {len(queries)} upstream queries, {len(set(ports))} distinct source "
          f"ports ({min(ports)}..{max(ports)}), {len(set(ids))} distinct IDs")


def test_dns_interop_kdig_and_drill_accept_our_servers(world):
    """Two more real clients besides dig: Knot's kdig and ldns' drill, over UDP and TCP,
    against the authoritative ns1 and the campus LDNS, plus drill's own trace from our root."""
    c1 = world.host("c1")
    out = c1.cmd("kdig @198.18.2.1 mail.example.com A +norec")
    assert "status: NOERROR" in out and "Flags: qr aa;" in out, out
    assert re.search(r"mail\.example\.com\.\s+300\s+IN\s+A\s+198\.51\.100\.25", out), out
    out = c1.cmd("kdig @10.1.0.53 +tcp example.com MX")
    assert "status: NOERROR" in out and "10 mail.example.com." in out, out
    out = c1.cmd("drill @198.18.2.1 nope.example.com A")
    assert "rcode: NXDOMAIN" in out and "example.com.\t60\tIN\tSOA" in out.replace(" ", "\t"), out
    out = c1.cmd("drill -t @10.1.0.53 -x 198.51.100.131")
    assert "web2a.example.com." in out, out
    hints = world.topo.base_dir + "/zones/root.hints"
    out = c1.cmd(f"drill -T -r {hints} web1a.example.com A")
    assert re.search(r"web1a\.example\.com\.\s+\d+\s+IN\s+A\s+198\.51\.100\.11", out), out
