"""`latentbridge.stitching`: anchor consistency and its analogues on closed-form cases.

Identical spaces and spaces related by a transformation the layer is invariant to agree on
every anchor; a transformation it is not invariant to disagrees (negative control); anchors
that are not parallel agree at chance level. The grid over the registered projections,
normalisations and transformation classes is generated from their declared invariances.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import latentbridge as lb
from latentbridge import stitching as st
from latentbridge.analysis import sample_space
from latentbridge.normalization import ABSOLUTE
from latentbridge.transformations import TRANSFORMATIONS, compose, random_transformation

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> Iterator[None]:
    yield


def _clusters(
    num_classes: int, per_class: int, dim: int, seed: int, spread: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Balanced Gaussian clusters ``(C * per_class, dim)`` and their classes."""
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(num_classes, dim, generator=g, dtype=F64)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    return centres[y] + spread * torch.randn(len(y), dim, generator=g, dtype=F64), y


def _prototype_head(y: Tensor, num_classes: int) -> nn.Linear:
    """A closed-form classifier of relative representations: the logit of class c is the mean
    similarity to the anchors of class c (a linear head, no training)."""
    k = y.numel()
    weight = torch.zeros(num_classes, k, dtype=F64)
    weight[y, torch.arange(k)] = 1.0
    head = nn.Linear(k, num_classes, bias=False).double()
    with torch.no_grad():
        head.weight.copy_(weight / weight.sum(dim=1, keepdim=True))
    return head


def _random_head(in_features: int, out_features: int, seed: int) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(in_features, out_features).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(out_features, in_features, generator=g, dtype=F64))
        head.bias.copy_(torch.randn(out_features, generator=g, dtype=F64))
    return head


def _rigid(dim: int, seed: int) -> lb.transformations.AffineMap:
    g = torch.Generator().manual_seed(seed)
    return compose(
        random_transformation("orthogonal", dim, generator=g),
        random_transformation("translation", dim, generator=g),
    )


# -- classification: the model form ----------------------------------------------------------


def test_identical_spaces_agree_on_every_anchor() -> None:
    a, y = _clusters(4, 10, 8, seed=0)
    head = _prototype_head(y, 4)
    for layer in (lb.RelativeProjection("cosine"), lb.RelativeProjection("linf")):
        assert st.anchor_consistency(layer, head, a, a) == 1.0
        assert st.soft_anchor_consistency(layer, head, a, a) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_an_invariance_of_the_layer_gives_full_agreement(seed: int) -> None:
    a, y = _clusters(4, 12, 8, seed=seed)
    b = _rigid(8, seed)(a)
    layer = lb.RelativeProjection("euclidean")
    assert {"orthogonal", "translation"} <= layer.invariances
    for head in (_prototype_head(y, 4), _random_head(48, 4, seed)):
        assert st.anchor_consistency(layer, head, a, b) == 1.0
        assert st.soft_anchor_consistency(layer, head, a, b) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("projection", "kind"), [("euclidean", "diagonal_scaling"), ("cosine", "translation")]
)
def test_a_transformation_the_layer_is_not_invariant_to_breaks_agreement(
    projection: str, kind: str
) -> None:
    """Overlapping classes, so that the head's decisions have little margin: a map the layer
    is not invariant to flips some of them on every seed (with well-separated classes the
    predictions can survive it, and then the consistency rightly stays 1)."""
    layer = lb.RelativeProjection(projection)
    assert kind not in layer.invariances
    values = []
    for seed in range(5):
        a, y = _clusters(4, 20, 8, seed=seed, spread=2.0)
        head = _prototype_head(y, 4)
        b = random_transformation(kind, 8, generator=torch.Generator().manual_seed(50 + seed))(a)
        values.append(st.anchor_consistency(layer, head, a, b))
        assert st.soft_anchor_consistency(layer, head, a, b) < 1.0 - 1e-3
    assert max(values) < 1.0 and float(np.mean(values)) < 0.95, values
    # The same rigid map that euclidean ignores moves cosine's predictions (the same data).
    a, y = _clusters(4, 20, 8, seed=0, spread=2.0)
    b = _rigid(8, 0)(a)
    head = _prototype_head(y, 4)
    assert st.anchor_consistency(lb.RelativeProjection("euclidean"), head, a, b) == 1.0
    assert st.anchor_consistency(lb.RelativeProjection("cosine"), head, a, b) < 1.0


def test_anchors_that_are_not_parallel_agree_at_chance() -> None:
    """B holds A's anchors rotated and in another order. The prototype head predicts the true
    class on A (balanced over C = 4 classes), so chance is 1/C. The B-side prediction of anchor
    k is a function of the class of the sample that landed in row k, chosen to match the most
    rows of the shuffled class table, which biases the agreement above 1/C by O(1/sqrt(K)):
    about +0.03 at K = 800, within the stated tolerance of 0.05 over five seeds."""
    num_classes, tolerance = 4, 0.05
    values = []
    for seed in range(5):
        a, y = _clusters(num_classes, 200, 16, seed=seed)
        head = _prototype_head(y, num_classes)
        layer = lb.RelativeProjection("cosine")
        g = torch.Generator().manual_seed(100 + seed)
        rotation = random_transformation("orthogonal", 16, generator=g)
        shuffled = a[torch.randperm(len(a), generator=g)]
        assert st.anchor_consistency(layer, head, a, rotation(a)) == 1.0  # parallel: 1
        values.append(st.anchor_consistency(layer, head, a, rotation(shuffled)))
    assert abs(float(np.mean(values)) - 1 / num_classes) < tolerance, values
    assert max(values) < 0.4, values


def test_the_logits_form_equals_the_model_form() -> None:
    a, y = _clusters(3, 10, 6, seed=3, spread=2.0)
    b = random_transformation("diagonal_scaling", 6, generator=torch.Generator().manual_seed(3))(a)
    layer = lb.RelativeProjection("cosine")
    head = _prototype_head(y, 3)
    with torch.no_grad():
        logits_a = head(layer.with_anchors(a)(a))
        logits_b = head(layer.with_anchors(b)(b))
    out_a, out_b = st.anchor_outputs(layer, head, a, b)
    torch.testing.assert_close(out_a, logits_a, rtol=0, atol=0)
    torch.testing.assert_close(out_b, logits_b, rtol=0, atol=0)
    hard = st.prediction_agreement(logits_a, logits_b)
    assert st.anchor_consistency(layer, head, a, b) == hard
    assert 0.0 < hard < 1.0  # a case that tells the forms apart
    assert st.soft_anchor_consistency(layer, head, a, b) == st.soft_prediction_agreement(
        logits_a, logits_b
    )
    expected = float((logits_a.argmax(1) == logits_b.argmax(1)).double().mean())
    assert hard == expected


def test_the_layer_is_refitted_on_each_side_and_left_unchanged() -> None:
    a, y = _clusters(3, 8, 5, seed=4)
    b = _rigid(5, 4)(a)
    head = _prototype_head(y, 3)
    unfitted = lb.RelativeProjection("euclidean")
    fitted_elsewhere = lb.RelativeProjection("euclidean").fit(a.flip(0) + 7.0)
    before = fitted_elsewhere.anchors.clone()
    for layer in (unfitted, fitted_elsewhere):
        assert st.anchor_consistency(layer, head, a, b) == 1.0
    assert not unfitted.is_fitted
    torch.testing.assert_close(fitted_elsewhere.anchors, before, rtol=0, atol=0)


def test_a_product_layer_with_its_learned_aggregation() -> None:
    k, dim = 20, 6
    a = sample_space(k, dim, generator=torch.Generator().manual_seed(6))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        product = lb.ProductProjection(("cosine", "euclidean"), "mlp_sum", num_anchors=k).double()
    head = _random_head(product.out_features, 5, seed=6)
    assert "orthogonal" in product.invariances and "translation" not in product.invariances
    g = torch.Generator().manual_seed(7)
    rotated = random_transformation("orthogonal", dim, generator=g)(a)
    shifted = random_transformation("translation", dim, generator=g)(a)
    assert st.anchor_consistency(product, head, a, rotated) == 1.0
    out_a, out_b = st.anchor_outputs(product, head, a, shifted)
    assert st.output_agreement(out_a, out_b) < 1.0 - 1e-3
    assert st.soft_prediction_agreement(out_a, out_b) < 1.0 - 1e-6


def test_the_head_runs_in_eval_mode_and_keeps_its_flags() -> None:
    a, y = _clusters(3, 8, 5, seed=8)
    head = nn.Sequential(nn.Dropout(0.5), _prototype_head(y, 3))
    head.train()
    head[1].eval()  # mixed flags are restored one by one
    layer = lb.RelativeProjection("cosine")
    out_a, out_b = st.anchor_outputs(layer, head, a, a.numpy())
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)  # no dropout noise
    assert not out_a.requires_grad
    assert head.training and head[0].training and not head[1].training


def test_any_callable_is_a_head_and_numpy_anchors_are_accepted() -> None:
    a, y = _clusters(3, 8, 5, seed=9)
    linear = _prototype_head(y, 3)

    def head(relative: Tensor) -> Tensor:
        return linear(relative)

    b = _rigid(5, 9)(a).numpy()
    assert st.anchor_consistency(lb.RelativeProjection("euclidean"), head, a.numpy(), b) == 1.0


_GRID = list(itertools.product(lb.projections.available(), ABSOLUTE, TRANSFORMATIONS))


@pytest.mark.parametrize(("projection", "normalization", "kind"), _GRID)
def test_declared_invariances_agree_and_undeclared_ones_do_not(
    projection: str, normalization: str, kind: str
) -> None:
    """Generated from the metadata: a declared invariance gives identical outputs on the
    anchors (hard agreement 1, output agreement 1 to rounding); an undeclared one moves them."""
    layer = lb.RelativeProjection(projection, normalization)
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        a = sample_space(24, 8, generator=g)
        b = random_transformation(kind, 8, generator=g)(a)
        out_a, out_b = st.anchor_outputs(layer, _random_head(24, 5, seed), a, b)
        gap = 1.0 - st.output_agreement(out_a, out_b)
        if kind in layer.invariances:
            assert st.prediction_agreement(out_a, out_b) == 1.0
            assert gap <= 1e-12, f"{projection}/{normalization} claims {kind}, gap {gap:.2e}"
        else:
            assert gap > 1e-3, f"{projection}/{normalization} lacks {kind}, gap {gap:.2e}"


# -- classification: computed logits ---------------------------------------------------------


def test_prediction_agreement_closed_forms() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    assert st.prediction_agreement(logits, logits) == 1.0
    assert st.prediction_agreement(logits, 3.0 * logits + 1.0) == 1.0  # same argmax
    other = logits[[1, 0, 2, 3]]  # rows 0 and 1 swapped: predictions 1, 0 instead of 0, 1
    assert st.prediction_agreement(logits, other) == 0.5
    # a tie goes to the lowest class on both sides: row 2 predicts class 0
    assert st.prediction_agreement(logits[2:3], torch.tensor([[1.0, 0.0, 0.0]])) == 1.0
    # probabilities and log-probabilities give the same predictions as the logits
    probabilities = torch.softmax(logits, dim=1)
    assert st.prediction_agreement(probabilities, torch.log(probabilities)) == 1.0


def test_independent_predictions_agree_at_chance() -> None:
    g = torch.Generator().manual_seed(10)
    for num_classes in (2, 4, 10):
        a = torch.randn(4000, num_classes, generator=g)
        b = torch.randn(4000, num_classes, generator=g)
        # argmax of i.i.d. Gaussian scores is uniform: chance is 1/C; 4 standard errors
        tolerance = 4 * (1 / num_classes * (1 - 1 / num_classes) / 4000) ** 0.5
        assert abs(st.prediction_agreement(a, b) - 1 / num_classes) < tolerance
        assert st.soft_prediction_agreement(a, b) < st.soft_prediction_agreement(a, a)


def test_soft_prediction_agreement_closed_forms() -> None:
    a = torch.tensor([[np.log(3.0), 0.0]], dtype=F64)  # p = (3/4, 1/4)
    b = torch.zeros(1, 2, dtype=F64)  # p = (1/2, 1/2)
    assert st.soft_prediction_agreement(a, b) == pytest.approx(0.75, abs=1e-15)  # TV = 1/4
    assert st.soft_prediction_agreement(a, a) == 1.0
    assert st.soft_prediction_agreement(b, b + 4.0) == pytest.approx(1.0, abs=1e-15)
    # confident predictions of different classes: TV -> 1, agreement -> 0
    disjoint = st.soft_prediction_agreement(
        torch.tensor([[60.0, 0.0, 0.0]]), torch.tensor([[0.0, 60.0, 0.0]])
    )
    assert disjoint == pytest.approx(0.0, abs=1e-12)
    # the same prediction with another confidence: hard 1, soft below 1
    c = torch.tensor([[2.0, 0.0]], dtype=F64)
    assert st.prediction_agreement(a, c) == 1.0
    assert st.soft_prediction_agreement(a, c) < 1.0


# -- regression and reconstruction -----------------------------------------------------------


def _outputs(k: int, shape: tuple[int, ...], seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, *shape, generator=g, dtype=F64) * 2.0 + 5.0


def test_output_agreement_identical_outputs_give_one() -> None:
    out = _outputs(16, (3, 4, 4), seed=0)
    assert st.output_agreement(out, out) == 1.0
    assert st.output_agreement(out.float(), out.float().numpy()) == 1.0


def test_output_agreement_independent_outputs_give_one_third() -> None:
    a, b = _outputs(4000, (8,), seed=1), _outputs(4000, (8,), seed=2)
    # MSE = 2 sigma^2 and V = sigma^2 in expectation: 1 / (1 + 2) = 1/3
    assert st.output_agreement(a, b) == pytest.approx(1 / 3, abs=0.01)


def test_output_agreement_falls_with_the_noise_as_its_closed_form() -> None:
    a = _outputs(4000, (8,), seed=3)
    noise = _outputs(4000, (8,), seed=4) - 5.0  # variance 4, like a's
    values = []
    for s in (0.05, 0.3, 1.0, 3.0):
        value = st.output_agreement(a, a + s * noise)
        # MSE = s^2 var, V = (var + (1 + s^2) var) / 2  =>  1 / (1 + s^2 / (1 + s^2 / 2))
        assert value == pytest.approx(1 / (1 + s**2 / (1 + s**2 / 2)), abs=0.01), s
        values.append(value)
    assert values == sorted(values, reverse=True) and values[0] < 1.0


def test_output_agreement_is_scale_free_and_a_collapsed_side_scores_one_third() -> None:
    a, b = _outputs(32, (6,), seed=5), _outputs(32, (6,), seed=6)
    offset = torch.linspace(-3.0, 7.0, 6, dtype=F64)
    value = st.output_agreement(a, a + 0.3 * b)
    for scale in (1e-6, 3.0, 1e8):
        moved = st.output_agreement(scale * a + offset, scale * (a + 0.3 * b) + offset)
        assert moved == pytest.approx(value, rel=1e-9), scale
    # B constant at A's per-feature mean: MSE = Var(A), V = Var(A) / 2
    collapsed = a.mean(dim=0, keepdim=True).expand_as(a)
    assert st.output_agreement(a, collapsed) == pytest.approx(1 / 3, abs=1e-12)
    assert st.output_agreement(a, collapsed + 1.0) < 1 / 3


def test_output_agreement_of_a_decoder_through_anchor_outputs() -> None:
    k, dim = 12, 5
    a = sample_space(k, dim, generator=torch.Generator().manual_seed(11))
    decoder = nn.Sequential(_random_head(k, 3 * 2 * 2, seed=12), nn.Unflatten(1, (3, 2, 2)))
    layer = lb.RelativeProjection("euclidean")
    out_a, out_b = st.anchor_outputs(layer, decoder, a, _rigid(dim, 12)(a))
    assert out_a.shape == (k, 3, 2, 2)
    assert st.output_agreement(out_a, out_b) == pytest.approx(1.0, abs=1e-12)
    g = torch.Generator().manual_seed(12)
    scaled = random_transformation("diagonal_scaling", dim, generator=g)(a)
    assert st.output_agreement(*st.anchor_outputs(layer, decoder, a, scaled)) < 0.999


# -- node classification ---------------------------------------------------------------------


def test_node_agreement_counts_only_the_anchor_nodes() -> None:
    g = torch.Generator().manual_seed(13)
    logits_a = torch.randn(50, 4, generator=g)
    logits_b = logits_a.clone()
    others = torch.arange(25, 50)
    logits_b[others] = logits_a[others].roll(1, dims=1)  # non-anchor nodes disagree
    anchors = torch.arange(0, 20)
    assert st.node_agreement(logits_a, logits_b, anchors) == 1.0
    mask = torch.zeros(50, dtype=torch.bool)
    mask[anchors] = True
    assert st.node_agreement(logits_a, logits_b, mask) == 1.0
    assert st.node_agreement(logits_a, logits_b, anchors.numpy()) == 1.0
    half = torch.cat([torch.arange(0, 10), torch.arange(30, 40)])  # 10 agree, 10 disagree
    assert st.node_agreement(logits_a, logits_b, half) == 0.5
    assert st.node_agreement(logits_a, logits_b, half) == st.prediction_agreement(
        logits_a[half], logits_b[half]
    )


def test_node_agreement_of_independent_nodes_is_chance() -> None:
    g = torch.Generator().manual_seed(14)
    logits_a, logits_b = torch.randn(6000, 4, generator=g), torch.randn(6000, 4, generator=g)
    anchors = torch.randperm(6000, generator=g)[:3000]
    assert abs(st.node_agreement(logits_a, logits_b, anchors) - 0.25) < 4 * (0.1875 / 3000) ** 0.5


# -- validation at the boundary --------------------------------------------------------------


def _model() -> tuple[lb.RelativeProjection, nn.Linear, Tensor]:
    a, y = _clusters(3, 4, 5, seed=15)
    return lb.RelativeProjection("cosine"), _prototype_head(y, 3), a


def test_anchor_outputs_rejects_bad_models() -> None:
    layer, head, a = _model()
    with pytest.raises(TypeError, match="layer must be a RelativeProjection"):
        st.anchor_consistency(nn.Identity(), head, a, a)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="head must be callable"):
        st.anchor_consistency(layer, "linear", a, a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head's output on anchors_a must have one row per"):
        st.anchor_consistency(layer, lambda r: r[:3], a, a)
    with pytest.raises(TypeError, match=r"head's output on anchors_a must be a torch\.Tensor"):
        st.anchor_consistency(layer, lambda r: r.numpy(), a, a)
    with pytest.raises(TypeError, match="must hold floating-point"):
        st.anchor_consistency(layer, lambda r: r.argmax(dim=1), a, a)
    product = lb.ProductProjection(("cosine",), "sum", num_anchors=5).double()
    with pytest.raises(ValueError, match="num_anchors=5"):
        st.anchor_consistency(product, nn.Identity(), a, a)


@pytest.mark.parametrize(
    ("make_b", "error", "match"),
    [
        (lambda a: a[:-1], ValueError, "parallel anchors.*K=12 and K=11"),
        (lambda a: a[0], ValueError, r"anchors_b must be 2-D with shape \(K, D_B\)"),
        (lambda a: a[:, :0], ValueError, "anchors_b must have at least one feature"),
        (lambda a: a[:0], ValueError, "anchors_b must hold at least one anchor"),
        (
            lambda a: a.index_fill(0, torch.tensor([2]), float("nan")),
            ValueError,
            "anchors_b contains 5 NaN",
        ),
        (lambda a: a.long(), TypeError, "anchors_b must hold floating-point"),
        (lambda a: a.tolist(), TypeError, "anchors_b must be a torch.Tensor"),
    ],
)
def test_anchor_outputs_rejects_bad_anchors(
    make_b: Callable[[Tensor], Tensor], error: type[Exception], match: str
) -> None:
    layer, head, a = _model()
    with pytest.raises(error, match=match):
        st.anchor_consistency(layer, head, a, make_b(a))


def test_anchors_of_different_widths_are_accepted() -> None:
    layer, head, a = _model()
    wider = torch.cat([a, a[:, :2] * 0.5], dim=1)  # D_B = 7 != D_A = 5
    assert 0.0 <= st.anchor_consistency(layer, head, a, wider) <= 1.0


@pytest.mark.parametrize(
    ("logits_b", "error", "match"),
    [
        (torch.zeros(4, 2), ValueError, r"same shape \(K, C\), got \(4, 3\) and \(4, 2\)"),
        (torch.zeros(4), ValueError, r"logits_b must be 2-D"),
        (torch.zeros(4, 3, dtype=torch.long), TypeError, "logits_b must hold floating-point"),
        (torch.full((4, 3), float("inf")), ValueError, "logits_b contains 12 NaN or infinite"),
    ],
)
def test_prediction_agreement_rejects_bad_logits(
    logits_b: Tensor, error: type[Exception], match: str
) -> None:
    for function in (st.prediction_agreement, st.soft_prediction_agreement):
        with pytest.raises(error, match=match):
            function(torch.zeros(4, 3), logits_b)


def test_prediction_agreement_needs_anchors_and_two_classes() -> None:
    with pytest.raises(ValueError, match="at least one anchor, got K=0"):
        st.prediction_agreement(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"at least two classes \(C >= 2\), got C=1"):
        st.soft_prediction_agreement(torch.zeros(4, 1), torch.zeros(4, 1))


def test_output_agreement_rejects_bad_outputs() -> None:
    a = _outputs(8, (2, 3), seed=16)
    with pytest.raises(ValueError, match=r"same shape \(K, ...\), got \(8, 2, 3\) and \(8, 6\)"):
        st.output_agreement(a, a.reshape(8, 6))
    with pytest.raises(ValueError, match="at least 2 anchors"):
        st.output_agreement(a[:1], a[:1])
    with pytest.raises(ValueError, match="at least 2 anchors"):
        st.output_agreement(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="no output feature"):
        st.output_agreement(a[:, :0], a[:, :0])
    with pytest.raises(ValueError, match="outputs_b contains 6 NaN"):
        st.output_agreement(a, a.index_fill(0, torch.tensor([0]), float("nan")))
    with pytest.raises(TypeError, match="outputs_a must hold floating-point"):
        st.output_agreement(a.long(), a)
    constant = torch.ones(8, 3)
    with pytest.raises(ValueError, match="both constant over the anchors"):
        st.output_agreement(constant, 2.0 * constant)
    assert st.output_agreement(constant, _outputs(8, (3,), seed=17).float()) < 1 / 3 + 1e-6


@pytest.mark.parametrize(
    ("anchor_nodes", "error", "match"),
    [
        (torch.tensor([0.0, 1.0]), TypeError, "integer node indices or booleans, got torch"),
        (np.array([0.5]), TypeError, "integer node indices or booleans, got numpy"),
        ([0, 1], TypeError, "anchor_nodes must be a torch.Tensor or a numpy.ndarray"),
        (torch.tensor([[0, 1]]), ValueError, r"anchor_nodes must be 1-D, got shape \(1, 2\)"),
        (torch.tensor([], dtype=torch.long), ValueError, "at least one node"),
        (torch.tensor([0, 10]), ValueError, r"indices in \[0, 9\], got values in \[0, 10\]"),
        (torch.tensor([-1, 2]), ValueError, r"indices in \[0, 9\]"),
        (torch.tensor([1, 2, 1]), ValueError, "must not repeat a node, got 1 repeated"),
        (torch.ones(9, dtype=torch.bool), ValueError, "mark each of the N=10 nodes, got 9"),
        (torch.zeros(10, dtype=torch.bool), ValueError, "at least one node"),
    ],
)
def test_node_agreement_rejects_bad_anchor_nodes(
    anchor_nodes: object, error: type[Exception], match: str
) -> None:
    logits = torch.randn(10, 3, generator=torch.Generator().manual_seed(18))
    with pytest.raises(error, match=match):
        st.node_agreement(logits, logits, anchor_nodes)  # type: ignore[arg-type]


def test_the_package_exports_the_stitching_measures() -> None:
    assert lb.stitching is st
    assert lb.anchor_consistency is st.anchor_consistency
    defined = {
        name
        for name, value in vars(st).items()
        if callable(value) and not name.startswith("_") and value.__module__ == st.__name__
    }
    assert set(st.__all__) == defined | {"ENSEMBLE_TEMPERATURE"}
    assert {"anchor_consistency", "prediction_agreement", "output_agreement"} <= defined


# -- zero-shot selection among candidates ------------------------------------------------------


def test_select_by_consistency_takes_the_highest_and_the_first_on_ties() -> None:
    assert st.select_by_consistency([0.2, 0.9, 0.5]) == 1
    assert st.select_by_consistency([0.7, 0.3, 0.7]) == 0
    assert st.select_by_consistency(np.array([0.1, 0.4, 0.4])) == 1
    assert st.select_by_consistency(torch.tensor([1.0])) == 0


def test_consistency_weights_are_a_softmax_with_the_documented_temperature() -> None:
    c = [0.9, 0.8, 0.5]
    w = st.consistency_weights(c)
    expected = np.exp(np.array(c) / st.ENSEMBLE_TEMPERATURE)
    np.testing.assert_allclose(w.numpy(), expected / expected.sum(), rtol=1e-12)
    assert w.dtype == torch.float64 and float(w.sum()) == pytest.approx(1.0)
    # A 0.1 higher consistency weighs exp(0.1 / T) times more.
    assert float(w[0] / w[1]) == pytest.approx(np.exp(0.1 / st.ENSEMBLE_TEMPERATURE))
    np.testing.assert_allclose(st.consistency_weights([0.3, 0.3]).numpy(), [0.5, 0.5])
    np.testing.assert_allclose(st.consistency_weights(c, 1e6).numpy(), [1 / 3] * 3, atol=1e-6)
    assert int(st.consistency_weights(c, 1e-4).argmax()) == 0
    assert float(st.consistency_weights(c, 1e-4)[0]) == pytest.approx(1.0)


def test_consistency_ensemble_averages_probabilities() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    got = st.consistency_ensemble([a, b], [0.25, 0.75])
    want = 0.25 * torch.softmax(a.double(), 1) + 0.75 * torch.softmax(b.double(), 1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(1), torch.ones(5, dtype=F64))
    # One candidate with all the weight is that candidate.
    only = st.consistency_ensemble([a, b], [1.0, 0.0])
    assert torch.equal(only.argmax(1), a.argmax(1))


def test_selection_helpers_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="consistencies must be a non-empty 1-D"):
        st.select_by_consistency([])
    with pytest.raises(ValueError, match="consistencies"):
        st.consistency_weights([0.5, float("nan")])
    with pytest.raises(TypeError, match="consistencies must hold numbers"):
        st.select_by_consistency(["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        st.consistency_weights([0.5], 0.0)
    with pytest.raises(ValueError, match="temperature"):
        st.consistency_weights([0.5], float("inf"))
    with pytest.raises(TypeError, match="temperature must be a number"):
        st.consistency_weights([0.5], "0.1")  # type: ignore[arg-type]
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="one weight per candidate"):
        st.consistency_ensemble([x, x], [1.0])
    with pytest.raises(ValueError, match="non-negative and sum to 1"):
        st.consistency_ensemble([x, x], [0.9, 0.9])
    with pytest.raises(ValueError, match=r"logits\[1\] has shape"):
        st.consistency_ensemble([x, torch.zeros(4, 2)], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"logits\[0\]"):
        st.consistency_ensemble([torch.full((4, 3), float("inf")), x], [0.5, 0.5])
