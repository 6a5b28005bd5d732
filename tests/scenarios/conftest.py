"""Scenario fixtures: one emulated network per module, always torn down (on failure and
Ctrl-C too), and a check at the end of the session that nothing of infralab is left."""

from __future__ import annotations

import os

import pytest

import topologies
from emulation import runtime
from emulation.build import Emulation


@pytest.fixture(scope="session", autouse=True)
def no_leftovers_after_session():
    if os.geteuid() != 0:
        yield
        return
    runtime.clean(log=lambda s: None)  # a crashed earlier run must not confuse us
    before = runtime.manifest_paths()
    yield
    # this session's runs: its own, and any whose owner died (a run another process of
    # this session started); a parallel worker's live runs are that worker's to check
    left = [m.dir.name for m in runtime.live_manifests() + runtime.stale_manifests()
            if m.path not in before
            and (m.owner.get("pid") == os.getpid() or not m.owner_alive())]
    assert not left, f"runs not torn down: {left}"


def build(name_or_topo) -> Emulation:
    topo = (name_or_topo if isinstance(name_or_topo, topologies.Topology)
            else topologies.load(topologies.builtin(name_or_topo)))
    return Emulation(topo)


@pytest.fixture(scope="module")
def world():
    with build("world") as emu:
        yield emu


@pytest.fixture(scope="module")
def duo():
    with build("duo") as emu:
        yield emu
