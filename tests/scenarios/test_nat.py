"""NAT-* on the live world: OVS translates with the controller's flows, real hosts talk
through it, captures at the far end show what the outside saw, and the standard STUN
client (Debian stun-client against stund on `rv`) classifies each NAT behaviour."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from emulation.build import wait_for
from infralab.testing import Capture, assert_path, udp_listen, udp_send

PAT = "203.0.113.1"
POOL = {f"203.0.113.{i}" for i in range(17, 31)}


def nat(world, router: str = "rc") -> dict:
    return world.api(f"/nat/{router}")[router]


def set_behaviour(world, router: str, iface: str, mapping: str, filtering: str) -> None:
    world.api(f"/nat/{router}/{iface}?mapping={mapping}&filtering={filtering}", "POST")


@pytest.fixture
def home_nats_reset(world):
    yield
    for r, i in (("na", "nalink"), ("nb", "nblink")):
        set_behaviour(world, r, i, "endpoint-independent", "endpoint-independent")


def test_nat_hide_outside_server_sees_only_public_addresses(world):
    syns = "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0 and not src host 198.18.3.1"
    with Capture(world, "web2a", syns) as cap:  # (the GSLB's health checks left out)
        for h in ("c1", "c2", "c3", "c4"):
            assert "web2a" in world.host(h).cmd("curl -s -m8 http://198.51.100.131/"), h
    sources = {p["IP"].src for p in cap.packets if p["TCP"].flags == "S"}
    print(f"NAT-HIDE: web2a saw SYNs from {sorted(sources)}")
    assert PAT in sources  # lan1 (c1, c2) by PAT
    assert sources - {PAT} and sources - {PAT} <= POOL  # lan2 (c3, c4) from the pool
    assert not any(s.startswith("10.") for s in sources)


def test_nat_pat_rewrites_ports_when_two_hosts_use_the_same_one(world):
    srv = udp_listen(world, "xb", 7000, 6)
    try:
        assert udp_send(world, "c1", "198.18.20.10", 7000, 5300) == "pong"
        assert udp_send(world, "c2", "198.18.20.10", 7000, 5300) == "pong"
    finally:
        srv.terminate()
        out = srv.communicate()[0]
    seen = re.findall(r"got (\S+):(\d+)", out)
    assert [ip for ip, _ in seen] == [PAT, PAT], out
    assert seen[0][1] == "5300" and seen[1][1] != "5300", out  # preserved, then rewritten


def test_nat_pat_unsolicited_inbound_is_dropped_then_allowed_after_outbound(world):
    before = nat(world)["counters"]["inbound_dropped"]
    lst = udp_listen(world, "c1", 5400, 3)
    assert udp_send(world, "xb", PAT, 5400, 7100) is None  # no binding: dropped
    wait_for(lambda: nat(world)["counters"]["inbound_dropped"] > before, 5,
             "the drop to be counted")
    lst.terminate()
    assert "got " not in lst.communicate()[0]
    lst = udp_listen(world, "c1", 5400, 15, hello=("198.18.20.10", 7100))  # opens a binding
    try:  # (once the controller has made it: a slow machine may take longer than the probe)
        wait_for(lambda: any(r["inside"] == "10.1.1.11:5400" for r in nat(world)["table"]),
                 10, "the binding c1's hello opens")
        assert udp_send(world, "xb", PAT, 5400, 7100) == "pong"
    finally:
        lst.terminate()
        out = lst.communicate()[0]
    assert "got 198.18.20.10:7100" in out, out


def test_nat_static_accepts_inbound_and_is_bidirectional(world):
    with Capture(world, "webc", "tcp port 80") as cap:
        assert "webc" in world.host("xb").cmd("curl -s -m8 http://203.0.113.80/")
    assert {p["IP"].src for p in cap.packets if p["TCP"].dport == 80} == {"198.18.20.10"}
    assert {p["IP"].dst for p in cap.packets if p["TCP"].dport == 80} == {"10.1.9.80"}
    with Capture(world, "web2a", "tcp port 80 and not host 198.18.3.1") as cap:
        world.host("webc").cmd("curl -s -m8 http://198.51.100.131/")
    assert {p["IP"].src for p in cap.packets if p["TCP"].dport == 80} == {"203.0.113.80"}


def test_nat_dnat_vip_spreads_connections_over_the_real_servers(world):
    answers = [world.host("xb").cmd("curl -s -m8 http://203.0.113.90/").split()[:1]
               for _ in range(6)]
    names = [a[0] for a in answers if a]
    print(f"NAT-DNAT-VIP: 6 connections to 203.0.113.90 answered by {names}")
    assert len(names) == 6 and set(names) == {"webc", "webd"}
    assert abs(names.count("webc") - names.count("webd")) <= 2


def udp_seen(world, listener: str, sender: str, address: str, port: int, sport: int) -> str:
    """`sender` sends from `sport` to `address`:`port` and gets the echo back; what the
    listener on `listener` printed (the source it saw)."""
    lst = udp_listen(world, listener, port, 6)
    try:
        assert udp_send(world, sender, address, port, sport) == "pong"
    finally:
        lst.terminate()
        out = lst.communicate()[0]
    return out


def test_nat_double_nat_campus_and_partner_with_the_same_prefix(world):
    assert world.ip("c1").startswith("10.1.1.") and world.ip("p1").startswith("10.1.1.")
    out = udp_seen(world, "p1", "c1", "172.30.1.10", 7200, 5500)
    assert "got 172.31.1.11:5500" in out, out  # the partner sees campus lan1 as 172.31.1.x
    assert " 0% packet loss" in world.host("p1").cmd("ping -n -c1 -w3 172.31.1.12")


def test_nat_partner_range_two_partners_with_the_same_prefix_each_in_its_own_block(world):
    """p1 and p2 are both 10.1.1.10, as is campus lan1's prefix: the campus reaches them
    as 172.30.1.10 and 172.30.2.10, two /24s of the partner range, and p2 sees c1 in the
    block agreed with it (172.31.2.0/24)."""
    assert world.ip("p1") == world.ip("p2") == "10.1.1.10"
    out = udp_seen(world, "p2", "c1", "172.30.2.10", 7201, 5501)
    assert "got 172.31.2.11:5501" in out, out
    out = udp_seen(world, "p1", "c1", "172.30.1.10", 7202, 5502)  # p1 is still p1, not p2
    assert "got 172.31.1.11:5502" in out, out


def test_nat_pat_traceroute_through_the_nat_shows_every_hop(world):
    # the hops beyond rc answer 203.0.113.1; rc translates the ICMP errors back to c1
    assert_path(world, "c1", "web2a",
                ["10.1.1.1", "198.18.0.2", "198.18.0.10", "198.51.100.131"])
    # an address of dc2 nobody answers ARP for: rb gives up and says so, through the NAT
    out = world.host("c1").cmd("ping -n -c1 -w8 198.51.100.140")
    assert re.search(r"From 198\.18\.0\.10 icmp_seq=\d+ Destination Host Unreachable",
                     out), out


def test_nat_table_cli_api_and_translation_log(world, capsys):
    assert udp_send(world, "c2", "198.18.20.10", 9, 5600, wait=0.3) is None
    rows = [r for r in nat(world)["table"] if r["inside"] == "10.1.1.12:5600"]
    assert rows and rows[0]["outside"].startswith(PAT + ":") and rows[0]["proto"] == "udp"
    out = subprocess.run([sys.executable, "-m", "infralab", "nat", "show", "--router", "rc",
                          "--run", world.name], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "10.1.1.12:5600" in out.stdout, out.stdout + out.stderr
    wait_for(lambda: any(e["event"] == "create" and e["inside"] == "10.1.1.12:5600"
                         for e in map(json.loads, (world.rundir / "nat.jsonl").read_text()
                                      .splitlines())), 5, "the create in the translation log")
    from infralab.mncli import InfralabCLI

    script = world.rundir / "nat-cli.txt"
    # the Mininet CLI's NAT table, DHCP leases, the LDNS cache and a resolution ladder
    script.write_text("nat rc\nleases\ndnscache ldns www.example.com\n"
                      "trace mail.example.com c1\n")
    world.host("c1").cmd("dig +short www.example.com")
    capsys.readouterr()
    cli = InfralabCLI(world, script=str(script))
    out = capsys.readouterr().out
    assert cli.status == 0
    assert "10.1.1.12:5600" in out and "203.0.113.1:" in out  # nat rc
    assert re.search(r"10\.1\.1\.11\s+02:00:00:01:01:11\s+bound", out), out  # leases
    assert re.search(r"ldns: [1-9]\d* cached RRset", out) and "www.example.com." in out, out
    assert "198.18.1.1" in out and "198.51.100.25" in out, out  # trace: root ... answer


def test_nat_holepunch_direct_fails_then_rendezvous_punch_succeeds(world, home_nats_reset):
    # direct: h1 cannot reach h2's private address, nor its NAT's address unsolicited
    assert "100% packet loss" in world.host("h1").cmd("ping -n -c1 -w2 192.168.2.10")
    lst = udp_listen(world, "h2", 4500, 4)
    assert udp_send(world, "h1", "198.18.30.134", 4500, 4501) is None
    lst.terminate()
    assert "got " not in lst.communicate()[0]
    ok = punch(world)
    assert ok["h1"]["result"] == ok["h2"]["result"] == "connected", ok
    assert ok["h1"]["peer_packets_came_from"].startswith("198.18.30.134:")


@pytest.mark.parametrize("filtering", ["address-dependent", "address-and-port-dependent"])
def test_nat_holepunch_works_through_restricted_cone_nats(world, home_nats_reset, filtering):
    for r, i in (("na", "nalink"), ("nb", "nblink")):
        set_behaviour(world, r, i, "endpoint-independent", filtering)
    got = punch(world)
    assert got["h1"]["result"] == got["h2"]["result"] == "connected", got


def test_nat_holepunch_fails_through_symmetric_nats(world, home_nats_reset):
    for r, i in (("na", "nalink"), ("nb", "nblink")):
        set_behaviour(world, r, i, "address-and-port-dependent", "address-and-port-dependent")
    before = {r: nat(world, r)["counters"]["inbound_dropped"] for r in ("na", "nb")}
    got = punch(world, timeout=4)
    assert got["h1"]["result"] == got["h2"]["result"] == "failed", got
    after = {r: nat(world, r)["counters"]["inbound_dropped"] for r in ("na", "nb")}
    # each NAT dropped the other peer's punches: no binding matched their new mapping
    assert all(after[r] > before[r] for r in after), (before, after)


def punch(world, timeout: float = 8) -> dict:
    procs = {h: world.host(h).popen(
        [sys.executable, "-m", "infralab", "punch", "peer", "--rendezvous", "198.18.30.10:4000",
         "--name", h, "--peer", other, "--timeout", str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for h, other in (("h1", "h2"), ("h2", "h1"))}
    out = {h: p.communicate(timeout=timeout + 20)[0] for h, p in procs.items()}
    return {h: json.loads(o.strip().splitlines()[-1]) for h, o in out.items()}


STUN_EXPECT = [
    ("endpoint-independent", "endpoint-independent", "Independent Mapping, Independent Filter"),
    ("endpoint-independent", "address-dependent",
     "Independent Mapping, Address Dependent Filter"),
    ("endpoint-independent", "address-and-port-dependent",
     "Independent Mapping, Port Dependent Filter"),
    ("address-and-port-dependent", "address-and-port-dependent", "Dependent Mapping"),
]


@pytest.mark.parametrize("mapping,filtering,expected", STUN_EXPECT)
def test_nat_holepunch_stun_client_classifies_each_behaviour(world, home_nats_reset,
                                                             mapping, filtering, expected):
    set_behaviour(world, "na", "nalink", mapping, filtering)
    out = world.host("h1").cmd("stun 198.18.30.10 -v 2>&1")
    line = next((x for x in out.splitlines() if x.startswith("Primary:")), "")
    print(f"NAT-HOLEPUNCH stun-client, na {mapping}/{filtering}: {line.strip()}")
    assert line.startswith("Primary: " + expected), out[-800:]


def test_nat_timeout_closed_tcp_binding_is_held_for_the_transitory_timeout(world):
    """NAT-TIMEOUT, RFC 5382 REQ-5, with the PAT's TCP bindings in OVS conntrack (issue
    17): the port the controller picked is in rc's conntrack zone, no flow carries the
    binding, and the closed connection is held for the configured transitory timeout
    (240 s: the zone's timeout policy; OVS's own default would drop it after 30 s), while
    the controller's table keeps the binding."""
    from controllers.nat import CT_ZONE_BASE

    seen = world.host("c1").cmd("curl -s -m8 http://198.51.100.131/whoami").strip()
    ip, port = seen.split(":")
    assert ip == PAT
    zone = CT_ZONE_BASE + next(r.dpid for r in world.plan.routers if r.name == "rc")

    def entry() -> str:
        out = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", "-s", f"zone={zone}"],
                             capture_output=True, text=True).stdout
        return next((line for line in out.splitlines() if f"dst={PAT}," in line
                     and f"dport={port})" in line and "src=10.1.1.11," in line), "")

    def closed_timeout() -> int:
        m = re.search(r"timeout=(\d+).*state=(\w+)", entry())
        return int(m.group(1)) if m and m.group(2) in ("TIME_WAIT", "CLOSED", "CLOSING",
                                                         "FIN_WAIT_2", "LAST_ACK") else 0

    assert wait_for(lambda: closed_timeout() > 30, 5,
                    "the closed connection held past OVS's default"), entry()
    assert closed_timeout() <= 240, entry()
    flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows",
                            world.plan.bridge("rc"), "tcp"],
                           capture_output=True, text=True).stdout
    assert f"set_field:{port}->tcp_src" not in flows and f"tp_dst={port}" not in flows
    assert any(r["outside"] == seen and r["proto"] == "tcp" for r in nat(world)["table"])


def test_nat_pat_tcp_mapping_is_endpoint_independent(world):
    """NAT-PAT, RFC 5382 REQ-1: two connections from one inside port to two servers
    leave from one public port (the controller's choice, committed into conntrack), even
    where the inside port itself is taken (by c1) and was free towards the second."""
    client = ("import socket, sys\n"
              "for ip in sys.argv[1:]:\n"
              "    s = socket.socket()\n"
              "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "    s.settimeout(8)\n"
              "    s.bind(('0.0.0.0', 45123))\n"
              "    s.connect((ip, 80))\n"
              "    s.sendall(b'GET /whoami HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
              "    print(s.makefile('rb').read().split(b'\\r\\n\\r\\n', 1)[1].decode()"
              ".strip())\n")
    path = world.rundir / "eim-client.py"
    path.write_text(client)
    first = world.host("c1").cmd(f"python3 {path} 198.51.100.131").split()
    srcs = world.host("c2").cmd(f"python3 {path} 198.51.100.131 198.51.100.12").split()
    print(f"NAT-PAT: c1:45123 seen as {first}, c2:45123 as {srcs}")
    assert first == [f"{PAT}:45123"], first  # port preserved for the first to ask
    # c2 cannot have 45123 (c1's) and keeps its one port for both servers, though a
    # port-preserving NAT would give it 45123 towards the second (free there)
    assert len(srcs) == 2 and srcs[0] == srcs[1] and srcs[0].startswith(PAT + ":") and \
        srcs[0] != f"{PAT}:45123", srcs


def test_nat_hairpin_inside_host_reaches_the_static_server_by_its_public_address(world):
    """RFC 4787 REQ-9 / RFC 5382 REQ-8: c2 -> 203.0.113.80 stays inside, and webc sees c2
    by its public (PAT) endpoint, so its reply comes back through the NAT."""
    seen = world.host("c2").cmd("curl -s -m8 http://203.0.113.80/whoami").strip()
    assert seen.startswith(PAT + ":"), seen


def test_nat_ladder_two_captures_show_each_packet_before_and_after(world, tmp_path):
    """TB-OBSERVE: `infralab capture` records both sides of rc's PAT at once — at the hosts
    (c1, web2a) and at the router's own ports (rc:c1, rc:wan); `infralab ladder IN OUT`
    pairs each packet with itself translated."""
    from infralab.ladder import events, nat_steps

    cap = subprocess.Popen(
        [sys.executable, "-m", "infralab", "capture", "c1", "web2a", "rc:c1", "rc:wan",
         "--seconds", "8", "--dir", str(tmp_path), "--run", str(world.rundir),
         "--filter", "tcp port 80 and not host 198.18.3.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    names = ("c1", "web2a", "rc-c1", "rc-wan")
    pcaps = {n: tmp_path / f"{n}.pcap" for n in names}
    wait_for(lambda: all(p.exists() for p in pcaps.values()), 10, "the four tcpdumps started")
    assert "web2a" in world.host("c1").cmd("curl -s -m8 http://198.51.100.131/")
    log = cap.communicate(timeout=30)[0]
    assert cap.returncode == 0, log
    for inside, outside in (("c1", "web2a"), ("rc-c1", "rc-wan")):
        steps = nat_steps(events(pcaps[inside]), events(pcaps[outside]))
        both = [s for s in steps if s.inside and s.outside]
        assert len(both) >= 6, (inside, outside, steps)  # handshake, request, response, close
        for s in both:
            inner, outer = ((s.inside.src_ep, s.outside.src_ep) if s.outbound
                            else (s.inside.dst_ep, s.outside.dst_ep))
            assert inner.startswith("10.1.1.11:") and outer.startswith(PAT + ":"), s
        assert both[0].outbound and both[0].label.endswith(" S")
    pair = [str(pcaps["c1"]), str(pcaps["web2a"])]
    out = subprocess.run([sys.executable, "-m", "infralab", "ladder", *pair],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "10.1.1.11:" in out.stdout and PAT + ":" in out.stdout
    png = tmp_path / "nat.png"
    subprocess.run([sys.executable, "-m", "infralab", "ladder", *pair, "-o",
                    str(png)], check=True, capture_output=True, timeout=60)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(out.stdout)
