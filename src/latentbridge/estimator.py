""":class:`StitchingClassifier`: a scikit-learn classifier on the relative representation, and
its zero-shot stitched copies for other encoders.

The estimator composes core pieces: a :class:`~latentbridge.RelativeProjection` or a
:class:`~latentbridge.ProductProjection` fitted on the anchors, the classification head of the
experiments (LayerNorm -> Linear -> Tanh -> Linear) and their training loop, a mini-batch Adam
loop on the cross-entropy. The head and the loop live in the core (``latentbridge._training``,
imported by :mod:`latentbridge.experiments.training` too), because the module sits in the layer
of data and models, which never imports the experiments.

scikit-learn is the optional ``sklearn`` extra (``pip install 'latentbridge[sklearn]'``);
``latentbridge.StitchingClassifier`` imports this module on first access only, so importing
the core still loads nothing but torch and numpy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union, cast

import numpy as np
import torch
from torch import Tensor, nn

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d
except ImportError as error:  # the optional extra is missing
    raise ImportError(
        "latentbridge.StitchingClassifier needs scikit-learn, the 'sklearn' extra: "
        "pip install 'latentbridge[sklearn]'"
    ) from error

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # older releases: the method that the function replaced

    def _validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from . import aggregations as _aggregations
from . import anchors as _anchors
from . import normalization as _norm
from . import projections as _projections
from ._training import fit, make_head
from ._validation import (
    WrongTypeError,
    as_matrix,
    check_choice,
    check_finite,
    check_positive_int,
    check_seed,
)
from .modules import ProductProjection, RelativeProjection

__all__ = ["StitchingClassifier"]

_Projection = Union[RelativeProjection, ProductProjection]  # noqa: UP007 (a runtime alias)

#: Rows per forward pass at prediction time (bounds the ``(N, S, K)`` intermediate).
_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class _Settings:
    """The constructor arguments, validated (``fit`` builds them; ``__init__`` only stores)."""

    projections: str | tuple[str, ...]
    aggregation: str
    normalization: str
    num_anchors: int
    anchor_strategy: str
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int


class StitchingClassifier(ClassifierMixin, BaseEstimator):
    """Classifier on the relative representation of latents, stitchable to other encoders.

    For latents ``X (N, D)`` and anchors ``A (K, D)`` (latents of ``K`` anchor samples in the
    same space), each projection ``p`` (cosine, euclidean, l1, linf, ...) gives the relative
    representation ``R_p(X)_{nk} = p(n(x_n), n(a_k))``, ``(N, K)``, where ``n`` is the absolute
    ``normalization`` fitted on the anchors. With several projections the relative subspaces
    are stacked, ``(N, S, K)``, and the product ``aggregation`` (each subspace standardised by
    its own LayerNorm, then combined with learned weights; ``mlp_sum``:
    ``sum_s tanh(LN_s(R_s) W_s + b_s)``) maps them to ``(N, F)``. A head
    ``LayerNorm -> Linear(F, hidden) -> Tanh -> Linear(hidden, C)`` gives the logits of the
    ``C`` classes; ``fit`` minimises their cross-entropy with Adam over shuffled mini-batches.

    **Zero-shot stitching.** The representation only depends on how a sample relates to the
    anchors, so it is unchanged by every transformation of the latent space that the
    projections are invariant to (e.g. cosine: rotations and rescalings). If encoder B's
    latents relate to A's by such a map, ``clf.with_anchors(anchors_b)``, with ``anchors_b
    (K, D_B)`` B's latents of the *same* anchor samples, is a fitted copy with the same
    aggregation and head that classifies B's latents with no retraining; ``D_B`` may differ
    from ``D``.

    Parameters
    ----------
    projections : str or sequence of str, default ("cosine", "euclidean", "l1", "linf")
        A single projection name gives one :class:`~latentbridge.RelativeProjection`
        (``F = K``); a sequence (even of one name) gives a
        :class:`~latentbridge.ProductProjection` of those subspaces.
    aggregation : str, default "mlp_sum"
        The product's aggregation (:func:`latentbridge.aggregations.available`); validated
        always, used only for a sequence of projections.
    normalization : str, default "none"
        Absolute normalisation fitted on the anchors: ``none``, ``center``, ``standard``,
        ``l2`` or ``whiten`` (:mod:`latentbridge.normalization`).
    num_anchors : int, default 256
        ``K`` when ``fit`` gets no anchors: that many rows of ``X`` are chosen as anchors
        (at most the number of samples).
    anchor_strategy : str, default "uniform"
        :func:`latentbridge.anchors.select` strategy for that choice (``stratified`` balances
        the classes of ``y``).
    hidden : int, default 128
        Width of the head's hidden layer.
    epochs : int, default 20
        Passes over the training set (at least 1).
    batch_size : int, default 64
        Mini-batch size (a batch larger than ``N`` is the full batch).
    lr : float, default 1e-3
        Adam's learning rate (positive).
    weight_decay : float, default 0.0
        Adam's L2 penalty (non-negative).
    seed : int, default 0
        Seeds the anchor choice, the initial weights and the mini-batch order. The global
        RNG is left untouched; the same seed on the same inputs gives the same model.

    Attributes
    ----------
    classes_ : numpy.ndarray of shape (C,)
        The class labels (any sortable labels: strings, non-contiguous integers, ...).
    n_features_in_ : int
        ``D``, the width of the latents this estimator predicts on (``D_B`` for a copy
        from :meth:`with_anchors`).
    feature_names_in_ : numpy.ndarray of shape (D,)
        Column names, when ``X`` was a DataFrame with string column names.
    anchors_ : torch.Tensor of shape (K, D)
        The anchors, float32, on the model's device.
    anchor_indices_ : numpy.ndarray of shape (K,) or None
        Rows of the training ``X`` chosen as anchors; ``None`` when ``fit`` got anchors.
    model_ : torch.nn.Sequential
        ``Sequential(projection, head)``: the fitted torch module, ``(N, D) -> (N, C)`` logits.
    n_iter_ : int
        Number of training epochs run.

    Notes
    -----
    Inputs are numpy arrays (or anything scikit-learn's ``check_array`` takes) or torch
    tensors, cast to float32. The model trains on the device of a tensor ``X`` (numpy: the
    CPU); prediction runs on the device of its input, and returns numpy arrays.

    In a :class:`sklearn.pipeline.Pipeline` (e.g. after a ``StandardScaler``), anchors given
    to ``fit`` bypass the earlier steps, so either pass anchors already in the space the
    classifier sees or let ``fit`` choose them from ``X`` (``anchor_indices_`` then names the
    rows). Stitching a pipeline is the user's: transform B's anchors by B's own preprocessing
    and put ``pipe[-1].with_anchors(anchors_b)`` after it. In ``GridSearchCV``, a fit
    parameter with as many rows as ``X`` is sliced per fold: pass anchors with ``K`` different
    from the number of training samples, and they reach every fold unchanged.
    """

    def __init__(
        self,
        projections: str | Sequence[str] = _projections.PAPER_PRODUCT,
        aggregation: str = "mlp_sum",
        normalization: str = "none",
        num_anchors: int = 256,
        anchor_strategy: str = "uniform",
        hidden: int = 128,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.projections = projections
        self.aggregation = aggregation
        self.normalization = normalization
        self.num_anchors = num_anchors
        self.anchor_strategy = anchor_strategy
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, anchors: Any = None) -> StitchingClassifier:
        """Fit the projection on the anchors and train the head on ``(X, y)``; returns self.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (N, D)
            Latents of encoder A.
        y : array-like or torch.Tensor of shape (N,)
            Class labels.
        anchors : numpy.ndarray or torch.Tensor of shape (K, D), optional
            Encoder A's latents of the anchor samples. ``None``: ``num_anchors`` rows of ``X``
            chosen by ``anchor_strategy`` (recorded in ``anchor_indices_``).
        """
        settings = self._settings()
        x, labels = self._fit_inputs(X, y)
        classes, encoded = np.unique(labels, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                "y must hold at least two classes to fit a classifier, got 1 class: "
                f"{classes.tolist()!r}"
            )
        targets = torch.from_numpy(encoded.reshape(-1).astype(np.int64)).to(x.device)
        if anchors is None:
            indices = _choose_anchors(x, targets, settings)
            anchor_tensor = x[torch.from_numpy(indices).to(x.device)].clone()
        else:
            indices = None
            anchor_tensor = _checked_anchors(anchors, self.n_features_in_, "anchors")
            anchor_tensor = anchor_tensor.to(x.device)
        model = _build_model(settings, anchor_tensor, int(classes.shape[0]))
        _train(model.to(x.device), x, targets, settings)
        self.classes_ = classes
        self.anchors_ = anchor_tensor
        self.anchor_indices_ = indices
        self.model_ = model
        self.n_iter_ = settings.epochs
        return self

    def _settings(self) -> _Settings:
        """The constructor arguments checked, each error naming its argument."""
        aggregation = check_choice(self.aggregation, "aggregation", _aggregations.available())
        normalization = _norm.get_absolute(self.normalization, "normalization").name
        return _Settings(
            projections=_check_projections(self.projections),
            aggregation=aggregation,
            normalization=normalization,
            num_anchors=check_positive_int(self.num_anchors, "num_anchors"),
            anchor_strategy=check_choice(
                self.anchor_strategy, "anchor_strategy", _anchors.STRATEGIES
            ),
            hidden=check_positive_int(self.hidden, "hidden"),
            epochs=check_positive_int(self.epochs, "epochs"),
            batch_size=check_positive_int(self.batch_size, "batch_size"),
            lr=_check_float(self.lr, "lr", positive=True),
            weight_decay=_check_float(self.weight_decay, "weight_decay", positive=False),
            seed=check_seed(self.seed),
        )

    def _fit_inputs(self, X: Any, y: Any) -> tuple[Tensor, np.ndarray]:
        """``X`` as a float32 tensor on its device and ``y`` as a 1-D numpy array of labels."""
        y = y.detach().cpu().numpy() if isinstance(y, Tensor) else y
        if isinstance(X, Tensor):
            x = self._checked_tensor(X, reset=True)
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but y is None")
            labels = column_or_1d(y, warn=True)
            if labels.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y must have one label per row of X: got {labels.shape[0]} labels for "
                    f"N={x.shape[0]} samples"
                )
        else:
            array, labels = _validate_data(self, X, y, dtype=np.float32)
            x = _numpy_to_tensor(array)
        check_classification_targets(labels)
        return x, labels

    # -- inputs -----------------------------------------------------------------------------

    def _inputs(self, X: Any) -> Tensor:
        """``X`` to predict on, as a float32 tensor on its device (``n_features_in_`` wide)."""
        if isinstance(X, Tensor):
            return self._checked_tensor(X, reset=False)
        return _numpy_to_tensor(_validate_data(self, X, reset=False, dtype=np.float32))

    def _checked_tensor(self, X: Tensor, *, reset: bool) -> Tensor:
        """A tensor ``X`` checked (2-D, non-empty, finite, width) and cast to float32."""
        if X.ndim != 2:
            hint = "; for a single sample use X[None]" if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D with shape (N, D), got shape {tuple(X.shape)}{hint}")
        if X.is_complex():
            raise TypeError(f"X must hold real numbers, got torch dtype {X.dtype}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(
                f"X must hold at least one sample and one feature, got shape {tuple(X.shape)}"
            )
        x = X.detach()
        if x.is_floating_point():
            check_finite(x, "X")
        x = x.to(torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("X holds values beyond the float32 range the estimator computes in")
        if reset:
            self.n_features_in_ = int(x.shape[1])
            self.__dict__.pop("feature_names_in_", None)
        elif x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return x

    # -- prediction -------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, ``softmax`` of the logits: ``(N, C)`` float64, rows sum to 1.

        Columns follow ``classes_``.
        """
        check_is_fitted(self)
        logits = self._logits(self._inputs(X))
        proba: np.ndarray = torch.softmax(logits.double(), dim=1).cpu().numpy()
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row of ``X (N, D)``: ``(N,)``, from ``classes_``."""
        check_is_fitted(self)
        labels: np.ndarray = self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return labels

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy on ``(X, y)`` (``y`` may be a tensor)."""
        y = y.detach().cpu().numpy() if isinstance(y, Tensor) else y
        return float(super().score(X, y, sample_weight=sample_weight))

    @torch.no_grad()
    def _logits(self, x: Tensor) -> Tensor:
        """Logits ``(N, C)`` on ``x``'s device (the fitted model is never moved: a copy is)."""
        model = self.model_
        if self.anchors_.device != x.device:
            model = copy.deepcopy(model).to(x.device)
        chunks = [model(x[i : i + _PREDICT_BATCH]) for i in range(0, x.shape[0], _PREDICT_BATCH)]
        logits = torch.cat(chunks)
        if not bool(torch.isfinite(logits).all()):  # never hand on NaN probabilities
            raise ValueError(
                "the logits on X are not finite: its relative representation overflows float32 "
                "in the head; rescale X (a product of projections is scale-free)"
            )
        return logits

    # -- stitching --------------------------------------------------------------------------

    def with_anchors(self, anchors: Any) -> StitchingClassifier:
        """A fitted copy for another encoder: same aggregation and head, ``anchors``' space.

        Parameters
        ----------
        anchors : numpy.ndarray or torch.Tensor of shape (K, D_B)
            Encoder B's latents of the same ``K`` anchor samples, in the same order as
            ``anchors_``. The copy lives on their device (numpy: the CPU) and predicts on
            latents of width ``D_B``; this estimator is left unchanged.
        """
        check_is_fitted(self)
        anchor_tensor = _checked_anchors(anchors, None, "anchors")
        k = int(self.anchors_.shape[0])
        if anchor_tensor.shape[0] != k:
            raise ValueError(
                f"anchors must hold the K={k} anchors of anchors_ (the same samples, in "
                f"another space), got shape {tuple(anchor_tensor.shape)}"
            )
        stitched = copy.deepcopy(self)
        stitched.model_ = stitched.model_.to(anchor_tensor.device)
        cast(_Projection, stitched.model_[0]).fit(anchor_tensor)
        stitched.anchors_ = anchor_tensor
        stitched.n_features_in_ = int(anchor_tensor.shape[1])
        stitched.__dict__.pop("feature_names_in_", None)
        return stitched

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False  # deterministic for a given seed
        return tags


# -- helpers ----------------------------------------------------------------------------------


def _check_projections(value: object) -> str | tuple[str, ...]:
    """A projection name, or a non-empty tuple of them (each a registered projection)."""
    available = _projections.available()
    if isinstance(value, str):
        return check_choice(value, "projections", available)
    if not isinstance(value, Sequence):
        raise TypeError(
            "projections must be a projection name or a sequence of them, got "
            f"{type(value).__name__}"
        )
    if len(value) == 0:
        raise ValueError("projections must name at least one projection, got none")
    return tuple(check_choice(v, f"projections[{i}]", available) for i, v in enumerate(value))


def _check_float(value: object, name: str, *, positive: bool) -> float:
    """``value`` as a finite float, ``> 0`` if ``positive`` else ``>= 0``."""
    wanted = "a positive" if positive else "a non-negative"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise WrongTypeError(f"{name} must be {wanted} finite float, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{name} must be {wanted} finite float, got {value!r}")
    return number


def _numpy_to_tensor(array: np.ndarray) -> Tensor:
    """A validated float32 array as a CPU tensor (copied: it may be a read-only memmap)."""
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True))


def _checked_anchors(anchors: object, width: int | None, name: str) -> Tensor:
    """``anchors (K, D)`` as a finite float32 tensor on its device, ``width`` columns if given."""
    if not isinstance(anchors, (Tensor, np.ndarray)):
        raise TypeError(
            f"{name} must be a torch.Tensor or a numpy.ndarray of shape (K, D), got "
            f"{type(anchors).__name__}"
        )
    tensor = as_matrix(anchors, name, rows="K", cols="D").detach()
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least one anchor and one feature, got shape {tuple(tensor.shape)}"
        )
    if width is not None and tensor.shape[1] != width:
        raise ValueError(
            f"{name} must have D={width} features like X, got shape {tuple(tensor.shape)}"
        )
    check_finite(tensor, name)
    tensor = tensor.to(torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} holds values beyond the float32 range the estimator computes in")
    return tensor.clone()


def _choose_anchors(x: Tensor, targets: Tensor, settings: _Settings) -> np.ndarray:
    """``num_anchors`` row indices of ``x`` by ``anchor_strategy`` (seeded)."""
    n = int(x.shape[0])
    k = settings.num_anchors
    if k > n:
        raise ValueError(
            f"num_anchors={k} anchors are chosen from X when fit gets no anchors, but X has "
            f"only N={n} samples; use num_anchors <= {n} or pass anchors to fit"
        )
    labels = targets.cpu() if settings.anchor_strategy == "stratified" else None
    return _anchors.select(x, k, settings.anchor_strategy, labels=labels, seed=settings.seed)


def _build_model(settings: _Settings, anchors: Tensor, num_classes: int) -> nn.Sequential:
    """``Sequential(projection, head)`` on the CPU, its weights drawn from ``settings.seed``.

    The global CPU generator is forked (restored afterwards) and seeded, so the initial weights
    depend on the seed alone and the caller's random state is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(settings.seed)
        layer: nn.Module
        if isinstance(settings.projections, str):
            layer = RelativeProjection(settings.projections, settings.normalization)
            layer.fit(anchors.cpu())
            width = layer.out_features
        else:
            layer = ProductProjection(
                settings.projections,
                settings.aggregation,
                anchors=anchors.cpu(),
                normalization=settings.normalization,
            )
            width = layer.out_features
        head = make_head(width, num_classes, settings.hidden)
    return nn.Sequential(layer, head)


def _train(model: nn.Module, x: Tensor, targets: Tensor, settings: _Settings) -> None:
    """Minimise the mean cross-entropy with Adam over shuffled mini-batches (the library's
    :func:`~latentbridge._training.fit`); eval mode after.

    The batch order of every epoch is a permutation drawn from a CPU generator seeded with
    ``settings.seed``. A non-finite epoch loss stops training with a ``ValueError``.
    """
    total = x.new_zeros(())

    def loss(batch: Tensor | None) -> Tensor:
        nonlocal total
        assert batch is not None  # fit is given a batch_size, so it passes indices
        batch = batch.to(x.device)
        value = nn.functional.cross_entropy(model(x[batch]), targets[batch])
        total = total + value.detach()
        return value

    def end_of_epoch(epoch: int) -> None:
        nonlocal total
        if not bool(torch.isfinite(total)):
            raise ValueError(
                f"training diverged: the loss is not finite after epoch {epoch + 1}; use a "
                f"smaller lr (got lr={settings.lr}) or rescale X"
            )
        total = x.new_zeros(())

    fit(
        model,
        loss,
        num_samples=int(x.shape[0]),
        epochs=settings.epochs,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        batch_size=settings.batch_size,
        generator=torch.Generator().manual_seed(settings.seed),
        end_of_epoch=end_of_epoch,
    )
