"""TB-TOPO: the topology format and its validation (no root needed)."""

import subprocess
import sys
import textwrap

import pytest

import topologies
from topologies import Topology, TopologyError, loads
from topologies.plan import make_plan

GOOD = textwrap.dedent("""\
    name: t
    routers:
      r1:
        interfaces:
          lan1: 10.0.1.1/24
          core: 10.255.0.1/30
        routes:
          - {to: 10.0.2.0/24, via: 10.255.0.2}
      r2:
        interfaces: {core: 10.255.0.2/30, lan2: 10.0.2.1/24}
        routes: [{to: default, via: 10.255.0.1}]
    hosts:
      h1: {subnet: lan1, address: 10.0.1.10, link: {bw: 100}}
      h2: {subnet: lan2, dhcp: true}
    """)


def error_of(text: str) -> TopologyError:
    with pytest.raises(TopologyError) as e:
        loads(text, source="t.yaml")
    return e.value


def test_tb_topo_good_file_loads_with_derived_subnets():
    t = loads(GOOD)
    s = t.subnets()
    assert s["core"].is_transit and set(s["core"].routers) == {"r1", "r2"}
    assert s["lan1"].hosts == ["h1"] and t.hosts["h2"].dhcp
    assert str(t.gateway("h1")) == "10.0.1.1"


@pytest.mark.parametrize("name", ["world", "duo"])
def test_tb_topo_shipped_topologies_are_valid(name):
    t = topologies.load(topologies.builtin(name))
    assert t.routers and t.hosts


@pytest.mark.parametrize("old,new,line,field,problem", [
    ("h1: {subnet: lan1,", "h1: {subnet: lan9,", 13, "hosts.h1.subnet", "unknown subnet 'lan9'"),
    ("address: 10.0.1.10", "address: 10.0.2.10", 13, "hosts.h1.address", "not in lan1"),
    ("address: 10.0.1.10", "address: 10.0.1.1", 13, "hosts.h1.address", "router's address"),
    ("address: 10.0.1.10", "address: 8.8.8.8", 13, "hosts.h1.address", "outside the private"),
    ("lan1: 10.0.1.1/24", "lan1: 10.0.1.1", 5, "routers.r1.interfaces.lan1", "prefix length"),
    ("via: 10.255.0.2}", "via: 10.9.9.9}", 8, "routers.r1.routes[0].via", "not on a subnet"),
    ("{bw: 100}", "{bw: -1}", 13, "hosts.h1.link.bw", "bandwidth"),
    ("{bw: 100}", "{bw: 100, latency: 1}", 13, "hosts.h1.link.latency",
     "unknown field 'latency'"),
    ("{bw: 100}", "{bw: 100, jitter: 5ms}", 13, "hosts.h1.link.jitter", "needs delay"),
    ("{bw: 100}", "{delay: 5ms, jitter: 1ms, distribution: gauss}", 13,
     "hosts.h1.link.distribution", "unknown distribution 'gauss'"),
    ("{bw: 100}", "{bw: 100, rate: 10}", 13, "hosts.h1.link.rate", "not both"),
    ("{bw: 100}", "{queue: 0}", 13, "hosts.h1.link.queue", "number of packets"),
    ("{bw: 100}", "{duplicate: 101}", 13, "hosts.h1.link.duplicate", "not in [0, 100]"),
    ("{bw: 100}", "{gilbert_elliott: {p: 1, x: 2}}", 13, "hosts.h1.link.gilbert_elliott",
     "expected {p, r"),
    ("name: t", "name: t\ndatapath: fast", 2, "datapath", "unknown datapath 'fast'"),
    ("h2: {subnet: lan2, dhcp: true}", "h2: {subnet: lan2}", 14, "hosts.h2", "exactly one of"),
    ("h2: {subnet: lan2,", "h2: {subnet: core,", 14, "hosts.h2.subnet", "joins two routers"),
    ("core: 10.255.0.2/30", "core: 10.255.0.6/30", 10, "routers.r2.interfaces.core",
     "different prefixes"),
    ("name: t", "name: t\nfoo: 1", 2, "foo", "unknown field 'foo'"),
])
def test_tb_topo_errors_name_file_line_field_and_problem(old, new, line, field, problem):
    assert old in GOOD
    e = error_of(GOOD.replace(old, new, 1))
    assert (e.source, e.line, e.where) == ("t.yaml", line, field), str(e)
    assert problem in e.problem
    assert str(e).startswith(f"t.yaml:{line}: {field}: ")


def test_tb_topo_duplicate_key_is_an_error_not_silently_dropped():
    e = error_of(GOOD.replace("  h2: {subnet: lan2, dhcp: true}",
                              "  h1: {subnet: lan2, dhcp: true}"))
    assert (e.line, e.where, e.problem) == (14, "hosts.h1", "duplicate key")


def test_tb_topo_yaml_syntax_error_names_the_line():
    e = error_of(GOOD.replace("routes:\n      - {to", "routes:\n      - {to: [", 1))
    assert e.line is not None and "YAML syntax" in e.problem


def test_tb_topo_python_api_builds_the_same_model_as_the_file():
    t = Topology("t")
    t.interface("r1", "lan1", "10.0.1.1/24")
    t.interface("r1", "core", "10.255.0.1/30")
    t.route("r1", "10.0.2.0/24", via="10.255.0.2")
    t.interface("r2", "core", "10.255.0.2/30")
    t.interface("r2", "lan2", "10.0.2.1/24")
    t.route("r2", "default", via="10.255.0.1")
    t.host("h1", "lan1", "10.0.1.10", bw=100)
    t.host("h2", "lan2")
    t.validate()
    assert make_plan(t) == make_plan(loads(GOOD))


def test_tb_topo_plan_gives_each_host_its_own_router_port():
    plan = make_plan(topologies.load(topologies.builtin("world")))
    rc = plan.router("rc")
    lan1 = next(i for i in rc.interfaces if i.subnet == "lan1")
    assert [(p.port, p.peer) for p in lan1.ports] == [(1, "c1"), (2, "c2")]
    ports = [p.port for i in rc.interfaces for p in i.ports]
    assert len(ports) == len(set(ports))
    assert len({i.mac for r in plan.routers for i in r.interfaces}) == sum(
        len(r.interfaces) for r in plan.routers)


def test_tb_topo_bad_file_gives_one_line_error_and_status_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("subnet: lan1,", "subnet: nowhere,"))
    r = subprocess.run([sys.executable, "-m", "infralab.cli", "validate", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:13: hosts.h1.subnet: unknown subnet" in lines[0]


def test_tb_topo_missing_file_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "infralab.cli", "validate",
                        str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_tb_topo_links_section_takes_delay_on_transit_subnets_only(tmp_path):
    from emulation.delayline import DelayLine
    from topologies.model import delay_seconds as parse_delay

    f = tmp_path / "t.yaml"
    f.write_text("name: t\nrouters:\n  r1: {interfaces: {lan: 10.0.1.1/24, core: 10.9.0.1/30}}\n"
                 "  r2: {interfaces: {core: 10.9.0.2/30}}\nhosts:\n"
                 "  h1: {subnet: lan, address: 10.0.1.10}\nlinks:\n  core: {delay: 20ms}\n")
    assert topologies.load(f).links["core"].delay == "20ms"
    f.write_text(f.read_text().replace("core: {delay: 20ms}", "lan: {delay: 20ms}"))
    with pytest.raises(TopologyError, match=r"t\.yaml:\d+: links\.lan: 'lan' is not a subnet "
                                            "joining two routers"):
        topologies.load(f)
    f.write_text(f.read_text().replace("lan: {delay: 20ms}", "core: {delay: fast}"))
    with pytest.raises(TopologyError, match=r"links\.core\.delay: bad delay 'fast'"):
        topologies.load(f)
    assert parse_delay("20ms") == pytest.approx(0.02) and parse_delay("1.5s") == 1.5
    line = DelayLine(0.02, 0)
    line.push(b"a", now=1.0)
    line.push(b"b", now=1.005)
    assert line.due(1.019) == [] and line.due(1.0201) == [b"a"] and line.due(1.03) == [b"b"]
    lossy = DelayLine(0.0, 50, rng=__import__("random").Random(1))
    for i in range(1000):
        lossy.push(bytes([i % 256]), 0.0)
    assert 400 < len(lossy.due(0.0)) < 600 and lossy.dropped + lossy.passed == 1000
