"""TB-TOPO: services declared in the topology run on their host and end with it; link
bandwidth is shaped; a service that fails to start leaves nothing half-built."""

from __future__ import annotations

import json
import re
import statistics
import subprocess

import pytest

from emulation.build import BuildError, Emulation, wait_for, wait_listening
from topologies import Service, Topology
from topologies.model import LinkParams


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


def test_tb_topo_link_delay_is_emulated_on_host_and_router_links():
    """Delay on a host link and on a router link (netem on both ends, or delay nodes that
    repeat frames late): ping RTT shows 2x the one-way delay of each delayed link on the
    path, and TCP still works. (Loss is measured over 1,000 probes in test_links.)"""
    t = small(Service("web", "{python} -m http.server 8080 --bind {ip} --directory {run}",
                      ready_port=8080), bw=None, n=4)
    t.interface("sr4", "core", "10.255.0.1/30")
    t.interface("rx4", "core", "10.255.0.2/30")
    t.interface("rx4", "far", "10.0.9.1/24")
    t.route("sr4", "10.0.9.0/24", "10.255.0.2")
    t.route("rx4", "default", "10.255.0.1")
    t.host("far4", "far", "10.0.9.10")
    t.hosts["srv4"].link.delay = "15ms"
    t.links["core"] = LinkParams(delay="25ms")
    with Emulation(t) as emu:
        if emu.link_emulation == "delayline":
            assert sorted(emu.delay_nodes) == ["dly1", "dly2"]
        else:
            assert not emu.delay_nodes
            qd = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True)
            ours = [x for x in qd.stdout.splitlines() if "netem" in x and
                    re.search(r"dev (sr4|rx4)-eth", x)]
            assert len(ours) == 3, qd.stdout  # srv4's router end, both ends of the core
        # the path learnt first (ARP goes through the controller): then RTT is the links'
        for dst in ("10.0.1.10", "10.0.9.10"):
            wait_for(lambda d=dst: "1 received" in emu.host("cli4").cmd(
                f"ping -n -c1 -W2 {d}"), 20, f"a reply from {dst}")
        near = emu.host("cli4").cmd("ping -n -c5 -i0.2 10.0.1.10")
        far = emu.host("cli4").cmd("ping -n -c5 -i0.2 10.0.9.10")

        def median_rtt(out: str) -> float:  # (the median: one late reply is no link's delay)
            times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
            assert len(times) >= 4, out
            return statistics.median(times)

        rtt_near, rtt_far = median_rtt(near), median_rtt(far)
        assert 30 <= rtt_near < 60 and 50 <= rtt_far < 90, (near, far)
        (emu.service_dir("srv4.web") / "f.txt").write_text("x" * 200_000)
        out = emu.host("cli4").cmd("curl -s -o /dev/null -w '%{http_code} %{size_download}' "
                                   "http://10.0.1.10:8080/f.txt")
        assert out.strip() == "200 200000", out
        print(f"TB-TOPO delay ({emu.link_emulation}): RTT {rtt_near:.1f} ms over a 15 ms "
              f"link, {rtt_far:.1f} ms over a 25 ms link")
        manifest = emu.manifest
    assert manifest.leftovers() == []


def test_tb_topo_supervision_restarts_a_crashed_service_and_logs_it(net):
    """A service killed with SIGKILL (a crash) is noticed and started again; the
    restart is logged with the exit status, and the service answers again."""
    import os
    import signal

    from emulation.build import wait_for

    old = net.services["srv.web"]
    os.killpg(old.pid, signal.SIGKILL)
    new = wait_for(lambda: net.services["srv.web"] if net.services["srv.web"] is not old
                   else None, 10, "the supervisor to restart srv.web")
    wait_listening(net.host("srv"), 8080, 10, new, "the restarted web service")
    (net.service_dir("srv.web") / "again.txt").write_text("back\n")
    out = net.host("cli").cmd("python3 -c \"import urllib.request;print(urllib.request."
                              "urlopen('http://10.0.1.10:8080/again.txt',timeout=5).read())\"")
    assert "back" in out
    rec = json.loads((net.rundir / "supervisor.jsonl").read_text().splitlines()[-1])
    assert rec["service"] == "srv.web" and rec["action"] == "restarted"
    assert rec["exit_status"] == -signal.SIGKILL and rec["new_pid"] == new.pid
    assert net.manifest.processes["service:srv.web"]["pid"] == new.pid  # cleanup knows it
