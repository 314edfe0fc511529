"""The training-loop adapters of ``single_image_dataset.tasks``, and the package holding no training program."""

from __future__ import annotations

import ast
import pickle
import pkgutil
from importlib.machinery import PathFinder
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import PILToTensor

import single_image_dataset
from single_image_dataset import NUM_ROTATIONS, PseudoLabelled, RotationLabels, SingleImageDataset, rotate_batch

pytestmark = pytest.mark.filterwarnings("error")

PACKAGE = Path(single_image_dataset.__file__).parent
SMALL = {"num_imgs": 6, "img_size": 32}


def _random_images(n: int, height: int, width: int) -> torch.Tensor:
    """``n x 3 x height x width`` uint8 noise: any resampling or off-by-one shows in exact comparisons."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, height, width), generator=g, dtype=torch.uint8)


class TestRotateBatch:
    def test_rotation_major_with_labels(self) -> None:
        x = torch.arange(8.0).reshape(2, 1, 2, 2)
        rotated, labels = rotate_batch(x)
        assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
        for i in range(8):
            torch.testing.assert_close(rotated[i], torch.rot90(x[i % 2], i // 2, dims=(1, 2)))

    def test_non_square_batch_is_an_error(self) -> None:
        with pytest.raises(ValueError, match=r"square images N x C x H x H, got shape \(1, 3, 4, 5\)"):
            rotate_batch(torch.zeros(1, 3, 4, 5))


class TestRotationLabels:
    def test_length_and_labels(self) -> None:
        rotations = RotationLabels(TensorDataset(_random_images(3, 4, 4), torch.tensor([7, 8, 9])))
        assert len(rotations) == 3 * NUM_ROTATIONS == 12
        assert [rotations[k][1] for k in range(12)] == [0, 1, 2, 3] * 3

    def test_tensors_are_rotated_like_rot90(self) -> None:
        images = _random_images(2, 5, 7)  # non-square: the sides swap, nothing is resampled
        rotations = RotationLabels(TensorDataset(images, torch.zeros(2)))
        for i in range(2):
            for r in range(NUM_ROTATIONS):
                image, target = rotations[4 * i + r]
                assert target == r
                assert torch.equal(image, torch.rot90(images[i], r, dims=(1, 2)))
        assert rotations[1][0].shape == (3, 7, 5)

    def test_same_convention_as_rotate_batch(self) -> None:
        images = _random_images(3, 6, 6)
        rotated, labels = rotate_batch(images)
        rotations = RotationLabels(TensorDataset(images, torch.zeros(3)))
        for i in range(3):
            for r in range(NUM_ROTATIONS):
                image, target = rotations[4 * i + r]
                assert torch.equal(image, rotated[r * 3 + i]) and target == labels[r * 3 + i]

    def test_pil_images_are_rotated_by_exact_transposes(self) -> None:
        array = _random_images(1, 5, 7)[0].permute(1, 2, 0).numpy()
        rotations = RotationLabels([(Image.fromarray(array), 0)])
        for r in range(NUM_ROTATIONS):
            image, target = rotations[r]
            assert isinstance(image, Image.Image) and target == r
            # Counter-clockwise, as np.rot90 and torch.rot90 turn the (row, column) plane.
            assert np.array_equal(np.asarray(image), np.rot90(array, r))

    def test_pil_and_tensor_items_agree(self) -> None:
        dataset = SingleImageDataset(**SMALL)
        tensors = SingleImageDataset(**SMALL, transform=PILToTensor())
        pil, tensor = RotationLabels(dataset), RotationLabels(tensors)
        for k in (0, 5, 10, 23):
            assert torch.equal(PILToTensor()(pil[k][0]), tensor[k][0])

    def test_through_a_dataloader_with_workers(self) -> None:
        rotations = RotationLabels(SingleImageDataset(**SMALL, transform=PILToTensor()))
        expected = torch.stack([rotations[k][0] for k in range(len(rotations))])
        loader = DataLoader(rotations, batch_size=8, num_workers=2)
        batches = list(loader)
        assert torch.equal(torch.cat([x for x, _ in batches]), expected)
        assert torch.cat([y for _, y in batches]).tolist() == [0, 1, 2, 3] * SMALL["num_imgs"]

    def test_pickle_round_trip(self) -> None:
        rotations = RotationLabels(SingleImageDataset(**SMALL, transform=PILToTensor()))
        again = pickle.loads(pickle.dumps(rotations))
        assert len(again) == len(rotations) and torch.equal(again[7][0], rotations[7][0])

    def test_negative_index_and_out_of_range(self) -> None:
        rotations = RotationLabels(TensorDataset(_random_images(2, 4, 4), torch.zeros(2)))
        assert torch.equal(rotations[-1][0], rotations[7][0]) and rotations[-1][1] == 3
        with pytest.raises(IndexError, match=r"index 8 is out of range for 8 rotated samples \(4 x 2\)"):
            rotations[8]

    def test_other_image_types_are_an_error(self) -> None:
        rotations = RotationLabels([(np.zeros((4, 4, 3), np.uint8), 0)])
        with pytest.raises(TypeError, match="can rotate PIL images and .* tensors, got ndarray; give the wrapped"):
            rotations[1]


class TestPseudoLabelled:
    def test_items_follow_indices_and_labels(self) -> None:
        base = TensorDataset(torch.arange(5.0), torch.full((5,), -1))
        view = PseudoLabelled(base, indices=np.array([4, 1, 1]), labels=[10, 11, 12, 13, 14])
        assert len(view) == 3
        assert [(float(x), y) for x, y in (view[j] for j in range(3))] == [(4.0, 14), (1.0, 11), (1.0, 11)]

    def test_defaults_show_every_index_with_label_zero(self) -> None:
        view = PseudoLabelled(TensorDataset(torch.arange(4.0), torch.full((4,), -1)))
        items = [view[j] for j in range(len(view))]
        assert [(float(x), y) for x, y in items] == [(0.0, 0), (1.0, 0), (2.0, 0), (3.0, 0)]

    def test_through_a_dataloader(self) -> None:
        dataset = SingleImageDataset(**SMALL, transform=PILToTensor())
        labels = torch.tensor([3, 1, 4, 1, 5, 9])
        x, y = next(iter(DataLoader(PseudoLabelled(dataset, [5, 0, 2], labels), batch_size=3)))
        assert y.tolist() == [9, 3, 4]
        assert torch.equal(x, torch.stack([dataset[i][0] for i in (5, 0, 2)]))

    def test_labels_of_the_wrong_length_are_an_error(self) -> None:
        with pytest.raises(ValueError, match=r"one label per index of the dataset \(4\), got 2; pass the labels"):
            PseudoLabelled(TensorDataset(torch.zeros(4)), [0, 1], labels=[0, 1])

    @pytest.mark.parametrize(
        ("indices", "error", "pattern"),
        [
            ([0, 4], IndexError, r"indices should be in \[0, 4\), the dataset's indices, got 4$"),
            ([2, -1], IndexError, r"indices should be in \[0, 4\), the dataset's indices, got -1$"),
            ([2**70], IndexError, r"indices should be in \[0, 4\), the dataset's indices, got 1180591620717411303424$"),
            (np.array([1.0, 2.0]), TypeError, r"indices should be integers, got float 1\.0$"),
            ([1, True], TypeError, r"indices should be integers, got bool True$"),
            (torch.tensor([0.5]), TypeError, r"indices should be integers, got float 0\.5$"),
            ([[0, 1]], ValueError, r"indices should be a one-dimensional sequence of integers, got shape \(1, 2\)$"),
        ],
    )
    def test_bad_indices_are_refused_at_construction(self, indices, error, pattern) -> None:
        with pytest.raises(error, match=pattern):
            PseudoLabelled(TensorDataset(torch.zeros(4)), indices)

    @pytest.mark.parametrize(
        ("labels", "error", "pattern"),
        [
            ([0, 1, 2, -3], ValueError, r"labels should be class indices in \[0, 2\*\*63\), got -3$"),
            ([0, 1, 2, 2**64], ValueError, r"labels should be class .* got 18446744073709551616$"),
            (np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64), ValueError, r"class .* got 18446744073709551615$"),
            ([0.0, 1.0, 2.0, 3.0], TypeError, r"labels should be integers, got float 0\.0$"),
            (torch.tensor([0.0, 1.5, 2.0, 3.0]), TypeError, r"labels should be integers, got float 0\.0$"),
            (torch.ones(4, dtype=torch.bool), TypeError, r"labels should be integers, got bool True$"),
            (["a", "b", "c", "d"], TypeError, r"labels should be integers, got str 'a'$"),
        ],
    )
    def test_bad_labels_are_refused_at_construction(self, labels, error, pattern) -> None:
        with pytest.raises(error, match=pattern):
            PseudoLabelled(TensorDataset(torch.zeros(4)), labels=labels)

    def test_integer_arrays_and_tensors_of_any_width_are_fine(self) -> None:
        base = TensorDataset(torch.arange(4.0), torch.zeros(4))
        view = PseudoLabelled(base, np.array([3, 0], dtype=np.uint64), torch.tensor([7, 6, 5, 4], dtype=torch.int32))
        assert [(float(x), y) for x, y in (view[0], view[1])] == [(3.0, 4), (0.0, 7)]
        assert len(PseudoLabelled(base, [])) == 0


def _package_modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")}


def _dotted(node: ast.AST) -> str:
    """``torch.random.manual_seed`` for the call target ``torch.random.manual_seed``; '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


# Functions that seed, save or restore a global RNG, or draw from one when no ``generator=`` is given.
_GLOBAL_STATE = {"manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state", "fork_rng", "manual_seed_all"}
_DRAWS = {
    "rand", "randn", "randint", "randperm", "multinomial", "bernoulli", "normal", "poisson", "rand_like", "randn_like",
    "randint_like", "uniform_", "normal_", "random_", "exponential_", "bernoulli_", "cauchy_", "geometric_",
    "log_normal_",
}
_NUMPY_OWN_STREAMS = {"default_rng", "SeedSequence", "Generator", "BitGenerator", "PCG64", "PCG64DXSM", "Philox"}


class TestPackageHoldsNoTrainingProgram:
    def test_examples_module_is_gone(self) -> None:
        assert not (PACKAGE / "examples").exists()
        # Searched in this package's own folder: an editable install of another checkout, whose finder
        # sys.meta_path also consults, could still answer for the name.
        assert PathFinder.find_spec("single_image_dataset.examples", single_image_dataset.__path__) is None
        assert {m.name for m in pkgutil.iter_modules(single_image_dataset.__path__)} >= {"tasks", "dataset", "cli"}

    def test_no_distributed_training_nor_networks(self) -> None:
        for name, tree in _package_modules().items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    imported = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    imported = []
                for module in imported:
                    assert not module.startswith(("torch.nn.parallel", "torch.distributed", "torch.optim")), (
                        f"{name} imports {module}"
                    )
                if isinstance(node, ast.ClassDef):
                    assert node.name != "AlexNet" and not any(_dotted(b).endswith("Module") for b in node.bases), (
                        f"{name} defines the network {node.name}"
                    )

    def test_no_global_random_state(self) -> None:
        for name, tree in _package_modules().items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                    assert "random" not in modules, f"{name} imports the random module"
                if not isinstance(node, ast.Call):
                    continue
                target = _dotted(node.func)
                root, _, function = target.rpartition(".")
                where = f"{name}:{node.lineno} calls {target}"
                if root.startswith(("torch", "np.random", "numpy.random")):
                    assert function not in _GLOBAL_STATE, where
                if root in ("np.random", "numpy.random"):
                    assert function in _NUMPY_OWN_STREAMS, where
                if function in _DRAWS:
                    assert any(k.arg == "generator" for k in node.keywords), f"{where} without a generator"
