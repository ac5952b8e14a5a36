"""Exact power-of-two rescaling, so that intermediate values neither overflow nor underflow.

Multiplying or dividing a floating-point number by a power of two changes only its exponent, so
it is exact unless the result leaves the dtype's normal range. Computing ``f(x / s) * s**p`` for a
function homogeneous of degree ``p`` therefore gives bit for bit the same result as ``f(x)``
wherever ``f(x)`` is computed without overflow or underflow, and a finite, correct one where the
unscaled computation would overflow (squares of ``1e30`` in float32) or underflow (squares of
``1e-30``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["max_abs", "pow2_floor"]


def pow2_floor(magnitude: Tensor) -> Tensor:
    """``2 ** floor(log2(magnitude))`` elementwise, so ``magnitude / result`` lies in ``[1, 2)``.

    The result is 1 where ``magnitude`` is 0 or not finite. It is representable for every
    positive finite input, denormals included (the largest is ``2 ** 127`` in float32).
    """
    _, exponent = torch.frexp(magnitude)  # magnitude = mantissa * 2**exponent, mantissa in [.5, 1)
    one = torch.ones_like(magnitude)
    scale = torch.ldexp(one, exponent - 1)
    return torch.where((magnitude > 0) & torch.isfinite(magnitude), scale, one)


def max_abs(*tensors: Tensor) -> Tensor:
    """The largest absolute value over all ``tensors`` (0-d, detached; 0 when all are empty)."""
    peaks = [t.detach().abs().amax() for t in tensors if t.numel() > 0]
    if not peaks:
        return torch.zeros((), dtype=tensors[0].dtype, device=tensors[0].device)
    return torch.stack(peaks).amax()
