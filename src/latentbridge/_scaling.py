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

__all__ = [
    "exponent",
    "ldexp",
    "max_abs",
    "pow2_exponent",
    "pow2_factors",
    "pow2_floor",
    "times_pow2",
]

# Bytes of one float64 working block when scanning large inputs (32 MiB).
_BLOCK_BYTES = 1 << 25


def pow2_exponent(magnitude: Tensor) -> Tensor:
    """``floor(log2(magnitude))`` elementwise as integers (0 where ``magnitude`` is 0 or not
    finite), so ``magnitude / 2**result`` lies in ``[1, 2)``."""
    _, exponent = torch.frexp(magnitude)  # magnitude = mantissa * 2**exponent, mantissa in [.5, 1)
    valid = (magnitude > 0) & torch.isfinite(magnitude)
    return torch.where(valid, exponent - 1, torch.zeros_like(exponent))


def pow2_floor(magnitude: Tensor) -> Tensor:
    """``2 ** floor(log2(magnitude))`` elementwise, so ``magnitude / result`` lies in ``[1, 2)``.

    The result is 1 where ``magnitude`` is 0 or not finite. It is representable for every
    positive finite input, denormals included (the largest is ``2 ** 127`` in float32).
    """
    return torch.ldexp(torch.ones_like(magnitude), pow2_exponent(magnitude))


def times_pow2(t: Tensor, exponent: Tensor) -> Tensor:
    """``t * 2**exponent`` elementwise (broadcast), exact unless the result leaves the dtype.

    Applied in two halves of the same sign, so no factor overflows or underflows on its own
    where the product would not (``2**250 * 2**-200`` is computed, not ``inf * 0``).
    """
    half = torch.div(exponent, 2, rounding_mode="floor")
    one = torch.ones_like(half, dtype=t.dtype)
    # Multiplications by constant powers of two, so that autograd differentiates t exactly
    # (torch.ldexp's own backward does not propagate to its input).
    return t * torch.ldexp(one, half) * torch.ldexp(one, exponent - half)


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


def pow2_factors(k: int, dtype: torch.dtype = torch.float64) -> list[float]:
    """Factors, each a normal number of ``dtype`` (at most ``2^±126`` in float32, ``2^±1000``
    in float64), whose product is ``2^k``."""
    limit = min(1000, int(math.log2(torch.finfo(dtype).max)) - 1)
    factors = []
    while k != 0:
        step = max(-limit, min(limit, k))
        factors.append(2.0**step)
        k -= step
    return factors


def ldexp(t: Tensor, k: int) -> Tensor:
    """``t * 2^k``, exact unless the result leaves the dtype's range (a new tensor unless
    ``k == 0``)."""
    for factor in pow2_factors(k, t.dtype):
        t = t * factor
    return t
