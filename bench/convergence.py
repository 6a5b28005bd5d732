"""Convergence after a link failure (ROUTE-FAILOVER): how long a steady stream
goes undelivered when the link on its path fails, for

- infralab with fast failover (the switch moves the traffic to the precomputed loop-free
  backup the moment the port goes down: bundle_load, active-backup);
- infralab recomputing only (`fast_failover: false`: the controller hears the port go
  down, recomputes and sends the flows that changed);
- FRR's ospfd on Linux routers (Debian's `frr`; hello 1 s, dead 4 s, BFD where the
  package has bfdd), what an IPMininet user gets.

The same triangle for all: h1 - r1 - r2 - h2 with a second way r1 - r3 - r2. h1 sends 1,000
numbered UDP datagrams a second to h2 (bench/stream.py); two seconds in, both ends of
r1 - r2 go down (`ip link set ... down`, the carrier drops on both sides). The figure is
the traffic lost, in time: datagrams lost x 1 ms (a scheduling hiccup delays datagrams
but loses none, so it does not count); the longest silence at the receiver is kept beside
it. Runs are interleaved, each on a fresh network; `python -m bench --only routing`
includes it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import stats
from bench.net import BenchError
from emulation import runtime
from emulation.build import Emulation, wait_for
from topologies.model import Topology

STREAM = str(Path(__file__).resolve().parent / "stream.py")
RATE, SECONDS, FAIL_AFTER = 1000, 5.0, 2.0
FRR = Path("/usr/lib/frr")
MODES = ("fast-failover", "recompute", "frr-ospf")


def triangle(fast_failover: bool = True) -> Topology:
    t = Topology("converge", fast_failover=fast_failover)
    t.interface("r1", "lan1", "10.0.1.1/24")
    t.interface("r1", "a", "10.255.0.1/30")
    t.interface("r2", "a", "10.255.0.2/30")
    t.interface("r1", "b", "10.255.0.5/30")
    t.interface("r3", "b", "10.255.0.6/30")
    t.interface("r3", "c", "10.255.0.9/30")
    t.interface("r2", "c", "10.255.0.10/30")
    t.interface("r2", "lan2", "10.0.2.1/24")
    t.host("h1", "lan1", "10.0.1.10")
    t.host("h2", "lan2", "10.0.2.10")
    return t.validate()


def outage(h1: Any, h2: Any, fail: Callable[[], object]) -> dict:
    """Stream h1 -> h2, call `fail` FAIL_AFTER seconds in; the receiver's verdict."""
    rx = h2.popen([sys.executable, STREAM, "recv", "5555", str(SECONDS + 1.5)],
                  stdout=subprocess.PIPE)
    time.sleep(0.3)  # (the receiver binds its socket: a fixed schedule is the measurement)
    tx = h1.popen([sys.executable, STREAM, "send", "10.0.2.10", "5555", str(RATE),
                   str(SECONDS)], stdout=subprocess.PIPE)
    time.sleep(FAIL_AFTER)
    fail()
    tx.communicate(timeout=SECONDS + 10)
    out, _ = rx.communicate(timeout=SECONDS + 10)
    got = json.loads(out.decode().strip().splitlines()[-1])
    # a slow convergence is a measurement, not an error: the run keeps it, flagged
    got["mostly_lost"] = got["received"] < RATE * (SECONDS - 1)
    return got


def ours(fast_failover: bool) -> dict:
    with Emulation(triangle(fast_failover)) as emu:
        wait_for(lambda: "1 received" in emu.host("h1").cmd("ping -c1 -w2 10.0.2.10"), 20,
                 "h1 reaching h2")
        return outage(emu.host("h1"), emu.host("h2"), lambda: emu.link("r1", "r2", False))


LINKS = [("r1", "r1-eth1", "10.255.0.1/30", "r2", "r2-eth1", "10.255.0.2/30"),
         ("r1", "r1-eth2", "10.255.0.5/30", "r3", "r3-eth1", "10.255.0.6/30"),
         ("r3", "r3-eth2", "10.255.0.9/30", "r2", "r2-eth2", "10.255.0.10/30")]


@contextlib.contextmanager
def frr_net() -> Iterator[Any]:
    """The triangle of Linux routers running zebra + ospfd (+ bfdd), cleaned by manifest
    (interfaces; the daemons by the PIDs we started)."""
    from mininet.log import setLogLevel
    from mininet.net import Mininet

    setLogLevel("error")
    m = runtime.Manifest.create("bench-ospf")
    m.interfaces = [x[1] for x in LINKS] + [x[4] for x in LINKS] + ["r1-eth0", "r2-eth0"]
    m.save()
    work = Path(tempfile.mkdtemp(prefix="infralab-ospf-"))
    work.chmod(0o755)
    net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
    procs: list[subprocess.Popen] = []
    try:
        h1 = net.addHost("h1", ip="10.0.1.10/24", defaultRoute="via 10.0.1.1")
        h2 = net.addHost("h2", ip="10.0.2.10/24", defaultRoute="via 10.0.2.1")
        routers = {r: net.addHost(r, ip=None) for r in ("r1", "r2", "r3")}
        net.addLink(h1, routers["r1"], intfName2="r1-eth0")
        net.addLink(h2, routers["r2"], intfName2="r2-eth0")
        for a, ia, _, b, ib, _ in LINKS:
            net.addLink(routers[a], routers[b], intfName1=ia, intfName2=ib)
        net.build()
        m.add_nodes(net.hosts)
        addrs = {"r1": [("r1-eth0", "10.0.1.1/24")], "r2": [("r2-eth0", "10.0.2.1/24")],
                 "r3": []}
        for a, ia, pa, b, ib, pb in LINKS:
            addrs[a].append((ia, pa))
            addrs[b].append((ib, pb))
        bfd = (FRR / "bfdd").exists()
        for i, (name, node) in enumerate(routers.items(), start=1):
            node.cmd("sysctl -qw net.ipv4.ip_forward=1; " + "; ".join(
                f"ip addr add {p} dev {dev}; ip link set {dev} up; "
                f"ethtool -K {dev} tx off >/dev/null 2>&1" for dev, p in addrs[name]))
            procs += _start_frr(node, name, i, [d for d, _ in addrs[name]
                                               if not d.endswith("eth0")], work, bfd, m)
        for h in (h1, h2):
            h.cmd(f"ethtool -K {h.defaultIntf()} tx off >/dev/null 2>&1")
        wait_for(lambda: "10.255.0.2" in routers["r1"].cmd("ip route show 10.0.2.0/24")
                 and "1 received" in h1.cmd("ping -c1 -w1 10.0.2.10"), 60,
                 "OSPF routing h1 to h2 over r1 - r2")
        # the peer as configured before the failure: r1's two OSPF neighbours Full and,
        # with bfdd, its BFD sessions up (read from vtysh); BFD not up is reported
        wait_for(lambda: ospf_full(routers["r1"], work / "r1") >= 2, 30,
                 "r1's OSPF adjacencies to be Full")
        net.bfd = bfd and _bfd_up(routers["r1"], work / "r1")
        yield net
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        net.stop()
        m.remove_all()
        shutil.rmtree(work, ignore_errors=True)


def _start_frr(node: Any, name: str, index: int, links: list[str], work: Path, bfd: bool,
               m: runtime.Manifest) -> list[subprocess.Popen]:
    d = work / name
    d.mkdir()
    ospf = [f"hostname {name}", "!"]
    for dev in links:
        ospf += [f"interface {dev}", " ip ospf hello-interval 1", " ip ospf dead-interval 4",
                 " ip ospf network point-to-point"] + ([" ip ospf bfd"] if bfd else []) + ["!"]
    ospf += ["router ospf", f" ospf router-id 10.255.255.{index}",
             " network 10.0.0.0/8 area 0", "!"]
    (d / "ospfd.conf").write_text("\n".join(ospf) + "\n")
    (d / "zebra.conf").write_text(f"hostname {name}\n!\n")
    (d / "bfdd.conf").write_text(f"hostname {name}\n!\n")
    for f in [d, *d.iterdir()]:  # the daemons run as the package's user, frr
        shutil.chown(f, "frr", "frr")
    common = ["-z", str(d / "zserv.api"), "--vty_socket", str(d), "-u", "frr", "-g", "frr",
              "-A", "127.0.0.1", "-P", "0", "--log", "stdout"]
    procs = []
    for daemon in ["zebra"] + (["bfdd"] if bfd else []) + ["ospfd"]:
        extra = ["--bfdctl", str(d / "bfdd.sock")] if daemon == "bfdd" else []
        log = open(d / f"{daemon}.log", "wb")  # noqa: SIM115 (closed with the process)
        p = node.popen([str(FRR / daemon), "-f", str(d / f"{daemon}.conf"), "-i",
                        str(d / f"{daemon}.pid"), *common, *extra], stdout=log,
                       stderr=subprocess.STDOUT, start_new_session=True,
                       mncmd=["mnexec", "-a", str(node.pid)])  # (no fork: the PID is its)
        m.add_process(f"frr:{name}.{daemon}", p.pid, group=True)
        procs.append(p)
        if daemon == "zebra":
            api = d / "zserv.api"
            wait_for(api.exists, 10, f"{name}'s zebra")
    return procs


def vtysh(node: Any, vty: Path, command: str) -> Any:
    """One `show ... json` of a router's FRR, through its own vty socket directory."""
    out = node.cmd(f"vtysh --vty_socket {vty} -c '{command}' 2>/dev/null")
    try:
        return json.loads(out[out.index("{"):])
    except ValueError:
        return {}


def ospf_full(node: Any, vty: Path) -> int:
    """How many of the router's OSPF neighbours are Full."""
    neighbours = vtysh(node, vty, "show ip ospf neighbor json").get("neighbors", {})
    return sum(1 for rows in neighbours.values() for n in rows
               if str(n.get("state", n.get("nbrState", ""))).startswith("Full"))


def _bfd_up(node: Any, vty: Path, timeout: float = 15) -> bool:
    def up() -> bool:
        out = node.cmd(f"vtysh --vty_socket {vty} -c 'show bfd peers json' 2>/dev/null")
        try:
            peers = json.loads(out[out.index("["):])
        except ValueError:
            return False
        return len([p for p in peers if p.get("status") == "up"]) >= 2

    try:
        wait_for(up, timeout, "r1's BFD sessions to come up", 0.5)
        return True
    except TimeoutError:
        return False


def peer() -> dict:
    with frr_net() as net:
        def fail() -> None:
            net["r1"].cmd("ip link set r1-eth1 down")
            net["r2"].cmd("ip link set r2-eth1 down")
        got = outage(net["h1"], net["h2"], fail)
        return {**got, "bfd": net.bfd}


def bench_convergence() -> dict:
    if not (FRR / "ospfd").exists():
        raise BenchError("FRR is not installed (apt-get install frr): no OSPF peer")
    got: dict[str, list[float]] = {m: [] for m in MODES}
    gaps: dict[str, list[float]] = {m: [] for m in MODES}
    bfd: list[bool] = []
    notes: list[str] = []  # rounds that failed or lost most of the stream, and why
    for i in range(stats.RUNS):
        runs: list[tuple[str, Callable[[], dict]]] = [
            ("fast-failover", lambda: ours(True)), ("recompute", lambda: ours(False)),
            ("frr-ospf", peer)]
        for mode, run in runs:
            try:
                r = run()
            except Exception as e:  # noqa: BLE001 - one round's failure ends no bench
                notes.append(f"round {i + 1}, {mode}: failed: {type(e).__name__}: {e}")
                continue
            got[mode].append(r["lost"] * 1000 / RATE)
            gaps[mode].append(r["max_gap_ms"])
            if mode == "frr-ospf":
                bfd.append(bool(r.get("bfd")))
            if r.get("mostly_lost"):
                notes.append(f"round {i + 1}, {mode}: most of the stream lost (kept as "
                             f"measured: {r['lost']} of {r['received'] + r['lost']})")
    return {**{f"outage_ms.{m}": stats.summary(v) for m, v in got.items() if v},
            **{f"silence_ms.{m}": stats.summary(v) for m, v in gaps.items() if v},
            "ospf_bfd": bool(bfd) and all(bfd),
            "ospf_bfd_rounds": f"{sum(bfd)} of {len(bfd)}", "convergence_notes": notes}


def report(res: dict) -> None:
    from bench.stats import row

    print("\nconvergence (targets: fast-failover <= 50 ms, recompute <= 0.5x OSPF)")
    for note in res.get("convergence_notes", []):
        print(f"  note: {note}")
    if not res.get("ospf_bfd"):
        print(f"  note: BFD was not up in every OSPF round ({res.get('ospf_bfd_rounds')}): "
              "the peer converged on its dead interval")
    missing = [m for m in MODES if f"outage_ms.{m}" not in res]
    if missing:
        print(f"  no figure for {', '.join(missing)}: every round failed (notes above)")
        return
    peer_ = res["outage_ms.frr-ospf"]
    print(row("traffic lost when a link fails, ms: FF", res["outage_ms.fast-failover"],
              peer_, "FRR ospfd (hello 1 s, dead 4 s" + (", BFD)" if res["ospf_bfd"] else ")"),
              1, lower_is_better=True))
    print(row("  recompute only", res["outage_ms.recompute"], peer_, "FRR ospfd", 1, 0.5,
              lower_is_better=True))
    print("  longest silence at the receiver, ms: " + ", ".join(
        f"{m} {stats.show(res[f'silence_ms.{m}'], 1)}" for m in MODES))
