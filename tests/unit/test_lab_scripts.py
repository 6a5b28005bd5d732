"""TB-LABS: each lab's walk-through script (labs/NAME.cli) is the handout's own commands,
so following the handout and running the script do the same thing."""

import re
from pathlib import Path

from infralab.labs import LABS

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"


def test_every_script_line_is_a_command_of_its_handout():
    scripts = sorted(LABS_DIR.glob("*.cli"))
    assert scripts, "no lab scripts"
    for script in scripts:
        assert script.stem in LABS, script
        handout = (LABS_DIR / f"{script.stem}.md").read_text()
        quoted = set(re.findall(r"`([^`]+)`", handout))
        lines = [ln.lstrip("-").strip() for ln in script.read_text().splitlines()
                 if ln.strip() and not ln.startswith("#")]
        missing = [ln for ln in lines if ln not in quoted]
        assert not missing, f"{script.name}: not in {script.stem}.md: {missing}"
        assert lines[-1] == f"lab check {script.stem}"  # it ends with the lab's checker
