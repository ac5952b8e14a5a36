"""Modules holding anchors and fitted statistics: :class:`RelativeProjection` and
:class:`ProductProjection`.

Anchors and the absolute-normalisation statistics live in buffers, learned weights (only the
product's aggregation has any) in parameters. Zero-shot stitching swaps the buffers and keeps
every parameter::

    product = ProductProjection(num_anchors=K).fit(anchors_a)   # encoder A's anchors
    head = torch.nn.Linear(product.out_features, num_classes)
    ...train product and head on encoder A's latents...
    stitched = product.with_anchors(anchors_b)                  # same anchors, encoder B
    logits = head(stitched(latents_b))                          # no retraining

``fit`` replaces the anchors in place; ``with_anchors`` returns a stitched copy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn

from . import aggregations as _aggregations
from . import normalization as _norm
from . import projections as _projections
from ._validation import (
    ArrayLike,
    as_matrix,
    check_features,
    check_finite,
    check_pair,
    check_positive_int,
    compute_dtype,
    warn_duplicates,
)

__all__ = ["ProductProjection", "RelativeProjection"]

_Self = TypeVar("_Self", bound="RelativeProjection")
_P = TypeVar("_P", bound="ProductProjection")


def _validated_anchors(anchors: ArrayLike, device: torch.device) -> Tensor:
    tensor = as_matrix(anchors, "anchors", rows="K", cols="D")
    if tensor.shape[0] == 0:
        raise ValueError("anchors must hold at least one anchor, got shape (0, D)")
    check_features(tensor, "anchors")
    check_finite(tensor, "anchors")
    warn_duplicates(tensor)
    tensor = tensor.detach().to(device=device, dtype=compute_dtype(tensor.dtype))
    return tensor.clone()


def _check_batch(
    fitted: RelativeProjection, x: ArrayLike, anchors: ArrayLike | None, check_inputs: bool
) -> tuple[Tensor, Tensor | None]:
    """Validate a batch against ``fitted``'s anchors, or against ``anchors`` when given."""
    xt = as_matrix(x, "x", cols="D")
    at = None
    if anchors is None:
        if not fitted.is_fitted:
            raise RuntimeError(
                "the projection has no anchors: call fit(anchors) first, or pass anchors to forward"
            )
        if xt.shape[1] != fitted.anchors.shape[1]:
            raise ValueError(
                f"x must have D={fitted.anchors.shape[1]} features like the fitted anchors, "
                f"got shape {tuple(xt.shape)}"
            )
        if xt.device != fitted.anchors.device:
            raise ValueError(
                f"x is on {xt.device} but the anchors are on {fitted.anchors.device}; move the "
                "module with .to(x.device)"
            )
    else:
        at = as_matrix(anchors, "anchors", rows="K", cols="D")
        check_pair(xt, at)
        if check_inputs:
            check_finite(at, "anchors")
    if check_inputs:
        check_finite(xt, "x")
    return xt, at


class RelativeProjection(nn.Module):
    """Relative representation of a batch with respect to fitted anchors: ``(N, D) -> (N, K)``.

    Computes ``relative_normalization(projection(n(x), n(anchors)))`` where ``n`` is the
    absolute ``normalization`` fitted on the anchors (see
    :func:`latentbridge.relative_projection`, which this module matches exactly).

    Args:
        projection: registered projection name.
        normalization: ``none``, ``center``, ``standard`` or ``l2`` (fitted on the anchors).
        relative_normalization: ``none``, ``l2`` or ``standardize``.
        anchors: optional ``(K, D)`` anchors to fit right away.
        check_inputs: check every batch for NaN/Inf (one device synchronisation per call).

    Buffers: ``anchors (K, D)``, ``shift (D,)`` and ``scale (D,)``. The buffers take whatever
    shape a loaded ``state_dict`` has, so an unfitted module can load a fitted one's state.
    """

    anchors: Tensor
    shift: Tensor
    scale: Tensor

    def __init__(
        self,
        projection: str = "cosine",
        normalization: str = "none",
        relative_normalization: str = "none",
        anchors: ArrayLike | None = None,
        *,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        _projections.get(projection)
        _norm.get_absolute(normalization)
        _norm.get_relative(relative_normalization)
        self.projection = projection
        self.normalization = normalization
        self.relative_normalization = relative_normalization
        self.check_inputs = check_inputs
        self.register_buffer("anchors", torch.empty(0, 0))
        self.register_buffer("shift", torch.empty(0))
        self.register_buffer("scale", torch.empty(0))
        # The (D, D) matrix of a whitening normalisation (fit_whitening), empty otherwise.
        self.register_buffer("whitening", torch.empty(0, 0))
        if anchors is not None:
            self.fit(anchors)

    # -- metadata -------------------------------------------------------------------------

    @property
    def invariances(self) -> frozenset[str]:
        """Transformation classes this configuration is invariant to; for a fitted ``whiten``
        module, only those that hold for its anchors (orthogonal and affine maps need an
        exact whitening, :func:`latentbridge.normalization.whitening_is_exact`)."""
        return _projections.effective_invariances(
            self.projection,
            self.normalization,
            self.relative_normalization,
            exact_whitening=self._exact_whitening(),
        )

    def _exact_whitening(self) -> bool:
        """False for a fitted whitening module whose anchors are not whitened exactly."""
        if not (self.is_fitted and _norm.get_absolute(self.normalization).whitens):
            return True
        return _norm.whitening_is_exact(self.anchors)

    @property
    def is_fitted(self) -> bool:
        return self.anchors.shape[0] > 0

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    @property
    def out_features(self) -> int:
        """Width of the output: the number of anchors (0 before :meth:`fit`)."""
        return self.num_anchors

    def extra_repr(self) -> str:
        return (
            f"projection={self.projection!r}, normalization={self.normalization!r}, "
            f"relative_normalization={self.relative_normalization!r}, "
            f"num_anchors={self.num_anchors}"
        )

    # -- fitting and stitching ------------------------------------------------------------

    def fit(self: _Self, anchors: ArrayLike) -> _Self:
        """Store ``anchors (K, D)`` and fit the normalisation on them; returns ``self``.

        Only buffers change, so calling it with another encoder's latents of the same anchor
        samples stitches the module. The anchors are stored detached, on the module's device.
        """
        self._fit_validated(_validated_anchors(anchors, self.anchors.device))
        return self

    def _fit_validated(self, anchors: Tensor) -> None:
        shift, scale = _norm.fit_absolute(self.normalization, anchors)
        self.anchors = anchors
        self.shift = shift
        self.scale = scale
        if _norm.get_absolute(self.normalization).whitens:
            self.whitening = _norm.fit_whitening(anchors)

    def with_anchors(self: _Self, anchors: ArrayLike) -> _Self:
        """A copy of this module fitted on ``anchors``: the zero-shot stitched module."""
        return copy.deepcopy(self).fit(anchors)

    # -- forward --------------------------------------------------------------------------

    def forward(self, x: ArrayLike, anchors: ArrayLike | None = None) -> Tensor:
        """Project ``x (N, D)`` onto the fitted anchors, or onto ``anchors`` if given.

        Passing ``anchors`` (e.g. the current encoder's latents of the anchor samples) fits the
        normalisation on them for this call only and keeps the graph, for end-to-end training.
        The output follows ``x``'s device and dtype.
        """
        xt, at = _check_batch(self, x, anchors, self.check_inputs)
        out = self._project(xt, at)
        if self.check_inputs:
            _projections.check_relative(out, self.projection)
        return out

    def _project(self, x: Tensor, anchors: Tensor | None, *, scale_free: bool = False) -> Tensor:
        """Project validated ``x``; ``anchors`` overrides the fitted ones (with a graph).

        ``scale_free``: see :func:`latentbridge.projections.project` (the product uses it).
        """
        out_dtype = x.dtype
        if anchors is None:
            dtype = compute_dtype(x.dtype)
            out = _projections.project(
                x.to(dtype),
                self.anchors.to(dtype),
                self.projection,
                self.normalization,
                self.relative_normalization,
                self.shift.to(dtype),
                self.scale.to(dtype),
                self.whitening.to(dtype) if self.whitening.numel() else None,
                scale_free=scale_free,
            )
        else:
            dtype = compute_dtype(x.dtype, anchors.dtype)
            out_dtype = torch.promote_types(x.dtype, anchors.dtype)
            out = _projections.project(
                x.to(dtype),
                anchors.to(dtype),
                self.projection,
                self.normalization,
                self.relative_normalization,
                scale_free=scale_free,
            )
        return out.to(out_dtype)

    # -- state ----------------------------------------------------------------------------

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # A state saved before the whitening buffer existed holds no whitening (none was used).
        if prefix + "anchors" in state_dict and prefix + "whitening" not in state_dict:
            state_dict[prefix + "whitening"] = torch.empty(0, 0)
        # The buffers' shapes depend on the anchors: adopt the incoming shapes before copying.
        for name in ("anchors", "shift", "scale", "whitening"):
            incoming = state_dict.get(prefix + name)
            if isinstance(incoming, Tensor):
                current: Tensor = getattr(self, name)
                setattr(self, name, current.new_empty(incoming.shape, dtype=incoming.dtype))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class ProductProjection(nn.Module):
    """Product of invariances: several relative subspaces on shared anchors, aggregated.

    ``x (N, D) -> (N, out_features)``. Each subspace is a :class:`RelativeProjection` over the
    same anchors; the ``aggregation`` (see :mod:`latentbridge.aggregations`) normalises each
    subspace with its own LayerNorm and combines them with learned weights.

    Args:
        projections: names, or configured :class:`RelativeProjection` modules (to give a
            subspace its own normalisation), at least one.
        aggregation: ``concat``, ``sum``, ``mlp_sum`` (default, the paper's best),
            ``self_attention``, ``weighted`` or a registered one.
        num_anchors: K, which sizes the aggregation's weights; inferred from ``anchors`` if given.
        anchors: optional ``(K, D)`` anchors to fit right away.
        normalization: the absolute normalisation of the subspaces given by name.
        relative_normalization: the relative normalisation of the subspaces given by name.
        check_inputs: check every batch for NaN/Inf.

    The output is computed in the dtype of the aggregation's parameters (``.double()`` for
    float64); :attr:`invariances` is the intersection of the subspaces' invariances, each with
    the LayerNorm of the aggregation applied.
    """

    def __init__(
        self,
        projections: Sequence[str | RelativeProjection] = _projections.PAPER_PRODUCT,
        aggregation: str = "mlp_sum",
        num_anchors: int | None = None,
        *,
        anchors: ArrayLike | None = None,
        normalization: str = "none",
        relative_normalization: str = "none",
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(projections, (str, RelativeProjection)) or not isinstance(
            projections, Sequence
        ):
            raise TypeError(
                "projections must be a sequence of projection names or RelativeProjection "
                f"modules, got {type(projections).__name__}"
            )
        if len(projections) == 0:
            raise ValueError("projections must name at least one projection, got none")
        subspaces = []
        for i, item in enumerate(projections):
            if isinstance(item, str):
                subspaces.append(
                    RelativeProjection(
                        item, normalization, relative_normalization, check_inputs=False
                    )
                )
            elif isinstance(item, RelativeProjection):
                subspaces.append(item)
            else:
                raise TypeError(
                    f"projections[{i}] must be a projection name or a RelativeProjection, got "
                    f"{type(item).__name__}"
                )
        validated = None
        if anchors is not None:
            validated = _validated_anchors(anchors, torch.device("cpu"))
            if num_anchors is None:
                num_anchors = int(validated.shape[0])
        if num_anchors is None:
            raise ValueError(
                "num_anchors is required to size the aggregation (or pass anchors to infer it)"
            )
        num_anchors = check_positive_int(num_anchors, "num_anchors")
        self.subspaces = nn.ModuleList(subspaces)
        self.aggregation: _aggregations.Aggregation = _aggregations.get(aggregation)(
            len(subspaces), num_anchors
        )
        self.aggregation_name = aggregation
        self.num_anchors = num_anchors
        self.check_inputs = check_inputs
        if validated is not None:
            self._fit_validated(validated)

    @property
    def parts(self) -> list[RelativeProjection]:
        """The subspaces, typed (``subspaces`` is the ``nn.ModuleList`` holding them)."""
        return [cast(RelativeProjection, s) for s in self.subspaces]

    @property
    def projections(self) -> tuple[str, ...]:
        return tuple(s.projection for s in self.parts)

    @property
    def out_features(self) -> int:
        return self.aggregation.out_features

    @property
    def is_fitted(self) -> bool:
        return all(s.is_fitted for s in self.parts)

    @property
    def invariances(self) -> frozenset[str]:
        """Intersection of the subspaces' invariances, after the aggregation's LayerNorm."""
        post = self.aggregation.subspace_normalization
        result: frozenset[str] | None = None
        for s in self.parts:
            rel = post if _norm.get_relative(post).removes_scale else s.relative_normalization
            inv = _projections.effective_invariances(
                s.projection, s.normalization, rel, exact_whitening=s._exact_whitening()
            )
            result = inv if result is None else result & inv
        return result if result is not None else frozenset()

    def extra_repr(self) -> str:
        return f"aggregation={self.aggregation_name!r}, num_anchors={self.num_anchors}"

    def fit(self: _P, anchors: ArrayLike) -> _P:
        """Fit every subspace on ``anchors (num_anchors, D)``; learned weights are untouched."""
        device = self.aggregation.norm_weight.device
        self._fit_validated(_validated_anchors(anchors, device))
        return self

    def _fit_validated(self, anchors: Tensor) -> None:
        if anchors.shape[0] != self.num_anchors:
            raise ValueError(
                f"anchors must hold num_anchors={self.num_anchors} anchors, got {anchors.shape[0]}"
            )
        for s in self.parts:
            s._fit_validated(anchors.to(s.anchors.device))

    def with_anchors(self: _P, anchors: ArrayLike) -> _P:
        """A copy fitted on ``anchors`` with the same learned weights: the stitched module."""
        return copy.deepcopy(self).fit(anchors)

    def relative(self, x: ArrayLike, anchors: ArrayLike | None = None) -> Tensor:
        """The stacked relative subspaces before aggregation, ``(N, S, K)``."""
        out = self._relative(x, anchors, scale_free=False)
        if self.check_inputs:
            for s, part in zip(self.parts, out.unbind(dim=1), strict=True):
                _projections.check_relative(part, s.projection)
        return out

    def _relative(self, x: ArrayLike, anchors: ArrayLike | None, *, scale_free: bool) -> Tensor:
        if anchors is not None:
            at = as_matrix(anchors, "anchors", rows="K", cols="D")
            if at.shape[0] != self.num_anchors:
                raise ValueError(
                    f"anchors must hold num_anchors={self.num_anchors} anchors, got {at.shape[0]}"
                )
        parts = self.parts
        if anchors is None and not all(s.is_fitted for s in parts):
            raise RuntimeError("ProductProjection has no anchors: call fit(anchors) first")
        xt, at_checked = _check_batch(parts[0], x, anchors, self.check_inputs)
        return torch.stack(
            [s._project(xt, at_checked, scale_free=scale_free) for s in parts], dim=1
        )

    def forward(self, x: ArrayLike, anchors: ArrayLike | None = None) -> Tensor:
        """Aggregate the relative subspaces of ``x (N, D)``: ``(N, out_features)``.

        The aggregation's LayerNorm removes a positive scale of each subspace, so the subspaces
        are computed scale-free (see :func:`latentbridge.projections.project`): the output is
        the same at any magnitude of the inputs that their dtype holds, denormals included, and
        a float64 input to a float32 module does not overflow when cast.
        """
        relative = self._relative(x, anchors, scale_free=True)
        relative = relative.to(self.aggregation.norm_weight.dtype)
        if self.check_inputs:
            for s, part in zip(self.parts, relative.unbind(dim=1), strict=True):
                _projections.check_relative(part, s.projection)
        return self.aggregation(relative)
