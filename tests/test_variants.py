"""The variants layer: names with a normalisation of their own (``cosine+whiten``), the
selection variants, their candidates, and the layers :func:`build_layer` gives them."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import latentbridge as lb
from latentbridge.experiments import variants
from latentbridge.experiments.config import parse_config
from latentbridge.experiments.variants import (
    Absolute,
    Product,
    Relative,
    Selection,
    Translation,
    build_layer,
    candidates,
    from_config,
    needs_anchors,
    parse,
    parse_relative,
)

from .test_config import TINY


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("cosine", Relative("cosine")),
        ("cosine+whiten", Relative("cosine", "whiten")),
        ("euclidean+center", Relative("euclidean", "center")),
        ("l1+none", Relative("l1", "none")),
        ("selected", Selection("selected")),
        ("ensemble", Selection("ensemble")),
    ],
)
def test_names_parse_and_write_back(name: str, variant: Any) -> None:
    assert parse(name) == variant and variant.name == name
    assert parse(variant.name) == variant


def test_a_plain_name_and_an_explicit_none_are_two_variants() -> None:
    assert Relative("cosine").normalization is None
    assert parse("cosine") != parse("cosine+none")
    assert parse_relative("cosine") == Relative("cosine")
    assert parse_relative("cosine+whiten") == Relative("cosine", "whiten")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cosine+whitened", "'cosine+whitened': the normalization must be one of ['none'"),
        ("cosine+", "the normalization must be one of"),
        ("cosinus+whiten", "'cosinus+whiten': the projection must be one of ['cosine'"),
        ("+whiten", "the projection must be one of"),
        ("cosine+whiten+center", "the normalization must be one of"),
    ],
)
def test_bad_normalized_names_say_which_part_is_unknown(name: str, message: str) -> None:
    for read in (parse, parse_relative):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("+", r"\+")):
            read(name)


def test_parse_relative_takes_projections_only() -> None:
    for name in ("absolute", "product:sum", "selected", "cosinus"):
        with pytest.raises(ValueError, match="is not a projection name"):
            parse_relative(name)
    with pytest.raises(TypeError, match="projection must be a name"):
        parse_relative(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"or one of \['selected', 'ensemble'\]"):
        parse("selection")


def test_selection_variants_have_no_layer_and_no_anchors() -> None:
    for kind in ("selected", "ensemble"):
        assert Selection(kind).name == kind
        assert build_layer(Selection(kind), 5) is None
        assert not needs_anchors(Selection(kind))
    assert needs_anchors(Relative("cosine", "whiten"))


def test_candidates_are_the_single_projections_and_products() -> None:
    every = [
        Absolute(),
        Relative("cosine"),
        Relative("l1", "whiten"),
        Product("sum"),
        Translation("affine"),
        Selection("selected"),
        Product("mlp_sum"),
        Selection("ensemble"),
    ]
    assert candidates(every) == [
        Relative("cosine"),
        Relative("l1", "whiten"),
        Product("sum"),
        Product("mlp_sum"),
    ]
    assert candidates([Absolute(), Translation("affine")]) == []


def test_from_config_appends_the_selection_last() -> None:
    raw: dict[str, Any] = {
        **TINY,
        "variants": {
            "projections": ["l1", {"projection": "cosine", "normalization": "whiten"}],
            "aggregations": ["sum"],
            "translation": ["orthogonal"],
            "selection": True,
        },
    }
    names = [v.name for v in from_config(parse_config(raw).variants)]
    assert names == ["absolute", "l1", "cosine+whiten", "product:sum",
                     "translation:orthogonal", "selected", "ensemble"]  # fmt: skip
    raw["variants"]["selection"] = False
    assert "selected" not in [v.name for v in from_config(parse_config(raw).variants)]
    for v in from_config(parse_config(raw).variants):
        assert parse(v.name) == v


def test_a_relative_layer_takes_the_variants_own_normalization() -> None:
    own = build_layer(Relative("cosine", "whiten"), 5, normalization="center")
    assert isinstance(own, lb.RelativeProjection)
    assert (own.projection, own.normalization) == ("cosine", "whiten")
    plain = build_layer(Relative("cosine"), 5, normalization="center")
    assert isinstance(plain, lb.RelativeProjection) and plain.normalization == "center"
    explicit = build_layer(Relative("cosine", "none"), 5, normalization="center")
    assert isinstance(explicit, lb.RelativeProjection) and explicit.normalization == "none"


def test_a_product_subspace_takes_its_own_normalization() -> None:
    entries = ("cosine", "euclidean+whiten", "l1+none")
    torch.manual_seed(0)
    product = build_layer(
        Product("mlp_sum"), 6, normalization="center", product_projections=entries
    )
    assert isinstance(product, lb.ProductProjection)
    assert product.projections == ("cosine", "euclidean", "l1")
    assert [p.normalization for p in product.parts] == ["center", "whiten", "none"]
    torch.manual_seed(0)
    same = lb.ProductProjection(
        [
            "cosine",
            lb.RelativeProjection("euclidean", "whiten", check_inputs=False),
            lb.RelativeProjection("l1", "none", check_inputs=False),
        ],
        "mlp_sum",
        6,
        normalization="center",
    )
    for a, b in zip(product.parameters(), same.parameters(), strict=True):
        assert torch.equal(a, b)  # the same initialisation as the module built directly
    # plain entries build the product exactly as before
    torch.manual_seed(0)
    plain = build_layer(Product("sum"), 6, product_projections=("cosine", "l1"))
    assert isinstance(plain, lb.ProductProjection)
    assert [p.normalization for p in plain.parts] == ["none", "none"]


def test_a_whitened_variant_is_invariant_to_an_affine_map() -> None:
    """``cosine+whiten`` really whitens: an invertible affine map of the latents and anchors
    leaves the relative representation unchanged (K > D, so the whitening is exact)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=generator, dtype=torch.float64)
    anchors = torch.randn(32, 4, generator=generator, dtype=torch.float64)
    a = torch.randn(4, 4, generator=generator, dtype=torch.float64) + 3 * torch.eye(4)
    t = torch.randn(4, generator=generator, dtype=torch.float64)
    for variant in (parse("cosine+whiten"), parse("euclidean+whiten")):
        layer = build_layer(variant, 32)
        assert layer is not None
        before = layer(x, anchors=anchors)
        after = layer(x @ a + t, anchors=anchors @ a + t)
        torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-8)
    plain = build_layer(parse("cosine"), 32)
    assert plain is not None
    moved = plain(x @ a + t, anchors=anchors @ a + t)
    assert not torch.allclose(moved, plain(x, anchors=anchors), atol=1e-3)  # the control


def test_the_grammar_is_written_by_variants_only() -> None:
    """The config stores what ``Relative.name`` writes; the variants module exports both ways."""
    assert {"Selection", "candidates", "parse_relative", "SELECTIONS"} <= set(variants.__all__)
    assert variants.SELECTIONS == ("selected", "ensemble")
