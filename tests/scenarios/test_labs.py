"""TB-LABS: every lab's checker, run against an unsolved network (it must say the steps
are not done) and then against the same network after the handout's own script
(labs/NAME.cli, held to the handout word for word by tests/unit/test_lab_scripts.py) was
typed into the Mininet CLI: every step must pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infralab.labs import LABS, Live
from tests.scenarios.conftest import build

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


def run_script(emu, name: str, capsys) -> str:
    """labs/NAME.cli typed into the Mininet CLI (the handout's own commands: see
    tests/unit/test_lab_scripts.py): it must end with every step done; its output."""
    from infralab.mncli import InfralabCLI

    capsys.readouterr()
    cli = InfralabCLI(emu, script=str(ROOT / "labs" / f"{name}.cli"))
    out = capsys.readouterr().out
    steps = len(LABS[name].steps)
    assert cli.status == 0 and f"{steps}/{steps} steps done" in out, out
    assert all(results(emu, name).values()), LABS[name].run(Live(emu.rundir))
    return out


def test_lab_dns_solved_by_the_handouts_own_steps(world, capsys):
    out = run_script(world, "dns", capsys)
    assert "2026112502" in out and "198.51.100.77" in out, out  # ns2 has the new zone
    assert "IN\tMX" in out or "MX\t" in out, out
    assert "old-site on web1a 198.51.100.11" in out and "shop on web1a" in out, out  # by Host:
    # what an instructor collects: per-step verdicts with the evidence seen
    page = world.rundir / "dns-report.html"
    r = subprocess.run([sys.executable, "-m", "infralab", "lab", "check", "dns", "--json",
                        "--run", str(world.rundir), "--report", str(page)],
                       capture_output=True, text=True, cwd=ROOT)
    got = json.loads(r.stdout[r.stdout.index("{"):])
    html = page.read_text()
    assert html.count('<tr class="pass">') == len(LABS["dns"].steps) and "2026112502" in html
    assert r.returncode == 0 and got["done"] == got["of"] == len(LABS["dns"].steps)
    assert "2026112502" in got["steps"][5]["evidence"], got


def test_lab_gslb_solved_by_the_handouts_own_steps(world, capsys):
    try:
        out = run_script(world, "gslb", capsys)
    finally:  # (dc1 back, whatever happened)
        for ip in ("198.51.100.11", "198.51.100.12"):
            world.host("xs").cmd(f"curl -s -m3 'http://{ip}/admin/mode?set=ok'")
    assert "step 3 (dc1's two servers were taken down and the GSLB noticed): done" in out


def test_lab_dhcp_unsolved_then_solved_by_the_handouts_own_steps(capsys):
    with build("dhcplab") as lab:
        assert not any(results(lab, "dhcp").values())
        out = run_script(lab, "dhcp", capsys)
        assert "10.2.1." in out, out  # a1's address, shown by `a1 ip addr show`


def test_lab_natlab_unsolved_then_solved_by_the_handouts_own_steps(capsys):
    with build("natlab") as lab:
        got = results(lab, "natlab")
        assert got[1] and not any(ok for i, ok in got.items() if i > 1), got
        out = run_script(lab, "natlab", capsys)
        assert "203.0.113.1:" in out and "203.0.113.17" in out and "Packet filtered" in out
