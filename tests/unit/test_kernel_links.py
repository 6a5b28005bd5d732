"""KERNEL-DP and LINK-NETEM: datapath and link-emulation choices, netem arguments, live link
changes.
Pure: the kernel's answers are given, tc and signals are recorded, not run."""

from __future__ import annotations

import json
import random

import pytest

from emulation import kernel, linkemu
from emulation.delayline import DelayLine, read_settings
from topologies import loader
from topologies.plan import LinkPlan, make_plan

HAVE = kernel.Module("x", True, "loaded")
LACK = kernel.Module("x", False, "kernel 6.1-test has no x module")


def link(**shape) -> LinkPlan:
    return LinkPlan("r1", "r1-eth1", 1, "r2", "r2-eth1", 1, delay="10ms", shape=shape)


@pytest.mark.parametrize("mode,module,want", [
    ("auto", HAVE, "kernel"), ("auto", LACK, "user"), ("user", HAVE, "user"),
    ("kernel", HAVE, "kernel")])
def test_datapath_auto_takes_the_kernel_module_where_it_is(mode, module, want):
    got, why = kernel.choose_datapath(mode, module)
    assert got == want and why


def test_datapath_kernel_without_the_module_is_an_error_saying_why():
    with pytest.raises(ValueError, match="has no x module"):
        kernel.choose_datapath("kernel", LACK)


def test_links_auto_uses_netem_where_the_kernel_has_it_else_the_delay_line():
    assert kernel.choose_links("auto", HAVE, [link(jitter="2ms")])[0] == "netem"
    got, why = kernel.choose_links("auto", LACK, [link()])
    assert got == "delayline" and "delay and loss only" in why


def test_links_without_netem_refuse_what_only_netem_does_naming_link_and_fields():
    with pytest.raises(ValueError) as e:
        kernel.choose_links("auto", LACK, [link(jitter="2ms", rate=10.0)])
    assert "r1 -- r2" in str(e.value) and "jitter, rate" in str(e.value)
    with pytest.raises(ValueError, match="only the kernel's netem"):
        kernel.choose_links("delayline", HAVE, [link(duplicate=1.0)])
    with pytest.raises(ValueError, match="link_emulation: netem"):
        kernel.choose_links("netem", LACK, [link()])


def test_netem_arguments_carry_every_field():
    args = kernel.netem_args("20ms", 2.0, {"jitter": "5ms", "distribution": "normal",
                                          "loss_correlation": 25.0, "duplicate": 1.0,
                                          "corrupt": 0.5, "reorder": 10.0, "rate": 8.0,
                                          "queue": 50})
    assert " ".join(args) == ("delay 20ms 5ms distribution normal loss random 2.0% 25.0% "
                              "duplicate 1.0% corrupt 0.5% reorder 10.0% rate 8.0mbit limit 50")
    ge = kernel.netem_args(None, None, {"gilbert_elliott": {"p": 1, "r": 30}})
    assert ge == ["loss", "gemodel", "1%", "30%", "100%", "0%", "limit", "1000"]


def test_the_plan_carries_the_netem_fields_of_host_and_router_links():
    topo = loader.loads("""
name: t
routers:
  r1: {interfaces: {lan1: 10.0.1.1/24, core: 10.255.0.1/30}}
  r2: {interfaces: {lan2: 10.0.2.1/24, core: 10.255.0.2/30}}
hosts:
  h1: {subnet: lan1, address: 10.0.1.10, link: {delay: 5ms, jitter: 1ms, rate: 10}}
  h2: {subnet: lan2, address: 10.0.2.10}
links:
  core: {delay: 20ms, gilbert_elliott: {p: 2, r: 40}}
datapath: user
link_emulation: netem
""", "t.yaml")
    plan = make_plan(topo)
    by = {(lk.a, lk.b): lk for lk in plan.links}
    assert by[("h1", "r1")].shape == {"jitter": "1ms", "rate": 10.0}
    core = next(lk for lk in plan.links if {lk.a, lk.b} == {"r1", "r2"})
    assert core.shape == {"gilbert_elliott": {"p": 2, "r": 40}} and core.emulated
    assert not by[("h2", "r2")].emulated and topo.datapath == "user"


def rec(mechanism: str, **kw) -> dict:
    return linkemu.record("h1", "r1", "h1-eth0", "r1-eth1", mechanism, delay="10ms",
                          loss=None, shape={}, a_pid=4242, b_pid=None,
                          delay_node="dly1" if mechanism == "delayline" else None, **kw)


def test_link_set_on_netem_replaces_the_qdisc_on_both_ends_in_their_namespaces():
    ran: list = []
    new = linkemu.change(rec("netem", bw=None), linkemu.parse_changes(
        ["delay", "80ms", "loss", "2%", "jitter", "5ms"]), run=lambda p, c: ran.append((p, c)))
    assert new["settings"]["delay"] == "80ms" and new["settings"]["loss"] == 2.0
    assert [p for p, _ in ran] == [4242, None]
    assert ran[0][1] == ("tc qdisc replace dev h1-eth0 root handle 10: netem delay 80ms 5ms "
                         "loss random 2.0% limit 1000")
    ran.clear()
    linkemu.change(rec("netem", bw=100.0), {"delay": "1ms"}, run=lambda p, c: ran.append(c))
    assert all(" parent 5:1 handle 10: " in c for c in ran)  # under Mininet's HTB


def test_link_set_on_the_delay_line_writes_its_settings_and_signals_it(tmp_path):
    signalled: list[int] = []
    new = linkemu.change(rec("delayline", bw=None), {"delay": "80ms", "loss": 2.0},
                         delay_line_pid=77, settings_dir=tmp_path,
                         signal_pid=signalled.append)
    assert signalled == [77] and new["settings"]["delay"] == "80ms"
    assert json.loads((tmp_path / "dly1.json").read_text()) == {"delay": "80ms", "loss": 2.0}
    assert read_settings(str(tmp_path / "dly1.json")) == (0.08, 2.0)


@pytest.mark.parametrize("mechanism,changes,problem", [
    ("delayline", {"jitter": "5ms"}, "only the kernel's netem"),
    ("netem", {"loss": 120.0}, r"loss 120.0 not in \[0, 100\]"),
    ("netem", {"delay": "fast"}, "bad delay"),
    ("none", {"delay": "5ms"}, "not emulated"),
])
def test_a_bad_link_change_is_refused_and_nothing_is_applied(tmp_path, mechanism, changes,
                                                            problem):
    ran: list = []
    with pytest.raises(ValueError, match=problem):
        linkemu.change(rec(mechanism, bw=None), changes, run=lambda p, c: ran.append(c),
                       delay_line_pid=1, settings_dir=tmp_path, signal_pid=ran.append)
    assert ran == [] and not list(tmp_path.iterdir())


def test_link_set_parses_the_prompt_form_and_rejects_unknown_fields():
    assert linkemu.parse_changes(["rate", "10", "queue", "50"]) == {"rate": 10.0, "queue": 50}
    assert linkemu.parse_changes(["gilbert_elliott", "1,30"]) == {
        "gilbert_elliott": {"p": 1.0, "r": 30.0}}
    with pytest.raises(ValueError, match="p,r"):
        linkemu.parse_changes(["gilbert_elliott", "1,x"])
    with pytest.raises(ValueError, match="unknown link field 'speed'"):
        linkemu.parse_changes(["speed", "10"])
    with pytest.raises(LookupError, match="no emulated link joins h1 and r9"):
        linkemu.find([rec("netem", bw=None)], "h1", "r9")


def test_delay_line_change_keeps_frames_in_order():
    line = DelayLine(0.1, 0, random.Random(1))
    line.push(b"a", 0.0)
    line.delay = 0.01  # a live change: shorter
    line.push(b"b", 0.05)  # due at 0.06, but "a" (due 0.1) is ahead of it
    assert line.due(0.07) == []
    assert line.due(0.1) == [b"a", b"b"]


def test_the_manifest_keeps_the_kernel_datapath_apart_from_the_cluster_servers(tmp_path):
    from emulation.runtime import Manifest

    m = Manifest(tmp_path / "manifest.json", "t", kernel_datapaths=["ovs-system"])
    m.save()
    back = Manifest.read(tmp_path / "manifest.json")
    assert back.kernel_datapaths == ["ovs-system"] and back.remote == {}
