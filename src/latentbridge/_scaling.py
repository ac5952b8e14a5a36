"""Exact power-of-two rescaling, so that intermediate values neither overflow nor underflow.

Multiplying or dividing a floating-point number by a power of two changes only its exponent, so
it is exact unless the result leaves the dtype's normal range. Computing ``f(x / s) * s**p`` for a
function homogeneous of degree ``p`` therefore gives bit for bit the same result as ``f(x)``
wherever ``f(x)`` is computed without overflow or underflow, and a finite, correct one where the
unscaled computation would overflow (squares of ``1e30`` in float32) or underflow (squares of
``1e-30``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["exponent", "ldexp", "max_abs", "pow2_factors", "pow2_floor"]

# Bytes of one float64 working block when scanning large inputs (32 MiB).
_BLOCK_BYTES = 1 << 25


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


def exponent(t: Tensor) -> int:
    """The binary exponent ``k`` of ``t``'s largest magnitude: ``max|t| / 2^k`` is in [1, 2)
    (0 for an all-zero or empty ``t``). Scanned in row blocks; ``t`` must be finite."""
    if t.numel() == 0:
        return 0
    rows = t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(-1, 1)
    step = max(1, _BLOCK_BYTES // (8 * max(rows.shape[1], 1)))
    peak = max(
        float(rows[start : start + step].detach().abs().amax())
        for start in range(0, rows.shape[0], step)
    )
    return math.frexp(peak)[1] - 1 if peak > 0 else 0


def pow2_factors(k: int) -> list[float]:
    """Normal float64 factors (at most ``2^±1000`` each) whose product is ``2^k``."""
    factors = []
    while k != 0:
        step = max(-1000, min(1000, k))
        factors.append(2.0**step)
        k -= step
    return factors


def ldexp(t: Tensor, k: int) -> Tensor:
    """``t * 2^k``, exact unless the result leaves the dtype's range (a new tensor unless
    ``k == 0``)."""
    for factor in pow2_factors(k):
        t = t * factor
    return t
