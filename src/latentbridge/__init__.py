"""latentbridge: latent space communication with relative projections and their product.

The core needs only torch and numpy; importing it does nothing else (no files, no network).

- :func:`relative_projection` and the registry :mod:`latentbridge.projections`;
- :class:`RelativeProjection` and :class:`ProductProjection` modules (zero-shot stitching by
  swapping anchors: ``module.with_anchors(anchors_b)``);
- :mod:`latentbridge.anchors` for anchor selection, :mod:`latentbridge.aggregations`,
  :mod:`latentbridge.transformations` for the invariance vocabulary;
- :func:`anchor_consistency` and :mod:`latentbridge.stitching`: label-free agreement, on the
  parallel anchors, of a model trained on one space and its zero-shot stitched copy;
- :func:`latentbridge.streaming.project_file`: the relative representation of an embedding file
  too large for memory, written chunk by chunk (resumable);
- :class:`StitchingClassifier`: a scikit-learn classifier on the (product) relative
  representation, stitched to another encoder with ``clf.with_anchors(anchors_b)`` (the
  ``sklearn`` extra; imported on first access, so ``import latentbridge`` never loads
  scikit-learn).
"""

from typing import TYPE_CHECKING, Any

from . import (
    aggregations,
    alignment,
    analysis,
    anchors,
    data,
    encoders,
    metrics,
    normalization,
    projections,
    stitching,
    streaming,
    transformations,
)
from .encoding import encode
from .modules import ProductProjection, RelativeProjection
from .projections import relative_projection
from .stitching import anchor_consistency
from .transformations import TRANSFORMATIONS

if TYPE_CHECKING:
    from .estimator import StitchingClassifier as StitchingClassifier

__version__ = "0.1.0"

__all__ = [
    "TRANSFORMATIONS",
    "ProductProjection",
    "RelativeProjection",
    "__version__",
    "aggregations",
    "alignment",
    "analysis",
    "anchor_consistency",
    "anchors",
    "data",
    "encode",
    "encoders",
    "metrics",
    "normalization",
    "projections",
    "relative_projection",
    "stitching",
    "streaming",
    "transformations",
]


def __getattr__(name: str) -> Any:
    """Import the scikit-learn estimator on first access (the optional ``sklearn`` extra)."""
    if name == "StitchingClassifier":
        from .estimator import StitchingClassifier

        return StitchingClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # StitchingClassifier is listed but kept out of __all__, so that a star import does not
    # import scikit-learn (or fail without it).
    return sorted(set(globals()) | set(__all__) | {"StitchingClassifier"})
