"""The fast spectral paths (one-triangle Gram, shared image/joint Gram, batched spectra,
reduce_batch) against the independent float64 reference of the official procedure."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mm_align.metrics import VanishingRowsWarning, spectral_entropy, spectrum
from mm_align.metrics.batch import batch_entropies, batch_spectra
from mm_align.metrics.gram import lower_gram, spectra_of_grams
from mm_align.metrics.nested import nested_grams, nested_spectra
from mm_align.pipeline.reduce import MetricError, reduce_batch, reduce_sample
from tests.reference import official_entropy


def _rel(got: float, want: float) -> float:
    """Relative difference; absolute below 1 nat (an entropy of 0 has no relative error)."""
    return abs(got - want) / max(1.0, abs(want))


def _joint(n_image: int, n_text: int, d: int, offset: float, seed: int, shuffle: bool):
    """Image rows (a decaying spectrum around ``offset``) and text rows, and the image subset."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n_image, d, generator=g, dtype=torch.float64) * torch.logspace(
        0, -2, d, dtype=torch.float64) + offset
    text = 3 * torch.randn(n_text, d, generator=g, dtype=torch.float64)
    R = torch.cat([image, text])
    subset = torch.arange(n_image + n_text) < n_image
    if shuffle:
        perm = torch.randperm(n_image + n_text, generator=g)
        R, subset = R[perm], subset[perm]
    return R, subset


@pytest.mark.parametrize("n", [1, 5, 127, 128, 300, 1100])
def test_lower_gram_is_the_lower_triangle_of_the_product(n: int) -> None:
    Y = torch.randn(n, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    got = lower_gram(Y)
    want = (Y.numpy() @ Y.numpy().T)
    np.testing.assert_allclose(np.tril(got.numpy()), np.tril(want), rtol=1e-12, atol=1e-12)
    upper = got.numpy()[np.triu_indices(n, 1)]
    full = want[np.triu_indices(n, 1)]
    assert np.all((upper == 0) | np.isclose(upper, full, rtol=1e-12, atol=1e-12))


@pytest.mark.parametrize(
    ("n_image", "n_text", "d", "offset", "shuffle"),
    [(60, 20, 128, 0.0, False), (60, 20, 128, 5.0, True), (200, 50, 512, 30.0, True),
     (2, 30, 16, 0.0, True), (90, 10, 32, 1.0, False)],  # the last: N > d, computed apart
)
def test_nested_spectra_match_the_official_reference(n_image, n_text, d, offset, shuffle) -> None:
    R, subset = _joint(n_image, n_text, d, offset, seed=n_image + d, shuffle=shuffle)
    whole, part = nested_spectra(R, subset)
    assert _rel(spectral_entropy(whole), official_entropy(R.numpy())) <= 1e-9
    assert _rel(spectral_entropy(part), official_entropy(R[subset].numpy())) <= 1e-9
    assert whole.shape == (min(len(R), d),) and part.shape == (min(n_image, d),)
    torch.testing.assert_close(whole, spectrum(R), rtol=0, atol=1e-14)
    torch.testing.assert_close(part, spectrum(R[subset]), rtol=0, atol=1e-14)


def test_nested_grams_drop_vanishing_rows_of_each_stage_alone() -> None:
    g = torch.Generator().manual_seed(7)
    half = torch.randn(20, 40, generator=g, dtype=torch.float64)
    # Zero rows are the mean of the +-symmetric image block, not of the joint rows.
    image = torch.cat([half, -half, torch.zeros(2, 40, dtype=torch.float64)])
    R = torch.cat([image, 4 + torch.randn(10, 40, generator=g, dtype=torch.float64)])
    subset = torch.arange(len(R)) < len(image)
    with pytest.warns(VanishingRowsWarning, match="dropped 2 of 42"):
        g_all, g_sub = nested_grams(R, subset)
    assert g_all.shape == (40, 40) and g_sub.shape == (40, 40)
    whole, part = spectra_of_grams([g_all, g_sub])
    assert _rel(spectral_entropy(part), official_entropy(torch.cat([half, -half]).numpy())) <= 1e-9
    assert _rel(spectral_entropy(whole), official_entropy(R.numpy())) <= 1e-9


@pytest.mark.parametrize(
    ("subset", "message"),
    [(torch.tensor([True] + [False] * 9), "at least 2"), (torch.ones(9, dtype=torch.bool), "length 10")],
)
def test_nested_rejects_bad_subsets(subset: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nested_spectra(torch.randn(10, 16), subset)


def test_batch_spectra_equal_single_spectra_bit_for_bit_on_cpu() -> None:
    g = torch.Generator().manual_seed(3)
    mats = [torch.randn(n, d, generator=g) for n, d in [(30, 64), (64, 16), (5, 5), (200, 256)]]
    for got, R in zip(batch_spectra(mats), mats):
        assert torch.equal(got, spectrum(R))
    for h, R in zip(batch_entropies(mats), mats):
        assert _rel(h, official_entropy(R.double().numpy())) <= 1e-9


def test_batch_spectra_name_the_bad_matrix() -> None:
    with pytest.raises(ValueError, match=r"matrix 1: .*at least 2 token vectors"):
        batch_spectra([torch.randn(4, 4), torch.randn(1, 4)])


@pytest.mark.slow
def test_float32_gram_tolerance() -> None:
    # The documented faster path: float32 product, float64 eigen-solver (docs/CHOICES.md).
    R, subset = _joint(576, 100, 1024, 2.0, seed=11, shuffle=False)
    g64, g32 = nested_grams(R, subset), nested_grams(R, subset, dtype=torch.float32)
    for a, b in zip(spectra_of_grams(list(g64)), spectra_of_grams(list(g32))):
        assert _rel(spectral_entropy(b), spectral_entropy(a)) <= 1e-6


class _Rep(dict):
    """A Representation-like mapping: the LLM stages cut from one joint tensor by masks."""

    def __init__(self, seed: int, n_image: int = 12, n_text: int = 6, d: int = 48) -> None:
        g = torch.Generator().manual_seed(seed)
        states = torch.randn(1 + n_image + n_text, d, generator=g)
        image = torch.zeros(len(states), dtype=torch.bool)
        image[1 : 1 + n_image] = True
        joint = image.clone()
        joint[1 + n_image :] = True
        self.masks = {"image": image, "joint": joint, "text": torch.ones(n_text, dtype=torch.bool)}
        super().__init__(vision=torch.randn(4 * n_image, 24, generator=g),
                         projector=torch.randn(n_image, d, generator=g),
                         image=states[image], joint=states[joint],
                         text=torch.randn(n_text, d, generator=g))

    def layer(self, stage: str, layer: int) -> torch.Tensor:
        return self[stage] * (1 + layer)  # a per-row scale: entropies equal the last layer's


def test_reduce_sample_matches_reference_per_stage() -> None:
    rep = _Rep(0)
    record = reduce_sample(rep, layers=[0, 2])
    for stage, states in rep.items():
        want = official_entropy(states.double().numpy())
        assert _rel(record[f"entropy_{stage}"], want) <= 1e-9
        assert record[f"erank_{stage}"] == pytest.approx(math.exp(want), rel=1e-9)
    for stage in ("image", "text", "joint"):
        assert record["layer_entropies"][stage]["2"] == pytest.approx(record[f"entropy_{stage}"], rel=1e-9)


def test_reduce_batch_isolates_failures_and_equals_reduce_sample() -> None:
    good, bad = _Rep(1), _Rep(2, n_text=1)
    out = reduce_batch([good, bad, _Rep(3)])
    assert isinstance(out[1], MetricError) and "text states (1 tokens)" in str(out[1])
    assert out[0] == reduce_sample(good) and out[2] == reduce_sample(_Rep(3))


def test_reduce_falls_back_when_image_rows_are_not_the_joint_rows() -> None:
    rep = _Rep(4)
    rep["image"] = rep["image"] + 1e-3  # e.g. an adapter whose image stage is its own pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = reduce_sample(rep)
    assert _rel(record["entropy_image"], official_entropy(rep["image"].double().numpy())) <= 1e-9


@pytest.mark.gpu
@pytest.mark.parametrize("device", [None, "cpu"])
def test_cuda_batched_spectra_equal_cpu_float64(device) -> None:
    g = torch.Generator().manual_seed(5)
    mats = [torch.randn(n, 512, generator=g) for n in (300, 280, 250, 40)]
    got = batch_spectra([m.cuda().to(torch.bfloat16) for m in mats], device=device)
    for p, m in zip(got, mats):
        want = official_entropy(m.to(torch.bfloat16).double().numpy())
        assert _rel(spectral_entropy(p), want) <= 1e-9
        assert p.device.type == ("cpu" if device == "cpu" else "cuda")


@pytest.mark.gpu
def test_cuda_nested_spectra_match_reference() -> None:
    R, subset = _joint(300, 60, 1024, 3.0, seed=9, shuffle=True)
    whole, part = nested_spectra(R.cuda(), subset.cuda())
    assert _rel(spectral_entropy(whole), official_entropy(R.numpy())) <= 1e-9
    assert _rel(spectral_entropy(part), official_entropy(R[subset].numpy())) <= 1e-9
