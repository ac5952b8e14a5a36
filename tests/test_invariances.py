"""Generated invariance tests: every registered projection x normalisation x transformation.

A declared invariance must hold to 1e-9 (float64) and an undeclared one must be violated by more
than 1e-3: the metadata cannot lie in either direction. User-registered projections (see
conftest.py) are in the grid too. An invariance declared only for an exact whitening (``whiten``
with orthogonal and affine maps) is checked on draws with enough anchors that the whitening is
exact (K > D), and must be violated when it is not (K <= D).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentbridge as lb
from latentbridge.analysis import sample_space
from latentbridge.normalization import ABSOLUTE, RELATIVE, whitening_is_exact
from latentbridge.transformations import TRANSFORMATIONS, AffineMap, closure, random_transformation

from .conftest import USER_PROJECTIONS

GRID = list(itertools.product(lb.projections.available(), ABSOLUTE, RELATIVE, TRANSFORMATIONS))


def test_grid_covers_builtins_and_user_projections() -> None:
    names = {p for p, *_ in GRID}
    assert {"cosine", "euclidean", "l1", "linf", "dot", "angular", "rbf"} <= names
    assert set(USER_PROJECTIONS) <= names


def _draw(
    kind: str, seed: int, sizes: tuple[int, int, int], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, AffineMap]:
    n, k, dim = sizes
    g = torch.Generator().manual_seed(seed)
    points = sample_space(n + k, dim, generator=g, dtype=dtype)
    return points[:n], points[n:], random_transformation(kind, dim, generator=g)


def _relative_change(
    projection: str,
    norm: str,
    rel: str,
    kind: str,
    seed: int,
    sizes: tuple[int, int, int],
    dtype: torch.dtype,
    *,
    exact_whitening: bool | None = None,
) -> float:
    """The relative change of the output under a random member of ``kind``; with
    ``exact_whitening``, the draw must (True) or must not (False) whiten both spaces exactly."""
    x, anchors, t = _draw(kind, seed, sizes, dtype)
    if exact_whitening is not None:
        exact = whitening_is_exact(anchors) and whitening_is_exact(t(anchors))
        assert exact == exact_whitening, f"the draw {sizes} must have exact={exact_whitening}"
    before = lb.relative_projection(x, anchors, projection, norm, rel)
    after = lb.relative_projection(t(x), t(anchors), projection, norm, rel)
    assert before.dtype == dtype and torch.isfinite(before).all()
    return float(torch.linalg.norm(after - before) / torch.linalg.norm(before))


sizes = st.tuples(st.integers(8, 40), st.integers(4, 24), st.integers(3, 12))
# At least twice as many anchors as dimensions: sample_space's correlation matrices then have
# eigenvalues above 1e-3 (also after a random affine map), ten times the whitening's floor.
many_anchors = st.integers(3, 10).flatmap(
    lambda dim: st.tuples(st.integers(8, 40), st.integers(2 * dim, 2 * dim + 16), st.just(dim))
)
# At most as many anchors as dimensions: the whitening's eigenvalue floor is active. At least 4,
# as in `sizes` (two anchors are whitened to opposite points, and a relative vector of two
# coordinates is standardised to (1, -1) or (-1, 1): most changes would be hidden).
few_anchors = st.integers(4, 12).flatmap(
    lambda dim: st.tuples(st.integers(8, 40), st.integers(4, dim), st.just(dim))
)


def _check(projection: str, norm: str, rel: str, kind: str, change: float) -> None:
    if kind in lb.projections.effective_invariances(projection, norm, rel):
        assert change <= 1e-9, f"{projection}/{norm}/{rel} claims {kind} but moved by {change:.2e}"
    else:
        assert change > 1e-3, f"{projection}/{norm}/{rel} does not claim {kind}, moved {change:.2e}"


WHITEN_GRID = [(p, n, r, kind) for p, n, r, kind in GRID if ABSOLUTE[n].whitens]
OTHER_GRID = [cell for cell in GRID if cell not in WHITEN_GRID]


@pytest.mark.parametrize(("projection", "norm", "rel", "kind"), OTHER_GRID)
@given(seed=st.integers(0, 2**31 - 1), sizes=sizes)
def test_declared_invariances_hold_and_undeclared_fail(
    projection: str, norm: str, rel: str, kind: str, seed: int, sizes: tuple[int, int, int]
) -> None:
    change = _relative_change(projection, norm, rel, kind, seed, sizes, torch.float64)
    _check(projection, norm, rel, kind, change)


@pytest.mark.parametrize(("projection", "norm", "rel", "kind"), WHITEN_GRID)
@given(seed=st.integers(0, 2**31 - 1), sizes=many_anchors)
def test_declared_invariances_hold_and_undeclared_fail_after_an_exact_whitening(
    projection: str, norm: str, rel: str, kind: str, seed: int, sizes: tuple[int, int, int]
) -> None:
    """The grid for a whitening normalisation, on draws whose whitening is exact (K > D), the
    condition of its declarations; test_whitening_with_few_anchors covers K <= D."""
    change = _relative_change(
        projection, norm, rel, kind, seed, sizes, torch.float64, exact_whitening=True
    )
    _check(projection, norm, rel, kind, change)


@pytest.mark.parametrize(("projection", "norm", "rel", "kind"), WHITEN_GRID)
@given(seed=st.integers(0, 2**31 - 1), sizes=few_anchors)
def test_whitening_with_few_anchors(
    projection: str, norm: str, rel: str, kind: str, seed: int, sizes: tuple[int, int, int]
) -> None:
    """With K <= D anchors the eigenvalue floor is active: the invariances declared for any
    anchors still hold, those declared only for an exact whitening (orthogonal, affine) fail, as
    every undeclared one does; no representation of samples outside the span of K <= D anchors
    can be affine-invariant."""
    change = _relative_change(
        projection, norm, rel, kind, seed, sizes, torch.float64, exact_whitening=False
    )
    if kind in lb.projections.effective_invariances(projection, norm, rel, exact_whitening=False):
        assert change <= 1e-9, f"{projection}/{norm}/{rel} claims {kind} but moved by {change:.2e}"
    else:
        assert change > 1e-3, f"{projection}/{norm}/{rel} keeps {kind} with K <= D: {change:.2e}"


def test_whiten_declares_rotations_and_affine_maps_only_for_an_exact_whitening() -> None:
    eff = lb.projections.effective_invariances
    for projection in ("cosine", "euclidean", "dot", "angular", "rbf", "test_sqeuclidean"):
        for rel in RELATIVE:
            assert eff(projection, "whiten", rel) == set(TRANSFORMATIONS)
            exact_only = eff(projection, "whiten", rel) - eff(
                projection, "whiten", rel, exact_whitening=False
            )
            assert exact_only == {"orthogonal", "affine"}
    for projection, norm, rel, _ in GRID:
        if not ABSOLUTE[norm].whitens:
            assert eff(projection, norm, rel) == eff(projection, norm, rel, exact_whitening=False)
            assert "affine" not in eff(projection, norm, rel)


FLOAT32_GRID = [
    (p, n, r, kind)
    for p, n, r, kind in GRID
    if kind in lb.projections.effective_invariances(p, n, r)
]


@pytest.mark.parametrize(("projection", "norm", "rel", "kind"), FLOAT32_GRID)
def test_declared_invariances_hold_in_float32(
    projection: str, norm: str, rel: str, kind: str
) -> None:
    change = _relative_change(projection, norm, rel, kind, 7, (32, 16, 8), torch.float32)
    assert change <= 1e-4


def test_orthogonal_implies_its_subgroups() -> None:
    for name in lb.projections.available():
        inv = lb.projections.get(name).invariances
        if "orthogonal" in inv:
            assert {"permutation", "sign_flip"} <= inv


def test_closure_follows_the_subgroup_relations() -> None:
    assert closure({"orthogonal"}) == {"orthogonal", "permutation", "sign_flip"}
    assert closure({"diagonal_scaling"}) == {"diagonal_scaling", "isotropic_scaling"}
    assert closure({"affine"}) == set(TRANSFORMATIONS)
    assert closure({"translation", "permutation"}) == {"translation", "permutation"}
    assert closure(()) == frozenset()
    for kind in TRANSFORMATIONS:
        assert closure(closure({kind})) == closure({kind})


def _is_member(kind: str, weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """Whether ``z -> z @ weight + bias`` belongs to the class ``kind`` (float64 tolerances)."""
    dim = weight.shape[0]
    eye = torch.eye(dim, dtype=torch.float64)
    diagonal = torch.diagonal(weight)
    is_diagonal = bool(torch.count_nonzero(weight - torch.diag(diagonal)) == 0)
    linear = bool(torch.count_nonzero(bias) == 0)
    if kind == "affine":
        return bool(torch.linalg.svdvals(weight).min() > 1e-9)
    if kind == "translation":
        return bool(torch.equal(weight, eye))
    if not linear:
        return False
    if kind == "orthogonal":
        return bool(torch.allclose(weight.T @ weight, eye, atol=1e-12))
    if kind == "isotropic_scaling":
        return is_diagonal and bool((diagonal == diagonal[0]).all() and diagonal[0] > 0)
    if kind == "diagonal_scaling":
        return is_diagonal and bool((diagonal > 0).all())
    if kind == "sign_flip":
        return is_diagonal and bool((diagonal.abs() == 1).all())
    return bool(  # permutation
        ((weight == 0) | (weight == 1)).all() and (weight.sum(0) == 1).all()
    ) and bool((weight.sum(1) == 1).all())


@pytest.mark.parametrize("kind", TRANSFORMATIONS)
def test_a_member_of_a_class_is_a_member_of_every_class_containing_it(kind: str) -> None:
    """closure's subgroup relations are true of the random members: a member of ``kind`` is a
    member of every class ``big`` whose closure holds ``kind``, and of no other class."""
    g = torch.Generator().manual_seed(4)
    for dim in (2, 5):
        t = random_transformation(kind, dim, generator=g)
        for big in TRANSFORMATIONS:
            member = _is_member(big, t.weight, t.bias)
            if kind in closure({big}):
                assert member, f"a {kind} map must be a member of {big}"
            else:
                assert not member, f"a random {kind} map is not a member of {big}"


def test_paper_table() -> None:
    """The paper's table of invariances (cosine, euclidean, L1, L-infinity, dot)."""
    get = lb.projections.get
    assert get("cosine").invariances == {
        "orthogonal",
        "permutation",
        "sign_flip",
        "isotropic_scaling",
    }
    assert get("euclidean").invariances == {"orthogonal", "permutation", "sign_flip", "translation"}
    assert get("l1").invariances == {"permutation", "sign_flip", "translation"}
    assert get("linf").invariances == {"permutation", "sign_flip", "translation"}
    assert get("dot").invariances == {"orthogonal", "permutation", "sign_flip"}
    for name in lb.projections.available():
        assert "diagonal_scaling" not in get(name).invariances


def test_normalisations_change_invariances_as_documented() -> None:
    eff = lb.projections.effective_invariances
    assert "translation" in eff("cosine", "center")
    assert "translation" not in eff("cosine")
    assert "isotropic_scaling" in eff("euclidean", relative_normalization="standardize")
    assert "isotropic_scaling" in eff("l1", relative_normalization="l2")
    assert "isotropic_scaling" not in eff("l1")
    assert "diagonal_scaling" in eff("l1", "standard")
    assert "orthogonal" not in eff("euclidean", "standard")
    assert "translation" not in eff("euclidean", "l2")


@pytest.mark.parametrize("kind", TRANSFORMATIONS)
def test_random_transformations_are_members_of_their_class(kind: str) -> None:
    g = torch.Generator().manual_seed(3)
    for dim in (2, 5, 9):
        t = random_transformation(kind, dim, generator=g)
        w, b = t.weight, t.bias
        eye = torch.eye(dim, dtype=torch.float64)
        off_diagonal = w - torch.diag(torch.diagonal(w))
        assert _is_member(kind, w, b)
        if kind not in ("translation", "affine"):
            assert torch.count_nonzero(b) == 0
        if kind == "orthogonal":
            torch.testing.assert_close(w.T @ w, eye)
            assert (w.abs() > 1e-3).sum() > dim  # not a signed permutation
        elif kind == "isotropic_scaling":
            c = float(w[0, 0])
            torch.testing.assert_close(w, c * eye)
            assert c > 0 and not 0.5 < c < 2
        elif kind == "translation":
            torch.testing.assert_close(w, eye)
            assert torch.linalg.norm(b) > 0
        elif kind == "permutation":
            assert set(w.sum(0).tolist()) == {1.0} and set(w.sum(1).tolist()) == {1.0}
            assert not torch.equal(w, eye)
        elif kind == "sign_flip":
            assert torch.count_nonzero(off_diagonal) == 0
            assert set(torch.diagonal(w).tolist()) <= {-1.0, 1.0} and (torch.diagonal(w) < 0).any()
        elif kind == "affine":
            # well conditioned and neither orthogonal nor a scaling: singular values in
            # [1/2, 2], the largest at least twice the smallest, a dense matrix
            s = torch.linalg.svdvals(w)
            assert 0.5 <= float(s.min()) and float(s.max()) <= 2.0 and s.max() / s.min() >= 2
            assert torch.count_nonzero(off_diagonal) > 0 and torch.linalg.norm(b) > 0
        else:
            d = torch.diagonal(w)
            assert (
                torch.count_nonzero(off_diagonal) == 0 and (d > 0).all() and d.max() / d.min() >= 2
            )
