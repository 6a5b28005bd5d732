"""Emulated links, live: what each one does now, and changing it while the network runs.

A run writes `links.json` (one record per emulated or shaped link: its two interfaces,
the namespace each is in, the mechanism — netem on both ends, or a delay node — and the
current settings). `infralab link set` from another terminal, the prompt's `link A B
delay 80ms` and `Emulation.set_link` all change a link through `change()`, which checks
the new settings as the topology loader would, then applies them: `tc qdisc replace` of
the netem qdisc on both ends, or the delay node's settings file and a SIGUSR1 to its
delay line (which reads it at once; emulation/delayline.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from emulation.kernel import netem_args
from topologies.model import NETEM_ONLY, LinkParams, TopologyError, check_link

NETEM_HANDLE = "10:"
HTB_CLASS = "5:1"  # Mininet's TCIntf: root htb 5:, class 5:1 (bw); netem goes below it
SETTABLE = ("delay", "loss", *NETEM_ONLY)


def record(a: str, b: str, a_intf: str, b_intf: str, mechanism: str, *, delay: str | None,
           loss: float | None, shape: dict, bw: float | None, a_pid: int | None,
           b_pid: int | None, delay_node: str | None = None) -> dict:
    """One link's entry in links.json (`*_pid`: the namespace of a host end; None: the
    root namespace, where the routers' OVS ports are)."""
    return {"a": a, "b": b, "a_intf": a_intf, "b_intf": b_intf, "mechanism": mechanism,
            "bw": bw, "a_pid": a_pid, "b_pid": b_pid, "delay_node": delay_node,
            "settings": {"delay": delay, "loss": loss, **shape}}


def netem_lines(rec: dict) -> list[tuple[int | None, str]]:
    """(namespace pid or None, shell line) putting the record's netem on both ends."""
    s = rec["settings"]
    shape = {k: v for k, v in s.items() if k in NETEM_ONLY and v not in (None, 0)}
    args = " ".join(shlex.quote(a) for a in netem_args(s.get("delay"), s.get("loss"), shape))
    parent = f"parent {HTB_CLASS}" if rec.get("bw") else "root"
    return [(pid, f"tc qdisc replace dev {shlex.quote(intf)} {parent} handle {NETEM_HANDLE} "
                  f"netem {args}")
            for intf, pid in ((rec["a_intf"], rec["a_pid"]), (rec["b_intf"], rec["b_pid"]))]


def run_local(pid: int | None, line: str) -> str:
    """Run a shell line in the namespaces of process `pid` (a host), or here."""
    argv = ["mnexec", "-a", str(pid), "sh", "-c", line] if pid else ["sh", "-c", line]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{line}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def parse_changes(words: list[str]) -> dict:
    """`delay 80ms loss 2% jitter 5ms` (the prompt's form) -> {"delay": "80ms", "loss": 2.0...}."""
    if len(words) % 2:
        raise ValueError("expected FIELD VALUE pairs, e.g. delay 80ms loss 2%")
    out: dict = {}
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key not in SETTABLE:
            raise ValueError(f"unknown link field {key!r} (one of {', '.join(SETTABLE)})")
        out[key] = value
    return coerce(out)


def coerce(changes: dict) -> dict:
    """Text values to the model's types: percents and numbers to floats, queue to int."""
    out: dict = {}
    for key, value in changes.items():
        if value is None or key in ("delay", "jitter", "distribution"):
            out[key] = value
        elif key == "queue":
            out[key] = int(str(value))
        elif key == "gilbert_elliott":  # "p,r[,bad_loss[,good_loss]]" (percents) or a dict
            out[key] = value if isinstance(value, dict) else gilbert(str(value))
        else:
            text = str(value).removesuffix("%").removesuffix("mbit").removesuffix("Mbit")
            try:
                out[key] = float(text)
            except ValueError:
                raise ValueError(f"{key}: expected a number, got {value!r}") from None
    return out


def gilbert(text: str) -> dict:
    """'1,30' -> {"p": 1.0, "r": 30.0}: netem's gemodel, as `link set` takes it."""
    from topologies.model import GILBERT_KEYS

    parts = [x for x in text.removesuffix("%").split(",") if x]
    try:
        values = [float(x.removesuffix("%")) for x in parts]
    except ValueError:
        raise ValueError(f"gilbert_elliott: expected p,r[,bad_loss[,good_loss]] in percent, "
                         f"got {text!r}") from None
    if not 1 <= len(values) <= 4:
        raise ValueError("gilbert_elliott: expected p,r[,bad_loss[,good_loss]] in percent")
    return dict(zip(GILBERT_KEYS, values, strict=False))


def change(rec: dict, changes: dict, *, run: Callable[[int | None, str], str] = run_local,
           signal_pid: Callable[[int], None] | None = None, delay_line_pid: int | None = None,
           settings_dir: Path | None = None) -> dict:
    """Apply `changes` to one link record (validated first: nothing changes on an error);
    returns the record with its new settings."""
    new = {**rec["settings"], **changes}
    lp = LinkParams(**{k: v for k, v in new.items() if k in SETTABLE})
    try:
        check_link(lp, f"link {rec['a']} -- {rec['b']}")
    except TopologyError as e:
        raise ValueError(f"{e.where}: {e.problem}") from None
    if rec["mechanism"] == "netem":
        rec = {**rec, "settings": new}
        for pid, line in netem_lines(rec):
            run(pid, line)
        return rec
    if rec["mechanism"] != "delayline":
        raise ValueError(f"link {rec['a']} -- {rec['b']} is not emulated (no delay node, no "
                         "netem): give it a delay in the topology to change it live")
    if lp.netem_only():
        raise ValueError(f"{', '.join(lp.netem_only())}: only the kernel's netem does that; "
                         "this link is emulated by the delay line (delay and loss only)")
    assert settings_dir is not None and delay_line_pid is not None
    path = settings_dir / f"{rec['delay_node']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"delay": lp.delay or "0ms", "loss": lp.loss or 0}))
    tmp.replace(path)
    (signal_pid or (lambda p: os.kill(p, signal.SIGUSR1)))(delay_line_pid)
    return {**rec, "settings": new}


def load(run: Path) -> list[dict]:
    return json.loads((run / "links.json").read_text())["records"]


def save(run: Path, records: list[dict]) -> None:
    tmp = run / "links.json.tmp"
    tmp.write_text(json.dumps({"records": records}, indent=1))
    tmp.replace(run / "links.json")


def set_in_run(run: Path, processes: dict[str, dict], a: str, b: str,
               changes: dict) -> list[dict]:
    """Change the link(s) joining nodes a and b of the emulation in run directory `run`
    (its manifest's `processes` name each delay line's PID), from links.json as it is now
    - whoever changed it last, the prompt or another terminal - and write it back.
    Returns the changed records."""
    records = load(run)
    done = []
    for i in find(records, a, b):
        d = records[i].get("delay_node")
        proc = processes.get(f"service:{d}.delayline") if d else None
        records[i] = change(records[i], changes, settings_dir=run,
                            delay_line_pid=proc["pid"] if proc else None)
        done.append(records[i])
    save(run, records)
    return done


def find(records: list[dict], a: str, b: str) -> list[int]:
    """Indexes of the records of the links joining nodes a and b."""
    hits = [i for i, r in enumerate(records) if {r["a"], r["b"]} == {a, b}]
    if not hits:
        raise LookupError(f"no emulated link joins {a} and {b} (links.json lists the "
                          "links with delay, loss or shaping)")
    return hits


def describe(rec: dict) -> str:
    s = {k: v for k, v in rec["settings"].items() if v not in (None, 0, {})}
    text = " ".join(f"{k} {v}" for k, v in s.items()) or "no delay or loss"
    return f"{rec['a']} -- {rec['b']} ({rec['mechanism']}): {text}"
