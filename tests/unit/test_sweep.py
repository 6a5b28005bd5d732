"""SWEEP, the pure parts: the grid, the seeds, the summary; a failing run is recorded and
the sweep goes on (an experiment that needs no network, run through the real runner)."""

from __future__ import annotations

import json

import pytest

from infralab.sweep import grid, parse_grid, render, run, summary


def test_sweep_grid_is_every_point_times_repeats_with_distinct_repeatable_seeds():
    axes = parse_grid(["delay=5ms,20ms,50ms", "loss=0,1%"])
    assert axes == {"delay": ["5ms", "20ms", "50ms"], "loss": ["0", "1%"]}
    runs = grid(axes, repeat=3, seed=7)
    assert len(runs) == 3 * 2 * 3
    assert runs[0] == {"params": {"delay": "5ms", "loss": "0"}, "repeat": 0, "seed": 7}
    assert len({r["seed"] for r in runs}) == len(runs) and runs == grid(axes, 3, 7)
    for bad in (["delay"], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(ValueError):
            parse_grid(bad)


def test_sweep_summary_gives_median_and_range_per_point_and_counts_failures():
    results = [{"params": {"d": "5ms"}, "figures": {"x": v}} for v in (3.0, 1.0, 2.0)]
    results.append({"params": {"d": "5ms"}, "error": "boom"})
    results.append({"params": {"d": "9ms"}, "error": "boom"})
    rows = summary(results)
    assert rows[0]["figures"]["x"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert (rows[0]["failed"], rows[0]["runs"]) == (1, 4)
    assert rows[1]["figures"] == {} and rows[1]["failed"] == 1
    text = render(rows)
    assert "median      2.000  range 1.000-3.000  (n=3)" in text and "no figure" in text


def test_sweep_runs_each_point_in_its_own_process_and_records_a_failure(tmp_path):
    exp = tmp_path / "exp.py"
    exp.write_text("def experiment(params, seed, name):\n"
                   "    if params['x'] == 'bad':\n"
                   "        raise RuntimeError('no such thing')\n"
                   "    return {'double': 2 * float(params['x']), 'seed': seed}\n")
    out = tmp_path / "r.jsonl"
    results = run(exp, {"x": ["1", "bad", "3"]}, repeat=2, parallel=2, out=out, timeout=60)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == len(results) == 6
    ok = sorted(r["figures"]["double"] for r in lines if "figures" in r)
    assert ok == [2.0, 2.0, 6.0, 6.0]
    bad = [r for r in lines if r["params"]["x"] == "bad"]
    assert len(bad) == 2 and all("RuntimeError: no such thing" in r["error"] for r in bad)
    assert all(r["duration_s"] >= 0 and r["name"].startswith("sw") for r in lines)
