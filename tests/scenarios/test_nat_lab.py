"""NAT-DYNAMIC, NAT-TIMEOUT, NAT-RENUMBER on the small `natlab` topology: a two-address
pool for three hosts and idle timeouts of seconds, so exhaustion and expiry are seen live;
and the controller's crash and restart under NAT state."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

import topologies
from emulation.build import Emulation, wait_for
from infralab.testing import udp_listen, udp_send
from tests.scenarios.conftest import build

SRV = "198.18.5.10"


@pytest.fixture(scope="module")
def natlab():
    with build("natlab") as emu:
        yield emu


def whoami(emu: Emulation, host: str) -> str | None:
    """The address:port the outside server saw for `host` (None: no connection)."""
    out = emu.host(host).cmd(f"curl -s -m4 http://{SRV}/whoami").strip()
    return out if re.fullmatch(r"[\d.]+:\d+", out) else None


def nat_log(emu: Emulation) -> list[dict]:
    """The translation log so far (the controller appends to it every 0.25 s)."""
    return [json.loads(x) for x in (emu.rundir / "nat.jsonl").read_text().splitlines()]


def entries(emu: Emulation) -> list[dict]:
    return emu.api("/nat/r1")["r1"]["table"]


def test_nat_dynamic_pool_exhaustion_refuses_the_third_host_then_recovers(natlab):
    seen = {h: whoami(natlab, h) for h in ("b1", "b2")}
    assert {s.split(":")[0] for s in seen.values() if s} == {"203.0.113.17", "203.0.113.18"}
    out = natlab.host("b3").cmd(f"ping -n -c1 -w3 {SRV}")
    # refused cleanly: an ICMP "administratively prohibited" from the gateway, not silence
    assert re.search(r"From 10\.0\.2\.1 icmp_seq=\d+ Packet filtered", out), out
    st = natlab.api("/nat/r1")["r1"]
    assert st["counters"]["refused"] >= 1 and st["interfaces"]["wan"]["pool_free"] == 0
    wait_for(lambda: any(e["event"] == "refuse" and e["inside"] == "10.0.2.13"
                         for e in nat_log(natlab)), 5, "the refusal in the translation log")
    # b1 and b2 go quiet: after the 4 s pool timeout their addresses return to the pool
    wait_for(lambda: not [e for e in entries(natlab) if e["kind"] == "pool"], 15,
             "the pool entries to expire")
    got = whoami(natlab, "b3")
    assert got is not None and got.split(":")[0] in {"203.0.113.17", "203.0.113.18"}


def test_nat_timeout_udp_binding_expires_and_is_logged(natlab):
    natlab.host("a1").cmd(f"dig +tries=1 +time=1 @{SRV} -p 5353 example.com >/dev/null")
    assert any(e["proto"] == "udp" and e["inside"].startswith("10.0.1.10:")
               for e in entries(natlab))
    wait_for(lambda: not any(e["proto"] == "udp" for e in entries(natlab)), 15,
             "the UDP binding to expire (udp timeout 4 s)")
    ex = wait_for(lambda: [e for e in nat_log(natlab)
                           if e["event"] == "expire" and e["proto"] == "udp"], 5, "the log")
    assert ex[-1]["reason"] == "idle timeout" and ex[-1]["age"] >= 4


def test_nat_pat_conntrack_fast_path_translates_lists_and_logs_tcp(natlab):
    seen = whoami(natlab, "a2")
    assert seen is not None and seen.startswith("203.0.113.1:")
    port = seen.split(":")[1]
    rows = [r for r in entries(natlab) if r.get("via") == "conntrack"]
    assert any(r["inside"].startswith("10.0.1.11:") and r["outside"] == seen
               and r["remotes"] == [f"{SRV}:80"] for r in rows), rows
    wait_for(lambda: any(e["event"] == "create" and e.get("via") == "conntrack"
                         and e["outside"] == f"203.0.113.1:{port}" for e in nat_log(natlab)),
             5, "the conntrack entry in the translation log")
    # unsolicited TCP to the PAT address: conntrack does not know it, so it is dropped
    def dropped() -> int:
        return natlab.api("/nat/r1")["r1"]["counters"]["conntrack_dropped"]

    before = dropped()
    out = natlab.host("srv").cmd("curl -s -m2 -o /dev/null -w '%{http_code}' "
                                 "http://203.0.113.1:80/")
    assert out.strip() == "000"
    wait_for(lambda: dropped() > before, 10, "this curl's dropped SYNs to be counted")


def test_nat_controller_restart_keeps_translations_and_hands_out_no_port_twice(natlab):
    """The controller is killed (SIGKILL) and started again. The new process
    replays the NAT state journal; a UDP binding made before keeps carrying inbound
    traffic, a new one never gets a port already in use, routing comes back quickly."""
    lst = udp_listen(natlab, "a1", 5700, 30, hello=(SRV, 7300))
    try:
        before = [e for e in entries(natlab) if e["inside"] == "10.0.1.10:5700"]
        assert before and before[0]["outside"] == "203.0.113.1:5700"
        seconds = natlab.restart_controller()
        print(f"controller restart: routing back after {seconds:.1f} s")
        assert seconds < 10
        assert udp_send(natlab, "srv", "203.0.113.1", 5700, 7300) == "pong"
        after = [e for e in entries(natlab) if e["inside"] == "10.0.1.10:5700"]
        assert after and after[0]["outside"] == "203.0.113.1:5700"
        assert udp_send(natlab, "a2", SRV, 7301, 5700, wait=0.3) is None  # a new mapping
        ports = [e["outside"] for e in entries(natlab) if e["proto"] == "udp"]
        assert len(ports) == len(set(ports)) and "203.0.113.1:5700" in ports
        assert any(e["inside"] == "10.0.1.11:5700" and e["outside"] != "203.0.113.1:5700"
                   for e in entries(natlab))
    finally:
        lst.terminate()
        out = lst.communicate()[0]
    assert "got 198.18.5.10:7300" in out, out


def test_nat_controller_crash_is_healed_by_the_supervisor(natlab):
    """SIGKILL of the controller's process, as a crash, with nobody calling
    restart: the supervisor notices, starts a new controller (NAT journal replayed) and
    logs it; a UDP flow through the PAT that needs a new binding (the controller makes
    every UDP binding) works again, and no outside port is held twice."""
    log = natlab.rundir / "supervisor.jsonl"
    before = log.read_text() if log.exists() else ""
    lst = udp_listen(natlab, "srv", 7400, 60)
    try:
        assert udp_send(natlab, "a2", SRV, 7400, 5800) == "pong"
        old = natlab.controller
        assert old is not None
        t0 = time.monotonic()
        os.killpg(old.pid, signal.SIGKILL)
        sport = iter(range(5801, 5900))
        wait_for(lambda: udp_send(natlab, "a2", SRV, 7400, next(sport), wait=0.3) == "pong",
                 20, "a new UDP binding through the PAT after the controller crashed")
        print(f"controller crash: a new binding works again after "
              f"{time.monotonic() - t0:.1f} s")
    finally:
        lst.terminate()
        lst.communicate()
    records = [json.loads(x) for x in log.read_text()[len(before):].splitlines()]
    assert [(r["service"], r["action"], r["old_pid"]) for r in records] == [
        ("controller", "restarted", old.pid)]
    assert natlab.controller is not old and natlab.controller.poll() is None
    assert records[0]["new_pid"] == natlab.controller.pid
    # (the ports the controller hands out, each one protocol's: the fast path's TCP ports
    # are conntrack's choice, which may give one port to connections with two servers)
    ports = [(e["proto"], e["outside"]) for e in entries(natlab) if e.get("via") != "conntrack"]
    assert len(ports) == len(set(ports)), "an outside port handed out twice"


def test_nat_renumber_public_prefix_by_configuration_only(natlab):
    before = {h: natlab.ip(h) for h in ("a1", "a2", "b1")}
    assert whoami(natlab, "a1").startswith("203.0.113.1:")
    text = topologies.builtin("natlab").read_text().replace("203.0.113.", "192.0.2.")
    topo = topologies.loads(text, source="natlab-renumbered.yaml")
    topo.base_dir = str(topologies.builtin("natlab").parent)
    zone = natlab.manifest.conntrack_zones[0]
    dp = natlab.manifest.ct_policies["dp"]
    assert zone in natlab.manifest.ct_policies["zones"]  # (given its timeout policy)
    natlab.stop()  # one emulation at a time: the new ISP's prefix, same inside hosts
    left = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", f"zone={zone}"],
                          capture_output=True, text=True).stdout
    assert not left.strip(), f"conntrack entries left after teardown: {left[:300]}"
    policies = subprocess.run(["ovs-vsctl", "list-zone-tp", dp], capture_output=True,
                              text=True).stdout
    assert f"Zone:{zone}," not in policies, f"the zone's timeout policy left: {policies}"
    with Emulation(topo) as moved:
        assert {h: moved.ip(h) for h in before} == before
        assert whoami(moved, "a1").startswith("192.0.2.1:")
        assert whoami(moved, "b1").split(":")[0] in {"192.0.2.17", "192.0.2.18"}
