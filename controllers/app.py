"""The os-ken app: finds the router logic for a datapath, hands it events, sends its answer.

Thin on purpose: no decisions are made here (see router.py). Started in-process by
`controllers.main` (os-ken 4 has no osken-manager); reads the wiring plan named by
$INFRALAB_PLAN and, when $INFRALAB_STATUS names one, keeps a JSON status file there for
`infralab` to poll. With $INFRALAB_API ("127.0.0.1:PORT") it also serves the NAT tables
and counters as JSON over HTTP (NAT-TABLE; flow counters are fetched when asked); with
$INFRALAB_NATLOG it appends every NAT create/expire/refusal there as JSON lines.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from topologies.plan import Plan

from .api import serve_api
from .messages import PacketOut
from .nat import parse_conntrack
from .openflow import encode_packet_out, to_ofp
from .pipeline import COOKIE_NAT, COOKIE_OWNER_MASK, COOKIE_RELAY
from .router import RouterLogic
from .spf import Routing

log = logging.getLogger("infralab.controller")
TICK_S = 0.25
STATS_WAIT_S = 1.0  # how long an API request waits for fresh NAT flow counters
LOOPBACK = ("127.0.0.1", "::1")
CONNTRACK_S = 5.0  # the conntrack fast path's entries are read this often (and on demand)


class InfralabController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plan = Plan.from_json(Path(os.environ["INFRALAB_PLAN"]).read_text())
        status = os.environ.get("INFRALAB_STATUS")
        self.status_path = Path(status) if status else None  # None: keep no status file
        self.routing = Routing(plan)  # ROUTE-SPF: routes from the graph and link states
        self.routers = {r.dpid: RouterLogic(r, self.routing.routes[r.name])
                        for r in plan.routers}
        self.dpid_of = {r.name: r.dpid for r in plan.routers}
        self.link_events: list[dict] = []  # link down/up seen, with the recompute time
        # (dpid, xid) of the barriers sent after a recompute's flow-mods: while any is
        # unanswered, some switch may still forward by the old routes
        self._route_barriers: set[tuple[int, int]] = set()
        self.datapaths: dict[int, Any] = {}  # os-ken Datapath objects
        self.ready: set[int] = set()
        self.errors: list[str] = []
        self.unknown_dpids: set[int] = set()
        self._dirty = True
        natlog = os.environ.get("INFRALAB_NATLOG")
        self.natlog = open(natlog, "a", buffering=1) if natlog else None  # noqa: SIM115
        settings = os.environ.get("INFRALAB_SETTINGS")
        self.settings_path = Path(settings) if settings else None
        self.settings: dict[str, dict] = {"nat": {}, "relay": {}}
        self._restore_settings()  # (before the journal: its bindings were made under them)
        self._restore_nat(os.environ.get("INFRALAB_NATSTATE"))
        self._stats_parts: dict[int, list] = {}
        self._stats_pending: set[int] = set()
        self.api = os.environ.get("INFRALAB_API")
        self.threads.append(hub.spawn(self._ticker))
        if self.api:
            host, _, port = self.api.rpartition(":")
            self.threads.append(hub.spawn(serve_api, self, host, int(port)))

    def _restore_nat(self, path: str | None) -> None:
        """A restarted controller takes over the NAT state its predecessor journaled, so
        the bindings in the switches keep their meaning."""
        self.natstate = None
        if not path:
            return
        p = Path(path)
        if p.exists():
            records = []
            for line in p.read_text().splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line
            now = time.monotonic()
            for r in self.routers.values():
                if r.nat is not None:
                    n = r.nat.restore(records, now)
                    log.info("router %s: %d NAT entries restored from %s", r.name, n, p)
        self.natstate = open(p, "a", buffering=1)  # noqa: SIM115

    def _restore_settings(self) -> None:
        """A restarted controller keeps what was changed live through the API (a NAT's
        mapping and filtering, a relay's defence and snooping), not only the topology's
        first settings."""
        p = self.settings_path
        if p is None or not p.exists():
            return
        try:
            saved = json.loads(p.read_text())
        except ValueError:
            log.error("settings file %s unreadable: starting from the topology's", p)
            return
        now = time.monotonic()
        for key, v in saved.get("nat", {}).items():
            router, _, iface = key.partition("/")
            try:
                _dpid, r = self._nat_of(router, iface)
            except KeyError:
                continue  # (a setting for a NAT this plan does not have)
            r.nat.set_behaviour(now, iface, v.get("mapping"), v.get("filtering"))
            self.settings["nat"][key] = v
        for name, v in saved.get("relay", {}).items():
            try:
                _dpid, r = self._relay_of(name)
            except KeyError:
                continue
            if "defence" in v:
                r.relay.cfg.defence = bool(v["defence"])
            if "snooping" in v:
                r.relay.cfg.snooping = bool(v["snooping"])  # (connect installs it)
            if "enabled" in v:
                r.relay.enabled = bool(v["enabled"])
            self.settings["relay"][name] = v
        log.info("live settings restored from %s: %s", p, self.settings)

    def _save_settings(self) -> None:
        if self.settings_path is None:
            return
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.settings))
        tmp.replace(self.settings_path)

    def _send(self, dp, msgs) -> None:
        for m in msgs:
            if isinstance(m, PacketOut):  # (the NAT's one per binding: encoded lean)
                raw = encode_packet_out(m)
                if raw is not None:
                    dp.send(raw)
                    continue
            out = to_ofp(dp, m)
            for o in out if isinstance(out, list) else [out]:
                dp.send_msg(o)
        if msgs:
            self._dirty = True

    def _guard(self, what: str, fn, *args) -> None:
        """Run a logic call; a bug there is logged and counted, never kills the app."""
        try:
            fn(*args)
        except Exception:
            log.exception("%s failed", what)
            self.errors.append(f"{what}: exception (see controller log)")
            self._dirty = True

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev) -> None:
        self._guard("switch connect", self._switch_features, ev.msg.datapath)

    def _switch_features(self, dp) -> None:
        router = self.routers.get(dp.id)
        if router is None:
            self.unknown_dpids.add(dp.id)
            log.warning("datapath %016x is not in the plan; ignored", dp.id)
            return
        self.datapaths[dp.id] = dp
        self.ready.discard(dp.id)
        log.info("router %s connected (dpid %x)", router.name, dp.id)
        if router.nat is not None:  # conntrack readable here: the switch is on this machine
            router.nat.tcp_conntrack = str(getattr(dp, "address", ("",))[0]) in LOOPBACK
        self._send(dp, router.connect(time.monotonic()))
        dp.send_msg(dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0))  # ports already down
        dp.send_msg(dp.ofproto_parser.OFPBarrierRequest(dp))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier_reply(self, ev) -> None:
        self.ready.add(ev.msg.datapath.id)
        self._route_barriers.discard((ev.msg.datapath.id, ev.msg.xid))
        self._dirty = True

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev) -> None:
        self._guard("packet-in", self._packet_in, ev.msg)

    def _packet_in(self, msg) -> None:
        router = self.routers.get(msg.datapath.id)
        if router is None:
            return
        in_port = msg.match.get("in_port", 0)
        self._send(msg.datapath, router.packet_in(
            time.monotonic(), in_port, msg.data,
            msg.reason, msg.table_id,
            msg.match.get("metadata", 0)))
        self._journal(router)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev) -> None:
        m = ev.msg
        router = self.routers.get(m.datapath.id)
        if router is not None:
            self._guard("flow removed", lambda: self._send(m.datapath, router.flow_removed(
                time.monotonic(), m.cookie, m.packet_count, m.byte_count, m.reason)))
            self._journal(router)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status(self, ev) -> None:
        m = ev.msg
        ofp = m.datapath.ofproto
        up = m.reason != ofp.OFPPR_DELETE and not (m.desc.state & ofp.OFPPS_LINK_DOWN) \
            and not (m.desc.config & ofp.OFPPC_PORT_DOWN)
        self._guard("port status", self._port_state, m.datapath.id, m.desc.port_no, up)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def port_desc(self, ev) -> None:
        m = ev.msg
        ofp = m.datapath.ofproto
        for d in m.body:
            if d.port_no < ofp.OFPP_MAX:
                up = not (d.state & ofp.OFPPS_LINK_DOWN) and not (d.config & ofp.OFPPC_PORT_DOWN)
                self._guard("port desc", self._port_state, m.datapath.id, d.port_no, up)

    def _port_state(self, dpid: int, port: int, up: bool) -> None:
        """ROUTE-FAILOVER: a router link went down or up: recompute, and send each router
        whose routes changed only the flows that changed (the switches' own failover has
        already moved the traffic where a backup existed)."""
        router = self.routers.get(dpid)
        if router is None or not self.routing.is_router_link(router.name, port):
            return
        t0 = time.monotonic()
        changed = self.routing.port_status(router.name, port, up)
        if changed is None:
            return
        sent = 0
        for name, routes in changed.items():
            dpid_ = self.dpid_of[name]
            msgs = self.routers[dpid_].set_routes(time.monotonic(), routes)
            dp = self.datapaths.get(dpid_)
            if dp is not None:
                self._send(dp, msgs)
                sent += len(msgs)
                barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
                dp.set_xid(barrier)
                self._route_barriers.add((dpid_, barrier.xid))
                dp.send_msg(barrier)
        event = {"time": round(time.time(), 3), "router": router.name, "port": port,
                 "state": "up" if up else "down", "routers_changed": sorted(changed),
                 "messages": sent, "compute_ms": round((time.monotonic() - t0) * 1000, 2)}
        log.info("link %s port %d %s: %d routers changed, %d messages in %.1f ms",
                 router.name, port, event["state"], len(changed), sent, event["compute_ms"])
        self.link_events = (self.link_events + [event])[-50:]
        self._dirty = True

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply(self, ev) -> None:
        m = ev.msg
        parts = self._stats_parts.setdefault(m.datapath.id, [])
        parts += [(s.cookie, s.packet_count, s.byte_count) for s in m.body]
        if m.flags & m.datapath.ofproto.OFPMPF_REPLY_MORE:
            return
        del self._stats_parts[m.datapath.id]
        self._stats_pending.discard(m.datapath.id)
        router = self.routers.get(m.datapath.id)
        if router is not None:
            self._guard("flow stats", router.flow_stats, time.monotonic(), parts)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev) -> None:
        m = ev.msg
        text = f"dpid {m.datapath.id:x}: OpenFlow error type={m.type} code={m.code}"
        log.error(text)
        self.errors.append(text)
        self._dirty = True

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def state_change(self, ev) -> None:
        dp = ev.datapath
        dpid = dp.id
        if dpid is not None and self.datapaths.get(dpid) is dp:
            del self.datapaths[dpid]
            self.ready.discard(dpid)
            self._dirty = True
            log.info("datapath %x disconnected", dpid)

    def _read_conntrack(self) -> None:
        """Read the NAT routers' conntrack entries (OVS keeps the PAT's TCP connections
        and the fast path's, not the flows): one dump of the datapath for all of them."""
        import subprocess

        nats = [r.nat for r in self.routers.values()
                if r.nat is not None and r.nat.reads_conntrack]
        if not nats:
            return
        now = time.monotonic()
        out = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack"], capture_output=True,
                             text=True, timeout=10).stdout
        for nat in nats:
            nat.conntrack_update(now, parse_conntrack(out, nat.zone))

    def _ticker(self) -> None:
        next_ct = 0.0
        while True:
            now = time.monotonic()
            for dpid, dp in list(self.datapaths.items()):
                r = self.routers[dpid]
                self._guard("tick", lambda d=dp, r=r, t=now: self._send(d, r.tick(t)))
            if now >= next_ct:
                next_ct = now + CONNTRACK_S
                self._guard("conntrack", self._read_conntrack)
            self._write_natlog()
            if self._dirty and self.status_path is not None:
                self._write_status()
            hub.sleep(TICK_S)

    def _refresh_stats(self, cookie: int, wanted: Callable[[RouterLogic], bool]) -> None:
        """Ask the switches of the routers `wanted` picks for the counters of one cookie
        space's flows (pipeline.py) and wait (briefly) for them: on demand, so a busy
        switch pays nothing for counters nobody reads."""
        for dpid, dp in list(self.datapaths.items()):
            if not wanted(self.routers[dpid]):
                continue
            ofp, parser = dp.ofproto, dp.ofproto_parser
            self._stats_pending.add(dpid)
            dp.send_msg(parser.OFPFlowStatsRequest(
                dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, cookie, COOKIE_OWNER_MASK,
                parser.OFPMatch()))
        end = time.monotonic() + STATS_WAIT_S
        while self._stats_pending and time.monotonic() < end:
            hub.sleep(0.02)

    def _journal(self, router: RouterLogic) -> None:
        """Hand the NAT's state changes to the OS at once (before the packet that made them
        is answered, in effect): a controller killed right after loses no binding."""
        if router.nat is not None and router.nat.state_log and self.natstate is not None:
            self.natstate.write("".join(json.dumps(x) + "\n"
                                        for x in router.nat.drain_state()))

    def _write_natlog(self) -> None:
        """Drain each router's NAT events to the translation log (wall time added) and its
        state changes to the state journal."""
        for r in self.routers.values():
            self._journal(r)
            if r.nat is None or not r.nat.events:
                continue
            events = r.nat.drain_events()
            self._dirty = True
            if self.natlog is not None:
                t = time.time()
                for e in events:
                    self.natlog.write(json.dumps({"time": round(t, 3), **e}) + "\n")

    def nat_view(self, router: str | None = None, fresh: bool = True,
                 limit: int | None = None) -> dict:
        """NAT tables and counters of every NAT router (or one): the API's answer.
        `fresh`: read the switches' counters first (a flow-stats request: costly under
        load, so a poller such as the live view asks only now and then); `limit`: at
        most that many rows of each table (`table_count` has them all)."""
        if fresh:
            self._guard("conntrack", self._read_conntrack)
            self._guard("flow stats", self._refresh_stats, COOKIE_NAT,
                        lambda r: r.nat is not None)
        now = time.monotonic()
        return {r.name: {**r.nat.state(), "table": r.nat.rows(now, limit),
                         "table_count": r.nat.row_count()}
                for r in self.routers.values()
                if r.nat is not None and router in (None, r.name)}

    def routing_view(self) -> dict:
        return {"mode": "shortest-path" if self.routing.enabled else "static",
                "down_links": [list(x) for x in self.routing.down_links()],
                "recomputes": self.routing.changes, "events": self.link_events[-10:],
                "switches_updating": len(self._route_barriers)}

    def routes_view(self, router: str | None = None) -> dict:
        """Routes of every router (or one), with the routing state: the API's answer."""
        return {"routing": self.routing_view(),
                "routers": {r.name: r.route_table() for r in self.routers.values()
                            if router in (None, r.name)}}

    def _nat_of(self, router: str, iface: str) -> tuple[int, Any]:
        """(dpid, router logic) of the router with a NAT on `iface`; KeyError if none."""
        dpid = self.dpid_of.get(router, -1)
        r = self.routers.get(dpid)
        if r is None or r.nat is None or iface not in r.nat.configs:
            raise KeyError(f"no NAT on {router}/{iface}")
        return dpid, r

    def _relay_of(self, router: str) -> tuple[int, Any]:
        """(dpid, router logic) of the router with a DHCP relay; KeyError if none."""
        dpid = self.dpid_of.get(router, -1)
        r = self.routers.get(dpid)
        if r is None or r.relay is None:
            raise KeyError(f"no DHCP relay on {router}")
        return dpid, r

    def nat_set(self, router: str, iface: str, mapping: str | None,
                filtering: str | None) -> dict:
        """Change a NAT's mapping/filtering behaviour live; returns the new state."""
        dpid, r = self._nat_of(router, iface)
        try:
            msgs = r.nat.set_behaviour(time.monotonic(), iface, mapping, filtering)
        except ValueError as e:
            raise KeyError(str(e)) from None
        dp = self.datapaths.get(dpid)
        if dp is not None:
            self._send(dp, msgs)
        c = r.nat.configs[iface]
        self.settings["nat"][f"{router}/{iface}"] = {"mapping": c.mapping,
                                                     "filtering": c.filtering}
        self._save_settings()
        return r.nat.state()

    def nat_fill(self, router: str, iface: str, fill: bool) -> dict:
        """Hold every free address of a NAT pool (a fault) or give them back;
        returns {"held": n} or {"freed": n}."""
        _dpid, r = self._nat_of(router, iface)
        try:
            n = r.nat.fill_pool(iface) if fill else r.nat.unfill_pool(iface)
        except ValueError as e:
            raise KeyError(str(e)) from None
        self._dirty = True
        return {"held": n} if fill else {"freed": n}

    def relay(self, router: str, defence: bool | None = None,
              snooping: bool | None = None, enabled: bool | None = None) -> dict:
        """A DHCP relay's state (its snooping drops counted afresh); `defence` switches its
        starvation limits on or off, `snooping` its rogue-server filter, `enabled` the
        relay itself."""
        dpid, r = self._relay_of(router)
        msgs: list = []
        if defence is not None:
            r.relay.cfg.defence = defence
        if snooping is not None:
            msgs += r.relay.set_snooping(snooping)
        if enabled is not None:  # (after snooping: switched off, its flow goes too)
            msgs += r.relay.set_enabled(enabled)
        if defence is not None or snooping is not None or enabled is not None:
            dp = self.datapaths.get(dpid)
            if dp is not None:
                self._send(dp, msgs)
            self._dirty = True
            self.settings["relay"][router] = {"defence": r.relay.cfg.defence,
                                              "snooping": r.relay.cfg.snooping,
                                              "enabled": r.relay.enabled}
            self._save_settings()
        self._guard("flow stats", self._refresh_stats, COOKIE_RELAY,
                    lambda x, name=router: x.name == name)
        return r.relay.state()

    def _write_status(self) -> None:
        self._dirty = False
        assert self.status_path is not None
        doc = self.status_doc()
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.status_path)

    def status_doc(self) -> dict:
        return {
            "pid": os.getpid(),
            "api": f"http://{self.api}" if self.api else None,
            "time": time.time(),
            "errors": self.errors[-20:],
            "unknown_dpids": sorted(self.unknown_dpids),
            "routing": self.routing_view(),
            "routers": {
                r.name: {"dpid": dpid, "connected": dpid in self.datapaths,
                         "ready": dpid in self.ready, **r.state()}
                for dpid, r in self.routers.items()
            },
        }
