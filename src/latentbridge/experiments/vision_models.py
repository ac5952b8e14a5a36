"""Vision encoders trained from scratch: the seeds and architectures that zero-shot stitching
stitches across.

:func:`train_encoder` trains one small, CPU-friendly encoder (``mlp``, ``cnn`` or ``resnet``)
with a linear classification head on a greyscale vision dataset, keeps the encoder (the head is
only used for training and for its reported accuracy) and stores it, so that the same options
never train twice::

    <cache_dir()>/models/vision/<key>/encoder.safetensors   the encoder's state_dict
    <cache_dir()>/models/vision/<key>/manifest.json         options, normalisation, accuracies,
                                                             SHA-256 of the safetensors file

``key`` is the SHA-256 of every option that changes the trained weights. An entry is written into
a temporary folder and renamed into place; a read checks the manifest against the request and the
file's SHA-256 against the manifest, and an unusable entry is reported (a warning), deleted and
retrained. Nothing is pickled.

Training is a function of its options alone: the weights are initialised from
``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the caller's global RNG is left
as it was) and mini-batches are shuffled by a ``torch.Generator`` seeded with ``seed``. Every
input is ``(x / 255 - mean) / std`` with ``mean`` and ``std`` the pixel statistics of the
training images.

:meth:`TrainedEncoder.register` makes the encoder available to :func:`latentbridge.encode` by
name; the embedding cache keys on its weights' fingerprint.

Seconds per epoch on Fashion-MNIST (60,000 images, defaults) as measured on one CPU core:
:data:`SECONDS_PER_EPOCH` (``mlp`` about 3, ``cnn`` and ``resnet`` about 25).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import check_choice, check_positive_int, check_seed, warn_user
from ..cache import EmbeddingCache, cache_dir
from .config import VISION_ARCHITECTURES

if TYPE_CHECKING:
    from ..encoders import Encoder

from .._files import make_temp_dir, sha256_file

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_EPOCHS",
    "SECONDS_PER_EPOCH",
    "TrainedEncoder",
    "TrainingEvent",
    "build_encoder",
    "load_trained",
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
# Validation
# --------------------------------------------------------------------------------------------


def _check_dataset(dataset: object) -> None:
    from .. import data

    check_choice(dataset, "dataset", [spec.name for spec in data.available("vision")])


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingEvent:
    """What :func:`train_encoder` tells its ``progress`` callback.

    ``kind`` is ``"cached"`` (a stored encoder was loaded, nothing trained), ``"epoch"`` (after
    each epoch, with its mean training ``loss`` and training ``accuracy``) or ``"trained"``
    (training finished and the encoder was stored).
    """

    kind: str
    name: str
    epoch: int
    epochs: int
    loss: float | None = None
    accuracy: float | None = None


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
        """The latents ``float32 (N, latent_dim)`` of uint8 images ``(N, H, W)``."""
        x = self.preprocess(images)
        return _forward(self.module, x, batch_size).numpy()

    def encoder(self) -> Encoder:
        """This trained module as an encoder object named :attr:`name` (nothing registered):
        ``latentbridge.encode(dataset, trained.encoder(), split)`` caches on its weights."""
        from ..encoders.generic import ModuleEncoder

        return ModuleEncoder(self.name, self.module, "vision", self.latent_dim, self.preprocess)

    def register(self, name: str | None = None, *, overwrite: bool = True) -> Encoder:
        """Register the encoder (as ``name``, default :attr:`name`) and return it.

        Uses :func:`latentbridge.encoders.register_module` with :meth:`preprocess`, so that
        ``latentbridge.encode(dataset, name, split)`` works and its cache keys on the weights.
        """
        from .. import encoders

        return encoders.register_module(
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


def encoder_name(dataset: str, architecture: str, seed: int, latent_dim: int) -> str:
    """The default name of an encoder trained by :func:`train_encoder`."""
    dim = "" if latent_dim == 64 else f"-d{latent_dim}"
    return f"{dataset}/{architecture}{dim}-s{seed}"


def _root(cache: str | os.PathLike[str] | EmbeddingCache | None) -> Path:
    if cache is None:
        return cache_dir()
    if isinstance(cache, EmbeddingCache):
        return cache.root
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be a path, an EmbeddingCache or None, got {type(cache)}")
    return Path(cache).expanduser()


def load_trained(
    path: str | os.PathLike[str], options: Mapping[str, Any] | None = None
) -> TrainedEncoder:
    """Load the entry in ``path`` as a :class:`TrainedEncoder`, verified.

    Raises ``ValueError`` saying what is wrong when the manifest is missing or malformed, its
    ``options`` differ from ``options`` (when given), the weights' SHA-256 differs from the
    manifest's, or the weights do not fit the architecture.
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
    except Exception as exc:  # malformed manifest or weights that do not fit
        raise ValueError(f"weights do not load ({exc})") from exc
    module.eval()
    return TrainedEncoder(
        name=str(manifest["name"]),
        module=module,
        latent_dim=int(opts["latent_dim"]),
        manifest=manifest,
        path=folder,
        cached=True,
    )


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
    progress: Callable[[TrainingEvent], None] | None = None,
    *,
    dataset_options: Mapping[str, Any] | None = None,
    refresh: bool = False,
) -> TrainedEncoder:
    """Train (or load from the cache) one encoder of ``architecture`` on ``dataset``.

    The model is ``head(encoder(x))`` with ``head`` a Linear(latent_dim, num_classes), trained by
    Adam(lr) on the cross-entropy of the training split (or of a class-balanced subset of
    ``train_subset`` images, deterministic in ``seed``) for ``epochs`` epochs of shuffled
    mini-batches of ``batch_size``. The head's accuracy on the training images and on the test
    split is recorded in the manifest (``train_accuracy``, ``test_accuracy``).

    Args:
        dataset: a greyscale vision dataset of :func:`latentbridge.data.available`.
        architecture: one of :data:`ARCHITECTURES`.
        seed: initialisation, shuffling and subset seed; the result is a function of the options.
        latent_dim: width of the latent space (the encoder's output).
        cache: root of the cache (a path or an :class:`~latentbridge.cache.EmbeddingCache`);
            default :func:`latentbridge.cache.cache_dir`.
        progress: ``progress(TrainingEvent)``, told ``"cached"`` when nothing is trained, else
            after every epoch and once trained.
        dataset_options: options for :func:`latentbridge.data.load` (part of the key).
        refresh: retrain even if a stored encoder exists.

    Returns:
        A :class:`TrainedEncoder` in eval mode.
    """
    from .. import __version__, data
    from ..cache import make_key

    _check_dataset(dataset)
    check_choice(architecture, "architecture", ARCHITECTURES)
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    seed = check_seed(seed)
    epochs = check_positive_int(epochs, "epochs", allow_zero=True)
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a positive float, got {lr!r}")
    if train_subset is not None:
        train_subset = check_positive_int(train_subset, "train_subset")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    load_options = dict(dataset_options or {})
    options: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "dataset": dataset,
        "dataset_options": load_options,
        "architecture": architecture,
        "seed": seed,
        "latent_dim": int(latent_dim),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": float(lr),
        "train_subset": train_subset,
    }
    options = json.loads(json.dumps(options, sort_keys=True, default=str))  # as stored
    key = make_key(options)
    folder = _root(cache) / "models" / "vision" / key
    name = encoder_name(dataset, architecture, seed, int(latent_dim))

    if folder.exists() and not refresh:
        try:
            trained = load_trained(folder, options)
        except ValueError as exc:
            warn_user(f"stored encoder {name!r} ({key[:12]}) is unusable ({exc}); retraining it")
            shutil.rmtree(folder, ignore_errors=True)
        else:
            if progress is not None:
                progress(TrainingEvent("cached", name, epochs, epochs))
            return trained

    train = data.load(dataset, "train", **load_options)
    test = data.load(dataset, "test", **load_options)
    if not isinstance(train, data.Dataset) or not isinstance(test, data.Dataset):
        raise ValueError(f"dataset {dataset!r} is not an image dataset")
    if train.inputs.ndim != 3:
        raise ValueError(
            f"dataset {dataset!r} must hold greyscale images (N, H, W), got {train.inputs.shape}"
        )
    images, labels = train.inputs, train.labels
    if train_subset is not None:
        from ..data.vision import balanced_subset

        idx = balanced_subset(labels, train_subset, seed, train.num_classes)
        images, labels = images[idx], labels[idx]
    pixels = images.astype(np.float64) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    std = std if std > 0 else 1.0
    x_train = _normalise(images, mean, std)
    y_train = torch.from_numpy(labels)
    x_test = _normalise(test.inputs, mean, std)
    y_test = torch.from_numpy(test.labels)
    image_size = (int(images.shape[1]), int(images.shape[2]))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(architecture, int(latent_dim), image_size)
        head = nn.Linear(int(latent_dim), train.num_classes)
    model = nn.Sequential(encoder, head)
    optimiser = torch.optim.Adam(model.parameters(), lr=float(lr))
    generator = torch.Generator().manual_seed(seed)
    n = len(x_train)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            xb, yb = x_train[batch], y_train[batch]
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total_loss += float(loss.detach()) * len(batch)
            correct += int((logits.detach().argmax(1) == yb).sum())
        if progress is not None:
            progress(TrainingEvent("epoch", name, epoch, epochs, total_loss / n, correct / n))
    model.eval()

    manifest: dict[str, Any] = {
        "name": name,
        "key": key,
        "options": options,
        "architecture": architecture,
        "latent_dim": int(latent_dim),
        "dataset": dataset,
        "seed": seed,
        "epochs": epochs,
        "image_size": list(image_size),
        "num_classes": train.num_classes,
        "num_train": n,
        "mean": mean,
        "std": std,
        "train_accuracy": _accuracy(model, x_train, y_train),
        "test_accuracy": _accuracy(model, x_test, y_test),
        "latentbridge_version": __version__,
        "torch_version": torch.__version__,
    }
    _store(folder, encoder, manifest)
    if progress is not None:
        progress(TrainingEvent("trained", name, epochs, epochs))
    return TrainedEncoder(
        name=name,
        module=encoder,
        latent_dim=int(latent_dim),
        manifest=manifest,
        path=folder,
        cached=False,
    )


def _store(folder: Path, encoder: nn.Module, manifest: dict[str, Any]) -> None:
    """Write the weights and the manifest into a temporary folder, then rename it to ``folder``.

    The manifest gets the SHA-256 of the weights file. When another process stored the same
    entry meanwhile, that entry is kept (it holds the same weights).
    """
    from safetensors.torch import save_file

    tmp = make_temp_dir(folder.parent, folder.name)
    try:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}
        save_file(state, str(tmp / _WEIGHTS))
        manifest["sha256"] = sha256_file(tmp / _WEIGHTS)
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
