"""Aggregations of relative subspaces into one product representation.

Every aggregation receives the ``S`` relative subspaces of a batch stacked as ``(N, S, K)``
and first normalises each subspace with its own LayerNorm over the ``K`` anchor coordinates
(standardisation, then a learned per-subspace affine map), as in the paper's implementation.

==================  ==========================================================  ==============
name                after the per-subspace LayerNorm                            out_features
==================  ==========================================================  ==============
``concat``          concatenate the subspaces                                   ``S * K``
``sum``             sum the subspaces                                           ``K``
``mlp_sum``         Linear(K, K) -> Tanh per subspace, then sum (a DeepSet)     ``K``
``self_attention``  the subspaces are the tokens of a one-head attention with   ``K``
                    embedding size K; sum over the tokens
``weighted``        softmax-weighted sum with one learned logit per subspace    ``K``
==================  ==========================================================  ==============

Because the learned weights are shared by every input and the LayerNorm removes a positive
scale and a shift of each subspace, the product is invariant to a transformation class when
every subspace, standardised, is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._validation import check_choice, check_positive_int
from .normalization import standardize_rows

__all__ = [
    "Aggregation",
    "Concat",
    "MLPSum",
    "SelfAttention",
    "Sum",
    "Weighted",
    "available",
    "get",
    "register",
    "unregister",
]


class Aggregation(nn.Module):
    """Base class: per-subspace LayerNorm, then :meth:`combine` of ``(N, S, K)``.

    Subclasses set ``out_features`` and implement ``combine``. ``subspace_normalization``
    names the relative normalisation the LayerNorm applies (used to report invariances).
    """

    subspace_normalization: str = "standardize"
    out_features: int

    def __init__(self, num_subspaces: int, num_anchors: int) -> None:
        super().__init__()
        self.num_subspaces = check_positive_int(num_subspaces, "num_subspaces")
        self.num_anchors = check_positive_int(num_anchors, "num_anchors")
        shape = (self.num_subspaces, self.num_anchors)
        self.norm_weight = nn.Parameter(torch.ones(shape))
        self.norm_bias = nn.Parameter(torch.zeros(shape))
        self.out_features = self.num_anchors

    def normalize(self, relative: Tensor) -> Tensor:
        """The per-subspace LayerNorm of ``(N, S, K)``."""
        return standardize_rows(relative) * self.norm_weight + self.norm_bias

    def combine(self, normalized: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, relative: Tensor) -> Tensor:
        expected = (self.num_subspaces, self.num_anchors)
        if relative.ndim != 3 or tuple(relative.shape[1:]) != expected:
            raise ValueError(
                f"relative must have shape (N, {expected[0]}, {expected[1]}), got "
                f"{tuple(relative.shape)}"
            )
        return self.combine(self.normalize(relative))

    def extra_repr(self) -> str:
        return f"num_subspaces={self.num_subspaces}, num_anchors={self.num_anchors}"


class Concat(Aggregation):
    """LayerNorm per subspace, then concatenation: ``(N, S * K)``."""

    def __init__(self, num_subspaces: int, num_anchors: int) -> None:
        super().__init__(num_subspaces, num_anchors)
        self.out_features = num_subspaces * num_anchors

    def combine(self, normalized: Tensor) -> Tensor:
        return normalized.flatten(start_dim=1)


class Sum(Aggregation):
    """LayerNorm per subspace, then their sum: ``(N, K)``."""

    def combine(self, normalized: Tensor) -> Tensor:
        return normalized.sum(dim=1)


class MLPSum(Aggregation):
    """LayerNorm -> Linear(K, K) -> Tanh per subspace, then their sum (DeepSet): ``(N, K)``."""

    def __init__(self, num_subspaces: int, num_anchors: int) -> None:
        super().__init__(num_subspaces, num_anchors)
        # One Linear(K, K) per subspace, stored stacked; initialised as nn.Linear is.
        bound = 1.0 / math.sqrt(num_anchors)
        self.weight = nn.Parameter(
            torch.empty(num_subspaces, num_anchors, num_anchors).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(num_subspaces, num_anchors).uniform_(-bound, bound))

    def combine(self, normalized: Tensor) -> Tensor:
        hidden = torch.einsum("nsk,sjk->nsj", normalized, self.weight) + self.bias
        return torch.tanh(hidden).sum(dim=1)


class SelfAttention(Aggregation):
    """LayerNorm per subspace; subspaces as tokens of a one-head attention; sum over tokens."""

    def __init__(self, num_subspaces: int, num_anchors: int) -> None:
        super().__init__(num_subspaces, num_anchors)
        self.attention = nn.MultiheadAttention(num_anchors, num_heads=1, batch_first=True)

    def combine(self, normalized: Tensor) -> Tensor:
        # nn.MultiheadAttention's function with one head and no dropout, written out in matrix
        # products (the module holds the parameters, so the state dict is unchanged): the sum
        # over tokens is taken before the output projection (an affine map, so s times its
        # bias), and torch.func.vmap batches it when heads are trained in a stack.
        att = self.attention
        n, s, k = normalized.shape
        flat = normalized.reshape(n * s, k)
        qkv = nn.functional.linear(flat, att.in_proj_weight, att.in_proj_bias)
        q, kk, v = qkv.view(n, s, 3 * k).chunk(3, dim=-1)
        scores = torch.einsum("nsk,ntk->nst", q / math.sqrt(k), kk)
        mixed = torch.einsum("nst,ntk->nk", torch.softmax(scores, dim=-1), v)
        return nn.functional.linear(mixed, att.out_proj.weight, att.out_proj.bias * s)


class Weighted(Aggregation):
    """LayerNorm per subspace, then a sum weighted by a learned softmax over subspaces."""

    def __init__(self, num_subspaces: int, num_anchors: int) -> None:
        super().__init__(num_subspaces, num_anchors)
        self.logits = nn.Parameter(torch.zeros(num_subspaces))

    @property
    def weights(self) -> Tensor:
        """The softmax weights of the subspaces, ``(S,)``."""
        return torch.softmax(self.logits, dim=0)

    def combine(self, normalized: Tensor) -> Tensor:
        return torch.einsum("nsk,s->nk", normalized, self.weights)


_REGISTRY: dict[str, type[Aggregation]] = {
    "concat": Concat,
    "sum": Sum,
    "mlp_sum": MLPSum,
    "self_attention": SelfAttention,
    "weighted": Weighted,
}
_BUILTINS = frozenset(_REGISTRY)


def available() -> list[str]:
    """Names of the registered aggregations."""
    return list(_REGISTRY)


def get(name: str) -> type[Aggregation]:
    """The aggregation class registered as ``name``."""
    return _REGISTRY[check_choice(name, "aggregation", available())]


def register(name: str, cls: type[Aggregation], *, overwrite: bool = False) -> None:
    """Register a subclass of :class:`Aggregation` under ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Aggregation)):
        raise TypeError(f"cls must be a subclass of Aggregation, got {cls!r}")
    if name in _BUILTINS:
        raise ValueError(f"the built-in aggregation {name!r} cannot be replaced")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"an aggregation named {name!r} is already registered")
    _REGISTRY[name] = cls


def unregister(name: str) -> None:
    """Remove a user-registered aggregation."""
    if name in _BUILTINS:
        raise ValueError(f"the built-in aggregation {name!r} cannot be unregistered")
    get(name)
    del _REGISTRY[name]
