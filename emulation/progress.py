"""Progress output for steps that take more than a couple of seconds (TB-OBSERVE).

Building a 200-host campus or running the benchmarks takes long enough that a silent
terminal looks hung. On a terminal a step is a bar redrawn in place; in a log (CI, a pipe)
it is a line at most every `interval` seconds, and nothing at all for a step that ends
sooner, so short runs stay quiet. `bar()` is pure; `Progress` only decides when to write.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def bar(what: str, done: int, total: int, elapsed: float, width: int = 24) -> str:
    """One progress line: `[infralab] hosts [#######.........]  12/40  3.1s`."""
    total = max(total, 1)
    filled = min(width, round(width * done / total))
    return (f"[infralab] {what:<18} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:>4}/{total:<4} {elapsed:5.1f}s")


class Step:
    """One counted step: call `advance()` (or `update(n)`) as items complete, then
    `finish()` (a `with` block does it)."""

    def __init__(self, progress: Progress, what: str, total: int) -> None:
        self.progress, self.what, self.total = progress, what, total
        self.done = 0
        self.t0 = progress.now()
        self._last = self.t0
        self._shown = False
        self._finished = False
        if progress.tty:  # the bar appears at once, empty
            self._write(self.t0, final=False)

    def __enter__(self) -> Step:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        self.done = done
        p = self.progress
        if p.stream is None:
            return
        now = p.now()
        gap = 0.1 if p.tty else p.interval
        if now - self._last >= gap:  # (in a log, the first line comes `interval` in)
            self._write(now, final=False)

    def finish(self) -> None:
        p = self.progress
        if p.stream is None or self._finished:  # (a second finish() writes nothing)
            return
        self._finished = True
        if p.tty or self._shown:  # a log shows the end only of a step it showed begin
            self._write(p.now(), final=True)

    def _write(self, now: float, final: bool) -> None:
        p = self.progress
        if self.total <= 0:  # nothing to count: nothing to show
            return
        line = bar(self.what, self.done, self.total, now - self.t0)
        assert p.stream is not None  # (a silent Progress never gets here)
        if p.tty:
            p.stream.write("\r" + line + ("\n" if final else ""))
            p.showing = not final
        else:
            p.stream.write(line + "\n")
        p.stream.flush()
        self._last, self._shown = now, True


class Progress:
    """Where progress goes: `Progress()` writes to stderr (a bar on a terminal, lines
    otherwise; `lines=True` always lines, for steps whose work prints too);
    `Progress(None)` is silent."""

    def __init__(self, stream: TextIO | None = sys.stderr, *, interval: float = 2.0,
                 now: Callable[[], float] = time.monotonic, lines: bool = False) -> None:
        self.stream = stream
        self.tty = not lines and bool(stream is not None
                                      and getattr(stream, "isatty", lambda: False)())
        self.interval = interval
        self.now = now
        self.showing = False  # a bar is on the terminal's last line, without a newline

    def interrupt(self) -> None:
        """Clear a bar from the terminal's line before other output (it is redrawn at the
        next update)."""
        if self.showing and self.stream is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.showing = False

    def step(self, what: str, total: int) -> Step:
        return Step(self, what, total)


SILENT = Progress(None)
