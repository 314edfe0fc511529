"""materialize(): layout, ImageFolder equality, manifest, resume, conflicts, disk checks, shards, preview."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
from pathlib import Path

import numpy as np
import PIL
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.datasets import ImageFolder

import single_image_dataset
from single_image_dataset import AugmentConfig, SingleImageDataset, export, render
from single_image_dataset.export import ExportResult, estimate_bytes, image_name, materialize, shard_range
from single_image_dataset.preview import preview_grid, save_preview
from single_image_dataset.source import pixel_sha256

pytestmark = pytest.mark.filterwarnings("error")

QUIET = {"progress": False}


def _dataset(num_imgs: int = 24, img_size: int = 32, image=None, **overrides) -> SingleImageDataset:
    return SingleImageDataset(image, num_imgs=num_imgs, img_size=img_size, **overrides)


def _files(target: Path) -> list[str]:
    return sorted(os.listdir(target / "train" / "dummy"))


def _assert_pixels_equal(target: Path, ds: SingleImageDataset) -> None:
    folder = ImageFolder(str(target / "train"))
    assert len(folder) == len(ds) and folder.classes == ["dummy"]
    for i in range(len(ds)):
        img, label = folder[i]
        assert label == 0
        np.testing.assert_array_equal(np.asarray(img), np.asarray(ds[i][0]), err_msg=f"sample {i}")


def _live_children() -> list:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


class TestNaming:
    @pytest.mark.parametrize(("num_imgs", "digits"), [(1, 1), (10, 1), (11, 2), (300, 3), (1_281_167, 7)])
    def test_zero_padding(self, num_imgs, digits):
        assert image_name(num_imgs - 1, num_imgs, "jpg") == f"patch_{num_imgs - 1:0{digits}d}.jpg"

    def test_sorted_names_are_index_order(self):
        names = [image_name(i, 1001, "png") for i in range(1001)]
        assert sorted(names) == names

    @pytest.mark.parametrize("num_shards", [1, 2, 3, 7, 50])
    def test_shards_partition_the_indices(self, num_shards):
        ranges = [shard_range(47, k, num_shards) for k in range(num_shards)]
        assert [i for r in ranges for i in r] == list(range(47))
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1

    @pytest.mark.parametrize(("shard", "num_shards"), [(3, 3), (-1, 2), (0, 0)])
    def test_bad_shard(self, shard, num_shards):
        with pytest.raises(ValueError, match=r"shard should be K/N with 0 <= K < N .*got"):
            shard_range(10, shard, num_shards)


class TestMaterialize:
    def test_png_equals_dataset_through_imagefolder(self, tmp_path):
        ds = _dataset(num_imgs=30)
        result = materialize(ds, tmp_path, image_format="png", processes=2, chunk_size=4, **QUIET)
        assert isinstance(result, ExportResult)
        assert (result.written, result.skipped, result.indices) == (30, 0, range(30))
        assert _files(tmp_path) == [f"patch_{i:02d}.png" for i in range(30)]
        assert result.bytes_written == sum(os.path.getsize(tmp_path / "train" / "dummy" / f) for f in _files(tmp_path))
        _assert_pixels_equal(tmp_path, ds)

    @pytest.mark.parametrize("quality", [75, 95])
    def test_jpeg_is_the_encoding_of_the_sample(self, tmp_path, quality):
        ds = _dataset(num_imgs=6)
        materialize(ds, tmp_path, image_format="jpg", quality=quality, **QUIET)
        for i in range(6):
            expected = io.BytesIO()
            ds[i][0].save(expected, format="JPEG", quality=quality)
            assert (tmp_path / "train" / "dummy" / f"patch_{i}.jpg").read_bytes() == expected.getvalue()
        assert json.loads((tmp_path / "manifest.json").read_text())["dataset"]["quality"] == quality

    def test_transform_is_not_applied(self, tmp_path):
        ds = _dataset(num_imgs=4, transform=lambda img: img.rotate(90))
        materialize(ds, tmp_path, image_format="png", **QUIET)
        with Image.open(tmp_path / "train" / "dummy" / "patch_0.png") as img:
            np.testing.assert_array_equal(np.asarray(img), np.asarray(ds.render(ds.params(0))))

    def test_manifest(self, tmp_path, coffee_path):
        ds = _dataset(num_imgs=5, image=coffee_path, seed=7, backend="reference")
        materialize(ds, tmp_path / "out", image_format="png", **QUIET)
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        dataset = manifest["dataset"]
        assert dataset["config"] == ds.config.to_dict()
        assert AugmentConfig.from_dict(dataset["config"]) == ds.config
        assert (dataset["num_imgs"], dataset["seed"], dataset["epoch"]) == (5, 7, 0)
        assert (dataset["renderer"], dataset["format"], dataset["quality"]) == ({"backend": "reference"}, "png", None)
        assert dataset["layout"] == "train/dummy/patch_{index:01d}.png"
        assert dataset["sources"] == [{"pixel_sha256": pixel_sha256(ds.source), "width": 600, "height": 400}]
        assert manifest["source_files"] == [{
            "path": os.path.abspath(coffee_path),
            "sha256": hashlib.sha256(coffee_path.read_bytes()).hexdigest(),
            "bytes": coffee_path.stat().st_size,
        }]
        versions = manifest["versions"]
        assert versions["torch"] == torch.__version__ and versions["torchvision"] == torchvision.__version__
        assert versions["Pillow"] == PIL.__version__ and versions["single_image_dataset"]
        assert versions["numpy"] == np.__version__ and "opencv" not in versions  # the reference renderer needs none
        record = json.loads((tmp_path / "out" / "shards" / "0-of-1.json").read_text())
        assert (record["shard"], record["num_shards"], record["start"], record["stop"]) == (0, 1, 0, 5)
        assert (record["status"], record["written"], record["skipped"]) == ("complete", 5, 0)


    def test_resume_writes_only_the_missing_files(self, tmp_path):
        ds = _dataset(num_imgs=20)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        folder = tmp_path / "train" / "dummy"
        for i in (0, 7, 19):
            (folder / f"patch_{i:02d}.png").unlink()
        (folder / "patch_03.png").write_bytes(b"")  # what a machine crash before a flush can leave
        kept = {f: (folder / f).stat().st_mtime_ns for f in _files(tmp_path) if f != "patch_03.png"}
        result = materialize(ds, tmp_path, image_format="png", processes=2, **QUIET)
        assert (result.written, result.skipped) == (4, 16)
        assert all((folder / f).stat().st_mtime_ns == t for f, t in kept.items())
        assert len(_files(tmp_path)) == 20
        _assert_pixels_equal(tmp_path, ds)

    @pytest.mark.parametrize("image_format", ["jpg", "png"])
    def test_verify_repairs_damage_in_the_middle_of_files(self, tmp_path, image_format):
        ds = _dataset(num_imgs=12, img_size=48)
        materialize(ds, tmp_path / "clean", image_format=image_format, **QUIET)
        materialize(ds, tmp_path / "damaged", image_format=image_format, **QUIET)
        folder = tmp_path / "damaged" / "train" / "dummy"
        # Several offsets and sizes, header and trailer intact: Pillow decodes most such JPEGs without an error.
        damage = [("patch_01", 0.3, 1), ("patch_04", 0.5, 64), ("patch_07", 0.7, 16), ("patch_10", 0.5, 300)]
        for name, where, size in damage:
            data = bytearray((folder / f"{name}.{image_format}").read_bytes())
            at = int(len(data) * where)
            size = min(size, len(data) - at - 16)
            data[at : at + size] = bytes(b ^ 0xFF for b in data[at : at + size])
            (folder / f"{name}.{image_format}").write_bytes(bytes(data))
        assert materialize(ds, tmp_path / "damaged", image_format=image_format, **QUIET).written == 0  # resume: whole
        result = materialize(ds, tmp_path / "damaged", image_format=image_format, verify=True, **QUIET)
        assert (result.written, result.skipped) == (4, 8)
        clean = tmp_path / "clean" / "train" / "dummy"
        for name in _files(tmp_path / "clean"):
            assert (folder / name).read_bytes() == (clean / name).read_bytes(), name
        assert materialize(ds, tmp_path / "damaged", image_format=image_format, verify=True, **QUIET).written == 0

    def test_verify_writes_missing_and_truncated_files_and_names_other_versions(self, tmp_path):
        ds = _dataset(num_imgs=6)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        folder = tmp_path / "train" / "dummy"
        (folder / "patch_2.png").unlink()
        (folder / "patch_3.png").write_bytes((folder / "patch_3.png").read_bytes()[:-1])
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        manifest["versions"]["Pillow"] = "1.0"  # as if written by another installation
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        stream = io.StringIO()
        result = materialize(ds, tmp_path, image_format="png", verify=True, progress_stream=stream)
        assert (result.written, result.skipped) == (2, 4)
        plan = stream.getvalue().splitlines()[0]
        assert plan.startswith("materialize: verifying 6 images with 1 process (each rendered again, written again "
                               "where its bytes differ): ")
        assert plan.endswith(f"; the export was written with other versions (Pillow 1.0 there, {PIL.__version__} "
                             "here), so files may differ")
        _assert_pixels_equal(tmp_path, ds)

    def test_plan_is_printed_after_the_target_accepts_the_run(self, tmp_path):
        materialize(_dataset(num_imgs=8), tmp_path, image_format="png", **QUIET)
        (tmp_path / "train" / "dummy" / "patch_5.png").unlink()
        refused = io.StringIO()
        with pytest.raises(FileExistsError):
            materialize(_dataset(num_imgs=8, seed=1), tmp_path, image_format="png", progress_stream=refused)
        assert refused.getvalue() == ""
        stream = io.StringIO()
        materialize(_dataset(num_imgs=8), tmp_path, image_format="png", progress_stream=stream)
        assert stream.getvalue().splitlines()[0] == (
            f"materialize: writing 1 of 8 images (7 already there) with 1 process: {tmp_path}/train/dummy/"
            "{patch_0.png .. patch_7.png}"
        )

    @pytest.mark.parametrize("stop", [KeyboardInterrupt, export.Terminated, OSError])
    def test_every_shard_record_has_counts(self, tmp_path, monkeypatch, stop):
        ds = _dataset(num_imgs=12)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        for i in (1, 2, 3, 4, 5, 6, 7):
            (tmp_path / "train" / "dummy" / f"patch_{i:02d}.png").unlink()
        write, calls = export._Writer.write, []

        def stopped_at_the_third_chunk(writer, indices):
            calls.append(indices)
            if len(calls) == 3:
                raise stop(errno.EIO, "the disk went away") if stop is OSError else stop()
            return write(writer, indices)

        monkeypatch.setattr(export._Writer, "write", stopped_at_the_third_chunk)
        with pytest.raises(stop):
            materialize(ds, tmp_path, image_format="png", chunk_size=3, **QUIET)
        record = json.loads((tmp_path / "shards" / "0-of-1.json").read_text())
        status = {
            KeyboardInterrupt: "interrupted", export.Terminated: "terminated", OSError: "failed: the disk went away"
        }
        assert record["status"] == status[stop]
        assert (record["written"], record["skipped"]) == (6, 5) and record["bytes_written"] > 0
        assert record["seconds"] >= 0

    @pytest.mark.parametrize("target", ["", b"out", 3])
    def test_an_empty_or_odd_target_is_refused(self, tmp_path, monkeypatch, target):
        monkeypatch.chdir(tmp_path)
        if target == "":
            error, message = ValueError, r"target should be the path of the export folder, got an empty string"
        else:
            kind = type(target).__name__
            error, message = TypeError, rf"target should be a folder path \(str or os\.PathLike\), got {kind}"
        with pytest.raises(error, match=message):
            materialize(_dataset(num_imgs=4), target, **QUIET)
        assert os.listdir(tmp_path) == []

    def test_one_process_by_default_and_the_clis_default_on_request(self, tmp_path):
        materialize(_dataset(num_imgs=4), tmp_path, **QUIET)
        assert json.loads((tmp_path / "shards" / "0-of-1.json").read_text())["processes"] == 1
        assert export.available_cpus() == len(os.sched_getaffinity(0))

    def test_stale_temp_files_are_removed(self, tmp_path):
        # What a SIGKILL of the writer leaves: a partial file under a temp name, no final name.
        ds = _dataset(num_imgs=12)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        folder = tmp_path / "train" / "dummy"
        (folder / "patch_03.png").rename(folder / ".patch_03.png.12345.tmp")
        (folder / ".patch_03.png.12345.tmp").write_bytes(b"\x89PNG partial")
        assert materialize(ds, tmp_path, image_format="png", **QUIET).written == 1
        assert _files(tmp_path) == [f"patch_{i:02d}.png" for i in range(12)]

    def test_epoch_is_part_of_the_export(self, tmp_path):
        ds = _dataset(num_imgs=4)
        ds.set_epoch(3)
        materialize(ds, tmp_path, image_format="png", **QUIET)
        assert json.loads((tmp_path / "manifest.json").read_text())["dataset"]["epoch"] == 3
        _assert_pixels_equal(tmp_path, ds)

    def test_estimate_covers_the_real_size(self, tmp_path):
        ds = _dataset(num_imgs=40, img_size=64)
        estimate = estimate_bytes(ds, range(40), "jpg", 75)
        result = materialize(ds, tmp_path, **QUIET)
        assert result.bytes_written <= estimate <= 40 * 2 * 4096 + 2 * result.bytes_written
        assert estimate_bytes(ds, [], "png") == 0


class TestSharding:
    def test_three_shards_equal_one_unsharded_export(self, tmp_path):
        ds = _dataset(num_imgs=25)
        materialize(ds, tmp_path / "whole", image_format="png", **QUIET)
        results = [
            materialize(ds, tmp_path / "sharded", image_format="png", shard=(k, 3), **QUIET) for k in (2, 0, 1)
        ]
        assert sorted(r.indices.start for r in results) == [0, 8, 16] and sum(r.written for r in results) == 25
        whole, sharded = tmp_path / "whole" / "train" / "dummy", tmp_path / "sharded" / "train" / "dummy"
        assert _files(tmp_path / "whole") == _files(tmp_path / "sharded")
        for name in _files(tmp_path / "whole"):
            assert (whole / name).read_bytes() == (sharded / name).read_bytes(), name
        manifests = [json.loads((tmp_path / t / "manifest.json").read_text())["dataset"] for t in ("whole", "sharded")]
        assert manifests[0] == manifests[1]
        records = sorted(os.listdir(tmp_path / "sharded" / "shards"))
        assert records == ["0-of-3.json", "1-of-3.json", "2-of-3.json"]

    def test_shard_writes_only_its_range(self, tmp_path):
        ds = _dataset(num_imgs=10)
        result = materialize(ds, tmp_path, image_format="png", shard=(1, 3), **QUIET)
        assert result.indices == range(3, 6)
        assert _files(tmp_path) == ["patch_3.png", "patch_4.png", "patch_5.png"]


    def test_empty_shard(self, tmp_path):
        result = materialize(_dataset(num_imgs=2), tmp_path, shard=(0, 3), **QUIET)
        assert (result.indices, result.written) == (range(0, 0), 0) and _files(tmp_path) == []
        assert json.loads((tmp_path / "shards" / "0-of-3.json").read_text())["status"] == "complete"


class TestConflicts:
    def test_different_config_is_refused(self, tmp_path):
        materialize(_dataset(num_imgs=6, img_size=32), tmp_path, image_format="png", **QUIET)
        with pytest.raises(FileExistsError, match=r"already holds a different export \(.*img_size 32 there, 48 now"):
            materialize(_dataset(num_imgs=6, img_size=48), tmp_path, image_format="png", **QUIET)

    def test_different_image_is_refused(self, tmp_path, hubble_path):
        materialize(_dataset(num_imgs=6), tmp_path, image_format="png", **QUIET)
        with pytest.raises(FileExistsError, match=r"different export \(sources\.0\.pixel_sha256 '"):
            materialize(_dataset(num_imgs=6, image=hubble_path), tmp_path, image_format="png", **QUIET)

    def test_different_format_is_refused(self, tmp_path):
        materialize(_dataset(num_imgs=6), tmp_path, image_format="png", **QUIET)
        with pytest.raises(FileExistsError, match=r"format 'png' there, 'jpg' now"):
            materialize(_dataset(num_imgs=6), tmp_path, image_format="jpg", **QUIET)

    def test_overwrite_replaces_the_old_export(self, tmp_path):
        materialize(_dataset(num_imgs=30), tmp_path, image_format="png", **QUIET)
        ds = _dataset(num_imgs=8, img_size=24)
        result = materialize(ds, tmp_path, image_format="png", overwrite=True, **QUIET)
        assert result.written == 8 and _files(tmp_path) == [f"patch_{i}.png" for i in range(8)]
        assert json.loads((tmp_path / "manifest.json").read_text())["dataset"]["config"]["img_size"] == 24
        _assert_pixels_equal(tmp_path, ds)

    def test_unmanifested_files_are_refused(self, tmp_path):
        # What the original script leaves: 1-based, unpadded names and no manifest.
        folder = tmp_path / "train" / "dummy"
        folder.mkdir(parents=True)
        for k in (32, 33):
            Image.new("RGB", (32, 32)).save(folder / f"patch_{k}.jpg")
        with pytest.raises(FileExistsError, match=r"already holds 2 files but .* has no manifest\.json"):
            materialize(_dataset(num_imgs=4), tmp_path, **QUIET)
        materialize(_dataset(num_imgs=4), tmp_path, overwrite=True, **QUIET)
        assert _files(tmp_path) == [f"patch_{i}.jpg" for i in range(4)]

    def test_overwrite_keeps_files_it_did_not_write(self, tmp_path):
        folder = tmp_path / "train" / "dummy"
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("mine")
        with pytest.raises(FileExistsError, match=r"holds 'notes\.txt', which this library did not write"):
            materialize(_dataset(num_imgs=4), tmp_path, overwrite=True, **QUIET)
        assert (folder / "notes.txt").read_text() == "mine"

    def test_other_classes_are_refused(self, tmp_path):
        (tmp_path / "train" / "cats").mkdir(parents=True)
        with pytest.raises(FileExistsError, match=r"holds 'cats', which ImageFolder would read as a class"):
            materialize(_dataset(num_imgs=4), tmp_path, **QUIET)

    def test_overwrite_with_shards_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match="overwrite cannot be combined with sharding"):
            materialize(_dataset(num_imgs=4), tmp_path, shard=(0, 2), overwrite=True, **QUIET)

    def test_unreadable_manifest(self, tmp_path):
        (tmp_path / "manifest.json").write_text("{not json")
        with pytest.raises(ValueError, match=r"cannot read the existing manifest .*manifest\.json"):
            materialize(_dataset(num_imgs=4), tmp_path, **QUIET)


class TestRendererIdentity:
    def test_every_renderer_names_its_backend(self, backend):
        assert _dataset(num_imgs=2, backend=backend).renderer_identity()["backend"] == backend

    def test_manifest_records_the_fast_renderers_implementation(self, tmp_path):
        import PIL

        from single_image_dataset.render import fast

        if fast._kernels is None:
            pytest.importorskip("cv2")
        materialize(_dataset(num_imgs=2, backend="fast"), tmp_path, image_format="png", **QUIET)
        renderer = json.loads((tmp_path / "manifest.json").read_text())["dataset"]["renderer"]
        # Pillow builds the pyramid; OpenCV renders only in the OpenCV implementation
        expected = {"backend": "fast", "implementation": "native", "pillow": PIL.__version__}
        if fast._kernels is None:
            import cv2

            expected.update(implementation="opencv", opencv=cv2.__version__)
        assert renderer == expected

    def test_shard_or_resume_by_the_other_implementation_is_refused(self, tmp_path):
        pytest.importorskip("cv2")
        ds = _dataset(num_imgs=6, backend="fast")
        materialize(ds, tmp_path, image_format="png", shard=(0, 2), **QUIET)
        # Make the stored export one that the other implementation (native kernels or OpenCV alone) wrote.
        path = tmp_path / "manifest.json"
        stored = json.loads(path.read_text())
        now = stored["dataset"]["renderer"]["implementation"]
        there = {"native": "opencv", "opencv": "native"}[now]
        stored["dataset"]["renderer"]["implementation"] = there
        path.write_text(json.dumps(stored))
        message = rf"different export \(renderer\.implementation '{there}' there, '{now}' now\); use --overwrite"
        for shard in ((1, 2), (0, 2)):
            with pytest.raises(FileExistsError, match=message):
                materialize(ds, tmp_path, image_format="png", shard=shard, **QUIET)
        assert _files(tmp_path) == ["patch_0.png", "patch_1.png", "patch_2.png"]

    def test_a_renderer_whose_identity_changed_cannot_resume(self, tmp_path, monkeypatch):
        from single_image_dataset.render.reference import ReferenceRenderer

        # Forget the test renderer afterwards.
        monkeypatch.setattr(render.base, "_REGISTRY", dict(render.base._REGISTRY))

        @render.register_renderer("versioned")
        class Versioned(ReferenceRenderer):
            version = "1"

            def identity(self) -> dict[str, str]:
                return {**super().identity(), "version": self.version}

        materialize(_dataset(num_imgs=4, backend="versioned"), tmp_path, image_format="png", **QUIET)
        stored = json.loads((tmp_path / "manifest.json").read_text())["dataset"]["renderer"]
        assert stored == {"backend": "versioned", "version": "1"}
        ds = _dataset(num_imgs=4, backend="versioned")
        assert materialize(ds, tmp_path, image_format="png", **QUIET).skipped == 4
        Versioned.version = "2"
        with pytest.raises(FileExistsError, match=r"different export \(renderer\.version '1' there, '2' now\);"):
            materialize(ds, tmp_path, image_format="png", **QUIET)

    @pytest.mark.parametrize(
        ("changes", "listed"),
        [
            ({"seed": 1}, "seed 0 there, 1 now"),
            ({"seed": 1, "num_imgs": 7}, "num_imgs 6 there, 7 now; seed 0 there, 1 now"),
            ({"deg": 15.0}, "config.deg 30.0 there, 15.0 now"),
        ],
    )
    def test_a_conflict_names_each_difference_once(self, tmp_path, changes, listed):
        materialize(_dataset(num_imgs=6), tmp_path, image_format="png", **QUIET)
        with pytest.raises(FileExistsError) as info:
            materialize(_dataset(**{"num_imgs": 6, **changes}), tmp_path, image_format="png", **QUIET)
        assert f"already holds a different export ({listed}); use --overwrite" in str(info.value)

    def test_only_renderers_ask_which_backend_they_are(self):
        names = "|".join(map(re.escape, render.available_backends()))
        comparison = re.compile(rf"""[=!]=\s*["']({names})["']|["']({names})["']\s*[=!]=""")
        assert comparison.search('if backend == "fast":') and comparison.search("'reference' != dataset.backend")
        package = Path(single_image_dataset.__file__).parent
        sources = [path for path in package.rglob("*.py") if path.relative_to(package).parts[0] != "render"]
        assert package / "export" / "manifest.py" in sources
        assert [str(path) for path in sources if comparison.search(path.read_text(encoding="utf-8"))] == []


class TestDiskAndArguments:
    def test_full_disk_is_refused_before_writing(self, tmp_path, monkeypatch):
        monkeypatch.setattr(export, "_disk_free", lambda path: (50_000, None))
        with pytest.raises(OSError, match=r"not enough free disk space in .*: 100 images need about .*, only 50 KB"):
            materialize(_dataset(num_imgs=100), tmp_path, **QUIET)
        assert _files(tmp_path) == [] and not (tmp_path / "manifest.json").exists()

    def test_too_few_inodes_is_refused(self, tmp_path, monkeypatch):
        monkeypatch.setattr(export, "_disk_free", lambda path: (10**12, 5))
        with pytest.raises(OSError, match=r"not enough free inodes .*: 10 files are needed") as info:
            materialize(_dataset(num_imgs=10), tmp_path, **QUIET)
        assert info.value.errno == errno.ENOSPC

    def test_unwritable_target(self, tmp_path):
        # A folder under a regular file cannot be created, for root too (chmod does not stop root).
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError, match=r"cannot write to .*file/out/train/dummy: Not a directory"):
            materialize(_dataset(num_imgs=4), tmp_path / "file" / "out", **QUIET)

    def test_target_is_a_file(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError, match=r"target .*file exists and is not a directory"):
            materialize(_dataset(num_imgs=4), tmp_path / "file", **QUIET)

    def test_failed_write_leaves_no_partial_file(self, tmp_path, monkeypatch):
        ds = _dataset(num_imgs=12)
        replace, calls = os.replace, []

        def disk_full_at_the_fifth(src, dst, **dir_fds):
            if Path(dst).name.startswith("patch_"):
                calls.append(dst)
            if len(calls) == 5:
                raise OSError(errno.ENOSPC, "No space left on device")
            replace(src, dst, **dir_fds)

        monkeypatch.setattr(export.os, "replace", disk_full_at_the_fifth)
        with pytest.raises(OSError, match=r"writing .*patch_04\.png failed: No space left on device"):
            materialize(ds, tmp_path, image_format="png", chunk_size=3, **QUIET)
        monkeypatch.undo()
        assert _files(tmp_path) == [f"patch_{i:02d}.png" for i in range(4)]
        assert not [f for f in os.listdir(tmp_path / "train" / "dummy") if f.startswith(".")]
        assert materialize(ds, tmp_path, image_format="png", **QUIET).written == 8
        _assert_pixels_equal(tmp_path, ds)

    def test_failed_write_in_a_worker_stops_the_export(self, tmp_path, monkeypatch):
        ds = _dataset(num_imgs=40)
        write = export._Writer.write

        def disk_full_at_index_9(self, indices):
            if 9 in indices:
                raise OSError(errno.ENOSPC, "writing patch_09.png failed: No space left on device")
            return write(self, indices)

        monkeypatch.setattr(export._Writer, "write", disk_full_at_index_9)  # forked workers inherit it
        with pytest.raises(OSError, match=r"writing patch_09\.png failed: No space left on device"):
            materialize(ds, tmp_path, image_format="png", processes=2, chunk_size=3, **QUIET)
        assert not _live_children()
        monkeypatch.undo()
        assert not [f for f in os.listdir(tmp_path / "train" / "dummy") if f.startswith(".")]
        materialize(ds, tmp_path, image_format="png", processes=2, **QUIET)
        _assert_pixels_equal(tmp_path, ds)

    def test_killed_worker_is_reported_not_waited_for(self, tmp_path, monkeypatch):
        ds = _dataset(num_imgs=40)
        write = export._Writer.write

        def killed_at_index_9(self, indices):
            if 9 in indices:
                os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
            return write(self, indices)

        monkeypatch.setattr(export._Writer, "write", killed_at_index_9)
        with pytest.raises(ChildProcessError, match=r"export worker \d+ was killed by SIGKILL .*re-run to resume"):
            materialize(ds, tmp_path, image_format="png", processes=2, chunk_size=3, **QUIET)
        assert not _live_children()
        monkeypatch.undo()
        assert materialize(ds, tmp_path, image_format="png", processes=2, **QUIET).skipped > 0
        _assert_pixels_equal(tmp_path, ds)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"image_format": "gif"}, r"image_format should be one of jpg, png, got 'gif'"),
            ({"quality": 0}, r"quality should be an integer in \[1, 100\], got 0"),
            ({"quality": 101}, r"quality should be an integer in \[1, 100\], got 101"),
            ({"processes": 0}, r"processes should be a positive integer, got 0"),
            ({"chunk_size": 0}, r"chunk_size should be a positive integer, got 0"),
            ({"shard": (2, 2)}, r"shard should be K/N with 0 <= K < N \(K counts from 0\), got 2/2"),
        ],
    )
    def test_bad_arguments(self, tmp_path, kwargs, message):
        with pytest.raises(ValueError, match=message):
            materialize(_dataset(num_imgs=4), tmp_path, **kwargs, **QUIET)
        assert not (tmp_path / "train").exists()


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_log_lines_when_not_a_terminal(self, tmp_path):
        stream = io.StringIO()
        materialize(_dataset(num_imgs=40), tmp_path, chunk_size=2, progress_stream=stream)
        lines = stream.getvalue().splitlines()
        assert 3 <= len(lines) <= 12 and "\r" not in stream.getvalue()
        assert lines[0] == f"materialize: writing 40 images with 1 process: {tmp_path}/train/dummy/" \
            "{patch_00.jpg .. patch_39.jpg}"
        assert lines[-1].startswith("materialize: 40/40 (100%), ") and "img/s, ETA 0:00:00" in lines[-1]

    def test_bar_on_a_terminal(self, tmp_path):
        stream = _FakeTerminal()
        materialize(_dataset(num_imgs=10), tmp_path, chunk_size=2, progress_stream=stream)
        text = stream.getvalue()
        assert text.startswith("materialize: writing 10 images with 1 process: ")
        bar = text.split("\n", 1)[1]
        assert bar.startswith("\r[") and bar.endswith("\n") and "10/10 (100%)" in bar and "ETA" in bar

    def test_silent(self, tmp_path, capsys):
        materialize(_dataset(num_imgs=4), tmp_path, progress=False)
        assert capsys.readouterr() == ("", "")


class TestPreview:
    def test_grid_of_the_first_64_samples(self):
        ds = _dataset(num_imgs=100)
        grid = preview_grid(ds)
        assert grid.size == (8 * 32 + 9 * 3, 8 * 32 + 9 * 3) and grid.mode == "RGB"
        for i in (0, 9, 63):
            row, col = divmod(i, 8)
            top, left = 3 + row * 35, 3 + col * 35
            tile = np.asarray(grid)[top : top + 32, left : left + 32]
            np.testing.assert_array_equal(tile, np.asarray(ds[i][0]))

    def test_short_dataset(self):
        grid = preview_grid(_dataset(num_imgs=10))
        assert grid.size == (8 * 32 + 9 * 3, 2 * 32 + 3 * 3)

    def test_save(self, tmp_path):
        path = save_preview(_dataset(num_imgs=4), tmp_path / "new" / "preview.png")
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (4 * 32 + 5 * 3, 32 + 2 * 3)

    def test_large_samples_are_shrunk_to_the_tile_size(self):
        ds = _dataset(num_imgs=3, img_size=64)
        grid = np.asarray(preview_grid(ds, tile_size=40))
        assert grid.shape == (40 + 2 * 3, 3 * 40 + 4 * 3, 3)
        shrunk = ds[2][0].resize((40, 40), Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(grid[3:43, 89:129], np.asarray(shrunk))
        assert not grid[:3].any() and not grid[:, 43:46].any()  # black padding kept
        assert preview_grid(ds, tile_size=None).size == (3 * 64 + 4 * 3, 64 + 2 * 3)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="count and nrow should be positive and padding non-negative, got 0, 8, 3"):
            preview_grid(_dataset(num_imgs=4), count=0)
        with pytest.raises(ValueError, match=r"tile_size should be a positive number of pixels, or None .*, got 0"):
            preview_grid(_dataset(num_imgs=4), tile_size=0)
