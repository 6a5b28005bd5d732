"""`infralab sweep EXPERIMENT.py --grid delay=5ms,20ms loss=0,1% --repeat 5 --parallel 2`
(SWEEP): a researcher's experiment run over a parameter grid, N runs at a time on this
machine, each in a process of its own and under a run name of its own (RUNS-MANY), one
JSON line per run and a summary (median and range per grid point).

An experiment is a Python file with a function

    def experiment(params: dict[str, str], seed: int, name: str) -> dict[str, float]

that builds what it needs (`Emulation(topo, name=name)`), measures, and returns its
figures. A run that raises is recorded with its error and does not stop the sweep.
The grid, the seeds and the summary are pure (`grid`, `summary`); `run` does the rest.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

MAX_PARALLEL = 8  # runs at once, at most (each builds a network)
MAX_RUNS = 1000  # grid points x repeats, at most (a sweep is bounded)


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`["delay=5ms,20ms", "loss=0,1%"]` -> {"delay": ["5ms", "20ms"], "loss": ["0", "1%"]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        if not eq or not key or not values:
            raise ValueError(f"--grid {item!r}: expected NAME=V1,V2,...")
        if key in out:
            raise ValueError(f"--grid names {key!r} twice")
        out[key] = [v.strip() for v in values.split(",") if v.strip()]
    return out


def grid(axes: dict[str, list[str]], repeat: int, seed: int = 1) -> list[dict]:
    """Every run of the sweep: its grid point's parameters, its repeat and seed (distinct
    per run, the same for the same sweep), in the order they are started."""
    keys = list(axes)
    runs = []
    for point, values in enumerate(itertools.product(*(axes[k] for k in keys))):
        for r in range(repeat):
            runs.append({"params": dict(zip(keys, values, strict=True)), "repeat": r,
                         "seed": seed + point * 1000 + r})
    return runs


def summary(results: list[dict]) -> list[dict]:
    """Per grid point and figure: median, min, max and how many runs gave it; failed runs
    counted apart."""
    by_point: dict[str, dict[str, Any]] = {}
    for res in results:
        key = json.dumps(res["params"], sort_keys=True)
        row = by_point.setdefault(key, {"params": res["params"], "figures": {}, "failed": 0,
                                        "runs": 0})
        row["runs"] += 1
        if res.get("error"):
            row["failed"] += 1
            continue
        for name, value in (res.get("figures") or {}).items():
            if isinstance(value, (int, float)):
                row["figures"].setdefault(name, []).append(float(value))
    out = []
    for row in by_point.values():
        figs = {n: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
                for n, v in row["figures"].items()}
        out.append({"params": row["params"], "figures": figs, "failed": row["failed"],
                    "runs": row["runs"]})
    return out


def render(rows: list[dict]) -> str:
    """The summary as a text table: one line per grid point and figure."""
    lines = []
    for row in rows:
        point = " ".join(f"{k}={v}" for k, v in row["params"].items())
        failed = f"  ({row['failed']} of {row['runs']} failed)" if row["failed"] else ""
        if not row["figures"]:
            lines.append(f"{point:<28} no figure{failed}")
        for name, f in row["figures"].items():
            lines.append(f"{point:<28} {name:<20} median {f['median']:10.3f}  range "
                         f"{f['min']:.3f}-{f['max']:.3f}  (n={f['n']}){failed}")
            point, failed = "", ""
    return "\n".join(lines)


def load_experiment(path: Path):
    spec = importlib.util.spec_from_file_location("infralab_experiment", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fn = getattr(mod, "experiment", None)
    if not callable(fn):
        raise ValueError(f"{path}: defines no function experiment(params, seed, name)")
    return fn


def one(experiment: Path, run: dict, name: str, timeout: float) -> dict:
    """One run in a process of its own: the experiment's figures, or its error."""
    t0 = time.monotonic()
    rec = {**run, "name": name}
    try:
        p = subprocess.run([sys.executable, "-m", "infralab.sweep", "--one", str(experiment),
                            json.dumps({**run, "name": name})], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
        got = json.loads(lines[-1]) if lines else {}
        if p.returncode != 0 or "figures" not in got:
            err = got.get("error") or (p.stderr.strip().splitlines() or ["no result"])[-1]
            rec["error"] = err[:500]
        else:
            rec["figures"] = got["figures"]
    except subprocess.TimeoutExpired:
        rec["error"] = f"timed out after {timeout:g} s"
    rec["duration_s"] = round(time.monotonic() - t0, 2)
    return rec


def run(experiment: Path, axes: dict[str, list[str]], repeat: int, parallel: int,
        out: Path, seed: int = 1, timeout: float = 600,
        progress: Any = None) -> list[dict]:
    """The whole sweep: results appended to `out` as each run ends (JSON lines)."""
    runs = grid(axes, repeat, seed)
    if not 1 <= parallel <= MAX_PARALLEL:
        raise ValueError(f"--parallel {parallel}: 1 to {MAX_PARALLEL}")
    if not runs or len(runs) > MAX_RUNS:
        raise ValueError(f"{len(runs)} runs: a sweep has 1 to {MAX_RUNS}")
    load_experiment(experiment)  # (a file that does not load fails here, not N times)
    stamp = time.strftime("%H%M%S")
    results: list[dict] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f, ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(one, experiment, r, f"sw{stamp}-{i}", timeout)
                   for i, r in enumerate(runs)]
        for fut in as_completed(futures):
            rec = fut.result()
            results.append(rec)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            if progress is not None:
                progress(len(results), len(runs), rec)
    return results


def _one_main(experiment: str, spec: str) -> int:
    """The child process: run the experiment once, print its result as one JSON line."""
    run_ = json.loads(spec)
    try:
        fn = load_experiment(Path(experiment))
        figures = fn(run_["params"], run_["seed"], run_["name"])
        print(json.dumps({"figures": figures}), flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - recorded by the parent, the sweep goes on
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run an experiment over a parameter grid, N runs at a "
                       "time: one JSON line per run and a summary (median and range)")
    p.add_argument("experiment", help="a Python file defining experiment(params, seed, name)")
    p.add_argument("--grid", nargs="+", default=[], metavar="NAME=V1,V2",
                   help="the parameters and their values, e.g. delay=5ms,20ms loss=0,1%%")
    p.add_argument("--repeat", type=int, default=1, help="runs per grid point (default 1)")
    p.add_argument("--parallel", type=int, default=1,
                   help=f"runs at once (default 1, at most {MAX_PARALLEL})")
    p.add_argument("--out", default="results.jsonl", help="where the result lines go")
    p.add_argument("--seed", type=int, default=1, help="the first run's seed")
    p.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    p.set_defaults(fn=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from emulation.progress import Progress

    try:
        axes = parse_grid(args.grid)
    except ValueError as e:
        print(f"infralab sweep: {e}", file=sys.stderr)
        return 2
    runs = len(grid(axes, args.repeat))
    step = Progress().step("sweep runs", runs)
    failed = 0

    def progress(done: int, _total: int, rec: dict) -> None:
        nonlocal failed
        failed += bool(rec.get("error"))
        step.update(done)

    t0 = time.monotonic()
    try:
        results = run(Path(args.experiment), axes, args.repeat, args.parallel,
                      Path(args.out), args.seed, args.timeout, progress)
    except ValueError as e:
        print(f"infralab sweep: {e}", file=sys.stderr)
        return 2
    step.finish()
    print(render(summary(results)))
    print(f"{len(results)} runs in {time.monotonic() - t0:.0f} s, {failed} failed; "
          f"results: {args.out}")
    return 1 if failed == len(results) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"] and len(sys.argv) == 4:
        sys.exit(_one_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m infralab.sweep --one EXPERIMENT.py RUN-JSON (infralab sweep "
             "runs this)")
