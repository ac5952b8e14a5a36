"""Tests for latentbridge.alignment: maps between latent spaces fitted on paired samples.

Every estimator is checked against the group it declares (a random member of the group is
recovered exactly), against maps outside its group (negative controls), under noise, and
against independent implementations (scipy, scikit-learn, numpy, brute force).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentbridge import alignment as al
from latentbridge.alignment import (
    ESTIMATORS,
    Affine,
    AlignmentEstimator,
    Linear,
    Orthogonal,
    Permutation,
    Similarity,
    Translator,
)
from latentbridge.transformations import random_transformation

F64 = torch.float64
N = 200


# --------------------------------------------------------------------------- helpers


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _samples(n: int, dim: int, g: torch.Generator, offset: float = 1.0) -> torch.Tensor:
    """Gaussian samples with a non-zero mean (so that centring matters)."""
    return torch.randn(n, dim, generator=g, dtype=F64) + offset * torch.linspace(-1, 2, dim)


def _orthogonal(dim: int, g: torch.Generator, det: float) -> torch.Tensor:
    """A Haar orthogonal matrix, its first column flipped if needed to get ``det``."""
    q = random_transformation("orthogonal", dim, generator=g).weight.clone()
    if float(torch.linalg.det(q)) * det < 0:
        q[:, 0] = -q[:, 0]
    return q


def _well_conditioned(dim_in: int, dim_out: int, g: torch.Generator) -> torch.Tensor:
    """``U diag(s) V^T`` with singular values in [0.5, 2]: condition number at most 4."""
    u = torch.linalg.qr(torch.randn(dim_in, dim_in, generator=g, dtype=F64))[0]
    v = torch.linalg.qr(torch.randn(dim_out, dim_out, generator=g, dtype=F64))[0]
    k = min(dim_in, dim_out)
    s = 0.5 + 1.5 * torch.rand(k, generator=g, dtype=F64)
    return u[:, :k] @ torch.diag(s) @ v[:, :k].T


def _translation(dim: int, g: torch.Generator) -> torch.Tensor:
    return random_transformation("translation", dim, generator=g).bias


def _scale(g: torch.Generator) -> float:
    return float(0.3 + 2.7 * torch.rand(1, generator=g, dtype=F64))


class Truth:
    """A known map ``z -> scale * z @ weight + bias`` (``scale`` is None outside similarity)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: float | None = None):
        self.weight, self.bias, self.scale = weight, bias, scale

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return (1.0 if self.scale is None else self.scale) * z @ self.weight + self.bias

    @property
    def linear(self) -> torch.Tensor:
        return (1.0 if self.scale is None else self.scale) * self.weight


def _zero(dim: int) -> torch.Tensor:
    return torch.zeros(dim, dtype=F64)


# A random member of each declared group (keyed by group and, for rotations, `proper`).
# Improper groups draw reflections (det -1) so that recovering them is not a rotation by luck.
SAMPLERS: dict[tuple[str, bool], Callable[[int, torch.Generator], Truth]] = {
    ("orthogonal", False): lambda d, g: Truth(_orthogonal(d, g, -1.0), _zero(d)),
    ("orthogonal", True): lambda d, g: Truth(_orthogonal(d, g, 1.0), _zero(d)),
    ("similarity", False): lambda d, g: Truth(
        _orthogonal(d, g, -1.0), _translation(d, g), _scale(g)
    ),
    ("similarity", True): lambda d, g: Truth(_orthogonal(d, g, 1.0), _translation(d, g), _scale(g)),
    ("affine", False): lambda d, g: Truth(_well_conditioned(d, d, g), _translation(d, g)),
    ("linear", False): lambda d, g: Truth(_well_conditioned(d, d, g), _zero(d)),
    ("permutation", False): lambda d, g: Truth(
        random_transformation("permutation", d, generator=g).weight, _zero(d)
    ),
}

GROUP_CASES: list[AlignmentEstimator] = [
    Orthogonal(),
    Orthogonal(proper=True),
    Similarity(),
    Similarity(proper=True),
    Affine(),
    Linear(),
    Permutation(),
    Permutation(criterion="sqeuclidean"),
    # Skipped: Affine/Linear with ridge > 0 (the penalty shrinks W: biased by design, checked
    # against scikit-learn's Ridge below); Translator (its group is "composite", tested below).
]


def _sampler(estimator: AlignmentEstimator) -> Callable[[int, torch.Generator], Truth]:
    return SAMPLERS[(estimator.group, bool(getattr(estimator, "proper", False)))]


def _effective(estimator: AlignmentEstimator) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitted map's linear part and bias."""
    weight = estimator.weight_  # type: ignore[attr-defined]
    if isinstance(estimator, Similarity):
        weight = estimator.scale_ * weight
    return weight, estimator.bias_  # type: ignore[attr-defined]


def _relative_residual(estimator: AlignmentEstimator, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.linalg.norm(estimator.transform(x) - y) / torch.linalg.norm(y))


def _close(
    actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-8, rtol: float = 1e-8
) -> None:
    torch.testing.assert_close(actual, expected.to(actual.dtype), atol=atol, rtol=rtol)


def _ids(cases: list[AlignmentEstimator]) -> list[str]:
    return [repr(c) for c in cases]


# --------------------------------------------------------------------------- registry


def test_registry_names_are_the_groups() -> None:
    assert list(ESTIMATORS) == ["orthogonal", "similarity", "affine", "linear", "permutation"]
    assert al.available() == list(ESTIMATORS)
    for name, cls in ESTIMATORS.items():
        assert cls.group == name
        assert al.get(name) is cls
    assert Translator.group == "composite"
    # every registered estimator goes through the generic group test
    assert {type(c) for c in GROUP_CASES} == set(ESTIMATORS.values())


def test_get_unknown_name_lists_options() -> None:
    with pytest.raises(ValueError, match=r"name must be one of \['orthogonal'.*got 'procrustes'"):
        al.get("procrustes")


# --------------------------------------------------------------------------- group recovery


@pytest.mark.parametrize("estimator", GROUP_CASES, ids=_ids(GROUP_CASES))
@given(dim=st.integers(2, 16), seed=st.integers(0, 2**31 - 1))
def test_recovers_a_random_member_of_its_group(
    estimator: AlignmentEstimator, dim: int, seed: int
) -> None:
    g = _gen(seed)
    truth = _sampler(estimator)(dim, g)
    x = _samples(N, dim, g)
    y = truth(x)
    fitted = al.clone(estimator).fit(x, y)

    _close(fitted.weight_, truth.weight)  # type: ignore[attr-defined]
    _close(fitted.bias_, truth.bias)  # type: ignore[attr-defined]
    if truth.scale is not None:
        assert fitted.scale_ == pytest.approx(truth.scale, rel=1e-8)  # type: ignore[attr-defined]
    if isinstance(fitted, Permutation):
        expected = truth.weight.argmax(dim=0)  # y[:, j] = x[:, p[j]]
        assert fitted.permutation_.dtype == torch.int64
        assert torch.equal(fitted.permutation_, expected)
        assert torch.equal(fitted.weight_, truth.weight)  # exactly a permutation matrix
    if getattr(fitted, "proper", False):
        assert float(torch.linalg.det(fitted.weight_)) == pytest.approx(1.0)  # type: ignore[attr-defined]

    _close(fitted.transform(x), y)
    _close(fitted.inverse_transform(y), x)
    # the map, not just the fit samples: held-out points too
    x_new = _samples(7, dim, g)
    _close(fitted.transform(x_new), truth(x_new))


# --------------------------------------------------------------------------- negative controls

D = 8


def _reflection(g: torch.Generator) -> Truth:
    return Truth(_orthogonal(D, g, -1.0), _zero(D))


def _rotation(g: torch.Generator) -> Truth:
    return Truth(_orthogonal(D, g, 1.0), _zero(D))


# (estimator of a smaller group, estimator of a group holding the map, the map)
NEGATIVE: dict[str, tuple[AlignmentEstimator, AlignmentEstimator, Callable[..., Truth]]] = {
    "orthogonal-vs-scale-2": (
        Orthogonal(),
        Similarity(),
        lambda g: Truth(_orthogonal(D, g, -1.0), _zero(D), 2.0),
    ),
    "orthogonal-vs-translation": (
        Orthogonal(),
        Affine(),
        lambda g: Truth(_orthogonal(D, g, 1.0), _translation(D, g)),
    ),
    "proper-vs-reflection": (Orthogonal(proper=True), Orthogonal(), _reflection),
    "proper-similarity-vs-reflection": (
        Similarity(proper=True),
        Similarity(),
        lambda g: Truth(_orthogonal(D, g, -1.0), _translation(D, g), 2.0),
    ),
    "linear-vs-translation": (
        Linear(),
        Affine(),
        lambda g: Truth(_well_conditioned(D, D, g), _translation(D, g)),
    ),
    "similarity-vs-anisotropic": (
        Similarity(),
        Affine(),
        lambda g: Truth(_well_conditioned(D, D, g), _translation(D, g)),
    ),
    "permutation-vs-rotation": (Permutation(), Orthogonal(), _rotation),
    "permutation-sqeuclidean-vs-rotation": (
        Permutation(criterion="sqeuclidean"),
        Orthogonal(),
        _rotation,
    ),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smaller_group_cannot_fit_a_larger_groups_map(case: str, seed: int) -> None:
    small, large, make = NEGATIVE[case]
    g = _gen(seed)
    truth = make(g)
    x = _samples(N, D, g, offset=0.0)  # centred x: a translation cannot hide in a linear part
    y = truth(x)
    assert _relative_residual(al.clone(large).fit(x, y), x, y) < 1e-10  # the map is valid
    assert _relative_residual(al.clone(small).fit(x, y), x, y) > 0.1


# (estimator, a map of one of its subgroups)
POSITIVE: dict[str, tuple[AlignmentEstimator, Callable[..., Truth]]] = {
    "affine-fits-orthogonal": (Affine(), _reflection),
    "affine-fits-similarity": (
        Affine(),
        lambda g: Truth(_orthogonal(D, g, -1.0), _translation(D, g), 2.5),
    ),
    "linear-fits-orthogonal": (Linear(), _reflection),
    "similarity-fits-orthogonal": (Similarity(), _reflection),
    "orthogonal-fits-rotation": (Orthogonal(), _rotation),
    "orthogonal-fits-permutation": (
        Orthogonal(),
        lambda g: Truth(random_transformation("permutation", D, generator=g).weight, _zero(D)),
    ),
    "orthogonal-fits-sign-flip": (
        Orthogonal(),
        lambda g: Truth(random_transformation("sign_flip", D, generator=g).weight, _zero(D)),
    ),
}


@pytest.mark.parametrize("case", list(POSITIVE))
def test_larger_group_fits_a_smaller_groups_map_exactly(case: str) -> None:
    estimator, make = POSITIVE[case]
    g = _gen(3)
    truth = make(g)
    x = _samples(N, D, g)
    fitted = al.clone(estimator).fit(x, truth(x))
    weight, bias = _effective(fitted)
    _close(weight, truth.linear)
    _close(bias, truth.bias)
    if isinstance(fitted, Similarity):
        assert fitted.scale_ == pytest.approx(1.0, rel=1e-8)


@pytest.mark.parametrize("proper", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_similarity_is_the_least_squares_similarity(proper: bool, seed: int) -> None:
    # noisy reflected data: the proper fit needs the sign correction in Q *and* in the scale
    g = _gen(seed)
    truth = Truth(_orthogonal(D, g, -1.0), _translation(D, g), 1.7)
    x = _samples(60, D, g)
    y = truth(x) + 0.5 * torch.randn(60, D, generator=g, dtype=F64)
    fitted = Similarity(proper=proper).fit(x, y)
    xc, yc = x - x.mean(dim=0), y - y.mean(dim=0)
    q = Orthogonal(proper=proper).fit(xc, yc).weight_
    scale = float(((xc @ q) * yc).sum() / xc.pow(2).sum())  # argmin_s ||s xc q - yc||
    _close(fitted.weight_, q)
    assert fitted.scale_ == pytest.approx(scale, rel=1e-10)
    _close(fitted.bias_, y.mean(dim=0) - scale * x.mean(dim=0) @ q)
    best = _relative_residual(fitted, x, y)
    for factor in (0.99, 1.01):  # the scale is a minimum of the residual
        fitted.scale_ = scale * factor
        assert _relative_residual(fitted, x, y) > best


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("estimator", [Orthogonal(), Similarity(), Affine(), Linear()], ids=repr)
def test_noisy_fit_converges_to_the_truth(estimator: AlignmentEstimator) -> None:
    g = _gen(4)
    truth = Truth(_orthogonal(D, g, -1.0), _zero(D))
    errors = []
    for n in (50, 500, 5000):
        x = _samples(n, D, g, offset=0.0)
        y = truth(x) + 0.1 * torch.randn(n, D, generator=g, dtype=F64)
        weight, _ = _effective(al.clone(estimator).fit(x, y))
        errors.append(float(torch.linalg.norm(weight - truth.linear)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] < 0.5  # close already with few samples
    assert errors[2] < 0.03  # ~ 0.1 * D / sqrt(N)


# --------------------------------------------------------------------------- cross-checks


@pytest.mark.parametrize("seed", range(4))
def test_orthogonal_matches_scipy_orthogonal_procrustes(seed: int) -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))  # unrelated: a real optimisation
    expected, _ = scipy_linalg.orthogonal_procrustes(x, y)
    fitted = Orthogonal().fit(x, y)
    _close(fitted.weight_, torch.from_numpy(expected))


@pytest.mark.parametrize("seed", range(6))
def test_proper_orthogonal_matches_scipy_rotation_alignment(seed: int) -> None:
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 3))
    reflect = np.diag([1.0, 1.0, -1.0])  # a reflection plus noise: the sign correction is needed
    y = x @ reflect + 0.5 * rng.normal(size=(30, 3))
    # scipy finds C minimising sum ||y_i - C x_i||^2 (column vectors): Q = C^T for rows
    c, _ = rotation.align_vectors(y, x)
    fitted = Orthogonal(proper=True).fit(x, y)
    _close(fitted.weight_, torch.from_numpy(c.as_matrix().T), atol=1e-7, rtol=1e-7)
    assert float(torch.linalg.det(fitted.weight_)) == pytest.approx(1.0)


@pytest.mark.parametrize("dims", [(5, 3), (3, 5), (4, 4)])
@pytest.mark.parametrize("ridge", [0.0, 0.5, 20.0])
def test_affine_matches_scikit_learn(dims: tuple[int, int], ridge: float) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(sum(dims))
    x = rng.normal(size=(30, dims[0])) + 2.0
    y = rng.normal(size=(30, dims[1])) - 1.0
    if ridge == 0:
        reference = linear_model.LinearRegression().fit(x, y)
    else:
        # ridge is relative: scikit-learn's alpha is ridge times the mean eigenvalue of the
        # centred scatter matrix, tr(xc^T xc) / D_x.
        alpha = ridge * float(((x - x.mean(0)) ** 2).sum()) / x.shape[1]
        reference = linear_model.Ridge(alpha=alpha, fit_intercept=True).fit(x, y)
    fitted = Affine(ridge=ridge).fit(x, y)
    _close(fitted.weight_, torch.from_numpy(reference.coef_.T))
    _close(fitted.bias_, torch.from_numpy(reference.intercept_))
    _close(fitted.transform(x), torch.from_numpy(reference.predict(x)))


@pytest.mark.parametrize("dims", [(5, 3), (3, 5)])
def test_linear_matches_numpy_lstsq(dims: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(25, dims[0])) + 1.0, rng.normal(size=(25, dims[1]))
    expected = np.linalg.lstsq(x, y, rcond=None)[0]
    fitted = Linear().fit(x, y)
    _close(fitted.weight_, torch.from_numpy(expected))
    assert torch.count_nonzero(fitted.bias_) == 0


def test_linear_ridge_matches_scikit_learn_without_intercept() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(25, 4)) + 1.0, rng.normal(size=(25, 3))
    alpha = 3.0 * float((x**2).sum()) / x.shape[1]  # relative ridge, uncentred: tr(x^T x) / D_x
    reference = linear_model.Ridge(alpha=alpha, fit_intercept=False).fit(x, y)
    _close(Linear(ridge=3.0).fit(x, y).weight_, torch.from_numpy(reference.coef_.T))


def _brute_force_permutation(x: np.ndarray, y: np.ndarray, criterion: str) -> np.ndarray:
    d = x.shape[1]
    if criterion == "correlation":
        corr = np.corrcoef(x.T, y.T)[:d, d:]  # corr[i, j] = corr(x[:, i], y[:, j])
        score = [sum(corr[p[j], j] for j in range(d)) for p in itertools.permutations(range(d))]
        best = int(np.argmax(score))
    else:
        cost = [
            sum(((x[:, p[j]] - y[:, j]) ** 2).sum() for j in range(d))
            for p in itertools.permutations(range(d))
        ]
        best = int(np.argmin(cost))
    return np.array(list(itertools.permutations(range(d)))[best])


@pytest.mark.parametrize("criterion", ["correlation", "sqeuclidean"])
@given(dim=st.integers(2, 5), seed=st.integers(0, 2**31 - 1))
def test_permutation_matches_brute_force(criterion: str, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # unrelated spaces with unit-dependent scales: every criterion has a non-trivial optimum
    x = rng.normal(size=(20, dim)) * rng.uniform(0.5, 2.0, size=dim)
    y = rng.normal(size=(20, dim)) * rng.uniform(0.5, 2.0, size=dim) + 0.5 * x[:, ::-1]
    fitted = Permutation(criterion=criterion).fit(x, y)
    expected = _brute_force_permutation(x, y, criterion)
    np.testing.assert_array_equal(fitted.permutation_.numpy(), expected)
    np.testing.assert_array_equal(fitted.transform(x).numpy(), x[:, expected])


def test_permutation_correlation_ignores_unit_means_and_scales_sqeuclidean_does_not() -> None:
    g = _gen(5)
    x = torch.randn(N, D, generator=g, dtype=F64) + 10.0 * torch.arange(D, dtype=F64)
    truth = random_transformation("permutation", D, generator=g).weight
    expected = truth.argmax(dim=0)  # y[:, j] is x[:, expected[j]] ...
    decoy = (expected + 1) % D  # ... rescaled, and moved to the mean of x[:, decoy[j]]
    scales = torch.logspace(-0.5, 0.5, D, dtype=F64)
    unit = (x @ truth - (x @ truth).mean(dim=0)) * scales
    y = unit + x.mean(dim=0)[decoy]
    assert torch.equal(Permutation().fit(x, y).permutation_, expected)
    assert torch.equal(Permutation(criterion="sqeuclidean").fit(x, y).permutation_, decoy)


# --------------------------------------------------------------------------- Translator


def _whitened(n: int, dim: int, g: torch.Generator) -> torch.Tensor:
    """Samples with zero mean and identity covariance (population), exactly."""
    z = torch.randn(n, dim, generator=g, dtype=F64)
    u, _, _ = torch.linalg.svd(z - z.mean(dim=0), full_matrices=False)
    return u * n**0.5


def _standardised_pair(
    g: torch.Generator, n: int = N, dim: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """x, y whose standardised versions are related by an orthogonal map q, and the true map."""
    q = _orthogonal(dim, g, -1.0)
    mean_x, std_x = torch.randn(dim, generator=g, dtype=F64), torch.logspace(-1, 1, dim)
    mean_y = 5 * torch.randn(dim, generator=g, dtype=F64)
    std_y = torch.linspace(0.2, 4.0, dim, dtype=F64)
    xn = _whitened(n, dim, g)
    x, y = xn * std_x + mean_x, (xn @ q) * std_y + mean_y

    def truth(z: torch.Tensor) -> torch.Tensor:
        return (((z - mean_x) / std_x) @ q) * std_y + mean_y

    return x, y, q, truth


def test_translator_is_exact_on_a_standardised_orthogonal_map() -> None:
    g = _gen(6)
    x, y, q, truth = _standardised_pair(g)
    translator = Translator().fit(x, y)
    _close(translator.estimator_.weight_, q)  # type: ignore[attr-defined]
    _close(translator.x_mean_, x.mean(dim=0))
    _close(translator.x_scale_, x.std(dim=0, unbiased=False))
    _close(translator.transform(x), y)
    _close(translator.inverse_transform(y), x)
    x_new = _samples(9, x.shape[1], g)
    _close(translator.transform(x_new), truth(x_new))
    assert translator.dim_ == 6
    assert translator.x_components_ is None and translator.y_components_ is None


def test_translator_needs_std_scaling_for_that_map() -> None:
    x, y, _, _ = _standardised_pair(_gen(6))
    assert _relative_residual(Translator(std_scaling=False).fit(x, y), x, y) > 0.1


def test_translator_without_scaling_is_its_estimator() -> None:
    g = _gen(7)
    x, y = _samples(N, 5, g), _samples(N, 5, g)
    for name, cls in ESTIMATORS.items():
        translated = Translator(estimator=name, std_scaling=False).fit(x, y).transform(x)
        _close(translated, cls().fit(x, y).transform(x))


def test_translator_denormalises_with_y_statistics() -> None:
    g = _gen(8)
    x, y = _samples(N, 5, g), _samples(N, 5, g) @ _well_conditioned(5, 5, g)
    translator = Translator().fit(x, y)
    _close(translator.y_mean_, y.mean(dim=0))
    _close(translator.y_scale_, y.std(dim=0, unbiased=False))
    _close(translator.transform(x).mean(dim=0), y.mean(dim=0))  # centred x stays centred
    # equivariance: rescaling and shifting each unit of y does the same to the translation
    scale, shift = torch.linspace(0.1, 10.0, 5, dtype=F64), torch.arange(5, dtype=F64) - 2
    x_new = _samples(11, 5, g)
    moved = Translator().fit(x, y * scale + shift).transform(x_new)
    _close(moved, translator.transform(x_new) * scale + shift)


def test_translator_constant_feature_gets_the_space_scale() -> None:
    # A constant feature has no spread of its own; it gets the root mean square of the other
    # features' stds (not 1, which would break the equivariance to scaling the data).
    g = _gen(9)
    x, y = _samples(N, 4, g), _samples(N, 4, g)
    x[:, 2] = 3.0
    translator = Translator().fit(x, y)
    others = x[:, [0, 1, 3]].std(dim=0, unbiased=False)
    assert float(translator.x_scale_[2]) == pytest.approx(float(others.square().mean().sqrt()))
    _close(translator.x_scale_[[0, 1, 3]], others)
    # Held-out samples that move in the constant feature: the translation scales with the data.
    x_new = _samples(9, 4, g)
    for c in (2.0**-40, 1e-7, 1e5):
        scaled = Translator().fit(c * x, c * y).transform(c * x_new)
        _close(scaled / c, translator.transform(x_new), atol=1e-9, rtol=1e-9)
    # All features constant: the largest |mean|; an all-zero space has no scale at all.
    assert float(Translator().fit(torch.full((5, 3), -4.0, dtype=F64), y[:5]).x_scale_[0]) == 4.0
    with pytest.raises(ValueError, match=r"y is 0 in every sample .* std_scaling=False"):
        Translator().fit(y[:5], torch.zeros(5, 3, dtype=F64))
    assert Translator(std_scaling=False).fit(y[:5], torch.zeros(5, 3, dtype=F64)).dim_ == 4


@pytest.mark.parametrize("dim_matching", ["zero_padding", "pca"])
@pytest.mark.parametrize("dims", [(7, 4), (4, 7)])
@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_translator_matches_dimensions(
    dim_matching: str, dims: tuple[int, int], estimator: str
) -> None:
    g = _gen(10)
    dx, dy = dims
    x, y = _samples(N, dx, g), _samples(N, dy, g) @ _well_conditioned(dy, dy, g)
    translator = Translator(estimator=estimator, dim_matching=dim_matching).fit(x, y)
    out = translator.transform(_samples(13, dx, g))
    assert out.shape == (13, dy)
    assert bool(torch.isfinite(out).all())
    wide, narrow = max(dims), min(dims)
    if dim_matching == "pca":
        assert translator.dim_ == narrow
        reduced = translator.x_components_ if dx > dy else translator.y_components_
        assert translator.estimator_.n_features_in_ == narrow
        assert reduced is not None and reduced.shape == (narrow, wide)
        _close(reduced @ reduced.T, torch.eye(narrow, dtype=F64))
    else:
        assert translator.dim_ == wide
        assert translator.x_components_ is None and translator.y_components_ is None
        assert translator.estimator_.n_features_in_ == wide
    with pytest.raises(ValueError, match="not invertible"):
        translator.inverse_transform(y)


@pytest.mark.parametrize("std_scaling", [True, False])
@pytest.mark.parametrize("dim_matching", ["zero_padding", "pca"])
@pytest.mark.parametrize("dims", [(7, 4), (4, 7)])
def test_translator_matching_is_exact_between_spaces_of_one_latent(
    dim_matching: str, dims: tuple[int, int], std_scaling: bool
) -> None:
    # x and y are affine images of one latent z of the narrower dimension: an affine
    # translation exists, and both matchings must find it (padding dropped, PCA undone)
    g = _gen(10)
    dx, dy = dims
    rank = min(dims)
    cx, cy = _well_conditioned(rank, dx, g), _well_conditioned(rank, dy, g)
    bx, by = _translation(dx, g), _translation(dy, g)
    z, z_new = _samples(N, rank, g), _samples(20, rank, g)
    translator = Translator("affine", std_scaling=std_scaling, dim_matching=dim_matching)
    translator.fit(z @ cx + bx, z @ cy + by)
    _close(translator.transform(z_new @ cx + bx), z_new @ cy + by, atol=1e-7, rtol=1e-7)


def test_translator_pca_recovers_a_dimension_reduction() -> None:
    # y keeps the first d units of x; the other units of x are redundant mixtures of them
    g = _gen(11)
    d, extra = 4, 6
    z = _samples(N, d, g)
    mixing = torch.randn(d, extra, generator=g, dtype=F64)

    def make(z: torch.Tensor) -> torch.Tensor:
        noise = 1e-3 * torch.randn(z.shape[0], extra, generator=g, dtype=F64)
        return torch.cat([z, z @ mixing + noise], dim=1)

    x = make(z)
    translator = Translator(estimator="affine", dim_matching="pca").fit(x, z)
    assert translator.dim_ == d
    z_new = _samples(50, d, g)
    assert _relative_residual(translator, make(z_new), z_new) < 0.01


def test_translator_pca_with_orthogonal_keeps_the_leading_directions() -> None:
    # without scaling, the leading principal directions of x are its first d units
    g = _gen(12)
    d = 3
    z = _samples(N, d, g) * torch.tensor([5.0, 4.0, 3.0], dtype=F64)
    x = torch.cat([z, 0.01 * torch.randn(N, 5, generator=g, dtype=F64)], dim=1)
    translator = Translator(std_scaling=False, dim_matching="pca").fit(x, z)
    assert _relative_residual(translator, x, z) < 0.01
    # zero padding cannot drop the extra units: the orthogonal map must keep their energy
    padded = Translator(std_scaling=False, dim_matching="zero_padding").fit(x, z)
    assert _relative_residual(padded, x, z) < 0.05


def test_translator_clones_its_estimator() -> None:
    g = _gen(13)
    x, y = _samples(N, 4, g), _samples(N, 4, g)
    inner = Affine(ridge=0.5)
    translator = Translator(estimator=inner).fit(x, y)
    assert translator.estimator is inner  # stored unchanged
    assert translator.estimator_ is not inner
    assert isinstance(translator.estimator_, Affine) and translator.estimator_.ridge == 0.5
    assert not hasattr(inner, "weight_")  # the user's instance is never fitted
    twice = Translator(estimator=inner).fit(x, y)
    assert twice.estimator_ is not translator.estimator_


def test_clone_is_deep_and_unfitted() -> None:
    g = _gen(14)
    x, y = _samples(N, 3, g), _samples(N, 3, g)
    original = Translator(estimator=Similarity(proper=True), dim_matching="pca").fit(x, y)
    copy = al.clone(original)
    assert type(copy) is Translator and copy is not original
    assert copy.estimator is not original.estimator
    assert repr(copy) == repr(original)
    assert not hasattr(copy, "estimator_")
    with pytest.raises(TypeError, match="AlignmentEstimator"):
        al.clone("orthogonal")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- contract

CONSTRUCTED: list[tuple[type[AlignmentEstimator], dict[str, Any], set[str]]] = [
    (Orthogonal, {"proper": True}, {"weight_", "bias_"}),
    (Similarity, {"proper": True}, {"weight_", "bias_", "scale_"}),
    (Affine, {"ridge": 0.5}, {"weight_", "bias_"}),
    (Linear, {"ridge": 2}, {"weight_", "bias_"}),
    (Permutation, {"criterion": "sqeuclidean"}, {"weight_", "bias_", "permutation_"}),
    (
        Translator,
        {"estimator": Affine(ridge=0.1), "std_scaling": False, "dim_matching": "pca"},
        {"estimator_", "x_mean_", "x_scale_", "y_mean_", "y_scale_", "dim_", "x_components_"},
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "fitted"), CONSTRUCTED, ids=lambda v: str(v)[:30])
def test_estimator_contract(
    cls: type[AlignmentEstimator], kwargs: dict[str, Any], fitted: set[str]
) -> None:
    estimator = cls(**kwargs)
    params = estimator.get_params(deep=False)
    assert params.keys() == kwargs.keys()
    assert all(params[k] is v for k, v in kwargs.items())  # stored unchanged
    assert not [k for k in vars(estimator) if k.endswith("_")]
    with pytest.raises(RuntimeError, match="call fit first"):
        estimator.transform(torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match="call fit first"):
        estimator.inverse_transform(torch.zeros(2, 3))

    g = _gen(15)
    x, y = _samples(40, 3, g), _samples(40, 3, g)
    before = set(vars(estimator))
    assert estimator.fit(x, y) is estimator
    new = set(vars(estimator)) - before
    assert new >= fitted | {"n_features_in_", "n_features_out_"}
    assert all(k.endswith("_") for k in new)
    assert all(estimator.get_params(deep=False)[k] is v for k, v in kwargs.items())
    assert estimator.n_features_in_ == 3 and estimator.n_features_out_ == 3

    # fit_transform, numpy vs torch, dtype follows the input
    expected = estimator.transform(x)
    assert isinstance(expected, torch.Tensor) and expected.dtype == F64
    _close(cls(**kwargs).fit_transform(x, y), expected)
    _close(cls(**kwargs).fit(x.numpy(), y.numpy()).transform(x.numpy()), expected)
    single = estimator.transform(x.float())
    assert single.dtype == torch.float32 and single.device == x.device
    _close(single, expected, atol=1e-4, rtol=1e-4)
    fitted_in_float32 = cls(**kwargs).fit(x.float(), y.float())
    _close(fitted_in_float32.transform(x), expected, atol=1e-4, rtol=1e-4)


def test_set_params_and_repr() -> None:
    estimator = Translator(estimator=Affine())
    assert estimator.set_params(std_scaling=False, estimator__ridge=3.0) is estimator
    assert estimator.std_scaling is False
    assert estimator.estimator.ridge == 3.0  # type: ignore[union-attr]
    assert estimator.get_params()["estimator__ridge"] == 3.0
    assert repr(estimator) == (
        "Translator(estimator=Affine(ridge=3.0), std_scaling=False, dim_matching='zero_padding')"
    )
    with pytest.raises(ValueError, match="no parameter 'alpha'"):
        estimator.set_params(alpha=1.0)


def test_refit_replaces_the_fitted_state() -> None:
    g = _gen(16)
    estimator = Affine().fit(_samples(30, 4, g), _samples(30, 3, g))
    estimator.fit(_samples(30, 2, g), _samples(30, 5, g))
    assert estimator.weight_.shape == (2, 5) and estimator.bias_.shape == (5,)
    assert estimator.n_features_in_ == 2 and estimator.n_features_out_ == 5


def test_transform_is_differentiable_fit_is_detached() -> None:
    g = _gen(17)
    x = _samples(30, 3, g).requires_grad_(True)
    estimator = Similarity().fit(x, _samples(30, 3, g))
    assert not estimator.weight_.requires_grad and not estimator.bias_.requires_grad
    estimator.transform(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


# --------------------------------------------------------------------------- bad input

ALL = [Orthogonal(), Similarity(), Affine(), Linear(), Permutation(), Translator()]


@pytest.mark.parametrize("estimator", ALL, ids=_ids(ALL))
def test_bad_pairs_are_rejected(estimator: AlignmentEstimator) -> None:
    g = _gen(18)
    x, y = _samples(20, 3, g), _samples(20, 3, g)
    with pytest.raises(ValueError, match=r"x and y .* x with N=20 and y with N=19"):
        estimator.fit(x, y[:19])
    bad = x.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x contains 1 NaN .* index \(4, 1\)"):
        estimator.fit(bad, y)
    with pytest.raises(ValueError, match="y contains 1 NaN"):
        estimator.fit(x, bad)
    with pytest.raises(ValueError, match=r"x must be 2-D .* got shape \(3,\); .* x\[None\]"):
        estimator.fit(x[0], y)
    with pytest.raises(ValueError, match=r"y must be 2-D"):
        estimator.fit(x, y[None])
    with pytest.raises(TypeError, match="x must hold floating-point"):
        estimator.fit(np.ones((20, 3), dtype=np.int64), y)
    with pytest.raises(TypeError, match=r"y must be a torch\.Tensor or a numpy\.ndarray"):
        estimator.fit(x, y.tolist())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one paired sample"):
        estimator.fit(x[:0], y[:0])
    fitted = al.clone(estimator).fit(x, y)
    with pytest.raises(ValueError, match=r"x must have 3 features .* got shape \(20, 4\)"):
        fitted.transform(torch.zeros(20, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"y must have 3 features"):
        fitted.inverse_transform(torch.zeros(20, 2, dtype=F64))
    assert not hasattr(al.clone(estimator), "n_features_in_")


@pytest.mark.parametrize("estimator", [Orthogonal(), Similarity(), Permutation()], ids=repr)
def test_square_estimators_reject_a_dimension_mismatch(estimator: AlignmentEstimator) -> None:
    g = _gen(19)
    with pytest.raises(ValueError, match=r"D_x=4 and y with D_y=3; use Translator"):
        al.clone(estimator).fit(_samples(20, 4, g), _samples(20, 3, g))


def test_affine_and_linear_need_enough_samples_without_ridge() -> None:
    g = _gen(20)
    x, y = _samples(5, 5, g), _samples(5, 2, g)
    with pytest.raises(ValueError, match=r"N >= D_x \+ 1 .* N=5 and D_x=5; .* ridge > 0"):
        Affine().fit(x, y)
    with pytest.raises(ValueError, match=r"N >= D_x .* N=4 and D_x=5; .* ridge > 0"):
        Linear().fit(x[:4], y[:4])
    assert Affine(ridge=0.1).fit(x, y).weight_.shape == (5, 2)
    assert Linear(ridge=0.1).fit(x[:4], y[:4]).weight_.shape == (5, 2)
    assert Linear().fit(x, y).weight_.shape == (5, 2)  # N = D_x is enough without a bias
    x6, y6 = _samples(6, 5, g), _samples(6, 2, g)
    assert Affine().fit(x6, y6).weight_.shape == (5, 2)  # N = D_x + 1 is enough with a bias


@pytest.mark.parametrize("cls", [Affine, Linear])
def test_bad_ridge(cls: type[AlignmentEstimator]) -> None:
    x = _samples(20, 3, _gen(21))
    assert cls(ridge=-1.0).ridge == -1.0  # type: ignore[call-arg,attr-defined]
    with pytest.raises(ValueError, match=r"ridge must be a finite number >= 0, got -1.0"):
        cls(ridge=-1.0).fit(x, x)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="ridge must be a finite number"):
        cls(ridge=float("inf")).fit(x, x)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="ridge must be a real number"):
        cls(ridge="0.1").fit(x, x)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="ridge must be a real number"):
        cls(ridge=True).fit(x, x)  # type: ignore[call-arg]


def test_bad_options_list_the_choices() -> None:
    x = _samples(20, 3, _gen(22))
    with pytest.raises(TypeError, match="proper must be a bool"):
        Orthogonal(proper="yes").fit(x, x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="proper must be a bool"):
        Similarity(proper=1).fit(x, x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"criterion must be one of \['correlation', 'sqeuc"):
        Permutation(criterion="cosine").fit(x, x)
    with pytest.raises(
        ValueError,
        match=r"estimator must be one of \['orthogonal', 'similarity', 'affine', 'linear', "
        r"'permutation'\] or an AlignmentEstimator instance, got 'procrustes'",
    ):
        Translator(estimator="procrustes").fit(x, x)
    with pytest.raises(ValueError, match="estimator must be one of"):
        Translator(estimator=object()).fit(x, x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dim_matching must be one of \['zero_padding', 'pca'\]"):
        Translator(dim_matching="cca").fit(x, x)
    with pytest.raises(TypeError, match="std_scaling must be a bool"):
        Translator(std_scaling=None).fit(x, x)  # type: ignore[arg-type]


def test_degenerate_fits_are_rejected() -> None:
    g = _gen(23)
    x = _samples(20, 3, g)
    with pytest.raises(ValueError, match="x must not be constant"):
        Similarity().fit(torch.ones(20, 3, dtype=F64), x)
    with pytest.raises(ValueError, match="needs N >= 2"):
        Permutation().fit(x[:1], x[:1])
    with pytest.raises(ValueError, match=r"dim_matching='pca' needs N >= min\(D_x, D_y\) = 4"):
        Translator(dim_matching="pca").fit(_samples(3, 6, g), _samples(3, 4, g))


def test_non_invertible_maps_raise() -> None:
    g = _gen(24)
    x = _samples(30, 4, g)
    with pytest.raises(ValueError, match=r"Affine is not invertible: it maps D_x=4 onto D_y=2"):
        Affine().fit(x, x[:, :2]).inverse_transform(x[:, :2])
    singular = x @ torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match=r"Linear is not invertible: .* condition number"):
        Linear().fit(x, singular).inverse_transform(singular)
    with pytest.raises(ValueError, match="Similarity is not invertible"):
        Similarity().fit(x, torch.zeros_like(x)).inverse_transform(x)


def test_permutation_explains_missing_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # makes the import fail
    x = _samples(20, 3, _gen(25))
    with pytest.raises(ImportError, match=r"pip install 'latentbridge\[alignment\]'"):
        Permutation().fit(x, x)


def test_import_loads_neither_scipy_nor_sklearn() -> None:
    code = (
        "import sys, latentbridge; before = set(sys.modules); import latentbridge.alignment; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.split('.')[0] in {'scipy', 'sklearn'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
