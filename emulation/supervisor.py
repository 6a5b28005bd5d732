"""The run's processes on its hosts — services, DHCP clients, delay lines — started in the
host's namespaces, each the leader of its own process group and recorded in the manifest,
and supervised: one that exits while the run is up is started again (the controller too),
and given up after RESTARTS_PER_MINUTE restarts in a minute; supervisor.jsonl says so."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulation.errors import BuildError
from emulation.polling import wait_for, wait_listening

if TYPE_CHECKING:
    from emulation.build import Emulation

REPO = Path(__file__).resolve().parent.parent


class Supervisor:
    """Starts, watches and ends the run's processes; owns the restart bookkeeping."""

    RESTARTS_PER_MINUTE = 5

    def __init__(self, emu: Emulation) -> None:
        self.emu = emu
        self.services: dict[str, subprocess.Popen] = {}  # label -> its process now
        # how to start each one again, and which were stopped on purpose (stay down)
        self.spawners: dict[str, Callable[[], subprocess.Popen]] = {}
        self.held_down: set[str] = set()
        self.restarts: dict[str, list[float]] = {}
        self.lock = threading.Lock()  # no restart once teardown has begun, nor two at once
        self.stopped = False

    # ---- places ------------------------------------------------------------------------
    def service_dir(self, label: str) -> Path:
        """Where service `host.name` runs: its log, control socket and working files."""
        return self.emu.rundir / "services" / label

    def host_dir(self, name: str) -> Path:
        """The host's own files: resolv.conf, hosts, its DNS cache (created on first use)."""
        d = self.emu.rundir / "hosts" / name
        if not d.exists():
            d.mkdir(parents=True)
            topo = self.emu.topo
            h = topo.hosts[name]
            iface = topo.host_interface(name)
            (d / "hosts").write_text("127.0.0.1 localhost\n"
                                     + (f"{iface.ip} {name}\n" if iface else ""))
            (d / "resolv.conf").write_text(f"nameserver {h.dns}\n" if h.dns else "")
        return d

    # ---- starting ----------------------------------------------------------------------
    def popen_in(self, node: Any, argv: list[str], *, log: Any, label: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
        """A long-running process in `node`'s namespaces (service, delay line, client),
        the leader of its own process group so that it and its children end together;
        recorded in the manifest as `service:<label>`. On a server, the local process is
        its ssh session and the process itself is known there by a pid file (see
        emulation.cluster)."""
        built = self.emu.built
        if getattr(node, "isRemote", False):
            from emulation.cluster import remote_popen

            pidfile = str(self.emu.rundir / "pids" / f"{label}.pid")
            p = remote_popen(node, argv, pidfile, env=env, cwd=str(REPO), stdout=log,
                             stderr=subprocess.STDOUT)
            built.add_process(f"service:{label}", p.pid, group=True, server=node.server,
                              pidfile=pidfile)
            return p
        # `mnexec -a` only enters the host's namespaces and execs (its -d would fork
        # away from a group leader, and the PID we record would exit at once); the
        # new session makes the PID lead the service's process group.
        p = node.popen(argv, stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(REPO),
                       env=dict(os.environ, **(env or {})),
                       mncmd=["mnexec", "-a", str(node.pid)])
        built.add_process(f"service:{label}", p.pid, group=True)
        return p

    def add(self, label: str, spawn: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        """Start `label` by `spawn` now, and by the same again after a crash."""
        self.spawners[label] = spawn
        return self.launch(label)

    def launch(self, label: str) -> subprocess.Popen:
        p = self.services[label] = self.spawners[label]()  # (popen_in records it)
        return p

    def start_services(self) -> None:
        emu = self.emu
        waits = []
        for h in emu.topo.hosts.values():
            for svc in h.services:
                label = f"{h.name}.{svc.name}"
                p = self.add(label, partial(self._spawn_service, h, svc, label))
                waits.append((emu.net[h.name], svc, p, label))
        with emu.progress.step("services up", len(waits)) as step:
            for node, svc, p, label in waits:  # all start at once; then each must come up
                if svc.ready_port:
                    wait_listening(node, svc.ready_port, 30, p, f"service {label}")
                step.advance()
                emu.log(f"service {label} started (pid {p.pid})")
        self.start_dhcp_clients()

    def _spawn_service(self, h, svc, label: str) -> subprocess.Popen:
        emu = self.emu
        d = self.service_dir(label)
        d.mkdir(parents=True, exist_ok=True)
        iface = emu.topo.host_interface(h.name)
        py = shlex.quote(sys.executable)
        cmd = svc.run.format(python=py, infralab=f"{py} -m infralab",
                             run=shlex.quote(str(d)), dir=shlex.quote(emu.topo.base_dir),
                             host=h.name, ip=str(iface.ip) if iface else "")
        # An explicit /bin/sh: Mininet's shell=True reads $SHELL, unset under CI.
        env = {"INFRALAB_HOST_DIR": str(self.host_dir(h.name)), "INFRALAB_HOST": h.name,
               "PYTHONUNBUFFERED": "1"}
        return self.popen_in(emu.net[h.name], ["/bin/sh", "-c", cmd],
                             log=open(d / "log", "ab"), env=env, label=label)

    def _spawn_dhcp_client(self, h, label: str) -> subprocess.Popen:
        d = self.service_dir(label)
        d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "infralab", "dhcp", "client", f"{h.name}-eth0",
               "--resolv-conf", "/etc/resolv.conf", "--hostname", h.name, "--retry", "1",
               "--log", str(d / "client.jsonl")]
        return self.popen_in(self.emu.net[h.name], cmd, log=open(d / "log", "ab"),
                             label=label)

    def start_dhcp_clients(self) -> None:
        """Hosts without a static address run infralab's DHCP client (DHCP-CLIENT) once
        every service (the DHCP server among them) is up; `up` returns when all are bound."""
        emu = self.emu
        hosts = [h for h in emu.topo.hosts.values() if h.dhcp and h.dhcp_client]
        for h in hosts:
            label = f"{h.name}.dhcp-client"
            self.add(label, partial(self._spawn_dhcp_client, h, label))
        if hosts:
            with emu.progress.step("DHCP clients bound", len(hosts)) as step:
                def bound() -> bool:
                    done = sum(1 for h in hosts if emu.ip(h.name))
                    step.update(done)
                    return done == len(hosts)

                wait_for(bound, 30, "DHCP clients to get their leases")
            emu.log(f"{len(hosts)} DHCP client(s) bound: " + ", ".join(
                f"{h.name} {emu.ip(h.name)}" for h in hosts))

    # ---- stopping ----------------------------------------------------------------------
    def stop_service(self, label: str) -> int | None:
        """End one service (its whole process group) and keep it down; returns its exit
        status."""
        from emulation import runtime

        self.held_down.add(label)
        built = self.emu.built
        p = built.processes.get(f"service:{label}")
        if p is not None:
            built.end_remote([f"service:{label}"])
            runtime.end_process(p["pid"], p.get("start"), group=True)
        return self.services[label].wait(10)

    def start_service(self, label: str) -> subprocess.Popen:
        """Start a service stopped by stop_service again (watched again from now on)."""
        p = self.launch(label)
        self.held_down.discard(label)
        return p

    def halt(self) -> bool:
        """No more restarts from now on; False if that had happened already."""
        with self.lock:
            if self.stopped:
                return False
            self.stopped = True
            return True

    def end_all(self) -> None:
        """End every process this supervisor started (teardown), and reap each."""
        from emulation import runtime

        manifest = self.emu.manifest
        if manifest is None:
            return
        manifest.end_remote([f"service:{label}" for label in self.services])
        recorded = [manifest.processes.get(f"service:{label}") for label in self.services]
        runtime.end_processes([(p["pid"], p.get("start"), True) for p in recorded if p])
        for proc in list(self.services.values()):  # reap them: a zombie is not a leftover
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    # ---- watching ----------------------------------------------------------------------
    def watch(self) -> None:
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        """A service that exits while the emulation runs is started again and the restart
        written to supervisor.jsonl; one that keeps failing is given up."""
        log = self.emu.rundir / "supervisor.jsonl"
        while not self.stopped:
            time.sleep(0.5)
            self._watch_controller(log)
            for label, p in list(self.services.items()):
                if label not in self.spawners or label in self.held_down or \
                        p.poll() is None:
                    continue
                with self.lock:
                    if self.stopped:
                        return
                    rec = {"time": round(time.time(), 3), "service": label,
                           "exit_status": p.returncode, "old_pid": p.pid}
                    if self._may_restart(label):
                        new = self.launch(label)
                        rec.update(action="restarted", new_pid=new.pid,
                                   restarts_last_minute=len(self.restarts[label]))
                    else:
                        rec["action"] = "given up"
                    self.emu.log(f"supervisor: {label} exited ({p.returncode}): "
                                 f"{rec['action']}")
                    with open(log, "a") as f:
                        f.write(json.dumps(rec) + "\n")

    def _may_restart(self, label: str) -> bool:
        """Count a restart of `label` now, unless it had RESTARTS_PER_MINUTE in the last
        minute: then it is held down for good."""
        now = time.monotonic()
        recent = [t for t in self.restarts.get(label, []) if now - t < 60]
        if len(recent) >= self.RESTARTS_PER_MINUTE:
            self.held_down.add(label)
            return False
        self.restarts[label] = recent + [now]
        return True

    def _watch_controller(self, log: Path) -> None:
        """The controller is watched like a service (FAULT-HEAL): a crash is noticed
        within half a second and a new one started; the restart and how long it took go
        to supervisor.jsonl."""
        ctl = self.emu.ctl
        proc = ctl.proc
        if proc is None or proc.poll() is None or "controller" in self.held_down:
            return
        with self.lock:
            if self.stopped or ctl.proc is not proc:
                return  # torn down, or replaced meanwhile (restart_controller)
            t0 = time.monotonic()
            rec: dict[str, Any] = {"time": round(time.time(), 3), "service": "controller",
                                   "exit_status": proc.returncode, "old_pid": proc.pid}
            if not self._may_restart("controller"):
                rec["action"] = "given up"
            else:
                try:
                    ctl.replace()
                    assert ctl.proc is not None
                    rec.update(action="restarted", new_pid=ctl.proc.pid,
                               listening_after_s=round(time.monotonic() - t0, 2),
                               restarts_last_minute=len(self.restarts["controller"]))
                except BuildError as e:
                    rec.update(action="restart failed", error=str(e)[:300])
            self.emu.log(f"supervisor: the controller exited ({proc.returncode}): "
                         f"{rec['action']}")
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
