"""Synthetic latent spaces related by a known transformation: the paper's toy setting.

:func:`make_spaces` draws a labelled Gaussian-mixture "latent space" A and maps it to a second
space B with a random member of each requested transformation class (applied in the given
order), plus optional isotropic noise. A stitching method that is invariant to those classes
should transfer a head trained on A to B without loss; one that is not should degrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._validation import check_positive_int
from .transformations import AffineMap, compose, random_transformation, validate_classes

__all__ = ["SyntheticSpaces", "make_spaces"]


@dataclass(frozen=True)
class SyntheticSpaces:
    """Two parallel spaces: ``x_b = transform(x_a) + noise``, with shared ``labels``."""

    x_a: Tensor
    x_b: Tensor
    labels: Tensor
    transform: AffineMap


def make_spaces(
    num_samples: int = 3000,
    dim: int = 32,
    num_classes: int = 10,
    transformations: Sequence[str] = ("orthogonal", "translation"),
    *,
    separation: float = 1.5,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> SyntheticSpaces:
    """Draw space A and its transformed copy B.

    Space A: class means ``separation * N(0, I)``, samples ``mean + N(0, diag(s)^2) R`` with
    log-uniform scales ``s`` and a random rotation ``R`` shared by all classes, everything
    offset from the origin (as uncentred embeddings are). Labels are balanced.

    Args:
        transformations: classes from :data:`~latentbridge.transformations.TRANSFORMATIONS`,
            applied in order; empty for B = A (plus noise).
        noise: standard deviation of isotropic Gaussian noise added to B, relative to the
            average per-coordinate standard deviation of A.
        seed: everything is drawn from ``torch.Generator().manual_seed(seed)``.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    dim = check_positive_int(dim, "dim")
    num_classes = check_positive_int(num_classes, "num_classes")
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got {dim}")
    if num_samples < num_classes:
        raise ValueError(f"num_samples={num_samples} must be at least num_classes={num_classes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    validate_classes(transformations, "transformations")
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    means = separation * torch.randn(num_classes, dim, generator=g, dtype=f64)
    scales = torch.exp(torch.empty(dim, dtype=f64).uniform_(-0.5, 0.5, generator=g))
    rotation = random_transformation("orthogonal", dim, generator=g).weight
    offset = 3.0 * torch.randn(dim, generator=g, dtype=f64)
    labels = torch.arange(num_samples) % num_classes
    labels = labels[torch.randperm(num_samples, generator=g)]
    z = torch.randn(num_samples, dim, generator=g, dtype=f64)
    x_a = means[labels] + (z * scales) @ rotation + offset
    maps = [random_transformation(kind, dim, generator=g) for kind in transformations]
    identity = AffineMap("identity", torch.eye(dim, dtype=f64), torch.zeros(dim, dtype=f64))
    transform = compose(*maps) if maps else identity
    x_b = transform(x_a)
    if noise > 0:
        spread = x_b.std(dim=0).mean()
        x_b = x_b + noise * spread * torch.randn(num_samples, dim, generator=g, dtype=f64)
    return SyntheticSpaces(x_a.to(dtype), x_b.to(dtype), labels, transform)
