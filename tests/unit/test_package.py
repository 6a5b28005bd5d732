"""`pip install .` (not editable) gives a working `infralab`: every package and data file
(zones, GSLB and DHCP configs, lab handouts) is in the wheel.

The wheel is built from this tree and installed, without its dependencies, into a fresh
venv that sees the project venv's third-party packages through a plain path line (so
no network is needed, and the editable install's finder is not loaded); the commands
then run from an empty directory, so nothing of the source tree can stand in for the
wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["wire", "topologies", "controllers", "services", "emulation", "infralab", "labs"]


def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "src"  # a copy: setuptools' build/ of an earlier run can't leak in
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(dist), str(src)], check=True,
                   cwd=tmp_path, capture_output=True)
    (wheel,) = dist.glob("infralab-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    empty = tmp_path / "elsewhere"
    empty.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(env_dir / "bin" / "infralab"), *args], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=120)

    where = subprocess.run([py, "-c", "import infralab, topologies, labs, wire, emulation;"
                            "print(infralab.__file__, topologies.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert str(ROOT) not in where.stdout and site in where.stdout, where.stdout
    helped = run("--help")
    assert helped.returncode == 0 and "validate" in helped.stdout, helped.stderr
    valid = run("validate", "world")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "world" in valid.stdout
    tracked = [f for f in files if f.split("/")[0] in PACKAGES and (ROOT / f).is_file()]
    missing = [f for f in tracked if not Path(site, f).is_file()]
    assert tracked and not missing, f"not in the wheel: {missing}"
    labs = run("lab", "list")
    assert labs.returncode == 0 and "nat" in labs.stdout, labs.stdout + labs.stderr
