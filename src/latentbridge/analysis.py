"""Numerical checks of declared invariances, the invariance profile of two spaces, and the
similarity of spaces under an invariance class.

:func:`verify_invariances` applies random members of each transformation class to samples and
anchors alike and measures how much a projection's output moves. The test-suite runs it over
every registered projection and normalisation, so a declaration that does not hold fails; users
can run it on their own registered projections and on configured modules.

:func:`invariance_profile` asks which transformation relates two spaces: the similarity of their
relative representations under every projection, and the error of maps fitted on the anchors.

:func:`represent` writes N samples in an invariance class (``absolute``, a projection, or the
``product`` of invariances), :func:`class_invariances` says which transformations that class
quotients out, and :func:`similarity` / :class:`PreparedSpace` / :func:`compare` measure how
alike two such representations are (the paper's Figures 1 and 3): each space is prepared once
and then compared with many others.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import alignment, metrics
from . import normalization as _norm
from . import projections as _projections
from ._plotting import plain_text
from ._validation import ArrayLike, as_matrix, check_finite, compute_dtype
from .modules import ProductProjection, RelativeProjection
from .projections import effective_invariances, relative_projection
from .transformations import TRANSFORMATIONS, AffineMap, random_transformation

__all__ = [
    "ABSOLUTE",
    "PAPER_PRODUCT",
    "PRODUCT",
    "SIMILARITY_MEASURES",
    "InvarianceCheck",
    "InvarianceProfile",
    "PreparedSpace",
    "class_invariances",
    "compare",
    "invariance_error",
    "invariance_profile",
    "represent",
    "representation_classes",
    "sample_space",
    "similarity",
    "verify_invariances",
]

ProjectionLike = Callable[[Tensor, Tensor], Tensor]

# A declared invariance must hold to this relative error in float64, and an undeclared one must
# be violated by more than VIOLATION: the two are six orders of magnitude apart.
TOLERANCE = 1e-9
VIOLATION = 1e-3


def sample_space(
    n: int, dim: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Random points with an anisotropic spread, rotated and far from the origin, ``(n, dim)``.

    Generic on purpose: no symmetry that would hide a missing invariance.
    """
    scales = torch.exp(
        torch.empty(dim, dtype=torch.float64).uniform_(-1.2, 1.2, generator=generator)
    )
    rotation = random_transformation("orthogonal", dim, generator=generator).weight
    offset = 2.0 * torch.randn(dim, generator=generator, dtype=torch.float64)
    z = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return ((z * scales) @ rotation + offset).to(dtype)


def invariance_error(
    function: ProjectionLike, x: Tensor, anchors: Tensor, transform: AffineMap
) -> float:
    """``||f(T x, T a) - f(x, a)|| / ||f(x, a)||`` (Frobenius norms)."""
    with torch.no_grad():
        before = function(x, anchors)
        after = function(transform(x), transform(anchors))
    scale = torch.linalg.vector_norm(before).clamp_min(torch.finfo(before.dtype).tiny)
    return float(torch.linalg.vector_norm(after - before) / scale)


@dataclass(frozen=True)
class InvarianceCheck:
    """Outcome for one transformation class: declared, measured worst relative error, verdict.

    ``consistent`` is True when a declared invariance holds (error <= tolerance) or an
    undeclared one is clearly violated (error > violation threshold).
    """

    transformation: str
    declared: bool
    error: float
    consistent: bool


def _as_function(
    target: str | RelativeProjection | ProductProjection | ProjectionLike,
    normalization: str,
    relative_normalization: str,
) -> tuple[ProjectionLike, frozenset[str] | None]:
    if isinstance(target, str):

        def function(x: Tensor, anchors: Tensor) -> Tensor:
            return relative_projection(x, anchors, target, normalization, relative_normalization)

        return function, effective_invariances(target, normalization, relative_normalization)
    if isinstance(target, (RelativeProjection, ProductProjection)):
        module = target

        def forward(x: Tensor, anchors: Tensor) -> Tensor:
            return module(x, anchors=anchors)

        return forward, module.invariances
    if callable(target):
        return target, None
    raise TypeError(
        "target must be a projection name, a RelativeProjection/ProductProjection or a "
        f"callable f(x, anchors), got {type(target).__name__}"
    )


def verify_invariances(
    target: str | RelativeProjection | ProductProjection | ProjectionLike,
    normalization: str = "none",
    relative_normalization: str = "none",
    *,
    declared: Iterable[str] | None = None,
    transformations: Iterable[str] = TRANSFORMATIONS,
    num_samples: int = 64,
    num_anchors: int = 16,
    dim: int = 8,
    trials: int = 3,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    violation: float = VIOLATION,
) -> dict[str, InvarianceCheck]:
    """Measure, per transformation class, the worst relative change of the output over trials.

    Args:
        target: a projection name (with the two normalisations), a configured module (its
            ``invariances`` are the declaration; it is evaluated in its parameters' dtype, so
            call ``.double()`` for float64 precision), or any ``f(x, anchors)``.
        declared: the claimed invariances; taken from the target when it has them.
        trials: independent draws of data and transformation; the worst error is reported.

    Returns:
        ``{transformation: InvarianceCheck}``.
    """
    function, claimed = _as_function(target, normalization, relative_normalization)
    if declared is not None:
        claimed = frozenset(declared)
    if claimed is None:
        raise ValueError("declared is required when target is a plain callable")
    generator = torch.Generator().manual_seed(seed)
    results: dict[str, InvarianceCheck] = {}
    for kind in transformations:
        worst = 0.0
        for _ in range(trials):
            points = sample_space(num_samples + num_anchors, dim, generator=generator)
            x, anchors = points[:num_samples], points[num_samples:]
            transform = random_transformation(kind, dim, generator=generator)
            worst = max(worst, invariance_error(function, x, anchors, transform))
        is_declared = kind in claimed
        consistent = worst <= tolerance if is_declared else worst > violation
        results[kind] = InvarianceCheck(kind, is_declared, worst, consistent)
    return results


# --------------------------------------------------------------------------------------------
# Invariance profile: which transformation relates two spaces?


# Similarities (higher = more alike, at most 1) that accept spaces of different widths.
PROFILE_METRICS = (
    "linear_cka",
    "rbf_cka",
    "bures_similarity",
    "svcca",
    "jaccard_knn",
    "mutual_knn",
    "distance_correlation",
)


@dataclass(frozen=True)
class InvarianceProfile:
    """Similarity of two spaces under each projection, and held-out error of each fitted map.

    ``similarities``: ``{space: value}`` for ``absolute`` and every projection, the ``metric``
    between the two spaces' (relative) representations of the held-out samples; higher means
    the spaces agree more once the projection's invariances are factored out.
    ``map_errors``: ``{estimator: value}``, the held-out normalised error
    ``||T(x) - y||_F / ||y - mean(y)||_F`` of a :class:`latentbridge.alignment.Translator` fitted
    on the anchors (0 is exact, 1 is no better than predicting the mean), ``None`` where the
    estimator does not apply (the reason is in ``notes``).
    """

    metric: str
    similarities: dict[str, float]
    map_errors: dict[str, float | None]
    notes: dict[str, str]
    num_anchors: int
    num_heldout: int

    def to_markdown(self) -> str:
        lines = [
            f"| space | {self.metric} (held-out, {self.num_heldout} samples) |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.4f} |" for name, value in self.similarities.items()]
        lines += [
            "",
            f"| map fitted on {self.num_anchors} anchors | held-out normalised error |",
            "|---|---|",
        ]
        for name, error in self.map_errors.items():
            shown = f"{error:.4f}" if error is not None else f"n/a ({self.notes.get(name, '')})"
            lines.append(f"| {name} | {shown} |")
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Save a bar chart (the paper's Figure 1 style), atomically; needs matplotlib.

        The format follows the suffix of ``path`` (``.png`` when it has none; ``.svg``,
        ``.pdf``, ... as matplotlib supports them, else ``ValueError``). Names and the title
        are drawn as plain text (never mathtext); matplotlib's global state (backend, rcParams,
        pyplot's figures) is left untouched.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("plotting needs matplotlib: pip install matplotlib") from error
        from ._files import write_bytes_atomic

        spaces = list(self.similarities)
        maps = [name for name, e in self.map_errors.items() if e is not None]
        fig = Figure(figsize=(4 + 0.55 * (len(spaces) + len(maps)), 3.6))
        canvas = FigureCanvasAgg(fig)
        out = Path(path)
        fmt = out.suffix.lstrip(".").lower() or "png"
        if fmt not in canvas.get_supported_filetypes():
            raise ValueError(
                f"path must end in an image format matplotlib writes "
                f"({', '.join(sorted(canvas.get_supported_filetypes()))}), got {str(out)!r}"
            )
        left, right = fig.subplots(
            1, 2, gridspec_kw={"width_ratios": [max(len(spaces), 1), max(len(maps), 1)]}
        )
        similarities = [self.similarities[s] for s in spaces]
        left.bar([plain_text(s) for s in spaces], similarities, color="#4C72B0")
        left.set_ylabel(plain_text(self.metric))
        left.set_ylim(0, 1.05)
        left.set_title("similarity after projection")
        left.tick_params(axis="x", rotation=45)
        errors = [self.map_errors[m] for m in maps]
        right.bar([plain_text(m) for m in maps], errors, color="#DD8452")
        right.set_ylabel("held-out normalised error")
        right.set_title("fitted map")
        right.tick_params(axis="x", rotation=45)
        if title:
            fig.suptitle(plain_text(title))
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=120)
        return write_bytes_atomic(out, buffer.getvalue())


def invariance_profile(
    x: ArrayLike,
    y: ArrayLike,
    anchors_idx: ArrayLike | Sequence[int],
    *,
    metric: str = "linear_cka",
    projections: Sequence[str] | None = None,
    normalization: str = "none",
    relative_normalization: str = "none",
    estimators: Sequence[str] = ("orthogonal", "similarity", "affine", "linear", "permutation"),
    std_scaling: bool = False,
) -> InvarianceProfile:
    """Which transformation relates the spaces ``x (N, D_x)`` and ``y (N, D_y)``?

    The rows of ``x`` and ``y`` are the same N inputs; ``anchors_idx`` selects the anchors (see
    :func:`latentbridge.anchors.select`), the other rows are held out. For the absolute space and
    each projection (default: every registered one), the ``metric`` (a name in
    :mod:`latentbridge.metrics`, default linear CKA) compares the held-out samples' (relative)
    representations. For each estimator of :mod:`latentbridge.alignment`, a Translator
    (standard scaling on the anchors, zero padding when the dimensions differ) is fitted on the
    anchors and its error measured on the held-out samples.
    """
    xt = as_matrix(x, "x")
    yt = as_matrix(y, "y")
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(
            f"x and y must hold the same samples, got N={xt.shape[0]} and N={yt.shape[0]}"
        )
    check_finite(xt, "x")
    check_finite(yt, "y")
    if metric not in PROFILE_METRICS:
        raise ValueError(
            f"metric must name a similarity in latentbridge.metrics, one of "
            f"{list(PROFILE_METRICS)}, got {metric!r}"
        )
    measure = getattr(metrics, metric)
    idx = torch.as_tensor(np.asarray(anchors_idx), dtype=torch.long)
    n = xt.shape[0]
    if idx.ndim != 1 or idx.numel() == 0:
        raise ValueError(
            f"anchors_idx must be a non-empty 1-D index array, got shape {tuple(idx.shape)}"
        )
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise ValueError(f"anchors_idx must index rows in [0, {n}), got values outside")
    if idx.unique().numel() != idx.numel():
        raise ValueError("anchors_idx must not repeat an index")
    heldout_mask = torch.ones(n, dtype=torch.bool)
    heldout_mask[idx] = False
    heldout = heldout_mask.nonzero().squeeze(1)
    if heldout.numel() < 4:
        raise ValueError(
            f"need at least 4 samples besides the {idx.numel()} anchors to measure on, got "
            f"{heldout.numel()}"
        )
    x64, y64 = xt.to(torch.float64), yt.to(torch.float64)
    ax, ay, hx, hy = x64[idx], y64[idx], x64[heldout], y64[heldout]

    similarities = {"absolute": float(measure(hx, hy))}
    for name in projections if projections is not None else _projections.available():
        rx = relative_projection(hx, ax, name, normalization, relative_normalization)
        ry = relative_projection(hy, ay, name, normalization, relative_normalization)
        similarities[name] = float(measure(rx, ry))

    map_errors: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    spread = torch.linalg.vector_norm(hy - hy.mean(dim=0))
    for name in estimators:
        try:
            translator = alignment.Translator(estimator=name, std_scaling=std_scaling)
            translator.fit(ax, ay)
            predicted = translator.transform(hx).to(torch.float64)
        except (ValueError, NotImplementedError) as error:
            map_errors[name], notes[name] = None, str(error)
            continue
        map_errors[name] = float(torch.linalg.vector_norm(predicted - hy) / spread)
    return InvarianceProfile(
        metric=metric,
        similarities=similarities,
        map_errors=map_errors,
        notes=notes,
        num_anchors=int(idx.numel()),
        num_heldout=int(heldout.numel()),
    )


# --------------------------------------------------------------------------------------------
# Spaces under an invariance class, and how alike two of them are


#: The class of the latents themselves.
ABSOLUTE = "absolute"
#: The class of the product of invariances (see :func:`represent`).
PRODUCT = "product"
#: The projections of the paper's product, the default of ``product_projections``.
PAPER_PRODUCT: tuple[str, ...] = _projections.PAPER_PRODUCT
#: The measures :class:`PreparedSpace` and :func:`compare` know.
SIMILARITY_MEASURES: tuple[str, ...] = ("linear_cka", "rbf_cka", "mean_cosine", "distance_pearson")

_F64 = torch.float64


def representation_classes() -> list[str]:
    """The names :func:`represent` accepts: ``absolute``, ``product`` and every registered
    projection."""
    return [ABSOLUTE, PRODUCT, *_projections.available()]


def _check_class(name: object) -> str:
    choices = representation_classes()
    if not isinstance(name, str) or name not in choices:
        raise ValueError(f"name must be one of {choices}, got {name!r}")
    return name


def _check_product(product_projections: Sequence[str]) -> tuple[str, ...]:
    if isinstance(product_projections, str) or not isinstance(product_projections, Sequence):
        raise TypeError(
            "product_projections must be a sequence of projection names, got "
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


def _product(names: tuple[str, ...], num_anchors: int, normalization: str) -> ProductProjection:
    """The product class: the library's product with the ``concat`` aggregation as initialised
    (per-subspace LayerNorm with weight 1 and bias 0), nothing learned."""
    product = ProductProjection(names, "concat", num_anchors, normalization=normalization)
    return product.requires_grad_(False)


def represent(
    latents: ArrayLike,
    anchors: ArrayLike,
    name: str,
    *,
    normalization: str = "none",
    product_projections: Sequence[str] = PAPER_PRODUCT,
) -> Tensor:
    """The samples ``latents (N, D)`` written in the invariance class ``name``.

    - ``absolute``: the latents themselves, ``(N, D)`` (``anchors`` and ``normalization`` are
      not used);
    - a projection name (:func:`latentbridge.projections.available`): the relative space
      ``R = relative_projection(latents, anchors, name, normalization)``, ``(N, K)``;
    - ``product``: the product of invariances of ``product_projections`` (P names),
      ``(N, P K)``: :class:`latentbridge.ProductProjection` with the ``concat`` aggregation,
      fitted on ``anchors (K, D)`` and untrained, i.e. ``[std(R_1), ..., std(R_P)]`` where
      ``std(r) = (r - mean(r)) / sd(r)`` standardises each sample's relative vector across its
      K anchor coordinates (:func:`latentbridge.normalization.standardize_rows`: population
      variance, regularised by ``eps * mean(r^2)``). Every subspace then weighs the same in
      every sample (each block row has norm about ``sqrt(K)``) whatever the scale of its
      projection, and a sample's representation does not depend on the other samples.

    Computation follows the inputs' device, in their promoted floating dtype (half precision
    in float32); the result has the promoted dtype. Differentiable with respect to the
    latents, and for a projection also to the anchors (the product's are fitted, detached).
    The classes' invariances are :func:`class_invariances`.

    Raises:
        ValueError: unknown ``name``, ``normalization`` or product projection, an empty
            ``product_projections``, mismatched feature dimensions, NaN/Inf.
        TypeError: non-floating input, ``product_projections`` not a sequence of names.
    """
    _check_class(name)
    _norm.get_absolute(normalization)
    x = as_matrix(latents, "latents")
    if name == ABSOLUTE:
        check_finite(x, "latents")
        return x
    if name != PRODUCT:
        return relative_projection(x, anchors, name, normalization)
    names = _check_product(product_projections)
    a = as_matrix(anchors, "anchors", rows="K")
    if a.shape[0] == 0:
        raise ValueError("anchors must hold at least one anchor, got shape (0, D)")
    out_dtype = torch.promote_types(x.dtype, a.dtype)
    dtype = compute_dtype(out_dtype)
    product = _product(names, a.shape[0], normalization).to(device=x.device, dtype=dtype)
    product.fit(a.to(dtype))
    return product(x.to(dtype)).to(out_dtype)


def class_invariances(
    name: str,
    *,
    normalization: str = "none",
    product_projections: Sequence[str] = PAPER_PRODUCT,
) -> frozenset[str]:
    """Transformation classes after which every measure of :data:`SIMILARITY_MEASURES` is 1.

    A class ``T`` is listed when applying a member of ``T`` to the latents and anchors alike
    changes the ``name`` representation (:func:`represent`) at most by a positive factor, to
    which every measure is blind:

    - a projection: its effective invariances after the absolute ``normalization`` plus the
      classes that only rescale it (``scaled_by``), i.e.
      ``effective_invariances(name, normalization, "l2")``;
    - ``product``: the module's own :attr:`latentbridge.ProductProjection.invariances` (the
      classes every subspace is invariant to once standardised, which removes its scale);
    - ``absolute``: only ``isotropic_scaling``.

    Some measures are blind to more: linear CKA and the distance correlation also to
    orthogonal maps and translations of the representation itself.

    Raises:
        ValueError: unknown ``name``, ``normalization`` or product projection.
    """
    _check_class(name)
    _norm.get_absolute(normalization)
    if name == ABSOLUTE:
        return frozenset({"isotropic_scaling"})
    if name == PRODUCT:
        return _product(_check_product(product_projections), 1, normalization).invariances
    # "l2" stands for any relative normalisation that removes a positive scale, as the
    # measures do.
    return effective_invariances(name, normalization, "l2")


def _unit(t: Tensor) -> Tensor:
    """``t / ||t||`` over all entries (flattened)."""
    return t / torch.linalg.vector_norm(t)


def _median(values: Tensor) -> float:
    """The median, with the mean of the two middle values for an even count (as numpy)."""
    m = values.numel()
    low = torch.kthvalue(values, (m + 1) // 2).values
    high = torch.kthvalue(values, m // 2 + 1).values
    return float((low + high) / 2)


def _check_measures(measures: Iterable[str]) -> tuple[str, ...]:
    if isinstance(measures, str):
        raise ValueError(f"measures must be a sequence of names, got the string {measures!r}")
    names = tuple(measures)
    for m in names:
        if m not in SIMILARITY_MEASURES:
            raise ValueError(
                f"measures must hold names from {list(SIMILARITY_MEASURES)}, got {m!r}"
            )
    return names


class PreparedSpace:
    """One representation of N samples with the per-space parts of the measures, computed once.

    Comparing E spaces pairwise then costs E preparations and ``E (E - 1) / 2`` inner products
    instead of ``E (E - 1)`` full measures; O(N^2) float64 memory per prepared space. With
    ``Xc`` the representation centred over the samples (in float64) and ``G = Xc Xc^T``:

    - ``linear_cka`` keeps ``linear = G / ||G||_F``; between two spaces
      ``CKA = <linear_x, linear_y>_F`` (the biased estimator of
      :func:`latentbridge.metrics.linear_cka`);
    - ``distance_pearson`` keeps the condensed Euclidean distances
      ``d_ij = sqrt(G_ii + G_jj - 2 G_ij)``, ``i < j`` (row-major, as
      ``scipy.spatial.distance.pdist``), centred and scaled to unit norm (``distances``);
      between two spaces their inner product is the Pearson correlation of the distances
      (:func:`latentbridge.metrics.distance_correlation`);
    - ``rbf_cka`` keeps the doubly centred Gaussian kernel ``rbf = H K H / ||H K H||_F`` with
      ``K_ij = exp(-d_ij^2 / (2 sigma^2))``, sigma the median of the ``d_ij`` (the median
      heuristic of :func:`latentbridge.metrics.rbf_cka`);
    - ``mean_cosine`` needs only the representation ``x``.

    Every measure is unchanged when the representation is multiplied by a positive constant;
    all but ``mean_cosine`` also when it is translated or rotated.

    Args:
        x: ``(N, D)`` the representation, ``3 <= N <= DISTANCE_CORRELATION_MAX_N``; kept as
            given (detached) for ``mean_cosine``.
        measures: the measures it will be compared with (names from
            :data:`SIMILARITY_MEASURES`).
        name: how errors refer to it (e.g. ``"mpnet-base/cosine"``).

    Raises:
        ValueError: unknown measure, N out of range, no feature, NaN/Inf, a representation with
            zero variance (every row identical) or, for ``distance_pearson``/``rbf_cka``, all
            pairwise distances equal.
        TypeError: non-floating input.
    """

    def __init__(self, x: ArrayLike, measures: Iterable[str], name: str = "x") -> None:
        wanted = _check_measures(measures)
        xt = as_matrix(x, name).detach()
        n = xt.shape[0]
        if n < 3:
            raise ValueError(f"{name} must hold at least 3 samples, got N={n}")
        if n > metrics.DISTANCE_CORRELATION_MAX_N:
            raise ValueError(
                f"{name} holds N={n} samples; a prepared space keeps N x N matrices and accepts "
                f"at most {metrics.DISTANCE_CORRELATION_MAX_N}: compare fewer samples"
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
        if {"linear_cka", "distance_pearson", "rbf_cka"} & set(wanted):
            self._prepare(wanted)

    def _prepare(self, wanted: tuple[str, ...]) -> None:
        n = self.num_samples
        xc = self.x.to(_F64, copy=True)
        xc -= xc.mean(dim=0, keepdim=True)
        gram = xc @ xc.T
        del xc
        if not bool(torch.linalg.matrix_norm(gram) > 0):
            raise ValueError(f"{self.name} has zero variance (every row is identical)")
        if "linear_cka" in wanted:
            self.linear = _unit(gram)
        if "distance_pearson" not in wanted and "rbf_cka" not in wanted:
            return
        diag = gram.diagonal().clone()
        squared = gram.mul_(-2.0).add_(diag[:, None]).add_(diag[None, :]).clamp_min_(0.0)
        squared.fill_diagonal_(0.0)
        upper = torch.ones(n, n, dtype=torch.bool).triu_(diagonal=1)
        condensed = squared[upper].sqrt_()
        if not bool(condensed.max() > condensed.min()):
            raise ValueError(
                f"all pairwise distances of {self.name} are equal: distance_pearson and rbf_cka "
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
        """N, the number of samples represented."""
        return int(self.x.shape[0])

    @property
    def width(self) -> int:
        """D, the number of features of the representation."""
        return int(self.x.shape[1])


def _inner(a: Tensor | None, b: Tensor | None) -> float:
    assert a is not None and b is not None  # compare() checked that both were prepared
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


def _clip(value: float, low: float) -> float:
    return min(max(value, low), 1.0)


def compare(
    a: PreparedSpace, b: PreparedSpace, measures: Sequence[str] | None = None
) -> dict[str, float | None]:
    """Each measure between two prepared representations of the same samples.

    ``measures`` defaults to those both were prepared for. Values are floats, symmetric in
    ``a`` and ``b``; ``mean_cosine`` (:func:`latentbridge.metrics.mean_cosine`, which needs
    both in one space) is None, not applicable, when the widths differ. CKA values are clipped
    to [0, 1] and correlations to [-1, 1] (the bounds hold exactly; the clip only removes
    rounding).

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
            values[m] = metrics.mean_cosine(a.x, b.x) if a.width == b.width else None
        elif m == "linear_cka":
            values[m] = _clip(_inner(a.linear, b.linear), 0.0)
        elif m == "rbf_cka":
            values[m] = _clip(_inner(a.rbf, b.rbf), 0.0)
        else:
            values[m] = _clip(_inner(a.distances, b.distances), -1.0)
    return values


def similarity(
    x: ArrayLike, y: ArrayLike, measures: Sequence[str] = SIMILARITY_MEASURES
) -> dict[str, float | None]:
    """Each measure between the representations ``x (N, D1)`` and ``y (N, D2)`` of the same N
    samples: ``compare(PreparedSpace(x, measures), PreparedSpace(y, measures), measures)``.

    To compare one space with many, prepare it once (:class:`PreparedSpace`) and call
    :func:`compare`.
    """
    return compare(PreparedSpace(x, measures, "x"), PreparedSpace(y, measures, "y"), measures)
