"""RUNS-MANY, the bookkeeping (no root, a run root of its own): each run gets a name and
a slot no other run holds, its plan's names carry the slot's prefix and fit Linux's
limit, and what cannot be a run is refused with one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import topologies
from emulation import runtime
from topologies.plan import RUN_SLOTS, make_plan, run_prefix


@pytest.fixture
def run_root(tmp_path, monkeypatch):
    monkeypatch.setenv("INFRALAB_RUN_ROOT", str(tmp_path))
    return tmp_path


def test_runs_get_unique_names_and_slots_and_refuse_taken_or_bad_names(run_root):
    a = runtime.Manifest.create("world")
    b = runtime.Manifest.create("world")
    c = runtime.Manifest.create("duo", "mine")
    assert (a.name, a.slot) == ("world", 0) and (b.name, b.slot) == ("world-2", 1)
    assert (c.name, c.slot) == ("mine", 2)
    assert runtime.Manifest.read(b.path).slot == 1  # (kept in the manifest)
    with pytest.raises(runtime.RunError, match="already up"):
        runtime.Manifest.create("duo", "mine")
    for bad in ("Bad Name", "-x", "a" * 33, "a/b"):
        with pytest.raises(runtime.RunError, match="run name"):
            runtime.Manifest.create("duo", bad)
    assert runtime.find_run("world-2").path == b.path
    with pytest.raises(runtime.RunError, match="3 runs up: say which with --run NAME"):
        runtime.find_run()
    with pytest.raises(runtime.RunError, match="2 runs of 'world'"):
        runtime.find_run(topology="world")
    with pytest.raises(runtime.RunError, match="no run named 'nope'"):
        runtime.find_run("nope")


def test_runs_a_slot_is_free_again_once_its_run_is_gone_and_there_are_36(run_root):
    made = [runtime.Manifest.create("duo") for _ in range(RUN_SLOTS)]
    assert sorted(m.slot for m in made) == list(range(RUN_SLOTS))
    with pytest.raises(runtime.RunError, match=f"{RUN_SLOTS} runs are up"):
        runtime.Manifest.create("duo")
    import shutil

    shutil.rmtree(made[5].dir)  # (that run ended)
    assert runtime.Manifest.create("duo").slot == 5


def test_runs_a_plans_names_carry_its_slots_prefix_and_datapath_ids():
    duo = topologies.load(topologies.builtin("duo"))
    plain, third = make_plan(duo), make_plan(duo, 2)
    assert run_prefix(2) == "i2" and run_prefix(35) == "iz" and run_prefix(None) == ""
    assert third.bridge("r1") == "i2r1" and plain.bridge("r1") == "r1"
    ends = {lk.a_intf for lk in third.links} | {lk.b_intf for lk in third.links}
    assert "i2r1-eth1" in ends and "h1-eth0" in ends  # (a host's end lives in its host)
    assert [r.dpid for r in third.routers] == [2 * 1024 + 1, 2 * 1024 + 2]
    assert [r.dpid for r in plain.routers] == [1, 2]
    long = topologies.Topology("t")
    long.interface("router-with-a-long-name", "lan", "10.0.0.1/24")
    with pytest.raises(ValueError, match="longer than Linux's 15"):
        make_plan(long, 0)


def test_runs_a_run_the_memory_cannot_hold_is_refused_before_it_is_built():
    big = SimpleNamespace(name="huge", routers={}, links={}, hosts={
        f"h{i}": SimpleNamespace(services=[1, 2]) for i in range(200_000)})
    assert runtime.estimate_mb(big) > 10_000_000 // 1024
    with pytest.raises(runtime.RunError, match="huge needs about"):
        runtime.check_memory(big)
    runtime.check_memory(topologies.load(topologies.builtin("world")))  # (fits)
