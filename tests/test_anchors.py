"""Tests for latentbridge.anchors: anchor index selection strategies."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentbridge import anchors
from latentbridge.anchors import STRATEGIES, available, select

FAST = settings(max_examples=30, deadline=None)


def _data(n: int = 120, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _labels(n: int = 120, classes: int = 4, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes  # every class has at least n // classes samples
    return rng.permutation(labels)


def _blobs(per_blob: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + rng.normal(size=(per_blob, 2)) for c in centres])
    blob = np.repeat(np.arange(len(centres)), per_blob)
    return x, blob


def _min_pairwise(points: np.ndarray) -> float:
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    return float(dist[np.triu_indices(len(points), 1)].min())


def _check_indices(idx: np.ndarray, k: int, n: int) -> None:
    assert isinstance(idx, np.ndarray)
    assert idx.shape == (k,)
    assert idx.dtype == np.int64
    assert len(np.unique(idx)) == k
    assert idx.min() >= 0 and idx.max() < n


# --------------------------------------------------------------------------- registry


def test_strategies_and_available() -> None:
    assert STRATEGIES == ("uniform", "stratified", "fps", "kmeans")
    assert available() == list(STRATEGIES)
    assert available() is not available()  # a fresh list each call


# --------------------------------------------------------------------------- common contract


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("k", [1, 7, 40])
def test_shape_dtype_distinct_in_range(strategy: str, k: int) -> None:
    x, labels = _data(), _labels()
    idx = select(x, k, strategy, labels=labels, seed=3)
    _check_indices(idx, k, len(x))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_k_equals_n_selects_everything(strategy: str) -> None:
    x, labels = _data(n=20), _labels(n=20)
    idx = select(x, 20, strategy, labels=labels, seed=0)
    assert sorted(idx.tolist()) == list(range(20))


@FAST
@given(
    n=st.integers(1, 60),
    d=st.integers(1, 5),
    data=st.data(),
    strategy=st.sampled_from(STRATEGIES),
    seed=st.integers(0, 2**32 - 1),
)
def test_contract_property(n: int, d: int, data: st.DataObject, strategy: str, seed: int) -> None:
    k = data.draw(st.integers(1, n), label="k")
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    labels = np.zeros(n, dtype=np.int64)  # one class: always feasible
    idx = select(x, k, strategy, labels=labels, seed=seed)
    _check_indices(idx, k, n)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_for_fixed_seed(strategy: str) -> None:
    x, labels = _data(), _labels()
    a = select(x, 12, strategy, labels=labels, seed=5)
    b = select(x.copy(), 12, strategy, labels=labels.copy(), seed=5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("strategy", ["uniform", "stratified", "fps", "kmeans"])
def test_different_seed_gives_different_selection(strategy: str) -> None:
    # Structureless uniform data: k-means has many local optima, so the k-means++ draw matters.
    x = np.random.default_rng(0).uniform(size=(200, 3))
    labels = _labels(n=200)
    a = select(x, 12, strategy, labels=labels, seed=0)
    b = select(x, 12, strategy, labels=labels, seed=1)
    assert set(a.tolist()) != set(b.tolist())


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_and_torch_inputs_agree(strategy: str, dtype: type) -> None:
    x, labels = _data().astype(dtype), _labels()
    from_numpy = select(x, 15, strategy, labels=labels, seed=2)
    from_torch = select(torch.from_numpy(x), 15, strategy, labels=torch.from_numpy(labels), seed=2)
    np.testing.assert_array_equal(from_numpy, from_torch)


def test_torch_input_with_grad_is_accepted() -> None:
    x = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    idx = select(x, 5, "fps", seed=0)
    _check_indices(idx, 5, 30)


def test_numpy_integer_k_and_seed_are_accepted() -> None:
    x = _data()
    np.testing.assert_array_equal(
        select(x, np.int64(6), "uniform", seed=np.int32(4)), select(x, 6, "uniform", seed=4)
    )


# --------------------------------------------------------------------------- uniform


def test_uniform_matches_documented_formula() -> None:
    x = _data(n=50)
    expected = np.random.default_rng(9).permutation(50)[:8]
    np.testing.assert_array_equal(select(x, 8, "uniform", seed=9), expected)


def test_uniform_ignores_x_dimension() -> None:
    a = select(np.zeros((40, 1)), 10, "uniform", seed=1)
    b = select(np.ones((40, 7)), 10, "uniform", seed=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("strategy", ["uniform", "fps"])
@FAST
@given(seed=st.integers(0, 10_000), k_small=st.integers(1, 30), extra=st.integers(0, 30))
def test_nested_prefix(strategy: str, seed: int, k_small: int, extra: int) -> None:
    x = _data(n=60, d=3, seed=seed % 7)
    small = select(x, k_small, strategy, seed=seed)
    large = select(x, k_small + extra, strategy, seed=seed)
    np.testing.assert_array_equal(large[:k_small], small)


# --------------------------------------------------------------------------- stratified


@FAST
@given(
    classes=st.integers(1, 6),
    per_class=st.integers(5, 15),
    data=st.data(),
    seed=st.integers(0, 10_000),
)
def test_stratified_balance(classes: int, per_class: int, data: st.DataObject, seed: int) -> None:
    n = classes * per_class
    k = data.draw(st.integers(classes, n), label="k")
    labels = np.random.default_rng(seed).permutation(np.arange(n) % classes)
    idx = select(np.zeros((n, 2)), k, "stratified", labels=labels, seed=seed)
    _check_indices(idx, k, n)
    counts = Counter(labels[idx].tolist())
    assert set(counts) == set(range(classes))
    values = list(counts.values())
    assert max(values) - min(values) <= 1
    assert all(v in (k // classes, k // classes + 1) for v in values)
    assert sum(v == k // classes + 1 for v in values) == k % classes


def test_stratified_round_robin_prefixes_are_balanced() -> None:
    labels = _labels(n=120, classes=4)
    idx = select(_data(), 20, "stratified", labels=labels, seed=0)
    for m in range(1, 6):
        counts = Counter(labels[idx[: 4 * m]].tolist())
        assert sorted(counts.values()) == [m] * 4


def test_stratified_class_order_is_seeded() -> None:
    labels = _labels(n=120, classes=4)
    first_classes = {
        tuple(labels[select(_data(), 8, "stratified", labels=labels, seed=s)[:4]].tolist())
        for s in range(10)
    }
    assert len(first_classes) > 1  # the round-robin class order is a seeded permutation


def test_stratified_string_labels_and_unbalanced_classes() -> None:
    labels = np.array(["cat"] * 50 + ["dog"] * 5 + ["emu"] * 10)
    idx = select(np.zeros((65, 1)), 12, "stratified", labels=labels, seed=4)
    counts = Counter(labels[idx].tolist())
    assert counts == {"cat": 4, "dog": 4, "emu": 4}


def test_stratified_k_smaller_than_number_of_classes() -> None:
    labels = np.repeat(np.arange(10), 5)
    seen: set[frozenset[int]] = set()
    for seed in range(8):
        idx = select(np.zeros((50, 1)), 3, "stratified", labels=labels, seed=seed)
        chosen = labels[idx]
        assert len(set(chosen.tolist())) == 3  # three different classes, one anchor each
        seen.add(frozenset(chosen.tolist()))
    assert len(seen) > 1  # the classes are drawn at random, not always the first ones


def test_stratified_extra_slots_go_to_classes_with_spare_samples() -> None:
    # k=7 over 2 classes: base 3, one extra; class 1 has only 3 samples, so class 0 takes it.
    labels = np.array([0] * 10 + [1] * 3)
    for seed in range(5):
        idx = select(np.zeros((13, 1)), 7, "stratified", labels=labels, seed=seed)
        assert Counter(labels[idx].tolist()) == {0: 4, 1: 3}


def test_stratified_class_too_small_raises() -> None:
    labels = np.array([0] * 20 + [1] * 2 + [2] * 20)
    with pytest.raises(ValueError, match=r"class 1 of labels has only 2 sample\(s\).*quota is 4"):
        select(np.zeros((42, 1)), 12, "stratified", labels=labels)
    with pytest.raises(ValueError, match=r"smaller k or strategy='uniform'"):
        select(np.zeros((42, 1)), 12, "stratified", labels=labels)


def test_stratified_no_class_can_take_extra_raises() -> None:
    # k=8 over 3 classes: base 2 and 2 extra slots, but only class 2 has a sample to spare.
    labels = np.array([0] * 2 + [1] * 2 + [2] * 10)
    with pytest.raises(ValueError, match=r"class 0 of labels has only 2 sample\(s\).*quota is 3"):
        select(np.zeros((14, 1)), 8, "stratified", labels=labels)


def test_stratified_torch_labels_match_numpy_labels() -> None:
    labels = _labels()
    a = select(_data(), 10, "stratified", labels=labels, seed=1)
    b = select(_data(), 10, "stratified", labels=torch.from_numpy(labels), seed=1)
    np.testing.assert_array_equal(a, b)


def test_labels_are_ignored_by_other_strategies() -> None:
    x = _data()
    np.testing.assert_array_equal(
        select(x, 5, "uniform", labels=np.zeros(3), seed=0), select(x, 5, "uniform", seed=0)
    )


# --------------------------------------------------------------------------- fps


@pytest.mark.parametrize("seed", range(12))
def test_fps_second_point_is_farthest_endpoint(seed: int) -> None:
    x = np.arange(11, dtype=np.float64)[:, None]
    first = int(np.random.default_rng(seed).integers(11))
    idx = select(x, 3, "fps", seed=seed)
    assert idx[0] == first
    # ties (first == 5) go to the lowest index
    assert idx[1] == (10 if first < 5 else 0)


def test_fps_closed_form_sequence_on_a_line() -> None:
    x = torch.arange(11, dtype=torch.float64)[:, None]
    # from 9: farthest is 0; then 4 and 5 are both 4 away -> 4; then the remaining ties in order
    np.testing.assert_array_equal(anchors._fps(x, 11, 9), [9, 0, 4, 2, 6, 1, 3, 5, 7, 8, 10])


def test_fps_spreads_more_than_uniform_on_clustered_data() -> None:
    x, _ = _blobs(per_blob=40)
    fps_min, uniform_min = [], []
    for seed in range(10):
        fps_min.append(_min_pairwise(x[select(x, 4, "fps", seed=seed)]))
        uniform_min.append(_min_pairwise(x[select(x, 4, "uniform", seed=seed)]))
    assert all(f >= u for f, u in zip(fps_min, uniform_min, strict=True))
    assert min(fps_min) > 90  # one anchor per blob, always
    # negative control: uniform sampling does put two anchors in one blob for some seed
    assert min(uniform_min) < 10


def test_fps_warns_on_duplicate_anchors() -> None:
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]), 4, axis=0)
    with pytest.warns(UserWarning, match="duplicate anchors"):
        idx = select(x, 5, "fps", seed=0)
    _check_indices(idx, 5, 12)
    assert len(np.unique(x[idx], axis=0)) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idx = select(x, 3, "fps", seed=0)  # three distinct points: no warning
    assert len(np.unique(x[idx], axis=0)) == 3


# --------------------------------------------------------------------------- kmeans


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_one_anchor_per_blob(seed: int) -> None:
    x, blob = _blobs(per_blob=30, seed=seed)
    idx = select(x, 4, "kmeans", seed=seed)
    _check_indices(idx, 4, len(x))
    assert sorted(blob[idx].tolist()) == [0, 1, 2, 3]
    np.testing.assert_array_equal(idx, np.sort(idx))  # documented: sorted


def test_kmeans_anchors_are_samples_nearest_to_blob_means_brute_force() -> None:
    x, blob = _blobs(per_blob=25, seed=3)
    means = np.stack([x[blob == b].mean(0) for b in range(4)])
    dist = ((x[None, :, :] - means[:, None, :]) ** 2).sum(-1)  # (4, N)
    expected = np.sort(dist.argmin(axis=1))
    np.testing.assert_array_equal(select(x, 4, "kmeans", seed=0), expected)


def test_kmeans_each_anchor_is_nearest_unused_sample_to_a_centroid() -> None:
    x = torch.from_numpy(_data(n=80, d=3, seed=4))
    centroids, assignment = anchors._kmeans(x, 6, seed=0)
    idx = select(x, 6, "kmeans", seed=0)
    # the centroids are the means of their clusters (converged Lloyd)
    for j in range(6):
        np.testing.assert_allclose(centroids[j].numpy(), x[assignment == j].mean(0).numpy())
    # brute force: the greedy distinct nearest sample of each centroid, in order
    dist = ((x.numpy()[None] - centroids.numpy()[:, None]) ** 2).sum(-1)
    taken: list[int] = []
    for row in dist:
        row = row.copy()
        row[taken] = np.inf
        taken.append(int(row.argmin()))
    np.testing.assert_array_equal(idx, np.sort(taken))


def test_kmeans_shared_nearest_sample_goes_to_next_unused() -> None:
    x = torch.tensor([[0.0], [1.0], [5.0]], dtype=torch.float64)
    centroids = torch.tensor([[0.1], [0.2], [4.0]], dtype=torch.float64)
    np.testing.assert_array_equal(anchors._distinct_nearest(x, centroids), [0, 1, 2])


def test_kmeans_reseeds_empty_clusters() -> None:
    # A centroid far from every sample receives nothing; it must move to the sample farthest
    # from its centroid (20, which is 10 away from the centroid at 10).
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1], [20.0]], dtype=torch.float64)
    start = torch.tensor([[0.0], [10.0], [1000.0]], dtype=torch.float64)
    labels, _ = anchors._assign(x, start)
    assert int((labels == 2).sum()) == 0  # the setup really has an empty cluster
    centroids, assignment = anchors._lloyd(x, start)
    np.testing.assert_array_equal(assignment.numpy(), [0, 0, 1, 1, 2])
    np.testing.assert_allclose(centroids.numpy().ravel(), [0.05, 10.05, 20.0])
    assert start[2, 0] == 1000.0  # the input is not modified


def test_kmeans_reseeds_several_empty_clusters_on_distinct_samples() -> None:
    # Two empty clusters: the farthest sample (30) seeds the first, the next farthest (20) the
    # second.
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1], [20.0], [30.0]], dtype=torch.float64)
    start = torch.tensor([[0.0], [10.0], [1000.0], [2000.0]], dtype=torch.float64)
    centroids, assignment = anchors._lloyd(x, start)
    np.testing.assert_array_equal(assignment.numpy(), [0, 0, 1, 1, 3, 2])
    np.testing.assert_allclose(centroids.numpy().ravel(), [0.05, 10.05, 30.0, 20.0])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_identical_rows_still_give_distinct_indices(strategy: str) -> None:
    x = np.ones((6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idx = select(x, 6, strategy, labels=np.zeros(6), seed=3)
    assert sorted(idx.tolist()) == list(range(6))


def test_kmeans_duplicate_rows_still_distinct_indices() -> None:
    x = np.repeat(np.array([[0.0], [3.0]]), 5, axis=0)
    with pytest.warns(UserWarning, match="duplicate anchors"):
        idx = select(x, 4, "kmeans", seed=0)
    _check_indices(idx, 4, 10)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [[[0.0, 1.0]], 5, "x", None])
def test_x_not_array_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor or a numpy.ndarray"):
        select(bad, 1)  # type: ignore[arg-type]


def test_x_integer_dtype_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"x must hold floating-point"):
        select(np.zeros((5, 2), dtype=np.int64), 1)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_x_not_2d_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        select(np.zeros(shape), 1)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x_raises(strategy: str, bad: float) -> None:
    x = _data(n=10)
    x[3, 1] = bad
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value\(s\).*\(3, 1\)"):
        select(x, 2, strategy, labels=np.zeros(10))


@pytest.mark.parametrize("bad", [True, False, 2.0, "3", None])
def test_k_not_int_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"k must be a positive int"):
        select(_data(), bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1])
def test_k_not_positive_raises(bad: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be a positive integer, got {bad}"):
        select(_data(), bad)


def test_k_larger_than_n_raises() -> None:
    with pytest.raises(ValueError, match=r"k=11 anchors requested but x has only N=10 samples"):
        select(_data(n=10), 11)


def test_unknown_strategy_lists_strategies() -> None:
    with pytest.raises(
        ValueError,
        match=r"strategy must be one of \['uniform', 'stratified', 'fps', 'kmeans'\], got 'random'",
    ):
        select(_data(), 3, "random")


def test_stratified_without_labels_raises() -> None:
    with pytest.raises(ValueError, match=r"labels are required by strategy='stratified'"):
        select(_data(), 3, "stratified")


def test_labels_wrong_length_raises() -> None:
    with pytest.raises(ValueError, match=r"labels must have one entry per row of x: got 9"):
        select(_data(n=10), 3, "stratified", labels=np.zeros(9))


def test_labels_not_1d_raises() -> None:
    with pytest.raises(ValueError, match=r"labels must be 1-D"):
        select(_data(n=10), 3, "stratified", labels=np.zeros((10, 1)))


def test_labels_wrong_type_raises() -> None:
    with pytest.raises(TypeError, match=r"labels must be a numpy.ndarray or a torch.Tensor"):
        select(_data(n=10), 3, "stratified", labels=[0] * 10)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1.5, "0", None, True])
def test_seed_not_int_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"seed must be a non-negative integer"):
        select(_data(), 3, seed=bad)  # type: ignore[arg-type]


def test_negative_seed_raises() -> None:
    with pytest.raises(ValueError, match=r"seed must be a non-negative int"):
        select(_data(), 3, seed=-1)


@pytest.mark.parametrize("strategy", ["fps", "kmeans"])
def test_blocked_distance_computation_matches_unblocked(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _data(n=50, d=3, seed=8)
    whole = select(x, 6, strategy, seed=1)
    monkeypatch.setattr(anchors, "_BLOCK", 7)  # blocks of 2 rows
    np.testing.assert_array_equal(select(x, 6, strategy, seed=1), whole)
