"""FAULT-HEAL, a testbed that heals itself, on the world: the controller's process killed
with SIGKILL (a crash, nobody calling restart) is noticed and replaced by the supervisor;
a binding made before keeps working, new bindings (a new UDP mapping through the campus
PAT, ICMP echoes the controller rewrites one by one) and a lease relayed by rc (the relay
is the controller's) work again, and the time that took is printed: the figure the README
states."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from emulation.build import wait_for, wait_listening
from infralab.testing import udp_listen, udp_send

WEB = "198.51.100.11"  # web1a in dc1


def relayed_lease(emu, host: str) -> float:
    """Seconds for a one-shot DHCP client on `host` (a campus LAN: dhcp1 is reached only
    through rc's relay) to be bound; its exchange is its own (fresh xid), beside the
    host's own client."""
    logf = emu.host_dir(host) / "heal-client.jsonl"
    logf.unlink(missing_ok=True)
    t0 = time.monotonic()
    p = emu.host(host).popen([sys.executable, "-m", "infralab", "dhcp", "client",
                              f"{host}-eth0", "--once", "--retry", "1", "--log", str(logf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: logf.exists() and any(
            json.loads(x).get("event") == "bound" for x in logf.read_text().splitlines()),
            30, f"a lease for {host} through rc's relay")
        return time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.terminate()
        p.wait(10)


def test_heal_controller_crash_on_the_world(world):
    log = world.rundir / "supervisor.jsonl"
    before = log.read_text() if log.exists() else ""
    lst = udp_listen(world, "web1a", 7500, 120)
    try:
        assert udp_send(world, "c1", WEB, 7500, 6000) == "pong"  # a binding made before
        old = world.controller
        assert old is not None
        t0 = time.monotonic()
        os.killpg(old.pid, signal.SIGKILL)
        assert udp_send(world, "c1", WEB, 7500, 6000) == "pong"  # carried by the switches
        sport = iter(range(6001, 6400))
        wait_for(lambda: udp_send(world, "c1", WEB, 7500, next(sport), wait=0.3) == "pong",
                 30, "a new UDP binding through the PAT")
        udp_s = time.monotonic() - t0
        wait_for(lambda: "1 received" in world.host("c3").cmd(f"ping -n -c1 -W1 {WEB}"), 30,
                 "an echo from c3 (each one rewritten by the controller)")
        icmp_s = time.monotonic() - t0
    finally:
        lst.terminate()
        lst.communicate()
    lease_s = relayed_lease(world, "c2") + icmp_s
    print(f"controller crash on the world: new UDP binding after {udp_s:.1f} s, "
          f"echo through the NAT after {icmp_s:.1f} s, a relayed lease by {lease_s:.1f} s")
    records = [json.loads(x) for x in log.read_text()[len(before):].splitlines()]
    assert [(r["service"], r["action"], r["old_pid"]) for r in records] == [
        ("controller", "restarted", old.pid)]
    assert world.controller is not old and world.controller.poll() is None
    table = world.api("/nat/rc")["rc"]["table"]
    outside = [e["outside"] for e in table]
    assert len(outside) == len(set(outside)), "an outside port held by two bindings"
    assert any(e["inside"].endswith(":6000") for e in table)  # the journal kept it


def test_faults_on_the_world_each_kind_does_what_it_says(world, tmp_path):
    """Faults injected by the prompt and the API do what their names say while
    in force, are undone at their end, and land on the timeline with what they did."""
    from infralab.faultview import read, svg
    from infralab.mncli import InfralabCLI

    engine = world.faults
    # a NAT pool filled: c4 (lan2, translated from rc's pool; no entry yet) is refused
    wan = world.api("/nat/rc")["rc"]["interfaces"]["wan"]
    assert not [e for e in world.api("/nat/rc")["rc"]["table"] if e["inside"].startswith(
        world.ip("c4") + ":")] and wan["pool_free"] > 0
    script = tmp_path / "faults.cli"
    script.write_text("fault nat-pool-fill router=rc interface=wan duration=30\n"
                      "fault service-pause service=ldns.resolver duration=30\nfault list\n")
    cli = InfralabCLI(world, script=str(script))
    assert cli.status == 0 and len(engine.active) == 2
    assert world.api("/nat/rc")["rc"]["interfaces"]["wan"]["pool_free"] == 0
    assert "0 received" in world.host("c4").cmd(f"ping -n -c1 -W1 {WEB}")
    # a paused resolver answers nobody, and nothing restarts it (it is not dead)
    assert "timed out" in world.host("c1").cmd("dig @10.1.0.53 example.com +tries=1 +time=1")
    for fid in list(engine.active):
        assert engine.heal(fid)
    # (the refused ping's drop flow lives a second more: P_REFUSED, no packet-in storm)
    wait_for(lambda: "1 received" in world.host("c4").cmd(f"ping -n -c1 -W1 {WEB}"), 10,
             "c4 through the NAT again")
    wait_for(lambda: "status: NOERROR" in world.host("c1").cmd(
        "dig @10.1.0.53 example.com +tries=1 +time=2"), 10, "the resolver answering again")
    # a DHCP pool filled: a new client is offered nothing; afterwards it gets a lease
    starve = ("infralab dhcp starve c3-eth0 --count 1 --seconds 3 --seed {}")
    fid = engine.inject({"kind": "dhcp-pool-fill", "service": "dhcp1.dhcp", "duration": 30})
    assert '"leases_taken": 0' in world.host("c3").cmd(starve.format(1))
    engine.heal(fid)
    assert '"leases_taken": 1' in world.host("c3").cmd(starve.format(2))
    # a delay spike on the busan link (20 ms each way), and the link as it was after
    def rtt() -> float:
        out = world.host("xs").cmd("ping -n -c1 -W2 198.18.20.10")
        m = re.search(r"time=([\d.]+) ms", out)
        return float(m.group(1)) if m else 0.0
    fid = engine.inject({"kind": "delay-spike", "link": ["ri", "rb"], "delay": "150ms",
                         "duration": 30})
    assert rtt() >= 300
    engine.heal(fid)  # (frames queued under 150 ms still leave first: order is kept)
    wait_for(lambda: 40 <= rtt() < 100, 5, "the busan link's RTT back to 40 ms")
    # a host down: unplugged, its web server stopped; back, both again
    fid = engine.inject({"kind": "host-down", "host": "web1b", "duration": 30})
    assert "0 received" in world.host("xs").cmd("ping -n -c1 -W1 198.51.100.12")
    assert world.services["web1b.web"].poll() is not None
    engine.heal(fid)
    wait_listening(world.host("web1b"), 80, 10)
    assert "1 received" in world.host("xs").cmd("ping -n -c1 -W2 198.51.100.12")
    kinds = [(r["kind"], r["event"]) for r in read(engine.path)]
    for k in ("nat-pool-fill", "service-pause", "dhcp-pool-fill", "delay-spike", "host-down"):
        assert (k, "inject") in kinds and (k, "heal") in kinds
    assert "<rect" in svg(read(engine.path))


def test_restarted_controller_keeps_what_was_changed_live(world):
    """Settings changed through the API (a NAT's behaviour, the relay's
    switches) survive the controller's restart; the relay switched on again relays."""
    apdm = "address-and-port-dependent"
    try:
        world.api("/relay/rc?relay=off&defence=off", "POST")
        world.api(f"/nat/na/nalink?mapping={apdm}&filtering={apdm}", "POST")
        world.restart_controller()
        relay = world.api("/relay/rc")
        assert relay["enabled"] is False and relay["defence"] is False
        nalink = world.api("/nat/na")["na"]["interfaces"]["nalink"]
        assert nalink["mapping"] == nalink["filtering"] == apdm
    finally:
        world.api("/relay/rc?relay=on&defence=on", "POST")
        world.api("/nat/na/nalink?mapping=endpoint-independent"
                  "&filtering=endpoint-independent", "POST")
    assert world.api("/relay/rc")["enabled"] is True
    relayed_lease(world, "c2")  # its flows are back: a lease through it again
