"""Every example of README.md and of the documentation (``docs/**/*.md``) runs as written, so the docs cannot rot.

The rule, for every fenced block of those files (a test id names the file and the line of the fence):

* a ``python`` block runs as written; one made of ``>>>`` lines runs as a doctest and must print what it shows;
* every ``single-image-dataset`` command of a ``sh``/``bash`` block (a line, or a part of one joined by ``&&``)
  runs as written and exits with status 0; the other shell commands (``pip``, ``pytest``, ``mkdocs``, the
  benchmarks and the training program) are not run here;
* each runs in a fresh temporary folder that stands in for the root of a clone: it holds ``configs/`` (a link to
  the repository's) and nothing else, so whatever an example writes is its own;
* a block's language is one of :data:`LANGUAGES`, so that an example cannot escape the rule by its spelling.

Four markers, an HTML comment on the line right before the fence, change how a block is checked, and nothing
else is exempt (an unknown marker fails):

* ``<!-- needs-user-data -->``: the block needs the reader's own files (a photograph, a cluster's shared folder).
  It cannot run here, so it is checked without running: Python must compile, and every command must parse with
  the command's own parser (with the variables a Slurm array task sets, :data:`SLURM`).
* ``<!-- long-run -->``: the block runs for hours as written (the paper's 1.28 M images). It runs as written but is
  cut short: a command gets ``--num_imgs 16`` appended (the last flag wins) and must exit with status 0; a Python
  block runs in its own process for :data:`LONG_RUN_SECONDS` and must neither fail nor exit non-zero in that time.
  These tests are marked ``slow``.
* ``<!-- output -->``: the block (``text``) is what the Python block right before it prints, exactly.
* ``<!-- integration -->``: the block uses a framework of the ``integrations`` extra (:data:`INTEGRATIONS`), starts
  it, and may start processes (Lightning DDP). It runs as written in its own process and must exit with status 0
  within :data:`INTEGRATION_SECONDS`. These tests are marked ``slow``, and skipped where a framework the block
  imports is not installed.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from single_image_dataset.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
MARKERS = ("needs-user-data", "long-run", "output", "integration")
#: The frameworks of the ``integrations`` extra, whose examples are skipped where they are not installed.
INTEGRATIONS = ("lightning", "accelerate", "timm", "lightly")
INTEGRATION_SECONDS = 300
LANGUAGES = ("python", "sh", "bash", "text", "diff", "bibtex", "toml", "json")
COMMAND = "single-image-dataset"
LONG_RUN_SECONDS = 20
SHORT_RUN = ["--num_imgs", "16"]
# What a Slurm array task finds in its environment, for the commands that use it: task 0 on 2 CPUs.
SLURM = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_CPUS_PER_TASK": "2"}

# A fence may be indented (inside a list item); its code is then dedented by the fence's indentation.
_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<language>\S*)[ ]*\n(?P<code>.*?)^(?P=indent)```[ ]*\n", re.M | re.S)
_MARKER = re.compile(r"<!--\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: str
    line: int
    language: str
    code: str
    marker: str | None
    output: str | None = None  # for a Python block: the ``<!-- output -->`` block after it


def _page_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    blocks = []
    for match in _FENCE.finditer(text):
        line_before = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        marker = _MARKER.fullmatch(line_before.strip())
        block = Block(
            page=str(path.relative_to(REPO)),
            line=text.count("\n", 0, match.start()) + 1,
            language=match.group("language"),
            code=textwrap.dedent(match.group("code")),
            marker=marker.group(1) if marker else None,
        )
        if block.marker == "output" and blocks and blocks[-1].language == "python" and blocks[-1].marker is None:
            blocks[-1] = replace(blocks[-1], output=block.code)
        blocks.append(block)
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
            raise KeyError(f"the docs' command uses ${name}, which this test does not provide: {command}")
        return SLURM[name]

    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", variable, word) for word in command[1:]]


BLOCKS = [block for page in PAGES for block in _page_blocks(page)]
PYTHON = [b for b in BLOCKS if b.language == "python"]
SHELL = [(b, c) for b in BLOCKS if b.language in ("sh", "bash") for c in _commands(b.code)]


def _id(block: Block) -> str:
    return f"{block.page}:{block.line}" + (f"[{block.marker}]" if block.marker else "")


def _marks(block: Block) -> list[pytest.MarkDecorator]:
    """A long-run or integration block's tests are slow."""
    return [pytest.mark.slow] if block.marker in ("long-run", "integration") else []


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder standing in for the clone's root."""
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_pages_have_examples_of_every_kind() -> None:
    """So that a broken extraction fails instead of leaving nothing to run."""
    assert "README.md" in {b.page for b in PYTHON} and len({b.page for b in PYTHON}) >= 10
    assert len([b for b in PYTHON if b.code.lstrip().startswith(">>>")]) >= 2
    assert len([b for b in PYTHON if not b.code.lstrip().startswith(">>>")]) >= 15
    assert len(SHELL) >= 10
    assert set(MARKERS) <= {b.marker for b in BLOCKS}
    assert [b for b in PYTHON if b.output is not None]


def test_markers_are_known() -> None:
    assert [_id(b) for b in BLOCKS if b.marker not in (None, *MARKERS)] == []


def test_languages_are_known() -> None:
    assert [f"{_id(b)}: {b.language!r}" for b in BLOCKS if b.language not in LANGUAGES] == []


def test_output_blocks_follow_a_python_block() -> None:
    expected = {(b.page, b.output) for b in PYTHON if b.output is not None}
    outputs = [b for b in BLOCKS if b.marker == "output"]
    assert [_id(b) for b in outputs if b.language != "text" or (b.page, b.code) not in expected] == []


@pytest.mark.parametrize("block", [pytest.param(b, marks=_marks(b)) for b in PYTHON], ids=_id)
def test_python_block(block: Block, clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _id(block)
    if block.code.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block.code, {}, name, str(REPO / block.page), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0, f"{name}: the doctest printed something else (see above)"
    elif block.marker == "needs-user-data":
        compile(block.code, name, "exec")
    elif block.marker == "long-run":
        _run_for_a_while([sys.executable, "-c", block.code], clone, name)
    elif block.marker == "integration":
        _run_integration(block.code, clone, name)
    else:
        exec(compile(block.code, name, "exec"), {"__name__": "__main__"})
        if block.output is not None:
            assert capsys.readouterr().out == block.output, f"{name} printed something else than its output block"


@pytest.mark.parametrize(
    ("block", "command"),
    [pytest.param(b, c, marks=_marks(b)) for b, c in SHELL],
    ids=[f"{_id(b)}:{' '.join(c[1:])}" for b, c in SHELL],
)
def test_command(block: Block, command: tuple[str, ...], clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(command)
    if block.marker == "needs-user-data":
        build_parser().parse_args(argv)
        return
    if block.marker == "long-run":
        argv += SHORT_RUN
    assert main(argv) == 0, f"{shlex.join(command)} failed: {capsys.readouterr().err}"


def _run_integration(code: str, cwd: Path, name: str) -> None:
    """Run ``code`` in a process of its own, to its end; skipped where a framework it imports is missing."""
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(code))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    for module in sorted(imported & set(INTEGRATIONS)):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[integrations]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=INTEGRATION_SECONDS
    )
    assert done.returncode == 0, f"{name} exited with status {done.returncode}:\n{done.stderr[-4000:]}"


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
