"""The space variants an experiment compares, typed and parsed in one place.

A variant says which space a head (or decoder) is trained on and stitched through:

- :class:`Absolute` (``absolute``): the encoder's latents as they are;
- :class:`Relative` (``cosine``, ``euclidean``, ...): one relative projection onto the anchors,
  optionally with its own absolute normalisation (``cosine+whiten``) in place of the config's;
- :class:`Product` (``product:<aggregation>``): the product of invariances of the config's
  ``product_projections``;
- :class:`Translation` (``translation:<estimator>``): the latents, with B mapped into A's space
  by a :class:`~latentbridge.alignment.Translator` fitted on the anchors;
- :class:`Selection` (``selected``, ``ensemble``): a zero-shot choice among the trained
  :func:`candidates` (the single projections and products) by their anchor consistency.

``parse(name)`` is the only place where the grammar is read; ``variant.name`` writes it back, so
``parse(v.name) == v``. :func:`build_layer` returns the library's own
:class:`~latentbridge.RelativeProjection` / :class:`~latentbridge.ProductProjection` for a
relative variant: every task builds its relative layer through it. The entries of a config's
``projections`` and ``product_projections`` are read by :func:`parse_relative` and written back
by ``Relative.name``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Union

from .. import aggregations, alignment, projections
from ..modules import ProductProjection, RelativeProjection
from ..normalization import ABSOLUTE as NORMALIZATIONS
from ..projections import PAPER_PRODUCT

__all__ = [
    "SELECTIONS",
    "Absolute",
    "Product",
    "Relative",
    "Selection",
    "Translation",
    "Variant",
    "build_layer",
    "candidates",
    "from_config",
    "needs_anchors",
    "parse",
    "parse_relative",
    "product_aggregation",
]

_PRODUCT = "product:"
_TRANSLATION = "translation:"
#: Joins a projection and its own absolute normalisation: ``cosine+whiten``.
_NORMALIZED = "+"
#: The kinds of :class:`Selection`, in report order.
SELECTIONS = ("selected", "ensemble")


@dataclass(frozen=True)
class Absolute:
    """The encoder's latents, unchanged (stitching needs equal dimensions)."""

    @property
    def name(self) -> str:
        return "absolute"


@dataclass(frozen=True)
class Relative:
    """One relative projection (a registered name) onto the anchors.

    ``normalization`` (an absolute normalisation of :mod:`latentbridge.normalization`) replaces
    the config's ``variants.normalization`` for this projection; None keeps the config's.
    """

    projection: str
    normalization: str | None = None

    @property
    def name(self) -> str:
        if self.normalization is None:
            return self.projection
        return f"{self.projection}{_NORMALIZED}{self.normalization}"


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


@dataclass(frozen=True)
class Selection:
    """Zero-shot selection over the :func:`candidates` by their anchor consistency: ``selected``
    (per stitched pair, the candidate with the highest consistency) or ``ensemble`` (the
    candidates' probabilities weighted by a softmax of their consistency)."""

    kind: str

    @property
    def name(self) -> str:
        return self.kind


Variant = Union[Absolute, Relative, Product, Translation, Selection]  # noqa: UP007 (3.10 alias)


class VariantFields(Protocol):
    """What :func:`from_config` reads of a config's ``variants`` (a ``VariantConfig``)."""

    @property
    def absolute(self) -> bool: ...
    @property
    def projections(self) -> Sequence[str]: ...
    @property
    def aggregations(self) -> Sequence[str]: ...
    @property
    def translation(self) -> Sequence[str]: ...
    @property
    def selection(self) -> bool: ...


def parse(name: str) -> Variant:
    """The variant called ``name``; ``ValueError`` for a name of no family or an unknown part."""
    if not isinstance(name, str):
        raise TypeError(f"variant must be a name, got {type(name).__name__}")
    if name == "absolute":
        return Absolute()
    if name in SELECTIONS:
        return Selection(name)
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
    if name in projections.available() or _NORMALIZED in name:
        return parse_relative(name)
    raise ValueError(
        f"variant must be 'absolute', a projection name {projections.available()} (or "
        f"'<projection>{_NORMALIZED}<normalization>'), 'product:<aggregation>', "
        f"'translation:<estimator>' or one of {list(SELECTIONS)}, got {name!r}"
    )


def parse_relative(name: str) -> Relative:
    """The :class:`Relative` called ``name``: a projection name, or
    ``<projection>+<normalization>`` with an absolute normalisation of its own (``cosine+none``
    states ``none`` explicitly). ``ValueError`` says which part is unknown."""
    if not isinstance(name, str):
        raise TypeError(f"projection must be a name, got {type(name).__name__}")
    if name in projections.available():
        return Relative(name)
    projection, joined, normalization = name.partition(_NORMALIZED)
    if not joined:
        raise ValueError(
            f"{name!r} is not a projection name {projections.available()} or "
            f"'<projection>{_NORMALIZED}<normalization>'"
        )
    if projection not in projections.available():
        raise ValueError(f"{name!r}: the projection must be one of {projections.available()}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"{name!r}: the normalization must be one of {list(NORMALIZATIONS)}")
    return Relative(projection, normalization)


def product_aggregation(name: str) -> str | None:
    """The aggregation of a product variant's name, or None for any other name (a tolerant
    reader of results files, which may hold names of other registries)."""
    return name[len(_PRODUCT) :] if name.startswith(_PRODUCT) else None


def from_config(config: VariantFields) -> list[Variant]:
    """The variants a config asks for, in report order: absolute, projections, products,
    translations, then ``selected`` and ``ensemble`` when ``config.selection``."""
    names = ["absolute"] if config.absolute else []
    names += list(config.projections)
    names += [f"{_PRODUCT}{a}" for a in config.aggregations]
    names += [f"{_TRANSLATION}{e}" for e in config.translation]
    names += list(SELECTIONS) if config.selection else []
    return [parse(n) for n in names]


def candidates(variants: Sequence[Variant]) -> list[Variant]:
    """The candidates of a :class:`Selection` among ``variants``: the :class:`Relative` and
    :class:`Product` variants, in their order."""
    return [v for v in variants if isinstance(v, (Relative, Product))]


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
    """The relative layer of ``variant`` (unfitted), or None for absolute, translation and
    selection.

    A :class:`Relative` variant gives a ``RelativeProjection(projection, variant.normalization
    or normalization)``; a :class:`Product` gives ``ProductProjection(product_projections,
    aggregation, num_anchors, normalization=normalization)``, whose learned aggregation is
    created here (from the global RNG, like any ``nn.Module``: seed it first). An entry of
    ``product_projections`` with a normalisation of its own (``cosine+whiten``) is a configured
    ``RelativeProjection`` subspace; the others are names, normalised by ``normalization``.
    """
    if isinstance(variant, Relative):
        return RelativeProjection(
            variant.projection, variant.normalization or normalization, check_inputs=check_inputs
        )
    if isinstance(variant, Product):
        return ProductProjection(
            [_subspace(p) for p in product_projections],
            variant.aggregation,
            num_anchors,
            normalization=normalization,
            check_inputs=check_inputs,
        )
    return None


def _subspace(entry: str) -> str | RelativeProjection:
    """A product subspace: the projection's name, or a configured ``RelativeProjection`` when
    the entry has a normalisation of its own (checked once per batch by the product)."""
    relative = parse_relative(entry)
    if relative.normalization is None:
        return relative.projection
    return RelativeProjection(relative.projection, relative.normalization, check_inputs=False)
