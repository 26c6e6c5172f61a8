"""Mutual k-NN alignment against a brute-force NumPy loop, its range and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mm_align.metrics.knn import mutual_knn, nearest_neighbors


def _ref_neighbors(x: np.ndarray, k: int) -> list[set[int]]:
    """For each i, the k other rows of highest cosine similarity (ties: lower index)."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for i in range(len(u)):
        sims = [(-float(u[i] @ u[j]), j) for j in range(len(u)) if j != i]
        out.append({j for _, j in sorted(sims)[:k]})
    return out


def _ref_mutual_knn(a: np.ndarray, b: np.ndarray, k: int) -> float:
    na, nb = _ref_neighbors(a, k), _ref_neighbors(b, k)
    return float(np.mean([len(sa & sb) / k for sa, sb in zip(na, nb)]))


@pytest.mark.parametrize(("n", "k"), [(30, 1), (30, 5), (50, 10), (12, 11)])
def test_matches_brute_force(n: int, k: int) -> None:
    rng = np.random.default_rng(n * 10 + k)
    a = rng.standard_normal((n, 6))
    b = np.tanh(a @ rng.standard_normal((6, 9))) + 0.5 * rng.standard_normal((n, 9))
    got = mutual_knn(torch.from_numpy(a), torch.from_numpy(b), k=k)
    assert got == pytest.approx(_ref_mutual_knn(a, b, k), abs=1e-15)
    assert 0 <= got <= 1


def test_neighbors_match_brute_force_and_exclude_self() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((25, 4))
    knn = nearest_neighbors(torch.from_numpy(x), 4)
    assert knn.shape == (25, 4) and knn.dtype == torch.int64
    assert [set(row) for row in knn.tolist()] == _ref_neighbors(x, 4)
    assert all(i not in row for i, row in enumerate(knn.tolist()))


def test_ties_go_to_the_lower_index() -> None:
    # Rows 1, 2, 3 are the same direction: row 0's nearest among them is row 1.
    x = torch.tensor([[1.0, 0.1], [2.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    assert nearest_neighbors(x, 1)[0].item() == 1
    assert nearest_neighbors(x, 2)[2].tolist() == [1, 3]


def test_identical_spaces_and_invariances() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(40, 8, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))[0]
    scale = torch.rand(40, 1, generator=g, dtype=torch.float64) + 0.1
    assert mutual_knn(a, a, k=5) == 1.0
    # Cosine neighbours ignore rotations and per-row positive scaling.
    assert mutual_knn(a, scale * (a @ q), k=5) == 1.0
    assert mutual_knn(a, torch.randn(40, 3, generator=g), k=39) == 1.0  # k = n - 1


def test_numpy_integer_k_is_accepted() -> None:
    a = torch.randn(10, 3)
    assert mutual_knn(a, a, k=np.int64(3)) == 1.0


def test_unrelated_spaces_score_near_chance() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    assert mutual_knn(a, b, k=20) == pytest.approx(20 / 399, abs=0.02)


@pytest.mark.parametrize(
    ("a", "b", "k", "message"),
    [
        (torch.randn(5, 3), torch.randn(5, 3), 5, "k = 5 needs at least k \\+ 1 = 6"),
        (torch.randn(5, 3), torch.randn(5, 3), 9, "needs at least"),
        (torch.randn(5, 3), torch.randn(5, 3), 0, "positive int"),
        (torch.randn(5, 3), torch.randn(5, 3), 2.0, "positive int"),
        (torch.randn(5, 3), torch.randn(6, 3), 2, "same samples"),
        (torch.randn(5), torch.randn(5, 3), 2, "2-D"),
        (torch.zeros(5, 3), torch.randn(5, 3), 2, "all-zero rows"),
        (torch.full((5, 3), float("nan")), torch.randn(5, 3), 2, "NaN or Inf"),
    ],
)
def test_bad_input(a, b, k, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mutual_knn(a, b, k=k)
