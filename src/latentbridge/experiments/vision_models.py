"""Vision encoders trained from scratch: the seeds and architectures that zero-shot stitching
stitches across.

:func:`train_encoder` trains one small, CPU-friendly encoder (``mlp``, ``cnn`` or ``resnet``)
with a linear classification head on a greyscale vision dataset, keeps the encoder (the head is
only used for training and for its reported accuracy) and stores it, so that the same options
never train twice::

    <cache_dir()>/models/vision/<key>/encoder.safetensors   the encoder's state_dict
    <cache_dir()>/models/vision/<key>/manifest.json         options, normalisation, accuracies,
                                                             SHA-256 of the safetensors file

``key`` is :attr:`TrainingOptions.key`, the SHA-256 of every option that changes the trained
weights. :func:`train_encoder` is the three steps below, behind that key:

- :func:`fit_encoder` trains (nothing is written) and returns the encoder and its manifest;
- :func:`store_trained` writes an entry into a temporary folder and renames it into place;
- :func:`load_trained` reads an entry back, checking the manifest against the request and the
  weights' SHA-256 against the manifest. :func:`train_encoder` reports an unusable entry (a
  warning), deletes it and retrains. Nothing is pickled.

Training is a function of its options alone: the weights are initialised inside
:func:`~latentbridge.experiments.training.seeded` (``seed``; the caller's global RNG is left as
it was) and trained by :func:`~latentbridge.experiments.training.fit`, whose mini-batches are
shuffled by a ``torch.Generator`` seeded with ``seed``. Every input is
``(x / 255 - mean) / std`` with ``mean`` and ``std`` the pixel statistics of the training images.

:meth:`TrainedEncoder.register` makes the encoder available to :func:`latentbridge.encode` by
name; the embedding cache keys on its weights' fingerprint.

Seconds per epoch on Fashion-MNIST (60,000 images, defaults) as measured on one CPU core:
:data:`SECONDS_PER_EPOCH` (``mlp`` about 3, ``cnn`` and ``resnet`` about 25).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__, data
from .._devices import resolve_device
from .._files import make_temp_dir, sha256_file
from .._validation import check_choice, check_positive_int, check_seed, warn_user
from ..cache import EmbeddingCache, cache_dir, make_key
from ..encoders import Encoder, ModuleEncoder, register_module
from .config import VISION_ARCHITECTURES
from .training import fit, seeded

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_EPOCHS",
    "SECONDS_PER_EPOCH",
    "TrainedEncoder",
    "TrainingEvent",
    "TrainingOptions",
    "build_encoder",
    "encoder_name",
    "fit_encoder",
    "load_trained",
    "store_trained",
    "train_encoder",
    "train_zoo",
]

ARCHITECTURES: tuple[str, ...] = VISION_ARCHITECTURES
DEFAULT_EPOCHS = 3
#: Bumped whenever a change here changes what a given set of options trains.
FORMAT_VERSION = 1
#: Measured seconds per training epoch on Fashion-MNIST (60,000 28x28 images, batch 128) with
#: ``torch.set_num_threads(1)`` on a shared 2-core machine (other jobs running), torch 2.13 CPU:
#: epoch 2 of a 12,800-image subset, scaled to 60,000. On a loaded machine, more intra-op threads
#: than free cores make OpenMP spin-waits dominate; set the thread count to the free cores.
SECONDS_PER_EPOCH: dict[str, float] = {"mlp": 3.2, "cnn": 24.8, "resnet": 22.8}

_WEIGHTS = "encoder.safetensors"
_MANIFEST = "manifest.json"
_EVAL_BATCH = 1024


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv -> BatchNorm -> ReLU -> 2x2 max pool (ceil mode, so odd sizes keep a border)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``, the ResNet basic block.

    The shortcut is the identity, or a strided 1x1 conv + BatchNorm when the block changes the
    width or the resolution.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def build_encoder(architecture: str, latent_dim: int, image_size: tuple[int, int]) -> nn.Module:
    """A fresh encoder ``(N, 1, H, W) float -> (N, latent_dim)`` (initialised from the global RNG).

    - ``mlp``: flatten -> Linear(H*W, 512) -> ReLU -> Linear(512, latent_dim);
    - ``cnn``: three conv blocks (16, 32, 64 channels; 3x3 conv, BatchNorm, ReLU, 2x2 max pool)
      -> global average pool -> Linear(64, latent_dim);
    - ``resnet``: stem (3x3 conv stride 2, 16 channels, BatchNorm, ReLU) -> three stages of one
      :class:`BasicBlock` (16, 32, 64 channels, stride 1, 2, 2) -> global average pool ->
      Linear(64, latent_dim).

    Widths are kept small so that an epoch of 60,000 28x28 images takes well under a minute on
    two CPU cores (see :data:`SECONDS_PER_EPOCH`).

    The convolutional encoders accept any image size; the MLP only ``image_size``.
    """
    check_choice(architecture, "architecture", ARCHITECTURES)
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    h, w = image_size
    if architecture == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(h * w, 512), nn.ReLU(inplace=True), nn.Linear(512, latent_dim)
        )
    if architecture == "cnn":
        return nn.Sequential(
            _conv_block(1, 16),
            _conv_block(16, 32),
            _conv_block(32, 64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, latent_dim),
        )
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        BasicBlock(16, 16),
        BasicBlock(16, 32, stride=2),
        BasicBlock(32, 64, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, latent_dim),
    )


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def encoder_name(dataset: str, architecture: str, seed: int, latent_dim: int) -> str:
    """The default name of an encoder trained by :func:`train_encoder`."""
    dim = "" if latent_dim == 64 else f"-d{latent_dim}"
    return f"{dataset}/{architecture}{dim}-s{seed}"


@dataclass(frozen=True)
class TrainingOptions:
    """Everything that decides an encoder's trained weights, validated on construction.

    ``dataset`` is a greyscale vision dataset of :func:`latentbridge.data.available` (loaded
    with ``dataset_options``); ``architecture`` one of :data:`ARCHITECTURES`; ``seed`` seeds the
    initialisation, the shuffling and the ``train_subset`` (a class-balanced subset of the
    training split; ``None``: all of it); ``latent_dim`` is the encoder's output width; Adam
    (``lr``) runs ``epochs`` epochs of mini-batches of ``batch_size``; ``device`` is the
    device *type* it trains on (``cpu`` or ``cuda``: a GPU's kernels round differently, so
    weights trained there are another entry of the model cache; which GPU does not matter).
    A value of the wrong type or range raises ``ValueError`` naming the option.
    """

    dataset: str = "fashion-mnist"
    architecture: str = "cnn"
    seed: int = 0
    latent_dim: int = 64
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    lr: float = 1e-3
    train_subset: int | None = None
    dataset_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_choice(self.dataset, "dataset", [spec.name for spec in data.available("vision")])
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.device, "device", ("cpu", "cuda"))
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
            raise ValueError(f"lr must be a positive float, got {lr!r}")
        checked = {
            "latent_dim": check_positive_int(self.latent_dim, "latent_dim"),
            "seed": check_seed(self.seed),
            "epochs": check_positive_int(self.epochs, "epochs", allow_zero=True),
            "batch_size": check_positive_int(self.batch_size, "batch_size"),
            "lr": float(lr),
            "dataset_options": dict(self.dataset_options),
        }
        if self.train_subset is not None:
            checked["train_subset"] = check_positive_int(self.train_subset, "train_subset")
        for name, value in checked.items():  # the normalised values (a frozen dataclass)
            object.__setattr__(self, name, value)

    @property
    def name(self) -> str:
        """The trained encoder's name, :func:`encoder_name` of these options."""
        return encoder_name(self.dataset, self.architecture, self.seed, self.latent_dim)

    def stored(self) -> dict[str, Any]:
        """The options as a manifest stores them (JSON values, with the format version)."""
        options = {
            "format": FORMAT_VERSION,
            "dataset": self.dataset,
            "dataset_options": dict(self.dataset_options),
            "architecture": self.architecture,
            "seed": self.seed,
            "latent_dim": self.latent_dim,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "train_subset": self.train_subset,
        }
        if self.device != "cpu":  # entries trained on the CPU keep the keys they always had
            options["device"] = self.device
        stored: dict[str, Any] = json.loads(json.dumps(options, sort_keys=True, default=str))
        return stored

    @property
    def key(self) -> str:
        """SHA-256 of :meth:`stored`: the entry's folder name in the model cache."""
        return make_key(self.stored())


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingEvent:
    """What :func:`train_encoder` tells its ``progress`` callback.

    ``kind`` is ``"cached"`` (a stored encoder was loaded, nothing trained), ``"epoch"`` (after
    each epoch ``1..epochs``, with its mean training ``loss`` and training ``accuracy``) or
    ``"trained"`` (training finished and the encoder was stored).
    """

    kind: str
    name: str
    epoch: int
    epochs: int
    loss: float | None = None
    accuracy: float | None = None


Progress = Callable[[TrainingEvent], None]


@dataclass
class TrainedEncoder:
    """A trained encoder: ``module`` maps ``(N, 1, H, W)`` normalised images to ``latent_dim``.

    ``manifest`` holds the training options, the normalisation ``mean``/``std``, the training
    accuracy and the head's ``test_accuracy``; ``path`` is the cache folder; ``cached`` says
    whether it was loaded rather than trained by the call that returned it.
    """

    name: str
    module: nn.Module
    latent_dim: int
    manifest: dict[str, Any]
    path: Path
    cached: bool = field(default=False, compare=False)

    @classmethod
    def from_entry(
        cls, module: nn.Module, manifest: dict[str, Any], path: Path, *, cached: bool
    ) -> TrainedEncoder:
        """The encoder of a cache entry: named and sized by its ``manifest``."""
        latent_dim = int(manifest["options"]["latent_dim"])
        return cls(str(manifest["name"]), module, latent_dim, manifest, path, cached)

    @property
    def mean(self) -> float:
        return float(self.manifest["mean"])

    @property
    def std(self) -> float:
        return float(self.manifest["std"])

    def preprocess(self, images: np.ndarray) -> Tensor:
        """uint8 ``(N, H, W)`` -> float32 ``(N, 1, H, W)``, ``(images / 255 - mean) / std``."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"images must be uint8 greyscale (N, H, W) for {self.name!r}, got "
                f"{images.dtype} {images.shape}"
            )
        expected = tuple(self.manifest["image_size"])
        if images.shape[1:] != expected:
            raise ValueError(
                f"images must be {expected[0]}x{expected[1]} for {self.name!r} (its training "
                f"size), got {images.shape[1]}x{images.shape[2]}"
            )
        return _normalise(images, self.mean, self.std)

    def encode(self, images: np.ndarray, batch_size: int = _EVAL_BATCH) -> np.ndarray:
        """The latents ``float32 (N, latent_dim)`` of uint8 images ``(N, H, W)`` (computed
        where the module is)."""
        param = next(self.module.parameters())
        x = self.preprocess(images).to(param.device)
        return _forward(self.module, x, batch_size).cpu().numpy()

    def encoder(self) -> Encoder:
        """This trained module as an encoder object named :attr:`name` (nothing registered):
        ``latentbridge.encode(dataset, trained.encoder(), split)`` caches on its weights."""
        return ModuleEncoder(self.name, self.module, "vision", self.latent_dim, self.preprocess)

    def register(self, name: str | None = None, *, overwrite: bool = True) -> Encoder:
        """Register the encoder (as ``name``, default :attr:`name`) and return it.

        Uses :func:`latentbridge.encoders.register_module` with :meth:`preprocess`, so that
        ``latentbridge.encode(dataset, name, split)`` works and its cache keys on the weights.
        """
        return register_module(
            name or self.name,
            self.module,
            "vision",
            self.latent_dim,
            self.preprocess,
            overwrite=overwrite,
        )


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _normalise(images: np.ndarray, mean: float, std: float) -> Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    return x.sub_(mean).div_(std).unsqueeze(1)


def _forward(module: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            return torch.cat([module(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        module.train(was_training)


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    if len(x) == 0:
        return float("nan")
    logits = _forward(model, x, _EVAL_BATCH)
    return float((logits.argmax(1) == y).float().mean())


@dataclass(frozen=True)
class _TrainingData:
    """Normalised images ``(N, 1, H, W)`` and labels of both splits, with the statistics."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    mean: float
    std: float
    num_classes: int

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    def to(self, device: torch.device) -> _TrainingData:
        """The same data with the tensors on ``device``."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )


def _training_data(options: TrainingOptions) -> _TrainingData:
    """Both splits of ``options.dataset``, normalised by the (subset's) training pixels."""
    train = data.load(options.dataset, "train", **options.dataset_options)
    test = data.load(options.dataset, "test", **options.dataset_options)
    if not isinstance(train, data.Dataset) or not isinstance(test, data.Dataset):
        raise ValueError(f"dataset {options.dataset!r} is not an image dataset")
    if train.inputs.ndim != 3:
        raise ValueError(
            f"dataset {options.dataset!r} must hold greyscale images (N, H, W), got "
            f"{train.inputs.shape}"
        )
    images, labels = train.inputs, train.labels
    if options.train_subset is not None:
        from ..data.vision import balanced_subset  # the vision loaders, only when subsetting

        idx = balanced_subset(labels, options.train_subset, options.seed, train.num_classes)
        images, labels = images[idx], labels[idx]
    pixels = images.astype(np.float64) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    std = std if std > 0 else 1.0
    return _TrainingData(
        x_train=_normalise(images, mean, std),
        y_train=torch.from_numpy(labels),
        x_test=_normalise(test.inputs, mean, std),
        y_test=torch.from_numpy(test.labels),
        mean=mean,
        std=std,
        num_classes=train.num_classes,
    )


@dataclass
class _EpochTally:
    """One epoch's sums over its mini-batches: loss times batch size, correct predictions."""

    loss: float = 0.0
    correct: int = 0

    def add(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        self.loss += float(loss.detach()) * len(labels)
        self.correct += int((logits.detach().argmax(1) == labels).sum())


def fit_encoder(
    options: TrainingOptions,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``options``' encoder with a linear head; returns the encoder (eval mode) and its
    manifest (everything :func:`store_trained` writes but the weights' SHA-256). Writes nothing.

    The model is ``head(encoder(x))``, both initialised in :func:`seeded` (``options.seed``),
    trained by :func:`~latentbridge.experiments.training.fit`: Adam(``lr``) on the mean
    cross-entropy of each mini-batch, in an order drawn from a generator seeded with ``seed``.
    ``progress`` is told an ``"epoch"`` :class:`TrainingEvent` after every epoch. It trains
    on ``device`` (default: ``options.device``; a ``cuda:N`` picks the GPU), initialised on
    the CPU and moved there with the images; the encoder comes back on that device.
    """
    device = resolve_device(options.device if device is None else str(device), "device")
    if device.type != options.device:
        raise ValueError(f"device {str(device)!r} is not options.device {options.device!r}")
    split = _training_data(options).to(device)
    with seeded(options.seed):
        encoder = build_encoder(options.architecture, options.latent_dim, split.image_size)
        head = nn.Linear(options.latent_dim, split.num_classes)
    model = nn.Sequential(encoder, head).to(device)
    n = len(split.x_train)
    tally = _EpochTally()

    def loss(batch: Tensor | None) -> Tensor:
        assert batch is not None  # fit is given a batch_size, so it passes indices
        xb, yb = split.x_train[batch.to(device)], split.y_train[batch.to(device)]
        logits = model(xb)
        value = nn.functional.cross_entropy(logits, yb)
        tally.add(value, logits, yb)
        return value

    def end_of_epoch(epoch: int) -> None:
        nonlocal tally
        if progress is not None:
            mean_loss, accuracy = tally.loss / n, tally.correct / n
            progress(
                TrainingEvent("epoch", options.name, epoch + 1, options.epochs, mean_loss, accuracy)
            )
        tally = _EpochTally()

    fit(
        model,
        loss,
        num_samples=n,
        epochs=options.epochs,
        lr=options.lr,
        batch_size=options.batch_size,
        generator=torch.Generator().manual_seed(options.seed),
        end_of_epoch=end_of_epoch,
    )
    return encoder, _manifest(options, split, model)


def _manifest(options: TrainingOptions, split: _TrainingData, model: nn.Module) -> dict[str, Any]:
    """What the manifest records of a trained ``model`` (encoder + head), but its SHA-256."""
    return {
        "name": options.name,
        "key": options.key,
        "options": options.stored(),
        "architecture": options.architecture,
        "latent_dim": options.latent_dim,
        "dataset": options.dataset,
        "seed": options.seed,
        "epochs": options.epochs,
        "image_size": list(split.image_size),
        "num_classes": split.num_classes,
        "num_train": len(split.x_train),
        "mean": split.mean,
        "std": split.std,
        "train_accuracy": _accuracy(model, split.x_train, split.y_train),
        "test_accuracy": _accuracy(model, split.x_test, split.y_test),
        "latentbridge_version": __version__,
        "torch_version": torch.__version__,
    }


# --------------------------------------------------------------------------------------------
# The model cache
# --------------------------------------------------------------------------------------------


def _root(cache: str | os.PathLike[str] | EmbeddingCache | None) -> Path:
    if cache is None:
        return cache_dir()
    if isinstance(cache, EmbeddingCache):
        return cache.root
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be a path, an EmbeddingCache or None, got {type(cache)}")
    return Path(cache).expanduser()


def store_trained(
    folder: str | os.PathLike[str], encoder: nn.Module, manifest: Mapping[str, Any]
) -> TrainedEncoder:
    """Store ``encoder`` and ``manifest`` (from :func:`fit_encoder`) as the entry ``folder``.

    The weights and the manifest, which gets the SHA-256 of the weights file, are written into
    a temporary folder that is then renamed to ``folder``. When another process stored the
    same entry meanwhile, that entry is kept (it holds the same weights).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    stored = dict(manifest)
    tmp = make_temp_dir(folder.parent, folder.name)
    try:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}
        save_file(state, str(tmp / _WEIGHTS))
        stored["sha256"] = sha256_file(tmp / _WEIGHTS)
        (tmp / _MANIFEST).write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TrainedEncoder.from_entry(encoder, stored, folder, cached=False)


def load_trained(
    path: str | os.PathLike[str], options: Mapping[str, Any] | None = None
) -> TrainedEncoder:
    """Load the entry in ``path`` as a :class:`TrainedEncoder`, verified.

    Raises ``ValueError`` saying what is wrong when the manifest is missing or malformed, its
    ``options`` differ from ``options`` (when given, as :meth:`TrainingOptions.stored`), the
    weights' SHA-256 differs from the manifest's, or the weights do not fit the architecture.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"manifest unreadable ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ValueError("manifest is not a JSON object")
    if options is not None and manifest.get("options") != dict(options):
        raise ValueError("manifest options differ from the request")
    weights = folder / _WEIGHTS
    if not weights.is_file():
        raise ValueError(f"{_WEIGHTS} is missing")
    if sha256_file(weights) != manifest.get("sha256"):
        raise ValueError(f"{_WEIGHTS} does not match the SHA-256 in the manifest")
    try:
        opts = manifest["options"]
        module = build_encoder(
            opts["architecture"], int(opts["latent_dim"]), tuple(manifest["image_size"])
        )
        module.load_state_dict(load_file(str(weights)), strict=True)
        trained = TrainedEncoder.from_entry(module.eval(), manifest, folder, cached=True)
    except Exception as exc:  # malformed manifest or weights that do not fit
        raise ValueError(f"weights do not load ({exc})") from exc
    return trained


def _usable_entry(folder: Path, options: TrainingOptions) -> TrainedEncoder | None:
    """The entry stored in ``folder`` for ``options``, or None when there is none; an unusable
    entry is reported (a warning) and deleted."""
    if not folder.exists():
        return None
    try:
        return load_trained(folder, options.stored())
    except ValueError as exc:
        warn_user(
            f"stored encoder {options.name!r} ({options.key[:12]}) is unusable ({exc}); "
            "retraining it"
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None


def train_encoder(
    dataset: str = "fashion-mnist",
    architecture: str = "cnn",
    seed: int = 0,
    latent_dim: int = 64,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 128,
    lr: float = 1e-3,
    train_subset: int | None = None,
    cache: str | os.PathLike[str] | EmbeddingCache | None = None,
    progress: Progress | None = None,
    *,
    dataset_options: Mapping[str, Any] | None = None,
    refresh: bool = False,
    device: str = "cpu",
) -> TrainedEncoder:
    """Load the encoder these options train from the model cache, or train and store it.

    The options are those of :class:`TrainingOptions` (see there and :func:`fit_encoder` for
    what is trained, and how); the head's accuracy on the training images and on the test
    split is recorded in the manifest (``train_accuracy``, ``test_accuracy``).

    Args:
        cache: root of the cache (a path or an :class:`~latentbridge.cache.EmbeddingCache`);
            default :func:`latentbridge.cache.cache_dir`.
        progress: ``progress(TrainingEvent)``, told ``"cached"`` when nothing is trained, else
            after every epoch and once trained.
        dataset_options: options for :func:`latentbridge.data.load` (part of the key).
        refresh: retrain even if a stored encoder exists.
        device: where to train: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA where present);
            its type is part of the options (and the key). The encoder comes back on the
            CPU, trained or loaded (``trained.encoder().to(...)`` encodes elsewhere).

    Returns:
        A :class:`TrainedEncoder` in eval mode.
    """
    options = TrainingOptions(
        dataset=dataset,
        architecture=architecture,
        seed=seed,
        latent_dim=latent_dim,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        train_subset=train_subset,
        dataset_options=dict(dataset_options or {}),
        device=resolve_device(device).type,
    )
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    folder = _root(cache) / "models" / "vision" / options.key
    trained = None if refresh else _usable_entry(folder, options)
    if trained is None:
        trained = store_trained(folder, *fit_encoder(options, progress, resolve_device(device)))
        trained.module.cpu()  # as a stored one loads: the same encoder, trained or cached
    if progress is not None:
        kind = "cached" if trained.cached else "trained"
        progress(TrainingEvent(kind, options.name, options.epochs, options.epochs))
    return trained


def train_zoo(
    dataset: str = "fashion-mnist",
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: Sequence[int] = (0, 1),
    latent_dim: int | Mapping[str, int] = 64,
    **options: Any,
) -> list[TrainedEncoder]:
    """:func:`train_encoder` for every architecture and seed (architecture-major order).

    ``latent_dim`` is one width for all, or a mapping architecture -> width (missing: 64).
    ``options`` go to :func:`train_encoder` unchanged.
    """
    if isinstance(architectures, str):
        raise ValueError(f"architectures must be a sequence of names, got {architectures!r}")
    for architecture in architectures:
        check_choice(architecture, "architecture", ARCHITECTURES)
    dims: Mapping[str, int]
    if isinstance(latent_dim, Mapping):
        unknown = set(latent_dim) - set(ARCHITECTURES)
        if unknown:
            raise ValueError(
                f"latent_dim keys must be among {list(ARCHITECTURES)}, got {sorted(unknown)}"
            )
        dims = latent_dim
    else:
        dims = {a: latent_dim for a in architectures}
    return [
        train_encoder(
            dataset, architecture, seed=seed, latent_dim=dims.get(architecture, 64), **options
        )
        for architecture in architectures
        for seed in seeds
    ]
