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
  too large for memory, written chunk by chunk (resumable).
"""

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
