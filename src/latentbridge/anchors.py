"""Anchor selection: choose which K of the N parallel samples serve as anchors.

Relative representations describe every sample by its relation to a few *anchor* samples.
The same anchors must be used in every latent space being compared, so :func:`select`
returns **row indices** (int64, all distinct), not vectors: index every space with them,
``anchors_a = x_a[idx]``, ``anchors_b = x_b[idx]``.

Strategies (``STRATEGIES``):

``"uniform"``
    Uniformly at random, without replacement. O(N) time and memory.
``"stratified"``
    Per class of ``labels``, without replacement, as balanced as possible. O(N log N).
``"fps"``
    Farthest point sampling in ``x`` (euclidean). O(N K D) time, O(N) extra memory.
``"kmeans"``
    k-means (k-means++ initialisation, Lloyd iterations), then the real sample nearest to
    each centroid. O(N K D) time per iteration, O(N D + N K) memory (computed in chunks).

Only torch and numpy are used. Nothing runs at import time.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from ._scaling import max_abs, pow2_floor
from ._validation import ArrayLike, as_matrix, check_choice, check_positive_int, check_seed

__all__ = ["STRATEGIES", "available", "select"]


#: The names accepted by ``select(..., strategy=...)``.
STRATEGIES: tuple[str, ...] = ("uniform", "stratified", "fps", "kmeans")

#: Largest number of float64 elements a temporary block may hold (about 32 MiB).
_BLOCK = 1 << 22

#: Iteration cap of the Lloyd algorithm used by the ``"kmeans"`` strategy.
_KMEANS_MAX_ITER = 100


def available() -> list[str]:
    """Return the names of the anchor selection strategies, in the order of ``STRATEGIES``."""
    return list(STRATEGIES)


def select(
    x: ArrayLike,
    k: int,
    strategy: str = "uniform",
    labels: ArrayLike | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Choose ``k`` anchor samples among the ``N`` rows of ``x`` and return their indices.

    Args:
        x: samples, a floating numpy array or torch tensor of shape ``(N, D)``. Only its number
            of rows is used by ``"uniform"`` and ``"stratified"``; it must be finite for all
            strategies.
        k: number of anchors, a positive int with ``k <= N``.
        strategy: one of ``STRATEGIES``:

            * ``"uniform"``: ``np.random.default_rng(seed).permutation(N)[:k]``. **Nested**: for
              a fixed seed the selection with ``k`` is the prefix of the selection with any
              larger ``k``. O(N).
            * ``"stratified"``: needs ``labels``. With ``C`` classes each class gets
              ``k // C`` anchors and the ``k % C`` remaining ones go to classes drawn at random
              (seeded) among those that have a sample to spare; if ``k < C``, ``k`` random
              classes get one anchor each. Within a class the samples are drawn uniformly
              without replacement. Order: round robin over the classes (the class order is a
              seeded permutation), so the first ``m * C`` indices hold ``m`` anchors of every
              class. A class with fewer samples than its quota raises ``ValueError``.
              O(N log N).
            * ``"fps"``: farthest point sampling: the first anchor is drawn uniformly with the
              seed, each next one is the sample that maximises the euclidean distance to its
              nearest already chosen anchor, ties going to the lowest index; chosen samples are
              never chosen again. **Nested** like ``"uniform"``. Squared distances are computed
              as direct differences in float64. O(N K D) time, O(N) extra memory (plus a
              bounded block). If ``x`` holds fewer than ``k`` distinct rows a ``UserWarning``
              says that duplicate anchors were selected.
            * ``"kmeans"``: k-means with k-means++ initialisation (seeded) and Lloyd iterations
              (at most 100, stopping when the assignments stop changing; an empty cluster is
              re-seeded on the sample farthest from its centroid), then for each centroid, in
              order, the real sample nearest to it among those not taken by an earlier
              centroid. Returned **sorted**. O(N K D) per iteration.
        labels: class of each sample, a 1-D numpy array or torch tensor of length ``N`` (ints or
            strings); required by ``"stratified"``, ignored by the other strategies.
        seed: non-negative int seeding every random choice; the result is a deterministic
            function of the inputs and the seed.

    Returns:
        ``numpy.ndarray`` of dtype int64 and shape ``(k,)`` with distinct values in ``[0, N)``.

    Raises:
        TypeError: ``x`` is not a floating numpy array / tensor, ``k`` or ``seed`` is not an
            int (``bool`` is rejected).
        ValueError: ``x`` is not 2-D or not finite, ``k < 1`` or ``k > N``, unknown
            ``strategy``, missing or mis-sized ``labels``, or a class too small for its quota.
    """
    tensor = as_matrix(x, "x")
    n = int(tensor.shape[0])
    k = _check_k(k, n)
    check_choice(strategy, "strategy", STRATEGIES)
    seed = check_seed(seed)
    label_array = _check_labels(labels, n) if strategy == "stratified" else None
    tensor = tensor.detach()
    _check_finite(tensor)

    if strategy == "uniform":
        return _uniform(n, k, seed)
    if strategy == "stratified":
        assert label_array is not None
        return _stratified(label_array, k, seed)
    if strategy in ("fps", "kmeans"):
        # Both choices depend only on ratios of squared distances: divide by a power of two near
        # the data's magnitude (exact, the same choices), so no square overflows or underflows.
        tensor = tensor / pow2_floor(max_abs(tensor))
    if strategy == "fps":
        first = int(np.random.default_rng(seed).integers(n))
        return _fps(tensor, k, first)
    return _kmeans_anchors(tensor, k, seed)


# --------------------------------------------------------------------------- validation


def _check_k(k: object, n: int) -> int:
    k = check_positive_int(k, "k")
    if k > n:
        raise ValueError(f"k={k} anchors requested but x has only N={n} samples; use k <= {n}")
    return k


def _check_labels(labels: object, n: int) -> np.ndarray:
    if labels is None:
        raise ValueError(
            "labels are required by strategy='stratified': pass labels=<1-D array of length N> "
            "or use strategy='uniform'"
        )
    if isinstance(labels, Tensor):
        array = labels.detach().cpu().numpy()
    elif isinstance(labels, np.ndarray):
        array = labels
    else:
        raise TypeError(
            f"labels must be a numpy.ndarray or a torch.Tensor, got {type(labels).__name__}"
        )
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D with shape (N,), got shape {array.shape}")
    if array.shape[0] != n:
        raise ValueError(
            f"labels must have one entry per row of x: got {array.shape[0]} labels for "
            f"N={n} samples"
        )
    return _orderable_labels(array)


def _orderable_labels(array: np.ndarray) -> np.ndarray:
    """``array`` as sortable class values (integers, booleans, strings or finite floats).

    An object array holding one kind of value is converted to it; a mix of strings and numbers
    has no order and is a ``ValueError``; other dtypes (complex, dates, ...) a ``TypeError``.
    """
    if array.dtype.kind == "O":
        kinds = {_label_kind(v) for v in array.tolist()}
        converted = {
            frozenset({"string"}): str,
            frozenset({"bool"}): bool,
            frozenset({"integer"}): np.int64,
            frozenset({"integer", "float"}): np.float64,
            frozenset({"float"}): np.float64,
        }.get(frozenset(kinds))
        if converted is None:
            raise ValueError(
                "labels must be all integers, all booleans, all numbers or all strings to "
                f"define classes, got a mix of {', '.join(sorted(kinds))}; convert them first, "
                "e.g. labels.astype(str)"
            )
        array = array.astype(converted)
    kind = array.dtype.kind
    if kind not in "biufUS":
        raise TypeError(f"labels must hold integers or strings, got numpy dtype {array.dtype}")
    if kind == "f" and not bool(np.isfinite(array).all()):
        raise ValueError("labels must be finite class values, got NaN or infinite labels")
    return array


def _label_kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "integer"
    if isinstance(value, (float, np.floating)):
        return "float"
    return type(value).__name__


def _check_finite(tensor: Tensor) -> None:
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        first = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"x contains {bad.shape[0]} NaN or infinite value(s), the first at index {first}; "
            "remove or impute them before selecting anchors"
        )


# --------------------------------------------------------------------------- strategies


def _uniform(n: int, k: int, seed: int) -> np.ndarray:
    """Uniform sampling without replacement; nested in ``k`` for a fixed seed. O(N)."""
    return np.random.default_rng(seed).permutation(n)[:k].astype(np.int64)


def _stratified(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Class-balanced sampling without replacement (see :func:`select`). O(N log N)."""
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n_classes = len(classes)
    base, extra = divmod(k, n_classes)

    for c, size in zip(classes, counts, strict=True):
        if size < base:
            raise ValueError(_quota_message(c, int(size), base, k, n_classes))
    spare = np.flatnonzero(counts > base)
    if spare.size < extra:
        short = next(c for c, size in zip(classes, counts, strict=True) if size <= base)
        raise ValueError(
            _quota_message(short, base, base + 1, k, n_classes)
            + f" (only {spare.size} of the {n_classes} classes have more than {base} samples, "
            f"but {extra} classes need {base + 1})"
        )
    quotas = np.full(n_classes, base, dtype=np.int64)
    quotas[rng.choice(spare, size=extra, replace=False)] += 1

    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)))
    per_class = [
        rng.permutation(order[starts[c] : starts[c + 1]])[: quotas[c]] for c in range(n_classes)
    ]
    class_order = rng.permutation(n_classes)
    picked = [
        per_class[c][r] for r in range(int(quotas.max())) for c in class_order if r < quotas[c]
    ]
    return np.asarray(picked, dtype=np.int64)


def _quota_message(label: object, size: int, quota: int, k: int, n_classes: int) -> str:
    if isinstance(label, np.generic):
        label = label.item()  # 3 rather than np.int64(3) in the message
    return (
        f"class {label!r} of labels has only {size} sample(s) but its quota is {quota} "
        f"(k={k} anchors over C={n_classes} classes); use a smaller k or strategy='uniform'"
    )


def _sq_dist_to(x: Tensor, point: Tensor, out: Tensor) -> Tensor:
    """Write ``||x_i - point||^2`` (float64, direct differences) into ``out``, in row blocks."""
    n, d = x.shape
    step = max(1, _BLOCK // max(1, d))
    for start in range(0, n, step):
        block = x[start : start + step].to(torch.float64) - point
        torch.sum(block * block, dim=1, out=out[start : start + step])
    return out


def _fps(x: Tensor, k: int, first: int) -> np.ndarray:
    """Farthest point sampling from row ``first``; nested in ``k``. O(N K D) time, O(N) memory.

    ``nearest[i]`` holds the squared distance of row ``i`` to its nearest chosen anchor, and
    ``-inf`` for chosen rows so that they are never chosen again. ``torch.argmax`` returns the
    first maximal index, which breaks ties by the lowest index.
    """
    n = x.shape[0]
    nearest = torch.empty(n, dtype=torch.float64, device=x.device)
    scratch = torch.empty_like(nearest)
    chosen = [first]
    _sq_dist_to(x, x[first].to(torch.float64), nearest)
    nearest[first] = -torch.inf
    duplicates = False
    for _ in range(1, k):
        index = int(torch.argmax(nearest))
        if not duplicates and float(nearest[index]) == 0.0:
            duplicates = True
        chosen.append(index)
        torch.minimum(nearest, _sq_dist_to(x, x[index].to(torch.float64), scratch), out=nearest)
        nearest[index] = -torch.inf
    if duplicates:
        _warn_duplicates(k, "fps")
    return np.asarray(chosen, dtype=np.int64)


def _warn_duplicates(k: int, strategy: str) -> None:
    warnings.warn(
        f"x holds fewer than k={k} distinct samples: strategy={strategy!r} selected duplicate "
        "anchors (distinct indices of identical rows), whose relative coordinates repeat",
        UserWarning,
        stacklevel=4,
    )


def _assign(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest centroid of every row and its squared distance, in row blocks. O(N K D)."""
    n = x.shape[0]
    k = centroids.shape[0]
    c_sq = (centroids * centroids).sum(dim=1)
    labels = torch.empty(n, dtype=torch.int64, device=x.device)
    dist = torch.empty(n, dtype=torch.float64, device=x.device)
    step = max(1, _BLOCK // max(1, k))
    for start in range(0, n, step):
        block = x[start : start + step]
        d2 = (block * block).sum(dim=1, keepdim=True) - 2.0 * block @ centroids.T + c_sq
        best, arg = torch.min(d2, dim=1)
        labels[start : start + step] = arg
        dist[start : start + step] = best.clamp_min_(0.0)
    return labels, dist


def _kmeans_pp(x: Tensor, k: int, rng: np.random.Generator) -> Tensor:
    """k-means++ initialisation: centres drawn with probability proportional to D^2."""
    n = x.shape[0]
    indices = [int(rng.integers(n))]
    nearest = _sq_dist_to(x, x[indices[0]], torch.empty(n, dtype=torch.float64, device=x.device))
    scratch = torch.empty_like(nearest)
    duplicates = False
    for _ in range(1, k):
        weights = nearest.cpu().numpy()
        cumulative = np.cumsum(weights)
        total = float(cumulative[-1])
        if total > 0.0:
            index = int(np.searchsorted(cumulative, rng.random() * total, side="right"))
            index = min(index, n - 1)
        else:  # every row coincides with a centre: fewer distinct rows than k
            duplicates = True
            taken = np.zeros(n, dtype=bool)
            taken[indices] = True
            index = int(np.flatnonzero(~taken)[0])
        indices.append(index)
        torch.minimum(nearest, _sq_dist_to(x, x[index], scratch), out=nearest)
    if duplicates:
        _warn_duplicates(k, "kmeans")
    return x[indices].clone()


def _kmeans(
    x: Tensor, k: int, seed: int, max_iter: int = _KMEANS_MAX_ITER
) -> tuple[Tensor, Tensor]:
    """k-means on float64 ``x``: k-means++ initialisation seeded with ``seed``, then Lloyd.

    Returns the centroids ``(k, D)`` and the assignment ``(N,)``; see :func:`_lloyd`.
    """
    centroids = _kmeans_pp(x, k, np.random.default_rng(seed))
    return _lloyd(x, centroids, max_iter)


def _lloyd(x: Tensor, centroids: Tensor, max_iter: int = _KMEANS_MAX_ITER) -> tuple[Tensor, Tensor]:
    """Lloyd iterations from ``centroids`` (not modified) on float64 ``x``.

    Returns the centroids ``(k, D)`` and the assignment ``(N,)``. Stops after ``max_iter``
    iterations or when the assignments stop changing. An empty cluster is re-seeded on the
    sample farthest from its assigned centroid (ties to the lowest index; several empty
    clusters take successive distinct samples). O(N K D) time per iteration.
    """
    k = centroids.shape[0]
    d = x.shape[1]
    centroids = centroids.clone()
    labels, dist = _assign(x, centroids)
    for _ in range(max_iter):
        sums = torch.zeros(k, d, dtype=x.dtype, device=x.device).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).to(x.dtype)
        if not bool(filled.all()):
            far = dist.clone()
            for j in torch.nonzero(~filled).flatten().tolist():
                index = int(torch.argmax(far))
                centroids[j] = x[index]
                far[index] = -torch.inf
        new_labels, dist = _assign(x, centroids)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return centroids, labels


def _distinct_nearest(x: Tensor, centroids: Tensor) -> np.ndarray:
    """For each centroid in order, the nearest row of ``x`` not taken by an earlier centroid.

    Distances are direct float64 differences; ties go to the lowest index. O(N K D).
    """
    n = x.shape[0]
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    dist = torch.empty(n, dtype=torch.float64, device=x.device)
    chosen = []
    for centroid in centroids.to(torch.float64):
        _sq_dist_to(x, centroid, dist)
        dist[taken] = torch.inf
        index = int(torch.argmin(dist))
        taken[index] = True
        chosen.append(index)
    return np.asarray(chosen, dtype=np.int64)


def _kmeans_anchors(x: Tensor, k: int, seed: int) -> np.ndarray:
    """The ``"kmeans"`` strategy: distinct nearest samples to the k-means centroids, sorted."""
    x64 = x.to(torch.float64)
    centroids, _ = _kmeans(x64, k, seed)
    return np.sort(_distinct_nearest(x64, centroids))
