"""DHCP relay agent in the controller (DHCP-RELAY, RFC 1542 / 3046) with the starvation
and rogue-server defences (DHCP-STARVE). Pure: takes `now`, returns OpenFlow messages.

Client broadcasts to port 67 on a relay interface are sent up (table RELAY); the relay
sets giaddr to the router's address on that subnet, adds option 82 (circuit id = router/
subnet/port, remote id = router) and unicasts the request to each server through the
router's own pipeline. The server answers giaddr:67, i.e. the router itself; the relay
strips option 82 and delivers the reply on the circuit's port — broadcast when the client
asked for it (or for a NAK), else to its MAC and new address.

Defences, per client port: at most `max_macs_per_port` distinct client MACs (a spoofed-MAC
flood exhausts them, real clients on other ports keep getting leases), at most
`rate_per_port` requests per second, and snooping: DHCP server messages (UDP to port 68)
arriving on a client port are dropped by the switch (a rogue server cannot answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from topologies.plan import InterfacePlan, RouterPlan
from topologies.relayconfig import RelayConfig
from wire import dhcp
from wire import frames as pk
from wire.frames import udp_frame

from .messages import (
    CONTROLLER,
    META_MASK,
    TABLE,
    FlowMod,
    Message,
    Output,
    PacketOut,
)
from .pipeline import (
    COOKIE_OWNER_MASK,
    COOKIE_RELAY,
    P_RELAY,
    P_RELAY_COPY,
    P_RELAY_PASS,
    P_SNOOP,
    T_CLASSIFY,
    T_L2,
    T_RELAY,
)

COOKIE_SNOOP = COOKIE_RELAY | 1  # the snooping drop: its counters are the drop count
MAC_WINDOW_S = 300.0  # a port's client MACs are remembered this long
MAX_HOPS = 16


@dataclass
class PortState:
    macs: dict[str, float] = field(default_factory=dict)  # MAC -> last seen
    tokens: float = 0.0
    last: float = 0.0


@dataclass
class Counters:
    relayed_to_server: int = 0
    relayed_to_client: int = 0
    malformed: int = 0
    dropped_mac_limit: int = 0
    dropped_rate: int = 0
    dropped_hops: int = 0
    dropped_unknown_circuit: int = 0
    dropped_snooping: int = 0  # server messages from client ports (the switch's counter)


class Relay:
    def __init__(self, plan: RouterPlan, cfg: RelayConfig) -> None:
        self.name = plan.name
        self.cfg = cfg
        self.ifaces = {i.subnet: i for i in plan.interfaces if i.subnet in cfg.interfaces}
        self.port_iface = {p.port: i for i in self.ifaces.values() for p in i.ports}
        self.own = {IPv4Address(i.ip): i for i in self.ifaces.values()}
        self.iface_index = {i.subnet: n for n, i in enumerate(plan.interfaces, start=1)}
        self.ports: dict[int, PortState] = {}
        self.recent: dict[tuple[str, int], int] = {}  # (mac, xid) -> port: no option 82
        self.counters = Counters()
        self.events: list[dict] = []
        self._snooped_before = 0  # drops counted by snooping flows since deleted
        self.enabled = True  # switched off live: broadcasts stay on their segment

    def flows(self) -> list[Message]:
        if not self.enabled:
            return []
        msgs: list[Message] = []
        for iface in self.ifaces.values():
            meta = (self.iface_index[iface.subnet], META_MASK)
            for port in (p.port for p in iface.ports):
                # client broadcasts (unicast renewals to the server are routed as usual)
                msgs.append(FlowMod(T_CLASSIFY, P_RELAY, {
                    "in_port": port, "eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_UDP,
                    "udp_dst": 67, "eth_dst": pk.BROADCAST_MAC}, goto=T_RELAY, metadata=meta,
                    cookie=COOKIE_RELAY))
                # anything a DHCP server would send, coming from a client port
                msgs.append(FlowMod(T_CLASSIFY, P_RELAY, {
                    "in_port": port, "eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_UDP,
                    "udp_dst": 68}, goto=T_RELAY, metadata=meta, cookie=COOKIE_RELAY))
        # a copy to the relay; the broadcast is still flooded on its segment (a switch would)
        msgs.append(FlowMod(T_RELAY, P_RELAY_COPY, {
            "eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_UDP, "udp_dst": 67,
            "eth_dst": pk.BROADCAST_MAC}, (Output(CONTROLLER),), goto=T_L2, cookie=COOKIE_RELAY))
        if self.cfg.snooping:
            msgs.append(self._snoop_flow())
        msgs.append(FlowMod(T_RELAY, P_RELAY_PASS, {}, goto=T_L2,  # (unicast renewals)
                            cookie=COOKIE_RELAY))
        return msgs

    @staticmethod
    def _snoop_flow() -> FlowMod:
        """Server messages from a client port: a rogue server's, dropped and counted."""
        return FlowMod(T_RELAY, P_SNOOP, {"eth_type": pk.ETH_IPV4, "ip_proto": pk.PROTO_UDP,
                                          "udp_dst": 68}, (), cookie=COOKIE_SNOOP)

    def set_snooping(self, on: bool) -> list[Message]:
        """Switch snooping live (a lab's control run: without it a rogue server's offer
        reaches the client). The drops counted so far are kept."""
        if on == self.cfg.snooping:
            return []
        self.cfg.snooping = on
        if on:
            return [self._snoop_flow()]
        self._snooped_before = self.counters.dropped_snooping
        return [FlowMod(T_RELAY, delete=True, cookie=COOKIE_SNOOP)]

    def set_enabled(self, on: bool) -> list[Message]:
        """Switch the relay itself on or off live (a lab: without it a client on another
        subnet than the server gets no lease). Off removes its flows; on puts them back."""
        if on == self.enabled:
            return []
        self.enabled = on
        if on:
            return self.flows()
        return [FlowMod(t, delete=True, cookie=COOKIE_RELAY, cookie_mask=COOKIE_OWNER_MASK)
                for t in (T_CLASSIFY, T_RELAY)]

    def flow_stats(self, stats: list[tuple[int, int, int]]) -> None:
        """(cookie, packets, bytes) of the relay's flows: the snooping drop counter."""
        if self.cfg.snooping:
            self.counters.dropped_snooping = self._snooped_before + sum(
                p for c, p, _ in stats if c == COOKIE_SNOOP)

    # ---- client -> server -------------------------------------------------------------
    def from_client(self, now: float, in_port: int, f: pk.Frame) -> list[Message]:
        iface = self.port_iface.get(in_port)
        if iface is None or len(f.l4) < 8 or not self.enabled:
            return []
        try:
            m = dhcp.parse(f.l4[8:])
        except dhcp.DhcpError:
            self.counters.malformed += 1
            return []
        if m.op != dhcp.BOOTREQUEST:
            self.counters.malformed += 1
            return []
        if not self._admit(now, in_port, m):
            return []
        if m.hops >= MAX_HOPS:
            self.counters.dropped_hops += 1
            return []
        m.hops += 1
        if m.giaddr == dhcp.ZERO:
            m.giaddr = IPv4Address(iface.ip)
        if dhcp.OPT_RELAY_AGENT not in m.options:
            m.options[dhcp.OPT_RELAY_AGENT] = dhcp.relay_agent_option(
                f"{self.name}/{iface.subnet}/{in_port}".encode(), self.name.encode())
        self.recent[(m.mac, m.xid)] = in_port
        if len(self.recent) > 4096:
            for k in list(self.recent)[:2048]:
                del self.recent[k]
        payload = m.to_bytes()
        out: list[Message] = []
        for server in self.cfg.servers:
            # addressed to the router itself on the client's port: the pipeline routes it
            frame = udp_frame(f.eth_src, iface.mac, IPv4Address(iface.ip), IPv4Address(server),
                              67, 67, payload)
            out.append(PacketOut(frame, (Output(TABLE),), in_port=in_port))
            self.counters.relayed_to_server += 1
        return out

    def _admit(self, now: float, port: int, m: dhcp.DhcpMessage) -> bool:
        st = self.ports.setdefault(port, PortState(tokens=self.cfg.rate_per_port or 0.0,
                                                   last=now))
        if not self.cfg.defence:
            return True
        if self.cfg.rate_per_port is not None:
            rate = self.cfg.rate_per_port
            st.tokens = min(rate, st.tokens + (now - st.last) * rate)
            st.last = now
            if st.tokens < 1:
                self.counters.dropped_rate += 1
                return False
            st.tokens -= 1
        if self.cfg.max_macs_per_port is not None:
            for mac, seen in list(st.macs.items()):
                if now - seen > MAC_WINDOW_S:
                    del st.macs[mac]
            if m.mac not in st.macs and len(st.macs) >= self.cfg.max_macs_per_port:
                self.counters.dropped_mac_limit += 1
                if self.counters.dropped_mac_limit % 100 == 1:
                    self.events.append({"event": "mac-limit", "router": self.name,
                                        "port": port, "mac": m.mac, "known": len(st.macs)})
                return False
            st.macs[m.mac] = now
        return True

    # ---- server -> client -------------------------------------------------------------
    def for_relay(self, f: pk.Frame) -> bool:
        """A UDP datagram to port 67 of one of the relay's own addresses."""
        return f.proto == pk.PROTO_UDP and f.ip_dst in self.own and len(f.l4) >= 8 and \
            f.l4[2:4] == b"\x00\x43"

    def from_server(self, now: float, f: pk.Frame) -> list[Message]:
        try:
            m = dhcp.parse(f.l4[8:])
        except dhcp.DhcpError:
            self.counters.malformed += 1
            return []
        if m.op != dhcp.BOOTREPLY or m.giaddr not in self.own:
            self.counters.malformed += 1
            return []
        iface = self.own[m.giaddr]
        port = self._circuit_port(m, iface)
        if port is None:
            self.counters.dropped_unknown_circuit += 1
            return []
        m.options.pop(dhcp.OPT_RELAY_AGENT, None)  # RFC 3046 2.2: never to the client
        payload = m.to_bytes()
        if m.broadcast or m.msg_type == dhcp.NAK or m.yiaddr == dhcp.ZERO:
            frame = udp_frame(iface.mac, pk.BROADCAST_MAC, m.giaddr,
                              IPv4Address("255.255.255.255"), 67, 68, payload)
        else:
            frame = udp_frame(iface.mac, m.mac, m.giaddr, m.yiaddr, 67, 68, payload)
        self.counters.relayed_to_client += 1
        return [PacketOut(frame, (Output(port),))]

    def _circuit_port(self, m: dhcp.DhcpMessage, iface: InterfacePlan) -> int | None:
        try:
            circuit = m.relay_info().get(dhcp.RAI_CIRCUIT_ID, b"").decode()
        except (dhcp.DhcpError, UnicodeDecodeError):
            circuit = ""
        parts = circuit.split("/")
        if len(parts) == 3 and parts[0] == self.name and parts[2].isdigit():
            port = int(parts[2])
            if self.port_iface.get(port) is iface:
                return port
        return self.recent.get((m.mac, m.xid))  # a server that did not echo option 82

    def state(self) -> dict:
        return {"counters": vars(self.counters).copy(), "enabled": self.enabled,
                "defence": self.cfg.defence,
                "snooping": self.cfg.snooping,
                "servers": self.cfg.servers, "interfaces": self.cfg.interfaces,
                "max_macs_per_port": self.cfg.max_macs_per_port,
                "rate_per_port": self.cfg.rate_per_port,
                "macs_per_port": {p: len(s.macs) for p, s in self.ports.items()}}
