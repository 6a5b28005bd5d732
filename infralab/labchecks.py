"""The labs' checkers, step by step (TB-LABS): each a function of a `Live` view that
says whether the step has left its mark on the running network, and why. `LABS` lists
every lab with its steps; `infralab.labs` runs them."""

from __future__ import annotations

import json

from infralab.labbase import Check, Lab, Live, Step


def _routers_up(*names: str) -> Check:
    def check(live: Live) -> tuple[bool, str]:
        st = live.status().get("routers", {})
        down = [n for n in names if not st.get(n, {}).get("ready")]
        return (not down, "routers ready" if not down else f"not ready: {', '.join(down)}")
    return check


# ---- NAT -------------------------------------------------------------------------------
def _pat_used(live: Live) -> tuple[bool, str]:
    rows = [r for r in live.nat("rc")["table"] if r["kind"] == "pat"
            and r["inside"].startswith("10.1.1.11:")]
    return (bool(rows), f"rc translated c1 as {rows[0]['outside']}" if rows
            else "no PAT entry for c1 (10.1.1.11) in rc's table yet")


def _static_inbound(live: Live) -> tuple[bool, str]:
    ok = "198.18.20.10 " in live.service_file("webc.web", "log")
    return ok, ("webc served xb through 203.0.113.80" if ok
                else "webc has not served a request from xb (198.18.20.10)")


def _vip_spread(live: Live) -> tuple[bool, str]:
    """xb's connections to the VIP 203.0.113.90 reached webd too: webd has no public
    address of its own, so only the VIP leads to it (webc is also reached by its static
    address, step 3, so its log cannot tell)."""
    webd = live.service_file("webd.web", "log").count("198.18.20.10 ")
    return webd > 0, (f"webd served xb {webd} time(s) through the VIP" if webd else
                      "webd has not served xb yet (ask the VIP a few times)")


def _double_nat(live: Live) -> tuple[bool, str]:
    nb = live.status().get("routers", {}).get("rp", {}).get("neighbors", {})
    ok = "10.1.1.10" in nb
    return ok, ("traffic reached p1 through the partner's NAT" if ok
                else "nothing has reached p1 (try 172.30.1.10 from c1)")


def _partners(live: Live) -> tuple[bool, str]:
    """Both partners reached, each through its own block of the partner range, though
    p1, p2 and c1's lan1 all use 10.1.1.0/24."""
    routers = live.status().get("routers", {})
    seen = [r for r in ("rp", "rq") if "10.1.1.10" in routers.get(r, {}).get("neighbors", {})]
    ok = len(seen) == 2
    return ok, ("p1 (172.30.1.10) and p2 (172.30.2.10) were both reached" if ok else
                f"reached so far: {', '.join(seen) or 'neither partner'} "
                "(try 172.30.1.10 and 172.30.2.10 from c1)")


def _symmetric(live: Live) -> tuple[bool, str]:
    i = live.nat("na")["interfaces"]["nalink"]
    ok = i["mapping"] == "address-and-port-dependent"
    return ok, f"na: mapping {i['mapping']}, filtering {i['filtering']}"


def _stun_ran(live: Live) -> tuple[bool, str]:
    rows = [r for r in live.nat("na")["table"] if r["inside"].startswith("192.168.1.10:")
            and r["proto"] == "udp" and any(x.startswith("198.18.30.1") for x in
                                            r["remotes"])]
    rows = rows or [r for r in live.nat("na")["table"]
                    if r["inside"].startswith("192.168.1.10:") and r["proto"] == "udp"]
    return (bool(rows), f"{len(rows)} UDP mapping(s) of h1 at na" if rows
            else "h1 has no UDP mapping at na (run the STUN client)")


def _punched(live: Live) -> tuple[bool, str]:
    names = {json.loads(e["message"]).get("name") for e in
             live.jsonl(live.service_file("rv.rendezvous", "rendezvous.jsonl"))
             if e.get("message", "").startswith("{")}
    names.discard(None)
    # (the Mininet CLI turns host names into addresses: `--name h1` arrives as h1's IP)
    ok = len(names) >= 2
    return ok, (f"{' and '.join(sorted(names))} met at the rendezvous server" if ok
                else f"registered so far: {sorted(names) or 'nobody'}")


# ---- DNS -------------------------------------------------------------------------------
def _queries(live: Live) -> list[dict]:
    return live.jsonl(live.service_file("ldns.resolver", "queries.jsonl"))


def _asked(name: str, qtype: str, how: str | None = None) -> Check:
    def check(live: Live) -> tuple[bool, str]:
        hits = [q for q in _queries(live) if q["qname"].rstrip(".").lower() == name
                and q["qtype"] == qtype and (how is None or q["how"] == how)]
        return (bool(hits), f"{len(hits)} {qtype} {name} answered by the LDNS"
                + (f" ({how})" if how else "") if hits else
                f"the LDNS has not answered {qtype} {name}" + (f" from its {how}" if how
                                                                else "") + " yet")
    return check


def _serial_moved(live: Live) -> tuple[bool, str]:
    """ns2 holds a newer example.com. than shipped: it can only have it from ns1 (asked of
    ns2, so the step stays done while ns1 is down or restarting later in the lab)."""
    ns2 = live.control(live.dir / "services" / "ns2.dns" / "control", "stats")
    b = ns2["zones"]["example.com."]["serial"]
    ok = b > 2026112501
    return ok, f"example.com. serial on ns2: {b}" + ("" if ok else
                                                     " (raise it on ns1 and reload)")


NOTES_TYPES = ("A", "AAAA", "CNAME", "SOA", "NS", "MX", "PTR", "TXT")  # the notes' records


def _record_types(live: Live) -> tuple[bool, str]:
    asked = {q["qtype"] for q in _queries(live) if q.get("rd")}  # (clients ask with RD=1)
    missing = [t for t in NOTES_TYPES if t not in asked]
    return not missing, ("every record type of the notes was asked" if not missing
                         else f"not asked through the LDNS yet: {', '.join(missing)}")


def _transfer_refused(live: Live) -> tuple[bool, str]:
    """From ns1's log, which outlives a restart of ns1 (its counters do not)."""
    refused = [ln for ln in live.service_file("ns1.dns", "log").splitlines()
               if "dns: refused AXFR" in ln or "dns: refused IXFR" in ln]
    return bool(refused), (refused[-1].split("dns: ", 1)[1] if refused
                           else "ns1 has refused no zone transfer yet")


def _ttl_tradeoff(live: Live) -> tuple[bool, str]:
    """The short-TTL name (moved, 5 s) made the LDNS go to the servers again and again;
    the long-TTL one (old, 300 s) once."""
    def count(name: str, how: str) -> int:
        return sum(1 for q in _queries(live) if q["qname"].rstrip(".").lower() == name
                   and q["qtype"] == "A" and q["how"] == how)
    moved, old = count("moved.example.com", "resolved"), count("old.example.com", "resolved")
    asked = count("moved.example.com", "cache") + moved
    ok = moved >= 2 and moved > old and asked >= 10
    return ok, (f"moved.example.com (TTL 5): {moved} of {asked} answers went to the "
                f"servers; old.example.com (TTL 300): {old}")


def _stub_order(live: Live) -> tuple[bool, str]:
    """c1 looked a name up twice (its local cache holds it) and put one in its hosts file."""
    try:
        cached = sorted(json.loads(live.host_file("c1", "dnscache.json") or "{}"))
    except ValueError:
        cached = []
    own = [ln.split()[1] for ln in live.host_file("c1", "hosts").splitlines()
           if len(ln.split()) > 1 and not ln.startswith("#") and ln.split()[1] != "localhost"]
    ok = bool(cached) and bool(own)
    return ok, (f"c1's local cache holds {', '.join(cached[:3])}; its hosts file names "
                f"{', '.join(own[:3])}" if ok else
                f"c1's local cache: {', '.join(cached[:3]) or 'empty'}; its hosts file: "
                f"{', '.join(own[:3]) or 'localhost only'}")


def _other_root(live: Live) -> tuple[bool, str]:
    """One resolution in the LDNS's log where a root server did not answer and another
    root server did (the hints name three)."""
    for q in reversed(_queries(live)):
        roots = [(s["server"], s["outcome"]) for s in q.get("steps", []) if s["zone"] == "."]
        dead = [a for a, o in roots if o in ("timeout", "error")]
        alive = [a for a, o in roots if o not in ("timeout", "error") and a not in dead]
        if dead and alive:
            return True, (f"{q['qname']}: root {dead[0]} did not answer, {alive[0]} did")
    return False, "no resolution has had to skip a dead root server yet"


def _slave_expired(live: Live) -> tuple[bool, str]:
    ok = "example.co.kr. EXPIRED" in live.service_file("ns2.dns", "log")
    return ok, ("ns2 expired example.co.kr. (no refresh from ns1 within SOA expire)" if ok
                else "ns2 still trusts its copy of example.co.kr.")


def _slave_promoted(live: Live) -> tuple[bool, str]:
    zone = live.control(live.dir / "services" / "ns2.dns" / "control",
                        "stats")["zones"].get("example.co.kr.", {})
    ok = _slave_expired(live)[0] and zone.get("role") == "primary" and bool(zone.get("serving"))
    return ok, (f"ns2 holds example.co.kr. as {zone.get('role')}, "
                f"{'serving' if zone.get('serving') else 'not serving'}")


# ---- GSLB ------------------------------------------------------------------------------
def _decisions(live: Live) -> list[dict]:
    return live.jsonl(live.service_file("gslb.gslb", "decisions.jsonl"))


def _regions(live: Live) -> tuple[bool, str]:
    by = {}
    for d in _decisions(live):
        if d["name"].startswith("www.gslb.example.com"):
            by[d["client"]] = d["answer"]
    ok = "198.18.10.53" in by and "198.18.20.53" in by
    return ok, (f"seoul's LDNS got {by['198.18.10.53']}, busan's {by['198.18.20.53']}" if ok
                else "both regional resolvers must ask (xs and xb: www.example.com)")


def _failover(live: Live) -> tuple[bool, str]:
    ev = [e for e in live.jsonl(live.service_file("gslb.gslb", "log").replace("gslb: ", ""))
          if e.get("event") == "health"]
    down = {e.get("member") for e in ev if e.get("to") == "down"}
    ok = {"web1a", "web1b"} <= down
    return ok, ("dc1's servers were seen going down" if ok
                else f"members seen down so far: {sorted(m for m in down if m) or 'none'}")


def _algorithms(live: Live) -> tuple[bool, str]:
    """The pools named after the notes' algorithms were each asked (RTT, least
    connections, hashing; topology is `www`, weighted `ratio`)."""
    asked = {d["name"].split(".")[0] for d in _decisions(live)}
    missing = [n for n in ("rtt", "lc", "hash") if n not in asked]
    return not missing, ("rtt, lc and hash were each asked" if not missing
                         else f"not asked yet: {', '.join(missing)}.gslb.example.com")


def _weighted(live: Live) -> tuple[bool, str]:
    n = sum(1 for d in _decisions(live) if d["name"].startswith("ratio.gslb.example.com"))
    return n >= 10, f"{n} answers for ratio.gslb.example.com (ask at least 10 times)"


# ---- DHCP ------------------------------------------------------------------------------
def _dhcp_server(live: Live) -> tuple[bool, str]:
    try:
        st = live.control(live.dir / "hosts" / "srv" / "dhcp.ctl", "stats")
    except OSError:  # stopped since (step 10 stops it on purpose): did it ever answer?
        n = sum(1 for e in _dhcp_events(live) if e["event"] == "ack")
        return n > 0, (f"srv's server answered ({n} ack(s)); it is stopped now" if n
                       else "no DHCP server answers on srv")
    return True, f"srv answers: {st['offer']} offer(s), {st['ack']} ack(s) so far"


def _leased(subnet: str) -> Check:
    """A lease in `subnet` was acknowledged (the server's log: still true after release)."""
    from ipaddress import IPv4Address, IPv4Network

    net = IPv4Network(subnet)

    def check(live: Live) -> tuple[bool, str]:
        hits = {e["ip"] for e in _dhcp_events(live)
                if e["event"] == "ack" and IPv4Address(e["ip"]) in net}
        return (bool(hits), f"leased in {subnet}: {', '.join(sorted(hits))}" if hits
                else f"no lease in {subnet} yet")
    return check


def _dhcp_events(live: Live) -> list[dict]:
    return live.jsonl(live.host_file("srv", "dhcp.jsonl"))


def _renewed(live: Live) -> tuple[bool, str]:
    acks: dict[str, int] = {}
    for e in _dhcp_events(live):
        if e["event"] == "ack":
            acks[e["mac"]] = acks.get(e["mac"], 0) + 1
    best = max(acks.values(), default=0)
    return best >= 2, f"most ACKs to one client: {best} (a renewal makes it 2)"


def _released(live: Live) -> tuple[bool, str]:
    n = sum(1 for e in _dhcp_events(live) if e["event"] == "release")
    return n >= 1, f"{n} RELEASE(s) seen by the server"


def _reserved(live: Live) -> tuple[bool, str]:
    got = {e["ip"] for e in _dhcp_events(live) if e["event"] == "ack"
           and e.get("mac") == "02:00:00:02:01:02"}
    ok = "10.2.1.50" in got
    return ok, ("a2 got its reserved 10.2.1.50" if ok else
                f"a2 (02:00:00:02:01:02) has been given: {', '.join(sorted(got)) or 'nothing'}")


def _no_relay(live: Live) -> tuple[bool, str]:
    log = _client_log(live, "a3", "norelay.jsonl")
    asked = sum(1 for e in log if e["event"] == "send" and e.get("message") == "DISCOVER")
    bound = any(e["event"] == "bound" for e in log)
    ok = asked > 0 and not bound
    return ok, (f"a3 broadcast {asked} DISCOVER(s) with the relay off; no server heard them"
                if ok else f"a3 without the relay: {asked} DISCOVER(s), bound: {bound}")


def _relay_back(live: Live) -> tuple[bool, str]:
    log = _client_log(live, "a3", "relayon.jsonl")
    got = [e["address"] for e in log if e["event"] == "bound"]
    on = live.api("/relay/r1")["enabled"]
    return bool(got) and on, (f"relay on again, a3 bound to {got[-1]}" if got and on else
                              f"relay {'on' if on else 'off'}; a3 bound: {bool(got)}")


def _client_log(live: Live, host: str, name: str = "client.jsonl") -> list[dict]:
    """A DHCP client's own log (its --log) in the host's directory."""
    return live.jsonl(live.host_file(host, name))


def _b1_bound(live: Live) -> tuple[bool, str]:
    got = [e["address"] for e in _client_log(live, "b1") if e["event"] == "bound"]
    return bool(got), (f"b1's client is bound to {got[-1]}" if got
                       else "b1's client (with --log) has no lease yet")


def _rebind_then_expire(live: Live) -> tuple[bool, str]:
    """After its lease began: a broadcast REQUEST (REBINDING at T2, the server being
    gone), then the lease expired and the client went back to DISCOVER."""
    log = _client_log(live, "b1")
    first = next((i for i, e in enumerate(log) if e["event"] == "bound"), None)
    if first is None:
        return False, "b1's client has not been bound yet"
    after = log[first + 1:]
    seen: list[str] = []
    for e in after:
        if not seen and e["event"] == "send" and e.get("message") == "REQUEST" \
                and e.get("to") == "broadcast":
            seen.append("rebinding broadcast")
        elif len(seen) == 1 and e["event"] == "unconfigured":
            seen.append("lease expired")
        elif len(seen) == 2 and e["event"] == "send" and e.get("message") == "DISCOVER":
            seen.append("DISCOVER again")
    return len(seen) == 3, "seen after the lease began: " + (", ".join(seen) or "nothing yet")


def _own_capture(live: Live) -> tuple[bool, str]:
    """s1's own capture (hosts/s1/dora.pcap) holds its DISCOVER from 0.0.0.0:68 to
    255.255.255.255:67 and the broadcast REQUEST naming the server it chose."""
    from infralab.ladder import CaptureFileError, events

    path = live.dir / "hosts" / "s1" / "dora.pcap"
    try:
        evs = events(path)
    except (OSError, CaptureFileError, ValueError):
        return False, "no capture of s1's exchange yet (hosts/s1/dora.pcap)"
    discover = [e for e in evs if e.label.startswith("DHCP DISCOVER")
                and e.src_ep == "0.0.0.0:68" and e.dst_ep == "255.255.255.255:67"]
    request = [e for e in evs if e.label.startswith("DHCP REQUEST server=")
               and e.dst == "255.255.255.255"]
    ack = [e for e in evs if e.label.startswith("DHCP ACK")]
    ok = bool(discover and request and ack)
    return ok, (f"{len(evs)} packets: DISCOVER 0.0.0.0:68 -> 255.255.255.255:67, "
                f"{request[0].label.split(' ')[2]} chosen, ACK" if ok else
                f"{len(evs)} packets captured: DISCOVER {len(discover)}, broadcast REQUEST "
                f"{len(request)}, ACK {len(ack)}")


def _bootp_fallback(live: Live) -> tuple[bool, str]:
    bound = [e for e in _client_log(live, "o1") if e.get("event") == "bound"]
    ok = any(e.get("bootp") for e in bound)
    return ok, (f"o1 took {bound[-1]['address']} from the BOOTP server, for good" if ok
                else "o1 has no BOOTP binding yet")


def _segment_servers(live: Live) -> tuple[bool, str]:
    up = []
    for h in ("d1", "d2"):
        try:
            live.control(live.dir / "hosts" / h / "dhcp.ctl", "stats")
            up.append(h)
        except OSError:
            pass
    return len(up) == 2, f"answering on the segment: {', '.join(up) or 'none'}"


def _one_offer_taken(live: Live) -> tuple[bool, str]:
    st = {h: live.control(live.dir / "hosts" / h / "dhcp.ctl", "stats") for h in ("d1", "d2")}
    won = [h for h, x in st.items() if x["ack"] >= 1]
    freed = [h for h, x in st.items() if x["withdrawn"] >= 1]
    # (s1 asks again in step 14, and may choose the other server then)
    pair = next(((w, f) for w in won for f in freed if w != f), None)
    return pair is not None, (f"s1 took {pair[0]}'s offer; {pair[1]} freed the address it "
                              "had offered" if pair else
                              f"acked by: {won or 'none'}; offers freed by: {freed or 'none'}")


def _starve_held(live: Live) -> tuple[bool, str]:
    relay = live.api("/relay/r1")
    n = relay["counters"]["dropped_mac_limit"]
    return n > 0, (f"r1's relay dropped {n} request(s) over its per-port MAC limit"
                   if n else "the relay has dropped nothing yet (run the attack from x1)")


# ---- NAT on natlab: pool beside PAT, timeouts, the log --------------------------------------
def _natlog(live: Live) -> list[dict]:
    try:
        return live.jsonl((live.dir / "nat.jsonl").read_text())
    except OSError:
        return []


def _pat_two(live: Live) -> tuple[bool, str]:
    seen = {e["inside"].split(":")[0]: e["outside"] for e in _natlog(live)
            if e["event"] == "create" and e.get("kind") == "pat"}
    ok = {"10.0.1.10", "10.0.1.11"} <= set(seen)
    return ok, (f"a1 as {seen['10.0.1.10']}, a2 as {seen['10.0.1.11']}: one address, two "
                "ports" if ok else f"PAT'ed so far: {sorted(seen) or 'nobody'}")


def _pool_two(live: Live) -> tuple[bool, str]:
    seen = {e["inside"].split(":")[0]: e["outside"].split(":")[0] for e in _natlog(live)
            if e["event"] == "create" and e.get("kind") == "pool"}
    ok = {"10.0.2.11", "10.0.2.12"} <= set(seen)
    return ok, (f"b1 as {seen['10.0.2.11']}, b2 as {seen['10.0.2.12']}: an address each"
                if ok else f"given a pool address so far: {sorted(seen) or 'nobody'}")


def _pool_refused(live: Live) -> tuple[bool, str]:
    n = sum(1 for e in _natlog(live) if e["event"] == "refuse" and e["inside"] == "10.0.2.13")
    return n > 0, f"{n} refusal(s) of b3 in the translation log"


def _pool_expired(live: Live) -> tuple[bool, str]:
    ex = [e for e in _natlog(live) if e["event"] == "expire" and e.get("kind") == "pool"]
    return bool(ex), (f"{len(ex)} pool entr(y/ies) expired: {ex[0].get('reason')}" if ex
                      else "no pool entry has expired yet (wait for its idle timeout)")


def _pool_reused(live: Live) -> tuple[bool, str]:
    got = [e["outside"] for e in _natlog(live) if e["event"] == "create"
           and e.get("kind") == "pool" and e["inside"].startswith("10.0.2.13")]
    return bool(got), (f"b3 got {got[0]} once the pool had room" if got
                       else "b3 has not been given a pool address yet")


def _pat_inbound(live: Live) -> tuple[bool, str]:
    n = live.nat("r1")["counters"]["conntrack_dropped"]
    return n > 0, f"{n} unsolicited packet(s) to the PAT address dropped"


LABS = {lab.name: lab for lab in [
    Lab("nat", "NAT/PAT, static NAT, double NAT and hole punching", "world", [
        Step("the world is up (rc, rp, rq, na, nb ready)",
             _routers_up("rc", "rp", "rq", "na", "nb")),
        Step("c1 reached the internet through rc's PAT", _pat_used),
        Step("xb reached webc through static NAT (203.0.113.80)", _static_inbound),
        Step("c1 reached the partner's p1 through the double NAT", _double_nat),
        Step("na was switched to symmetric (address-and-port-dependent) mapping", _symmetric),
        Step("the STUN client ran from h1 behind na", _stun_ran),
        Step("h1 and h2 tried hole punching through rv", _punched),
        Step("xb's connections to the VIP were spread over webc and webd", _vip_spread),
        Step("c1 reached two partners with the same addresses, each in its own block of "
             "the partner range 172.30.0.0/16", _partners),
    ]),
    Lab("natlab", "NAT: PAT beside a dynamic pool, timeouts and the translation log",
        "natlab", [
            Step("natlab is up", _routers_up("r1", "r2")),
            Step("a1 and a2 went out through the PAT (one address, two ports)", _pat_two),
            Step("b1 and b2 got a pool address each (dynamic NAT)", _pool_two),
            Step("b3 was refused: the pool of two was used up", _pool_refused),
            Step("a pool entry expired after its idle timeout and was logged", _pool_expired),
            Step("b3 got an address once the pool had room again", _pool_reused),
            Step("unsolicited traffic to the PAT address was tried and dropped",
                 _pat_inbound),
        ]),
    Lab("dns", "DNS: resolution from the root, caching, records, zone transfer", "world", [
        Step("the world is up", _routers_up("rc", "ri")),
        Step("c1 resolved www.example.com through the LDNS", _asked("www.example.com", "A")),
        Step("the same name was answered from the LDNS cache",
             _asked("www.example.com", "A", "cache")),
        Step("someone asked for example.com's mail exchanger (MX)",
             _asked("example.com", "MX")),
        Step("a reverse lookup (PTR) of 198.51.100.131 was made",
             _asked("131.100.51.198.in-addr.arpa", "PTR")),
        Step("ns1's serial was raised and ns2 transferred the new zone", _serial_moved),
        Step("every record type of the notes was asked (A AAAA CNAME SOA NS MX PTR TXT)",
             _record_types),
        Step("ns1 refused a zone transfer to a stranger", _transfer_refused),
        Step("c1 looked names up in the notes' order: hosts file, local cache, LDNS",
             _stub_order),
        Step("the TTL trade-off: a TTL-5 name went to the servers again and again, a "
             "TTL-300 one once", _ttl_tradeoff),
        Step("a root server was down and the LDNS asked another of the three", _other_root),
        Step("ns2 stopped answering example.co.kr. at SOA expire after ns1 died",
             _slave_expired),
        Step("ns2 was promoted to primary for example.co.kr. and answers again",
             _slave_promoted),
    ]),
    Lab("gslb", "GSLB: nearest data centre, failover, weighted answers", "world", [
        Step("the world is up", _routers_up("ri", "rs", "rb")),
        Step("seoul's and busan's resolvers both asked for www", _regions),
        Step("dc1's two servers were taken down and the GSLB noticed", _failover),
        Step("the weighted pool was asked ten times", _weighted),
        Step("the RTT, least-connections and hashing pools were asked", _algorithms),
    ]),
    Lab("dhcp", "DHCP: DORA through a relay, lease renewal, release", "dhcplab", [
        Step("the DHCP server runs on srv", _dhcp_server),
        Step("a client on lan1 got a lease (through r1's relay)",
             _leased("10.2.1.0/24")),
        Step("a client on lan2 got a lease from the same server",
             _leased("10.2.2.0/24")),
        Step("a lease was renewed (two ACKs to one client)", _renewed),
        Step("a client released its lease", _released),
        Step("a2 got the address reserved for its MAC", _reserved),
        Step("a starvation attack from x1 met the relay's per-port limit", _starve_held),
        Step("two DHCP servers run on one segment (d1, d2)", _segment_servers),
        Step("s1 took one server's offer and the other freed its own", _one_offer_taken),
        Step("with r1's relay off, a3's DISCOVERs reached no server", _no_relay),
        Step("with the relay on again, a3 got a lease", _relay_back),
        Step("b1's client (logging) got a lease", _b1_bound),
        Step("with srv stopped, b1 rebound by broadcast at T2, its lease expired and it "
             "started over with DISCOVER", _rebind_then_expire),
        Step("s1's own capture shows DORA on its segment: DISCOVER from 0.0.0.0:68 to "
             "255.255.255.255:67, a broadcast REQUEST naming the chosen server", _own_capture),
        Step("o1 heard only a BOOTP server and fell back to BOOTP", _bootp_fallback),
    ]),
]}
