"""TB-OBSERVE: progress output for long steps — a bar redrawn in place on a terminal,
a line every few seconds in a log, silence for a short step in a log."""

import io

from emulation.progress import Progress, bar


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_the_fraction_count_and_time():
    assert bar("hosts", 6, 24, 3.14, width=8) == \
        "[infralab] hosts              [##......]    6/24     3.1s"
    assert "[########]" in bar("x", 9, 8, 0, width=8)  # never past full
    assert "0/1" in bar("x", 0, 0, 0)  # an empty step does not divide by zero


def test_terminal_bar_is_redrawn_in_place_and_ends_with_a_newline():
    out, clock = Tty(), Clock()
    with Progress(out, now=clock).step("hosts", 3) as step:
        for _ in range(3):
            clock.t += 1
            step.advance()
    text = out.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "3/3" in text.splitlines()[-1].split("\r")[-1]


def test_log_gets_a_line_every_interval_and_nothing_for_a_short_step():
    out, clock = io.StringIO(), Clock()
    p = Progress(out, now=clock, interval=2.0)
    with p.step("quick", 5) as step:
        for _ in range(5):
            clock.t += 0.1
            step.advance()
    assert out.getvalue() == ""  # 0.5 s: nothing to say
    with p.step("slow", 10) as step:
        for _ in range(10):
            clock.t += 1.0
            step.advance()
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6 and all("slow" in line for line in lines)
    assert "10/10" in lines[-1] and "\r" not in out.getvalue()


def test_interrupt_clears_the_bar_before_other_output_and_silent_writes_nothing():
    out, clock = Tty(), Clock()
    p = Progress(out, now=clock)
    step = p.step("routers ready", 2)
    assert p.showing
    p.interrupt()
    assert out.getvalue().endswith("\r\x1b[K") and not p.showing
    step.finish()
    step.finish()  # twice: one final line
    assert out.getvalue().count("\n") == 1
    Progress(None).step("x", 1).finish()


def test_a_step_with_nothing_to_count_shows_nothing():
    out = Tty()
    with Progress(out).step("services up", 0) as step:
        step.advance(0)
    assert out.getvalue() == ""
