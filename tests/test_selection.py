"""`experiments.selection.combine`: the selected and ensemble outputs of one stitched pair."""

from __future__ import annotations

import pytest
import torch

from latentbridge.experiments.selection import combine, combine_targets, weighted_mean
from latentbridge.stitching import (
    consistency_ensemble,
    consistency_weights,
    output_agreement,
    prediction_agreement,
)


def _candidates(num: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    own = torch.randn(20, 4, generator=g)
    out = []
    for i in range(num):
        stitched = own.clone()
        stitched[: 4 * i] = torch.randn(4 * i, 4, generator=g)  # candidate i disagrees more
        out.append((torch.randn(10, 4, generator=g), own, stitched))
    return out


def test_selected_is_the_most_consistent_candidate() -> None:
    candidates = _candidates(3)
    reordered = [candidates[2], candidates[0], candidates[1]]
    chosen = combine("selected", reordered, prediction_agreement, consistency_ensemble)
    assert chosen is reordered[1]  # candidates[0] agrees on every anchor


def test_ensemble_weights_every_output_by_the_softmax_of_the_consistencies() -> None:
    candidates = _candidates(3)
    scores = [prediction_agreement(own, b) for _, own, b in candidates]
    weights = consistency_weights(scores)
    test, own, stitched = combine(
        "ensemble", candidates, prediction_agreement, consistency_ensemble
    )
    torch.testing.assert_close(test, consistency_ensemble([c[0] for c in candidates], weights))
    torch.testing.assert_close(stitched, consistency_ensemble([c[2] for c in candidates], weights))
    torch.testing.assert_close(own, consistency_ensemble([c[1] for c in candidates], weights))
    # the most consistent candidate weighs most, and every weight is positive
    assert int(weights.argmax()) == 0 and bool((weights > 0).all())


def test_a_decoder_ensemble_is_the_weighted_mean_of_its_outputs() -> None:
    candidates = _candidates(2, seed=1)
    test, _, _ = combine("ensemble", candidates, output_agreement, weighted_mean)
    scores = [output_agreement(own, b) for _, own, b in candidates]
    w = consistency_weights(scores)
    torch.testing.assert_close(
        test, w[0] * candidates[0][0].double() + w[1] * candidates[1][0].double()
    )


def test_equal_consistencies_give_the_first_candidate_and_the_plain_average() -> None:
    g = torch.Generator().manual_seed(2)
    own = torch.randn(6, 3, generator=g)
    candidates = [(torch.randn(5, 3, generator=g), own, own) for _ in range(3)]
    assert (
        combine("selected", candidates, prediction_agreement, consistency_ensemble) is candidates[0]
    )
    test, _, _ = combine("ensemble", candidates, output_agreement, weighted_mean)
    torch.testing.assert_close(test, torch.stack([c[0] for c in candidates]).double().mean(0))


def test_combine_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="selection kind must be one of"):
        combine("best", _candidates(2), prediction_agreement, consistency_ensemble)
    with pytest.raises(ValueError, match="at least one candidate"):
        combine("selected", [], prediction_agreement, consistency_ensemble)


def test_combine_targets_combines_each_target_on_its_own() -> None:
    pool = [
        {"a": c, "b": d}
        for c, d in zip(_candidates(2, seed=3), _candidates(2, seed=4), strict=True)
    ]
    out = combine_targets("selected", pool, prediction_agreement, consistency_ensemble)
    assert list(out) == ["a", "b"]
    for target in ("a", "b"):
        want = combine(
            "selected", [p[target] for p in pool], prediction_agreement, consistency_ensemble
        )
        assert out[target] is want
    with pytest.raises(ValueError, match="at least one candidate"):
        combine_targets("ensemble", [], prediction_agreement, consistency_ensemble)
