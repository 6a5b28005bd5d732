"""RUNS-MANY: several runs on one machine at once, each under its own name and prefix,
sharing nothing but the machine: two worlds and a duo side by side, a request in one
never seen in the other's logs, NAT table or leases, a fault in one leaving the other
alone, teardown of one leaving the others running; bad names and runs refused."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import topologies
from emulation import runtime
from emulation.build import Emulation, wait_for
from infralab.testing import service_ctl
from tests.scenarios.test_lifecycle import REPO


def web_log(emu: Emulation, host: str) -> str:
    return (emu.service_dir(f"{host}.web") / "log").read_text(errors="replace")


def rc_rows(emu: Emulation) -> list[dict]:
    """rc's NAT table (every binding, with its inside, outside and remote endpoints)."""
    return emu.api("/nat/rc")["rc"]["table"]


def test_runs_many_two_worlds_and_a_duo_share_nothing_but_the_machine():
    world = topologies.load(topologies.builtin("world"))
    duo = topologies.load(topologies.builtin("duo"))
    a = Emulation(world, name="wa")
    b = Emulation(topologies.load(topologies.builtin("world")), name="wb")
    d = Emulation(duo)
    try:
        for emu in (a, b, d):
            emu.start()
        names = {m.name: m for m in runtime.live_manifests()}
        assert {"wa", "wb", "duo"} <= set(names), names
        prefixes = {a.plan.prefix, b.plan.prefix, d.plan.prefix}
        assert len(prefixes) == 3 and all(re.fullmatch(r"i\w", p) for p in prefixes)
        bridges = runtime.ovs_bridges()
        for emu in (a, b):  # each run's rc is its own bridge, its ports its own
            assert emu.plan.bridge("rc") in bridges
            assert set(emu.built.interfaces).isdisjoint(
                set(b.built.interfaces if emu is a else a.built.interfaces))
        # the same name in both worlds, answered in each (GSLB, PAT, the web server)
        for emu in (a, b):
            out = emu.host("c1").cmd("curl -s -m5 http://www.example.com/whoami")
            assert out.startswith("203.0.113.1:"), out
        # a request in wa is seen in wa's web log and NAT table only
        mark = f"mark-{time.monotonic_ns()}"
        seen = a.host("c1").cmd(f"curl -s -m5 'http://198.51.100.131/whoami?{mark}'").strip()
        assert seen.startswith("203.0.113.1:"), seen
        assert mark in web_log(a, "web2a") and mark not in web_log(b, "web2a")
        # wa's PAT holds c1's connection under the outside endpoint web2a saw; wb's does not
        (row,) = [r for r in rc_rows(a) if r["outside"] == seen and r["proto"] == "tcp"]
        assert not [r for r in rc_rows(b) if (r["inside"], r["outside"]) ==
                    (row["inside"], row["outside"])]
        # leases: each world's DHCP server holds its own four, none of the other's
        for emu in (a, b):
            leases = service_ctl(emu, "dhcp1.dhcp", "leases")
            assert sorted(x["ip"] for x in leases if x["state"] == "bound") == [
                "10.1.1.11", "10.1.1.12", "10.1.2.13", "10.1.2.14"], leases
        # a fault in wa (ri -- rs down) leaves wb's routing alone
        a.link("ri", "rs", up=False, wait=True)
        assert a.api("/routing")["down_links"] and not b.api("/routing")["down_links"]
        a.link("ri", "rs", up=True, wait=True)
        # the duo beside them routes as ever
        assert "1 received" in d.host("h1").cmd("ping -c1 -w3 10.0.4.10")
        # another process sees three runs and attaches to one by name
        runs = subprocess.run([sys.executable, "-m", "infralab", "runs"], cwd=REPO,
                              capture_output=True, text=True, timeout=30).stdout
        assert all(re.search(rf"^{n}\s+{t}\s", runs, re.M) for n, t in
                   (("wa", "world"), ("wb", "world"), ("duo", "duo"))), runs
        nat = subprocess.run([sys.executable, "-m", "infralab", "nat", "show", "--run", "wb",
                              "--router", "rc", "--json"], cwd=REPO, capture_output=True,
                             text=True, timeout=30)
        assert nat.returncode == 0 and '"rc"' in nat.stdout, nat.stderr
        many = subprocess.run([sys.executable, "-m", "infralab", "nat", "show"], cwd=REPO,
                              capture_output=True, text=True, timeout=30)
        assert many.returncode == 2 and "--run NAME" in many.stderr, many.stderr
        # teardown of wa leaves wb and the duo running
        a.stop()
        assert "wa" not in {m.name for m in runtime.live_manifests()}
        assert b.plan.bridge("rc") in runtime.ovs_bridges()
        assert a.plan.bridge("rc") not in runtime.ovs_bridges()
        out = b.host("c1").cmd("curl -s -m5 http://www.example.com/whoami")
        assert out.startswith("203.0.113.1:"), out
        assert "1 received" in d.host("h1").cmd("ping -c1 -w3 10.0.4.10")
    finally:
        for emu in (a, b, d):
            emu.stop()
    assert not {"wa", "wb"} & {m.name for m in runtime.live_manifests()}


def test_runs_many_bad_names_and_runs_are_refused_with_one_line_and_status_2():
    def infralab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "infralab", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    bad = infralab("up", "duo", "--name", "Bad Name!", "--no-cli")
    assert bad.returncode == 2 and "run name 'Bad Name!'" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = infralab("nat", "show", "--run", "nosuchrun")
    assert missing.returncode == 2 and "no run named 'nosuchrun'" in missing.stderr
    gone = infralab("clean", "--run", "nosuchrun")
    assert gone.returncode == 2 and "no run named 'nosuchrun'" in gone.stderr
    with Emulation(topologies.load(topologies.builtin("duo")), name="taken"):
        again = infralab("up", "duo", "--name", "taken", "--no-cli")
        assert again.returncode == 2 and "already up" in again.stderr, again.stderr
        assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.serial  # (a killed run is stale: another worker starting a run would clean it first)
def test_runs_many_clean_run_ends_exactly_one_killed_run(tmp_path):
    """kill -9 of one run: `infralab clean --run NAME` removes exactly it, the other
    stays up."""
    import os
    import signal

    from tests.scenarios.test_lifecycle import (
        assert_nothing_left,
        infralab,
        new_manifest,
        run_dirs,
        script,
    )

    with Emulation(topologies.load(topologies.builtin("duo")), name="keep") as keep:
        before = run_dirs()
        p = infralab("up", "duo", "--name", "victim", "--script",
                     script(tmp_path, "h1 sleep 120\n"))
        m = new_manifest(before, p.pid)
        wait_for(lambda: set(m.bridges) <= runtime.ovs_bridges() and m.bridges, 60,
                 "the victim's bridges")
        m = runtime.Manifest.read(m.path)
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
        c = subprocess.run([sys.executable, "-m", "infralab", "clean", "--run", "victim"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stdout + c.stderr
        assert_nothing_left(m)
        assert keep.plan.bridge("r1") in runtime.ovs_bridges()
        assert "1 received" in keep.host("h1").cmd("ping -c1 -w3 10.0.4.10")
