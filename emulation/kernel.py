"""What the running kernel offers, and the choices infralab makes from it.

Users' kernels (Debian, Ubuntu, the course VM) have Open vSwitch's kernel datapath and
netem; some machines (containers, micro-VMs) have neither. `auto` takes the kernel's where
it can and says why; the choices themselves are pure functions of what was found, so they
are unit-tested without the kernel they are about.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from topologies.plan import LinkPlan


@dataclass(frozen=True)
class Module:
    """Whether a kernel module can be used here, and how that was found out."""

    name: str
    present: bool
    how: str  # "loaded", "built in", "loaded now by modprobe", or why not


def probe(name: str, load: bool = True) -> Module:
    """Is module `name` in this kernel (loaded, built in or loadable)? With `load`,
    modprobe it when it is loadable but not loaded (as `mn` and ovs-ctl do)."""
    if os.path.isdir(f"/sys/module/{name}"):
        return Module(name, True, "loaded")
    release = os.uname().release
    ko = re.compile(rf"(^|/){re.escape(name)}\.ko(\.[a-z]+)?$")  # (.ko, .ko.xz...)

    def listed(index: str) -> bool:  # a module's own path: each line's first field
        try:
            with open(f"/lib/modules/{release}/{index}") as f:
                return any(ko.search(line.split(":")[0].strip()) for line in f)
        except OSError:
            return False

    if listed("modules.builtin"):
        return Module(name, True, "built in")
    if not listed("modules.dep"):
        return Module(name, False, f"kernel {release} has no {name} module")
    if not load:
        return Module(name, True, "loadable")
    try:
        r = subprocess.run(["modprobe", "-q", name], capture_output=True, text=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Module(name, False, f"modprobe {name}: {e}")
    if r.returncode == 0:
        return Module(name, True, "loaded now by modprobe")
    return Module(name, False, f"modprobe {name} failed: {(r.stderr or '').strip()}")


def choose_datapath(mode: str, ovs: Module) -> tuple[str, str]:
    """("kernel" | "user", why) for OVS's bridges; `mode` is auto, kernel or user."""
    if mode == "user":
        return "user", "asked for (datapath: user)"
    if ovs.present:
        return "kernel", f"openvswitch module {ovs.how}"
    if mode == "kernel":
        raise ValueError(f"datapath: kernel, but {ovs.how}; use datapath: auto or user")
    return "user", f"{ovs.how}: userspace datapath"


def choose_links(mode: str, netem: Module, links: list[LinkPlan]) -> tuple[str, str]:
    """("netem" | "delayline", why) for the emulated links; a link that asks for what only
    netem does, where netem is not to be had, is an error naming the link and the fields
    (never a silent approximation)."""
    if mode == "delayline" or (mode == "auto" and not netem.present):
        why = "asked for (link_emulation: delayline)" if mode == "delayline" else \
            f"{netem.how}: user-space delay line (delay and loss only)"
        for lk in links:
            if lk.shape:
                raise ValueError(
                    f"link {lk.a} -- {lk.b} asks for {', '.join(sorted(lk.shape))}: only "
                    f"the kernel's netem does that, and here {why.split(':')[0]}; the delay "
                    "line emulates delay and loss only")
        return "delayline", why
    if not netem.present:
        raise ValueError(f"link_emulation: netem, but {netem.how}; use auto or delayline")
    return "netem", f"sch_netem {netem.how}"


def netem_args(delay: str | None, loss: float | None, shape: dict) -> list[str]:
    """The `tc qdisc ... netem` arguments for one direction of a link (each end of the
    link gets the same: delay and loss are one way, as the delay line's)."""
    args: list[str] = []
    if delay:
        args += ["delay", delay]
        if shape.get("jitter"):
            args.append(shape["jitter"])
            if shape.get("distribution"):
                args += ["distribution", shape["distribution"]]
    ge = shape.get("gilbert_elliott")
    if ge:
        args += ["loss", "gemodel", f"{ge['p']}%", f"{ge.get('r', 100 - ge['p'])}%",
                 f"{ge.get('bad_loss', 100)}%", f"{ge.get('good_loss', 0)}%"]
    elif loss:
        args += ["loss", "random", f"{loss}%"]
        if shape.get("loss_correlation"):
            args.append(f"{shape['loss_correlation']}%")
    for key in ("duplicate", "corrupt", "reorder"):
        if shape.get(key):
            args += [key, f"{shape[key]}%"]
    if shape.get("rate"):
        args += ["rate", f"{shape['rate']}mbit"]
    args += ["limit", str(shape.get("queue") or 1000)]
    return args
