#!/usr/bin/env bash
# `make test`: the whole suite. Scenario tests build live networks; with WORKERS > 1 they
# run in that many pytest-xdist workers at once (one module at a time per worker, so a
# module's network is built once), each run under its own name and prefix (RUNS-MANY);
# then the tests marked `serial` (load tests, machine-wide state) run alone.
# WORKERS: a number, or `auto` (from the cores and the available memory); 1: one test at
# a time, as `make test` does by default.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
W=${1:-auto}
if [ "$W" = auto ]; then
  W=$("$PY" - <<'PYEOF'
import os, re
cores = len(os.sched_getaffinity(0))
avail = int(re.search(r"MemAvailable:\s+(\d+)", open("/proc/meminfo").read()).group(1)) // 2**20
print(max(1, min(cores + 1, avail // 3, 6)))  # (a worker's networks take up to ~3 GB)
PYEOF
)
fi
if [ "$W" -le 1 ]; then
  exec "$PY" -m pytest -q --durations=25 tests
fi
echo "make test: $W workers, then the serial tests alone"
"$PY" -m pytest -q -n "$W" --dist loadfile -m "not serial" --durations=25 tests
parallel=$?
"$PY" -m pytest -q -m serial --durations=10 tests
serial=$?
[ "$parallel" -eq 0 ] && [ "$serial" -eq 0 ]
