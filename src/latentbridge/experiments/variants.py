"""The space variants an experiment compares, typed and parsed in one place.

A variant says which space a head (or decoder) is trained on and stitched through:

- :class:`Absolute` (``absolute``): the encoder's latents as they are;
- :class:`Relative` (``cosine``, ``euclidean``, ...): one relative projection onto the anchors;
- :class:`Product` (``product:<aggregation>``): the product of invariances of the config's
  ``product_projections``;
- :class:`Translation` (``translation:<estimator>``): the latents, with B mapped into A's space
  by a :class:`~latentbridge.alignment.Translator` fitted on the anchors.

``parse(name)`` is the only place where the grammar is read; ``variant.name`` writes it back, so
``parse(v.name) == v``. :func:`build_layer` returns the library's own
:class:`~latentbridge.RelativeProjection` / :class:`~latentbridge.ProductProjection` for a
relative variant: every task builds its relative layer through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from .. import aggregations, alignment, projections
from ..modules import ProductProjection, RelativeProjection
from ..projections import PAPER_PRODUCT

if TYPE_CHECKING:
    from .config import VariantConfig

__all__ = [
    "Absolute",
    "Product",
    "Relative",
    "Translation",
    "Variant",
    "build_layer",
    "from_config",
    "needs_anchors",
    "parse",
    "product_aggregation",
]

_PRODUCT = "product:"
_TRANSLATION = "translation:"


@dataclass(frozen=True)
class Absolute:
    """The encoder's latents, unchanged (stitching needs equal dimensions)."""

    @property
    def name(self) -> str:
        return "absolute"


@dataclass(frozen=True)
class Relative:
    """One relative projection (a registered name) onto the anchors."""

    projection: str

    @property
    def name(self) -> str:
        return self.projection


@dataclass(frozen=True)
class Product:
    """The product of invariances, aggregated by ``aggregation`` (a registered name)."""

    aggregation: str

    @property
    def name(self) -> str:
        return f"{_PRODUCT}{self.aggregation}"


@dataclass(frozen=True)
class Translation:
    """Latent translation: a Translator with ``estimator`` fitted on the anchors maps B into A."""

    estimator: str

    @property
    def name(self) -> str:
        return f"{_TRANSLATION}{self.estimator}"


Variant = Union[Absolute, Relative, Product, Translation]  # noqa: UP007 (a runtime alias on 3.10)


def parse(name: str) -> Variant:
    """The variant called ``name``; ``ValueError`` for a name of no family or an unknown part."""
    if not isinstance(name, str):
        raise TypeError(f"variant must be a name, got {type(name).__name__}")
    if name == "absolute":
        return Absolute()
    if name.startswith(_PRODUCT):
        aggregation = name[len(_PRODUCT) :]
        if aggregation not in aggregations.available():
            raise ValueError(
                f"variant {name!r}: the aggregation must be one of {aggregations.available()}"
            )
        return Product(aggregation)
    if name.startswith(_TRANSLATION):
        estimator = name[len(_TRANSLATION) :]
        if estimator not in alignment.available():
            raise ValueError(
                f"variant {name!r}: the estimator must be one of {alignment.available()}"
            )
        return Translation(estimator)
    if name in projections.available():
        return Relative(name)
    raise ValueError(
        f"variant must be 'absolute', a projection name {projections.available()}, "
        f"'product:<aggregation>' or 'translation:<estimator>', got {name!r}"
    )


def product_aggregation(name: str) -> str | None:
    """The aggregation of a product variant's name, or None for any other name (a tolerant
    reader of results files, which may hold names of other registries)."""
    return name[len(_PRODUCT) :] if name.startswith(_PRODUCT) else None


def from_config(config: VariantConfig) -> list[Variant]:
    """The variants a config asks for, in report order: absolute, projections, products,
    translations."""
    names = ["absolute"] if config.absolute else []
    names += list(config.projections)
    names += [f"{_PRODUCT}{a}" for a in config.aggregations]
    names += [f"{_TRANSLATION}{e}" for e in config.translation]
    return [parse(n) for n in names]


def needs_anchors(variant: Variant) -> bool:
    """Whether the variant's space is defined by the anchors (relative or product)."""
    return isinstance(variant, (Relative, Product))


def build_layer(
    variant: Variant,
    num_anchors: int,
    *,
    normalization: str = "none",
    product_projections: Sequence[str] = PAPER_PRODUCT,
    check_inputs: bool = True,
) -> RelativeProjection | ProductProjection | None:
    """The relative layer of ``variant`` (unfitted), or None for absolute and translation.

    A :class:`Relative` variant gives a ``RelativeProjection(projection, normalization)``; a
    :class:`Product` gives ``ProductProjection(product_projections, aggregation, num_anchors,
    normalization=normalization)``, whose learned aggregation is created here (from the global
    RNG, like any ``nn.Module``: seed it first).
    """
    if isinstance(variant, Relative):
        return RelativeProjection(variant.projection, normalization, check_inputs=check_inputs)
    if isinstance(variant, Product):
        return ProductProjection(
            list(product_projections),
            variant.aggregation,
            num_anchors,
            normalization=normalization,
            check_inputs=check_inputs,
        )
    return None
