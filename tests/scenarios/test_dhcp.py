"""DHCP-* on the live `dhcplab` topology: real clients (ours, ISC dhclient, busybox udhcpc)
and real servers (ours, Kea, dnsmasq) through the controller's relay, with captures to
show what went on the wire and 20 s leases so the lifecycle is seen in under a minute."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import scapy.layers.dhcp  # noqa: F401  (BOOTP/DHCP layers for the captures)

from emulation.build import Emulation, wait_for, wait_listening
from infralab.testing import Capture
from tests.scenarios.conftest import build

HERE = Path(__file__).resolve().parents[2] / "topologies"
PY = sys.executable
SRV = "10.2.0.10"


@pytest.fixture(scope="module")
def lab():
    with build("dhcplab") as emu:
        yield emu


class Server:
    """Our DHCP server on a host of the lab, started by the test (so it can be killed)."""

    def __init__(self, emu: Emulation, host: str, config: str, fresh: bool = True) -> None:
        self.emu, self.host = emu, host
        d = emu.host_dir(host)
        self.leases, self.control, self.log = d / "leases.jsonl", d / "dhcp.ctl", d / "dhcp.log"
        if fresh:
            self.leases.unlink(missing_ok=True)
        self.config = str(HERE / "dhcp" / config)
        self.start()

    def start(self) -> None:
        node = self.emu.host(self.host)
        self.control.unlink(missing_ok=True)  # (a killed server leaves its socket file)
        self.proc = node.popen([PY, "-m", "infralab", "dhcp", "serve", "--config", self.config,
                                "--interface", f"{self.host}-eth0", "--lease-file",
                                str(self.leases), "--control", str(self.control), "--log",
                                str(self.log)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        wait_listening(node, 67, 10, self.proc, f"dhcp server on {self.host}")
        wait_for(self.control.exists, 5, "the control socket")

    def ask(self, what: str):
        from services.common.control import control_request

        return control_request(self.control, what)

    def leases_by_ip(self) -> dict[str, dict]:
        return {r["ip"]: r for r in self.ask("leases")}

    def held(self) -> list[tuple[str, str]]:
        """(address, MAC) of every lease as the server lists it, duplicates kept: a dict
        keyed by address would hide an address held twice."""
        return sorted((r["ip"], r["mac"]) for r in self.ask("leases"))

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)


@pytest.fixture
def server(lab):
    s = Server(lab, "srv", "lab.yaml")
    yield s
    s.stop()


class Client:
    """`infralab dhcp client` on a host; its JSON-lines log tells every state change.
    Every one a test starts is stopped when the test ends, passed or failed
    (`stop_clients`): the emulation does not know them."""

    started: list[Client] = []

    def __init__(self, emu: Emulation, host: str, *args: str) -> None:
        self.emu, self.host = emu, host
        Client.started.append(self)
        self.logf = emu.host_dir(host) / "client.jsonl"
        self.logf.unlink(missing_ok=True)
        self.proc = emu.host(host).popen(
            [PY, "-m", "infralab", "dhcp", "client", f"{host}-eth0", "--retry", "1",
             "--log", str(self.logf), *args], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def events(self) -> list[dict]:
        try:
            return [json.loads(x) for x in self.logf.read_text().splitlines()]
        except OSError:
            return []

    def bound(self, timeout: float = 10) -> dict:
        return wait_for(lambda: next((e for e in reversed(self.events())
                                      if e["event"] == "bound"), None), timeout,
                        f"{self.host} to get a lease")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(autouse=True)
def stop_clients():
    yield
    while Client.started:
        Client.started.pop().stop()


def address(emu: Emulation, host: str) -> str:
    return emu.ip(host)


def flush(emu: Emulation, host: str) -> None:
    emu.host(host).cmd(f"ip -4 addr flush dev {host}-eth0")


def dhcp_packets(cap: Capture) -> list:
    return [p for p in cap.packets if p.haslayer("BOOTP")]


def msg_type(pkt) -> int:
    for opt in pkt["DHCP"].options:
        if isinstance(opt, tuple) and opt[0] == "message-type":
            return int(opt[1])
    return 0


def test_dhcp_relay_dora_through_the_controller_for_two_subnets(lab, server):
    with Capture(lab, "srv", "udp port 67", snaplen=1500) as cap:
        c1 = Client(lab, "a1", "--resolv-conf", str(lab.host_dir("a1") / "resolv.conf"))
        c2 = Client(lab, "b1")
        try:
            b1, b2 = c1.bound(), c2.bound()
        finally:
            c1.stop()
            c2.stop()
    assert b1["address"].startswith("10.2.1.1") and b1["router"] == "10.2.1.1"
    assert b2["address"].startswith("10.2.2.1") and b2["router"] == "10.2.2.1"
    assert [e["state"] for e in c1.events() if e["event"] != "send"][:1] == ["BOUND"]
    sent = [e["message"] for e in c1.events() if e["event"] == "send"]
    assert sent[:2] == ["DISCOVER", "REQUEST"]  # DORA, the client's half
    assert (lab.host_dir("a1") / "resolv.conf").read_text().startswith("search lab.example")
    requests = [p for p in dhcp_packets(cap) if p["BOOTP"].op == 1]
    relayed = [p for p in requests if p["BOOTP"].giaddr != "0.0.0.0"]
    # the rest came straight from the clients: their RELEASEs (unicast, not relayed)
    assert {msg_type(p) for p in requests if p not in relayed} <= {7}
    gi = {p["BOOTP"].giaddr for p in relayed}
    assert gi == {"10.2.1.1", "10.2.2.1"}  # one server, two subnets, chosen by giaddr
    for p in relayed:
        assert p["IP"].dst == SRV and p["IP"].src == p["BOOTP"].giaddr  # unicast to us
        rai = [o[1] for o in p["DHCP"].options if isinstance(o, tuple)
               and o[0] == "relay_agent_information"]
        assert rai and b"r1/lan" in rai[0], p["DHCP"].options  # option 82 circuit id
    # TB-OBSERVE: the same capture as a ladder: each client's DORA, relayed by its giaddr
    from infralab.ladder import events

    dora = [e.label.split(" giaddr=")[0].split(" yiaddr=")[0].split(" server=")[0]
            for e in events(cap.path)
            if "giaddr=10.2.1.1" in e.label]
    assert dora[:4] == ["DHCP DISCOVER", "DHCP OFFER", "DHCP REQUEST", "DHCP ACK"], dora
    print("DHCP-RELAY: a1 " + b1["address"] + ", b1 " + b2["address"] + "; relayed with "
          f"giaddr {sorted(gi)}")


def test_dhcp_lease_renew_unicast_at_t1_rebind_broadcast_at_t2_then_expiry(lab, server):
    """20 s leases, T1/T2 at the notes' 50 % / 75 %: renew at 10 s (unicast, our server
    answers), server gone, rebind at 15 s (broadcast), expiry at 20 s (address removed)."""
    flush(lab, "a1")
    cl = Client(lab, "a1", "--t1", "0.5", "--t2", "0.75")
    try:
        first = cl.bound()
        ip = first["address"].split("/")[0]
        assert (first["t1"], first["t2"]) == (10.0, 15.0)
        with Capture(lab, "a1", "udp port 67 or udp port 68", snaplen=1500) as cap:
            wait_for(lambda: len([e for e in cl.events() if e["event"] == "bound"]) >= 2, 15,
                     "the renewal at T1")
            server.stop()  # no answer to the next renewal: the client must rebind
            wait_for(lambda: any(e["event"] == "unconfigured" for e in cl.events()), 30,
                     "the lease to expire")
        assert address(lab, "a1") == "" or not address(lab, "a1").startswith(ip)
    finally:
        cl.stop()
    reqs = [p for p in dhcp_packets(cap) if p["BOOTP"].op == 1 and msg_type(p) == 3]
    renew = [p for p in reqs if p["IP"].dst == SRV]
    rebind = [p for p in reqs if p["IP"].dst == "255.255.255.255"]
    assert renew and renew[0]["BOOTP"].ciaddr == ip and renew[0]["IP"].src == ip
    assert rebind and rebind[0]["BOOTP"].ciaddr == ip  # REBINDING: broadcast, ciaddr set
    states = [e["state"] for e in cl.events() if e["event"] in ("bound", "unconfigured",
                                                              "send")]
    assert "RENEWING" in states and "REBINDING" in states
    times = {e["state"]: e["time"] for e in reversed(cl.events()) if e["event"] == "send"}
    t0 = first["time"]
    t1 = [e for e in cl.events() if e["event"] == "bound"][1]["time"]  # renewed lease
    gone = [e for e in cl.events() if e["event"] == "unconfigured"][0]["time"]
    print(f"DHCP-LEASE: bound, renewed at +{times['RENEWING'] - t0:.1f} s (unicast to {SRV});"
          f" server stopped; rebind at +{times['REBINDING'] - t1:.1f} s of the renewed lease "
          f"(broadcast), unconfigured at +{gone - t1:.1f} s")
    assert 9 <= times["RENEWING"] - t0 <= 12  # T1 = 50 % of 20 s
    assert 14 <= times["REBINDING"] - t1 <= 17  # T2 = 75 %
    assert 19 <= gone - t1 <= 22  # the lease's end


def test_dhcp_lease_release_frees_the_address_at_once(lab, server):
    flush(lab, "a3")
    cl = Client(lab, "a3")
    ip = cl.bound()["address"].split("/")[0]
    assert ip in server.leases_by_ip()
    cl.stop()  # SIGTERM: the client sends RELEASE
    wait_for(lambda: ip not in server.leases_by_ip(), 5, "the release")
    assert address(lab, "a3") == ""


def test_dhcp_lease_persistence_kill_9_and_restart_loses_nothing(lab, server):
    got = {}
    for h in ("a1", "a3"):
        flush(lab, h)
        cl = Client(lab, h, "--once")
        got[h] = cl.bound()["address"].split("/")[0]
        cl.proc.wait(10)
    before = server.held()
    server.stop(kill=True)  # no chance to save anything more
    server.start()
    after = server.held()
    assert after == before and len({ip for ip, _ in after}) == len(after)
    assert set(got.values()) <= {ip for ip, _ in after} and got
    cl = Client(lab, "b1", "--once")  # a new client never gets an address somebody holds
    assert cl.bound()["address"].split("/")[0] not in {ip for ip, _ in after}


POOL1 = {f"10.2.1.{n}" for n in range(100, 110)} - {"10.2.1.105"}  # lab.yaml: 105 excluded


def starve(lab: Emulation, count: int, seconds: float) -> dict:
    out = lab.host("x1").popen([PY, "-m", "infralab", "dhcp", "starve", "x1-eth0", "--count",
                                str(count), "--rate", "60", "--seconds", str(seconds)],
                               stdout=subprocess.PIPE, text=True).communicate(timeout=30)[0]
    return json.loads(out.strip().splitlines()[-1])


def test_dhcp_pool_reservation_exclusion_and_exhaustion(lab, server):
    """The pool filled for real (20 s leases, so within one lease time): 20 spoofed
    clients get exactly the pool's nine addresses, never the excluded one; the next client
    is refused and counted; the reserved MAC still gets its address outside the pool."""
    lab.api("/relay/r1?defence=off", "POST")  # (the relay would stop the flood at 4 MACs)
    try:
        taken = starve(lab, 20, 4)["leases_taken"]
        served = [ip for ip, _ in server.held()]
        refused_before = server.ask("stats")["exhausted"]
        flush(lab, "a1")
        late = Client(lab, "a1", "--once")
        with pytest.raises(TimeoutError):
            late.bound(timeout=5)
        late.stop()
        refused = server.ask("stats")["exhausted"] - refused_before
        flush(lab, "a2")
        cl = Client(lab, "a2", "--once")
        reserved = cl.bound()["address"]
        cl.proc.wait(10)
    finally:
        lab.api("/relay/r1?defence=on", "POST")
    print(f"DHCP-POOL: 20 clients took {taken} leases: {sorted(served)}; the next was refused "
          f"{refused} time(s); the reserved MAC got {reserved}")
    assert taken == 9 and sorted(served) == sorted(POOL1)  # the whole pool, once each
    assert "10.2.1.105" not in served  # excluded
    assert refused >= 1 and server.ask("stats")["free"]["10.2.1.0/24"] == 0
    assert reserved == "10.2.1.50/24"  # reserved for its MAC, even with the pool full


def test_dhcp_multi_two_servers_client_takes_one_offer_other_frees_it(lab):
    d1, d2 = Server(lab, "d1", "seg1.yaml"), Server(lab, "d2", "seg2.yaml")
    try:
        flush(lab, "s1")
        cl = Client(lab, "s1", "--once")
        ip = cl.bound()["address"].split("/")[0]
        cl.proc.wait(10)
        winner, loser = (d1, d2) if ip.startswith("10.2.3.11") else (d2, d1)
        assert ip in winner.leases_by_ip()
        wait_for(lambda: loser.ask("stats")["withdrawn"] == 1, 5, "the other server to "
                 "free its offer")
        assert loser.ask("leases") == [] and loser.ask("stats")["offer"] >= 1
    finally:
        d1.stop()
        d2.stop()


def test_dhcp_bootp_request_gets_a_bootp_reply(lab):
    d1 = Server(lab, "d1", "seg1.yaml")
    try:
        code = (
            "import socket,sys;from wire import dhcp as p;"
            "from services.dhcp.rawlink import raw_socket,if_mac;"
            "from wire.frames import udp_frame,udp_of_frame;"
            "import select;i='s1-eth0';mac=if_mac(i);r=raw_socket(i);"
            "m=p.DhcpMessage(p.BOOTREQUEST,4242,chaddr=bytes.fromhex(mac.replace(':','')),"
            "flags=p.FLAG_BROADCAST,bootp=True);"
            "r.send(udp_frame(mac,'ff:ff:ff:ff:ff:ff',p.ZERO,"
            "p.IPv4Address('255.255.255.255'),68,67,m.to_bytes()));"
            "import time;end=time.time()+5\n"
            "while time.time()<end:\n"
            " if select.select([r],[],[],0.5)[0]:\n"
            "  g=udp_of_frame(r.recv(65535),68)\n"
            "  if g:\n"
            "   a=p.parse(g[2])\n"
            "   if a.xid==4242: print(a.op,a.bootp,a.yiaddr,a.siaddr);break")
        out = lab.host("s1").popen([PY, "-c", code], stdout=subprocess.PIPE, text=True,
                                   cwd=str(HERE.parent)).communicate(timeout=20)[0]
        op, bootp, yiaddr, siaddr = out.split()
        assert (op, bootp, siaddr) == ("2", "True", "10.2.3.2")  # a BOOTREPLY, no DHCP
        assert yiaddr.startswith("10.2.3.11")  # from d1's pool
        lease = d1.leases_by_ip()[yiaddr]
        assert lease["remaining"] == "infinite"
    finally:
        d1.stop()


def test_dhcp_client_interop_dhclient_gets_a_lease_and_udhcpc_gets_and_renews_one(lab, server):
    for h in ("a1", "a3"):
        flush(lab, h)
    lf = lab.host_dir("a1") / "dhclient.leases"
    pidf = lab.host_dir("a1") / "dhclient.pid"
    out = lab.host("a1").cmd(f"timeout 20 dhclient -v -1 -lf {lf} -pf {pidf} a1-eth0 2>&1")
    m = re.search(r"DHCPACK of (10\.2\.1\.\d+) from 10\.2\.1\.1\b", out)  # via the relay
    assert m, out
    assert server.leases_by_ip()[m.group(1)]["mac"] == lab.host("a1").MAC()
    before = len(server.log.read_text().splitlines())  # (earlier tests' acks are not this one's)
    udh = lab.host("a3").popen(["udhcpc", "-i", "a3-eth0", "-f", "-t", "5", "-T", "1",
                                "-s", "/bin/true"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        def acks() -> list[dict]:
            return [r for r in map(json.loads, server.log.read_text().splitlines()[before:])
                    if r["event"] == "ack" and r["mac"] == lab.host("a3").MAC()]

        # a renewal: a REQUEST naming its address in ciaddr (RENEWING at T1), acked for
        # the same address the first exchange bound
        wait_for(lambda: any(r["how"] == "renew" for r in acks()), 25,
                 "udhcpc to renew (T1 = 10 s)")
        got = acks()
        assert got[0]["how"] == "select", got
        renewed = next(r for r in got if r["how"] == "renew")
        assert (renewed["client"], renewed["ip"]) == (got[0]["client"], got[0]["ip"]), got
    finally:
        udh.terminate()
        udh.wait(10)
        lab.host("a1").cmd(f"dhclient -r -lf {lf} -pf {pidf} a1-eth0 >/dev/null 2>&1; "
                           f"kill $(cat {pidf}) 2>/dev/null")


def kea_config(path: Path, interface: str, subnets: list[tuple[str, str, str]],
               leases: Path) -> None:
    path.write_text(json.dumps({"Dhcp4": {
        "interfaces-config": {"interfaces": [interface], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": True, "name": str(leases),
                           "lfc-interval": 0},
        "control-socket": {"socket-type": "unix", "socket-name": str(path) + ".sock"},
        "valid-lifetime": 60,
        "subnet4": [{"id": i + 1, "subnet": net, "pools": [{"pool": pool}],
                     "option-data": [{"name": "routers", "data": router}]}
                    for i, (net, pool, router) in enumerate(subnets)],
        "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                     "output_options": [{"output": str(path) + ".log"}]}]}}))


def start_kea(lab: Emulation, host: str, subnets) -> subprocess.Popen:
    d = lab.host_dir(host)
    cfg, leases = d / "kea.json", d / "kea-leases.csv"
    leases.unlink(missing_ok=True)
    kea_config(cfg, f"{host}-eth0", subnets, leases)
    env = {**os.environ, "KEA_PIDFILE_DIR": str(d), "KEA_LOCKFILE_DIR": str(d)}
    p = lab.host(host).popen(["kea-dhcp4", "-c", str(cfg)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    wait_listening(lab.host(host), 67, 10, p, "kea-dhcp4")
    return p


def test_dhcp_relay_interop_kea_behind_our_relay_serves_both_subnets(lab):
    kea = start_kea(lab, "srv", [("10.2.1.0/24", "10.2.1.150-10.2.1.160", "10.2.1.1"),
                                 ("10.2.2.0/24", "10.2.2.150-10.2.2.160", "10.2.2.1")])
    try:
        got = {}
        for h in ("a1", "b1"):
            flush(lab, h)
            cl = Client(lab, h, "--once")
            got[h] = cl.bound()
            cl.proc.wait(10)
        assert got["a1"]["address"].startswith("10.2.1.15") and \
            got["a1"]["server"] == SRV
        assert got["b1"]["address"].startswith("10.2.2.15")
    finally:
        kea.terminate()
        kea.wait(10)


def test_dhcp_client_interop_our_client_with_kea_and_dnsmasq(lab):
    kea = start_kea(lab, "d1", [("10.2.3.0/24", "10.2.3.170-10.2.3.179", "10.2.3.1")])
    try:
        flush(lab, "s1")
        cl = Client(lab, "s1", "--once")
        assert cl.bound()["address"].startswith("10.2.3.17")
        cl.proc.wait(10)
    finally:
        kea.terminate()
        kea.wait(10)
    d = lab.host_dir("d1")
    dm = lab.host("d1").popen(["dnsmasq", "--no-daemon", "--port=0", "--interface=d1-eth0",
                               "--bind-interfaces", "--dhcp-range=10.2.3.180,10.2.3.189,60",
                               f"--dhcp-leasefile={d / 'dnsmasq.leases'}",
                               f"--pid-file={d / 'dnsmasq.pid'}", "--no-resolv",
                               "--log-facility=-", "--user=root"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(lab.host("d1"), 67, 10, dm, "dnsmasq")
        flush(lab, "s1")
        cl = Client(lab, "s1", "--once")
        got = cl.bound()
        assert got["address"].startswith("10.2.3.18") and got["server"] == "10.2.3.2"
        cl.proc.wait(10)
    finally:
        dm.terminate()
        dm.wait(10)


def test_dhcp_starve_attack_exhausts_the_pool_without_the_defence_not_with_it(lab):
    def attack() -> dict:
        return starve(lab, 30, 8)

    results = {}
    for defence in ("off", "on"):
        lab.api(f"/relay/r1?defence={defence}", "POST")
        srv = Server(lab, "srv", "lab.yaml")  # an empty lease file each time
        try:
            taken = attack()["leases_taken"]
            flush(lab, "a1")
            cl = Client(lab, "a1", "--once")
            try:
                got = cl.bound(timeout=6)["address"]
            except TimeoutError:
                got = None
            cl.stop()
            results[defence] = (taken, got, srv.ask("stats")["exhausted"])
        finally:
            srv.stop()
    lab.api("/relay/r1?defence=on", "POST")
    relay = lab.api("/relay/r1")
    print(f"DHCP-STARVE: defence off: attacker took {results['off'][0]} leases, a1 got "
          f"{results['off'][1]}; defence on: attacker took {results['on'][0]}, a1 got "
          f"{results['on'][1]}; relay dropped {relay['counters']['dropped_mac_limit']} "
          "requests over the MAC limit")
    assert results["off"][0] == 9 and results["off"][1] is None  # all 9, a1 starved
    assert results["off"][2] >= 1  # the server counted a1's refusal
    assert results["on"][0] <= 4 and results["on"][1] is not None
    assert results["on"][2] == 0  # defended: nobody was refused
    assert relay["counters"]["dropped_mac_limit"] > 0


def test_dhcp_starve_snooping_drops_a_rogue_servers_answers(lab, server):
    """Control run first: with snooping off and the real server silent, the client takes
    the rogue's lease. With snooping on the rogue's answers are dropped by the switch (and
    counted); the client gets nothing from it, and its lease from the real server."""
    lab.host("x1").cmd("ip addr add 10.2.1.66/24 dev x1-eth0")  # a rogue needs an address
    rogue = Server(lab, "x1", "rogue.yaml")

    def lease(timeout: float = 10) -> dict | None:
        flush(lab, "a3")
        cl = Client(lab, "a3", "--once")
        try:
            return cl.bound(timeout)
        except TimeoutError:
            return None
        finally:
            cl.stop()

    try:
        server.stop()
        lab.api("/relay/r1?snooping=off", "POST")
        fooled = lease()
        lab.api("/relay/r1?snooping=on", "POST")
        dropped_before = lab.api("/relay/r1")["counters"]["dropped_snooping"]
        guarded = lease(timeout=5)
        dropped = lab.api("/relay/r1")["counters"]["dropped_snooping"] - dropped_before
        server.start()
        got = lease()
    finally:
        lab.api("/relay/r1?snooping=on", "POST")
        rogue.stop()
        lab.host("x1").cmd("ip addr flush dev x1-eth0")
    print(f"DHCP-STARVE snooping: off -> a3 took {fooled and fooled['address']} from "
          f"{fooled and fooled['server']}; on -> {guarded}, {dropped} rogue packets dropped; "
          f"with the real server: {got and got['address']}")
    assert fooled is not None and fooled["server"] == "10.2.1.66"  # the rogue can win
    assert guarded is None and dropped >= 1  # its offers never reached the client
    assert got is not None and got["server"] == SRV and got["address"].startswith("10.2.1.1")


def test_dhcp_lease_kill_9_under_load_loses_no_acknowledged_lease(lab):
    """Kea's promise, ours too: every lease a client got an ACK for is still there after
    the server is killed (-9) in the middle of a burst and started again."""
    d1 = Server(lab, "d1", "seg-load.yaml")
    record = lab.host_dir("s1") / "acked.jsonl"
    record.unlink(missing_ok=True)
    flush(lab, "s1")
    load = lab.host("s1").popen([PY, "-m", "infralab", "dhcp", "starve", "s1-eth0",
                                 "--count", "140", "--rate", "100", "--seconds", "6",
                                 "--record", str(record)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: record.exists() and len(record.read_text().splitlines()) >= 20, 10,
                 "the first acknowledged leases")
        d1.stop(kill=True)
        d1.start()  # same lease file
        out = load.communicate(timeout=30)[0]
        acked = {(r["ip"], r["mac"]) for r in map(json.loads, record.read_text().splitlines())}
        rows = d1.held()  # the raw list: an address held twice shows up twice
        held = set(rows)
        print(f"DHCP-LEASE under load: {len(acked)} leases acknowledged around a kill -9; "
              f"{len(acked - held)} lost; load said {out.strip()}")
        assert len(acked) >= 20 and acked <= held
        ips = [ip for ip, _ in rows]
        assert len(ips) == len(set(ips)), sorted(ips)  # and no address twice
    finally:
        if load.poll() is None:
            load.kill()
        d1.stop()
