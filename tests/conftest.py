"""Test harness: unit tests run anywhere; scenario tests need root and a live network.

Scenario tests skip with a clear reason when not root — except under CI=true, where a
skipped scenario would hide a broken build, so they fail instead.
"""

from __future__ import annotations

import os

import pytest

SCENARIO_DIR = os.path.join(os.path.dirname(__file__), "scenarios")


def pytest_report_header(config):
    """Which kernel features the scenarios run on (KERNEL-DP, LINK-NETEM): the datapath and the link
    emulation `auto` picks here, and why (probed without loading anything)."""
    from emulation import kernel

    ovs, netem = kernel.probe("openvswitch", load=False), kernel.probe("sch_netem", load=False)
    return [f"kernel {os.uname().release}: openvswitch module: {ovs.how}; "
            f"sch_netem: {netem.how}",
            "scenarios run on: " + ("kernel" if ovs.present else "userspace") + " datapath, "
            + ("netem" if netem.present else "delay-line") + " links"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(SCENARIO_DIR):
            item.add_marker(pytest.mark.scenario)


def pytest_runtest_setup(item):
    if item.get_closest_marker("scenario") is None:
        return
    why = None
    if os.geteuid() != 0:
        why = "scenario tests build a live network and need root (try: sudo make test)"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI=true does not allow skipping them", pytrace=False)
        pytest.skip(why)
