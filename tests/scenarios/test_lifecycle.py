"""TB-TOPO / TB-TESTS: `infralab up` builds, runs scripts with a real exit status, and
leaves nothing behind — after a clean exit, after Ctrl-C, and after kill -9 + clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emulation import runtime
from emulation.build import wait_for
from topologies.plan import RUN_SLOTS, run_prefix

REPO = Path(__file__).resolve().parents[2]


def infralab(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "infralab.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, **kw)


def script(tmp_path: Path, text: str) -> str:
    p = tmp_path / "cmds"
    p.write_text(text)
    return str(p)


def run_dirs() -> set[Path]:
    return runtime.manifest_paths()


def new_manifest(before: set[Path], owner: int) -> runtime.Manifest:
    """The manifest of the run process `owner` started after `before` was taken, once it
    lists its nodes (other runs, a parallel test's, may start meanwhile)."""
    def found():
        for path in run_dirs() - before:
            try:
                m = runtime.Manifest.read(path)
            except (OSError, ValueError):
                continue
            if m.owner.get("pid") == owner and any(k.startswith("node:") for k in m.processes):
                return m
        return None
    return wait_for(found, 60, "the run to record its nodes")


def assert_nothing_left(m: runtime.Manifest) -> None:
    assert m.leftovers() == []
    assert not m.dir.exists()


def test_tb_topo_script_runs_and_clean_exit_leaves_nothing(tmp_path):
    before = run_dirs()
    p = infralab("up", "duo", "--script", script(tmp_path, "h1 ping -c1 -w3 h5\nrouters\n"
                                                            "h1 sleep 1\n"))
    m = new_manifest(before, p.pid)  # taken while the run is up: what it made
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert "1 received" in out and "10.255.0.2" in out  # ping, then the routers view
    mine = {run_prefix(m.slot) + r for r in ("r1", "r2")}  # (bridges carry the run's prefix)
    assert mine <= set(m.bridges) and m.interfaces and m.processes.get("controller")
    assert_nothing_left(m)
    assert not mine & runtime.ovs_bridges()


def test_tb_topo_script_stops_at_first_failing_command_with_its_status(tmp_path):
    p = infralab("up", "duo", "--script", script(
        tmp_path, "h1 ping -c1 -w3 h4\nh1 sh -c 'exit 3'\nh1 echo never-runs\n"))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 3, out
    assert "never-runs" not in out.replace("h1 echo never-runs", "")


def test_tb_topo_ctrl_c_during_a_run_tears_everything_down(tmp_path):
    before = run_dirs()
    p = infralab("up", "duo", "--script", script(tmp_path, "h1 sleep 120\n"))
    m = new_manifest(before, p.pid)
    wait_for(lambda: (m.dir / "controller-status.json").exists(), 60, "controller status")
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 130, out
    assert_nothing_left(m)


@pytest.mark.serial  # (a killed run is stale: another worker starting a run would clean it first)
def test_tb_topo_kill_9_leaves_a_manifest_that_clean_removes_exactly(tmp_path):
    before = run_dirs()
    p = infralab("up", "duo", "--script", script(tmp_path, "h1 sleep 120\n"))
    m = new_manifest(before, p.pid)
    mine = {run_prefix(m.slot) + r for r in ("r1", "r2")}
    wait_for(lambda: mine <= runtime.ovs_bridges(), 60, "bridges to exist")
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    m = runtime.Manifest.read(m.path)
    assert m.leftovers(), "a killed run should leave something for clean to find"
    c = subprocess.run([sys.executable, "-m", "infralab.cli", "clean"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stdout + c.stderr
    assert f"removed bridge {run_prefix(m.slot)}r1" in c.stdout
    assert_nothing_left(m)


@pytest.mark.serial  # (it takes the name of the next free slot, which another worker could take)
def test_tb_topo_refuses_to_touch_a_bridge_it_did_not_create():
    # a bridge someone else made, under the name the next run's r1 would take
    taken = {m.slot for m in runtime.live_manifests() + runtime.stale_manifests()}
    foreign = run_prefix(min(set(range(RUN_SLOTS)) - taken)) + "r1"
    subprocess.run(["ovs-vsctl", "add-br", foreign, "--", "set", "bridge", foreign,
                    "datapath_type=netdev"], check=True)
    try:
        p = infralab("up", "duo", "--no-cli")
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 1 and "already exists" in out and foreign in out, out
        assert foreign in runtime.ovs_bridges()  # still there, untouched
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", foreign])


def test_faults_in_force_are_healed_when_the_run_is_interrupted(tmp_path):
    """Ctrl-C while a link is down, a service paused and a host paused (none of
    them due to end for a minute): teardown heals all three - on the timeline kept by
    --faults-log - and nothing of the run is left, the paused processes included."""
    topo = tmp_path / "duo-faults.yaml"
    topo.write_text((REPO / "topologies" / "duo.yaml").read_text().replace(
        "h5: {subnet: lan4, address: 10.0.4.10}",
        'h5: {subnet: lan4, address: 10.0.4.10, services: [{name: echo, run: "sleep 600"}]}')
        + "faults:\n  schedule:\n"
        "    - {at: 0, kind: link-down, link: [r1, r2], duration: 60}\n"
        "    - {at: 0, kind: service-pause, service: h5.echo, duration: 60}\n"
        "    - {at: 0, kind: host-pause, host: h4, duration: 60}\n")
    log = tmp_path / "faults.jsonl"
    before = run_dirs()
    p = infralab("up", str(topo), "--faults", "--faults-log", str(log), "--script",
                 script(tmp_path, "h1 sleep 120\n"))
    try:
        m = new_manifest(before, p.pid)
        wait_for(lambda: sum('"inject"' in x for x in
                             (m.dir / "faults.jsonl").read_text().splitlines()) == 3
                 if (m.dir / "faults.jsonl").exists() else False, 60, "three faults in force")
        paused = [pid for pid, _st in _host_and_service_pids(runtime.Manifest.read(m.path))]
        assert paused and all(_state(pid) == "T" for pid in paused)  # stopped, as asked
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=60)
    assert p.returncode == 130, out
    events = [(r["kind"], r["event"]) for r in map(json.loads, log.read_text().splitlines())]
    for kind in ("link-down", "service-pause", "host-pause"):
        assert (kind, "heal") in events, events
    assert_nothing_left(m)
    wait_for(lambda: all(_state(pid) in (None, "Z") for pid in paused), 10,
             "the paused processes to be gone")


def _host_and_service_pids(m: runtime.Manifest) -> list[tuple[int, int | None]]:
    from emulation.faults import group_processes, host_processes

    return host_processes(m.processes["node:h4"]["pid"]) + group_processes(
        m.processes["service:h5.echo"]["pid"])


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def test_tb_topo_a_process_left_running_in_a_host_ends_with_the_run():
    """What a user or a test starts in a host and leaves running (`h1 iperf3 -s &`) is in
    the run's own namespace: it ends with the run, and does not hold the namespace (and
    its veth) alive past teardown."""
    import topologies
    from emulation.build import Emulation

    with Emulation(topologies.load(topologies.builtin("duo"))) as emu:
        stray = emu.host("h1").popen(["sleep", "300"])
        forked = emu.host("h4").popen(["sh", "-c", "sleep 300 & echo $!; wait"],
                                      stdout=subprocess.PIPE, text=True)
        child = int(forked.stdout.readline())
        ns = runtime.netns_of(emu.host("h1").pid)
        assert ns and runtime.processes_in({ns})
        router_end = emu.plan.router("r1").interfaces[0].ports[0].intf
    assert stray.wait(5) is not None and forked.wait(5) is not None
    assert not runtime.alive(child, None)
    assert not runtime.processes_in({ns}) and not runtime.link_exists(router_end)
