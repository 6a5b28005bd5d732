"""TB-LABS: every lab's checker, run against an unsolved network (it must say the steps
are not done) and then against the same network after the handout's steps were carried
out on it (every step must pass). The steps are the handouts' commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulation.build import wait_for, wait_listening
from infralab.labs import LABS, Live
from infralab.testing import dig, service_ctl
from tests.scenarios.conftest import build

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world():
    with build("world") as emu:
        yield emu


def results(emu, name: str) -> dict[int, bool]:
    return {i: ok for i, _, ok, _ in LABS[name].run(Live(emu.rundir))}


def test_lab_checkers_fail_on_an_unsolved_world(world):
    for name in ("nat", "dns", "gslb"):
        got = results(world, name)
        assert got[1], (name, got)  # "the world is up" is true from the start
        assert not any(ok for i, ok in got.items() if i > 1), (name, got)


def test_lab_nat_solved_by_the_handouts_own_steps(world, capsys):
    """labs/nat.cli is the handout's commands (tests/unit/test_lab_scripts.py); typed into
    the Mininet CLI they must leave every step done, and the CLI's `lab check nat` says so."""
    from infralab.mncli import InfralabCLI

    try:
        capsys.readouterr()
        cli = InfralabCLI(world, script=str(ROOT / "labs" / "nat.cli"))
        out = capsys.readouterr().out
        steps = len(LABS["nat"].steps)
        assert cli.status == 0 and f"{steps}/{steps} steps done" in out, out
        assert "203.0.113.1:" in out and "webc" in out, out  # what the student sees
        got = results(world, "nat")
        assert all(got.values()), LABS["nat"].run(Live(world.rundir))
    finally:
        world.api("/nat/na/nalink?mapping=endpoint-independent"
                  "&filtering=endpoint-independent", "POST")


def test_lab_dns_solved(world):
    for _ in range(2):
        assert dig(world, "c1", "www.example.com").rcode == "NOERROR"
    dig(world, "c1", "example.com", "MX")
    world.host("c1").cmd("dig -x 198.51.100.131 >/dev/null")
    zone = world.service_dir("ns1.dns") / "example.com.zone"
    zone.write_text(zone.read_text().replace("2026112501", "2026112502")
                    + "lab IN A 198.51.100.77\n")
    service_ctl(world, "ns1.dns", "reload")
    wait_for(lambda: service_ctl(world, "ns2.dns", "stats")["zones"]["example.com."]
             ["serial"] == 2026112502, 15, "ns2 to transfer the new serial")
    got = results(world, "dns")
    assert all(got.values()), LABS["dns"].run(Live(world.rundir))


def test_lab_gslb_solved(world):
    for host in ("xs", "xb"):
        dig(world, host, "www.example.com")
    try:
        for ip in ("198.51.100.11", "198.51.100.12"):
            world.host("xs").cmd(f"curl -s -m3 'http://{ip}/admin/mode?set=down'")
        wait_for(lambda: results(world, "gslb")[3], 15, "the GSLB to see dc1 down")
    finally:
        for ip in ("198.51.100.11", "198.51.100.12"):
            world.host("xs").cmd(f"curl -s -m3 'http://{ip}/admin/mode?set=ok'")
    for _ in range(10):
        dig(world, "xs", "ratio.gslb.example.com", "A", "198.18.3.1", "+norec")
    try:  # (the GSLB writes its decision log a few ms after each answer)
        wait_for(lambda: all(results(world, "gslb").values()), 5, "every GSLB step")
    except TimeoutError:
        raise AssertionError(LABS["gslb"].run(Live(world.rundir))) from None


def test_lab_dhcp_unsolved_then_solved():
    with build("dhcplab") as lab:
        assert not any(results(lab, "dhcp").values())
        srv = lab.host("srv")
        d = lab.host_dir("srv")
        server = srv.popen([PY, "-m", "infralab", "dhcp", "serve", "--config",
                            str(ROOT / "topologies" / "dhcp" / "lab.yaml"), "--interface",
                            "srv-eth0", "--lease-file", str(d / "leases.jsonl"), "--control",
                            str(d / "dhcp.ctl"), "--log", str(d / "dhcp.jsonl")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(srv, 67, 10, server, "the lab's DHCP server")
        wait_for((d / "dhcp.ctl").exists, 5, "its control socket")
        a1 = lab.host("a1").popen([PY, "-m", "infralab", "dhcp", "client", "a1-eth0",
                                   "--t1", "0.5", "--t2", "0.75", "--retry", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            lab.host("b1").popen([PY, "-m", "infralab", "dhcp", "client", "b1-eth0",
                                  "--once", "--retry", "1"]).wait(20)
            wait_for(lambda: results(lab, "dhcp")[4], 20, "a1's renewal at T1 (10 s)")
        finally:
            a1.terminate()  # it releases
            a1.wait(10)
        try:
            got = wait_for(lambda: all(results(lab, "dhcp").values()), 5, "the release")
            assert got
        finally:
            server.terminate()
            server.wait(10)
