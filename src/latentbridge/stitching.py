"""Anchor consistency: a label-free estimate, at stitching time, of whether a model trained on
space A transfers zero-shot to space B.

Zero-shot stitching assumes *parallel anchors*: the same K samples encoded by A,
``anchors_a (K, D_A)`` with rows ``a_k``, and by B, ``anchors_b (K, D_B)`` with rows ``b_k``. A
model trained on A is a relative layer ``r`` (a :class:`~latentbridge.RelativeProjection` or
:class:`~latentbridge.ProductProjection`) followed by a head ``h``; stitched to B it is
``h(r_B(.))`` with ``r_B = r.with_anchors(anchors_b)``. Fed each space's own anchors, each side
of the model gives an output per anchor,

    o^A_k = h(r_A(a_k)),    o^B_k = h(r_B(b_k)),    r_S = r.with_anchors(anchors_S),

and the two sides must agree wherever the relative representations of A and B agree. How often
they agree needs no label and no training on B (:func:`anchor_outputs` computes the two sides):

- :func:`prediction_agreement` (classification; the anchor consistency), in [0, 1]:
  ``(1/K) sum_k [argmax_c o^A_kc = argmax_c o^B_kc]``;
- :func:`soft_prediction_agreement`, in [0, 1]: ``1 - (1/K) sum_k TV(p^A_k, p^B_k)`` with
  ``p = softmax(o)`` and ``TV(p, q) = 1/2 sum_c |p_c - q_c|``;
- :func:`output_agreement` (regression, reconstruction), in (0, 1]:
  ``1 / (1 + MSE(o^A, o^B) / V)`` with ``V = (Var(o^A) + Var(o^B)) / 2``;
- :func:`node_agreement` (node classification): :func:`prediction_agreement` on the anchor
  nodes.

:func:`anchor_consistency` is the main number: the hard agreement of a model given as layer and
head, ``prediction_agreement(*anchor_outputs(layer, head, anchors_a, anchors_b))``.

What to expect:

- **1** when the layer is invariant to the transformation relating A and B (``b_k = T(a_k)``
  with ``T`` in ``layer.invariances``): then ``r_A(a_k) = r_B(b_k)`` and both sides compute the
  same outputs, whatever the head. A value below 1 says that B's relative space differs from A's
  where the head's decisions are made.
- **Chance** when the anchors are not parallel (``b_k`` is not the sample ``a_k``): the two
  predictions are then unrelated and agree at about the rate ``sum_c P(class c on A) P(class c
  on B)``, ``1/C`` for balanced predictions over C classes (a finite K adds a fluctuation of
  order ``1/sqrt(K)``).

Every measure returns a Python ``float``, computed without gradients; the inputs are validated
at the boundary (shapes, the same K on both sides, finite values, one device). Nothing is
computed at import; the module needs only torch and numpy.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ._scaling import exponent, ldexp
from ._validation import ArrayLike, as_matrix, as_tensor, check_features, check_finite
from .modules import ProductProjection, RelativeProjection

__all__ = [
    "ENSEMBLE_TEMPERATURE",
    "anchor_consistency",
    "anchor_outputs",
    "consistency_ensemble",
    "consistency_weights",
    "node_agreement",
    "output_agreement",
    "prediction_agreement",
    "select_by_consistency",
    "soft_anchor_consistency",
    "soft_prediction_agreement",
]

Head = Callable[[Tensor], Tensor]
Layer = RelativeProjection | ProductProjection

_F64 = torch.float64


# --------------------------------------------------------------------------------------------
# Validation.


def _check_anchor_pair(layer: Layer, anchors_a: ArrayLike, anchors_b: ArrayLike) -> None:
    """Both anchor sets ``(K, D_S)``, the same K (the layer's ``num_anchors`` for a product)."""
    shapes = []
    for name, value, cols in (("anchors_a", anchors_a, "D_A"), ("anchors_b", anchors_b, "D_B")):
        tensor = as_matrix(value, name, rows="K", cols=cols)
        if tensor.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one anchor, got shape (0, {cols})")
        check_features(tensor, name)
        check_finite(tensor, name)
        shapes.append(tuple(tensor.shape))
    (k_a, _), (k_b, _) = shapes
    if k_a != k_b:
        raise ValueError(
            "anchors_a and anchors_b must be the same K samples in the two spaces (parallel "
            f"anchors), got K={k_a} and K={k_b}"
        )
    if isinstance(layer, ProductProjection) and k_a != layer.num_anchors:
        raise ValueError(
            f"anchors_a and anchors_b must hold the layer's num_anchors={layer.num_anchors} "
            f"anchors, got K={k_a}"
        )


def _check_output(value: object, name: str, num_anchors: int) -> Tensor:
    """A head's output: a floating tensor with one row per anchor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    tensor = as_tensor(value, name)
    if tensor.ndim == 0 or tensor.shape[0] != num_anchors:
        raise ValueError(
            f"{name} must have one row per anchor, shape ({num_anchors}, ...), got shape "
            f"{tuple(tensor.shape)}"
        )
    return tensor


def _logit_pair(logits_a: object, logits_b: object) -> tuple[Tensor, Tensor]:
    """Validate two ``(K, C)`` logit matrices of one shape, C >= 2, finite, on one device."""
    at = as_matrix(logits_a, "logits_a", rows="K", cols="C")
    bt = as_matrix(logits_b, "logits_b", rows="K", cols="C")
    if at.shape != bt.shape:
        raise ValueError(
            "logits_a and logits_b must have the same shape (K, C), got "
            f"{tuple(at.shape)} and {tuple(bt.shape)}"
        )
    if at.shape[0] == 0:
        raise ValueError("logits_a and logits_b must hold at least one anchor, got K=0")
    if at.shape[1] < 2:
        raise ValueError(
            f"logits_a and logits_b must score at least two classes (C >= 2), got C={at.shape[1]}"
        )
    _same_device(at, bt, "logits_a", "logits_b")
    check_finite(at, "logits_a")
    check_finite(bt, "logits_b")
    return at.detach(), bt.detach()


def _same_device(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.device != b.device:
        raise ValueError(
            f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}"
        )


# --------------------------------------------------------------------------------------------
# The two sides of a stitched model on the anchors.


def _eval_outputs(module: Layer, head: Head, anchors: ArrayLike) -> Tensor:
    """``head(module(anchors))`` in eval mode; the head's training flags are restored."""
    modules = list(head.modules()) if isinstance(head, nn.Module) else []
    flags = [m.training for m in modules]
    module.eval()
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            return head(module(anchors))
    finally:
        for m, flag in zip(modules, flags, strict=True):
            m.train(flag)


def anchor_outputs(
    layer: Layer, head: Head, anchors_a: ArrayLike, anchors_b: ArrayLike
) -> tuple[Tensor, Tensor]:
    """The outputs ``(o^A, o^B)`` of a model on each space's own parallel anchors.

    ``o^S = head(layer.with_anchors(anchors_S)(anchors_S))`` for ``S`` in A, B: side A is the
    model as trained on A, side B the zero-shot stitched model, each fitted on its own space's
    anchors (``layer`` itself, fitted or not, is left unchanged).

    Args:
        layer: the model's relative layer, a :class:`~latentbridge.RelativeProjection` or a
            :class:`~latentbridge.ProductProjection` (K must be its ``num_anchors``).
        head: any callable (an ``nn.Module``, a function) mapping the layer's output
            ``(K, out_features)`` to the model's output ``(K, ...)``: logits for a classifier,
            a decoding for a regressor or a decoder. It receives the layer's output as is, so
            give the anchors in the dtype the head expects.
        anchors_a: ``(K, D_A)`` the anchors in space A.
        anchors_b: ``(K, D_B)`` the same K samples in space B.

    Returns:
        ``(o^A, o^B)``, each ``(K, ...)``, detached. Computed without gradients, the head in
        eval mode (no dropout) and its training flags restored afterwards.

    Raises:
        TypeError: ``layer`` is not a relative layer, ``head`` is not callable or does not
            return a floating tensor; non-floating anchors.
        ValueError: anchors that are not 2-D, empty, non-finite or of different K; a head output
            without one row per anchor.
    """
    if not isinstance(layer, (RelativeProjection, ProductProjection)):
        raise TypeError(
            f"layer must be a RelativeProjection or a ProductProjection, got {type(layer).__name__}"
        )
    if not callable(head):
        raise TypeError(f"head must be callable (e.g. an nn.Module), got {type(head).__name__}")
    _check_anchor_pair(layer, anchors_a, anchors_b)
    num_anchors = int(anchors_a.shape[0])
    outputs = []
    for side, anchors in (("a", anchors_a), ("b", anchors_b)):
        out = _eval_outputs(layer.with_anchors(anchors), head, anchors)
        outputs.append(_check_output(out, f"the head's output on anchors_{side}", num_anchors))
    return outputs[0].detach(), outputs[1].detach()


def anchor_consistency(
    layer: Layer, head: Head, anchors_a: ArrayLike, anchors_b: ArrayLike
) -> float:
    """Anchor consistency of a classifier: the fraction of the K parallel anchors on which the
    model trained on A and its zero-shot stitched copy on B predict the same class,

        (1/K) sum_k [argmax_c h(r_A(a_k))_c = argmax_c h(r_B(b_k))_c],

    with ``r_S = layer.with_anchors(anchors_S)`` (see :func:`anchor_outputs` for the arguments
    and errors, :func:`prediction_agreement` for the ties). Label-free: 1 when ``layer`` is
    invariant to the map relating A and B, chance level for anchors that are not parallel.
    """
    return prediction_agreement(*anchor_outputs(layer, head, anchors_a, anchors_b))


def soft_anchor_consistency(
    layer: Layer, head: Head, anchors_a: ArrayLike, anchors_b: ArrayLike
) -> float:
    """The soft anchor consistency: :func:`soft_prediction_agreement` of the two sides'
    logits on the anchors (see :func:`anchor_outputs` for the arguments and errors)."""
    return soft_prediction_agreement(*anchor_outputs(layer, head, anchors_a, anchors_b))


# --------------------------------------------------------------------------------------------
# Agreement of computed outputs.


def prediction_agreement(logits_a: ArrayLike, logits_b: ArrayLike) -> float:
    """The fraction of the K anchors on which the two sides predict the same class,
    ``(1/K) sum_k [argmax_c logits_a[k, c] = argmax_c logits_b[k, c]]``, in [0, 1].

    ``logits_a`` and ``logits_b`` are ``(K, C)`` scores with C >= 2: logits, probabilities or
    any scores whose per-row argmax is the prediction. A tie is broken towards the lowest class
    index on both sides, so equal scores always agree. O(K C).

    Raises:
        TypeError: non-floating input.
        ValueError: inputs not 2-D, of different shapes, with K = 0 or C < 2, non-finite, or on
            different devices.
    """
    at, bt = _logit_pair(logits_a, logits_b)
    same = at.argmax(dim=1) == bt.argmax(dim=1)
    return float(same.to(_F64).mean())


def soft_prediction_agreement(logits_a: ArrayLike, logits_b: ArrayLike) -> float:
    """One minus the mean total-variation distance of the two sides' predicted distributions,

        1 - (1/K) sum_k TV(p^A_k, p^B_k),   p_k = softmax(logits[k]),
        TV(p, q) = 1/2 sum_c |p_c - q_c|,

    in [0, 1]: 1 exactly when the two sides predict the same distribution on every anchor, 0
    when they put their mass on disjoint classes. Unlike :func:`prediction_agreement` it also
    sees changes of confidence that do not flip a prediction. ``logits_a`` and ``logits_b`` are
    ``(K, C)`` logits (unnormalised log-probabilities), C >= 2; computed in float64, O(K C).

    Raises:
        TypeError: non-floating input.
        ValueError: as :func:`prediction_agreement`.
    """
    at, bt = _logit_pair(logits_a, logits_b)
    pa = torch.softmax(at.to(_F64), dim=1)
    pb = torch.softmax(bt.to(_F64), dim=1)
    tv = 0.5 * (pa - pb).abs().sum(dim=1)
    return float((1.0 - tv.mean()).clamp(0.0, 1.0))


def output_agreement(outputs_a: ArrayLike, outputs_b: ArrayLike) -> float:
    """Scale-free agreement of two sides' outputs on the K anchors (regression, reconstruction),

        1 / (1 + MSE / V),   MSE = (1/(K F)) sum_{k,f} (o^A_kf - o^B_kf)^2,
        V = (Var(o^A) + Var(o^B)) / 2,   Var(o) = (1/(K F)) sum_{k,f} (o_kf - mean_j o_jf)^2,

    where each output ``o_k`` is flattened to F values. In (0, 1]: 1 exactly for identical
    outputs; ``1/3`` in expectation for outputs independent of each other with the same
    distribution (then ``MSE = 2 V``), and at most ``1/3`` when one side is constant (a collapsed
    decoder). ``MSE / V`` is a normalised MSE, so the value is unchanged when both sides are
    rescaled by one factor and shifted by one offset per output feature (pixel units, a
    standardised target); ``10 log10(V / MSE)`` is the PSNR with ``V`` as the peak power, for
    users who prefer decibels. Computed in float64 at unit magnitude, O(K F).

    Args:
        outputs_a: ``(K, ...)`` the outputs of side A (e.g. decoded images ``(K, C, H, W)``).
        outputs_b: the outputs of side B, of the same shape.

    Raises:
        TypeError: non-floating input.
        ValueError: different shapes, K < 2, no output feature, non-finite values, different
            devices, or both sides constant over the anchors (V = 0: the agreement is undefined).
    """
    at = as_tensor(outputs_a, "outputs_a")
    bt = as_tensor(outputs_b, "outputs_b")
    if at.shape != bt.shape:
        raise ValueError(
            "outputs_a and outputs_b must have the same shape (K, ...), got "
            f"{tuple(at.shape)} and {tuple(bt.shape)}"
        )
    if at.ndim == 0 or at.shape[0] < 2:
        raise ValueError(
            "outputs_a and outputs_b need at least 2 anchors (rows) to measure their spread, got "
            f"shape {tuple(at.shape)}"
        )
    if at[0].numel() == 0:
        raise ValueError(f"outputs_a and outputs_b hold no output feature, got {tuple(at.shape)}")
    _same_device(at, bt, "outputs_a", "outputs_b")
    check_finite(at, "outputs_a")
    check_finite(bt, "outputs_b")
    # One power of two for both sides: exact, and the ratio MSE / V does not depend on it.
    k = max(exponent(at), exponent(bt))
    a64 = ldexp(at.detach().reshape(at.shape[0], -1).to(_F64), -k)
    b64 = ldexp(bt.detach().reshape(bt.shape[0], -1).to(_F64), -k)
    mse = (a64 - b64).square().mean()
    spread = 0.5 * (
        (a64 - a64.mean(dim=0)).square().mean() + (b64 - b64.mean(dim=0)).square().mean()
    )
    if not bool(spread > 0):
        raise ValueError(
            "outputs_a and outputs_b are both constant over the anchors (zero variance), so "
            "their scale-free agreement is undefined"
        )
    return float(1.0 / (1.0 + mse / spread))


def _node_indices(anchor_nodes: object, num_nodes: int) -> Tensor:
    """``anchor_nodes`` (indices ``(K,)`` or a boolean mask ``(N,)``) as unique indices."""
    if isinstance(anchor_nodes, np.ndarray):
        if anchor_nodes.dtype.kind not in "biu":
            raise TypeError(
                "anchor_nodes must hold integer node indices or booleans, got numpy dtype "
                f"{anchor_nodes.dtype}"
            )
        anchor_nodes = torch.from_numpy(np.ascontiguousarray(anchor_nodes))
    if not isinstance(anchor_nodes, Tensor):
        raise TypeError(
            "anchor_nodes must be a torch.Tensor or a numpy.ndarray of node indices or a "
            f"boolean mask, got {type(anchor_nodes).__name__}"
        )
    if anchor_nodes.is_floating_point() or anchor_nodes.is_complex():
        raise TypeError(
            "anchor_nodes must hold integer node indices or booleans, got torch dtype "
            f"{anchor_nodes.dtype}"
        )
    if anchor_nodes.ndim != 1:
        raise ValueError(f"anchor_nodes must be 1-D, got shape {tuple(anchor_nodes.shape)}")
    if anchor_nodes.dtype == torch.bool:
        if anchor_nodes.shape[0] != num_nodes:
            raise ValueError(
                f"a boolean anchor_nodes must mark each of the N={num_nodes} nodes, got "
                f"{anchor_nodes.shape[0]} entries"
            )
        anchor_nodes = anchor_nodes.nonzero().squeeze(1)
    idx = anchor_nodes.to(torch.long)
    if idx.numel() == 0:
        raise ValueError("anchor_nodes must select at least one node, got none")
    low, high = int(idx.min()), int(idx.max())
    if low < 0 or high >= num_nodes:
        raise ValueError(
            f"anchor_nodes must be node indices in [0, {num_nodes - 1}], got values in "
            f"[{low}, {high}]"
        )
    if torch.unique(idx).numel() != idx.numel():
        raise ValueError(
            f"anchor_nodes must not repeat a node, got {idx.numel() - torch.unique(idx).numel()} "
            "repeated index(es)"
        )
    return idx


def node_agreement(logits_a: ArrayLike, logits_b: ArrayLike, anchor_nodes: ArrayLike) -> float:
    """Anchor consistency of a node classifier: :func:`prediction_agreement` on the anchor nodes.

    ``logits_a`` and ``logits_b`` are ``(N, C)`` node logits of one graph: side A the model
    trained on A, side B its zero-shot stitched copy (B's node embeddings, A's head, the anchors
    embedded by B). ``anchor_nodes`` selects the K anchor nodes, as indices ``(K,)`` (unique, in
    ``[0, N)``) or a boolean mask ``(N,)``; the result is
    ``(1/K) sum_{k in anchor_nodes} [argmax_c logits_a[k, c] = argmax_c logits_b[k, c]]``.

    Raises:
        TypeError: non-floating logits; ``anchor_nodes`` neither integer nor boolean.
        ValueError: as :func:`prediction_agreement`, or ``anchor_nodes`` not 1-D, empty, out of
            range or repeating a node.
    """
    at, bt = _logit_pair(logits_a, logits_b)
    idx = _node_indices(anchor_nodes, int(at.shape[0])).to(at.device)
    return prediction_agreement(at[idx], bt[idx])


# --------------------------------------------------------------------------------------------
# Zero-shot selection among candidate models.

#: The temperature ``T`` of :func:`consistency_weights`: the candidates' weights are
#: ``softmax(c / T)`` of their anchor consistencies ``c``; a candidate whose consistency is 0.05
#: higher weighs ``e^2.5 ~ 12`` times more. Chosen once, on the built-in classification configs,
#: and never per dataset: ``benchmarks/ensemble_temperature.py`` over quick, text, vision and
#: synthetic (six datasets) gave the same best mean stitched accuracy, to three decimals, for
#: ``T`` in {0.005, 0.01, 0.02}, and the largest of them (the smoothest weighting) was taken
#: (see the README's "Zero-shot selection").
ENSEMBLE_TEMPERATURE = 0.02


def _float_vector(value: ArrayLike | Sequence[float], name: str) -> Tensor:
    """A sequence of numbers, an array or a tensor as a float64 tensor."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{name} must hold numbers")
        return torch.tensor(value, dtype=_F64)
    return as_tensor(value, name).to(_F64)


def _consistency_vector(consistencies: ArrayLike | Sequence[float]) -> Tensor:
    c = _float_vector(consistencies, "consistencies")
    if c.ndim != 1 or c.numel() == 0:
        raise ValueError(
            f"consistencies must be a non-empty 1-D sequence (one per candidate), got shape "
            f"{tuple(c.shape)}"
        )
    check_finite(c, "consistencies")
    return c


def select_by_consistency(consistencies: ArrayLike | Sequence[float]) -> int:
    """The index of the candidate with the highest anchor consistency (the first on ties):
    the zero-shot ``selected`` model among several trained on A and stitched to B.

    Raises:
        ValueError: ``consistencies`` empty, not 1-D or not finite.
    """
    c = _consistency_vector(consistencies)
    return int((c == c.max()).nonzero()[0])


def consistency_weights(
    consistencies: ArrayLike | Sequence[float], temperature: float = ENSEMBLE_TEMPERATURE
) -> Tensor:
    """``w = softmax(c / T)``, float64, one weight per candidate: the ``ensemble``'s weights.

    Equal consistencies give equal weights; ``T -> 0`` tends to :func:`select_by_consistency`
    (split among ties), ``T -> inf`` to the plain average.

    Raises:
        ValueError: ``consistencies`` empty, not 1-D or not finite; ``temperature`` not a finite
            positive number.
    """
    c = _consistency_vector(consistencies)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return torch.softmax(c / float(temperature), dim=0)


def consistency_ensemble(
    logits: Sequence[ArrayLike], weights: ArrayLike | Sequence[float]
) -> Tensor:
    """``sum_c w_c softmax(logits_c)``: the candidates' predicted class probabilities averaged
    with ``weights`` (e.g. :func:`consistency_weights`), float64, ``(N, C)``.

    Raises:
        ValueError: no candidate, a weight per candidate missing, logits of different shapes,
            weights negative or not summing to 1, non-finite values.
    """
    w = _float_vector(weights, "weights")
    if not logits or w.ndim != 1 or w.numel() != len(logits):
        raise ValueError(
            f"weights must hold one weight per candidate ({len(logits)}), got shape "
            f"{tuple(w.shape)}"
        )
    check_finite(w, "weights")
    if bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-9:
        raise ValueError("weights must be non-negative and sum to 1")
    out: Tensor | None = None
    for i, item in enumerate(logits):
        x = as_matrix(item, f"logits[{i}]", rows="N", cols="C")
        check_finite(x, f"logits[{i}]")
        if out is not None and x.shape != out.shape:
            raise ValueError(
                f"logits[{i}] has shape {tuple(x.shape)}, logits[0] {tuple(out.shape)}"
            )
        p = w[i] * torch.softmax(x.to(_F64), dim=1)
        out = p if out is None else out + p
    assert out is not None
    return out
