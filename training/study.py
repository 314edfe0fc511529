"""The paper's study as one command: every method on every source set, probed layer by layer.

    python -m training.study --methods rotnet deepcluster bigan \\
        --sources one=photo.jpg ten=ten_photos/ --probe probe_set/ --out runs/study [training flags]

Each cell (method, source set, seed) is a training run in ``OUT/cells/METHOD_SOURCES_seedS/`` with the
training flags given (as ``train_example.py`` takes them), followed by the linear probes on conv1..conv5.
``OUT/study.csv`` gets a row per cell and layer (``method, sources, seed, probe_seed, layer, top1``, plus the
random-init baseline as method ``random``) and ``OUT/study.png`` the paper's figure: probe accuracy against
layer, one line per (method, sources). Run again, it skips the finished cells and resumes an interrupted one
from its checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from single_image_dataset.cli import OneLineErrorParser
from single_image_dataset.source import load_sources

from .alexnet import CONV_NAMES
from .cli import build_parser, exit_status, one_line
from .config import AUTO_RESUME, SETTINGS_ADDED, TrainConfig
from .methods import METHODS
from .train import run_training

__all__ = ["CSV_COLUMNS", "Cell", "build_study_parser", "main", "plan_cells", "write_plot"]

PROG = "python -m training.study"
#: Columns of ``OUT/study.csv``.
CSV_COLUMNS = ("method", "sources", "seed", "probe_seed", "layer", "top1")
# Flags that the study sets per cell, and the study flags that set them.
_OWN = {"method": "--methods", "imgpath": "--sources", "out": "--out", "probe": "--probe", "seed": "--seeds",
        "probe_seed": "--probe_seed", "resume": "(always on)", "probe_only": "(never)"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CELL = "cell.json"
_LINE_STYLES = ("-", ":", "-.")
_MARKERS = ("o", "s", "^", "D")


@dataclass(frozen=True)
class Cell:
    """One training run of the grid: ``method`` on the source set ``sources`` with ``seed``."""

    method: str
    sources: str
    seed: int
    config: TrainConfig

    @property
    def name(self) -> str:
        return f"{self.method} on {self.sources} (seed {self.seed})"


def build_study_parser() -> argparse.ArgumentParser:
    """The study's own flags; the others are ``train_example.py``'s and go to every cell."""
    p = OneLineErrorParser(prog=PROG, help_hint=False, allow_abbrev=False, description=__doc__.split("\n\n")[0],
                           epilog="Any other flag is a training flag of train_example.py, passed to every cell.")
    p.add_argument("--methods", nargs="+", required=True, choices=list(METHODS), help="the methods to compare")
    p.add_argument("--sources", nargs="+", required=True, metavar="NAME=PATH[,PATH...]",
                   help="source sets: a name, then an image, a comma-separated list of images, or a directory")
    p.add_argument("--probe", required=True, metavar="DIR", help="ImageFolder with train/ and val/ for the probes")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the cells, study.csv and study.png")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (a cell per seed)")
    p.add_argument("--probe_seed", type=int, default=0, help="seed of the probes and the random-init network")
    return p


def plan_cells(args: argparse.Namespace, training: dict[str, Any]) -> list[Cell]:
    """Every cell of the grid, each with its checked :class:`TrainConfig`, before anything is trained.

    Raises:
        ValueError, TypeError, FileNotFoundError: a bad ``--sources`` entry (malformed, a repeated name, a
            missing or unreadable image) or training flag; the message names it.
    """
    sources: dict[str, list[str]] = {}
    for entry in args.sources:
        name, sep, paths = entry.partition("=")
        if not sep or not _NAME.match(name) or not paths or "" in paths.split(","):
            raise ValueError(f"--sources {entry!r} should be NAME=PATH[,PATH...], NAME made of letters, digits, "
                             "'_', '.' and '-'")
        if name in sources:
            raise ValueError(f"--sources names {name!r} twice; give each source set its own name")
        sources[name] = paths.split(",")
    for name, paths in sources.items():
        try:
            TrainConfig(imgpath=paths)  # paths that exist; then the images themselves, decoded
            load_sources(paths[0] if len(paths) == 1 else paths)
        except (ValueError, TypeError, OSError) as exc:
            raise type(exc)(f"--sources {name}: {one_line(exc)}") from None
    out = Path(args.out)
    cells = []
    for seed in args.seeds:
        for name, paths in sources.items():
            for method in args.methods:
                settings = {**training, "method": method, "imgpath": paths, "probe": args.probe, "seed": seed,
                            "probe_seed": args.probe_seed, "resume": AUTO_RESUME,
                            "out": str(out / "cells" / f"{method}_{name}_seed{seed}")}
                try:
                    config = TrainConfig(**settings)
                except (ValueError, TypeError, OSError) as exc:
                    raise type(exc)(f"{method} on {name}: {one_line(exc)}") from None
                cells.append(Cell(method, name, seed, config))
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study; 2 and one stderr line for bad input, 1 for a diverged training, 130 if interrupted."""
    args, rest = build_study_parser().parse_known_args(argv)
    given = vars(build_parser(with_defaults=False, prog=PROG).parse_args(rest))
    owned = [f"--{name}" for name in given if name in _OWN]
    if owned:
        print(f"{PROG}: error: {owned[0]} is set by the study for each cell; use {_OWN[owned[0][2:]]}",
              file=sys.stderr)
        return 2
    try:
        _pyplot()
        cells = plan_cells(args, given)
        _check_finished(cells)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows: list[dict[str, Any]] = []

    def run() -> None:
        for number, cell in enumerate(cells, 1):
            rows.extend(_run_cell(cell, f"[{number}/{len(cells)}]"))
            _write_results(out, rows)

    status = exit_status(PROG, run, "interrupted; run the same command again to go on")
    if status == 0:
        print(f"wrote {out / 'study.csv'} and {out / 'study.png'}")
    return status


def _cell_record(cell: Cell) -> dict[str, Any]:
    """What identifies a cell's run: its settings, less the resume flag."""
    return {k: v for k, v in cell.config.to_dict().items() if k != "resume"}


def _read_cell(path: Path) -> dict[str, Any]:
    """A finished cell's record (its settings and probe results), checked."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(record["config"], dict) and all(
                set(record["probe"][name]) == set(CONV_NAMES) for name in ("trained", "random"))):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a cell record this study wrote; remove it to train the cell again") from None
    record["config"] = {**SETTINGS_ADDED, **record["config"]}  # a record older than a setting ran with its default
    return record


def _check_finished(cells: list[Cell]) -> None:
    """Refuse an out folder whose finished cells were trained with other settings."""
    for cell in cells:
        path = Path(cell.config.out) / _CELL
        if path.is_file():
            saved = _read_cell(path)["config"]
            mine = _cell_record(cell)
            changed = sorted(k for k in mine if saved.get(k) != mine[k])
            if changed:
                raise ValueError(
                    f"{path} was trained with {changed[0]}={saved.get(changed[0])!r}, not {mine[changed[0]]!r}; "
                    "give the study the settings it ran with, or another --out"
                )


def _run_cell(cell: Cell, number: str) -> list[dict[str, Any]]:
    """Train and probe ``cell`` unless it is finished; its CSV rows."""
    path = Path(cell.config.out) / _CELL
    if path.is_file():
        probe = _read_cell(path)["probe"]
        print(f"{number} {cell.name}: finished before, skipped ({_summary(probe['trained'])})", flush=True)
    else:
        resumed = (Path(cell.config.out) / "checkpoint.pt").is_file()
        print(f"{number} {cell.name}: {'resuming' if resumed else 'training'} ...", flush=True)
        t0 = time.perf_counter()
        probe = run_training(cell.config, echo=False)["probe"]
        path.write_text(json.dumps({"config": _cell_record(cell), "probe": probe}, indent=2) + "\n", encoding="utf-8")
        print(f"{number} {cell.name}: {_summary(probe['trained'])} in {time.perf_counter() - t0:.0f}s "
              f"(random init {_summary(probe['random'])})", flush=True)
    rows = [{"method": cell.method, "sources": cell.sources, "seed": cell.seed, "probe_seed": probe["probe_seed"],
             "layer": layer, "top1": probe["trained"][layer]} for layer in CONV_NAMES]
    rows += [{"method": "random", "sources": "", "seed": "", "probe_seed": probe["probe_seed"], "layer": layer,
              "top1": probe["random"][layer]} for layer in CONV_NAMES]
    return rows


def _summary(accuracies: dict[str, float]) -> str:
    return " ".join(f"{layer} {100 * a:.1f}" for layer, a in accuracies.items())


def _write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """``out/study.csv`` (the random-init rows once per probe seed) and ``out/study.png``, written atomically."""
    seen, unique = set(), []
    for row in rows:
        key = tuple(row[c] for c in CSV_COLUMNS[:-1])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    tmp = out / "study.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(unique)
    tmp.replace(out / "study.csv")
    write_plot(unique, out / "study.png")


def write_plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Probe top-1 against layer, one line per (method, sources) averaged over seeds (the bars span the
    seeds), the random-init network dashed: the shape of the paper's figure.

    Raises:
        ImportError: matplotlib is missing (``pip install .[training]``).
    """
    plt = _pyplot()
    lines: dict[tuple[str, str], dict[str, list[float]]] = {}
    for row in rows:
        lines.setdefault((row["method"], row["sources"]), {}).setdefault(row["layer"], []).append(100 * row["top1"])
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    x = range(len(CONV_NAMES))
    # A colour per method, a line style per source set (as the paper's figure: methods x 1 image / 10 images).
    methods = list(dict.fromkeys(m for m, _ in lines if m != "random"))
    source_sets = list(dict.fromkeys(s for m, s in lines if m != "random"))
    for (method, sources), layers in sorted(lines.items(), key=lambda item: item[0][0] == "random"):
        values = [layers[layer] for layer in CONV_NAMES]
        mean = [sum(v) / len(v) for v in values]
        spread = [[m - min(v) for m, v in zip(mean, values, strict=True)],
                  [max(v) - m for m, v in zip(mean, values, strict=True)]]
        if method == "random":
            style: dict[str, Any] = {"color": "black", "linestyle": "--", "label": "random init"}
        else:
            k = source_sets.index(sources)
            style = {"color": f"C{methods.index(method)}", "linestyle": _LINE_STYLES[k % len(_LINE_STYLES)],
                     "marker": _MARKERS[k % len(_MARKERS)], "label": f"{method}, {sources}"}
        axes.errorbar(x, mean, yerr=spread, capsize=3, **style)
    axes.set_xticks(list(x), CONV_NAMES)
    axes.set_xlabel("layer")
    axes.set_ylabel("linear probe top-1 (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(path)


def _pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only.

    Raises:
        ImportError: matplotlib is missing; the message says how to install it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ImportError("the study's plot needs matplotlib: pip install matplotlib (the training extra)") from None
    return pyplot


if __name__ == "__main__":
    sys.exit(main())
