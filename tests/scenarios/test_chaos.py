"""FAULT-INJECT's proof: a chaos run with invariants. The world runs with steady traffic -
DHCP churn through rc's relay, DNS queries through all three resolvers, HTTP through the
campus PAT, the VIP and the GSLB - under the world's seeded fault schedule (`faults:` in
topologies/world.yaml: two controller kills, a core-link flap, a data-centre partition, a
DNS server crash, a loss burst). At the end:
  - every fault was healed, and each kind the schedule promises was injected;
  - no acknowledged DHCP lease was lost or given to two clients;
  - no NAT outside port was ever held by two bindings (sampled every second);
  - the GSLB withdrew the cut-off data centre's members during the partition and
    restored them after, and ends with every member up;
  - every resolver, and each HTTP path, answered again after each fault;
  - nothing is left behind once the world is torn down.
The figures (time to heal per fault kind, queries and connections lost per fault) are
printed: bench/RESULTS.md keeps them. INFRALAB_CHAOS_WINDOW (seconds, default the block's
60) and INFRALAB_CHAOS_SEED make the longer run of `make chaos`, which keeps the timeline
and its picture in INFRALAB_CHAOS_OUT."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from emulation import runtime
from emulation.build import wait_for
from infralab.faultview import faults, summary, svg
from services.common.control import control_request
from tests.scenarios.conftest import build

WINDOW = float(os.environ.get("INFRALAB_CHAOS_WINDOW", "0")) or None
SEED = int(os.environ["INFRALAB_CHAOS_SEED"]) if os.environ.get("INFRALAB_CHAOS_SEED") \
    else None
RECOVER_S = 30.0  # every probe answers again within this long after each heal
# which GSLB members a partition cuts off, by the first link it cuts
CUT_OFF = {("ri", "rb"): {"web2a"}, ("ri", "rs"): {"web1a", "web1b"}}
CHURN_MACS = 60


def in_host(emu, host: str, argv: list[str], timeout: float = 6) -> tuple[int, str]:
    """A command in `host`'s namespaces, by its own process (not the host's shell: the
    probes run in threads at once)."""
    try:
        r = subprocess.run(["mnexec", "-a", str(emu.host(host).pid), *argv],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, ""
    return r.returncode, r.stdout


class Probe(threading.Thread):
    """One kind of traffic, again and again: (t on the fault timeline's clock, ok)."""

    def __init__(self, name: str, emu, fn, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=name)
        self.emu, self.fn, self.stop_ev = emu, fn, stop
        self.results: list[tuple[float, bool]] = []
        self.n = 0

    def now(self) -> float:
        return self.emu.faults.clock() - self.emu.faults.t_start

    def run(self) -> None:
        while not self.stop_ev.is_set():
            self.n += 1
            t = self.now()
            try:
                ok = bool(self.fn(self.n))
            except Exception:  # noqa: BLE001 - a probe that broke is a failed probe
                ok = False
            self.results.append((t, ok))
            self.stop_ev.wait(0.5)


def dns_probe(emu, host: str, resolver: str):
    def fn(n: int) -> bool:  # a name never asked before (the full path), then the GSLB's
        name = f"chaos-{n}.example.com" if n % 2 else "www.example.com"
        rc, out = in_host(emu, host, ["dig", f"@{resolver}", name, "A", "+tries=1",
                                      "+time=2", "+noall", "+comments"])
        return rc == 0 and ("status: NOERROR" in out or "status: NXDOMAIN" in out)
    return fn


def http_probe(emu, host: str, address: str | None = None, gslb: str | None = None):
    def fn(_n: int) -> bool:
        target = address
        if gslb is not None:  # the GSLB's answer first, through the host's resolver
            rc, out = in_host(emu, host, ["dig", "+short", "+tries=1", "+time=2",
                                          f"@{gslb}", "www.examplegslb.com", "A"])
            target = next((x for x in out.split() if x[0].isdigit()), None)
            if rc or target is None:
                return False
        rc, out = in_host(emu, host, ["curl", "-s", "-m", "3", f"http://{target}/health"])
        return rc == 0 and "ok" in out
    return fn


def nat_sampler(emu, stop: threading.Event, seen: list) -> None:
    """Every second: rc's NAT table; a PAT outside port held by two bindings, or a pool
    address given to two inside hosts, is kept (a VIP's address:port is many
    connections' by design)."""
    while not stop.wait(1.0):
        try:
            table = emu.api("/nat/rc")["rc"]["table"]
        except (OSError, ValueError, KeyError):
            continue  # the controller is being restarted
        ports = Counter((e["proto"], e["outside"]) for e in table if e["kind"] == "pat")
        pool: dict[str, set[str]] = {}
        for e in table:
            if e["kind"] == "pool":
                pool.setdefault(e["outside"].split(":")[0], set()).add(
                    e["inside"].split(":")[0])
        seen.append((sum(ports.values()), [o for o, c in ports.items() if c > 1]
                     + [a for a, hosts in pool.items() if len(hosts) > 1]))


def first_ok_after(results: list[tuple[float, bool]], t: float) -> float | None:
    return next((x for x, ok in results if x > t and ok), None)


def test_chaos_world_with_invariants():
    with build("world") as emu:
        topo = emu.topo
        plan = topo.faults
        assert plan is not None and plan.random is not None
        if WINDOW:  # a longer run: as many faults of each kind per minute as the block's
            scale = max(1, round(WINDOW / plan.random.window))
            plan = dataclasses.replace(plan, random=dataclasses.replace(
                plan.random, window=WINDOW,
                kinds={k: (n * scale, c) for k, (n, c) in plan.random.kinds.items()}))
        schedule = plan.schedule(topo, SEED)
        kinds = Counter(f.kind for f in schedule)
        assert kinds["controller-kill"] >= 2 and kinds["link-flap"] >= 1
        assert kinds["partition"] >= 1 and kinds["service-kill"] >= 1
        # DHCP churn: spoofed clients through rc's relay (its per-port limits off: this is
        # load, not an attack), every ACK recorded
        emu.api("/relay/rc?defence=off", "POST")
        acks = emu.host_dir("c3") / "chaos-acks.jsonl"
        acks.unlink(missing_ok=True)
        last = max(f.at + (f.lasts or 0) for f in schedule)
        churn = subprocess.Popen(
            ["mnexec", "-a", str(emu.host("c3").pid), sys.executable, "-m", "infralab",
             "dhcp", "starve", "c3-eth0", "--count", str(CHURN_MACS), "--rate",
             f"{CHURN_MACS / max(10.0, last):.2f}", "--seconds", f"{last + 15:.0f}",
             "--seed", "21", "--record", str(acks)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stop = threading.Event()
        probes = [Probe("dns ldns", emu, dns_probe(emu, "c1", "10.1.0.53"), stop),
                  Probe("dns ldnss", emu, dns_probe(emu, "xs", "198.18.10.53"), stop),
                  Probe("dns ldnsb", emu, dns_probe(emu, "xb", "198.18.20.53"), stop),
                  Probe("http pat", emu, http_probe(emu, "c2", "198.51.100.131"), stop),
                  Probe("http vip", emu, http_probe(emu, "xs", "203.0.113.90"), stop),
                  Probe("http gslb", emu, http_probe(emu, "xb", gslb="198.18.20.53"), stop)]
        nat_seen: list = []
        sampler = threading.Thread(target=nat_sampler, args=(emu, stop, nat_seen), daemon=True)
        try:
            for p in [*probes, sampler]:
                p.start()
            wait_for(lambda: all(any(ok for _t, ok in p.results) for p in probes), 30,
                     "every probe answering before the first fault")
            t_begin = probes[0].now()
            emu.faults.run(schedule)  # returns once every fault is injected and healed
            timeline = emu.faults.timeline()
            heals = [r for r in timeline if r["event"] == "heal"]
            t_last = max(r["t"] for r in heals)
            wait_for(lambda: all(first_ok_after(p.results, t_last) for p in probes),
                     RECOVER_S, "every probe answering after the last fault")
            churn_out, _ = churn.communicate(timeout=last + 60)
        finally:
            stop.set()
            if churn.poll() is None:
                churn.kill()
                churn.communicate()
            for p in [*probes, sampler]:
                p.join(10)

        per_fault = faults(timeline)
        out_dir = os.environ.get("INFRALAB_CHAOS_OUT")
        if out_dir:  # (make chaos: the timeline and its picture are kept)
            os.makedirs(out_dir, exist_ok=True)
            (Path(out_dir) / "chaos-faults.jsonl").write_text(emu.faults.path.read_text())
            (Path(out_dir) / "chaos-faults.svg").write_text(
                svg(timeline, f"world: chaos run, seed {SEED if SEED is not None else plan.seed}"))
        print("\n" + summary(timeline))
        print(f"{'fault':<6}{'kind':<16}{'healed s':>9}{'back s':>8}  " + "  ".join(
            f"{p.name:>10}" for p in probes) + "   (probes failed: inject .. heal + 10 s)")
        back_by_kind: dict[str, list[float]] = {}
        for f in per_fault:
            end = (f["end"] if f["end"] is not None else f["start"]) + 10
            lost = [sum(1 for t, ok in p.results if f["start"] <= t <= end and not ok)
                    for p in probes]
            healed = f"{f['end'] - f['start']:.2f}" if f["end"] is not None else "never"
            # how long after the heal until every probe had answered again
            back = max((first_ok_after(p.results, f["end"]) or 1e9) - f["end"]
                       for p in probes) if f["end"] is not None else 1e9
            back_by_kind.setdefault(f["kind"], []).append(back)
            print(f"{f['id']:<6}{f['kind']:<16}{healed:>9}{back:>8.2f}  "
                  + "  ".join(f"{x:>10}" for x in lost))
        for kind, xs in sorted(back_by_kind.items()):
            print(f"{kind:<16} every probe answering again after the heal: median "
                  f"{statistics.median(xs):.2f} s, worst {max(xs):.2f} s")
        total = {p.name: (sum(1 for _t, ok in p.results if not ok), len(p.results))
                 for p in probes}
        print("probes failed/sent over the run: " + ", ".join(
            f"{k} {a}/{b}" for k, (a, b) in total.items()) + f"; from t={t_begin:.1f} s")

        # every fault injected was healed (kills: the supervisor restarted the process)
        assert len(per_fault) == len(schedule)
        assert [f["id"] for f in per_fault if f["end"] is None] == []
        assert not emu.faults.active
        # the resolvers and each HTTP path answered again after each fault
        for f in per_fault:
            for p in probes:
                back = first_ok_after(p.results, f["end"])
                assert back is not None and back - f["end"] <= RECOVER_S, \
                    f"{p.name} did not answer within {RECOVER_S:.0f} s of {f['id']} " \
                    f"{f['kind']} {f['target']} healing"
        # the GSLB withdrew the cut-off members during each partition, restored them after
        for f, fault in zip(per_fault, sorted(schedule, key=lambda x: x.at), strict=True):
            if fault.kind != "partition":
                continue
            members = CUT_OFF[tuple(fault.links[0])]  # type: ignore[index]
            said = [e[2] for e in f["effects"]]
            for m in members:
                assert f"GSLB withdrew {m}" in said, f"{m} not withdrawn in {f['id']}: {said}"
                assert f"GSLB restored {m}" in said, f"{m} not restored after {f['id']}: {said}"
        def all_up() -> bool:
            st = control_request(emu.service_dir("gslb.gslb") / "control", "status")
            return all(m["state"] == "up" for pool in st["pools"].values()
                       for m in pool.values())
        wait_for(all_up, 15, "every GSLB member up after the chaos")  # (its own view)
        # no NAT outside port held by two bindings, ever (and the sampler did sample)
        assert len(nat_seen) >= 20 and max(n for n, _d in nat_seen) > 0
        assert [d for _n, d in nat_seen if d] == []
        # no acknowledged DHCP lease lost or given twice
        got = [json.loads(x) for x in acks.read_text().splitlines()] if acks.exists() else []
        assert len(got) >= CHURN_MACS // 3, f"too little DHCP churn: {churn_out}"
        by_ip: dict[str, set[str]] = {}
        for a in got:
            by_ip.setdefault(a["ip"], set()).add(a["mac"])
        assert [ip for ip, macs in by_ip.items() if len(macs) > 1] == []
        table = {r["ip"]: r for r in control_request(emu.service_dir("dhcp1.dhcp") / "control",
                                                     "leases")}
        lost = [a for a in got if table.get(a["ip"], {}).get("mac") != a["mac"]
                or table[a["ip"]]["state"] != "bound"]
        assert lost == [], f"acknowledged leases the server no longer has: {lost[:5]}"
        run = emu.manifest
        assert run is not None
    # nothing left behind: this run's manifest, bridges, interfaces and processes are gone
    assert not run.leftovers()
    assert run.dir not in {m.dir for m in runtime.live_manifests() + runtime.stale_manifests()}
