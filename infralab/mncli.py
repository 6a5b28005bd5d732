"""The Mininet CLI with infralab's additions: a script mode that stops at the first failing
command (unless the line begins with '-') and reports its exit status; commands showing the
controller's and the services' view (`routers`, `routes`, `nat`, `leases`, `dnscache`,
`trace`), `link A B down` and `router R down` that reroute, faults on purpose (`fault
...`) and a lab's progress (`lab check NAME`)."""

from __future__ import annotations

import json
import os
import time

from mininet.cli import CLI

from emulation.build import Emulation


def fault_words(words: list[str]) -> dict:
    """`link-flap link=ri,rs period=2` -> the topology file's form of one fault."""
    out: dict = {"kind": words[0]}
    for w in words[1:]:
        key, eq, value = w.partition("=")
        if not eq:
            raise ValueError(f"expected key=value, got {w!r}")
        if key == "link":
            out[key] = value.split(",")
        elif key == "links":
            out[key] = [p.split(",") for p in value.split(";")]
        elif key == "count":
            out[key] = int(value)
        elif key in ("duration", "loss", "period", "at"):
            out[key] = float(value.removesuffix("s").removesuffix("%"))
        else:
            out[key] = value
    return out


class InfralabCLI(CLI):
    prompt = "infralab> "

    def __init__(self, emu: Emulation, script: str | None = None) -> None:
        self.emu = emu
        self.status = 0
        self.script_mode = script is not None
        if self.script_mode:
            super().__init__(emu.net, stdin=open(os.devnull), script=script)
        else:
            super().__init__(emu.net)

    def onecmd(self, line: str) -> bool:
        if self.script_mode and self.status:
            return True  # a command failed: skip the rest of the script
        may_fail = False
        if self.script_mode and line.lstrip().startswith("-"):
            # "-cmd": its failure does not stop the script (like make), e.g. `stun`, whose
            # exit status is the NAT type it found
            line, may_fail = line.lstrip()[1:], True
        if self.script_mode and line.lstrip().startswith("#"):
            return False  # a comment
        if self.script_mode and line.strip():
            print(f"infralab> {line.rstrip()}", flush=True)
        stop = super().onecmd(line)
        if may_fail and self.status:
            print(f"*** (status {self.status} ignored: the line began with '-')")
            self.status = 0
        return stop

    def _fail(self, text: str, status: int = 1) -> None:
        """Say what went wrong; in a script, the command fails with `status` (2: usage)."""
        print(text)
        if self.script_mode:
            self.status = status

    def default(self, line: str) -> None:
        if not self.script_mode:
            return super().default(line)
        first, args, line = self.parseline(line)
        if first not in self.mn or not args:
            print(f"*** unknown command: {line}")
            self.status = 127
            return
        node = self.mn[first]
        words = [self.mn[a].defaultIntf().updateIP() or a if a in self.mn else a
                 for a in args.split(" ")]
        print(node.cmd(" ".join(words)), end="", flush=True)
        rc = node.cmd("echo $?").strip()
        self.status = int(rc) if rc.isdigit() else 1
        if self.status:
            print(f"*** '{line.strip()}' failed with status {self.status}")

    # ---- Mininet's habits, on the topology's own hosts and routers -----------------------
    def _hosts(self) -> list[str]:
        return list(self.emu.topo.hosts)

    def _routers(self) -> list[str]:
        return list(self.emu.topo.routers)

    def _pingall(self, pairs: list[tuple[str, str]] | None, full: bool) -> None:
        """Ping the pairs (all when None) by the addresses topologies.reach picks; loss is
        what should have answered and did not; pairs a NAT hides are named apart."""
        from emulation import reachability

        try:
            todo = reachability.plan(self.emu)
        except (OSError, ValueError) as e:
            self._fail(f"*** pingall: {e}")
            return
        if pairs is not None:
            todo = [p for p in todo if (p.src, p.dst) in pairs]
        print("*** Ping: testing reachability between the topology's hosts")
        res = reachability.run(self.emu, todo)
        for src in dict.fromkeys(p.src for p in todo):
            marks = []
            for p in (q for q in todo if q.src == src):
                if p.hidden:
                    marks.append("-")
                elif full and res.reached.get((p.src, p.dst)):
                    via = f" via {p.address}" if p.mapped else ""
                    marks.append(f"{p.dst}{via} ({res.rtt_ms.get((p.src, p.dst), 0):.1f} ms)")
                else:
                    marks.append(p.dst if res.reached.get((p.src, p.dst)) else "X")
            print(f"{src} -> " + ("\n    ".join(marks) if full else " ".join(marks)))
        print(f"*** Results: {res.summary()}")
        if res.hidden:
            print("*** hidden by NAT as configured (no unsolicited inbound; not loss):")
            by_why: dict[str, dict[str, list[str]]] = {}
            for p in res.hidden:
                by_why.setdefault(p.why, {}).setdefault(p.dst, []).append(p.src)
            for why, dsts in by_why.items():
                print(f"    {why}:")
                for dst, srcs in dsts.items():
                    print(f"        {dst} from {' '.join(srcs)}")
        if res.lost:
            print("*** lost: " + " ".join(
                f"{p.src}->{p.dst}" + (f" ({p.why})" if p.why else "") for p in res.lost))
            self._fail(f"*** pingall: {res.loss_percent:.0f}% loss "
                       f"({len(res.lost)} of {len(res.tried)} pairs)")

    def do_pingall(self, _line: str) -> None:
        """Ping between all the topology's hosts (leased addresses too; a host behind a
        NAT by its static mapping, or reported as hidden by the NAT, not as loss)."""
        self._pingall(None, full=False)

    def do_pingallfull(self, _line: str) -> None:
        """pingall, with each pair's address and round-trip time."""
        self._pingall(None, full=True)

    def _two_hosts(self, line: str, default: tuple[int, int]) -> tuple[str, str] | None:
        words, hosts = line.split(), self._hosts()
        if not words and len(hosts) >= 2:
            return hosts[default[0]], hosts[default[1]]
        if len(words) == 2 and all(w in self.emu.topo.hosts for w in words):
            return words[0], words[1]
        self._fail(f"*** usage: two hosts of the topology ({' '.join(hosts[:6])} ...)", 2)
        return None

    def do_pingpair(self, line: str) -> None:
        """pingpair [H1 H2]: ping both ways between two hosts (default: the first two)."""
        two = self._two_hosts(line, (0, 1))
        if two:
            self._pingall([two, two[::-1]], full=False)

    def do_pingpairfull(self, line: str) -> None:
        """pingpairfull [H1 H2]: pingpair with addresses and round-trip times."""
        two = self._two_hosts(line, (0, 1))
        if two:
            self._pingall([two, two[::-1]], full=True)

    def do_iperf(self, line: str) -> None:
        """iperf [CLIENT SERVER] [SECONDS]: TCP goodput from CLIENT to SERVER (iperf3;
        default: the first and the last host), to the address pingall would use."""
        from emulation import reachability
        from emulation.build import wait_listening

        words = line.split()
        secs = words.pop() if words and words[-1].isdigit() else "5"
        two = self._two_hosts(" ".join(words), (0, -1))
        if not two:
            return
        client, server = two
        probe = next((p for p in reachability.plan(self.emu)
                      if (p.src, p.dst) == (client, server)), None)
        if probe is None or probe.address is None:
            why = probe.why if probe else "no such pair"
            self._fail(f"*** iperf: {client} cannot open a connection to {server} ({why}); "
                       "swap them: a NAT lets the inside connect out")
            return
        print(f"*** Iperf: testing TCP bandwidth between {client} and {server} "
              f"({probe.address})")
        srv = self.mn[server].popen(["iperf3", "-s", "-1", "-p", "5201"])
        try:
            wait_listening(self.mn[server], 5201, 10, srv, "iperf3 -s")
            out = self.mn[client].cmd(f"iperf3 -c {probe.address} -p 5201 -t {secs} -J")
            end = json.loads(out[out.index("{"):])["end"]
            rates = [end[k]["bits_per_second"] / 1e6 for k in ("sum_sent", "sum_received")]
            print(f"*** Results: ['{rates[0]:.0f} Mbits/sec', '{rates[1]:.0f} Mbits/sec']")
        except (ValueError, KeyError, TimeoutError, RuntimeError) as e:
            self._fail(f"*** iperf: {e}")
        finally:
            srv.kill()
            srv.wait()

    def do_nodes(self, _line: str) -> None:
        """The topology's hosts and routers."""
        print("available nodes are: \n" + " ".join(self._hosts() + self._routers()))

    def _links(self) -> list[tuple[str, str, str, str, str]]:
        """(a, a's interface, b, b's interface, what the link does) per topology link; a
        delay node in the middle is the emulator's machinery, shown as the link's delay."""
        from topologies.plan import LinkPlan

        out = []
        for lk in self.emu.plan.links:
            assert isinstance(lk, LinkPlan)
            note = ", ".join(x for x in (f"delay {lk.delay}" if lk.delay else "",
                                         f"loss {lk.loss:g}%" if lk.loss else "",
                                         f"bw {lk.bw:g} Mbit/s" if lk.bw else "") if x)
            out.append((lk.a, lk.a_intf, lk.b, lk.b_intf, note))
        return out

    def do_net(self, _line: str) -> None:
        """Each host's and router's links: interface:peer-interface."""
        ends: dict[str, list[str]] = {n: [] for n in self._hosts() + self._routers()}
        for a, ai, b, bi, _note in self._links():
            ends.setdefault(a, []).append(f"{ai}:{bi}")
            ends.setdefault(b, []).append(f"{bi}:{ai}")
        for name, items in ends.items():
            print(f"{name} " + " ".join(items))

    def do_links(self, _line: str) -> None:
        """The topology's links, with their state (the router-side interface's) and what
        each does (delay, loss, bandwidth)."""
        for a, ai, b, bi, note in self._links():
            state = []
            for end, intf in ((a, ai), (b, bi)):
                if end in self.emu.topo.routers:
                    try:
                        state.append(open(f"/sys/class/net/{intf}/operstate").read().strip())
                    except OSError:
                        state.append("?")
            print(f"{ai}<->{bi} ({a} {b}) ({' '.join(s.upper() for s in state)})"
                  + (f" [{note}]" if note else ""))

    def do_dump(self, _line: str) -> None:
        """Each host (address, pid) and router (interfaces, dpid)."""
        for name in self._hosts():
            node = self.mn[name]
            print(f"<Host {name}: {node.defaultIntf()}:{self.emu.ip(name) or 'no address'} "
                  f"pid={node.pid}>")
        for name, r in self.emu.topo.routers.items():
            plan = next(p for p in self.emu.plan.routers if p.name == name)
            print(f"<Router {name}: " + ",".join(f"{s}:{i}" for s, i in r.interfaces.items())
                  + f" dpid={plan.dpid:016x}>")

    def do_nat(self, line: str) -> None:
        """nat [ROUTER]: the live NAT tables (inside/outside/remote, age, counters).
        nat set ROUTER IFACE MAPPING FILTERING: change a NAT's RFC 4787 behaviour."""
        from infralab.natcli import render_table

        words = line.split()
        if words[:1] == ["set"]:
            if len(words) != 5:
                self._fail("*** usage: nat set ROUTER IFACE MAPPING FILTERING (endpoint-"
                           "independent | address-dependent | address-and-port-dependent)")
                return
            _, router, iface, mapping, filtering = words
            try:
                st = self.emu.api(f"/nat/{router}/{iface}?mapping={mapping}"
                                  f"&filtering={filtering}", "POST")
                i = st["interfaces"][iface]
                print(f"{router}/{iface}: mapping {i['mapping']}, filtering {i['filtering']}")
            except (OSError, ValueError) as e:
                self._fail(f"*** nat set: {e}")
            return
        try:
            print(render_table(self.emu.api(f"/nat/{line.strip()}" if line.strip()
                                            else "/nat")))
        except (OSError, ValueError) as e:
            self._fail(f"*** nat: {e}")

    def _ask_services(self, kind: str, host: str | None, command: str,
                      what: str) -> list[tuple[str, list]]:
        """(host, answer) of `command` sent to every service named `kind` (on `host`, if
        given); problems are printed (and fail a script)."""
        from services.common.control import control_request

        out, found = [], False
        for label in self.emu.services:
            h, _, name = label.partition(".")
            if name != kind or (host and h != host):
                continue
            found = True
            try:
                out.append((h, control_request(self.emu.service_dir(label) / "control",
                                               command)))
            except OSError as e:
                self._fail(f"*** {what}: {label}: {e}")
        if not found:
            self._fail(f"*** {what}: no service named '{kind}' in this topology")
        return out

    def do_leases(self, line: str) -> None:
        """leases [HOST]: the lease table of each DHCP server of the topology (DHCP-LEASE)."""
        for host, rows in self._ask_services("dhcp", line.strip(), "leases", "leases"):
            print(f"{host}: {len(rows)} lease(s)")
            for r in rows:
                print(f"    {r['ip']:<16}{r['mac']:<19}{r['state']:<9}"
                      f"{str(r['remaining']):>9} s  {r.get('hostname', '')}")

    def do_dnscache(self, line: str) -> None:
        """dnscache [HOST] [NAME]: what each recursive resolver (a service named 'resolver')
        has cached, with the remaining TTLs; NAME filters by name."""
        words = line.split()
        want_host = words[0] if words and words[0] in self.mn else None
        name = next((w for w in words if w != want_host), "").rstrip(".").lower()
        for host, rows in self._ask_services("resolver", want_host, "cache", "dnscache"):
            rows = [r for r in rows if not name or r["name"].rstrip(".").lower() == name]
            print(f"{host}: {len(rows)} cached RRset(s)")
            for r in rows:
                data = "NXDOMAIN/NODATA" if r["negative"] else ", ".join(r["data"][:4])
                print(f"    {r['name']:<36}{r['type']:<7}{r['ttl']:>7}s  {data}")

    def do_trace(self, line: str) -> None:
        """trace NAME [HOST]: the DNS resolution ladder from the root (default host: the
        first host with a resolver configured)."""
        words = line.split()
        if not words:
            print("*** usage: trace NAME [HOST]")
            return
        host = words[1] if len(words) > 1 else next(iter(self.mn.hosts)).name
        print(self.mn[host].cmd(f"infralab dns trace {words[0]}"), end="")

    def do_lab(self, line: str) -> None:
        """lab check NAME: which steps of a course lab (labs/NAME.md) this network shows
        done (TB-LABS); lab list: the labs. A script fails while a step is not done.
        lab wait NAME STEP [SECONDS]: wait (at most SECONDS, default 30) until the checker
        sees step STEP done - what a handout says for "wait until ..."."""
        from infralab.labs import LABS, Live, check

        words = line.split()
        if words[:1] == ["list"] or not words:
            for each in LABS.values():
                print(f"  {each.name:<6} {each.title}")
            return
        lab = LABS.get(words[1]) if len(words) >= 2 else None
        if lab is not None and words[0] == "wait" and len(words) in (3, 4) and \
                words[2].isdigit() and 1 <= int(words[2]) <= len(lab.steps):
            step, limit = int(words[2]), float(words[3]) if len(words) == 4 else 30.0
            t0 = time.monotonic()
            while True:
                _i, title, ok, why = lab.run(Live(self.emu.rundir))[step - 1]
                if ok or time.monotonic() - t0 > limit:
                    break
                time.sleep(0.25)
            print(f"step {step} ({title}): {'done' if ok else 'not done'} after "
                  f"{time.monotonic() - t0:.1f} s - {why}")
            if not ok:
                self._fail(f"*** lab wait: step {step} not done within {limit:g} s")
            return
        if lab is None or words[0] != "check" or len(words) != 2:
            self._fail(f"*** usage: lab check NAME | lab wait NAME STEP [SECONDS] | lab "
                       f"list (NAME: one of {', '.join(LABS)})", 2)
            return
        text, done = check(lab, self.emu.rundir)
        print(text)
        if self.script_mode and not done:
            self.status = 1

    def do_link(self, line: str) -> None:
        """link A B up|down: between two routers, both router-side interfaces (also across
        a delay node), and the controller reroutes (ROUTE-FAILOVER); a host and its
        router: the router's end (the host keeps its routes); else Mininet's.
        link A B delay 80ms loss 2 ...: what the link does, changed live (netem, or the
        delay node's line)."""
        words = line.split()
        if len(words) >= 4 and len(words) % 2 == 0:
            from emulation import linkemu

            try:
                changes = linkemu.parse_changes(words[2:])
                for text in self.emu.set_link(words[0], words[1], changes):
                    print(f"link {text}")
            except (ValueError, LookupError, RuntimeError) as e:
                self._fail(f"*** {e}")
            return
        if len(words) != 3 or words[2] not in ("up", "down"):
            self._fail("*** usage: link NODE1 NODE2 up|down, or link NODE1 NODE2 FIELD "
                       "VALUE... (delay 80ms loss 2 jitter 5ms rate 10 ...)", 2)
            return
        try:  # (returns once the controller has rerouted: the next line sees the result)
            changed = self.emu.link(words[0], words[1], words[2] == "up", wait=True)
        except TimeoutError as e:
            self._fail(f"*** {e}")
            return
        print(f"link {words[0]} {words[1]} {words[2]}: {', '.join(changed)}")

    def do_fault(self, line: str) -> None:
        """fault KIND key=value...: inject a fault now, e.g.
            fault link-flap link=ri,rs period=2 count=3
            fault partition links=ri,rs;rk,rs duration=8
            fault service-kill service=ns1.dns      fault controller-kill
            fault loss-burst link=ri,rb loss=30 duration=5
        fault list | fault heal ID|all | fault timeline [FILE.svg]
        fault run [SEED]: the topology's `faults:` schedule (a script waits for its end)."""
        from topologies.faults import KINDS, TopologyError

        words = line.split()
        engine = self.emu.faults
        try:
            if not words or words[0] == "list":
                for act in engine.active.values():
                    print(f"  {act.id:<4} {act.fault.describe()}")
                if not engine.active:
                    print("no fault in force")
            elif words[0] == "heal" and len(words) == 2:
                ids = engine.heal_all() if words[1] == "all" else \
                    [words[1]] if engine.heal(words[1]) else []
                if not ids:
                    self._fail(f"*** fault heal: no fault {words[1]} in force")
                print(f"healed: {', '.join(ids) or 'nothing'}")
            elif words[0] == "timeline":
                from infralab.faultview import svg, text

                records = engine.timeline()
                if len(words) > 1:
                    open(words[1], "w").write(svg(records, f"{self.emu.topo.name}: faults"))
                    print(f"wrote {words[1]}")
                else:
                    print(text(records), end="")
            elif words[0] == "run":
                plan = self.emu.topo.faults
                if plan is None:
                    self._fail("*** fault run: this topology has no `faults:` block")
                    return
                sched = plan.schedule(self.emu.topo, int(words[1]) if len(words) > 1 else None)
                print(f"{len(sched)} fault(s) over {max(f.at for f in sched):g} s"
                      + ("" if self.script_mode else " (in the background: fault list)"))
                engine.run(sched, wait=self.script_mode)
            elif words[0] in KINDS:
                fid = engine.inject(fault_words(words))
                act = engine.active.get(fid)
                print(f"{fid}: {act.fault.describe() if act else 'done'}")
            else:
                self._fail(f"*** fault: unknown kind or command {words[0]!r} (one of "
                           f"{', '.join(KINDS)}; list, heal, timeline, run)", 2)
        except (TopologyError, ValueError, LookupError, RuntimeError, OSError) as e:
            self._fail(f"*** fault: {e}")

    def do_relay(self, line: str) -> None:
        """relay ROUTER [on|off] [defence on|off] [snooping on|off]: a DHCP relay's state
        (counters, limits), and its switches changed live (DHCP-RELAY, DHCP-STARVE)."""
        words = line.split()
        query = {}
        rest = words[1:]
        if rest[:1] in (["on"], ["off"]):
            query["relay"], rest = rest[0], rest[1:]
        if len(rest) % 2 or any(k not in ("defence", "snooping") or v not in ("on", "off")
                                for k, v in zip(rest[::2], rest[1::2], strict=True)):
            rest = ["?"]
        if not words or rest == ["?"]:
            self._fail("*** usage: relay ROUTER [on|off] [defence on|off] [snooping on|off]",
                       2)
            return
        query.update(zip(rest[::2], rest[1::2], strict=True))
        try:
            st = self.emu.api(f"/relay/{words[0]}" + ("?" + "&".join(
                f"{k}={v}" for k, v in query.items()) if query else ""),
                "POST" if query else "GET")
        except (OSError, ValueError) as e:
            self._fail(f"*** relay: {e}")
            return
        print(f"{words[0]}: relay {'on' if st['enabled'] else 'off'}, defence "
              f"{'on' if st['defence'] else 'off'}, snooping "
              f"{'on' if st['snooping'] else 'off'}; counters " + json.dumps(st["counters"]))

    def do_router(self, line: str) -> None:
        """router NAME down|up: the router fails (every link to another router goes down)
        or is repaired; returns once the controller has rerouted."""
        words = line.split()
        if len(words) != 2 or words[1] not in ("up", "down"):
            self._fail("*** usage: router NAME up|down", 2)
            return
        try:
            changed = self.emu.router_links(words[0], words[1] == "up", wait=True)
        except (LookupError, TimeoutError) as e:
            self._fail(f"*** {e}")
            return
        print(f"router {words[0]} {words[1]}: {', '.join(changed)}")

    def do_routes(self, line: str) -> None:
        """routes [ROUTER]: the routes each router has (computed, written), with next hops
        (several: ECMP) and the fast-failover backup; and the links that are down."""
        try:
            st = self.emu.api(f"/routes/{line.strip()}" if line.strip() else "/routes")
        except OSError as e:
            self._fail(f"*** {e}")
            return
        routing = st.get("routing", {})
        print(f"routing: {routing.get('mode')}; links down: "
              + (", ".join(f"{r}:{p}" for r, p in routing.get("down_links", [])) or "none"))
        for name, table in st.get("routers", {}).items():
            print(f"{name}:")
            for rt in table:
                backup = f"  (backup {rt['backup']})" if rt.get("backup") else ""
                print(f"    {rt['prefix']:<20} via {', '.join(rt['via']):<28} "
                      f"{rt['origin']}{backup}")

    def do_routers(self, _line: str) -> None:
        """Show each router's neighbours, unresolved next hops and counters."""
        st = self.emu.controller_status().get("routers", {})
        for name, r in st.items():
            print(f"{name}: connected={r['connected']} ready={r['ready']}")
            for ip, n in r.get("neighbors", {}).items():
                print(f"    {ip:<16} {n['mac']}  port {n['port']:<3} {n['subnet']}")
            if r.get("unresolved_next_hops"):
                print(f"    unresolved next hops: {', '.join(r['unresolved_next_hops'])}")
            print("    counters: " + json.dumps(r.get("counters", {})))
