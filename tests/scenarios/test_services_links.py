"""TB-TOPO: services declared in the topology run on their host and end with it; link
bandwidth is shaped; a service that fails to start leaves nothing half-built."""

from __future__ import annotations

import json
import re

import pytest

from topologies import Service, Topology, TopologyError
from topologies.build import BuildError, Emulation, wait_listening


def small(service: Service, bw: float | None = 20, n: int = 1) -> Topology:
    """One router `sr<n>`, a server host with `service`, a client; n keeps names apart."""
    t = Topology(f"svc{n}")
    t.interface(f"sr{n}", "lan1", "10.0.1.1/24")
    t.interface(f"sr{n}", "lan2", "10.0.2.1/24")
    t.host(f"srv{n}" if n > 1 else "srv", "lan1", "10.0.1.10", bw=bw, services=[service])
    t.host(f"cli{n}" if n > 1 else "cli", "lan2", "10.0.2.10")
    return t


@pytest.fixture(scope="module")
def net():
    svc = Service("web", "{python} -m http.server 8080 --bind {ip} --directory {run}",
                  ready_port=8080)
    with Emulation(small(svc)) as emu:
        yield emu


def test_tb_topo_service_answers_from_its_host(net):
    (net.service_dir("srv.web") / "hello.txt").write_text("served by srv\n")
    out = net.host("cli").cmd("python3 -c \"import urllib.request;print(urllib.request."
                              "urlopen('http://10.0.1.10:8080/hello.txt',timeout=5).read())\"")
    assert "served by srv" in out


def test_tb_topo_link_bandwidth_is_shaped(net):
    srv = net.host("srv")
    p = srv.popen(["iperf3", "-s", "-1", "-B", "10.0.1.10"])
    try:
        wait_listening(srv, 5201, proc=p, what="iperf3")
        out = net.host("cli").cmd("iperf3 -J -c 10.0.1.10 -t 3")
        mbps = json.loads(out[out.index("{"):])["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        p.terminate()
        p.wait()
    assert 10 < mbps <= 21, f"20 Mbit/s link carried {mbps:.1f} Mbit/s"


def test_tb_topo_service_process_is_ended_at_teardown():
    svc = Service("sleeper", "sleep 300")
    emu = Emulation(small(svc, bw=None, n=2))
    with emu:
        pid = emu.services["srv2.sleeper"].pid
        assert re.search(r"sleep", open(f"/proc/{pid}/cmdline").read())
        manifest = emu.manifest
    assert manifest.leftovers() == []


def test_tb_topo_failing_service_aborts_the_build_and_leaves_nothing():
    emu = Emulation(small(Service("broken", "exit 3", ready_port=9), n=3))
    with pytest.raises(BuildError, match="srv3.broken exited with 3"):
        emu.start()
    assert emu.manifest.leftovers() == [] and not emu.manifest.dir.exists()


def test_tb_topo_reserved_link_delay_is_refused_not_faked():
    t = small(Service("idle", "sleep 300"), bw=None, n=4)
    t.hosts["srv4"].link.delay = "10ms"
    emu = Emulation(t)
    with pytest.raises(TopologyError, match="delay/loss are reserved"):
        emu.start()
    assert emu.manifest.leftovers() == [] and not emu.manifest.dir.exists()
