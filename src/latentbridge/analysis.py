"""Numerical checks of declared invariances, and the invariance profile of two spaces.

:func:`verify_invariances` applies random members of each transformation class to samples and
anchors alike and measures how much a projection's output moves. The test-suite runs it over
every registered projection and normalisation, so a declaration that does not hold fails; users
can run it on their own registered projections and on configured modules.
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

from ._plotting import plain_text
from ._validation import ArrayLike, as_matrix, check_finite
from .modules import ProductProjection, RelativeProjection
from .projections import effective_invariances, relative_projection
from .transformations import TRANSFORMATIONS, AffineMap, random_transformation

__all__ = [
    "InvarianceCheck",
    "InvarianceProfile",
    "invariance_error",
    "invariance_profile",
    "sample_space",
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
    from . import alignment, metrics
    from .projections import available as available_projections

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
    for name in projections if projections is not None else available_projections():
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
