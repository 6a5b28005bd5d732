"""FAULT-INJECT, faults on purpose, the pure parts (no root): the `faults:` block and its
errors, seeded schedules, the effects read from two looks, the timeline's text and
picture, and the pools a fault fills (DHCP lease pool, NAT address pool, the API)."""

from __future__ import annotations

import json
import textwrap
from ipaddress import IPv4Address, IPv4Network

import pytest

import topologies
from emulation.faults import Effect, effects, subjects
from infralab.faultview import TimelineError, read, summary, svg, text
from topologies import TopologyError, loads
from topologies.faults import Fault, parse_fault

BASE = textwrap.dedent("""\
    name: f
    routers:
      r1: {interfaces: {lan1: 10.0.1.1/24, core: 10.255.0.1/30, pool: 10.255.1.1/30}}
      r2: {interfaces: {core: 10.255.0.2/30, lan2: 10.0.2.1/24, pool: 10.255.1.2/30,
                        wan: 198.18.0.1/30},
           nat: {wan: {pool: {addresses: 198.18.5.0/29, inside: [10.0.2.0/24]}}}}
    links:
      core: {delay: 5ms}
    hosts:
      h1: {subnet: lan1, address: 10.0.1.10,
           services: [{name: dns, run: "true"}, {name: dhcp, run: "true"}]}
      h2: {subnet: lan2, address: 10.0.2.10}
    """)


def topo_with(block: str):
    return loads(BASE + textwrap.dedent(block), source="f.yaml")


def test_faults_block_schedule_fixed_and_random_repeats_with_the_seed():
    t = topo_with("""\
        faults:
          seed: 3
          schedule:
            - {at: 1, kind: link-flap, link: [r1, r2], period: 1, count: 2}
            - {at: 2, kind: loss-burst, link: [r2, r1], loss: 30, duration: 2}
            - {at: 3, kind: service-pause, service: h1.dns, duration: 1}
          random:
            window: 45
            gap: 5
            duration: [1, 3]
            kinds:
              controller-kill: 2
              partition: 1
              service-kill: {count: 2, choose: [{service: h1.dns}]}
              nat-pool-fill: 1
              host-down: 1
        """)
    s1, s2 = t.faults.schedule(t), t.faults.schedule(t)
    assert s1 == s2 and len(s1) == 10
    assert next(f for f in s1 if f.kind == "host-down").host == "h1"  # the one with services
    assert s1 != t.faults.schedule(t, seed=4)  # another seed, another run
    assert [f.at for f in s1] == sorted(f.at for f in s1)
    rand = [f for f in s1 if f.kind in ("controller-kill", "partition", "service-kill",
                                        "nat-pool-fill", "host-down")]
    starts = sorted(f.at for f in rand)
    assert all(b - a >= 5 - 1e-9 for a, b in zip(starts, starts[1:], strict=False))
    assert max(starts) <= 45
    assert {f.service for f in rand if f.kind == "service-kill"} == {"h1.dns"}
    part = next(f for f in rand if f.kind == "partition")
    assert part.links and 1 <= part.duration <= 3  # a router cut off from its neighbours
    assert next(f for f in rand if f.kind == "nat-pool-fill").target() == "r2/wan"
    flap = next(f for f in s1 if f.kind == "link-flap")
    assert flap.lasts == 2.0 and flap.describe() == "link-flap r1--r2 every 1 s x2 for 2 s"


@pytest.mark.parametrize("block, where, problem", [
    ("faults: {schedule: [{at: 1, kind: boom}]}", "faults.schedule[0].kind", "unknown kind"),
    ("faults: {schedule: [{at: 1, kind: link-down, link: [h1, r2]}]}",
     "faults.schedule[0].link", "no link joins h1 and r2"),
    ("faults: {schedule: [{at: 1, kind: loss-burst, link: [h1, r1], loss: 5, duration: 1}]}",
     "faults.schedule[0].link", "no delay or loss to change"),
    ("faults: {schedule: [{at: 1, kind: partition, links: [[r1, r2]]}]}",
     "faults.schedule[0]", "needs a 'duration'"),
    ("faults: {schedule: [{at: 1, kind: controller-kill, duration: 3}]}",
     "faults.schedule[0].duration", "the supervisor heals it"),
    ("faults: {schedule: [{at: 1, kind: service-kill, service: h2.web}]}",
     "faults.schedule[0].service", "no service 'h2.web'"),
    ("faults: {schedule: [{at: 1, kind: dhcp-pool-fill, service: h1.dns, duration: 2}]}",
     "faults.schedule[0].service", "a DHCP server"),
    ("faults: {schedule: [{at: 1, kind: nat-pool-fill, router: r1, interface: wan, "
     "duration: 2}]}", "faults.schedule[0].interface", "no NAT address pool"),
    ("faults: {schedule: [{kind: controller-kill}]}", "faults.schedule[0]", "needs 'at'"),
    ("faults: {random: {window: 10, gap: 6, kinds: {controller-kill: 3}}}",
     "faults.random.gap", "do not fit"),
    ("faults: {seed: x}", "faults.seed", "expected an integer"),
])
def test_bad_faults_block_names_file_line_and_field(block, where, problem):
    with pytest.raises(TopologyError) as e:
        topo_with(block)
    assert e.value.where == where and e.value.source == "f.yaml" and e.value.line
    assert problem in e.value.problem


def test_random_loss_burst_takes_an_emulated_link_only():
    t = topo_with("faults: {random: {window: 5, gap: 1, kinds: {loss-burst: 3}}}")
    assert {f.link for f in t.faults.schedule(t)} == {("r1", "r2")}  # the core, not `pool`


def test_world_block_has_what_the_chaos_run_needs():
    t = topologies.load(topologies.builtin("world"))
    kinds = [f.kind for f in t.faults.schedule(t)]
    assert kinds.count("controller-kill") == 2
    assert {"link-flap", "partition", "service-kill"} <= set(kinds)


def test_prompt_form_is_the_file_form():
    from infralab.mncli import fault_words

    t = topologies.load(topologies.builtin("world"))
    d = fault_words(["partition", "links=ri,rs;rk,rs", "duration=8s"])
    f = parse_fault(d, "fault", t, at_required=False)
    assert f == Fault("partition", duration=8.0, links=(("ri", "rs"), ("rk", "rs")))


def test_effects_between_two_looks():
    sup = json.dumps({"service": "ns1.dns", "action": "restarted"})
    before = {"gslb:g.gslb": {"web1a": "down"}, "supervisor": [], "down": ["rs:2"]}
    after = {"gslb:g.gslb": {"web1b": "down"}, "supervisor": [sup], "down": ["ri:3"]}
    assert effects(before, after) == [
        Effect("GSLB withdrew web1b", "gslb:web1b"),
        Effect("GSLB restored web1a", "gslb:web1a", False),
        Effect("supervisor restarted ns1.dns", "service:ns1.dns", False),
        Effect("controller rerouted: ri:3 down", "link:ri:3"),
        Effect("controller rerouted: rs:2 up", "link:rs:2", False)]
    # what could not be read (None) makes no change up
    assert effects(before, {**before, "gslb:g.gslb": None, "down": None}) == []
    assert subjects(Fault("service-kill", service="ns1.dns")) == {"service:ns1.dns"}
    assert subjects(Fault("controller-kill")) == {"controller"}


TIMELINE = [
    {"t": 1.0, "event": "inject", "id": "f1", "kind": "partition", "target": "ri--rb"},
    {"t": 3.1, "event": "effect", "id": "f1", "after_s": 2.1, "what": "GSLB withdrew web2a"},
    {"t": 2.0, "event": "inject", "id": "f2", "kind": "controller-kill",
     "target": "controller"},
    {"t": 3.5, "event": "heal", "id": "f2", "after_s": 1.5, "how": "restarted"},
    {"t": 7.0, "event": "heal", "id": "f1", "after_s": 6.0, "how": "link(s) up"},
    {"t": 8.0, "event": "inject", "id": "f3", "kind": "service-kill", "target": "ns1.dns"},
]


def test_timeline_text_summary_and_picture(tmp_path):
    out = text(TIMELINE)
    assert "+2.10 s  GSLB withdrew web2a" in out and "healed: link(s) up" in out
    assert out.index("f2    inject") < out.index("f1    effect")  # in time order
    s = summary(TIMELINE)
    assert "partition        1 healed, median 6.00 s, worst 6.00 s" in s
    assert "not healed: f3 service-kill ns1.dns" in s
    pic = svg(TIMELINE, "world")
    assert pic.count("<rect") == 3 and "GSLB withdrew web2a" in pic and pic.endswith("</svg>\n")
    p = tmp_path / "faults.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in TIMELINE) + "{oops\n")
    with pytest.raises(TimelineError, match=r"faults.jsonl:7: not a timeline record"):
        read(p)


def test_dhcp_pool_fill_parks_free_addresses_only_and_unpark_frees_them():
    from services.dhcp.config import loads as dhcp_loads
    from services.dhcp.leases import FILL_CLIENT, LeasePool

    cfg = dhcp_loads("subnets: [{subnet: 10.0.2.0/24, pool: [10.0.2.100-10.0.2.104]}]\n")
    pool = LeasePool(cfg.subnets[0])
    assert pool.bind(0, "a", "02:00:00:00:00:01", IPv4Address("10.0.2.100"), 600)
    assert pool.park_free(10, 30) == 4 and pool.free_count(10) == 0
    assert pool.offer(11, "b", "02:00:00:00:00:02", None) is None  # exhausted
    assert pool.lease_of("a", 11).state == "bound"  # an acknowledged lease is untouched
    assert any(r["client"] == FILL_CLIENT for r in pool.journal)  # on disk: kept on restart
    assert pool.unpark(12) == 4 and pool.free_count(12) == 4
    assert pool.offer(13, "b", "02:00:00:00:00:02", None) is not None
    pool.park_free(20, 5)  # and a fill ends by itself
    assert pool.free_count(26) == 3


def test_nat_pool_fill_refuses_new_hosts_and_gives_back():
    """The fault through the API's real handler into the router's real NAT engine, in a
    simulated network: while the pool is filled, h2 (inside) cannot reach h3 (outside);
    given back, it can, from a pool address."""
    from controllers.api import handle
    from tests.unit.simnet import SimNet

    net = SimNet(loads(BASE + "  h3: {subnet: wan, address: 198.18.0.2}\n", source="f.yaml"))
    nat = net.routers["r2"].nat
    pool = IPv4Network("198.18.5.0/29")

    class App:  # what controllers.app.nat_fill does, on the simulated router
        def nat_fill(self, router, iface, fill):
            if router != "r2":
                raise KeyError(f"no NAT on {router}/{iface}")
            n = nat.fill_pool(iface) if fill else nat.unfill_pool(iface)
            return {"held": n} if fill else {"freed": n}

    assert handle(App(), "POST", "/nat/r2/wan/fill") == (200, {"held": 6})
    assert nat.state()["interfaces"]["wan"]["pool_free"] == 0
    refused = net.ping("h2", "h3")
    assert refused is None or refused.icmp_type != 0, refused  # no echo reply
    assert not any(f.ip_src in pool for f in net.hosts["h3"].received)  # nothing got out
    assert handle(App(), "POST", "/nat/r2/wan/unfill") == (200, {"freed": 6})
    net.advance(2.0)  # (the refusal's short drop flow ends)
    reply = net.ping("h2", "h3")
    assert reply is not None and reply.icmp_type == 0, reply
    assert any(f.ip_src in pool for f in net.hosts["h3"].received)  # from a pool address
    assert handle(App(), "POST", "/nat/r1/wan/fill")[0] == 404
    with pytest.raises(ValueError):
        nat.fill_pool("lan2")
