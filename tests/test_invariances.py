"""Generated invariance tests: every registered projection x normalisation x transformation.

A declared invariance must hold to 1e-9 (float64) and an undeclared one must be violated by more
than 1e-3: the metadata cannot lie in either direction. User-registered projections (see
conftest.py) are in the grid too.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentbridge as lb
from latentbridge.analysis import sample_space
from latentbridge.normalization import ABSOLUTE, RELATIVE
from latentbridge.transformations import TRANSFORMATIONS, random_transformation

from .conftest import USER_PROJECTIONS

GRID = list(itertools.product(lb.projections.available(), ABSOLUTE, RELATIVE, TRANSFORMATIONS))


def test_grid_covers_builtins_and_user_projections() -> None:
    names = {p for p, *_ in GRID}
    assert {"cosine", "euclidean", "l1", "linf", "dot", "angular", "rbf"} <= names
    assert set(USER_PROJECTIONS) <= names


def _relative_change(
    projection: str,
    norm: str,
    rel: str,
    kind: str,
    seed: int,
    sizes: tuple[int, int, int],
    dtype: torch.dtype,
) -> float:
    n, k, dim = sizes
    g = torch.Generator().manual_seed(seed)
    points = sample_space(n + k, dim, generator=g, dtype=dtype)
    x, anchors = points[:n], points[n:]
    t = random_transformation(kind, dim, generator=g)
    before = lb.relative_projection(x, anchors, projection, norm, rel)
    after = lb.relative_projection(t(x), t(anchors), projection, norm, rel)
    assert before.dtype == dtype and torch.isfinite(before).all()
    return float(torch.linalg.norm(after - before) / torch.linalg.norm(before))


sizes = st.tuples(st.integers(8, 40), st.integers(4, 24), st.integers(3, 12))


@pytest.mark.parametrize(("projection", "norm", "rel", "kind"), GRID)
@given(seed=st.integers(0, 2**31 - 1), sizes=sizes)
def test_declared_invariances_hold_and_undeclared_fail(
    projection: str, norm: str, rel: str, kind: str, seed: int, sizes: tuple[int, int, int]
) -> None:
    declared = kind in lb.projections.effective_invariances(projection, norm, rel)
    change = _relative_change(projection, norm, rel, kind, seed, sizes, torch.float64)
    if declared:
        assert change <= 1e-9, f"{projection}/{norm}/{rel} claims {kind} but moved by {change:.2e}"
    else:
        assert change > 1e-3, f"{projection}/{norm}/{rel} does not claim {kind}, moved {change:.2e}"


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
        if kind != "translation":
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
        else:
            d = torch.diagonal(w)
            assert (
                torch.count_nonzero(off_diagonal) == 0 and (d > 0).all() and d.max() / d.min() >= 2
            )
