"""The latent-similarity study (task ``similarity``): the paper's Figures 1 and 3.

How alike are two encoders' representations of the same samples, and how much more alike do
they become once an invariance is imposed? For every dataset of the config:

1. Every encoder's test latents come from the embedding cache (:func:`..spaces.load_spaces`);
   a fixed subset of ``similarity.num_samples`` test samples (:func:`sample_indices`, the same
   for every encoder and every seed) is represented.
2. For each seed ``s`` of the config one anchor set is drawn
   (:func:`..spaces.select_anchor_indices` on the first encoder's training latents, with
   ``seed=s``): the same training *indices* for every encoder. The seeds thus measure the
   variability due to the choice of anchors.
3. Each class of ``similarity.classes`` represents the samples (:func:`represent`):
   ``absolute`` (the latents themselves), a projection name (the relative space
   ``relative_projection(latents, anchors, name, variants.normalization)``), or ``product``
   (the relative spaces of ``variants.product_projections``, each standardised by
   :func:`standardise`, concatenated).
4. For every unordered pair of distinct encoders each measure of ``similarity.measures``
   compares their representations (:func:`compare`); the value is written for both orders.

Measures (all symmetric, all unchanged when either representation is multiplied by a positive
constant):

- ``linear_cka``: linear CKA (:func:`latentbridge.metrics.linear_cka`), in [0, 1];
- ``rbf_cka``: Gaussian-kernel CKA with the median-distance bandwidth
  (:func:`latentbridge.metrics.rbf_cka`), in [0, 1];
- ``mean_cosine``: mean cosine between corresponding rows
  (:func:`latentbridge.metrics.mean_cosine`), in [-1, 1]; it needs both representations in one
  space, so between representations of different widths it is not applicable and recorded as
  an empty value, never a number. It is not blind to translations: distance-based relative
  spaces (all entries positive) give cosines near 1, while the product's subspaces are centred
  by :func:`standardise`, so its mean cosine is a correlation-like, lower number;
- ``distance_pearson``: Pearson correlation between the two representations' pairwise
  Euclidean distances over the samples (the upper triangle, as ``scipy.spatial.distance.pdist``
  orders it; :func:`latentbridge.metrics.distance_correlation`), in [-1, 1]: the paper's
  "correlation of distances" across training seeds.

The per-space parts of the measures (the centred Gram matrix, the pairwise distances, the
Gaussian kernel matrix) are computed once per encoder and class (:class:`PreparedSpace`), so a
dataset with E encoders costs E such computations per (class, seed) instead of E (E - 1);
O(N^2) memory per encoder for N samples, N at most
:data:`latentbridge.metrics.DISTANCE_CORRELATION_MAX_N`.

Results are rows ``dataset, A, B, class, seed, measure, value`` of ``results.csv`` (the columns
``source``, ``target``, ``variant`` hold A, B and the class). A = B is not written.
One cell of the run's :class:`.results.CellStore` per (dataset, class, seed, encoder A) holds the
rows of every B; a restarted run skips finished cells. :func:`similarity_table` and
:func:`similarity_bar_chart` summarise the rows for the report.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ... import metrics
from ... import normalization as _norm
from ... import projections as _projections
from ..._plotting import plain_text
from ..._validation import as_matrix, check_finite, check_int
from ...transformations import TRANSFORMATIONS
from ..config import DatasetConfig, RunConfig
from ..results import ResultRow
from ..spaces import Spaces, encoder_names, load_spaces, select_anchor_indices, trained_encoders
from ..task import Cell, MetricInfo, Plan, RunContext

__all__ = [
    "ABSOLUTE",
    "MEASURES",
    "PRODUCT",
    "PreparedSpace",
    "class_invariances",
    "compare",
    "represent",
    "sample_indices",
    "similarity",
    "similarity_bar_chart",
    "similarity_table",
    "standardise",
]

#: The class of the latents themselves.
ABSOLUTE = "absolute"
#: The class of the concatenated, standardised relative spaces.
PRODUCT = "product"
#: The measures :func:`compare` knows.
#: The similarity measures of the study (each between two encoders' representations).
METRICS = (
    MetricInfo("linear_cka", "Linear CKA", 0.0, 1.0),
    MetricInfo("rbf_cka", "RBF CKA", 0.0, 1.0),
    MetricInfo("mean_cosine", "Mean cosine similarity", -1.0, 1.0),
    MetricInfo("distance_pearson", "Pearson correlation of pairwise distances", -1.0, 1.0),
)
MEASURES: tuple[str, ...] = tuple(m.name for m in METRICS)

_DEFAULT_PRODUCT = ("cosine", "euclidean", "l1", "linf")
_F64 = torch.float64
_NA = "n/a"
_MISSING = "—"
_MEAN_ROW = "mean over pairs"


# --------------------------------------------------------------------------------------------
# Representations


def _check_class(name: object, argument: str = "name") -> str:
    choices = [ABSOLUTE, PRODUCT, *_projections.available()]
    if not isinstance(name, str) or name not in choices:
        raise ValueError(f"{argument} must be one of {choices}, got {name!r}")
    return name


def _check_product(product_projections: Sequence[str]) -> tuple[str, ...]:
    if isinstance(product_projections, str):
        raise ValueError(
            "product_projections must be a sequence of projection names, got the string "
            f"{product_projections!r}"
        )
    names = tuple(product_projections)
    if not names:
        raise ValueError("product_projections must name at least one projection, got none")
    for p in names:
        if p not in _projections.available():
            raise ValueError(
                f"product_projections must hold names from {_projections.available()}, got {p!r}"
            )
    return names


def standardise(x: Tensor) -> Tensor:
    """One subspace of the product, standardised so that every subspace weighs the same.

    The columns are centred (their mean over the represented samples is subtracted) and the
    whole block is divided by its Frobenius norm: ``S = Xc / ||Xc||_F``. Each standardised
    subspace then has total variance 1 (its centred Gram matrix has trace 1), whatever the scale
    of its projection (cosines in [-1, 1], distances in latent units, inner products in squared
    units), so in the concatenation no subspace dominates a measure. A block that is constant
    over the samples (``Xc = 0``) stays 0: it carries no information. Same dtype as ``x``.

    Raises:
        ValueError: ``x`` not 2-D, or holding NaN/Inf.
        TypeError: non-floating input.
    """
    xt = as_matrix(x, "x", cols="K")
    check_finite(xt, "x")
    centred = xt - xt.mean(dim=0, keepdim=True)
    norm = torch.linalg.matrix_norm(centred)
    if not bool(norm > 0):
        return torch.zeros_like(centred)
    return centred / norm


def represent(
    latents: Tensor | np.ndarray,
    anchors: Tensor | np.ndarray,
    name: str,
    *,
    normalization: str = "none",
    product_projections: Sequence[str] = _DEFAULT_PRODUCT,
) -> Tensor:
    """The samples ``latents (N, D)`` represented as the class ``name``.

    - ``absolute``: the latents themselves (``anchors`` and ``normalization`` are unused);
    - a projection name (:func:`latentbridge.projections.available`): the relative space
      ``relative_projection(latents, anchors, name, normalization)``, ``(N, K)``;
    - ``product``: ``[standardise(R_1), ..., standardise(R_P)]`` concatenated along the
      features, ``R_p`` the relative space of ``product_projections[p]``, ``(N, P K)``.

    Returns a tensor in the promoted floating dtype of the inputs.

    Raises:
        ValueError: unknown ``name``, ``normalization`` or product projection, an empty
            ``product_projections``, mismatched feature dimensions, NaN/Inf.
        TypeError: non-floating input.
    """
    _check_class(name)
    _norm.get_absolute(normalization)
    x = as_matrix(latents, "latents")
    if name == ABSOLUTE:
        check_finite(x, "latents")
        return x
    if name == PRODUCT:
        parts = [
            standardise(_projections.relative_projection(x, anchors, p, normalization))
            for p in _check_product(product_projections)
        ]
        return torch.cat(parts, dim=1)
    return _projections.relative_projection(x, anchors, name, normalization)


def _scale_invariances(projection: str, normalization: str) -> frozenset[str]:
    """Classes under which the relative space of ``projection`` is unchanged up to a factor."""
    proj = _projections.get(projection)
    absolute = _norm.get_absolute(normalization)
    result = set(absolute.invariances)
    for kind in TRANSFORMATIONS:
        if kind in absolute.equivariances and (kind in proj.invariances or kind in proj.scaled_by):
            result.add(kind)
    return frozenset(result)


def class_invariances(
    name: str,
    *,
    normalization: str = "none",
    product_projections: Sequence[str] = _DEFAULT_PRODUCT,
) -> frozenset[str]:
    """Transformation classes after which every measure of :data:`MEASURES` is exactly 1.

    A class ``T`` is listed when applying a member of ``T`` to one encoder's latents and anchors
    alike changes its ``name`` representation at most by a positive factor, to which every
    measure is blind: for a projection, the declared invariances (after the absolute
    ``normalization``, :func:`latentbridge.projections.effective_invariances`) plus its
    ``scaled_by`` classes; for ``product``, the classes shared by all ``product_projections``
    (:func:`standardise` removes each subspace's scale); for ``absolute``, only
    ``isotropic_scaling``. (Some measures are blind to more: linear CKA and the distance
    correlation to orthogonal maps and translations of the representation itself.)

    Raises:
        ValueError: unknown ``name``, ``normalization`` or product projection.
    """
    _check_class(name)
    _norm.get_absolute(normalization)
    if name == ABSOLUTE:
        return frozenset({"isotropic_scaling"})
    if name == PRODUCT:
        parts = [_scale_invariances(p, normalization) for p in _check_product(product_projections)]
        return frozenset.intersection(*parts)
    return _scale_invariances(name, normalization)


def sample_indices(num_test: int, num_samples: int) -> np.ndarray:
    """The test samples the study represents: ``min(num_samples, num_test)`` sorted indices.

    Drawn without replacement by ``numpy.random.default_rng(0)``, so they are the same for every
    encoder, seed and run (all indices, in order, when ``num_samples >= num_test``).

    Raises:
        ValueError: ``num_test`` < 1 or ``num_samples`` < 2.
    """
    num_test = check_int(num_test, "num_test", minimum=1)
    num_samples = check_int(num_samples, "num_samples", minimum=2)
    if num_samples >= num_test:
        return np.arange(num_test)
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(num_test, size=int(num_samples), replace=False))


# --------------------------------------------------------------------------------------------
# Measures


def _unit(t: Tensor) -> Tensor:
    """``t / ||t||`` over all entries (flattened)."""
    return t / torch.linalg.vector_norm(t)


def _median(values: Tensor) -> float:
    """The median, with the mean of the two middle values for an even count (as numpy)."""
    m = values.numel()
    low = torch.kthvalue(values, (m + 1) // 2).values
    high = torch.kthvalue(values, m // 2 + 1).values
    return float((low + high) / 2)


class PreparedSpace:
    """One representation of N samples with the per-space parts of the measures, computed once.

    With ``Xc`` the representation centred over the samples (float64) and ``K = Xc Xc^T``:

    - ``linear_cka`` keeps ``K / ||K||_F``; between two spaces ``CKA = <K_x, K_y>_F`` (the biased
      estimator of :func:`latentbridge.metrics.linear_cka`);
    - ``distance_pearson`` keeps the condensed Euclidean distances ``d_ij = sqrt(K_ii + K_jj -
      2 K_ij)``, ``i < j`` (row-major, as ``pdist``), centred and scaled to unit norm; between
      two spaces the Pearson correlation is their inner product;
    - ``rbf_cka`` keeps the doubly centred Gaussian kernel ``H G H / ||H G H||_F`` with
      ``G_ij = exp(-d_ij^2 / (2 sigma^2))``, sigma the median of the ``d_ij`` (the median
      heuristic of :func:`latentbridge.metrics.rbf_cka`);
    - ``mean_cosine`` needs only the representation.

    Args:
        x: ``(N, D)`` the representation, N >= 3; kept as given (detached) for ``mean_cosine``.
        measures: the measures it will be compared with (names from :data:`MEASURES`).
        name: how errors refer to it (e.g. ``"mpnet-base/cosine"``).

    Raises:
        ValueError: unknown measure, N < 3 or N > ``DISTANCE_CORRELATION_MAX_N``, NaN/Inf, a
            representation with zero variance (every row identical) or, for
            ``distance_pearson``/``rbf_cka``, all pairwise distances equal.
        TypeError: non-floating input.
    """

    def __init__(self, x: Tensor | np.ndarray, measures: Iterable[str], name: str = "x") -> None:
        wanted = _check_measures(measures)
        xt = as_matrix(x, name).detach()
        n = xt.shape[0]
        if n < 3:
            raise ValueError(f"{name} must hold at least 3 samples, got N={n}")
        if n > metrics.DISTANCE_CORRELATION_MAX_N:
            raise ValueError(
                f"{name} holds N={n} samples; the study keeps N x N matrices and accepts at most "
                f"{metrics.DISTANCE_CORRELATION_MAX_N}: lower similarity.num_samples"
            )
        if xt.shape[1] == 0:
            raise ValueError(f"{name} must have at least one feature, got shape {tuple(xt.shape)}")
        check_finite(xt, name)
        self.x = xt
        self.name = name
        self.measures = wanted
        self.linear: Tensor | None = None
        self.distances: Tensor | None = None
        self.rbf: Tensor | None = None
        if not {"linear_cka", "distance_pearson", "rbf_cka"} & set(wanted):
            return
        xc = xt.to(_F64, copy=True)
        xc -= xc.mean(dim=0, keepdim=True)
        gram = xc @ xc.T
        del xc
        if not bool(torch.linalg.matrix_norm(gram) > 0):
            raise ValueError(f"{name} has zero variance (every row is identical)")
        if "linear_cka" in wanted:
            self.linear = _unit(gram)
        if "distance_pearson" in wanted or "rbf_cka" in wanted:
            diag = gram.diagonal().clone()
            squared = gram.mul_(-2.0).add_(diag[:, None]).add_(diag[None, :]).clamp_min_(0.0)
            squared.fill_diagonal_(0.0)
            upper = torch.ones(n, n, dtype=torch.bool).triu_(diagonal=1)
            condensed = squared[upper].sqrt_()
            if not bool(condensed.max() > condensed.min()):
                raise ValueError(
                    f"all pairwise distances of {name} are equal: distance_pearson and rbf_cka "
                    "are undefined for it"
                )
            if "rbf_cka" in wanted:
                width = _median(condensed)
                kernel = squared.div_(-2.0 * width * width).exp_()
                means = kernel.mean(dim=0)
                kernel -= means[None, :]
                kernel -= means[:, None] - means.mean()
                self.rbf = _unit(kernel)
            if "distance_pearson" in wanted:
                self.distances = _unit(condensed - condensed.mean())

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def width(self) -> int:
        return int(self.x.shape[1])


def _check_measures(measures: Iterable[str]) -> tuple[str, ...]:
    if isinstance(measures, str):
        raise ValueError(f"measures must be a sequence of names, got the string {measures!r}")
    names = tuple(measures)
    for m in names:
        if m not in MEASURES:
            raise ValueError(f"measures must hold names from {list(MEASURES)}, got {m!r}")
    return names


def _inner(a: Tensor | None, b: Tensor | None) -> Tensor:
    assert a is not None and b is not None
    return torch.dot(a.reshape(-1), b.reshape(-1))


def compare(
    a: PreparedSpace, b: PreparedSpace, measures: Sequence[str] | None = None
) -> dict[str, float | None]:
    """Each measure between two prepared representations of the same samples.

    ``measures`` defaults to those both were prepared for. Values are floats; ``mean_cosine``
    is None (not applicable) when the widths differ. CKA values are clipped to [0, 1] and
    correlations to [-1, 1] (the bounds hold exactly; the clip only removes rounding).

    Raises:
        ValueError: different numbers of samples, an unknown measure, or one the spaces were not
            prepared for.
    """
    if a.num_samples != b.num_samples:
        raise ValueError(
            f"{a.name} and {b.name} must represent the same samples, got N={a.num_samples} and "
            f"N={b.num_samples}"
        )
    wanted = _check_measures(
        measures if measures is not None else [m for m in a.measures if m in b.measures]
    )
    values: dict[str, float | None] = {}
    for m in wanted:
        for space in (a, b):
            if m not in space.measures:
                raise ValueError(f"{space.name} was not prepared for the measure {m!r}")
        if m == "mean_cosine":
            same = a.width == b.width
            values[m] = metrics.mean_cosine(a.x, b.x) if same else None
        elif m == "linear_cka":
            values[m] = min(max(float(_inner(a.linear, b.linear)), 0.0), 1.0)
        elif m == "rbf_cka":
            values[m] = min(max(float(_inner(a.rbf, b.rbf)), 0.0), 1.0)
        else:
            values[m] = min(max(float(_inner(a.distances, b.distances)), -1.0), 1.0)
    return values


def similarity(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, measures: Sequence[str] = MEASURES
) -> dict[str, float | None]:
    """``compare(PreparedSpace(x, measures), PreparedSpace(y, measures), measures)``."""
    return compare(PreparedSpace(x, measures, "x"), PreparedSpace(y, measures, "y"), measures)


# --------------------------------------------------------------------------------------------
# The run


class _Group:
    """The cells of one (class, seed): each encoder prepared once, each pair compared once."""

    def __init__(
        self,
        dataset: str,
        name: str,
        seed: int,
        samples: dict[str, Tensor],
        anchors: Callable[[str], Tensor],
        config: RunConfig,
        measures: tuple[str, ...],
    ) -> None:
        self.dataset = dataset
        self.name = name
        self.seed = seed
        self.samples = samples
        self.anchors = anchors
        self.config = config
        self.measures = measures
        self.order = {e: i for i, e in enumerate(samples)}
        self._prepared: dict[str, PreparedSpace] = {}
        self._pairs: dict[tuple[str, str], dict[str, float | None]] = {}

    def prepared(self, encoder: str) -> PreparedSpace:
        if encoder not in self._prepared:
            rep = represent(
                self.samples[encoder],
                self.anchors(encoder),
                self.name,
                normalization=self.config.variants.normalization,
                product_projections=self.config.variants.product_projections,
            )
            self._prepared[encoder] = PreparedSpace(rep, self.measures, f"{encoder}/{self.name}")
        return self._prepared[encoder]

    def pair(self, a: str, b: str) -> dict[str, float | None]:
        key = (a, b) if self.order[a] < self.order[b] else (b, a)
        if key not in self._pairs:
            try:
                self._pairs[key] = compare(self.prepared(key[0]), self.prepared(key[1]))
            except ValueError as error:
                raise ValueError(
                    f"{self.dataset}: class {self.name!r}, seed {self.seed}, encoders {key[0]!r} "
                    f"and {key[1]!r}: {error}"
                ) from error
        return self._pairs[key]

    def rows(self, a: str) -> list[ResultRow]:
        rows: list[ResultRow] = []
        for b in self.samples:
            if b == a:
                continue
            values = self.pair(a, b)
            for m in self.measures:
                rows.append(ResultRow(self.dataset, a, b, self.name, self.seed, m, values[m]))
        return rows


class _SimilarityRun:
    """The test samples and anchor sets of one dataset, and the current (class, seed) group,
    made on first use; a new group releases the previous one's matrices."""

    def __init__(self, ds: DatasetConfig, config: RunConfig, context: RunContext) -> None:
        assert config.similarity is not None
        self.ds, self.config, self.context = ds, config, context
        self.measures = _check_measures(config.similarity.measures)
        self._group: _Group | None = None
        self._anchor_sets: dict[int, np.ndarray] = {}

    @functools.cached_property
    def spaces(self) -> Spaces:
        self.context.log(f"{self.ds.name}: loading latents")
        spaces = load_spaces(
            self.ds,
            trained_encoders(self.ds),
            cache=self.context.cache,
            progress=self.context.progress,
        )
        sizes = {e: len(spaces.test[e]) for e in spaces.test}
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"dataset {self.ds.name!r}: encoders hold different test sizes {sizes}"
            )
        return spaces

    @functools.cached_property
    def samples(self) -> dict[str, Tensor]:
        assert self.config.similarity is not None
        first = next(iter(self.spaces.test.values()))
        idx = sample_indices(len(first), self.config.similarity.num_samples)
        return {e: torch.as_tensor(np.asarray(t)[idx]) for e, t in self.spaces.test.items()}

    def _anchors_for(self, seed: int) -> Callable[[str], Tensor]:
        def get(encoder: str) -> Tensor:
            spaces = self.spaces
            if seed not in self._anchor_sets:
                first = next(iter(spaces.train.values()))
                self._anchor_sets[seed] = select_anchor_indices(
                    self.config, first, spaces.train_labels, seed=seed
                )
            return torch.as_tensor(np.asarray(spaces.train[encoder])[self._anchor_sets[seed]])

        return get

    def rows(self, name: str, seed: int, encoder: str) -> list[ResultRow]:
        group = self._group
        if group is None or (group.seed, group.name) != (seed, name):
            group = _Group(
                self.ds.name,
                name,
                seed,
                self.samples,
                self._anchors_for(seed),
                self.config,
                self.measures,
            )
            self._group = group
        return group.rows(encoder)


class Similarity:
    """The similarity of every pair of encoders' spaces under each invariance class."""

    name = "similarity"
    metrics: tuple[MetricInfo, ...] = METRICS
    roles: tuple[str, str] = ("encoder A", "encoder B")
    note = (
        "Latent similarity: for every pair of encoders (A, B), the similarity of their "
        "representations of the same test samples under each invariance class: absolute "
        "latents, or their relative projections onto the same anchors (dot: invariant to "
        "orthogonal maps; cosine: also to rescaling; euclidean/l1/linf: distance-based; "
        "product: the standardised relative spaces concatenated). Cells are mean ± std over "
        "anchor sets (seeds); the summary pools every pair. Linear CKA and the Pearson "
        "correlation of pairwise distances are in [0, 1] and [-1, 1]; higher means more similar."
    )

    def plan(self, dataset: DatasetConfig, config: RunConfig, context: RunContext) -> Plan:
        """One cell per (seed, class, encoder A), seeds first; each holds the rows of every
        other encoder B for every measure. Nothing is loaded until an unfinished cell runs,
        and each unordered pair is compared once.

        Raises:
            ValueError: ``config.similarity`` missing or fewer than two encoders (a measure
                undefined on the data raises when its cell runs, naming the dataset, class,
                seed and encoders).
        """
        settings = config.similarity
        if settings is None:
            raise ValueError("config.similarity is required for task 'similarity'")
        encoders = encoder_names(dataset)
        if len(encoders) < 2:
            raise ValueError(
                f"dataset {dataset.name!r}: the similarity study compares pairs of encoders, got "
                f"{encoders}; name at least two (encoders or trained_encoders)"
            )
        work = _SimilarityRun(dataset, config, context)
        cells = [
            Cell(dataset.name, c, s, a, functools.partial(work.rows, c, s, a))
            for s in config.seeds
            for c in settings.classes
            for a in encoders
        ]
        return Plan(cells)


# --------------------------------------------------------------------------------------------
# Report helpers


def _md(text: str) -> str:
    text = " ".join(text.splitlines())
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pair_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]} ↔ {pair[1]}"


class _Stat:
    """``mean ± std`` (sample std, 0 for one value) of the applicable values; None: n/a."""

    def __init__(self, values: Sequence[float | None]) -> None:
        present = np.array([v for v in values if v is not None], dtype=np.float64)
        self.mean: float | None = float(present.mean()) if present.size else None
        self.std = float(present.std(ddof=1)) if present.size > 1 else 0.0

    def text(self) -> str:
        return _NA if self.mean is None else f"{self.mean:.3f} ± {self.std:.3f}"


def _aggregate(
    rows: Sequence[ResultRow], dataset: str, measure: str
) -> tuple[list[tuple[str, str]], list[str], dict[tuple[tuple[str, str], str], _Stat]]:
    """(unordered pairs, classes, stat over seeds per (pair, class)), in first-appearance order.

    A pair is oriented as it first appears; its two orders carry the same value per seed, so
    each (pair, class, seed) counts once (the first row seen).
    """
    pairs: dict[frozenset[str], tuple[str, str]] = {}
    classes: dict[str, None] = {}
    values: dict[tuple[tuple[str, str], str], dict[int, float | None]] = {}
    for r in rows:
        if r.dataset != dataset or r.metric != measure or r.source == r.target:
            continue
        pair = pairs.setdefault(frozenset((r.source, r.target)), (r.source, r.target))
        classes.setdefault(r.variant, None)
        values.setdefault((pair, r.variant), {}).setdefault(r.seed, r.value)
    if not pairs:
        raise ValueError(f"no {measure!r} results for dataset {dataset!r}")
    stats = {key: _Stat(list(by_seed.values())) for key, by_seed in values.items()}
    return list(pairs.values()), list(classes), stats


def similarity_table(rows: Sequence[ResultRow], dataset: str, measure: str) -> str:
    """A markdown table of one measure on one dataset.

    One row per unordered encoder pair (``A ↔ B``, as first seen), one column per class (in
    order of first appearance); a cell is ``mean ± std`` over the seeds (anchor sets) with the
    sample standard deviation (ddof=1, ``0.000`` for one value), ``n/a`` when the measure does
    not apply (e.g. ``mean_cosine`` across widths), ``—`` when there is no row. The last row,
    ``mean over pairs``, is the mean ± sample std, across the pairs, of the pairs' means (n/a
    pairs left out). The best class of each row (highest mean at the shown precision; ties all
    bold) is in bold.

    Raises:
        ValueError: no row of ``measure`` on ``dataset``.
    """
    pairs, classes, stats = _aggregate(rows, dataset, measure)
    lines = [
        "| " + " | ".join(["Encoder pair", *(_md(c) for c in classes)]) + " |",
        "|" + "|".join([":---", *(["---:"] * len(classes))]) + "|",
    ]

    def line(label: str, cells: list[_Stat | None]) -> str:
        means = [round(s.mean, 3) for s in cells if s is not None and s.mean is not None]
        best = max(means) if means else None
        texts = []
        for s in cells:
            text = _MISSING if s is None else s.text()
            if s is not None and s.mean is not None and round(s.mean, 3) == best:
                text = f"**{text}**"
            texts.append(text)
        return "| " + " | ".join([_md(label), *texts]) + " |"

    for pair in pairs:
        lines.append(line(_pair_label(pair), [stats.get((pair, c)) for c in classes]))
    summary: list[_Stat | None] = []
    for c in classes:
        present = [stats[(p, c)] for p in pairs if (p, c) in stats]
        summary.append(_Stat([s.mean for s in present]) if present else None)
    lines.append(line(_MEAN_ROW, summary))
    return "\n".join(lines) + "\n"


def similarity_bar_chart(rows: Sequence[ResultRow], dataset: str, measure: str) -> bytes:
    """PNG bytes of a grouped bar chart of one measure on one dataset.

    x: the unordered encoder pairs; one bar per class (colours in the legend) at the mean over
    seeds, with the sample standard deviation over seeds as error bar; a not-applicable value
    has no bar and an ``n/a`` mark. Rendered with matplotlib's Agg canvas (no display needed);
    the same rows give the same bytes.

    Raises:
        ValueError: no row of ``measure`` on ``dataset``.
        ImportError: matplotlib is not installed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pairs, classes, stats = _aggregate(rows, dataset, measure)
    width = 0.8 / len(classes)
    size = min(16.0, max(6.0, 2.5 + 0.15 * len(pairs) * len(classes)))
    fig = Figure(figsize=(size, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    low = 0.0
    for j, c in enumerate(classes):
        xs: list[float] = []
        means: list[float] = []
        stds: list[float] = []
        for i, pair in enumerate(pairs):
            x = i - 0.4 + width * (j + 0.5)
            stat = stats.get((pair, c))
            if stat is None:
                continue
            if stat.mean is None:
                ax.text(x, 0.02, _NA, ha="center", va="bottom", fontsize=6, rotation=90)
                continue
            xs.append(x)
            means.append(stat.mean)
            stds.append(stat.std)
            low = min(low, stat.mean - stat.std)
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=plain_text(c), color=f"C{j % 10}")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylim(min(0.0, low - 0.05), 1.05)
    ax.set_xticks(range(len(pairs)))
    ticks = [plain_text(_pair_label(p)) for p in pairs]
    ax.set_xticklabels(ticks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(plain_text(measure))
    ax.set_title(plain_text(f"{dataset} — {measure} (mean ± std over anchor seeds)"))
    ax.legend(fontsize=7, title="class", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
