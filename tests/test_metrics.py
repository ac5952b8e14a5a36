"""Tests for latentbridge.metrics: identities and closed forms, agreement of the computational
forms, negative controls, cross-checks against independent implementations (numpy references
written here, scipy, scikit-learn, torchmetrics), real data (scikit-learn's digits) and input
validation.

The references below are deliberately naive: full N x N Gram matrices, explicit centring
matrices, Python loops over samples. None of them calls the library.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes as scipy_procrustes
from scipy.spatial.distance import cdist, pdist
from scipy.stats import pearsonr, spearmanr

from latentbridge import metrics
from latentbridge.metrics import (
    RetrievalScores,
    bures_similarity,
    canonical_correlations,
    distance_correlation,
    jaccard_knn,
    linear_cka,
    mean_cosine,
    mutual_knn,
    procrustes_distance,
    rbf_cka,
    retrieval,
    svcca,
)

FORMS = ("feature", "gram", "streaming")
seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------- helpers


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign of R's diagonal fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _isometric_copy(x: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """``scale * x Q + t``: rotation (or reflection), translation and isotropic scaling."""
    d = x.shape[1]
    return scale * x @ _orthogonal(d, rng) + rng.normal(0.0, 3.0, size=d)


# --------------------------------------------------------------------------- naive references


def ref_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Biased CKA from uncentred Gram matrices and the explicit centring matrix H."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k = h @ (x @ x.T) @ h
    l_ = h @ (y @ y.T) @ h
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))


def ref_hsic_u(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012), literally: K~, L~ with zero diagonal, traces and all-ones vectors."""
    n = len(k)
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    return float(
        (
            np.trace(kt @ lt)
            + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)
        )
        / (n * (n - 3))
    )


def ref_cka_from_grams(k: np.ndarray, l_: np.ndarray) -> float:
    return ref_hsic_u(k, l_) / math.sqrt(ref_hsic_u(k, k) * ref_hsic_u(l_, l_))


def ref_debiased_cka_ucentred(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s debiased CKA: U-centred Gram matrices (their ``center_gram``)."""

    def u_centre(gram: np.ndarray) -> np.ndarray:
        gram = gram.copy()
        n = len(gram)
        np.fill_diagonal(gram, 0.0)
        means = gram.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0.0)
        return gram

    k, l_ = u_centre(x @ x.T), u_centre(y @ y.T)
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))


def ref_rbf_cka(x: np.ndarray, y: np.ndarray, sigma: float | None = None) -> float:
    def gram(z: np.ndarray) -> np.ndarray:
        d = cdist(z, z)
        s = np.median(pdist(z)) if sigma is None else sigma
        return np.exp(-(d**2) / (2 * s**2))

    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ gram(x) @ h, h @ gram(y) @ h
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))


def ref_knn_sets(z: np.ndarray, k: int, metric: str) -> list[set[int]]:
    """k nearest of each sample, self excluded, ties to the lower index (Python's sort)."""
    n = len(z)
    if metric == "cosine":
        norms = np.linalg.norm(z, axis=1)
        unit = np.divide(z, norms[:, None], out=np.zeros_like(z), where=norms[:, None] > 0)
        score = unit @ unit.T
    else:
        score = -cdist(z, z, "sqeuclidean")
    return [
        set(sorted((j for j in range(n) if j != i), key=lambda j: (-score[i, j], j))[:k])
        for i in range(n)
    ]


def ref_overlap(a: list[set[int]], b: list[set[int]], k: int) -> tuple[float, float]:
    """(jaccard, mutual) from explicit neighbour sets."""
    jac = np.mean([len(p & q) / len(p | q) for p, q in zip(a, b, strict=True)])
    mut = np.mean([len(p & q) / k for p, q in zip(a, b, strict=True)])
    return float(jac), float(mut)


def ref_ranks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pessimistic rank of y_i for the query x_i, by a loop over queries."""
    xu = x / np.linalg.norm(x, axis=1, keepdims=True)
    yu = y / np.linalg.norm(y, axis=1, keepdims=True)
    s = xu @ yu.T
    return np.array(
        [1 + sum(s[i, j] >= s[i, i] for j in range(len(x)) if j != i) for i in range(len(x))]
    )


# --------------------------------------------------------------------------- linear CKA


@given(
    n=st.integers(5, 40),
    d=st.integers(1, 8),
    scale=st.floats(0.01, 100.0),
    debiased=st.booleans(),
    method=st.sampled_from(FORMS),
    seed=seeds,
)
def test_linear_cka_is_one_for_isometric_and_scaled_copies(
    n: int, d: int, scale: float, debiased: bool, method: str, seed: int
) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((n, d))
    y = _isometric_copy(x, rng, scale)
    assert linear_cka(x, y, debiased=debiased, method=method) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, scale * x, debiased=debiased, method=method) == pytest.approx(
        1.0, abs=1e-9
    )


@given(
    n=st.integers(4, 30),
    d1=st.integers(1, 40),
    d2=st.integers(1, 40),
    debiased=st.booleans(),
    chunk=st.integers(1, 7),
    seed=seeds,
)
def test_linear_cka_forms_agree_with_each_other_and_naive_references(
    n: int, d1: int, d2: int, debiased: bool, chunk: int, seed: int
) -> None:
    # D > N is included: the regime where the gram form is cheaper and the biased CKA inflated.
    rng = _rng(seed)
    x = rng.standard_normal((n, d1)) + rng.normal(0.0, 2.0, size=d1)
    y = np.tanh(x @ rng.standard_normal((d1, d2))) + rng.standard_normal((n, d2))
    values = [linear_cka(x, y, debiased=debiased, method=m) for m in FORMS]
    values.append(linear_cka(x, y, debiased=debiased, method="streaming", chunk_size=chunk))
    values.append(linear_cka(x, y, debiased=debiased))  # auto
    np.testing.assert_allclose(values, values[0], rtol=0, atol=1e-10)
    if debiased:
        xc, yc = x - x.mean(0), y - y.mean(0)
        expected = ref_cka_from_grams(xc @ xc.T, yc @ yc.T)
        np.testing.assert_allclose(values[0], ref_debiased_cka_ucentred(x, y), atol=1e-9)
    else:
        expected = ref_linear_cka(x, y)
    np.testing.assert_allclose(values[0], expected, atol=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_streaming_small_chunks_equal_exact(debiased: bool) -> None:
    rng = _rng(0)
    x = rng.standard_normal((103, 6)).astype(np.float32) + 10.0
    y = x[:, :4] ** 2 + rng.standard_normal((103, 4)).astype(np.float32)
    exact = linear_cka(x, y, debiased=debiased, method="feature")
    for chunk in (1, 2, 10, 103, 1000):
        got = linear_cka(x, y, debiased=debiased, method="streaming", chunk_size=chunk)
        assert got == pytest.approx(exact, abs=1e-10)
    assert 0.1 < exact < 0.99  # a non-trivial value, so that agreement means something


@given(debiased=st.booleans(), method=st.sampled_from(FORMS), seed=seeds)
def test_linear_cka_is_symmetric(debiased: bool, method: str, seed: int) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((20, 5))
    y = x[:, :3] @ rng.standard_normal((3, 7)) + rng.standard_normal((20, 7))
    assert linear_cka(x, y, debiased=debiased, method=method) == pytest.approx(
        linear_cka(y, x, debiased=debiased, method=method), abs=1e-12
    )


def test_linear_cka_negative_controls() -> None:
    rng = _rng(1)
    x = rng.standard_normal((400, 5))
    stretched = x * np.array([1.0, 1.0, 1.0, 1.0, 10.0])
    # Closed form for isotropic x and y = x S: (sum s^2) / sqrt(D sum s^4) = 0.465.
    assert linear_cka(x, stretched) == pytest.approx(104 / math.sqrt(5 * 10004), abs=0.05)
    assert linear_cka(x, stretched) < 0.6
    assert linear_cka(x, rng.standard_normal((400, 5))) < 0.1


def test_debiased_cka_removes_the_high_dimensional_bias() -> None:
    rng = _rng(2)
    x, y = rng.standard_normal((50, 2000)), rng.standard_normal((50, 2000))
    assert linear_cka(x, y) > 0.5  # biased: inflated when D >> N
    for method in FORMS:
        assert abs(linear_cka(x, y, debiased=True, method=method)) < 0.1
    related = x + 0.5 * rng.standard_normal((50, 2000))  # positive control
    assert linear_cka(x, related, debiased=True) > 0.7


def test_linear_cka_auto_rule_is_the_documented_one() -> None:
    auto = metrics._auto_cka_method
    assert auto(1000, 768, 768) == "gram"  # N (D1 + D2) < D1^2 + D2^2 + D1 D2
    assert auto(10_000, 768, 768) == "feature"
    assert auto(100_000, 768, 768) == "streaming"  # 8 N (D1 + D2) bytes > 1 GiB
    assert auto(100, 10, 10) == "feature"


def test_linear_cka_accepts_torch_and_low_precision() -> None:
    rng = _rng(3)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = np.sin(x @ rng.standard_normal((8, 5)).astype(np.float32))
    expected = linear_cka(x.astype(np.float64), y.astype(np.float64))
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        expected, abs=1e-12
    )
    xg = torch.from_numpy(x).requires_grad_(True)
    assert isinstance(linear_cka(xg, y), float)
    half = linear_cka(torch.from_numpy(x).bfloat16(), torch.from_numpy(y).half())
    assert half == pytest.approx(expected, abs=1e-2)


# --------------------------------------------------------------------------- RBF CKA


@given(scale=st.floats(0.1, 10.0), debiased=st.booleans(), seed=seeds)
def test_rbf_cka_isometries(scale: float, debiased: bool, seed: int) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((30, 4))
    assert rbf_cka(x, _isometric_copy(x, rng), debiased=debiased) == pytest.approx(1.0, abs=1e-9)
    # The median bandwidth follows an isotropic scaling; a fixed one does not.
    assert rbf_cka(x, scale * x, debiased=debiased) == pytest.approx(1.0, abs=1e-9)


def test_rbf_cka_negative_controls_and_reference() -> None:
    rng = _rng(4)
    x = rng.standard_normal((80, 4))
    assert rbf_cka(x, 5.0 * x, sigma=1.0) < 0.9
    assert rbf_cka(x, x * np.array([1.0, 1.0, 1.0, 8.0])) < 0.9
    assert rbf_cka(x, np.tanh(3.0 * x) ** 2) < 0.9
    y = np.tanh(x @ rng.standard_normal((4, 6)))
    assert rbf_cka(x, y) == pytest.approx(ref_rbf_cka(x, y), abs=1e-10)
    assert rbf_cka(x, y, sigma=2.0) == pytest.approx(ref_rbf_cka(x, y, 2.0), abs=1e-10)


def test_rbf_cka_debiased_matches_the_unbiased_hsic_of_the_kernels() -> None:
    rng = _rng(5)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 5))
    kx = np.exp(-cdist(x, x, "sqeuclidean") / (2 * np.median(pdist(x)) ** 2))
    ky = np.exp(-cdist(y, y, "sqeuclidean") / (2 * np.median(pdist(y)) ** 2))
    assert rbf_cka(x, y, debiased=True) == pytest.approx(ref_cka_from_grams(kx, ky), abs=1e-10)
    assert abs(rbf_cka(x, y, debiased=True)) < 0.15  # independent inputs


# --------------------------------------------------------------------------- Procrustes


@given(scale=st.floats(0.01, 100.0), d=st.integers(1, 6), seed=seeds)
def test_procrustes_is_zero_for_similarity_transforms(scale: float, d: int, seed: int) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((25, d))
    y = _isometric_copy(x, rng, scale)
    assert procrustes_distance(x, y) == pytest.approx(0.0, abs=1e-6)
    assert bures_similarity(x, y) == pytest.approx(1.0, abs=1e-12)


def test_procrustes_is_positive_for_anisotropic_scaling() -> None:
    x = _rng(6).standard_normal((50, 3))
    assert procrustes_distance(x, x * np.array([1.0, 1.0, 4.0])) > 0.3


@given(
    dims=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
    seed=seeds,
)
def test_procrustes_distance_metric_axioms(dims: tuple[int, int, int], seed: int) -> None:
    rng = _rng(seed)
    a, b, c = (rng.standard_normal((12, d)) for d in dims)
    dab, dba = procrustes_distance(a, b), procrustes_distance(b, a)
    assert dab == pytest.approx(dba, abs=1e-12)
    assert procrustes_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert procrustes_distance(a, c) <= dab + procrustes_distance(b, c) + 1e-9
    for p, q in ((a, b), (b, c), (a, c)):
        assert 0.0 <= bures_similarity(p, q) <= 1.0
        assert 0.0 <= procrustes_distance(p, q) <= math.sqrt(2.0) + 1e-12


def _normalise(z: np.ndarray) -> np.ndarray:
    zc = z - z.mean(0)
    return zc / np.linalg.norm(zc)


@pytest.mark.parametrize(("d1", "d2"), [(4, 4), (6, 3), (2, 5)])
def test_procrustes_matches_scipy_orthogonal_procrustes(d1: int, d2: int) -> None:
    rng = _rng(7)
    x = rng.standard_normal((40, d1))
    y = np.tanh(x @ rng.standard_normal((d1, d2))) + 0.3 * rng.standard_normal((40, d2))
    d = max(d1, d2)
    xn = np.pad(_normalise(x), ((0, 0), (0, d - d1)))
    yn = np.pad(_normalise(y), ((0, 0), (0, d - d2)))
    rotation, _ = orthogonal_procrustes(yn, xn)  # argmin_R ||yn R - xn||_F
    assert procrustes_distance(x, y) == pytest.approx(np.linalg.norm(xn - yn @ rotation), abs=1e-10)


def test_bures_matches_scipy_procrustes_disparity() -> None:
    rng = _rng(8)
    x = rng.standard_normal((30, 5))
    y = x @ rng.standard_normal((5, 5)) + rng.standard_normal((30, 5))
    _, _, disparity = scipy_procrustes(x, y)
    assert 1.0 - bures_similarity(x, y) ** 2 == pytest.approx(disparity, abs=1e-10)
    assert 0.05 < disparity < 0.95


# --------------------------------------------------------------------------- CCA and SVCCA


@given(d=st.integers(1, 6), seed=seeds)
def test_svcca_is_one_for_an_invertible_linear_map(d: int, seed: int) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((60, d))
    a = rng.standard_normal((d, d)) + 3.0 * np.eye(d)  # well conditioned, invertible
    assert svcca(x, x @ a + 5.0, variance=1.0) == pytest.approx(1.0, abs=1e-9)


def test_svcca_drops_numerical_null_directions() -> None:
    rng = _rng(9)
    z = rng.standard_normal((80, 3))
    x = z @ rng.standard_normal((3, 8))  # rank 3 in 8 dimensions
    y = z @ rng.standard_normal((3, 5))
    assert svcca(x, y, variance=1.0) == pytest.approx(1.0, abs=1e-9)
    # Stored in float32, the null directions hold rounding noise at ~1e-7 of the signal,
    # independent between x and y, but at ~1e-14 of the energy they are not kept either.
    assert svcca(x.astype(np.float32), y.astype(np.float32), variance=1.0) == pytest.approx(
        1.0, abs=1e-6
    )


def test_svcca_negative_control_and_variance_threshold() -> None:
    rng = _rng(10)
    x = rng.standard_normal((300, 6)) * np.array([5.0, 4.0, 3.0, 0.3, 0.2, 0.1])
    noisy = x + 3.0 * rng.standard_normal((300, 6))
    assert svcca(x, noisy) < 0.9  # about the mean of 5/sqrt(34), 4/5, 3/sqrt(18)
    assert svcca(x, rng.standard_normal((300, 6))) < 0.2
    # variance=0.9 keeps the 3 strong directions of each (up to a slight mixing with the weak
    # ones, hence 1e-4); with variance=1 the independent weak directions of y count.
    y = np.concatenate([x[:, :3], rng.standard_normal((300, 3)) * 0.1], axis=1)
    assert svcca(x, y, variance=0.9) == pytest.approx(1.0, abs=1e-4)
    assert svcca(x, y, variance=1.0) < 0.7


def test_canonical_correlations_match_sklearn_cca() -> None:
    from sklearn.cross_decomposition import CCA

    rng = _rng(11)
    x = rng.standard_normal((500, 3))
    y = x @ rng.standard_normal((3, 4)) + 2.0 * rng.standard_normal((500, 4))
    cca = CCA(n_components=1, max_iter=5000, tol=1e-12).fit(x, y)
    xs, ys = cca.transform(x, y)
    first = abs(np.corrcoef(xs[:, 0], ys[:, 0])[0, 1])
    corr = canonical_correlations(x, y)
    assert corr.shape == (3,) and corr.dtype == torch.float64
    assert float(corr[0]) == pytest.approx(first, abs=1e-6)
    assert bool((corr[:-1] >= corr[1:]).all())
    # svcca keeping everything is the mean of the same correlations.
    assert svcca(x, y, variance=1.0) == pytest.approx(float(corr.mean()), abs=1e-12)


# --------------------------------------------------------------------------- kNN overlap


@given(
    k=st.integers(1, 8),
    metric=st.sampled_from(["cosine", "euclidean"]),
    scale=st.floats(0.1, 10.0),
    seed=seeds,
)
def test_knn_measures_are_one_for_rotated_copies(
    k: int, metric: str, scale: float, seed: int
) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((40, 5))
    y = scale * x @ _orthogonal(5, rng)
    if metric == "euclidean":
        y = y + rng.normal(0.0, 3.0, size=5)
    assert jaccard_knn(x, y, k=k, metric=metric) == 1.0
    assert mutual_knn(x, y, k=k, metric=metric) == 1.0


def test_cosine_knn_is_not_translation_invariant() -> None:
    rng = _rng(12)
    x = rng.standard_normal((100, 5))
    assert mutual_knn(x, x + 5.0, k=10, metric="cosine") < 0.8
    assert mutual_knn(x, x + 5.0, k=10, metric="euclidean") == 1.0


def test_knn_measures_for_independent_data_are_at_chance_level() -> None:
    rng = _rng(13)
    n, k = 500, 10
    x, y = rng.standard_normal((n, 8)), rng.standard_normal((n, 8))
    chance = k / (n - 1)
    assert mutual_knn(x, y, k=k) == pytest.approx(chance, abs=0.01)
    assert jaccard_knn(x, y, k=k) < chance


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_sets_match_sklearn_nearest_neighbors(metric: str) -> None:
    from sklearn.neighbors import NearestNeighbors

    rng = _rng(14)
    x = rng.standard_normal((120, 6))
    y = x[:, :3] @ rng.standard_normal((3, 4)) + 0.7 * rng.standard_normal((120, 4))

    def sets(z: np.ndarray, k: int) -> list[set[int]]:
        nn = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute").fit(z)
        idx = nn.kneighbors(z, return_distance=False)
        return [set(row[row != i][:k]) for i, row in enumerate(idx)]

    for k in (1, 5, 17):
        jac, mut = ref_overlap(sets(x, k), sets(y, k), k)
        assert 0.05 < mut < 0.95
        for chunk in (None, 7):
            assert jaccard_knn(x, y, k=k, metric=metric, chunk_size=chunk) == pytest.approx(jac)
            assert mutual_knn(x, y, k=k, metric=metric, chunk_size=chunk) == pytest.approx(mut)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_knn_ties_break_towards_the_lower_index(k: int) -> None:
    # A 1-D grid (i - m and i + m tie) against all-zero vectors (everything ties). Mean-zero
    # integer data keeps every tie exact through the centring.
    grid = (np.arange(11.0) - 5.0)[:, None]
    zeros = np.zeros((11, 2))
    for metric in ("euclidean", "cosine"):
        jac, mut = ref_overlap(ref_knn_sets(grid, k, metric), ref_knn_sets(zeros, k, metric), k)
        assert jaccard_knn(grid, zeros, k=k, metric=metric) == pytest.approx(jac)
        assert mutual_knn(grid, zeros, k=k, metric=metric, chunk_size=3) == pytest.approx(mut)


# --------------------------------------------------------------------------- retrieval


def test_retrieval_identity_shuffled_and_constant() -> None:
    rng = _rng(15)
    x = rng.standard_normal((300, 16))
    assert retrieval(x, x) == RetrievalScores(mrr=1.0, top1=1.0, top5=1.0)
    shuffled = retrieval(x, x[rng.permutation(300)])
    assert shuffled.mrr < 0.1 and shuffled.top1 < 0.05 and shuffled.top5 < 0.1
    # Constant y: every candidate ties with the partner, so every rank is N (pessimistic).
    constant = retrieval(x, np.ones_like(x))
    # The mean of 300 equal reciprocals: its last bit depends on the summation order (CPU).
    assert constant.mrr == pytest.approx(1.0 / 300, rel=1e-12)
    assert constant.top1 == 0.0 and constant.top5 == 0.0
    # Duplicated partners tie as well (the zero vectors too: their cosine is 0).
    dup = x.copy()
    dup[1] = dup[0]
    dup[2] = 0.0
    dup[3] = 0.0
    scores = retrieval(x, dup)
    assert scores.top1 < 1.0 and scores.mrr < 1.0


def test_retrieval_matches_torchmetrics_and_a_loop() -> None:
    from torchmetrics.functional.retrieval import retrieval_reciprocal_rank

    rng = _rng(16)
    n = 200
    x = rng.standard_normal((n, 12))
    y = x + 1.2 * rng.standard_normal((n, 12))
    s = torch.from_numpy(
        (x / np.linalg.norm(x, axis=1, keepdims=True))
        @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    )
    target = torch.eye(n, dtype=torch.bool)
    # torchmetrics ignores a relevant item whose score is <= 0: shift (order unchanged).
    tm_mrr = float(
        torch.stack([retrieval_reciprocal_rank(s[i] + 2.0, target[i]) for i in range(n)]).mean()
    )
    ranks = ref_ranks(x, y)
    for chunk in (None, 1, 7, 64):
        got = retrieval(x, y, chunk_size=chunk)
        assert got.mrr == pytest.approx(tm_mrr, abs=1e-6)  # torchmetrics returns float32
        assert got.mrr == pytest.approx(np.mean(1.0 / ranks), abs=1e-12)
        assert got.top1 == pytest.approx(np.mean(ranks == 1))
        assert got.top5 == pytest.approx(np.mean(ranks <= 5))
    assert 0.1 < tm_mrr < 0.9  # ranks actually vary


def test_retrieval_scores_is_a_frozen_dataclass() -> None:
    scores = retrieval(np.eye(3), np.eye(3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.mrr = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------- mean cosine


def test_mean_cosine_closed_forms() -> None:
    rng = _rng(17)
    x = rng.standard_normal((50, 6))
    assert mean_cosine(x, 3.0 * x) == pytest.approx(1.0, abs=1e-12)
    assert mean_cosine(x, -x) == pytest.approx(-1.0, abs=1e-12)
    assert (
        mean_cosine(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[0.0, 5.0], [0.0, 1.0]])) == 0.5
    )
    assert mean_cosine(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 2.0], [2.0, 2.0]])) == (
        pytest.approx(0.5)
    )
    y = rng.standard_normal((50, 6))
    loop = np.mean(
        [u @ v / (np.linalg.norm(u) * np.linalg.norm(v)) for u, v in zip(x, y, strict=True)]
    )
    assert mean_cosine(x, y) == pytest.approx(loop, abs=1e-12)


# --------------------------------------------------------------------------- distance correlation


@given(
    method=st.sampled_from(["pearson", "spearman"]),
    metric=st.sampled_from(["euclidean", "cosine"]),
    seed=seeds,
)
def test_distance_correlation_is_one_for_isometric_copies(
    method: str, metric: str, seed: int
) -> None:
    rng = _rng(seed)
    x = rng.standard_normal((30, 4))
    y = 2.0 * x @ _orthogonal(4, rng)
    if metric == "euclidean":
        y = y + rng.normal(0.0, 3.0, size=4)
    assert distance_correlation(x, y, method=method, metric=metric) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_distance_correlation_matches_scipy(metric: str) -> None:
    rng = _rng(18)
    x = rng.standard_normal((70, 5))
    y = np.tanh(x @ rng.standard_normal((5, 3))) + 0.5 * rng.standard_normal((70, 3))
    dx, dy = pdist(x, metric), pdist(y, metric)
    pearson = distance_correlation(x, y, "pearson", metric)
    assert pearson == pytest.approx(pearsonr(dx, dy)[0], abs=1e-10)
    assert distance_correlation(x, y, "spearman", metric) == pytest.approx(
        spearmanr(dx, dy)[0], abs=1e-10
    )
    assert 0.2 < pearson < 0.95


def test_distance_correlation_spearman_averages_tied_ranks() -> None:
    # Small-integer, mean-zero data: many exactly equal distances.
    rng = _rng(19)
    z = rng.integers(-2, 3, size=(15, 2)).astype(np.float64)
    x = np.concatenate([z, -z])
    y = np.concatenate([z[:, :1] * 2.0, -z[:, :1] * 2.0])
    dx, dy = pdist(x), pdist(y)
    assert len(np.unique(dx)) < len(dx) // 5  # heavily tied
    assert distance_correlation(x, y, "spearman") == pytest.approx(spearmanr(dx, dy)[0], abs=1e-12)
    assert distance_correlation(x, y) == pytest.approx(pearsonr(dx, dy)[0], abs=1e-12)


def test_distance_correlation_refuses_large_n(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "DISTANCE_CORRELATION_MAX_N", 20)
    x = np.random.default_rng(0).standard_normal((21, 2))
    with pytest.raises(ValueError, match=r"N=21 exceeds the limit 20.*subsample"):
        distance_correlation(x, x)


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    """Digits pixels (1797 x 64, integer grey levels) and three continuous views of them."""
    from sklearn.datasets import load_digits

    pixels = load_digits().data
    rng = _rng(20)
    centred = pixels - pixels.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return {
        "pixels": pixels,
        "rotated": centred @ vt.T,  # all principal components: a rotation of the pixels
        "pca20": centred @ vt[:20].T,
        "tanh": np.tanh(pixels @ rng.standard_normal((64, 64)) / 40.0),
    }


def test_digits_cka(digits: dict[str, np.ndarray]) -> None:
    x, view = digits["pixels"], digits["tanh"]
    for debiased in (False, True):
        values = [linear_cka(x, view, debiased=debiased, method=m) for m in FORMS]
        np.testing.assert_allclose(values, values[0], atol=1e-10)
        assert linear_cka(x, digits["rotated"], debiased=debiased) == pytest.approx(1.0, abs=1e-9)
    assert values[0] == pytest.approx(ref_debiased_cka_ucentred(x, view), abs=1e-9)
    biased = linear_cka(x, view)
    assert biased == pytest.approx(ref_linear_cka(x, view), abs=1e-9)
    assert 0.3 < biased < 0.99
    assert linear_cka(x, digits["pca20"]) > biased  # PCA keeps more of the linear structure


def test_digits_procrustes(digits: dict[str, np.ndarray]) -> None:
    x, view = digits["pixels"], digits["tanh"]
    _, _, disparity = scipy_procrustes(x, view)
    assert 1.0 - bures_similarity(x, view) ** 2 == pytest.approx(disparity, abs=1e-10)
    xn, vn = _normalise(x), _normalise(view)
    rotation, _ = orthogonal_procrustes(vn, xn)
    assert procrustes_distance(x, view) == pytest.approx(
        np.linalg.norm(xn - vn @ rotation), abs=1e-10
    )
    assert procrustes_distance(x, digits["rotated"]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_digits_knn_match_sklearn(digits: dict[str, np.ndarray], metric: str) -> None:
    from sklearn.neighbors import NearestNeighbors

    k = 10
    a, b = digits["pca20"], digits["tanh"]  # continuous views: no tie at the k-th neighbour

    def sets(z: np.ndarray) -> list[set[int]]:
        dist, idx = (
            NearestNeighbors(n_neighbors=k + 2, metric=metric, algorithm="brute")
            .fit(z)
            .kneighbors(z)
        )
        assert (dist[:, k + 1] - dist[:, k] > 1e-9).all()  # a tie here would be ambiguous
        return [set(row[row != i][:k]) for i, row in enumerate(idx)]

    jac, mut = ref_overlap(sets(a), sets(b), k)
    assert jaccard_knn(a, b, k=k, metric=metric) == pytest.approx(jac)
    assert mutual_knn(a, b, k=k, metric=metric) == pytest.approx(mut)
    assert 0.05 < mut < 0.95
    rotated = b @ _orthogonal(b.shape[1], _rng(23))
    assert mutual_knn(b, rotated, k=k, metric=metric) == 1.0


# --------------------------------------------------------------------------- validation

# Every measure with options that work on small generic data, and its minimum N.
MEASURES: dict[str, tuple[Callable[..., object], int]] = {
    "linear_cka": (linear_cka, 2),
    "debiased linear_cka": (lambda x, y: linear_cka(x, y, debiased=True), 4),
    "rbf_cka": (rbf_cka, 2),
    "debiased rbf_cka": (lambda x, y: rbf_cka(x, y, debiased=True), 4),
    "procrustes_distance": (procrustes_distance, 2),
    "bures_similarity": (bures_similarity, 2),
    "svcca": (svcca, 3),
    "canonical_correlations": (canonical_correlations, 3),
    "jaccard_knn": (lambda x, y: jaccard_knn(x, y, k=1), 2),
    "mutual_knn": (lambda x, y: mutual_knn(x, y, k=1), 2),
    "retrieval": (retrieval, 2),
    "mean_cosine": (mean_cosine, 1),
    "distance_correlation": (distance_correlation, 3),
}
# Zero variance makes these undefined (the others are defined, e.g. by the tie rules).
VARIANCE_MEASURES = (
    "linear_cka",
    "debiased linear_cka",
    "rbf_cka",
    "debiased rbf_cka",
    "procrustes_distance",
    "bures_similarity",
    "svcca",
    "distance_correlation",
)


def _pair(n: int = 12, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(21)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d))


@pytest.mark.parametrize("name", list(MEASURES))
def test_every_measure_validates_its_inputs(name: str) -> None:
    fn, minimum = MEASURES[name]
    x, y = _pair()
    fn(x, y)  # the generic pair is accepted
    with pytest.raises(ValueError, match=r"same number of samples, got N=12 and N=11"):
        fn(x, y[:11])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value"):
        fn(bad, y)
    bad = y.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"y contains 1 NaN or infinite value"):
        fn(x, bad)
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        fn(x[:, 0], y)
    with pytest.raises(ValueError, match=r"y must be 2-D"):
        fn(x, y[None])
    with pytest.raises(TypeError, match=r"x must hold floating-point numbers"):
        fn(x.astype(np.int64), y)
    with pytest.raises(TypeError, match=r"y must hold floating-point numbers"):
        fn(x, torch.from_numpy(y).long())
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor or a numpy.ndarray"):
        fn(x.tolist(), y)
    with pytest.raises(ValueError, match=rf"needs at least {minimum} samples, got N={minimum - 1}"):
        fn(x[: minimum - 1], y[: minimum - 1])


@pytest.mark.parametrize("name", VARIANCE_MEASURES)
def test_zero_variance_is_refused_naming_the_input(name: str) -> None:
    fn, _ = MEASURES[name]
    x, y = _pair()
    constant = np.full_like(x, 0.1)
    with pytest.raises(ValueError, match=r"x has zero variance"):
        fn(constant, y)
    with pytest.raises(ValueError, match=r"y has zero variance"):
        fn(x, constant)


def test_option_validation() -> None:
    x, y = _pair()
    with pytest.raises(ValueError, match=r"method must be one of \['auto', 'feature'"):
        linear_cka(x, y, method="kernel")
    with pytest.raises(ValueError, match=r"chunk_size applies to method='streaming'"):
        linear_cka(x, y, method="gram", chunk_size=4)
    with pytest.raises(ValueError, match=r"chunk_size must be a positive integer"):
        linear_cka(x, y, method="streaming", chunk_size=0)
    with pytest.raises(TypeError, match=r"debiased must be a bool"):
        linear_cka(x, y, debiased="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"sigma must be a positive finite number"):
        rbf_cka(x, y, sigma=-1.0)
    with pytest.raises(ValueError, match=r"median pairwise distance of y is 0"):
        rbf_cka(x, np.concatenate([np.zeros((8, 3)), np.ones((4, 3))]))
    for variance in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"variance must be in \(0, 1\]"):
            svcca(x, y, variance=variance)
    with pytest.raises(ValueError, match=r"metric must be one of \['cosine', 'euclidean'\]"):
        jaccard_knn(x, y, metric="manhattan")
    for k in (0, 12):
        with pytest.raises(ValueError, match=rf"k must be in \[1, N-1\] = \[1, 11\].*k={k}"):
            mutual_knn(x, y, k=k)
    with pytest.raises(TypeError, match=r"k must be an int"):
        mutual_knn(x, y, k=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"method must be one of \['pearson', 'spearman'\]"):
        distance_correlation(x, y, method="kendall")
    with pytest.raises(ValueError, match=r"metric must be one of \['euclidean', 'cosine'\]"):
        distance_correlation(x, y, metric="l1")
    for fn in (retrieval, mean_cosine):
        with pytest.raises(
            ValueError, match=r"same feature dimension, got x with D=3 and y with D=2"
        ):
            fn(x, y[:, :2])


def test_estimator_specific_sample_requirements() -> None:
    rng = _rng(22)
    x, y = rng.standard_normal((10, 20)), rng.standard_normal((10, 20))
    match = r"N=10 with 9 dims of x and 8 dims of y; lower variance \(now 0.99\)"
    with pytest.raises(ValueError, match=match):
        svcca(x, y)
    with pytest.raises(ValueError, match=r"N > max\(dims\) \+ 1.*N=10 with 20 dims"):
        canonical_correlations(x, y)
    collinear = np.repeat(rng.standard_normal((30, 1)), 2, axis=1)
    with pytest.raises(ValueError, match=r"columns of x are linearly dependent"):
        canonical_correlations(collinear, rng.standard_normal((30, 2)))
    # A regular simplex: non-constant, yet its U-centred Gram matrix is zero; rotated, scaled
    # and shifted, its computed debiased HSIC is rounding noise of either sign (~1e-14).
    for n in (4, 8):
        simplex = 3.7 * _orthogonal(n, rng) + 1.3
        for method in FORMS:
            with pytest.raises(ValueError, match=r"debiased HSIC of y with itself"):
                linear_cka(rng.standard_normal((n, 3)), simplex, debiased=True, method=method)


def test_metrics_module_imports_only_torch_and_numpy() -> None:
    source = Path(metrics.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    stdlib = {"__future__", "math", "collections", "contextlib", "dataclasses"}
    assert imported <= stdlib | {"torch", "numpy"}


def test_cross_checks_on_real_encoder_embeddings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real latents of two packaged text encoders on the drug-review test split."""
    from scipy.spatial import procrustes
    from sklearn.neighbors import NearestNeighbors

    import latentbridge as lb
    from latentbridge.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    x = lb.encode("drug-reviews", "minilm-l3", "test", cache=cache, progress=False)
    y = lb.encode("drug-reviews", "use-m3", "test", cache=cache, progress=False)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    # Linear CKA: the three forms and a naive numpy Gram-matrix implementation agree.
    xc, yc = x64 - x64.mean(0), y64 - y64.mean(0)
    k, l_ = xc @ xc.T, yc @ yc.T
    naive = float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))
    for method in ("feature", "gram", "streaming"):
        assert metrics.linear_cka(x, y, method=method) == pytest.approx(naive, rel=1e-9)
    assert 0.2 < naive < 0.99  # related but different models
    # Procrustes: scipy's disparity on equal widths (zero-pad minilm's 384 to 512).
    x_pad = np.pad(x64, ((0, 0), (0, y64.shape[1] - x64.shape[1])))
    _, _, disparity = procrustes(x_pad, y64)
    assert 1 - metrics.bures_similarity(x, y) ** 2 == pytest.approx(disparity, rel=1e-7)

    # Mutual k-NN against scikit-learn's exact neighbours (cosine).
    def neighbours(z: np.ndarray) -> list[set[int]]:
        nn = NearestNeighbors(n_neighbors=11, metric="cosine", algorithm="brute").fit(z)
        _, idx = nn.kneighbors(z)
        return [set(row[row != i][:10]) for i, row in enumerate(idx)]

    a, b = neighbours(x64), neighbours(y64)
    expected = np.mean([len(p & q) / 10 for p, q in zip(a, b, strict=True)])
    assert metrics.mutual_knn(x, y, k=10) == pytest.approx(expected, abs=2e-3)
