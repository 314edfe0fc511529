"""The training program's torch k-means and NMI, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from training import kmeans, kmeans_plus_plus, normalized_mutual_info

pytestmark = pytest.mark.filterwarnings("error")


def _blobs(n_per: int, centres: list[list[float]], spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres_t = torch.tensor(centres)
    truth = torch.arange(len(centres)).repeat_interleave(n_per)
    return centres_t[truth] + spread * torch.randn(len(truth), centres_t.shape[1], generator=g), truth


class TestKMeans:
    def test_recovers_separated_blobs(self) -> None:
        x, truth = _blobs(50, [[0, 0], [10, 0], [0, 10], [10, 10]], 0.5, seed=1)
        labels, centroids = kmeans(x, 4, generator=torch.Generator().manual_seed(0))
        assert normalized_mutual_info(labels, truth) == pytest.approx(1.0)
        assert centroids.shape == (4, 2)
        for c in range(4):
            torch.testing.assert_close(centroids[c], x[labels == c].mean(0))

    def test_same_generator_same_result(self) -> None:
        x, _ = _blobs(30, [[0, 0, 0], [1, 1, 1], [2, 0, 1]], 1.0, seed=2)
        a, _ = kmeans(x, 5, generator=torch.Generator().manual_seed(7))
        b, _ = kmeans(x, 5, generator=torch.Generator().manual_seed(7))
        assert torch.equal(a, b)

    def test_no_empty_cluster_with_duplicates(self) -> None:
        # 20 copies of one point and 6 distinct ones: k-means++ and the re-seeding keep all 6 used.
        x = torch.cat([torch.zeros(20, 2), torch.arange(1.0, 6.0)[:, None].repeat(1, 2)])
        labels, _ = kmeans(x, 6, iters=5, generator=torch.Generator().manual_seed(0))
        assert labels.unique().numel() == 6

    def test_k_equals_one_and_n(self) -> None:
        x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
        assert kmeans(x, 1)[0].tolist() == [0] * 5
        assert sorted(kmeans(x, 5)[0].tolist()) == [0, 1, 2, 3, 4]

    def test_plus_plus_picks_rows(self) -> None:
        x = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
        centroids = kmeans_plus_plus(x, 3, torch.Generator().manual_seed(0))
        assert sorted(map(tuple, centroids.tolist())) == sorted(map(tuple, x.tolist()))

    @pytest.mark.parametrize(
        ("x", "k", "match"),
        [
            (torch.zeros(4), 2, r"x should be an N x D matrix, got shape \(4,\)"),
            (torch.zeros(4, 2), 5, r"k should be in \[1, 4\] \(the number of points\), got 5"),
            (torch.zeros(4, 2), 0, r"k should be in \[1, 4\]"),
        ],
    )
    def test_errors(self, x: torch.Tensor, k: int, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            kmeans(x, k)


class TestNormalizedMutualInfo:
    def test_identical_partitions_with_other_names(self) -> None:
        a, b = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([5, 5, 3, 3, 9])
        assert normalized_mutual_info(a, b) == pytest.approx(1.0)

    def test_independent(self) -> None:
        assert normalized_mutual_info(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])) == 0.0

    def test_hand_computed(self) -> None:
        # a = [0,0,1,1], b = [0,0,0,1]: joint p(0,0)=1/2, p(1,0)=1/4, p(1,1)=1/4; p(a)=(1/2,1/2), p(b)=(3/4,1/4).
        # I = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2 = 0.215762; H(a) = ln 2 = 0.693147;
        # H(b) = -(3/4 ln 3/4 + 1/4 ln 1/4) = 0.562335; NMI = I / ((H(a) + H(b)) / 2) = 0.343712.
        mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
        h_b = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
        expected = mi / ((math.log(2) + h_b) / 2)
        assert expected == pytest.approx(0.343712, abs=1e-6)
        a, b = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 1])
        assert normalized_mutual_info(a, b) == pytest.approx(expected, abs=1e-12)
        assert normalized_mutual_info(b, a) == pytest.approx(expected, abs=1e-12)

    def test_hand_computed_refinement(self) -> None:
        # b refines a = [0,0,1,1] into [0,1,2,3]: I = H(a) = ln 2, H(b) = ln 4, NMI = ln2 / (1.5 ln 2) = 2/3.
        assert normalized_mutual_info(torch.tensor([0, 0, 1, 1]), torch.arange(4)) == pytest.approx(2 / 3)

    def test_constant_labelings(self) -> None:
        assert normalized_mutual_info(torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)) == 1.0
        assert normalized_mutual_info(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 0, 1])) == 0.0

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"equal length, got shapes \(3,\) and \(2,\)"):
            normalized_mutual_info(torch.zeros(3), torch.zeros(2))
        with pytest.raises(ValueError, match="non-empty"):
            normalized_mutual_info(torch.zeros(0), torch.zeros(0))
