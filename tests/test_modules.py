"""RelativeProjection and ProductProjection: agreement with the functional core, stitching,
state round trips, gradients, dtypes and devices, and errors."""

from __future__ import annotations

import io
import itertools

import pytest
import torch

import latentbridge as lb
from latentbridge.analysis import sample_space, verify_invariances
from latentbridge.normalization import ABSOLUTE, RELATIVE
from latentbridge.transformations import compose, random_transformation

AGGREGATIONS = lb.aggregations.available()
PAPER = ("cosine", "euclidean", "l1", "linf")


def _data(
    n: int = 20, k: int = 12, dim: int = 6, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    points = sample_space(n + k, dim, generator=torch.Generator().manual_seed(seed))
    return points[:n], points[n:]


def _product(
    aggregation: str = "mlp_sum", k: int = 12, seed: int = 0, **kwargs: object
) -> lb.ProductProjection:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return lb.ProductProjection(num_anchors=k, aggregation=aggregation, **kwargs).double()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("projection", "norm", "rel"),
    list(itertools.product(lb.projections.available(), ABSOLUTE, RELATIVE)),
)
def test_module_matches_functional(projection: str, norm: str, rel: str) -> None:
    x, anchors = _data()
    module = lb.RelativeProjection(projection, norm, rel).fit(anchors)
    expected = lb.relative_projection(x, anchors, projection, norm, rel)
    torch.testing.assert_close(module(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(module(x, anchors=anchors), expected, rtol=1e-12, atol=1e-12)
    assert module.invariances == lb.projections.effective_invariances(projection, norm, rel)
    assert module.out_features == anchors.shape[0]


def test_statistics_come_from_the_anchors_not_the_batch() -> None:
    x, anchors = _data()
    module = lb.RelativeProjection("euclidean", "standard").fit(anchors)
    torch.testing.assert_close(module(x[:3]), module(x)[:3])
    torch.testing.assert_close(module.shift, anchors.mean(0))
    torch.testing.assert_close(module.scale, anchors.std(0, unbiased=False))


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_product_out_features_and_shape(aggregation: str) -> None:
    x, anchors = _data()
    product = _product(aggregation).fit(anchors)
    out = product(x)
    expected_width = 4 * 12 if aggregation == "concat" else 12
    assert product.out_features == expected_width
    assert out.shape == (20, expected_width) and torch.isfinite(out).all()
    assert product.relative(x).shape == (20, 4, 12)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("norm", list(ABSOLUTE))
def test_product_invariances_are_the_intersection_of_its_parts(aggregation: str, norm: str) -> None:
    for subset in (PAPER, ("cosine", "euclidean"), ("euclidean", "l1"), ("dot",)):
        product = _product(aggregation, projections=subset, normalization=norm)
        parts = [lb.projections.effective_invariances(p, norm, "standardize") for p in subset]
        assert product.invariances == frozenset.intersection(*parts)
        # ...and the claim holds numerically, with negative controls for every other class.
        report = verify_invariances(product, num_anchors=12, trials=2)
        wrong = {k: c.error for k, c in report.items() if not c.consistent}
        assert not wrong, f"{subset}/{norm}/{aggregation}: {wrong}"


def test_product_subspaces_may_have_their_own_normalisation() -> None:
    product = lb.ProductProjection(
        ("euclidean", lb.RelativeProjection("cosine", normalization="center")), num_anchors=12
    )
    assert product.invariances == {
        "orthogonal",
        "permutation",
        "sign_flip",
        "translation",
        "isotropic_scaling",
    }
    assert product.projections == ("euclidean", "cosine")


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_zero_shot_stitching_is_exact_under_an_invariance(aggregation: str) -> None:
    """B = rotation + translation of A: the stitched product reproduces the output on A."""
    x, anchors = _data(dim=8)
    g = torch.Generator().manual_seed(5)
    t = compose(
        random_transformation("orthogonal", 8, generator=g),
        random_transformation("translation", 8, generator=g),
    )
    product = _product(aggregation, projections=("euclidean", "rbf"), normalization="none").fit(
        anchors
    )
    params_before = {k: v.clone() for k, v in product.named_parameters()}
    stitched = product.with_anchors(t(anchors))
    torch.testing.assert_close(stitched(t(x)), product(x), rtol=1e-9, atol=1e-9)
    # with_anchors copied: the original still holds A's anchors; the weights are the same values.
    torch.testing.assert_close(product.subspaces[0].anchors, anchors)
    for name, value in stitched.named_parameters():
        torch.testing.assert_close(value, params_before[name])
    # Negative control: a product containing l1 is not invariant to the rotation.
    with_l1 = _product(aggregation, projections=("euclidean", "l1")).fit(anchors)
    moved = (with_l1.with_anchors(t(anchors))(t(x)) - with_l1(x)).norm() / with_l1(x).norm()
    assert moved > 1e-3


def test_fit_touches_only_buffers() -> None:
    x, anchors = _data()
    _, anchors_b = _data(seed=1)
    product = _product().fit(anchors)
    params = {k: v.clone() for k, v in product.named_parameters()}
    out_a = product(x)
    assert product.fit(anchors_b) is product
    for name, value in product.named_parameters():
        assert torch.equal(value, params[name]), name
    torch.testing.assert_close(product.subspaces[0].anchors, anchors_b)
    assert not torch.allclose(product(x), out_a)
    assert all(not b.requires_grad for b in product.buffers())


def test_fit_rejects_the_wrong_number_of_anchors() -> None:
    _, anchors = _data(k=10)
    with pytest.raises(ValueError, match="num_anchors=12"):
        _product().fit(anchors)


def test_relative_projection_state_dict_round_trip_into_an_unfitted_module() -> None:
    x, anchors = _data()
    fitted = lb.RelativeProjection("linf", "standard", "l2").fit(anchors)
    buffer = io.BytesIO()
    torch.save(fitted.state_dict(), buffer)
    buffer.seek(0)
    fresh = lb.RelativeProjection("linf", "standard", "l2")
    assert not fresh.is_fitted
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(fresh(x), fitted(x))
    assert fresh.anchors.dtype == torch.float64


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_product_state_dict_round_trip(aggregation: str) -> None:
    x, anchors = _data()
    trained = _product(aggregation, seed=1).fit(anchors)
    fresh = _product(aggregation, seed=2)
    assert not fresh.is_fitted
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh(x), trained(x))


def test_whitening_is_fitted_once_and_travels_with_the_state() -> None:
    x, anchors = _data(k=30)
    fitted = lb.RelativeProjection("cosine", "whiten").fit(anchors)
    torch.testing.assert_close(fitted.whitening, lb.normalization.fit_whitening(anchors))
    fresh = lb.RelativeProjection("cosine", "whiten")
    fresh.load_state_dict(fitted.state_dict())
    torch.testing.assert_close(fresh(x), fitted(x), rtol=1e-12, atol=1e-12)
    assert lb.RelativeProjection("cosine", "standard").fit(anchors).whitening.numel() == 0


def test_a_state_saved_without_the_whitening_buffer_still_loads() -> None:
    x, anchors = _data()
    fitted = lb.RelativeProjection("euclidean", "standard").fit(anchors)
    old = {k: v for k, v in fitted.state_dict().items() if k != "whitening"}
    fresh = lb.RelativeProjection("euclidean", "standard")
    fresh.load_state_dict(old, strict=True)
    torch.testing.assert_close(fresh(x), fitted(x))


def test_whitened_module_stitches_exactly_across_an_affine_map() -> None:
    x, anchors = _data(k=30)
    t = random_transformation("affine", x.shape[1], generator=torch.Generator().manual_seed(3))
    module = lb.RelativeProjection("cosine", "whiten").fit(anchors)
    stitched = module.with_anchors(t(anchors))
    torch.testing.assert_close(stitched(t(x)), module(x), rtol=1e-9, atol=1e-9)
    plain = lb.RelativeProjection("cosine", "standard").fit(anchors)
    moved = (plain.with_anchors(t(anchors))(t(x)) - plain(x)).abs().max()
    assert float(moved) > 1e-3


def test_unfitted_state_dict_is_rejected_by_strict_loading_of_missing_keys() -> None:
    product = _product()
    with pytest.raises(RuntimeError, match="Missing key"):
        product.load_state_dict({}, strict=True)


def test_dtype_follows_input_for_relative_projection() -> None:
    x, anchors = _data()
    module = lb.RelativeProjection("euclidean").fit(anchors.float())
    assert module(x).dtype == torch.float64
    assert module(x.float()).dtype == torch.float32
    assert module(x.half()).dtype == torch.float16
    module.double()
    assert module.anchors.dtype == torch.float64


def test_product_computes_in_its_parameters_dtype() -> None:
    x, anchors = _data()
    product = lb.ProductProjection(num_anchors=12).fit(anchors)
    assert product(x).dtype == torch.float32
    assert product.double()(x.float()).dtype == torch.float64


def test_numpy_input_matches_torch_input() -> None:
    x, anchors = _data()
    product = _product().fit(anchors.numpy())
    torch.testing.assert_close(product(x.numpy()), product(x))


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_gradients_reach_inputs_anchors_and_every_parameter(aggregation: str) -> None:
    x, anchors = _data()
    x = x.clone().requires_grad_(True)
    anchors_live = anchors.clone().requires_grad_(True)
    product = _product(aggregation).fit(anchors)
    x_with_anchor = torch.cat([x, anchors[:1]])  # a zero distance in every subspace
    product(x_with_anchor, anchors=anchors_live).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert anchors_live.grad is not None and torch.isfinite(anchors_live.grad).all()
    assert anchors_live.grad.abs().sum() > 0
    for name, p in product.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # Fitted-anchor path: gradients to x, none to the (buffer) anchors.
    y = x.detach().clone().requires_grad_(True)
    product(y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_forward_with_anchors_equals_fit_then_forward() -> None:
    x, anchors = _data()
    product = _product()
    torch.testing.assert_close(product(x, anchors=anchors), product.with_anchors(anchors)(x))


def test_device_round_trip_on_cpu() -> None:
    x, anchors = _data()
    product = _product().fit(anchors)
    moved = product.to("cpu")
    torch.testing.assert_close(moved(x), product(x))
    assert all(b.device.type == "cpu" for b in moved.buffers())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_device_round_trip_on_cuda() -> None:
    x, anchors = _data()
    product = _product().fit(anchors)
    on_gpu = product.to("cuda")
    out = on_gpu(x.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), product.to("cpu")(x), rtol=1e-9, atol=1e-9)
    functional = lb.relative_projection(x.cuda(), anchors.cuda(), "linf")
    torch.testing.assert_close(functional.cpu(), lb.relative_projection(x, anchors, "linf"))
    # anchors given to fit land on the module's device
    on_gpu = product.to("cuda").fit(anchors)
    assert on_gpu.subspaces[0].anchors.device.type == "cuda"


def test_errors_name_the_argument() -> None:
    x, anchors = _data()
    with pytest.raises(RuntimeError, match="fit"):
        lb.RelativeProjection()(x)
    with pytest.raises(RuntimeError, match="fit"):
        _product()(x)
    module = lb.RelativeProjection().fit(anchors)
    with pytest.raises(ValueError, match="D=6"):
        module(x[:, :4])
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        module(bad)
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        _product().fit(anchors)(bad)
    with pytest.raises(ValueError, match="anchors contains"):
        module.fit(torch.full((3, 6), float("inf")))
    with pytest.raises(ValueError, match="projection must be one of"):
        lb.RelativeProjection("cosinus")
    with pytest.raises(ValueError, match="normalization must be one of"):
        lb.RelativeProjection("cosine", "centre")
    with pytest.raises(ValueError, match="num_anchors is required"):
        lb.ProductProjection()
    with pytest.raises(ValueError, match="num_anchors must be a positive integer"):
        lb.ProductProjection(num_anchors=0)
    with pytest.raises(TypeError, match="sequence of projection names"):
        lb.ProductProjection("cosine", num_anchors=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one projection"):
        lb.ProductProjection((), num_anchors=4)
    with pytest.raises(TypeError, match=r"projections\[1\]"):
        lb.ProductProjection(("cosine", 3), num_anchors=4)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="aggregation must be one of"):
        lb.ProductProjection(num_anchors=4, aggregation="mean")


def test_duplicate_anchors_warn_on_fit() -> None:
    _, anchors = _data()
    with pytest.warns(UserWarning, match="duplicate"):
        lb.RelativeProjection().fit(torch.cat([anchors, anchors[:2]]))


def test_anchors_inferred_from_constructor() -> None:
    x, anchors = _data()
    product = lb.ProductProjection(anchors=anchors).double()
    assert product.num_anchors == 12 and product.is_fitted
    assert product(x).shape == (20, 12)


def test_weighted_aggregation_weights_are_a_distribution() -> None:
    agg = lb.aggregations.get("weighted")(3, 5)
    torch.testing.assert_close(agg.weights.sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"relative must have shape \(N, 3, 5\)"):
        agg(torch.zeros(2, 4, 5))


def test_sum_is_concat_summed_over_subspaces() -> None:
    relative = torch.randn(7, 3, 5, dtype=torch.float64)
    concat = lb.aggregations.get("concat")(3, 5).double()
    total = lb.aggregations.get("sum")(3, 5).double()
    torch.testing.assert_close(concat(relative).view(7, 3, 5).sum(1), total(relative))


def test_user_registered_aggregation() -> None:
    class First(lb.aggregations.Aggregation):
        def combine(self, normalized: torch.Tensor) -> torch.Tensor:
            return normalized[:, 0]

    lb.aggregations.register("test_first", First)
    try:
        x, anchors = _data()
        product = lb.ProductProjection(("euclidean", "l1"), "test_first", anchors=anchors).double()
        expected = lb.relative_projection(
            x, anchors, "euclidean", relative_normalization="standardize"
        )
        torch.testing.assert_close(product(x), expected)
        with pytest.raises(ValueError, match="already registered"):
            lb.aggregations.register("test_first", First)
        with pytest.raises(ValueError, match="built-in"):
            lb.aggregations.register("sum", First)
        with pytest.raises(TypeError, match="subclass of Aggregation"):
            lb.aggregations.register("test_bad", int)  # type: ignore[arg-type]
    finally:
        lb.aggregations.unregister("test_first")
    assert "test_first" not in lb.aggregations.available()


def test_a_fitted_whitening_module_claims_affine_invariance_only_when_exact() -> None:
    _, many = _data(k=30)
    exact = lb.RelativeProjection("cosine", "whiten").fit(many)
    assert "affine" in exact.invariances and "orthogonal" in exact.invariances
    _, few = _data(k=4)
    floored = lb.RelativeProjection("cosine", "whiten").fit(few)
    assert "affine" not in floored.invariances and "orthogonal" not in floored.invariances
    assert "translation" in floored.invariances
    unfitted = lb.RelativeProjection("cosine", "whiten")
    assert "affine" in unfitted.invariances  # the declaration, for anchors that allow it
    product = lb.ProductProjection(
        [lb.RelativeProjection("cosine", "whiten")], "sum", num_anchors=4
    ).fit(few)
    assert "affine" not in product.invariances


def test_self_attention_is_multihead_attention_written_out() -> None:
    """The aggregation computes nn.MultiheadAttention (one head) summed over the tokens; its
    module holds the parameters. Negative control: another module's weights give another map."""
    torch.manual_seed(0)
    agg = lb.aggregations.get("self_attention")(num_subspaces=3, num_anchors=16)
    with torch.no_grad():
        for p in agg.attention.parameters():
            p.normal_()  # non-zero biases too
    x = torch.randn(5, 3, 16, requires_grad=True)
    reference, _ = agg.attention(x, x, x, need_weights=False)
    got = agg.combine(x)
    torch.testing.assert_close(got, reference.sum(dim=1), rtol=1e-4, atol=1e-4)
    (g_got,) = torch.autograd.grad(got.square().sum(), x)
    (g_ref,) = torch.autograd.grad(reference.sum(dim=1).square().sum(), x)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-3, atol=1e-3)
    other = lb.aggregations.get("self_attention")(num_subspaces=3, num_anchors=16)
    assert not torch.allclose(other.combine(x), got, atol=1e-3)
