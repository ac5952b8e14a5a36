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
3. Each class of ``similarity.classes`` represents the samples
   (:func:`latentbridge.analysis.represent`): ``absolute`` (the latents themselves), a
   projection name (the relative space ``relative_projection(latents, anchors, name,
   variants.normalization)``), or ``product`` (the library's
   :class:`~latentbridge.ProductProjection` of ``variants.product_projections`` with the
   ``concat`` aggregation, untrained: each sample's relative vector in each subspace
   standardised across the anchors, the subspaces concatenated).
4. For every unordered pair of distinct encoders each measure of ``similarity.measures``
   compares their representations (:func:`latentbridge.analysis.compare`); the value is
   written for both orders.

Measures (all symmetric, all unchanged when either representation is multiplied by a positive
constant):

- ``linear_cka``: linear CKA (:func:`latentbridge.metrics.linear_cka`), in [0, 1];
- ``rbf_cka``: Gaussian-kernel CKA with the median-distance bandwidth
  (:func:`latentbridge.metrics.rbf_cka`), in [0, 1];
- ``mean_cosine``: mean cosine between corresponding rows
  (:func:`latentbridge.metrics.mean_cosine`), in [-1, 1]; it needs both representations in one
  space, so between representations of different widths it is not applicable and recorded as
  an empty value, never a number. It is not blind to translations: distance-based relative
  spaces (all entries positive) give cosines near 1, while the product's subspaces are
  centred across the anchors, so its mean cosine is about the mean, over the subspaces, of the
  Pearson correlation between the two encoders' relative vectors of a sample: a lower number;
- ``distance_pearson``: Pearson correlation between the two representations' pairwise
  Euclidean distances over the samples (the upper triangle, as ``scipy.spatial.distance.pdist``
  orders it; :func:`latentbridge.metrics.distance_correlation`), in [-1, 1]: the paper's
  "correlation of distances" across training seeds.

The per-space parts of the measures (the centred Gram matrix, the pairwise distances, the
Gaussian kernel matrix) are computed once per encoder and class
(:class:`latentbridge.analysis.PreparedSpace`), so a dataset with E encoders costs E such
computations per (class, seed) instead of E (E - 1); O(N^2) memory per encoder for N samples,
N at most :data:`latentbridge.metrics.DISTANCE_CORRELATION_MAX_N`.

Results are rows ``dataset, A, B, class, seed, measure, value`` of ``results.csv`` (the columns
``source``, ``target``, ``variant`` hold A, B and the class). A = B is not written.
One cell of the run's :class:`.results.CellStore` per (dataset, class, seed, encoder A) holds the
rows of every B; a restarted run skips finished cells. :func:`similarity_pair_table` (in
markdown: :func:`similarity_table`) and :func:`similarity_bar_chart` summarise the rows for the
report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..._plotting import figure, plain_text, png_bytes
from ..._validation import check_int
from ...analysis import PreparedSpace, compare, represent
from ...metrics import DISTANCE_CORRELATION_MAX_N
from ..config import DatasetConfig, RunConfig
from ..results import ResultRow
from ..spaces import Spaces, encoder_names, load_spaces, select_anchor_indices, trained_encoders
from ..tables import MISSING, NA, Figure, Section, Stat, Table, slug, summary, to_markdown, unique
from ..tables import Cell as TableCell
from ..tables import stat as _stat_optional
from ..task import Cell, MetricInfo, Plan, RunContext

__all__ = [
    "MEASURES",
    "METRICS",
    "Similarity",
    "sample_indices",
    "similarity_bar_chart",
    "similarity_pair_table",
    "similarity_table",
]

#: The similarity measures of the study (each between two encoders' representations): those
#: of :data:`latentbridge.analysis.SIMILARITY_MEASURES`, with their titles and ranges.
METRICS = (
    MetricInfo("linear_cka", "Linear CKA", 0.0, 1.0),
    MetricInfo("rbf_cka", "RBF CKA", 0.0, 1.0),
    MetricInfo("distance_pearson", "Pearson correlation of pairwise distances", -1.0, 1.0),
    MetricInfo("mean_cosine", "Mean cosine similarity", -1.0, 1.0),
)
MEASURES: tuple[str, ...] = tuple(m.name for m in METRICS)

_MEAN_ROW = "mean over pairs"


# --------------------------------------------------------------------------------------------
# The samples


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
        self.measures = tuple(config.similarity.measures)
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
        wanted = self.config.similarity.num_samples
        idx = sample_indices(len(first), wanted)
        if len(idx) > DISTANCE_CORRELATION_MAX_N:
            raise ValueError(
                f"dataset {self.ds.name!r}: similarity.num_samples={wanted} represents "
                f"{len(idx)} test samples; the study keeps N x N matrices and accepts at most "
                f"{DISTANCE_CORRELATION_MAX_N}: lower similarity.num_samples"
            )
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

    def sections(self, rows: Sequence[ResultRow], metric: MetricInfo) -> list[Section]:
        """The mean over encoder pairs, then per dataset every pair × class, and a bar chart."""
        section = Section(
            metric.title, [("Mean over encoder pairs", summary(rows, metric.name, True))]
        )
        for dataset in unique(r.dataset for r in rows if r.metric == metric.name):
            table = similarity_pair_table(rows, dataset, metric.name)
            section.tables.append((f"{dataset}: every pair", table))
            png = similarity_bar_chart(rows, dataset, metric.name)
            file = f"charts/{slug(dataset)}__{slug(metric.name)}.png"
            section.figures.append(Figure(f"{dataset} — {metric.title}", png, file))
        return [section]

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


def _pair_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]} ↔ {pair[1]}"


def _stat_of(values: Sequence[float | None]) -> Stat:
    stat = _stat_optional(values)
    assert stat is not None  # every (pair, class) has at least one seed's value
    return stat


def _text(stat: Stat) -> str:
    """``mean ± std`` of a pair's values over seeds, or n/a."""
    return NA if stat.mean is None else f"{stat.mean:.3f} ± {stat.std:.3f}"


def _aggregate(
    rows: Sequence[ResultRow], dataset: str, measure: str
) -> tuple[list[tuple[str, str]], list[str], dict[tuple[tuple[str, str], str], Stat]]:
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
    stats = {key: _stat_of(list(by_seed.values())) for key, by_seed in values.items()}
    return list(pairs.values()), list(classes), stats


def similarity_pair_table(rows: Sequence[ResultRow], dataset: str, measure: str) -> Table:
    """The table of one measure on one dataset.

    One row per unordered encoder pair (``A ↔ B``, as first seen), one column per class (in
    order of first appearance); a cell is ``mean ± std`` over the seeds (anchor sets) with the
    sample standard deviation (ddof=1, ``0.000`` for one value), ``n/a`` when the measure does
    not apply (e.g. ``mean_cosine`` across widths), ``—`` when there is no row. The footer row,
    ``mean over pairs``, is the mean ± sample std, across the pairs, of the pairs' means (n/a
    pairs left out). The best class of each row (highest mean at the shown precision; ties all
    bold) is in bold.

    Raises:
        ValueError: no row of ``measure`` on ``dataset``.
    """
    pairs, classes, stats = _aggregate(rows, dataset, measure)

    def line(label: str, cells: list[Stat | None]) -> list[TableCell]:
        means = [round(s.mean, 3) for s in cells if s is not None and s.mean is not None]
        best = max(means) if means else None
        out = [TableCell(label)]
        for s in cells:
            bold = s is not None and s.mean is not None and round(s.mean, 3) == best
            out.append(TableCell(MISSING if s is None else _text(s), bold=bold))
        return out

    table = Table(["Encoder pair", *classes], [])
    for pair in pairs:
        table.rows.append(line(_pair_label(pair), [stats.get((pair, c)) for c in classes]))
    summary: list[Stat | None] = []
    for c in classes:
        present = [stats[(p, c)] for p in pairs if (p, c) in stats]
        summary.append(_stat_of([s.mean for s in present]) if present else None)
    table.footer.append(line(_MEAN_ROW, summary))
    return table


def similarity_table(rows: Sequence[ResultRow], dataset: str, measure: str) -> str:
    """:func:`similarity_pair_table` in markdown, the best class of each row in bold.

    Raises:
        ValueError: no row of ``measure`` on ``dataset``.
    """
    return to_markdown(similarity_pair_table(rows, dataset, measure))


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
    pairs, classes, stats = _aggregate(rows, dataset, measure)
    width = 0.8 / len(classes)
    size = min(16.0, max(6.0, 2.5 + 0.15 * len(pairs) * len(classes)))
    fig = figure(size, 4.5)
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
                ax.text(x, 0.02, NA, ha="center", va="bottom", fontsize=6, rotation=90)
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
    return png_bytes(fig)
