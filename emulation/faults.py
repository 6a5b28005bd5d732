"""Faults on purpose, in a running emulation: inject one, heal it when its time
is up, run a whole schedule (topologies/faults.py), and write every step - and the effects
seen meanwhile - to the run's timeline, `faults.jsonl`.

Each fault touches only what this run created: its links (by the controller's routers'
interfaces, or Mininet's), its services' and its controller's processes (by the PIDs it
started), the processes inside its hosts' namespaces, its NAT's pool (through the
controller's API) and its DHCP server's pool (through the server's control socket).
`heal_all()` undoes whatever is still in force; the emulation calls it first thing at
teardown, so an interrupted run leaves no link down and no process stopped.

Timeline records (one JSON object a line; `t`: seconds since the engine started):
    {"t": 3.02, "event": "inject", "id": "f1", "kind": "partition", "target": "...", ...}
    {"t": 5.10, "event": "effect", "id": "f1", "after_s": 2.08, "what": "GSLB withdrew web1a"}
    {"t": 9.02, "event": "heal", "id": "f1", "after_s": 6.0, "how": "links up"}
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulation.runtime import (
    alive,
    netns_of,
    orphaned_group_members,
    proc_start_time,
    processes_in,
)
from services.common.control import control_request
from topologies.faults import Fault, parse_fault

OBSERVE_S = 0.25  # how often effects are looked for
EFFECT_WINDOW_S = 30.0  # an effect seen this long after a heal is still put down to it


@dataclass
class Active:
    """A fault in force: how to undo it, and when it began."""

    id: str
    fault: Fault
    t0: float  # monotonic
    undo: Callable[[], str] | None  # returns how it was healed; None: a supervisor heals it
    watch: Callable[[], str | None] | None = None  # for kills: "how" once healed, else None
    timer: threading.Timer | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    healed_at: float | None = None
    note: str = ""  # what injecting it found (e.g. how many pool addresses it held)


class FaultEngine:
    """Faults for one Emulation (`emu.faults`). Thread-safe: the prompt, a schedule and
    the timers may inject and heal at once."""

    def __init__(self, emu: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.emu = emu
        self.clock = clock
        self.path: Path = emu.rundir / "faults.jsonl"
        self.t_start = clock()
        self.active: dict[str, Active] = {}
        self.done: list[Active] = []
        self._n = 0
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._observer: threading.Thread | None = None
        self._seen: dict[str, Any] = {}
        self._opened: dict[str, Active] = {}  # subject -> the fault its state began under
        self._schedule: threading.Thread | None = None
        self.keep_to: Path | None = None  # the timeline is copied here at close (the run
        # directory goes with the run)

    # ---- the timeline --------------------------------------------------------------------
    def _write(self, event: str, act: Active, **more: Any) -> dict:
        now = self.clock()
        rec = {"t": round(now - self.t_start, 3), "wall": round(time.time(), 3),
               "event": event, "id": act.id, "kind": act.fault.kind,
               "target": act.fault.target(), **more}
        with self._lock, open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.emu.log(f"fault {act.id} {event}: {act.fault.describe()}"
                     + (f" - {more['what']}" if "what" in more else "")
                     + (f" ({more['how']})" if "how" in more else ""))
        return rec

    def timeline(self) -> list[dict]:
        try:
            return [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
        except OSError:
            return []

    # ---- inject and heal -----------------------------------------------------------------
    def inject(self, fault: Fault | dict) -> str:
        """Put `fault` in force now (a dict is checked as the topology file's entries
        are); returns its id. A fault with a duration heals itself when it is up."""
        if isinstance(fault, dict):
            fault = parse_fault(fault, "fault", self.emu.topo, at_required=False)
        if self._closed.is_set():
            raise RuntimeError("the emulation is being torn down: no more faults")
        if self.emu.servers and fault.kind not in ("link-down", "link-flap", "partition",
                                                   "controller-kill", "nat-pool-fill"):
            raise RuntimeError(f"{fault.kind}: not in cluster runs yet")
        with self._lock:
            self._n += 1
            act = Active(f"f{self._n}", fault, self.clock(), None)
            act.undo, act.watch = self._apply(act)
            self.active[act.id] = act
            self._write("inject", act, **{k: v for k, v in fault.to_dict().items()
                                          if k not in ("kind", "at")},
                        **({"what": act.note} if act.note else {}))
        if fault.lasts and fault.kind != "link-flap":
            act.timer = threading.Timer(fault.lasts, self.heal, (act.id,))
            act.timer.daemon = True
            act.timer.start()
        self._observe_in_background()
        return act.id

    def heal(self, fid: str) -> bool:
        """End fault `fid` now (before its time, or one without a duration); False if it
        is not in force."""
        with self._lock:
            act = self.active.pop(fid, None)
            if act is None:
                return False
            if act.timer is not None:
                act.timer.cancel()
            act.stop.set()
            try:
                how = act.undo() if act.undo else "left to the supervisor"
            except Exception as e:  # noqa: BLE001 - a heal that failed is put down, not lost
                how = f"heal failed: {e}"
            self._healed(act, how)
            return True

    def _healed(self, act: Active, how: str) -> None:
        act.healed_at = self.clock()
        self.done.append(act)
        self._write("heal", act, after_s=round(act.healed_at - act.t0, 2), how=how)

    def heal_all(self) -> list[str]:
        """Heal every fault still in force (teardown, Ctrl-C): ids healed."""
        ids = list(self.active)
        for fid in ids:
            self.heal(fid)
        return ids

    def close(self) -> None:
        """No more faults: stop the schedule, heal what is in force (the emulation's
        teardown calls this before it ends anything)."""
        self._closed.set()
        self.heal_all()
        for t in (self._schedule, self._observer):
            if t is not None and t is not threading.current_thread():
                t.join(5)
        if self.keep_to is not None and self.path.exists():
            self.keep_to.write_text(self.path.read_text())
            self.emu.log(f"fault timeline kept in {self.keep_to}")

    # ---- schedules -----------------------------------------------------------------------
    def run(self, faults: list[Fault], wait: bool = True) -> threading.Thread:
        """Inject each fault at its `at` (seconds from now); with `wait`, return once all
        are injected and healed (kills: restarted by the supervisor)."""
        start = self.clock()

        def go() -> None:
            for f in sorted(faults, key=lambda x: x.at):
                if self._closed.wait(max(0.0, start + f.at - self.clock())):
                    return
                try:
                    self.inject(f)
                except Exception as e:  # noqa: BLE001 - one fault that cannot be made
                    self.emu.log(f"fault {f.describe()}: not injected: {e}")
            while self.active and not self._closed.wait(0.1):
                pass

        t = threading.Thread(target=go, daemon=True, name="faults")
        self._schedule = t
        t.start()
        if wait:
            t.join()
        return t

    # ---- what each kind does -------------------------------------------------------------
    def _apply(self, act: Active) -> tuple[Callable[[], str] | None,
                                           Callable[[], str | None] | None]:
        """Put the fault in force; (how to undo it, or how to see a supervisor healed it)."""
        f, emu = act.fault, self.emu
        if f.kind in ("link-down", "partition"):
            links = [f.link] if f.link else list(f.links)

            def links_up() -> str:
                for a, b in links:
                    emu.link(a, b, True)
                return "link(s) up"
            for a, b in links:
                emu.link(a, b, False)
            return links_up, None
        if f.kind == "link-flap":
            return self._flap(act), None
        if f.kind in ("loss-burst", "delay-spike"):
            return self._shape(f), None
        if f.kind == "controller-kill":
            old = emu.controller
            os.killpg(old.pid, signal.SIGKILL)
            return None, lambda: self._controller_back(old)
        label = f.service or ""
        if f.kind == "service-kill":
            old = emu.services[label]
            os.killpg(old.pid, signal.SIGKILL)
            return None, lambda: self._service_back(label, old)
        if f.kind == "service-stop":
            emu.stop_service(label)

            def start() -> str:
                emu.start_service(label)
                return "started again"
            return start, None
        if f.kind in ("service-pause", "host-pause"):
            procs = (host_processes(emu.net[f.host].pid) if f.kind == "host-pause" else
                     group_processes(emu.services[label].pid))
            for pid, _st in procs:
                _signal(pid, signal.SIGSTOP)

            def resume() -> str:
                for pid, st in procs:
                    if alive(pid, st):
                        _signal(pid, signal.SIGCONT)
                return f"{len(procs)} process(es) continued"
            return resume, None
        if f.kind == "host-down":  # a crashed machine: unplugged, its services gone
            host = f.host or ""
            router = next(iter(emu.topo.subnets()[emu.topo.hosts[host].subnet].routers))
            labels = [x for x in emu.services if x.split(".", 1)[0] == host]
            for x in labels:
                emu.stop_service(x)
            emu.link(host, router, False)

            def boot() -> str:
                emu.link(host, router, True)
                for x in labels:
                    emu.start_service(x)
                return f"link up, {len(labels)} service(s) started again"
            return boot, None
        if f.kind == "nat-pool-fill":
            st = emu.api(f"/nat/{f.router}/{f.interface}/fill", "POST")
            act.note = f"{st.get('held', 0)} pool address(es) held"
            return lambda: _unfill_nat(emu, f), None
        if f.kind == "dhcp-pool-fill":
            ctl = emu.service_dir(label) / "control"
            got = control_request(ctl, f"fill {f.duration:g}")
            act.note = f"{got.get('held', 0)} free address(es) held"
            return lambda: f"{control_request(ctl, 'unfill').get('freed', 0)} freed", None
        raise ValueError(f"unknown fault kind {f.kind!r}")

    def _flap(self, act: Active) -> Callable[[], str]:
        f, emu = act.fault, self.emu
        assert f.link is not None
        a, b = f.link
        done = threading.Event()

        def flap() -> None:
            try:
                for _ in range(f.count):
                    emu.link(a, b, False)
                    if act.stop.wait(f.period / 2):
                        return
                    emu.link(a, b, True)
                    if act.stop.wait(f.period / 2):
                        return
            finally:
                done.set()
            self.heal(act.id)

        def stop() -> str:
            act.stop.set()
            if threading.current_thread() is not thread:
                done.wait(10)
            emu.link(a, b, True)
            return "link up"

        thread = threading.Thread(target=flap, daemon=True, name=f"flap-{act.id}")
        thread.start()
        return stop

    def _shape(self, f: Fault) -> Callable[[], str]:
        """A loss burst or delay spike: the link's live settings changed, and put back."""
        from emulation import linkemu

        assert f.link is not None
        a, b = f.link
        key = "loss" if f.kind == "loss-burst" else "delay"
        records = linkemu.load(self.emu.rundir)
        before = records[linkemu.find(records, a, b)[0]]["settings"].get(key)
        self.emu.set_link(a, b, {key: f.loss if key == "loss" else f.delay})

        def back() -> str:
            self.emu.set_link(a, b, {key: before})
            return f"{key} back to {before if before is not None else 'none'}"
        return back

    def _controller_back(self, old: Any) -> str | None:
        emu = self.emu
        new = emu.controller
        if new is old or new is None or new.poll() is not None:
            return None
        try:
            st = emu.controller_status().get("routers", {})
        except (OSError, ValueError):
            return None
        if st and all(r.get("ready") for r in st.values()):
            return "restarted by the supervisor, every router ready"
        return None

    def _service_back(self, label: str, old: Any) -> str | None:
        p = self.emu.services.get(label)
        if p is None or p is old or p.poll() is not None:
            return None
        return "restarted by the supervisor"

    # ---- effects -------------------------------------------------------------------------
    def _observe_in_background(self) -> None:
        with self._lock:
            if self._observer is None or not self._observer.is_alive():
                self._seen = self._look()
                self._observer = threading.Thread(target=self._observe, daemon=True,
                                                  name="fault-effects")
                self._observer.start()

    def _observe(self) -> None:
        """While faults are in force (and a while after), put what changed down to the
        latest of them: a service restarted, a GSLB member withdrawn or restored, links
        the controller sees down; and mark kills healed once their process is back."""
        while not self._closed.wait(OBSERVE_S):
            now = self.clock()
            with self._lock:
                for act in list(self.active.values()):
                    if act.watch is not None:
                        how = act.watch()
                        if how is not None:
                            del self.active[act.id]
                            self._healed(act, how)
                recent = [a for a in self.done if a.healed_at is not None
                          and now - a.healed_at < EFFECT_WINDOW_S]
                if not self.active and not recent:
                    self._observer = None
                    return
            seen = self._look()
            for e in effects(self._seen, seen):
                cause = self._cause(e)
                if cause is not None:
                    self._write("effect", cause, after_s=round(self.clock() - cause.t0, 2),
                                what=e.what)
            # (what could not be read now keeps its last value: no change is made up)
            self._seen = {k: self._seen.get(k) if v is None else v for k, v in seen.items()}

    def _cause(self, e: Effect) -> Active | None:
        """Which fault an effect is put down to: the one that names its subject (a killed
        service), else the one whose effect it ends (a member restored after it was
        withdrawn), else the latest in force (or healed last)."""
        with self._lock:
            every = list(self.active.values()) + self.done
            named = [a for a in every if e.subject in subjects(a.fault)]
            if named:
                return max(named, key=lambda a: a.t0)
            if not e.begins and e.subject in self._opened:
                return self._opened.pop(e.subject)
            cands = list(self.active.values()) or self.done
            cause = max(cands, key=lambda a: a.t0) if cands else None
            if cause is not None and e.begins:
                self._opened[e.subject] = cause
            return cause

    def _look(self) -> dict[str, Any]:
        """What the effects are read from: the GSLBs' member states, the supervisor's
        log length, the links the controller has down (None: could not be read now)."""
        out: dict[str, Any] = {}
        for label in self.emu.services:
            if label.endswith(".gslb"):
                try:
                    st = control_request(self.emu.service_dir(label) / "control", "status",
                                         timeout=0.5)
                    out[f"gslb:{label}"] = {m: s["state"] for pool in st["pools"].values()
                                            for m, s in pool.items()
                                            if s["state"] == "down"}
                except (OSError, ValueError, KeyError, TypeError):
                    out[f"gslb:{label}"] = None
        log = self.emu.rundir / "supervisor.jsonl"
        try:
            out["supervisor"] = log.read_text().splitlines()
        except OSError:
            out["supervisor"] = []
        try:
            out["down"] = sorted(f"{r}:{p}" for r, p in self.emu.api("/routing")["down_links"])
        except (OSError, ValueError, KeyError, TypeError):
            out["down"] = None
        return out


@dataclass(frozen=True)
class Effect:
    """A change seen: its text, what it is about ("gslb:web1a", "service:ns1.dns",
    "controller", "link:rs:2"), and whether it begins (True) or ends (False) a state."""

    what: str
    subject: str
    begins: bool = True


def effects(before: dict[str, Any], after: dict[str, Any]) -> list[Effect]:
    """What changed between two looks (pure: unit-tested)."""
    out = []
    for key, now in after.items():
        was = before.get(key)
        if now is None or was is None:
            continue
        if key.startswith("gslb:"):
            out += [Effect(f"GSLB withdrew {m}", f"gslb:{m}") for m in sorted(set(now) - set(was))]
            out += [Effect(f"GSLB restored {m}", f"gslb:{m}", False)
                    for m in sorted(set(was) - set(now))]
        elif key == "supervisor":
            for line in now[len(was):]:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                svc = str(r.get("service", "?"))
                out.append(Effect(f"supervisor {r.get('action', '?')} {svc}",
                                  "controller" if svc == "controller" else f"service:{svc}",
                                  False))
        elif key == "down":
            out += [Effect(f"controller rerouted: {x} down", f"link:{x}")
                    for x in sorted(set(now) - set(was))]
            out += [Effect(f"controller rerouted: {x} up", f"link:{x}", False)
                    for x in sorted(set(was) - set(now))]
    return out


def subjects(f: Fault) -> set[str]:
    """What a fault names itself (its effects on these are its own, whatever came since)."""
    if f.kind == "controller-kill":
        return {"controller"}
    return {f"service:{f.service}"} if f.service else set()


def _unfill_nat(emu: Any, f: Fault) -> str:
    try:
        st = emu.api(f"/nat/{f.router}/{f.interface}/unfill", "POST")
    except OSError as e:  # a controller restarted meanwhile holds nothing
        return f"controller: {e}"
    return f"{st.get('freed', 0)} pool address(es) freed"


def host_processes(shell_pid: int) -> list[tuple[int, int | None]]:
    """(pid, start time) of every process in the network namespace of the host whose
    shell is `shell_pid`: the namespace is the run's own, so is everything in it."""
    ns = netns_of(shell_pid)
    return processes_in({ns}) if ns else []


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_processes(pgid: int) -> list[tuple[int, int | None]]:
    """(pid, start time) of the processes of the group `pgid` leads (a service's)."""
    return [(pid, proc_start_time(pid)) for pid in orphaned_group_members(
        pgid, proc_start_time(pgid))]
