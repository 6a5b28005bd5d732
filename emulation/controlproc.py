"""The controller of a run as a process: started with the wiring plan, reached through its
status file and HTTP API, replaced after a crash (it replays the NAT journal), and made
reachable again quickly by every bridge (OVS's reconnect back-off)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulation import runtime
from emulation.errors import BuildError
from emulation.polling import wait_for
from emulation.servers import head_address

if TYPE_CHECKING:
    from emulation.build import Emulation

REPO = Path(__file__).resolve().parent.parent


def api_request(base: str, path: str, method: str = "GET") -> Any:
    """One request to a controller's API (no proxy: it is on this machine's loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST"
                                 else None)
    try:
        with opener.open(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise ValueError(json.loads(e.read()).get("error", str(e))) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControllerProcess:
    """The run's one controller process (controllers.main) and how to reach it."""

    def __init__(self, emu: Emulation, port: int) -> None:
        self.emu = emu
        self.port = port  # OpenFlow
        self.api_port: int | None = None  # HTTP/JSON, chosen at the first start
        self.ip = "127.0.0.1"  # where the switches reach it (a cluster: the head's address)
        self.proc: subprocess.Popen | None = None

    @property
    def status_path(self) -> Path:
        return self.emu.rundir / "controller-status.json"

    def start(self) -> None:
        emu = self.emu
        plan_path = emu.rundir / "plan.json"
        plan_path.write_text(emu.plan.to_json())
        logf = open(emu.rundir / "controller.log", "ab")  # (appended on a restart)
        self.api_port = self.api_port or free_port()
        self.ip = (head_address(list(emu.servers.values())) if emu.servers
                   else "127.0.0.1")
        cmd = [sys.executable, "-m", "controllers.main", "--plan", str(plan_path),
               "--port", str(self.port), "--listen", self.ip,
               "--status", str(self.status_path),
               "--api", f"127.0.0.1:{self.api_port}",
               "--nat-log", str(emu.rundir / "nat.jsonl"),
               "--nat-state", str(emu.rundir / "nat-state.jsonl"),
               "--settings", str(emu.rundir / "controller-settings.json")]
        ctl = self.proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=REPO)
        emu.built.add_process("controller", ctl.pid, group=True)

        def listening() -> bool:
            if ctl.poll() is not None:
                raise BuildError(f"controller exited with {ctl.returncode}\n"
                                 + self.log_tail())
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex((self.ip, self.port)) == 0

        wait_for(listening, 30, "the controller to listen")
        emu.log(f"controller up on {self.ip}:{self.port} (pid {ctl.pid})")

    def replace(self) -> None:
        """End what is left of the old controller's process group and start a new one,
        which replays the NAT state journal and takes the wiring plan (switches keep
        their flows meanwhile: fail-mode secure)."""
        assert self.proc is not None
        p = self.emu.built.processes.get("controller", {})
        runtime.end_process(self.proc.pid, p.get("start"), group=True)
        self.status_path.unlink(missing_ok=True)
        self.start()

    def end(self) -> None:
        """End the controller's process group (teardown)."""
        if self.proc is None:
            return
        p = self.emu.built.processes.get("controller", {})
        runtime.end_process(self.proc.pid, p.get("start"), group=True)
        self.proc.wait()

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def api(self, path: str, method: str = "GET") -> Any:
        return api_request(f"http://127.0.0.1:{self.api_port}", path, method)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            text = (self.emu.rundir / "controller.log").read_text(errors="replace")
        except OSError:
            return ""
        return "controller log (tail):\n" + text[-chars:]

    def short_backoff(self) -> None:
        """Every bridge reconnects within a second when the controller is back: two
        ovs-vsctl calls for all the routers (of each server), not two per router."""
        for names, _intfs, run in self.emu.links.places():
            if not names:
                continue
            got = run("ovs-vsctl --timeout=10 " + " ".join(
                f"-- get Bridge {n} controller" for n in names)).split()
            uuids = [u.strip("[]") for u in got if u.strip("[]")]
            if uuids:
                run("ovs-vsctl --timeout=10 " + " ".join(
                    f"-- set Controller {u} max_backoff=1000" for u in uuids))

    def wait_routing(self, timeout: float) -> None:
        """Until every router is connected and has resolved its next hops."""
        emu = self.emu
        names = [r.name for r in emu.plan.routers]
        step = emu.progress.step("routers ready", len(names))
        ctl = self.proc
        assert ctl is not None

        def ready() -> bool:
            if ctl.poll() is not None:
                raise BuildError(f"controller exited with {ctl.returncode}\n"
                                 + self.log_tail())
            st = self.status().get("routers", {})
            done = sum(1 for n in names if st.get(n, {}).get("ready")
                       and not st[n].get("unresolved_next_hops"))
            step.update(done)
            return done == len(names)

        try:
            wait_for(ready, timeout, "routers to connect and resolve next hops", 0.1)
            step.finish()
        except TimeoutError as e:
            st = self.status().get("routers", {})
            detail = "; ".join(
                f"{n}: connected={s.get('connected')} ready={s.get('ready')} "
                f"unresolved={s.get('unresolved_next_hops')}"
                for n, s in ((n, st.get(n, {})) for n in names))
            raise BuildError(f"{e}: {detail}\n{self.log_tail()}") from None
        emu.log("routing ready")
