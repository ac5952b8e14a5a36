"""Stitching on synthetic spaces related by a known class of transformation."""

from __future__ import annotations

import pytest
import torch

from latentbridge.experiments.quickstart import run_quickstart
from latentbridge.synthetic import make_spaces


def _by_variant(**kwargs: object) -> dict[str, tuple[float, float]]:
    rows = run_quickstart(num_samples=1500, num_anchors=96, epochs=8, **kwargs)  # type: ignore[arg-type]
    return {r.variant: (r.accuracy, r.stitched_accuracy) for r in rows}


def test_invariant_projection_stitches_and_absolute_falls_to_chance() -> None:
    acc = _by_variant(transformations=("orthogonal", "translation"))
    assert acc["euclidean"][1] == pytest.approx(acc["euclidean"][0], abs=1e-9)
    assert acc["absolute"][0] > 0.7 and acc["absolute"][1] < 0.25
    # L-infinity is not invariant to rotations: it must lose clearly more than euclidean.
    assert acc["linf"][0] - acc["linf"][1] > 0.05


def test_translation_is_absorbed_by_l1_and_breaks_absolute() -> None:
    acc = _by_variant(
        transformations=("translation",), projections=("cosine", "l1"), separation=0.5
    )
    assert acc["l1"][1] == pytest.approx(acc["l1"][0], abs=1e-9)
    assert acc["absolute"][1] < acc["absolute"][0] - 0.2


def test_isotropic_scaling_is_absorbed_by_cosine_exactly() -> None:
    acc = _by_variant(transformations=("isotropic_scaling",), projections=("cosine",))
    assert acc["cosine"][1] == pytest.approx(acc["cosine"][0], abs=1e-9)


def test_make_spaces_applies_the_reported_transform() -> None:
    spaces = make_spaces(200, 8, 4, ("orthogonal", "translation"), seed=3, dtype=torch.float64)
    torch.testing.assert_close(spaces.transform(spaces.x_a), spaces.x_b)
    assert spaces.labels.bincount().tolist() == [50, 50, 50, 50]
    again = make_spaces(200, 8, 4, ("orthogonal", "translation"), seed=3, dtype=torch.float64)
    assert torch.equal(again.x_b, spaces.x_b)
    with pytest.raises(ValueError, match="unknown transformation"):
        make_spaces(transformations=("rotation",))
    with pytest.raises(ValueError, match="num_samples"):
        make_spaces(num_samples=3, num_classes=10)
