"""GSLB-ALGO GSLB-HEALTH: selection, health state machine and config, with fixed inputs."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Network

import pytest

from services.gslb.config import GslbConfigError, load, parse
from services.gslb.health import Health
from services.gslb.select import Client, MemberState, Selector

BASE = {
    "zone": "gslb.example.com",
    "regions": {"seoul": ["198.18.10.0/24"], "busan": ["198.18.20.0/24"]},
    "sites": {"dc1": {"region": "seoul"}, "dc2": {"region": "busan"}},
    "topology": {"seoul": ["dc1", "dc2"], "busan": ["dc2", "dc1"]},
    "pools": {"web": {"algorithm": "round-robin", "members": [
        {"name": "web1a", "address": "198.51.100.11", "site": "dc1", "weight": 3},
        {"name": "web1b", "address": "198.51.100.12", "site": "dc1", "weight": 1},
        {"name": "web2a", "address": "198.51.100.131", "site": "dc2", "weight": 1}]}},
    "names": {"www": "web", "*": "web"},
}
A, B, C = "198.51.100.11", "198.51.100.12", "198.51.100.131"
SEOUL, BUSAN, OTHER = Client.of("198.18.10.53"), Client.of("198.18.20.53"), Client.of("10.1.0.53")


def cfg(algorithm, **pool):
    import copy

    d = copy.deepcopy(BASE)
    d["pools"]["web"]["algorithm"] = algorithm
    d["pools"]["web"].update(pool)
    return parse(d)


def up(*down: str, **loads: int) -> dict[str, MemberState]:
    return {n: MemberState(up=n not in down, load=loads.get(n))
            for n in ("web1a", "web1b", "web2a")}


def picks(algorithm, n, states=None, client=OTHER, site_rtt=None, **pool):
    c = cfg(algorithm, **pool)
    s = Selector(c)
    return [s.choose(c.pools["web"], states or up(), client, site_rtt) for _ in range(n)]


def test_gslb_algo_round_robin_skips_a_down_member():
    assert [d.addresses[0] for d in picks("round-robin", 4)] == [A, B, C, A]
    assert [d.addresses[0] for d in picks("round-robin", 4, up("web1b"))] == [A, C, A, C]


def test_gslb_algo_weighted_ratio_is_smooth_and_exact():
    got = Counter(d.addresses[0] for d in picks("weighted", 50))
    assert got == {A: 30, B: 10, C: 10}
    # smooth weighted round-robin (3:1:1): a's turns spread out, never three in a row
    assert [d.addresses[0] for d in picks("weighted", 10)] == [A, B, A, C, A] * 2


def test_gslb_algo_least_conn_follows_reported_load_and_needs_a_report():
    d = picks("least-conn", 1, up(web1a=5, web1b=1, web2a=3))[0]
    assert d.addresses == [B] and d.algorithm == "least-conn"
    none = picks(["least-conn", "round-robin"], 1)[0]
    assert none.algorithm == "round-robin"  # no load reported: the chain falls through


def test_gslb_algo_hash_is_stable_per_client_and_moves_only_the_failed_members_clients():
    clients = [Client.of(f"198.18.{i}.53") for i in range(40)]
    c = cfg("hash")
    s = Selector(c)
    before = {cl: s.choose(c.pools["web"], up(), cl).addresses[0] for cl in clients}
    again = {cl: s.choose(c.pools["web"], up(), cl).addresses[0] for cl in clients}
    assert before == again and len(set(before.values())) == 3
    after = {cl: s.choose(c.pools["web"], up("web1b"), cl).addresses[0] for cl in clients}
    moved = [cl for cl in clients if before[cl] != after[cl]]
    assert moved and all(before[cl] == B for cl in moved)


def test_gslb_algo_topology_picks_the_regions_nearest_live_site():
    assert picks("topology", 1, client=SEOUL)[0].addresses[0] in (A, B)
    assert picks("topology", 1, client=BUSAN)[0].addresses == [C]
    assert picks("topology", 1, up("web2a"), client=BUSAN)[0].addresses[0] in (A, B)
    ecs = Client.of("10.1.0.53", IPv4Network("198.18.20.0/24"))  # EDNS Client Subnet wins
    assert picks("topology", 1, client=ecs)[0].addresses == [C]
    fallback = picks(["topology", "round-robin"], 1, client=OTHER)[0]
    assert fallback.algorithm == "round-robin"


def test_gslb_algo_rtt_from_gslb_probes_and_from_site_agents():
    states = up()
    states["web1a"].rtt_ms, states["web1b"].rtt_ms, states["web2a"].rtt_ms = 9.0, 4.0, 40.0
    assert picks("rtt", 1, states)[0].addresses == [B]
    c = cfg("rtt")
    c.rtt_source = "sites"
    d = Selector(c).choose(c.pools["web"], up(), BUSAN, {"dc1": 41.0, "dc2": 0.4})
    assert d.addresses == [C] and "dc2" in d.reason


def test_gslb_health_rise_fall_and_when_all_down():
    c = cfg("round-robin", check={"type": "http", "rise": 2, "fall": 3, "initial": "down"})
    h = Health("web1a", c.pools["web"].check, now=0)
    assert not h.up and h.record(True, 1) is None
    t = h.record(True, 2)
    assert h.up and (t.old, t.new) == ("down", "up")
    assert h.record(False, 3) is None and h.record(False, 4) is None and h.up
    assert h.record(False, 5).new == "down"
    everyone = up("web1a", "web1b", "web2a")
    assert picks("round-robin", 1, everyone, when_all_down="none")[0].addresses == []
    assert picks("round-robin", 1, everyone, when_all_down="192.0.2.1")[0].addresses == \
        ["192.0.2.1"]
    assert len({d.addresses[0] for d in picks("round-robin", 3, everyone)}) == 3


def test_gslb_config_errors_name_the_file_line_and_what(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("zone: gslb.example.com\npools:\n  web:\n    algorithm: fastest\n"
                 "    members: [{name: a, address: 198.51.100.1}]\n")
    with pytest.raises(GslbConfigError, match=r"g\.yaml:4: pools\.web\.algorithm: unknown "
                                              r"algorithm 'fastest'"):
        load(f)
    f.write_text("zone: gslb.example.com\npools:\n  web:\n"
                 "    members: [{name: a, address: 198.51.100.1}]\nnames:\n  www: wbe\n")
    with pytest.raises(GslbConfigError, match=r":6: names\.www: unknown pool 'wbe'"):
        load(f)
    assert load_ok(tmp_path).pool_for("x.gslb.example.com.").name == "web"


def load_ok(tmp_path):
    import yaml

    f = tmp_path / "ok.yaml"
    f.write_text(yaml.safe_dump(BASE))
    c = load(f)
    assert c.pool_for("www.gslb.example.com.").name == "web"
    assert c.pool_for("gslb.example.com.") is None
    return c


def test_gslb_server_answers_from_health_without_sockets(tmp_path):
    """The server's answer path, driven with bytes: probe results go in through `record`,
    the cached answer follows them, other types come from the static zone, junk is counted."""
    import copy

    from dnslib import DNSRecord

    from services.gslb.server import GslbServer

    d = copy.deepcopy(BASE)
    d["ns"] = {"ns.gslb.example.com.": "198.18.3.1"}
    d["pools"]["web"]["algorithm"] = ["topology", "round-robin"]
    d["pools"]["web"]["check"] = {"type": "http", "fall": 1, "rise": 1}
    now = [0.0]
    srv = GslbServer(parse(d), clock=lambda: now[0], log=lambda s: None)

    def ask(name, qtype="A", src="198.18.20.53"):
        return DNSRecord.parse(srv.answer(DNSRecord.question(name, qtype).pack(), src))

    r = ask("www.gslb.example.com")
    assert r.header.aa and [str(x.rdata) for x in r.rr] == [C] and r.rr[0].ttl == 5
    assert ask("www.gslb.example.com").rr[0].rdata == r.rr[0].rdata  # cached, same answer
    srv.record("web", "web2a", False, "http /health: connection refused")
    assert str(ask("www.gslb.example.com").rr[0].rdata) in (A, B)  # cache followed health
    assert srv.status()["pools"]["web"]["web2a"]["state"] == "down"
    ns = ask("gslb.example.com", "NS")
    assert [str(x.rdata) for x in ns.rr] == ["ns.gslb.example.com."]
    nodata = ask("www.gslb.example.com", "AAAA")  # the name exists: NODATA, not NXDOMAIN
    assert nodata.header.rcode == 0 and not nodata.rr and nodata.auth[0].rtype == 6
    before = srv.stats["malformed"]
    assert srv.answer(b"\x00\x01junk", "198.18.20.53") is None  # dropped, no reply
    assert srv.stats["malformed"] == before + 1  # and counted


def test_gslb_server_never_raises_on_random_packets():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from services.gslb.server import GslbServer

    srv = GslbServer(parse(BASE), log=lambda s: None)
    seed = bytes.fromhex("abcd0100000100000000000103777777046773" "6c6207657861"
                         "6d706c6503636f6d0000010001")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=80), st.integers(0, 40), st.binary(max_size=6))
    def run(junk: bytes, cut: int, patch: bytes) -> None:
        for data in (junk, seed[:cut] + patch + seed[cut + len(patch):]):
            out = srv.answer(data, "198.18.10.53")
            assert out is None or isinstance(out, bytes)

    run()


def test_gslb_fast_path_answers_equal_the_full_paths_in_order():
    """For any run of queries (pool names, wildcard depths, other names and types, EDNS,
    sources in and out of regions, members down), a server answering from bytes gives
    what the dnslib path gives, answer by answer: selection advances alike in both."""
    import copy

    from dnslib import EDNS0, DNSQuestion, DNSRecord
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from services.gslb.server import GslbServer

    names = st.sampled_from(["www.gslb.example.com", "WWW.gslb.Example.com",
                             "x.gslb.example.com", "a.b.gslb.example.com",
                             "gslb.example.com", "ns.gslb.example.com", "other.org"])
    queries = st.lists(st.tuples(names, st.sampled_from([1, 28, 2, 6, 16]),
                                 st.sampled_from(["198.18.10.53", "198.18.20.53",
                                                  "10.1.0.53", "10.1.0.54"]),
                                 st.booleans(), st.integers(0, 65535)), min_size=1,
                       max_size=12)

    @settings(max_examples=150, deadline=None)
    @given(queries, st.sampled_from(["round-robin", "weighted", ["topology", "round-robin"],
                                     ["hash"], "all"]),
           st.sets(st.sampled_from(["web1a", "web1b", "web2a"])), st.integers(1, 3))
    def run(qs, algorithm, down, answers):
        d = copy.deepcopy(BASE)
        d["ns"] = {"ns.gslb.example.com.": "198.18.3.1"}
        d["pools"]["web"].update(algorithm=algorithm, answers=answers,
                                 check={"type": "http", "fall": 1, "rise": 1})
        fast, full = (GslbServer(parse(d), clock=lambda: 0.0, log=lambda s: None)
                      for _ in range(2))
        full.fast = False
        for srv in (fast, full):
            for m in down:
                srv.record("web", m, False, "down")
        for name, qtype, src, edns, qid in qs:
            q = DNSRecord(q=DNSQuestion(name, qtype))
            q.header.id = qid
            if edns:
                q.add_ar(EDNS0(udp_len=1232))
            data = bytes(q.pack())
            a, b = fast.answer(data, src), full.answer(data, src)
            assert a is not None and b is not None
            x, y = DNSRecord.parse(a), DNSRecord.parse(b)
            assert x.header == y.header and x.q == y.q
            assert [(str(r.rname).lower(), r.rtype, r.ttl, str(r.rdata)) for r in x.rr] == \
                [(str(r.rname).lower(), r.rtype, r.ttl, str(r.rdata)) for r in y.rr]
            assert [str(r) for r in x.auth] == [str(r) for r in y.auth]
        assert fast.stats["decisions"] == full.stats["decisions"]

    run()
    srv = GslbServer(parse(BASE), log=lambda s: None)
    for i in range(5):
        srv.answer(DNSRecord.question(f"n{i}.gslb.example.com").pack(), "10.1.0.53")
    assert srv.stats["precompiled"] == srv.stats["decisions"] == 5


def test_gslb_decision_log_is_written_in_batches_and_bounded_per_second(tmp_path, monkeypatch):
    """Answers queue their decisions; the writer writes them (here: one flush), and past
    the per-second bound decisions are counted and the count is written, not each one."""
    import json

    from dnslib import DNSRecord

    from services.gslb import server as gslb_server
    from services.gslb.server import GslbServer

    monkeypatch.setattr(gslb_server, "DECISION_LOG_RATE", 3)
    log = tmp_path / "decisions.jsonl"
    srv = GslbServer(parse(BASE), decision_log=log, log=lambda s: None)
    for i in range(5):
        srv.answer(DNSRecord.question(f"n{i}.gslb.example.com").pack(), "198.18.10.53")
    assert log.read_text() == ""  # queued, not yet written: the answers did not wait
    srv._flush_log()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["name"] for x in lines[:3]] == [f"n{i}.gslb.example.com." for i in range(3)]
    assert all(x["algorithm"] == "round-robin" and len(x["answer"]) == 1 for x in lines[:3])
    assert lines[3]["unlogged"] == 2 and srv.stats["decisions_unlogged"] == 2
    assert len(lines) == 4
