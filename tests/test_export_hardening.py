"""materialize() in a busy or hostile target: concurrent runs, planted symlinks, foreign files, broken files,
full disks, signals and huge num_imgs."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import PROG, assert_one_line_error, wait_for
from PIL import Image

from single_image_dataset import SingleImageDataset, export
from single_image_dataset._files import Dir
from single_image_dataset.cli import main
from single_image_dataset.export import lock, materialize
from single_image_dataset.export.target import Missing
from single_image_dataset.preview import save_preview

pytestmark = [
    pytest.mark.filterwarnings("error"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, FIFOs and flock"),
]

QUIET = {"progress": False}
SMALL = ["--num_imgs", "8", "--img_size", "16", "--format", "png", "--threads", "1"]


def _dataset(num_imgs: int = 8, img_size: int = 16, **overrides) -> SingleImageDataset:
    return SingleImageDataset(num_imgs=num_imgs, img_size=img_size, **overrides)


def _folder(root: Path) -> Path:
    return root / "train" / "dummy"


def _images(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(_folder(root)) if not name.startswith("."))


def _hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if p.name != ".lock")


def _assert_export(root: Path, ds: SingleImageDataset) -> None:
    """The manifest describes ``ds`` and the folder holds exactly its samples, pixel for pixel."""
    manifest = json.loads((root / "manifest.json").read_text())["dataset"]
    assert (manifest["seed"], manifest["num_imgs"]) == (ds.config.seed, len(ds))
    assert _images(root) == [export.image_name(i, len(ds), "png") for i in range(len(ds))]
    for i, name in enumerate(_images(root)):
        path = _folder(root) / name
        assert not path.is_symlink()
        with Image.open(path) as img:
            np.testing.assert_array_equal(np.asarray(img), np.asarray(ds[i][0]), err_msg=name)


def _snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``root`` but the lock: its kind and content (a link's target), to see that nothing changed."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.name == ".lock":
            continue
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = ("link", os.readlink(path))
        elif path.is_file():
            out[key] = ("file", path.read_bytes())
        elif path.is_dir():
            out[key] = ("dir", "")
    return out


def _record(root: Path, name: str = "0-of-1.json") -> dict:
    return json.loads((root / "shards" / name).read_text())


class _Gate:
    """Holds every export thread inside its first write until ``open()``: runs that got past their checks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.entered = []
        self.write = write = export._Writer.write

        def gated(writer, indices):
            self.entered.append(threading.get_ident())
            if not self.opened.wait(30):
                raise TimeoutError("the gate was never opened")
            return write(writer, indices)

        monkeypatch.setattr(export._Writer, "write", gated)

    def open(self) -> None:
        self.opened.set()


def _start(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Run ``fn`` in a thread; the returned dict gets ``"result"`` or ``"error"``."""
    outcome: dict = {}

    def body():
        try:
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # reported to the test through outcome
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


IN_USE = r"is in use by another export \(pid {pid} on .+, shard 0/1, since .+\) of a different dataset"


class TestConcurrency:
    def test_conflicting_exports_started_together(self, tmp_path, monkeypatch):
        gate = _Gate(monkeypatch)
        barrier = threading.Barrier(2)
        datasets = [_dataset(seed=0), _dataset(seed=1)]

        def export_after_barrier(ds):
            barrier.wait()
            return materialize(ds, tmp_path, image_format="png", chunk_size=4, **QUIET)

        runs = [_start(export_after_barrier, ds) for ds in datasets]
        wait_for(lambda: sum("error" in outcome for _, outcome in runs) == 1)
        gate.open()
        for thread, _ in runs:
            thread.join(30)
        [winner] = [k for k, (_, outcome) in enumerate(runs) if "result" in outcome]
        error = runs[1 - winner][1]["error"]
        assert isinstance(error, BlockingIOError) and len(set(gate.entered)) == 1
        assert re.search(IN_USE.format(pid=os.getpid()) + r" \(seed \d there, \d now\); wait for it", str(error))
        _assert_export(tmp_path, datasets[winner])

    def test_overwrite_is_not_refused_for_a_run_on_its_way_out(self, tmp_path):
        # A run of another dataset without --overwrite holds the lock for an instant before it is
        # refused; an --overwrite started with it must look again rather than be refused too.
        materialize(_dataset(seed=2), tmp_path, image_format="png", **QUIET)
        fd = os.open(tmp_path / ".lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        thread, outcome = _start(materialize, _dataset(seed=1), tmp_path, image_format="png", overwrite=True, **QUIET)
        time.sleep(0.3)  # the overwrite finds the lock taken and waits for a shared one
        os.close(fd)
        thread.join(30)
        assert outcome["result"].written == 8
        _assert_export(tmp_path, _dataset(seed=1))

    @pytest.mark.parametrize("changes", [{"seed": 1}, {"num_imgs": 9}, {"backend": "reference"}])
    def test_overwrite_or_other_dataset_while_one_writes_is_refused(self, tmp_path, monkeypatch, changes):
        gate = _Gate(monkeypatch)
        ds = _dataset()
        thread, outcome = _start(materialize, ds, tmp_path, image_format="png", shard=(0, 2), **QUIET)
        wait_for(lambda: gate.entered)
        other = _dataset(**{"num_imgs": 8, **changes})
        for kwargs in ({"shard": (1, 2)}, {"overwrite": True}):
            with pytest.raises(BlockingIOError, match=r"is in use by another export \(pid \d+ .*shard 0/2.*\) of a "):
                materialize(other, tmp_path, image_format="png", **kwargs, **QUIET)
        gate.open()
        thread.join(30)
        assert outcome["result"].written == 4
        materialize(ds, tmp_path, image_format="png", shard=(1, 2), **QUIET)
        _assert_export(tmp_path, ds)

    def test_same_dataset_shards_and_repeats_write_together(self, tmp_path, monkeypatch):
        gate = _Gate(monkeypatch)
        ds = _dataset(num_imgs=12)
        shards = [(0, 3), (1, 3), (2, 3), (1, 3)]  # the last one twice: two machines given the same task
        runs = [_start(materialize, ds, tmp_path, image_format="png", shard=s, **QUIET) for s in shards]
        wait_for(lambda: len(gate.entered) == len(shards))  # all four are past their checks at once
        gate.open()
        for thread, _ in runs:
            thread.join(30)
        assert [sorted(outcome) for _, outcome in runs] == [["result"]] * 4
        _assert_export(tmp_path, ds)
        assert sorted(os.listdir(tmp_path / "shards")) == ["0-of-3.json", "1-of-3.json", "2-of-3.json"]
        assert _hidden(tmp_path) == []

    def test_a_crashed_holder_never_blocks(self, tmp_path, monkeypatch):
        # Another process holds the lock exclusively, its record written by anyone (control characters).
        record = json.dumps({"pid": 4242, "host": "evil\x1b[2J\nhost", "shard": "0/1", "since": "then"})
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl, os, sys, time\n"
             f"fd = os.open({str(tmp_path / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
             f"fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, {record.encode()!r})\n"
             "print('locked', flush=True)\ntime.sleep(120)\n"],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout.readline() == "locked\n"
            monkeypatch.setattr(lock, "WAIT_SECONDS", 0.3)
            message = r"another export \(pid 4242 on evil\?\[2J host, shard 0/1, since then\) for more than 0\.3 s"
            with pytest.raises(BlockingIOError, match=message):
                materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        finally:
            holder.kill()
            holder.communicate()
        materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        _assert_export(tmp_path, _dataset())

    def test_lock_is_held_for_the_whole_run(self, tmp_path, monkeypatch):
        gate = _Gate(monkeypatch)
        thread, _ = _start(materialize, _dataset(), tmp_path, image_format="png", **QUIET)
        wait_for(lambda: gate.entered)
        fd = os.open(tmp_path / ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: another run of the dataset may join
            record = json.loads(os.pread(fd, 4096, 0))
            assert (record["pid"], record["shard"]) == (os.getpid(), "0/1")
        finally:
            os.close(fd)
            gate.open()
            thread.join(30)
        fd = os.open(tmp_path / ".lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at the end
        os.close(fd)


def _tamper(lock_path: Path, how: str) -> None:
    """Delete, replace or rename the lock file, as a user cleaning up or a script could."""
    if how == "deleted":
        lock_path.unlink()
    elif how == "replaced":
        (lock_path.parent / "new-lock").write_bytes(b"")
        os.replace(lock_path.parent / "new-lock", lock_path)
    else:
        lock_path.rename(lock_path.parent / ".lock.old")


def _without_folder_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """flock refuses folders as NFS does (an exclusive lock needs a file opened for writing)."""
    flock = fcntl.flock

    def files_only(fd, operation):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EBADF, "Bad file descriptor")
        return flock(fd, operation)

    monkeypatch.setattr(lock.fcntl, "flock", files_only)


class TestLockReplaced:
    @pytest.mark.parametrize("how", ["deleted", "replaced", "renamed"])
    def test_a_conflicting_run_is_refused_and_the_holder_stops(self, tmp_path, monkeypatch, how):
        gate = _Gate(monkeypatch)
        first = _dataset(seed=0)
        thread, outcome = _start(materialize, first, tmp_path, image_format="png", chunk_size=2, **QUIET)
        wait_for(lambda: gate.entered)
        _tamper(tmp_path / ".lock", how)
        # The folder itself is locked too, so the new lock file lets no one in.
        for kwargs in ({"overwrite": True}, {}):
            with pytest.raises(BlockingIOError, match=r"is in use by another export \(.*\) of a different dataset"):
                materialize(_dataset(seed=2), tmp_path, image_format="png", **kwargs, **QUIET)
        gate.open()
        thread.join(30)
        # The holder stops before its next file: another host's run (NFS, no folder locks) could not see it.
        error = outcome["error"]
        assert isinstance(error, lock.LockLost) and _images(tmp_path) == []
        assert re.search(r"\.lock is no longer the lock file this export holds \(it was deleted, replaced or "
                         r"renamed\), so another export may be writing into .*; stopped before the next file; when no "
                         r"other export runs there, run again to resume$", str(error))
        # A run that lost its lock may no longer own the target: it writes no record (it stays "running").
        assert (_record(tmp_path)["status"], _record(tmp_path)["written"]) == ("running", 0)
        assert materialize(first, tmp_path, image_format="png", **QUIET).written == 8
        _assert_export(tmp_path, first)

    @pytest.mark.parametrize("how", ["deleted", "replaced", "renamed"])
    def test_without_folder_locks_the_holder_stops_and_the_target_is_the_new_runs(self, tmp_path, monkeypatch, how):
        _without_folder_locks(monkeypatch)
        gate = _Gate(monkeypatch)
        thread, outcome = _start(materialize, _dataset(seed=0), tmp_path, image_format="png", **QUIET)
        wait_for(lambda: gate.entered)
        _tamper(tmp_path / ".lock", how)
        monkeypatch.setattr(export._Writer, "write", gate.write)  # the new run is not held at the gate
        later = materialize(_dataset(seed=2), tmp_path, image_format="png", overwrite=True, **QUIET)
        assert later.written == 8
        gate.open()
        thread.join(30)
        assert isinstance(outcome["error"], lock.LockLost)
        _assert_export(tmp_path, _dataset(seed=2))  # one consistent dataset: no file of seed 0
        assert (_record(tmp_path)["status"], _record(tmp_path)["written"]) == ("complete", 8)  # not overwritten
        assert _hidden(tmp_path) == [".lock.old"] if how == "renamed" else _hidden(tmp_path) == []

    def test_a_lock_file_replaced_while_a_run_starts_is_refused(self, tmp_path, monkeypatch):
        try_exclusive = lock.TargetLock.try_exclusive

        def replaced_first(self):
            _tamper(tmp_path / ".lock", "replaced")
            return try_exclusive(self)

        monkeypatch.setattr(lock.TargetLock, "try_exclusive", replaced_first)
        with pytest.raises(lock.LockLost, match=r"\.lock is no longer the lock file this export holds"):
            materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        assert os.listdir(tmp_path) == [".lock"]  # refused before anything else was created

    def test_the_witness_pickles_for_spawned_workers(self, tmp_path):
        with Dir.open(tmp_path) as root, lock.TargetLock(root) as held:
            witness = pickle.loads(pickle.dumps(held.witness))
            witness.check()
            _tamper(tmp_path / ".lock", "replaced")
            with pytest.raises(lock.LockLost, match=r"is no longer the lock file"):
                witness.check()
            witness.root.close()

    @pytest.mark.parametrize("threads", ["1", "2"])  # the check runs in the worker processes too
    def test_the_cli_reports_a_lost_lock_in_one_line(self, tmp_path, monkeypatch, capsys, threads):
        write = export._Writer.write

        def lock_deleted_first(writer, indices):
            (tmp_path / ".lock").unlink(missing_ok=True)
            return write(writer, indices)

        monkeypatch.setattr(export._Writer, "write", lock_deleted_first)
        argv = [*SMALL, "--batch_size", "2", "--threads", threads, "--materialize", "--targetpath", str(tmp_path)]
        assert main(argv) == 1
        plan, err = capsys.readouterr().err.split("\n", 1)
        assert plan.startswith("materialize: writing 8 images")
        assert_one_line_error(err, r"\.lock is no longer the lock file this export holds")
        assert _images(tmp_path) == [] and _hidden(tmp_path) == []


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the target with a file whose content and mtime must never change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.png").write_bytes(b"keep")
    os.utime(folder / "secret.png", ns=(10**18, 10**18))
    return folder


def _assert_untouched(outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["secret.png"]
    assert (outside / "secret.png").read_bytes() == b"keep"
    assert (outside / "secret.png").stat().st_mtime_ns == 10**18


def _no_link_at_final_names(root: Path) -> None:
    finals = [root / "manifest.json", root / "preview.png", *(root / "shards").glob("*.json")]
    finals += [_folder(root) / name for name in _images(root)]
    assert [str(p) for p in finals if p.is_symlink()] == []


class TestSymlinks:
    # Every name the export and the preview create, with a link planted there: to a file or a folder
    # outside, or dangling. Links inside the target are refused or replaced, never written through.
    PLANTED = [
        (".lock", "file", r"\.lock is a symbolic link"),
        ("manifest.json", "file", r"manifest\.json is a symbolic link"),
        ("train", "dir", r"/train is a symbolic link"),
        ("train/dummy", "dir", r"train/dummy is a symbolic link"),
        ("shards", "dir", r"/shards is a symbolic link"),
        ("train/dummy/patch_0.png", "file", r"patch_0\.png is a symbolic link"),
        ("train/dummy/patch_7.png", "dangling", r"patch_7\.png is a symbolic link"),
        ("shards/0-of-1.json", "file", None),
        ("preview.png", "file", None),
        ("preview.png", "dangling", None),
        ("train/dummy/.patch_0.png.{pid}.tmp", "file", None),
        ("train/dummy/.patch_3.png.000000000000.000000000000.tmp", "dangling", None),
        (".manifest.json.{pid}.tmp", "file", None),
        ("shards/.0-of-1.json.{pid}.tmp", "file", None),
        (".preview.png.{pid}.tmp", "file", None),
    ]

    @pytest.mark.parametrize(("name", "kind", "refusal"), PLANTED)
    def test_planted_link(self, tmp_path, outside, name, kind, refusal):
        root = tmp_path / "target"
        link = root / name.format(pid=os.getpid())
        if name.startswith("train/dummy/patch_"):  # a resume finds it
            materialize(_dataset(), root, image_format="png", **QUIET)
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to({"file": outside / "secret.png", "dir": outside, "dangling": outside / "gone"}[kind])
        ds = _dataset()
        if refusal is None:
            materialize(ds, root, image_format="png", **QUIET)
            save_preview(ds, root / "preview.png")
            _assert_export(root, ds)
            _no_link_at_final_names(root)
        else:
            with pytest.raises((OSError, ValueError), match=refusal):
                materialize(ds, root, image_format="png", **QUIET)
            assert link.is_symlink()
        _assert_untouched(outside)

    @pytest.mark.parametrize("name", ["train", "train/dummy", "shards"])
    def test_a_file_where_a_folder_belongs(self, tmp_path, name):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
        with pytest.raises(NotADirectoryError, match=rf"/{re.escape(name)} is not a directory; remove it"):
            materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        assert path.read_text() == "mine"

    def test_a_folder_reopened_in_a_spawned_worker_refuses_a_swapped_link(self, tmp_path, outside):
        with Dir.open(tmp_path, create=True) as root, root.sub("train", create=True) as train:
            folder = train.sub("dummy", create=True)
        state = pickle.dumps(folder)
        folder.close()
        pickle.loads(state).close()
        (tmp_path / "train").rename(tmp_path / "elsewhere")
        (tmp_path / "train").symlink_to(outside)
        with pytest.raises(OSError, match=r"/train is a symbolic link"):
            pickle.loads(state)
        _assert_untouched(outside)

    def test_hard_link_at_the_lock_is_refused(self, tmp_path, outside):
        root = tmp_path / "target"
        root.mkdir()
        os.link(outside / "secret.png", root / ".lock")
        with pytest.raises(OSError, match=r"\.lock has other hard links"):
            materialize(_dataset(), root, image_format="png", **QUIET)
        assert (outside / "secret.png").read_bytes() == b"keep"

    @pytest.mark.parametrize("name", [".lock", "train/dummy/patch_2.png", "manifest.json"])
    def test_fifo_is_refused_without_blocking(self, tmp_path, name):
        materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        path = tmp_path / name
        path.unlink()
        os.mkfifo(path)
        start = time.monotonic()
        with pytest.raises((OSError, ValueError), match=rf"{re.escape(name)} is not a regular file"):
            materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        assert time.monotonic() - start < 10

    def test_cli_refuses_with_one_line(self, tmp_path, outside, capsys):
        (tmp_path / "target").mkdir()
        (tmp_path / "target" / "train").symlink_to(outside)
        code = main([*SMALL, "--materialize", "--targetpath", str(tmp_path / "target")])
        assert code == 1
        err = capsys.readouterr().err
        assert_one_line_error(err, r"target/train is a symbolic link, which the export never writes")
        _assert_untouched(outside)


class TestOverwrite:
    """--overwrite deletes exactly what the old manifest says the old export wrote."""

    FOREIGN = [
        ("train/dummy/patch_3.jpg", "file"),  # another width and format
        ("train/dummy/patch_012.png", "file"),  # another width
        ("train/dummy/patch_12.png", "file"),  # the old layout, past the old num_imgs
        ("train/dummy/notes.txt", "file"),
        ("train/dummy/.hidden", "file"),
        ("train/dummy/.patch_03.jpg.1234.tmp", "file"),  # a temporary name of another layout
        ("train/dummy/sub", "dir"),
        ("train/dummy/patch_05.png", "link"),  # the old layout, but the export never writes a link
        ("shards/notes.txt", "file"),
        ("shards/0-of-1.json.bak", "file"),
        ("shards/sub", "dir"),
    ]

    def _old_export(self, root: Path) -> None:
        materialize(_dataset(num_imgs=12), root, image_format="png", **QUIET)
        materialize(_dataset(num_imgs=12), root, image_format="png", shard=(1, 3), **QUIET)

    @pytest.mark.parametrize(("name", "kind"), FOREIGN)
    def test_foreign_file_in_the_way_is_refused(self, tmp_path, outside, name, kind):
        root = tmp_path / "target"
        self._old_export(root)
        path = root / name
        if kind == "dir":
            path.mkdir()
        elif kind == "link":
            path.unlink()
            path.symlink_to(outside / "secret.png")
        else:
            path.write_bytes(b"not the export's")
        before = _snapshot(root)
        with pytest.raises(FileExistsError, match=rf"holds '{re.escape(path.name)}', which this library did not "):
            materialize(_dataset(num_imgs=5), root, image_format="jpg", overwrite=True, **QUIET)
        assert _snapshot(root) == before
        _assert_untouched(outside)

    def test_files_beside_the_export_survive(self, tmp_path):
        self._old_export(tmp_path)
        keep = {"notes.txt": b"mine", "train/readme.txt": b"mine too", "preview.png": b"a preview"}
        for name, data in keep.items():
            (tmp_path / name).write_bytes(data)
        (tmp_path / ".manifest.json.1234.tmp").write_text("{")  # a killed run's leftover: the export's
        materialize(_dataset(num_imgs=5), tmp_path, image_format="png", overwrite=True, **QUIET)
        _assert_export(tmp_path, _dataset(num_imgs=5))
        assert {name: (tmp_path / name).read_bytes() for name in keep} == keep
        assert os.listdir(tmp_path / "shards") == ["0-of-1.json"] and _hidden(tmp_path) == []

    @pytest.mark.parametrize("layout", ["train/dummy/img_{index}.png", "{index.__class__}", None])
    def test_manifest_that_does_not_say_what_was_written(self, tmp_path, layout):
        self._old_export(tmp_path)
        path = tmp_path / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["dataset"]["layout"] = layout
        path.write_text(json.dumps(manifest))
        before = _snapshot(tmp_path)
        with pytest.raises(FileExistsError, match=r"cannot tell which files the export in .* wrote"):
            materialize(_dataset(num_imgs=5), tmp_path, image_format="png", overwrite=True, **QUIET)
        assert _snapshot(tmp_path) == before

    @pytest.mark.parametrize("foreign", ["patch_007.jpg", "patch_7.png", "cat.jpg"])
    def test_original_output_with_foreign_files(self, tmp_path, foreign):
        # Without a manifest only the original script's names (patch_<n>.jpg, unpadded) may be deleted.
        _folder(tmp_path).mkdir(parents=True)
        for name in ("patch_32.jpg", "patch_33.jpg", foreign):
            Image.new("RGB", (16, 16)).save(_folder(tmp_path) / name, format="JPEG")
        before = _snapshot(tmp_path)
        with pytest.raises(FileExistsError, match=rf"holds '{re.escape(foreign)}', which this library did not"):
            materialize(_dataset(num_imgs=4), tmp_path, image_format="png", overwrite=True, **QUIET)
        assert _snapshot(tmp_path) == before
        (_folder(tmp_path) / foreign).unlink()
        materialize(_dataset(num_imgs=4), tmp_path, image_format="png", overwrite=True, **QUIET)
        _assert_export(tmp_path, _dataset(num_imgs=4))


def _png(ds: SingleImageDataset, i: int) -> bytes:
    buffer = io.BytesIO()
    ds[i][0].save(buffer, format="PNG")
    return buffer.getvalue()


class TestResume:
    """What a resume counts as written: a regular file with the format's header and trailer (decoded with verify)."""

    BROKEN = {
        "truncated": lambda data: data[: len(data) // 2],
        "zero bytes": lambda data: b"",
        "header only": lambda data: data[:8],
        "no IEND": lambda data: data[:-12],
        "a JPEG": lambda data: b"\xff\xd8\xff\xe0" + data[4:-2] + b"\xff\xd9",
        "text": lambda data: b"not an image at all",
        "trailing garbage": lambda data: data + b"\x00",
    }

    @pytest.mark.parametrize("how", list(BROKEN))
    def test_broken_file_is_written_again(self, tmp_path, how):
        ds = _dataset(num_imgs=10)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        path = _folder(tmp_path) / "patch_4.png"
        path.write_bytes(self.BROKEN[how](path.read_bytes()))
        result = materialize(ds, tmp_path, image_format="png", **QUIET)
        assert (result.written, result.skipped) == (1, 9)
        _assert_export(tmp_path, ds)

    def test_truncated_jpeg_is_written_again(self, tmp_path):
        ds = _dataset(num_imgs=4)
        materialize(ds, tmp_path, **QUIET)
        path = _folder(tmp_path) / "patch_2.jpg"
        whole = path.read_bytes()
        path.write_bytes(whole[:-100])
        assert materialize(ds, tmp_path, **QUIET).written == 1
        assert path.read_bytes() == whole

    def test_verify_decodes(self, tmp_path, capsys):
        ds = _dataset(num_imgs=6)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        path = _folder(tmp_path) / "patch_3.png"
        data = bytearray(path.read_bytes())
        data[100:120] = bytes(20)  # header and trailer intact, the compressed pixels broken
        path.write_bytes(bytes(data))
        assert materialize(ds, tmp_path, image_format="png", **QUIET).written == 0  # the cheap check passes it
        argv = [*SMALL, "--num_imgs", "6", "--materialize", "--verify", "--targetpath", str(tmp_path)]
        assert main(argv) == 0
        assert "wrote 1 images (5 already there)" in capsys.readouterr().out
        _assert_export(tmp_path, ds)
        assert materialize(ds, tmp_path, image_format="png", verify=True, **QUIET).written == 0

    @pytest.mark.parametrize("kind", ["link to an image", "dangling link", "folder"])
    def test_odd_entry_at_a_final_name_is_refused(self, tmp_path, outside, kind):
        ds = _dataset(num_imgs=6)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        path = _folder(tmp_path) / "patch_5.png"
        path.unlink()
        if kind == "folder":
            path.mkdir()
        else:
            (outside / "secret.png").write_bytes(_png(ds, 5))
            os.utime(outside / "secret.png", ns=(10**18, 10**18))
            path.symlink_to(outside / ("secret.png" if kind == "link to an image" else "gone"))
        expected = "is not a regular file" if kind == "folder" else "is a symbolic link, which the export never"
        with pytest.raises(OSError, match=rf"patch_5\.png {expected}"):
            materialize(ds, tmp_path, image_format="png", **QUIET)
        assert path.is_symlink() or path.is_dir()
        assert not (outside / "gone").exists() and (outside / "secret.png").stat().st_mtime_ns == 10**18


def _enospc_for(monkeypatch: pytest.MonkeyPatch, fragment: str) -> None:
    """Make writes to files whose path contains ``fragment`` fail as on a full disk."""
    write = os.write

    def full(fd, data):
        if fragment in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(fd, data)

    monkeypatch.setattr(os, "write", full)


class TestFullDisk:
    def test_manifest(self, tmp_path, monkeypatch):
        _enospc_for(monkeypatch, "/.manifest.json.")
        with pytest.raises(OSError, match=r"writing .*/manifest\.json failed: No space left on device") as info:
            materialize(_dataset(), tmp_path, image_format="png", **QUIET)
        assert info.value.errno == errno.ENOSPC and sorted(os.listdir(tmp_path)) == [".lock", "shards", "train"]
        assert _hidden(tmp_path) == [] and _images(tmp_path) == []

    def test_shard_record_of_a_complete_export(self, tmp_path, monkeypatch):
        ds = _dataset()
        materialize(ds, tmp_path, image_format="png", **QUIET)
        record = (tmp_path / "shards" / "0-of-1.json").read_bytes()
        _enospc_for(monkeypatch, "/shards/.0-of-1.json.")
        for _ in range(2):
            with pytest.raises(OSError, match=r"writing .*/shards/0-of-1\.json failed: No space left on device"):
                materialize(ds, tmp_path, image_format="png", **QUIET)
        assert _hidden(tmp_path) == [] and (tmp_path / "shards" / "0-of-1.json").read_bytes() == record

    def test_image(self, tmp_path, monkeypatch):
        _enospc_for(monkeypatch, "/.patch_5.png.")
        with pytest.raises(OSError, match=r"writing .*/patch_5\.png failed: No space left on device"):
            materialize(_dataset(), tmp_path, image_format="png", chunk_size=2, **QUIET)
        assert _images(tmp_path) == [f"patch_{i}.png" for i in range(5)] and _hidden(tmp_path) == []
        assert re.fullmatch(r"failed: writing .*/patch_5\.png failed: No space left on device",
                            _record(tmp_path)["status"])
        monkeypatch.undo()
        assert materialize(_dataset(), tmp_path, image_format="png", **QUIET).written == 3

    def test_preview_keeps_the_old_one(self, tmp_path, monkeypatch):
        path = save_preview(_dataset(), tmp_path / "preview.png")
        old = path.read_bytes()
        _enospc_for(monkeypatch, "/.preview.png.")
        with pytest.raises(OSError, match=r"writing .*/preview\.png failed: No space left on device"):
            save_preview(_dataset(seed=1), path)
        assert path.read_bytes() == old and _hidden(tmp_path) == []

    @pytest.mark.parametrize(
        ("argv", "fragment", "message"),
        [
            (["--materialize"], "/.manifest.json.", r"writing .*/manifest\.json failed: No space left on device$"),
            (["--materialize"], "/.patch_", r"writing .*/patch_0\.png failed: No space left on device$"),
            ([], "/.preview.png.", r"writing .*/preview\.png failed: No space left on device$"),
        ],
    )
    def test_cli_says_where_in_one_line(self, tmp_path, monkeypatch, capsys, argv, fragment, message):
        _enospc_for(monkeypatch, fragment)
        assert main([*SMALL, *argv, "--targetpath", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        if fragment == "/.patch_":  # the export had started: its plan line came first
            plan, err = err.split("\n", 1)
            assert plan.startswith("materialize: writing 8 images with 1 process: ")
        assert_one_line_error(err, message)
        assert _hidden(tmp_path) == []


class TestShardStatus:
    @pytest.mark.parametrize(
        ("raised", "status"),
        [
            (KeyboardInterrupt(), "interrupted"),
            (export.Terminated(), "terminated"),
            (OSError(errno.EIO, "Input/output error"), "failed: Input/output error"),
            (RuntimeError("render\nfailed"), "failed: render failed"),
        ],
    )
    def test_record_says_how_the_run_stopped(self, tmp_path, monkeypatch, raised, status):
        write = export._Writer.write

        def stop_at_second_chunk(writer, indices):
            if indices[0] > 0:
                raise raised
            return write(writer, indices)

        monkeypatch.setattr(export._Writer, "write", stop_at_second_chunk)
        with pytest.raises(type(raised)):
            materialize(_dataset(), tmp_path, image_format="png", chunk_size=4, **QUIET)
        record = _record(tmp_path)
        assert re.fullmatch(status, record["status"]) and "finished" in record and record["pid"] == os.getpid()


class TestAnotherProcess:
    @pytest.mark.slow
    def test_refused_while_a_cli_process_writes_then_sigterm(self, tmp_path, capsys):
        # A real second process: held in its first writes (its two workers) until the test lets it go.
        out, release = tmp_path / "out", tmp_path / "release"
        driver = (
            "import os, sys, time\n"
            "from single_image_dataset import export\n"
            "from single_image_dataset.cli import main\n"
            "write = export._Writer.write\n"
            "def gated(self, indices):\n"
            f"    while not os.path.exists({str(release)!r}):\n"
            "        time.sleep(0.01)\n"
            "    return write(self, indices)\n"
            "export._Writer.write = gated\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        argv = [*SMALL, "--materialize", "--targetpath", str(out)]
        proc = subprocess.Popen([sys.executable, "-c", driver, *argv, "--threads", "2", "--batch_size", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: (out / "shards" / "0-of-1.json").exists() or proc.poll() is not None, timeout=120)
            for extra in (["--seed", "1"], ["--seed", "1", "--overwrite"], ["--num_imgs", "9"]):
                assert main([*argv, *extra]) == 1
                assert_one_line_error(capsys.readouterr().err, IN_USE.format(pid=proc.pid))
            assert _record(out)["status"] == "running"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            release.touch()
            proc.kill()
        assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err
        assert err.splitlines()[-1] == f"{PROG}: terminated; run the same command again to resume"
        assert _record(out)["status"] == "terminated" and _hidden(out) == [] and _images(out) == []
        assert main(argv) == 0  # the lock died with the process
        _assert_export(out, _dataset())


class TestBoundedMemory:
    def test_missing_equals_the_range_minus_the_present(self):
        rng = np.random.default_rng(0)
        for start, size in ((0, 0), (0, 50), (7, 50), (1000, 300)):
            indices = range(start, start + size)
            present = np.sort(rng.choice(np.arange(start, start + size), size=size // 3, replace=False))
            expected = [i for i in indices if i not in set(present.tolist())]
            missing = Missing(indices, present)
            assert len(missing) == len(expected) and list(missing) == expected
            assert missing[3:11] == expected[3:11] and missing[::7] == expected[::7]
            if expected:
                assert (missing[0], missing[-1]) == (expected[0], expected[-1])
            with pytest.raises(IndexError):
                missing[len(expected)]

    def test_a_billion_images_start_in_bounded_memory(self, tmp_path, monkeypatch):
        ds = _dataset(num_imgs=10**9)
        monkeypatch.setattr(export, "_disk_free", lambda folder: (10**15, None))
        materialize(ds, tmp_path, image_format="png", shard=(0, 10**7), **QUIET)  # indices 0-99
        (_folder(tmp_path) / "patch_000000050.png").unlink()
        write = export._Writer.write

        class Stop(Exception):
            pass

        def stop_past_index_128(writer, indices):
            if indices[0] > 128:
                raise Stop
            return write(writer, indices)

        monkeypatch.setattr(export._Writer, "write", stop_past_index_128)
        for _ in range(2):  # writes 50 and 100-130, then stops; then resumes at 131 and stops at once
            tracemalloc.start()
            try:
                with pytest.raises(Stop):
                    materialize(ds, tmp_path, image_format="png", **QUIET)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB"
        assert _images(tmp_path) == [export.image_name(i, 10**9, "png") for i in range(131)]
