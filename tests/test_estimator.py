"""StitchingClassifier: the scikit-learn contract, learning, zero-shot stitching (closed form and
negative controls), seeds, devices and input validation.

Every scikit-learn estimator check applies and passes; ``check_array_api_input`` is skipped by
scikit-learn itself unless ``SCIPY_ARRAY_API=1`` is set before scipy is imported (the
estimator does not declare array API support: torch tensors take their own path).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import latentbridge as lb
from latentbridge import StitchingClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL: dict[str, Any] = {"num_anchors": 32, "hidden": 32, "epochs": 10, "lr": 1e-2}


def _blobs(n: int = 400, d: int = 16, centers: int = 4, seed: int = 0) -> tuple:
    x, y = make_blobs(n, n_features=d, centers=centers, cluster_std=2.0, random_state=seed)
    return x.astype(np.float32), y


def _semi_orthogonal(d_a: int, d_b: int, seed: int = 0) -> np.ndarray:
    """``Q (d_a, d_b)``, ``d_b >= d_a``, with orthonormal rows: ``(x Q)(z Q)^T = x z^T``."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d_b, d_a)))
    return q.T.astype(np.float32)


# -- the scikit-learn contract ----------------------------------------------------------------


@parametrize_with_checks([StitchingClassifier(num_anchors=8, hidden=16, epochs=5, lr=1e-2)])
def test_sklearn_estimator_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_parameters_are_stored_unchanged_and_round_trip() -> None:
    projections = ["cosine", "l1"]  # a list stays a list: validation happens in fit
    clf = StitchingClassifier(projections=projections, epochs=0, lr=-1.0)
    assert clf.get_params()["projections"] is projections
    assert clf.get_params()["epochs"] == 0
    clf.set_params(epochs=3, aggregation="sum")
    assert (clf.epochs, clf.aggregation) == (3, "sum")
    assert clone(clf).get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((2, 3), dtype=np.float32))


def test_lazy_export_loads_sklearn_only_on_access() -> None:
    code = (
        "import sys, json; from latentbridge import *; import latentbridge as lb; "
        "before = 'sklearn' in sys.modules; cls = lb.StitchingClassifier; "
        "print(json.dumps([before, 'sklearn' in sys.modules, cls.__module__]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # a star import included: it must not import scikit-learn (nor fail without it)
    assert json.loads(done.stdout) == [False, True, "latentbridge.estimator"]
    assert "StitchingClassifier" not in lb.__all__ and "StitchingClassifier" in dir(lb)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = lb.NoSuchThing


# -- learning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("projections", ["cosine", ("cosine", "euclidean", "l1", "linf")])
def test_learns_a_separable_problem(projections: str | tuple[str, ...]) -> None:
    x, y = make_classification(
        600, n_features=20, n_informative=6, n_classes=3, class_sep=2.0, random_state=0
    )
    clf = StitchingClassifier(projections=projections, **SMALL).fit(x[:400], y[:400])
    assert clf.score(x[400:], y[400:]) > 0.8  # chance: 1/3
    proba = clf.predict_proba(x[400:])
    assert proba.shape == (200, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(x[400:]), clf.classes_[proba.argmax(axis=1)])
    assert clf.n_iter_ == SMALL["epochs"]


def test_arbitrary_labels_go_through_classes_() -> None:
    x, y = _blobs()
    for labels in (np.array(["cat", "dog", "eel", "fox"])[y], np.array([-7, 3, 10, 42])[y]):
        clf = StitchingClassifier(**SMALL).fit(x[:300], labels[:300])
        np.testing.assert_array_equal(clf.classes_, np.unique(labels))
        predicted = clf.predict(x[300:])
        assert predicted.dtype == labels.dtype
        assert np.mean(predicted == labels[300:]) > 0.9


# -- zero-shot stitching ----------------------------------------------------------------------


def _fit_on_a(
    projections: str | tuple[str, ...],
) -> tuple[StitchingClassifier, np.ndarray, np.ndarray]:
    x, y = _blobs()
    clf = StitchingClassifier(projections=projections, **SMALL).fit(x[:300], y[:300])
    return clf, x, y


@pytest.mark.parametrize(
    ("projections", "scale"), [("cosine", 1.0), ("cosine", 3.5), (("cosine", "euclidean"), 3.5)]
)
def test_stitching_across_a_rotation_and_a_wider_space(
    projections: str | tuple[str, ...], scale: float
) -> None:
    """B = s A Q (Q: orthonormal rows, D_B = 24 > D_A = 16): cosine is invariant to it, and so is
    the product with euclidean (its LayerNorm removes the scale): identical predictions."""
    clf, x, _ = _fit_on_a(projections)
    q = _semi_orthogonal(16, 24)
    anchors_a = clf.anchors_.numpy()
    stitched = clf.with_anchors(scale * anchors_a @ q)
    assert stitched.n_features_in_ == 24 and clf.n_features_in_ == 16
    latents_b = scale * x[300:] @ q
    np.testing.assert_array_equal(stitched.predict(latents_b), clf.predict(x[300:]))
    np.testing.assert_allclose(
        stitched.predict_proba(latents_b), clf.predict_proba(x[300:]), rtol=0, atol=1e-4
    )
    # the original is untouched and still predicts on A's width
    np.testing.assert_array_equal(clf.anchors_.numpy(), anchors_a)
    with pytest.raises(ValueError, match="X has 16 features, but StitchingClassifier is expecting"):
        stitched.predict(x[300:])


@pytest.mark.parametrize("mismatch", ["shuffled", "other_samples"])
def test_stitching_with_mismatched_anchors_fails_clearly(mismatch: str) -> None:
    """Negative control: the same rotation, but anchors_b are not B's latents of A's anchors."""
    clf, x, _ = _fit_on_a("cosine")
    q = _semi_orthogonal(16, 16)
    rng = np.random.default_rng(1)
    anchors_a = clf.anchors_.numpy()
    if mismatch == "shuffled":
        wrong = anchors_a[rng.permutation(len(anchors_a))]
    else:
        wrong = x[300:][rng.choice(100, size=len(anchors_a), replace=False)]
    stitched = clf.with_anchors(wrong @ q)
    agreement = np.mean(stitched.predict(x[300:] @ q) == clf.predict(x[300:]))
    assert agreement < 0.6  # four balanced classes: chance is about 0.25; matched anchors give 1


def test_with_anchors_checks_its_input() -> None:
    clf, _, _ = _fit_on_a("cosine")
    with pytest.raises(ValueError, match=r"anchors must hold the K=32 anchors"):
        clf.with_anchors(np.ones((31, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="anchors contains 1 NaN"):
        bad = clf.anchors_.numpy().copy()
        bad[3, 2] = np.nan
        clf.with_anchors(bad)
    with pytest.raises(TypeError, match=r"anchors must be a torch\.Tensor or a numpy\.ndarray"):
        clf.with_anchors(clf.anchors_.tolist())
    with pytest.raises(NotFittedError):
        StitchingClassifier().with_anchors(np.ones((4, 3), dtype=np.float32))


# -- anchors ----------------------------------------------------------------------------------


def test_anchors_given_or_chosen_from_x() -> None:
    x, y = _blobs(200)
    given = x[:20] + 0.5  # not rows of X
    clf = StitchingClassifier(**SMALL).fit(x, y, anchors=given.astype(np.float64))
    assert clf.anchor_indices_ is None
    assert clf.anchors_.dtype == torch.float32
    np.testing.assert_array_equal(clf.anchors_.numpy(), given)

    chosen = StitchingClassifier(**SMALL).fit(x, y)
    expected = lb.anchors.select(x, 32, "uniform", seed=0)
    np.testing.assert_array_equal(chosen.anchor_indices_, expected)
    np.testing.assert_array_equal(chosen.anchors_.numpy(), x[expected])

    stratified = StitchingClassifier(**SMALL, anchor_strategy="stratified").fit(x, y)
    assert np.bincount(y[stratified.anchor_indices_]).tolist() == [8, 8, 8, 8]
    with pytest.raises(ValueError, match=r"num_anchors=32 .* only N=20 samples"):
        StitchingClassifier(**SMALL).fit(x[:20], y[:20])


# -- composition: Pipeline and GridSearchCV ---------------------------------------------------


def test_pipeline_fits_and_its_classifier_stitches() -> None:
    """A StandardScaler commutes with a permutation of features, and the product is invariant
    to permutations: B's own scaler then the stitched classifier reproduce A's pipeline."""
    x, y = _blobs()
    pipe = make_pipeline(StandardScaler(), StitchingClassifier(**SMALL)).fit(x[:300], y[:300])
    assert pipe.score(x[300:], y[300:]) > 0.9
    perm = np.random.default_rng(0).permutation(16)
    latents_b = x[:, perm]
    scaler_b = StandardScaler().fit(latents_b[:300])
    anchors_b = scaler_b.transform(latents_b[:300][pipe[-1].anchor_indices_])
    stitched = make_pipeline(scaler_b, pipe[-1].with_anchors(anchors_b))
    np.testing.assert_array_equal(stitched.predict(latents_b[300:]), pipe.predict(x[300:]))


def test_grid_search_chooses_anchors_per_fold() -> None:
    x, y = _blobs(240)
    grid = {"projections": ["cosine", ("cosine", "euclidean")], "aggregation": ["sum"]}
    search = GridSearchCV(StitchingClassifier(**{**SMALL, "epochs": 3}), grid, cv=2).fit(x, y)
    assert search.best_score_ > 0.8
    assert search.best_estimator_.anchor_indices_.shape == (32,)


def test_grid_search_passes_fit_anchors_unsliced() -> None:
    """A fit parameter with K != N rows is not indexed per fold: every fit gets all anchors."""
    x, y = _blobs(240)
    anchors = x[:20].copy()
    seen: list[int] = []

    class Recording(StitchingClassifier):
        def fit(self, X, y, anchors=None):  # type: ignore[no-untyped-def]
            seen.append(anchors.shape[0])
            return super().fit(X, y, anchors=anchors)

    search = GridSearchCV(Recording(**{**SMALL, "epochs": 3}), {"lr": [1e-2, 3e-2]}, cv=3)
    search.fit(x, y, anchors=anchors)
    assert seen == [20] * 7  # 2 candidates x 3 folds, and the refit
    np.testing.assert_array_equal(search.best_estimator_.anchors_.numpy(), anchors)
    assert search.best_estimator_.anchor_indices_ is None


# -- seeds, dtypes, devices -------------------------------------------------------------------


def test_seeds_are_explicit_and_the_global_rng_is_untouched() -> None:
    x, y = _blobs(200)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = StitchingClassifier(**SMALL, seed=3).fit(x, y).predict_proba(x)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = StitchingClassifier(**SMALL, seed=3).fit(x, y).predict_proba(x)
    other = StitchingClassifier(**SMALL, seed=4).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(first, again)  # bitwise
    assert np.abs(first - other).max() > 1e-3
    given = x[:32]  # the seed also drives the weights and the batch order, not only the anchors
    a = StitchingClassifier(**SMALL, seed=3).fit(x, y, anchors=given).predict_proba(x)
    b = StitchingClassifier(**SMALL, seed=4).fit(x, y, anchors=given).predict_proba(x)
    assert np.abs(a - b).max() > 1e-3


def test_numpy_and_torch_inputs_of_any_float_dtype_agree() -> None:
    x, y = _blobs(200)
    reference = StitchingClassifier(**SMALL).fit(x, y)
    for inputs in (x.astype(np.float64), torch.from_numpy(x), torch.from_numpy(x).double()):
        labels = torch.from_numpy(y) if isinstance(inputs, torch.Tensor) else y
        clf = StitchingClassifier(**SMALL).fit(inputs, labels)
        assert clf.anchors_.dtype == torch.float32 and clf.anchors_.device.type == "cpu"
        proba = clf.predict_proba(inputs)
        assert isinstance(proba, np.ndarray)
        np.testing.assert_array_equal(proba, reference.predict_proba(x))
        assert isinstance(clf.predict(inputs), np.ndarray)
        assert clf.score(inputs, labels) == reference.score(x, y)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_device_follows_the_input_on_cuda() -> None:
    x, y = _blobs(200)
    xc, yc = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    clf = StitchingClassifier(**SMALL).fit(xc, yc)
    assert clf.anchors_.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in clf.model_.parameters())
    on_gpu = clf.predict_proba(xc)
    assert isinstance(on_gpu, np.ndarray)
    np.testing.assert_allclose(clf.predict_proba(x), on_gpu, rtol=0, atol=1e-5)  # copy on CPU
    assert clf.anchors_.device.type == "cuda"  # predicting on the CPU moved nothing
    cpu = StitchingClassifier(**SMALL).fit(x, y)
    assert np.mean(cpu.predict(x) == clf.predict(x)) > 0.9
    stitched = clf.with_anchors(clf.anchors_.cpu().numpy())
    assert stitched.anchors_.device.type == "cpu"
    np.testing.assert_allclose(stitched.predict_proba(x), on_gpu, rtol=0, atol=1e-5)


# -- validation -------------------------------------------------------------------------------


def _with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[1, 2] = np.nan
    return a


BAD_PARAMETERS = [
    ({"projections": "cosinus"}, ValueError, r"projections must be one of \["),
    ({"projections": ("cosine", "nope")}, ValueError, r"projections\[1\] must be one of"),
    ({"projections": ()}, ValueError, "projections must name at least one"),
    ({"projections": 3}, TypeError, "projections must be a projection name or a sequence"),
    ({"aggregation": "max"}, ValueError, "aggregation must be one of"),
    ({"normalization": None}, ValueError, "normalization must be one of"),
    ({"anchor_strategy": "random"}, ValueError, "anchor_strategy must be one of"),
    ({"num_anchors": 0}, ValueError, "num_anchors must be a positive integer"),
    ({"hidden": 2.5}, TypeError, "hidden must be a positive integer"),
    ({"epochs": 0}, ValueError, "epochs must be a positive integer, got 0"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
    ({"lr": 0.0}, ValueError, "lr must be a positive finite float, got 0.0"),
    ({"lr": float("nan")}, ValueError, "lr must be a positive finite float"),
    ({"lr": "fast"}, TypeError, "lr must be a positive finite float"),
    ({"weight_decay": -1e-3}, ValueError, "weight_decay must be a non-negative finite float"),
    ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
    ({"seed": None}, TypeError, "seed must be a non-negative integer"),
]


@pytest.mark.parametrize(("params", "error", "match"), BAD_PARAMETERS)
def test_bad_parameters_fail_in_fit_naming_the_argument(
    params: dict, error: type[Exception], match: str
) -> None:
    x, y = _blobs(60)
    clf = StitchingClassifier(**{**SMALL, **params})  # the constructor accepts anything
    with pytest.raises(error, match=match):
        clf.fit(x, y)


def test_bad_data_fails_naming_the_argument() -> None:
    x, y = _blobs(60)
    clf = StitchingClassifier(**SMALL)
    cases = [
        (lambda: clf.fit(_with_nan(x), y), ValueError, "Input X contains NaN"),
        (lambda: clf.fit(torch.from_numpy(_with_nan(x)), y), ValueError, "X contains 1 NaN"),
        (lambda: clf.fit(torch.from_numpy(x)[0], y), ValueError, r"X must be 2-D .*X\[None\]"),
        (
            lambda: clf.fit(torch.full((60, 16), 1e39, dtype=torch.float64), y),
            ValueError,
            "float32 range",
        ),
        (lambda: clf.fit(torch.from_numpy(x), y[:-1]), ValueError, "y must have one label per"),
        (lambda: clf.fit(x, y[:-1]), ValueError, "inconsistent numbers of samples"),
        (
            lambda: clf.fit(x, np.zeros(60)),
            ValueError,
            "at least two classes to fit a classifier, got 1 class",
        ),
        (lambda: clf.fit(x, y + 0.5), ValueError, "Unknown label type"),
        (lambda: clf.fit(x, y, anchors=_with_nan(x[:8])), ValueError, "anchors contains 1 NaN"),
        (lambda: clf.fit(x, y, anchors=x[:8, :5]), ValueError, "anchors must have D=16 features"),
        (lambda: clf.fit(x, y, anchors=x[0]), ValueError, r"anchors must be 2-D with shape \(K"),
        (lambda: clf.fit(x, y, anchors=x[:8].tolist()), TypeError, "anchors must be a torch"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_predicting_never_returns_nan() -> None:
    """A single scale-sensitive projection overflows float32 on huge (finite) latents: an error
    naming X, not NaN probabilities; the scale-free product handles them."""
    x, y = _blobs(200)
    single = StitchingClassifier(projections="euclidean", **SMALL).fit(x, y)
    with pytest.raises(ValueError, match="the logits on X are not finite"):
        single.predict_proba(x * 1e30)
    product = StitchingClassifier(**SMALL).fit(x, y)
    np.testing.assert_array_equal(product.predict(x * 1e30), product.predict(x))
    with pytest.raises(ValueError, match="X has 15 features, but StitchingClassifier is expecting"):
        product.predict(torch.from_numpy(x[:, :15]))
