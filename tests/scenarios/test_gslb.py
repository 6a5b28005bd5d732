"""GSLB-* on the live world: real dig/curl through the real resolvers, real health checks,
real distance (the busan link is 20 ms each way, repeated by a delay node)."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter

import pytest

from emulation.build import wait_for
from infralab.testing import Capture, dig, service_ctl, within

GSLB = "198.18.3.1"
DC1 = {"198.51.100.11", "198.51.100.12"}
DC2 = {"198.51.100.131"}
CHECK_INTERVAL, CHECK_TIMEOUT, FALL, TTL = 1.0, 0.8, 2, 5


def status(world) -> dict:
    return service_ctl(world, "gslb.gslb", "status")


def member(world, pool: str, name: str) -> dict:
    return status(world)["pools"][pool][name]


def ask(world, host: str, name: str, *opts: str) -> list[str]:
    """A records `host` gets for `name` straight from the GSLB (no resolver cache)."""
    return dig(world, host, name, "A", GSLB, "+norec", *opts).data("A")


def set_link(world, host: str, up: bool) -> None:
    """Unplug/replug the server's cable (up again, its default route is restored too)."""
    if not up:
        world.host(host).cmd(f"ip link set {host}-eth0 down")
        return
    world.host(host).cmd(f"ip link set {host}-eth0 up; "
                         f"ip route replace default via {world.topo.gateway(host)}")


@pytest.fixture
def links_restored(world):
    """Whatever a test takes down comes back up, and the GSLB sees it healthy again."""
    yield
    for h in ("web1a", "web1b", "web2a"):
        set_link(world, h, True)
        world.host(h).cmd(f"curl -s -m2 'http://{world.ip(h)}/admin/mode?set=ok'")
    wait_for(lambda: all(m["state"] == "up" for m in status(world)["pools"]["web"].values()),
             20, "every member healthy again")


def trace_servers(world, host: str, name: str) -> tuple[list[str], str]:
    out = world.host(host).cmd(f"infralab dns trace {name}")
    return re.findall(r"--> (\S+)", out), out


def test_gslb_ns_delegation_seven_steps_and_one_delegation_covers_every_name(world):
    servers, out = trace_servers(world, "c1", "www.gslb.example.com")
    assert servers == ["198.18.1.1", "198.18.1.11", "198.18.2.1", GSLB] or \
        servers == ["198.18.1.1", "198.18.1.11", "198.18.2.2", GSLB], out
    assert "REFERRAL: gslb.example.com. NS ns.gslb.example.com. (glue 198.18.3.1)" in out
    assert re.search(r"ANSWER: www\.gslb\.example\.com\. A 198\.51\.100\.1[12]\b", out), out
    # names ns1 never heard of are the GSLB's too: the delegation covers the whole subtree
    for name in ("api.gslb.example.com", "img.cdn.gslb.example.com"):
        d = dig(world, "c1", name)
        assert d.rcode == "NOERROR" and within(d.data("A"), DC1), d.raw  # campus -> dc1
    soa = dig(world, "c1", "gslb.example.com", "SOA", GSLB, "+norec")
    assert "aa" in soa.flags and soa.data("SOA")[0].startswith("ns.gslb.example.com.")


def test_gslb_cname_eight_steps_company_dns_aliases_into_the_gslb(world):
    servers, out = trace_servers(world, "c1", "shop.example.com")
    assert "CNAME: shop.example.com. CNAME www.examplegslb.com." in out, out
    # company DNS first; after the CNAME the resolver looks up the GSLB's own domain
    # (from the com. server it already knows) and the GSLB answers last
    assert servers[:2] == ["198.18.1.1", "198.18.1.11"] and servers[2] in ("198.18.2.1",
                                                                          "198.18.2.2"), out
    assert servers[3:] == ["198.18.1.11", GSLB], out
    d = dig(world, "c2", "www.example.com")
    assert d.data("CNAME") == ["www.gslb.example.com."] and within(d.data("A"), DC1)


def test_gslb_cname_flow_as_a_ladder_from_a_capture_at_the_ldns(world):
    """TB-OBSERVE: a capture at the campus LDNS, drawn as a ladder, shows the GSLB-CNAME
    flow: root and com. refer, the company's ns1 answers with the CNAME into the GSLB's
    domain, com. refers again and the GSLB answers authoritatively."""
    from infralab.ladder import events, text

    service_ctl(world, "ldns.resolver", "flush")  # resolve from the root, not the cache
    with Capture(world, "ldns", "udp port 53", snaplen=1500) as cap:
        d = dig(world, "c1", "shop.example.com")
    assert within(d.data("A"), DC1 | DC2), d.raw
    evs = events(cap.path)
    ldns = world.ip("ldns")
    asked = [e.dst for e in evs if e.src == ldns and e.label.startswith("DNS ?")]
    answers = {e.src: e.label for e in evs if e.dst == ldns and "DNS " in e.label}
    assert asked[0] == "198.18.1.1" and asked[-1] == GSLB, text(evs)
    for server in ("198.18.1.1", "198.18.1.11"):  # root, then com. (twice: each domain)
        assert answers[server].startswith("DNS referral"), text(evs)
    company = answers.get("198.18.2.1") or answers.get("198.18.2.2") or ""  # ns1 or ns2
    assert "shop.example.com. -> www.examplegslb.com." in company, text(evs)
    assert answers[GSLB].startswith("DNS answer www.examplegslb.com.") and \
        answers[GSLB].endswith(" AA"), text(evs)
    print(text(evs))


def test_gslb_zone_the_whole_domain_is_the_gslbs_static_and_dynamic(world):
    mx = dig(world, "c3", "examplegslb.com", "MX")
    assert mx.data("MX") == ["10 mail.example.com."]  # static, from its zone file
    apex = dig(world, "c3", "examplegslb.com", "A", GSLB, "+norec")
    assert "aa" in apex.flags and within(apex.data("A"), DC1) and apex.answer[0][1] == TTL
    assert dig(world, "c3", "nope.examplegslb.com", "A", GSLB, "+norec").rcode == "NXDOMAIN"


def test_gslb_dc_regional_clients_get_their_nearest_site_by_region_ecs_and_measured_rtt(world):
    assert within(dig(world, "xs", "www.gslb.example.com").data("A"), DC1)
    assert set(dig(world, "xb", "www.gslb.example.com").data("A")) == DC2
    # EDNS Client Subnet: the LDNS is in campus, the client it speaks for is in busan
    assert set(ask(world, "c1", "www.gslb.example.com", "+subnet=198.18.20.0/24")) == DC2
    # rtt: each site's agent pings the asking resolver; the first answer is a fallback
    for host, want in (("xs", DC1), ("xb", DC2)):
        wait_for(lambda h=host, w=want: within(dig(world, h, "rtt.gslb.example.com").data("A"),
                                               w), 20, f"{host} to get its lowest-RTT site")
    rtt = status(world)["site_rtt"]
    seoul, busan = rtt["198.18.10.0/24"], rtt["198.18.20.0/24"]
    print(f"GSLB-ALGO rtt: to seoul's LDNS dc1 {seoul['dc1']:.1f} ms, dc2 {seoul['dc2']:.1f} ms;"
          f" to busan's LDNS dc1 {busan['dc1']:.1f} ms, dc2 {busan['dc2']:.1f} ms")
    assert seoul["dc2"] > 35 > 5 > seoul["dc1"] and busan["dc1"] > 35 > 5 > busan["dc2"]


def test_gslb_rr_fail_plain_round_robin_keeps_a_dead_server_gslb_withdraws_it(world,
                                                                             links_restored):
    dead = "198.51.100.12"
    set_link(world, "web1b", False)
    t0 = time.monotonic()
    wait_for(lambda: member(world, "web", "web1b")["state"] == "down", 15, "web1b withdrawn")
    withdrawn_s = time.monotonic() - t0
    # worst case: the link went down just after a good check; `fall` more checks, the last
    # one waiting out its timeout (the README's "within 2.8 s"; 1.5 s for a loaded machine)
    assert withdrawn_s <= CHECK_INTERVAL * FALL + CHECK_TIMEOUT + 1.5, withdrawn_s
    plain = [dig(world, "c1", "web.example.com", "A", "198.18.2.1", "+norec").data("A")
             for _ in range(3)]
    gslb = [ask(world, "c1", "www.gslb.example.com") for _ in range(6)]
    assert all(dead in answer for answer in plain), plain  # DNS round robin: still there
    assert all(a and dead not in a for a in gslb), gslb  # GSLB: never again
    assert member(world, "web", "web1b")["last"].startswith("http /health")
    print(f"GSLB-RR-FAIL: web1b withdrawn {withdrawn_s:.1f} s after its link went down; "
          f"round robin still listed it in {len(plain)}/{len(plain)} answers")
    set_link(world, "web1b", True)
    wait_for(lambda: member(world, "web", "web1b")["state"] == "up", 15, "web1b restored")


HEALTH_POOLS = {"web": "www", "lc": "lc", "near": "rtt", "sticky": "hash", "ratio": "ratio"}


@pytest.mark.parametrize("how,failing,detail", [
    ("http-status", {"web", "lc"}, "status 500"),
    ("http-body", {"web"}, "body lacks 'ok'"),  # lc checks the status only
    ("tcp", {"web", "lc", "sticky", "ratio"}, "Connection refused"),
    ("icmp", {"near"}, "icmp: no echo reply"),
])
def test_gslb_health_each_check_type_fails_for_real(world, links_restored, how, failing,
                                                    detail):
    """web2a made to fail one way at a time: exactly the pools whose check sees that
    failure take it down (with the probe's reason), the others keep it up; the GSLB's
    answers for a down pool never name it."""
    web2a, ip = world.host("web2a"), "198.51.100.131"
    undo = {"http-status": "curl -s -m2 'http://198.51.100.131/admin/mode?set=ok'",
            "http-body": "curl -s -m2 'http://198.51.100.131/admin/mode?set=ok'",
            "tcp": "iptables -D INPUT -p tcp --dport 80 -j REJECT --reject-with tcp-reset",
            "icmp": "iptables -D INPUT -p icmp --icmp-type echo-request -j DROP"}[how]
    web2a.cmd({"http-status": "curl -s -m2 'http://198.51.100.131/admin/mode?set=error'",
               "http-body": "curl -s -m2 'http://198.51.100.131/admin/mode?set=degraded'",
               "tcp": undo.replace("-D", "-A", 1), "icmp": undo.replace("-D", "-A", 1)}[how])
    try:
        wait_for(lambda: all(member(world, p, "web2a")["state"] == "down" for p in failing),
                 15, f"web2a down in {sorted(failing)}")
        pools = status(world)["pools"]
        for pool in HEALTH_POOLS:
            state = pools[pool]["web2a"]
            assert (state["state"] == "down") == (pool in failing), (pool, state)
            if pool in failing:
                assert detail in state["last"], (pool, state)
        for pool in failing:  # never answered while down (xb is busan's: dc2 first)
            for i in range(3):
                got = ask(world, "xb", f"h{i}.gslb.example.com" if pool == "web"
                          else f"{HEALTH_POOLS[pool]}.gslb.example.com")
                assert got and ip not in got, (pool, got)
    finally:
        web2a.cmd(undo)


def test_gslb_health_a_hanging_check_never_blocks_answers(world, links_restored):
    world.host("web2a").cmd("curl -s -m2 'http://198.51.100.131/admin/mode?set=slow&delay=5'")
    wait_for(lambda: "no answer in" in member(world, "web", "web2a")["last"], 10,
             "web2a's check to time out")
    took = []
    for i in range(20):  # (dig's own query time: the server's, not the dig process's start)
        d = dig(world, "xb", f"h{i}.gslb.example.com", "A", GSLB, "+norec", "+stats")
        assert d.data("A"), "no answer while a check hangs"
        took.append(int(re.search(r"Query time: (\d+) msec", d.raw).group(1)))
    # each answer, the slowest included, comes sooner than the check's timeout (800 ms):
    # no query waited for the hanging check
    assert max(took) < 800, took


def test_gslb_dc_whole_data_centre_fails_clients_move_within_interval_fall_ttl(
        world, links_restored):
    """Seoul's clients use dc1; dc1 loses both servers; measured through seoul's LDNS (its
    cache included) from the failure to the first answer naming dc2."""
    assert within(dig(world, "xs", "www.gslb.example.com").data("A"), DC1)
    t0 = time.monotonic()
    for h in ("web1a", "web1b"):
        set_link(world, h, False)
    wait_for(lambda: set(dig(world, "xs", "www.gslb.example.com").data("A")) == DC2, 30,
             "seoul's clients to move to dc2")
    failover = time.monotonic() - t0
    bound = CHECK_INTERVAL * FALL + TTL + 1
    print(f"GSLB-DC failover: {failover:.1f} s from dc1 down to seoul answered dc2 "
          f"(interval x fall + TTL + 1 = {bound:.0f} s; check timeout {CHECK_TIMEOUT} s)")
    assert failover <= bound + CHECK_TIMEOUT * FALL, failover
    out = world.host("xs").cmd("curl -s -m5 http://www.example.com/")
    assert out.startswith("web2a dc2"), out  # the client really lands on the other site


def test_gslb_algo_least_conn_follows_the_load_servers_report(world):
    assert ask(world, "c1", "lc.gslb.example.com") == ["198.51.100.11"]  # all idle: first
    holds = [world.host("c1").popen(["curl", "-s", "-m20", "http://198.51.100.11/hold?s=6"],
                                    stdout=subprocess.DEVNULL) for _ in range(3)]
    try:
        wait_for(lambda: member(world, "lc", "web1a")["load"] == 3, 10, "web1a to report 3")
        assert ask(world, "c1", "lc.gslb.example.com") == ["198.51.100.12"]  # least busy
    finally:
        for p in holds:
            p.wait(20)
    wait_for(lambda: ask(world, "c1", "lc.gslb.example.com") == ["198.51.100.11"], 10,
             "web1a to be chosen again once idle")


def test_gslb_algo_hash_keeps_each_client_subnet_on_one_server(world):
    seen = {}
    for i in range(1, 9):
        subnet = f"+subnet=192.0.{i}.0/24"
        answers = {ask(world, "c1", "hash.gslb.example.com", subnet)[0] for _ in range(3)}
        assert len(answers) == 1, (subnet, answers)  # stable per client
        seen[subnet] = answers.pop()
    assert len(set(seen.values())) >= 2, seen  # and different clients are spread


def test_gslb_algo_weighted_ratio_three_one_one(world):
    got = Counter(ask(world, "c1", "ratio.gslb.example.com", "+nocookie")[0] for _ in range(25))
    # exact 15:5:5 unless a health event restarts the smooth sequence (then off by one)
    want = {"198.51.100.11": 15, "198.51.100.12": 5, "198.51.100.131": 5}
    assert all(abs(got[a] - n) <= 1 for a, n in want.items()), got


def test_gslb_killed_process_is_restarted_by_supervision_and_answers_again(world):
    """`kill -9` of the GSLB is noticed; the supervisor starts it again, logs it,
    and the delegated names resolve again."""
    import json
    import os
    import signal

    old = world.services["gslb.gslb"]
    os.killpg(old.pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: world.services["gslb.gslb"] is not old, 10, "the restart")
    wait_for(lambda: ask(world, "xs", "www.gslb.example.com"), 15, "answers again")
    print(f"supervision: the GSLB answered again {time.monotonic() - t0:.1f} s after kill -9")
    rec = [json.loads(x) for x in (world.rundir / "supervisor.jsonl").read_text().splitlines()]
    assert any(r["service"] == "gslb.gslb" and r["action"] == "restarted" for r in rec)
