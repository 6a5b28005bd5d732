"""Issue 21, a testbed that heals itself, on the world: the controller's process killed
with SIGKILL (a crash, nobody calling restart) is noticed and replaced by the supervisor;
a binding made before keeps working, new bindings (a new UDP mapping through the campus
PAT, ICMP echoes the controller rewrites one by one) and a lease relayed by rc (the relay
is the controller's) work again, and the time that took is printed: the figure the README
states."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from emulation.build import wait_for
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
