"""Stacked training (training.Stack, train_classifiers): each model trains as if alone.

References are independent: a plain per-model loop (torch.optim.Adam over one model, the same
batch order) written here, which the stacked loop must match within float tolerance, and the
stacked loop itself with other stack compositions, which it must match within rounding (each
model's arithmetic is its own: vmap over the models' dimension, elementwise Adam; the fused
Adam kernel rounds the tail of a vector differently, so the bits can depend on the stack's
size, which is why the experiments fix their groups by the config).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentbridge import aggregations
from latentbridge.experiments import training

N, F, C = 96, 12, 3


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, F, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


def _head(seed: int) -> nn.Module:
    with training.seeded(seed):
        return training.make_head(F, C, hidden=16)


def _train_stacked(seeds: list[int], xs: list[torch.Tensor], y: torch.Tensor) -> list[nn.Module]:
    return training.train_classifiers(
        [_head(s) for s in seeds],
        xs,
        y,
        epochs=3,
        lr=0.01,
        batch_size=20,  # 96 = 4 x 20 + 16: a short last batch
        generators=[torch.Generator().manual_seed(s) for s in seeds],
    )


def _train_plain(seed: int, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """The protocol written out for one model: Adam, mean cross-entropy, seeded order."""
    model = _head(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(3):
        order = torch.randperm(N, generator=generator)
        for start in range(0, N, 20):
            rows = order[start : start + 20]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
            optimizer.step()
    return model.eval()


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_a_stacked_head_matches_the_plain_loop() -> None:
    x, y = _data(0)
    seeds = [3, 4, 5]
    stacked = _train_stacked(seeds, [x, x, x], y)
    for seed, model in zip(seeds, stacked, strict=True):
        plain = _train_plain(seed, x, y)
        for got, want in zip(_params(model), _params(plain), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        assert not model.training
    # Negative control: another seed's plain head is far from it.
    other = _train_plain(9, x, y)
    pairs = zip(_params(stacked[0]), _params(other), strict=True)
    assert max((a - b).abs().max().item() for a, b in pairs) > 0.01


def test_a_heads_result_does_not_depend_on_its_stack() -> None:
    xs = [_data(i)[0] for i in range(4)]
    y = _data(0)[1]
    alone = _train_stacked([7], [xs[2]], y)[0]
    in_pair = _train_stacked([1, 7], [xs[0], xs[2]], y)[1]
    in_four = _train_stacked([5, 6, 7, 8], [xs[1], xs[3], xs[2], xs[0]], y)[2]
    for a, b, c in zip(_params(alone), _params(in_pair), _params(in_four), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
    # The single-model loop follows the same protocol (its Adam rounds differently).
    single = training.train_classifier(
        _head(7), xs[2], y, epochs=3, lr=0.01, batch_size=20,
        generator=torch.Generator().manual_seed(7),
    )  # fmt: skip
    for a, b in zip(_params(alone), _params(single), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_stacked_heads_learn_and_are_deterministic() -> None:
    x, y = _data(1)
    first = _train_stacked([0, 1], [x, x], y)
    again = _train_stacked([0, 1], [x, x], y)
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(_params(a), _params(b), strict=True))
    for model in first:
        with torch.no_grad():
            assert float((model(x).argmax(1) == y).float().mean()) > 0.7
    # Different seeds give different heads.
    assert not torch.equal(_params(first[0])[1], _params(first[1])[1])


def test_a_stack_of_product_aggregations_matches_them_alone() -> None:
    """The product variants train aggregation + head as one model; vmap serves them too."""
    torch.manual_seed(0)
    k, parts = 8, 3
    x = torch.randn(N, parts, k)
    y = (x[:, 0, 0] > 0).long()

    def model(seed: int) -> nn.Module:
        with training.seeded(seed):
            agg = aggregations.get("self_attention")(num_subspaces=parts, num_anchors=k)
            return nn.Sequential(agg, training.make_head(agg.out_features, 2, hidden=8))

    def train(seeds: list[int]) -> list[nn.Module]:
        return training.train_classifiers(
            [model(s) for s in seeds], [x] * len(seeds), y, epochs=2, lr=0.01, batch_size=32,
            generators=[torch.Generator().manual_seed(s) for s in seeds],
        )  # fmt: skip

    alone, pair = train([2])[0], train([1, 2])[1]
    # Compared by their outputs: attention's key bias has a zero gradient up to rounding,
    # which Adam turns into steps of any sign, without effect on the function.
    with torch.no_grad():
        torch.testing.assert_close(alone(x), pair(x), rtol=1e-4, atol=1e-5)
    before = _params(model(2))
    assert any(not torch.equal(a, b) for a, b in zip(before, _params(alone), strict=True))


def test_stack_unstack_round_trip_and_shapes() -> None:
    heads = [_head(s) for s in range(3)]
    stack = training.Stack(heads)
    assert len(stack) == 3
    x = torch.randn(3, 5, F)
    out = stack(x)
    assert out.shape == (3, 5, C)
    for s, head in enumerate(heads):
        with torch.no_grad():
            torch.testing.assert_close(out[s], head(x[s]))
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(1.0)
    changed = stack.unstack()
    assert changed[0] is heads[0]
    torch.testing.assert_close(next(heads[1].parameters()), next(_head(1).parameters()) + 1.0)


def test_bad_stacks_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least one"):
        training.Stack([])
    x, y = _data(0)
    with pytest.raises(ValueError, match="one entry per model"):
        training.train_classifiers(
            [_head(0), _head(1)], [x], y, epochs=1, generators=[torch.Generator()]
        )


def test_a_stack_keeps_frozen_parameters_frozen_and_needs_mini_batches() -> None:
    heads = [_head(s) for s in range(2)]
    for head in heads:
        head[0].weight.requires_grad_(False)  # a frozen LayerNorm scale
    stack = training.Stack(heads)
    frozen = [p for p in stack.parameters() if not p.requires_grad]
    assert len(frozen) == 1 and frozen[0].shape == (2, F)
    x, y = _data(0)
    before = heads[0][0].weight.detach().clone()
    training.train_classifiers(
        heads, [x, x], y, epochs=1, batch_size=32, generators=[torch.Generator()] * 2
    )
    assert torch.equal(heads[0][0].weight, before)
    with pytest.raises(ValueError, match="mini-batches"):
        training.fit(training.Stack(heads), lambda b: torch.zeros(()), num_samples=4, epochs=1,
                     lr=0.1)  # fmt: skip
