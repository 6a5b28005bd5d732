"""Beyond one machine: topologies split over two simulated servers by Mininet's
Cluster Edition — each server its own namespace, Open vSwitch and sshd — behave as they do on
one machine, and teardown leaves nothing on either server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import topologies
from emulation import servers as srv
from emulation.build import Emulation, wait_for
from infralab import testing
from tests.scenarios.test_lifecycle import REPO
from topologies.plan import run_prefix

# (no skipif of its own: the harness skips scenarios without root, and fails them under
# CI=true instead, as for every scenario)
pytestmark = [pytest.mark.scenario]


def _state(s: srv.Server) -> tuple[list[str], list[str]]:
    """A server's OVS bridges and network interfaces, as ssh sees them there."""
    out = s.ssh("ovs-vsctl --timeout=5 list-br; echo --; ls /sys/class/net").stdout
    bridges, intfs = out.split("--")
    return sorted(bridges.split()), sorted(intfs.split())


def _running(fragment: str) -> list[int]:
    """PIDs of processes whose command line holds `fragment`."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if fragment.encode() in f.read():
                    out.append(int(d))
        except (OSError, ValueError):
            continue
    return [p for p in out if p != os.getpid()]


@pytest.fixture(scope="module")
def two_servers():
    made = srv.simulate(2, log=lambda s: None)
    try:
        yield made
    finally:
        removed = srv.clean(log=lambda s: None)
        assert any(r.startswith("server ilsrv") for r in removed)
        assert not any(os.path.exists(f"/run/netns/{s.name}") for s in made)
        assert not os.path.exists(f"/sys/class/net/{srv.MGMT_BRIDGE}")


def _build(name: str, servers: list[srv.Server]) -> Emulation:
    return Emulation(topologies.load(topologies.builtin(name)), servers=servers)


def test_simulated_servers_each_run_their_own_open_vswitch(two_servers):
    ids = {s.name: s.ssh("ovs-vsctl get Open_vSwitch . external-ids:system-id").stdout.strip()
           for s in two_servers}
    assert ids == {"ilsrv1": "ilsrv1", "ilsrv2": "ilsrv2"}, ids
    for s in two_servers:
        assert _state(s) == ([], ["eth0", "lo"]), s.name


def test_duo_split_routes_across_the_tunnel_and_tears_down_clean(two_servers):
    s1, s2 = two_servers
    with _build("duo", two_servers) as emu:
        assert (emu.where["r1"], emu.where["r2"]) == ("ilsrv1", "ilsrv2")
        assert emu.where["h1"] == "ilsrv1" and emu.where["h4"] == "ilsrv2"
        # each router is a bridge of its own server's Open vSwitch, and of no other
        assert _state(s1)[0] == [emu.plan.bridge("r1")] and \
            _state(s2)[0] == [emu.plan.bridge("r2")]
        testing.assert_connectivity(emu)
        testing.assert_path(emu, "h1", "h5", ["10.0.1.1", "10.255.0.2", "10.0.4.10"])
        # which address the far side saw: the sender's own (routed, not translated)
        listener = testing.udp_listen(emu, "h4", 4600, seconds=30)
        assert testing.udp_send(emu, "h1", emu.ip("h4"), 4600, 4601) == "pong"
        listener.terminate()
        seen = listener.communicate(timeout=10)[0]
        assert "got 10.0.1.10:4601 ping" in seen, seen
        # ending the local Popen ends the process on the server (simulated servers share
        # this machine's processes, so it can be looked for here)
        wait_for(lambda: not _running("',4600))"), 5, "the remote listener to end")
        # a full-size frame crosses the tunnel (no MTU black hole)
        big = emu.host("h1").cmd("ping -n -c1 -w3 -M do -s 1472 10.0.3.10")
        assert " 0% packet loss" in big, big
        manifest = emu.built
    assert manifest.remote and not manifest.leftovers()
    for s in two_servers:
        assert _state(s) == ([], ["eth0", "lo"]), s.name


def test_world_split_keeps_dns_nat_dhcp_and_gslb(two_servers):
    with _build("world", two_servers) as emu:
        where = emu.where
        assert set(where.values()) == {"ilsrv1", "ilsrv2"}
        # DHCP-RELAY: the campus clients got leases through rc's relay on start-up
        for c in ("c1", "c3"):
            assert emu.ip(c).startswith(("10.1.1.", "10.1.2.")), c
        # DNS-HIER from the root, whatever server each name server landed on
        testing.assert_dns_record(emu, "c1", "mail.example.com", "A", {"198.51.100.25"})
        # NAT-PAT at rc, seen from a data-centre host on the other server (which one
        # depends on how the placement split the world)
        far = [h for h in ("web1a", "web1b", "web2a") if where[h] != where["rc"]]
        assert far, where
        seen = emu.host("c1").cmd(f"curl -s -m5 http://{emu.ip(far[0])}/whoami").strip()
        assert seen.startswith("203.0.113.1:"), seen
        outside = seen.split()[0]
        rows = emu.api("/nat/rc")["rc"]["table"]  # `infralab nat show` reads the same
        assert any(r["outside"] == outside and r["inside"].startswith(emu.ip("c1") + ":")
                   for r in rows), (outside, rows)
        # GSLB-DC: Busan's resolver is sent to data centre 2
        testing.assert_dns_record(emu, "xb", "www.example.com", "A", {"198.51.100.131"})
        manifest = emu.built
    assert not manifest.leftovers()
    for s in two_servers:
        assert _state(s) == ([], ["eth0", "lo"]), s.name


@pytest.mark.serial  # (a killed run is stale: another worker starting a run would clean it)
def test_kill_9_of_a_split_run_then_clean_empties_both_servers(two_servers, tmp_path):
    """The manifest lists what each server holds before it is made: after the owner is
    killed, `infralab clean` removes it there by ssh (and ends the nodes' ssh sessions by
    PID), and nothing else."""
    from emulation import runtime
    from tests.scenarios.test_lifecycle import infralab, new_manifest, script  # (helpers)

    s1, s2 = two_servers
    s2.ssh("ovs-vsctl add-br notours -- set bridge notours datapath_type=netdev")
    before = runtime.manifest_paths()
    p = infralab("up", "duo", "--servers", "ilsrv1,ilsrv2", "--script",
                 script(tmp_path, "h1 sleep 120\n"))
    m = new_manifest(before, p.pid)
    r1, r2 = (run_prefix(m.slot) + r for r in ("r1", "r2"))  # (the run's prefix on each)
    wait_for(lambda: _state(s1)[0] == [r1] and r2 in _state(s2)[0], 60,
             "the routers' bridges on their servers")
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    m = runtime.Manifest.read(m.path)
    assert any("on ilsrv1" in x for x in m.leftovers()), m.leftovers()
    c = subprocess.run([sys.executable, "-m", "infralab.cli", "clean"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stdout + c.stderr
    assert f"removed bridge {r1} on ilsrv1" in c.stdout and f"bridge {r2} on ilsrv2" in c.stdout
    wait_for(lambda: _state(s1) == ([], ["eth0", "lo"]), 20, "ilsrv1 to be empty")
    wait_for(lambda: _state(s2) == (["notours"], ["eth0", "lo", "notours", "ovs-netdev"]), 20,
             "ilsrv2 to hold only the bridge infralab did not make")
    s2.ssh("ovs-vsctl del-br notours")
    assert m.leftovers() == [] and not m.dir.exists()
