"""Every example of README.md runs as written, so that the README cannot rot.

The rule, for every fenced block of the README:

* a ``python`` block runs as written; one made of ``>>>`` lines runs as a doctest and must print what it shows;
* every ``single-image-dataset`` command of a ``sh``/``bash`` block (a line, or a part of one joined by ``&&``)
  runs as written and exits with status 0; the other shell commands (``pip``, ``pytest``, the benchmarks and the
  training program) are not run here;
* each runs in a fresh temporary folder that stands in for the root of a clone: it holds ``configs/`` (a link to
  the repository's) and nothing else, so whatever an example writes is its own.

Two markers, an HTML comment on the line right before the fence, change how a block is checked, and nothing
else is exempt (an unknown marker fails):

* ``<!-- needs-user-data -->``: the block needs the reader's own files (a photograph, a cluster's shared folder).
  It cannot run here, so it is checked without running: Python must compile, and every command must parse with
  the command's own parser (with the variables a Slurm array task sets, :data:`SLURM`).
* ``<!-- long-run -->``: the block runs for hours as written (the paper's 1.28 M images). It runs as written but is
  cut short: a command gets ``--num_imgs 16`` appended (the last flag wins) and must exit with status 0; a Python
  block runs in its own process for :data:`LONG_RUN_SECONDS` and must neither fail nor exit non-zero in that time.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from single_image_dataset.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MARKERS = ("needs-user-data", "long-run")
COMMAND = "single-image-dataset"
LONG_RUN_SECONDS = 20
SHORT_RUN = ["--num_imgs", "16"]
# What a Slurm array task finds in its environment, for the commands that use it: task 0 on 2 CPUs.
SLURM = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_CPUS_PER_TASK": "2"}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
_MARKER = re.compile(r"<!--\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    language: str
    code: str
    marker: str | None


def _blocks() -> list[Block]:
    text = README.read_text()
    blocks = []
    for match in _FENCE.finditer(text):
        line_before = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        marker = _MARKER.fullmatch(line_before.strip())
        blocks.append(
            Block(
                line=text.count("\n", 0, match.start()) + 1,
                language=match.group(1),
                code=match.group(2),
                marker=marker.group(1) if marker else None,
            )
        )
    return blocks


def _commands(code: str) -> list[tuple[str, ...]]:
    """The words of each ``single-image-dataset`` command of a shell block (continued lines joined)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        command: list[str] = []
        for word in [*shlex.split(line, comments=True), "&&"]:
            if word != "&&":
                command.append(word)
                continue
            if command and command[0] == COMMAND:
                commands.append(tuple(command))
            command = []
    return commands


def _argv(command: tuple[str, ...]) -> list[str]:
    """The arguments after the command's name, with ``$NAME`` and ``${NAME}`` taken from :data:`SLURM`."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in SLURM:
            raise KeyError(f"the README command uses ${name}, which this test does not provide: {command}")
        return SLURM[name]

    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", variable, word) for word in command[1:]]


BLOCKS = _blocks()
PYTHON = [b for b in BLOCKS if b.language == "python"]
SHELL = [(b, c) for b in BLOCKS if b.language in ("sh", "bash") for c in _commands(b.code)]


def _id(block: Block) -> str:
    return f"README.md:{block.line}" + (f"[{block.marker}]" if block.marker else "")


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder standing in for the clone's root."""
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_examples_of_every_kind() -> None:
    """So that a broken extraction fails instead of leaving nothing to run."""
    assert len([b for b in PYTHON if b.code.lstrip().startswith(">>>")]) >= 1
    assert len([b for b in PYTHON if not b.code.lstrip().startswith(">>>")]) >= 4
    assert len(SHELL) >= 5
    assert set(MARKERS) <= {b.marker for b in BLOCKS}


def test_markers_are_known() -> None:
    assert [_id(b) for b in BLOCKS if b.marker not in (None, *MARKERS)] == []


@pytest.mark.parametrize("block", PYTHON, ids=_id)
def test_python_block(block: Block, clone: Path) -> None:
    name = _id(block)
    if block.code.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block.code, {}, name, str(README), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0, f"{name}: the doctest printed something else (see above)"
    elif block.marker == "needs-user-data":
        compile(block.code, name, "exec")
    elif block.marker == "long-run":
        _run_for_a_while([sys.executable, "-c", block.code], clone, name)
    else:
        exec(compile(block.code, name, "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize(("block", "command"), SHELL, ids=[f"{_id(b)}:{' '.join(c[1:])}" for b, c in SHELL])
def test_command(block: Block, command: tuple[str, ...], clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(command)
    if block.marker == "needs-user-data":
        build_parser().parse_args(argv)
        return
    if block.marker == "long-run":
        argv += SHORT_RUN
    assert main(argv) == 0, f"{shlex.join(command)} failed: {capsys.readouterr().err}"


def _run_for_a_while(argv: list[str], cwd: Path, name: str) -> None:
    """Run ``argv`` for up to :data:`LONG_RUN_SECONDS`; still running then, or exited 0, passes."""
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = process.communicate(timeout=LONG_RUN_SECONDS)
    except subprocess.TimeoutExpired:
        # Its own session: the DataLoader workers it started end with it.
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        assert b"Traceback" not in err, f"{name} failed while running:\n{err.decode()}"
        return
    assert process.returncode == 0, f"{name} exited with status {process.returncode}:\n{err.decode()}"
