"""The README and docs/ as a newcomer reads them: every `infralab` command in a code block
parses with the CLI's own argument parser, every prompt line starts with a command the
prompt knows (or a host of a shipped topology), every repository path they name exists,
every YAML topology they show validates, and no shipped file names a tracker issue or a
path outside the repository."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "vm" / "README.md",
        REPO / "labs" / "README.md"]
TOP = ("topologies/", "docs/", "labs/", "bench/", "tests/", "vm/", "scripts/", "services/",
       "controllers/", "emulation/", "infralab/", "wire/", ".ci/")


def code_lines(text: str) -> list[str]:
    """The lines of fenced blocks (not yaml/python ones) and of indented blocks."""
    out, fence = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is not None:
            if fence not in ("yaml", "python"):
                out.append(line)
        elif line.startswith("    ") and line.strip():
            out.append(line.strip())
    return out


def infralab_words(line: str) -> list[str] | None:
    """The arguments of an `infralab ...` shell command on this line, if there is one."""
    line = line.strip()
    m = re.match(r"(?:\$ )?(?:sudo )?(?:\S*\.venv/bin/)?infralab (?!>)(.*)", line)
    if not m:
        return None
    try:
        words = shlex.split(m.group(1), comments=True)
    except ValueError:
        return None
    for stop in ("&&", "|", "&", ";", ">"):
        if stop in words:
            words = words[:words.index(stop)]
    return words


def parses(words: list[str]) -> str | None:
    """None if the CLI's parser takes `words`; else what it said."""
    from infralab.cli import build_parser

    if words[:1] == ["controller"]:
        return None  # (its own parser: controllers.main)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(words)
    except SystemExit as e:
        return None if e.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


def doc_commands() -> list[tuple[str, str, list[str]]]:
    out = []
    for doc in DOCS:
        for line in code_lines(doc.read_text()):
            prompt = re.match(r"infralab> (\S+)(?: (.*))?", line)
            if prompt:  # a host's command may itself be infralab's
                rest = prompt.group(2) or ""
                words = infralab_words(rest) if rest.startswith("infralab ") else None
            else:
                words = infralab_words(line)
            if words:
                out.append((doc.name, line, words))
    return out


def test_docs_every_infralab_command_in_a_code_block_parses():
    cmds = doc_commands()
    assert len(cmds) > 60, len(cmds)  # (the README and the pages have many; none skipped)
    bad = [f"{doc}: {line!r}: {why}" for doc, line, words in cmds
           if (why := parses(words)) is not None]
    assert not bad, "\n".join(bad)


def test_docs_every_prompt_line_starts_with_a_prompt_command_or_a_host():
    from infralab.mncli import InfralabCLI
    from topologies import builtin, load

    known = {n[3:] for n in dir(InfralabCLI) if n.startswith("do_")}
    for name in ("world", "duo", "natlab", "dhcplab"):
        topo = load(builtin(name))
        known |= set(topo.hosts) | set(topo.routers)
    known |= {f"h{i}" for i in range(1, 12)}  # (zoo:Abilene's hosts, in docs/routing.md)
    bad = []
    for doc in DOCS:
        for line in code_lines(doc.read_text()):
            m = re.match(r"infralab> (\S+)", line)
            if m and m.group(1).lstrip("-") not in known:
                bad.append(f"{doc.name}: {line}")
    assert not bad, "\n".join(bad)


def repo_paths(doc: Path) -> list[str]:
    """Repository paths named in `doc`: in backticks, in links, in commands."""
    text = doc.read_text()
    found = set()
    for m in re.finditer(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):  # markdown links
        target = m.group(1)
        if "://" not in target:
            found.add(str((doc.parent / target).resolve().relative_to(REPO)))
    tops = "|".join(map(re.escape, TOP))
    for m in re.finditer(r"(?<![\w/.$-])((?:" + tops + r")[\w./*{},-]*)", text):
        found.add(m.group(1).rstrip(".,:;)"))
    # (placeholders and what runs make are not repository paths)
    return sorted(p for p in found if not any(x in p for x in ("*", "/out", "RUN", "...",
                                                                "NAME", "{")))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_every_path_named_exists(doc):
    paths = repo_paths(doc)
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_docs_every_yaml_topology_shown_validates():
    from topologies import loads

    shown = 0
    for doc in DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
            if re.match(r"(#.*\n)*name: ", block):
                loads(block, source=doc.name).validate()  # (raises naming file and line)
                shown += 1
    assert shown >= 1
    sample = (REPO / "topologies" / "examples" / "mine.yaml").read_text()
    assert re.search(r"```yaml\n(name: mine\n.*?)```", (REPO / "docs" / "topologies.md")
                     .read_text(), re.S).group(1) in sample  # the shipped file is the sample


def test_no_shipped_file_names_a_tracker_issue_or_a_path_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    bad = []
    for f in files:
        path = REPO / f
        if f == "tests/unit/test_docs.py" or path.suffix in (".png", ".img", ".pcap") \
                or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"\bissues? \d+\b|\.\./shared|shared/(?:seed|FEATURES|PLATFORM)",
                         line, re.I):
                bad.append(f"{f}:{n}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)
