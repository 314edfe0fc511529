"""The single-image-dataset command: flags, precedence, modes, one-line errors, interrupted exports.

Most tests call ``main([...])`` in-process; the few that need a real process (exit status of the
console script, ``python -m``, signals) run it as a subprocess.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PROG, assert_one_line_error, wait_for
from PIL import Image
from torchvision.datasets import ImageFolder

from single_image_dataset import DEFAULT_IMAGE, AugmentConfig, SingleImageDataset, available_backends, export
from single_image_dataset.cli import build_parser, main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.filterwarnings("error")

SCRIPT = Path(sys.executable).parent / PROG
ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--num_imgs", "8", "--img_size", "32"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _printed_config(out: str) -> dict:
    toml = out.split("\nsource: ")[0]
    return tomllib.loads(toml)


def _folder(target: Path) -> Path:
    return target / "train" / "dummy"


def _assert_export(target: Path, ds: SingleImageDataset) -> None:
    """Exactly len(ds) files, no temp files, each decodes completely and equals ds[i]."""
    assert sorted(os.listdir(_folder(target))) == [export.image_name(i, len(ds), "png") for i in range(len(ds))]
    folder = ImageFolder(str(target / "train"))
    assert len(folder) == len(ds)
    for i in range(len(ds)):
        img, label = folder[i]
        assert label == 0
        np.testing.assert_array_equal(np.asarray(img), np.asarray(ds[i][0]), err_msg=f"sample {i}")


class TestAcceptance:
    @pytest.mark.slow
    def test_console_script_materializes_300_png_equal_to_the_dataset(self, tmp_path):
        # Acceptance 1, the exact command of the issue.
        proc = subprocess.run(
            [str(SCRIPT), "--materialize", "--num_imgs", "300", "--img_size", "64", "--format", "png"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "materialize: 300/300 (100%)" in proc.stderr
        assert len(os.listdir(_folder(tmp_path / "out"))) == 300
        _assert_export(tmp_path / "out", SingleImageDataset(num_imgs=300, img_size=64))


def _live_processes(group: int) -> list[str]:
    """Processes of a process group that are still running (zombies awaiting a reaper excluded)."""
    live = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state not in ("Z", "X"):
            live.append(pid)
    return live


def _new_session_with_default_sigint() -> None:
    # Own process group, so the test can signal it like a terminal does; and SIGINT back at its
    # default, since a shell that runs pytest in the background makes its children ignore it.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses process groups")
@pytest.mark.slow
class TestInterrupt:
    # Enough images that the export is still running when the signal comes: 400 took 0.5 s with the fast
    # renderer, short enough for a loaded machine to deliver the signal after the last one (a rare failure).
    N = 2000
    ARGS = ["--materialize", "--num_imgs", str(N), "--img_size", "32", "--format", "png", "--threads", "2",
            "--batch_size", "4"]

    @pytest.mark.parametrize(
        ("how", "command"),
        [
            ("SIGINT to the process group (Ctrl-C)", [sys.executable, "-m", "single_image_dataset"]),
            ("SIGKILL to the parent", [str(SCRIPT)]),
        ],
    )
    @pytest.mark.slow
    def test_kill_midway_then_rerun(self, tmp_path, how, command, capsys):
        # Acceptance 2: no partial file, no orphan worker; the re-run writes exactly the missing files.
        target = tmp_path / "out"
        proc = subprocess.Popen(
            [*command, *self.ARGS, "--targetpath", str(target)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_new_session_with_default_sigint,
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's package, not an installed one
        )
        folder = _folder(target)
        wait_for(lambda: folder.is_dir() and len([f for f in os.listdir(folder) if f.startswith("patch_")]) >= 30)
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        wait_for(lambda: not _live_processes(proc.pid), timeout=10)

        if how.startswith("SIGINT"):
            assert proc.returncode == 130
            assert err.splitlines()[-1] == f"{PROG}: interrupted; run the same command again to resume"
            assert "Traceback" not in err and "KeyboardInterrupt" not in err
            assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]
        else:
            assert proc.returncode == -signal.SIGKILL
        done = len([f for f in os.listdir(folder) if f.startswith("patch_")])
        assert 30 <= done < self.N
        record = json.loads((target / "shards" / "0-of-1.json").read_text())
        if how.startswith("SIGINT"):  # counted per finished chunk: files of the chunks cut short are not
            assert record["status"] == "interrupted" and done - 8 <= record["written"] <= done
            assert record["skipped"] == 0 and record["bytes_written"] > 0
        else:
            assert (record["status"], record["written"]) == ("running", 0)  # as it was when the run started
        for name in os.listdir(folder):
            if name.startswith("patch_"):
                with Image.open(folder / name) as img:
                    img.load()

        assert main([*self.ARGS, "--targetpath", str(target)]) == 0
        out, err = capsys.readouterr()
        assert f"wrote {self.N - done} images ({done} already there)" in out
        assert err.startswith(f"materialize: writing {self.N - done} of {self.N} images ({done} already there) with ")
        assert json.loads((target / "shards" / "0-of-1.json").read_text())["status"] == "complete"
        _assert_export(target, SingleImageDataset(num_imgs=self.N, img_size=32))


class TestModes:
    def test_default_prints_config_and_writes_a_preview(self, tmp_path, capsys):
        code, out, err = _run([*SMALL, "--targetpath", str(tmp_path)], capsys)
        assert code == 0 and err == ""
        assert AugmentConfig.from_dict(_printed_config(out)) == AugmentConfig(num_imgs=8, img_size=32)
        assert "--materialize would write 8 files, about " in out and "patch_0.jpg .. patch_7.jpg" in out
        with Image.open(tmp_path / "preview.png") as img:
            assert img.size == (8 * 32 + 9 * 3, 32 + 2 * 3)
        assert sorted(os.listdir(tmp_path)) == ["preview.png"]

    def test_the_no_argument_run_writes_a_preview_for_a_glance(self, tmp_path, monkeypatch, capsys):
        monkeypatch.chdir(tmp_path)
        code, out, _ = _run([], capsys)
        assert code == 0 and f"source: {DEFAULT_IMAGE} (600x400 px)" in out
        preview = tmp_path / "out" / "preview.png"
        with Image.open(preview) as img:
            # 64 samples of 256 px, shrunk to 96 px tiles: 795 px square instead of 2075.
            assert img.size == (8 * 96 + 9 * 3,) * 2
        assert preview.stat().st_size < 1_000_000

    def test_debug_exports_64_images_of_32_px_and_a_grid(self, tmp_path, capsys):
        code, out, err = _run(["--debug", "--img_size", "64", "--format", "png", "--targetpath", str(tmp_path)], capsys)
        assert code == 0 and "materialize: writing 64 images with 2 processes: " in err
        config = _printed_config(out)
        assert config["debug"] is True and config["num_imgs"] == 64
        assert len(os.listdir(_folder(tmp_path))) == 64
        with Image.open(_folder(tmp_path) / "patch_63.png") as img:
            assert img.size == (32, 32)
        with Image.open(tmp_path / "preview.png") as img:
            assert img.size == (8 * 32 + 9 * 3,) * 2
        assert json.loads((tmp_path / "shards" / "0-of-1.json").read_text())["processes"] == 2

    def test_debug_keeps_an_explicit_num_imgs(self, tmp_path, capsys):
        code, out, _ = _run(["--debug", "--num_imgs", "5", "--img_size", "32", "--targetpath", str(tmp_path)], capsys)
        assert code == 0 and _printed_config(out)["num_imgs"] == 5 and len(os.listdir(_folder(tmp_path))) == 5

    def test_materialize_jpeg_with_quality(self, tmp_path, capsys):
        code, out, _ = _run([*SMALL, "--materialize", "--quality", "90", "--threads", "1", "--targetpath",
                             str(tmp_path)], capsys)
        assert code == 0 and "wrote 8 images (0 already there)" in out
        # Exactly what --materialize's help says it writes: no preview.png.
        assert sorted(os.listdir(tmp_path)) == [".lock", "manifest.json", "shards", "train"]
        assert os.listdir(tmp_path / "shards") == ["0-of-1.json"] and os.listdir(tmp_path / "train") == ["dummy"]
        help_text = " ".join(build_parser().format_help().split())
        assert "the files to TARGETPATH/train/dummy, and manifest.json, shards/K-of-N.json and the lock file " \
            ".lock to TARGETPATH; no preview.png (except with --debug)" in help_text
        manifest = json.loads((tmp_path / "manifest.json").read_text())["dataset"]
        assert (manifest["format"], manifest["quality"]) == ("jpg", 90)

    def test_threads_default_to_the_available_cpus(self, tmp_path, capsys):
        assert _run([*SMALL, "--materialize", "--targetpath", str(tmp_path)], capsys)[0] == 0
        record = json.loads((tmp_path / "shards" / "0-of-1.json").read_text())
        assert record["processes"] == len(os.sched_getaffinity(0))

    def test_shard(self, tmp_path, capsys):
        code, _, err = _run([*SMALL, "--materialize", "--shard", "1/3", "--targetpath", str(tmp_path)], capsys)
        assert code == 0 and "materialize: writing 3 images with " in err and "{patch_2.jpg .. patch_4.jpg}" in err
        assert sorted(os.listdir(_folder(tmp_path))) == ["patch_2.jpg", "patch_3.jpg", "patch_4.jpg"]

    def test_overwrite(self, tmp_path, capsys):
        assert _run([*SMALL, "--materialize", "--targetpath", str(tmp_path)], capsys)[0] == 0
        changed = ["--num_imgs", "4", "--img_size", "32", "--materialize", "--targetpath", str(tmp_path)]
        code, _, err = _run(changed, capsys)
        assert code == 1
        assert_one_line_error(err, r"already holds a different export \(num_imgs 8 there, 4 now.*use --overwrite")
        assert _run([*changed, "--overwrite"], capsys)[0] == 0
        assert len(os.listdir(_folder(tmp_path))) == 4

    def test_rerun_resumes(self, tmp_path, capsys):
        argv = [*SMALL, "--materialize", "--targetpath", str(tmp_path)]
        assert _run(argv, capsys)[0] == 0
        (_folder(tmp_path) / "patch_5.jpg").unlink()
        code, out, err = _run(argv, capsys)
        assert code == 0 and "wrote 1 images (7 already there)" in out
        assert err.startswith("materialize: writing 1 of 8 images (7 already there) with ")

    @pytest.mark.slow
    def test_main_module_fails_with_one_line(self, tmp_path):
        proc = subprocess.run(
            [sys.executable, "-m", "single_image_dataset", "--imgpath", str(tmp_path / "missing.jpg")],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 1 and proc.stdout == ""
        assert_one_line_error(proc.stderr, r"image file not found: .*missing\.jpg")


class TestFlags:
    def test_every_flag_of_the_original_script(self, tmp_path, coffee_path, capsys):
        argv = ["--img_size", "32", "--batch_size", "16", "--num_imgs", "16", "--threads", "1", "--vflip",
                "--deg", "20", "--shear", "10", "--cropfirst", "--initcrop", "0.6", "--scale", "400", "2",
                "--randinterp", "--imgpath", str(coffee_path), "--targetpath", str(tmp_path)]
        code, out, _ = _run(argv, capsys)
        assert code == 0
        assert AugmentConfig.from_dict(_printed_config(out)) == AugmentConfig(
            img_size=32, num_imgs=16, vflip=True, deg=20, shear=10, cropfirst=True, initcrop=0.6,
            scale=(400, 2), randinterp=True,
        )
        assert f"source: {coffee_path} (600x400 px)" in out

    def test_help_lists_every_flag(self, capsys):
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        for flag in ("--img_size", "--batch_size", "--num_imgs", "--threads", "--vflip", "--deg", "--shear",
                     "--cropfirst", "--no-cropfirst", "--initcrop", "--scale", "--randinterp", "--debug",
                     "--imgpath", "--targetpath", "--seed", "--config", "--materialize", "--format",
                     "--quality", "--backend", "--shard", "--overwrite"):
            assert flag in text, flag

    @pytest.mark.parametrize(
        ("argv", "cropfirst"),
        [([], True), (["--cropfirst"], True), (["--no-cropfirst"], False)],
    )
    def test_cropfirst_keeps_its_documented_meaning(self, tmp_path, argv, cropfirst, capsys):
        # The original declared --cropfirst with store_false: passing it turned the crop off.
        code, out, _ = _run([*SMALL, *argv, "--targetpath", str(tmp_path)], capsys)
        assert code == 0 and _printed_config(out)["cropfirst"] is cropfirst

    def test_precedence_defaults_config_flags(self, tmp_path, capsys):
        preset = tmp_path / "mine.toml"
        preset.write_text("img_size = 48\nnum_imgs = 8\ndeg = 10.0\nvflip = true\ncropfirst = false\n")
        argv = ["--config", str(preset), "--deg", "5", "--no-vflip", "--cropfirst", "--targetpath", str(tmp_path)]
        code, out, _ = _run(argv, capsys)
        assert code == 0
        config = _printed_config(out)
        assert (config["img_size"], config["num_imgs"]) == (48, 8)  # from the file
        assert (config["deg"], config["vflip"], config["cropfirst"]) == (5.0, False, True)  # flags win
        assert config["shear"] == 30.0 and config["scale"] == [500.0, 1.0]  # defaults

    def test_printed_config_round_trips_through_config(self, tmp_path, capsys):
        code, out, _ = _run([*SMALL, "--seed", "3", "--vflip", "--targetpath", str(tmp_path)], capsys)
        saved = tmp_path / "saved.toml"
        saved.write_text(out.split("\nsource: ")[0])
        assert AugmentConfig.from_toml(saved) == AugmentConfig(num_imgs=8, img_size=32, seed=3, vflip=True)

    def test_backend_choices_come_from_the_registry(self, tmp_path, capsys):
        for name in available_backends():
            code, out, _ = _run([*SMALL, "--backend", name, "--targetpath", str(tmp_path)], capsys)
            assert code == 0 and f"backend {name}" in out
        with pytest.raises(SystemExit) as info:
            main(["--backend", "nope"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "argument --backend: invalid choice: 'nope'" in err


class TestBadInput:
    """Each bad input: exit status 1 (2 for usage errors), one line on stderr, no traceback."""

    @pytest.fixture
    def bad_files(self, tmp_path, hubble_path):
        (tmp_path / "notes.jpg").write_text("not an image")
        (tmp_path / "truncated.jpg").write_bytes(hubble_path.read_bytes()[:20_000])
        Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "tiny.png")
        Image.new("RGB", (3, 600), (200, 10, 10)).save(tmp_path / "sliver.png")
        (tmp_path / "broken.toml").write_text("img_size = = 3\n")
        (tmp_path / "unknown.toml").write_text("img_size = 32\ncolour = 1\n")
        (tmp_path / "a_file").write_text("x")
        (tmp_path / "no_images").mkdir()
        return tmp_path

    @pytest.mark.parametrize(
        ("argv", "pattern"),
        [
            (["--imgpath", "{tmp}/missing.jpg"], r"image file not found: .*missing\.jpg$"),
            # A directory is a list of sources: the first file that is not an image is named.
            (["--imgpath", "{tmp}"], r"notes\.jpg is not an image file that Pillow can read$"),
            (["--imgpath", "{tmp}/no_images"], r"directory .* holds no image files \(none with an extension Pillow"),
            (["--imgpath", "{tmp}/notes.jpg"], r"notes\.jpg is not an image file that Pillow can read$"),
            (["--imgpath", "{tmp}/truncated.jpg"], r"image file .*truncated\.jpg is truncated or corrupt"),
            (["--imgpath", "{tmp}/tiny.png"], r"image of 1x1 px is too small for initcrop=0\.5: the initial crop "),
            (["--imgpath", "{tmp}/sliver.png", "--no-cropfirst"], r"image of 3x600 px is too small or too elongated "),
            (["--img_size", "0"], r"img_size should be in \[1, 8192\] pixels, got 0$"),
            (["--num_imgs", "-5"], r"num_imgs should be in \[1, \d+\] .*, got -5$"),
            (["--scale", "0.5", "1"], r"scale should be two inverse area fractions .*got \(0\.5, 1\.0\)$"),
            (["--initcrop", "1.5"], r"initcrop should be in \(0, 1\], got 1\.5$"),
            (["--config", "{tmp}/broken.toml"], r"config file .*broken\.toml is not valid TOML: "),
            (["--config", "{tmp}/unknown.toml"], r"unknown key 'colour' in config; valid keys are: img_size, "),
            (["--config", "{tmp}/none.toml"], r"config file not found: .*none\.toml$"),
            (["--materialize", "--targetpath", "{tmp}/a_file/out"], r"cannot write to .*a_file/out/train/dummy: "
                                                                    r"Not a directory$"),
            (["--targetpath", "{tmp}/a_file/out"], r"cannot write the preview .*a_file/out/preview\.png: "
                                                   r"Not a directory$"),
            (["--materialize", "--targetpath", "{tmp}/a_file"], r"target .*a_file exists and is not a directory$"),
        ],
    )
    def test_library_errors(self, bad_files, argv, pattern, capsys):
        argv = [a.replace("{tmp}", str(bad_files)) for a in argv]
        code, _, err = _run([*SMALL, *argv], capsys)
        assert code == 1
        assert_one_line_error(err, pattern)

    @pytest.mark.parametrize(
        ("argv", "pattern"),
        [
            (["--threads", "0"], r"argument --threads: should be in \[1, 1024\], got 0"),
            (["--batch_size", "0"], r"argument --batch_size: should be at least 1, got 0"),
            (["--quality", "0"], r"argument --quality: should be in \[1, 100\], got 0"),
            (["--format", "png", "--quality", "80"], r"argument --quality: applies to --format jpg only"),
            (["--shard", "3/3"], r"argument --shard: should be K/N with 0 <= K < N \(K counts from 0\), got '3/3'"),
            (["--shard", "x"], r"argument --shard: should be K/N"),
            (["--img_size", "big"], r"argument --img_size: invalid int value: 'big'"),
        ],
    )
    def test_usage_errors(self, argv, pattern, capsys):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert_one_line_error(capsys.readouterr().err, pattern)

    def test_unreadable_image(self, tmp_path, hubble_path, monkeypatch, capsys):
        path = tmp_path / "locked.jpg"
        shutil.copy(hubble_path, path)
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads it anyway: fail the read as it fails for a user
            real_open = builtins.open

            def denied(file, *args, **kwargs):
                if os.fspath(file) == str(path):
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr(builtins, "open", denied)
        code, _, err = _run([*SMALL, "--imgpath", str(path), "--targetpath", str(tmp_path)], capsys)
        assert code == 1
        assert_one_line_error(err, r"locked\.jpg cannot be read: permission denied")

    def test_full_disk(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setattr(export, "_disk_free", lambda path: (10_000, None))
        code, _, err = _run([*SMALL, "--materialize", "--targetpath", str(tmp_path)], capsys)
        assert code == 1
        assert_one_line_error(err, r"not enough free disk space in .*: 8 images need about .*, only 10 KB is free")
        assert os.listdir(_folder(tmp_path)) == []

    def test_conflicting_export(self, tmp_path, capsys):
        assert _run([*SMALL, "--materialize", "--targetpath", str(tmp_path)], capsys)[0] == 0
        code, _, err = _run([*SMALL, "--seed", "1", "--materialize", "--targetpath", str(tmp_path)], capsys)
        assert code == 1
        assert_one_line_error(err, r"already holds a different export \(seed 0 there, 1 now\); use --overwrite")

    def test_original_script_output_in_target(self, tmp_path, capsys):
        _folder(tmp_path).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(_folder(tmp_path) / "patch_32.jpg")
        code, _, err = _run([*SMALL, "--materialize", "--targetpath", str(tmp_path)], capsys)
        assert code == 1
        assert_one_line_error(err, r"already holds 1 files but .* has no manifest\.json \(e\.g\. 'patch_32\.jpg'")
