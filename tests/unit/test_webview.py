"""WEB-VIEW: the live view's pure parts - following logs, the events snapshots
imply, link rates, a snapshot of a run directory, and the web layer's guards (loopback
names only, the token for changes) - without a network or a browser."""

from __future__ import annotations

import asyncio
import json

from infralab.webview import EventTail, Snapshot, diff_events, link_rates, make_app


def test_view_event_tail_reads_whole_new_lines_only(tmp_path):
    log = tmp_path / "nat.jsonl"
    log.write_text(json.dumps({"time": 1, "event": "create", "inside": "a"}) + "\n")
    tail = EventTail({log: "nat"})
    tail.start_at_end()  # what was there before is the snapshot's business
    with open(log, "a") as f:
        f.write(json.dumps({"time": 2, "event": "expire", "inside": "b", "mono": 5}) + "\n")
        f.write('{"time": 3, "event": "crea')  # the writer is mid-line
    got = tail.read(10)
    assert [(e["source"], e["kind"], e["text"]) for e in got] == [("nat", "expire", "inside=b")]
    with open(log, "a") as f:
        f.write('te", "inside": "c"}\n' + "not json\n")
        for i in range(5):
            f.write(json.dumps({"event": "create", "inside": str(i)}) + "\n")
    got = tail.read(3)
    assert [e["text"] for e in got] == ["inside=c", "inside=0", "inside=1"]
    assert tail.skipped == 3 and tail.read(10) == []


def test_view_snapshots_imply_link_router_and_gslb_events():
    before = {"links_down": [], "routers": {"rc": {"ready": True}},
              "gslb": {"gslb": {"web": {"web1b": {"state": "up", "address": "198.51.100.12"}}}}}
    after = {"links_down": ["ri--rs"], "routers": {"rc": {"ready": False}},
             "gslb": {"gslb": {"web": {"web1b": {"state": "down", "address": "198.51.100.12",
                                               "last": "no answer"}}}}}
    got = {(e["source"], e["kind"]) for e in diff_events(before, after)}
    assert got == {("link", "down"), ("controller", "not ready"), ("gslb", "down")}
    back = {(e["source"], e["kind"]) for e in diff_events(after, before)}
    assert back == {("link", "up"), ("controller", "ready"), ("gslb", "up")}
    assert diff_events(after, after) == [] and diff_events({}, after) == []


def test_view_link_rates_from_two_readings():
    rates, keep = link_rates({}, 10.0, {"rc-eth1": (100, 10_000)})
    assert rates == {} and keep == {"rc-eth1": (10.0, 100, 10_000)}
    rates, _ = link_rates(keep, 12.0, {"rc-eth1": (300, 30_000)})
    assert rates == {"rc-eth1": {"pps": 100.0, "bps": 80_000}}


def run_dir(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({
        "topology": "duo", "processes": {"node:h1": {"pid": 1},
                                         "service:dhcp1.dhcp": {"pid": 2}}}))
    (tmp_path / "controller-status.json").write_text(json.dumps({
        "routing": {"down_links": [["r2", 3], ["r1", 9]]},
        "routers": {"r1": {"ready": True, "neighbors": {"10.0.0.2": {}}, "nat": {"x": 1}}}}))
    (tmp_path / "ports.json").write_text(json.dumps([
        {"router": "r2", "subnet": "core", "peer": "r1", "intf": "r2-eth3", "port": 3},
        {"router": "r1", "subnet": "lan", "peer": "h1", "intf": "r1-eth1"},
        {"router": "r1", "subnet": "lan", "peer": "h2", "intf": "r1-eth2"}]))
    return tmp_path


def test_view_snapshot_of_a_run_directory(tmp_path):
    snap = Snapshot(run_dir(tmp_path))
    readings = iter([{"r1-eth1": (0, 0, True), "r1-eth2": (0, 0, True)},
                     {"r1-eth1": (20, 2000, True), "r1-eth2": (40, 1000, False)}])
    snap.gather(0.0, lambda: next(readings))
    st = snap.gather(10.0, lambda: next(readings))
    # the controller's two, and h2's cable, set down at r1's port
    assert st["topology"] == "duo" and st["links_down"] == ["h2--r1", "r1 port 9", "r1--r2"]
    assert st["routers"] == {"r1": {"ready": True, "neighbors": ["10.0.0.2"], "counters": {},
                                    "nat": True, "relay": False}}
    assert st["services"] == {"dhcp1": ["dhcp"]}
    assert st["labs"] == []  # no lab runs on duo
    assert st["leases"] == {}  # its control socket does not answer: left out, not an error
    assert st["links"]["r1--h1"] == {"pps": 2.0, "bps": 1600}
    assert st["links"]["r1--lan"] == {"pps": 6.0, "bps": 2400}  # the subnet: both ports
    assert tmp_path / "services" / "dhcp1.dhcp" / "dhcp.jsonl" in snap.log_files()


def test_view_answers_loopback_names_only_and_changes_need_the_token(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    async def go():
        app = make_app(Snapshot(run_dir(tmp_path)), "s3cret", "<svg><g class='node'/></svg>")
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.get("/")
            assert r.status == 200 and "view.js" in await r.text()
            r = await client.get("/topology.svg")
            assert r.status == 200 and (await r.text()).startswith("<svg")
            r = await client.get("/state", headers={"Host": "attacker.example"})
            assert r.status == 403  # a DNS-rebinding page cannot read it
            for headers in ({}, {"X-Infralab-Token": "guess"}):
                r = await client.post("/nat/r1/wan?mapping=address-dependent", headers=headers)
                assert r.status == 403
            r = await client.post("/nat/r1/wan?mapping=address-dependent",
                                  headers={"X-Infralab-Token": "s3cret"})
            assert r.status == 400  # past the guard: this run has no controller API
            assert "no API" in await r.text()

    asyncio.run(go())


def test_view_route_path_follows_the_controllers_routes():
    from ipaddress import IPv4Address, IPv4Interface

    from infralab.webview import route_path

    ifaces = {"a": [IPv4Interface("10.0.1.1/24"), IPv4Interface("10.9.0.1/30")],
              "b": [IPv4Interface("10.9.0.2/30"), IPv4Interface("10.9.0.5/30")],
              "c": [IPv4Interface("10.9.0.6/30"), IPv4Interface("10.0.3.1/24")]}
    routes = {"a": [{"prefix": "10.0.0.0/16", "via": ["10.9.0.2"]},
                    {"prefix": "0.0.0.0/0", "via": []}],
              "b": [{"prefix": "10.0.3.0/24", "via": ["10.9.0.6", "10.9.0.1"]},
                    {"prefix": "10.0.7.0/24", "via": ["10.9.0.1"]}]}
    assert route_path(ifaces, routes, "a", IPv4Address("10.0.3.9")) == (["a", "b", "c"],
                                                                          "delivered")
    assert route_path(ifaces, routes, "a", IPv4Address("10.0.1.5")) == (["a"], "delivered")
    assert route_path(ifaces, routes, "a", IPv4Address("192.0.2.1")) == (["a"], "no route")
    assert route_path(ifaces, routes, "a", IPv4Address("10.0.7.1")) == (["a", "b", "a"],
                                                                          "loop")


def test_view_polls_the_nat_api_without_a_flow_stats_request_and_with_a_row_limit(tmp_path):
    """The view's poller asks `/nat?stats=0&limit=N` every second and stats=1 only every
    NAT_STATS_S (a flow-stats request per poll cost the controller 80 % of its new-binding
    rate under load, bench/view.py). Driven through Snapshot.gather with a fake clock; the
    API handler then reads those arguments as the controller's nat_view takes them."""
    from controllers.api import handle
    from infralab.webview import NAT_STATS_S, TABLE_ROWS, Snapshot

    (tmp_path / "manifest.json").write_text(json.dumps({"topology": "t", "processes": {}}))
    asked: list[str] = []

    class Controller:  # the run's controller as Live reaches it: status file and API
        def status(self):
            return {"api": "127.0.0.1:1", "routers": {}}

        def api(self, path):
            asked.append(path)
            return {"rc": {"table": [], "table_count": 0}} if path.startswith("/nat") else {}

    snap = Snapshot(tmp_path)
    snap.live = Controller()  # type: ignore[assignment]
    for now in range(int(NAT_STATS_S) + 2):  # one poll a second
        snap.gather(float(now), link_stats=lambda: {})
    nat = [p for p in asked if p.startswith("/nat")]
    fresh = f"/nat?stats=1&limit={TABLE_ROWS}"
    cheap = f"/nat?stats=0&limit={TABLE_ROWS}"
    assert nat == [fresh] + [cheap] * (int(NAT_STATS_S) - 1) + [fresh, cheap], nat

    class App:
        def nat_view(self, router=None, fresh=True, limit=None):
            self.args = (router, fresh, limit)
            return {"rc": {"table": []}}

    app = App()
    assert handle(app, "GET", cheap)[0] == 200 and app.args == (None, False, TABLE_ROWS)
    assert handle(app, "GET", fresh)[0] == 200 and app.args == (None, True, TABLE_ROWS)
    assert handle(app, "GET", "/nat/rc")[0] == 200 and app.args == ("rc", True, None)
    assert handle(app, "GET", "/nat?limit=many")[0] == 400


def test_view_last_lines_reads_a_busy_log_from_its_end(tmp_path):
    from infralab.webview import last_lines

    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps({"name": f"n{i}", "pad": "x" * 50}) + "\n"
                           for i in range(10_000)))
    assert [d["name"] for d in last_lines(log, 3)] == ["n9997", "n9998", "n9999"]
    assert last_lines(tmp_path / "missing.jsonl", 3) == []
