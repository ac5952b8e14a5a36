"""Zero-shot stitching of autoencoders: the ``reconstruction`` task of ``latentbridge run``.

Protocol, per dataset of the config (``config.reconstruction`` holds the options):

1. Images of the train and test splits are scaled to ``[0, 1]`` (``uint8 / 255``), greyscale
   ``(N, H, W)`` or colour ``(N, H, W, C)``, any size.
2. K = ``min(anchors.num, n_train)`` anchor images are chosen once as indices into the full
   training split (:func:`..spaces.select_anchor_indices` on the flattened pixels, seed
   ``anchors.seed``) and shared by every model.
3. Models ``f"{kind}-{seed}"`` for ``kind`` in ``reconstruction.kinds`` (``ae``, ``vae``) and
   ``seed`` in ``seeds`` are trained from scratch once per space variant
   (:func:`.variants.from_config`): ``encoder -> latent z -> bottleneck -> decoder``, where
   the bottleneck is

   - ``absolute``: the identity (z goes straight to the decoder);
   - a projection name: :class:`~latentbridge.RelativeProjection` of z onto the anchors
     (``variants.normalization``), then a LayerNorm over the K coordinates;
   - ``product:<aggregation>``: :class:`~latentbridge.ProductProjection` of the
     ``variants.product_projections`` with that aggregation (which LayerNorms each subspace).

   The relative layer is trained end to end: at every training step the K anchor images are
   re-encoded by the current encoder, with gradients, and z is projected onto them.
4. Zero-shot stitching: encoder i encodes the test images *and the anchors*, and decoder j (with
   its bottleneck's learned weights) decodes the projection, for every ordered pair (i, j);
   i = j is the non-stitched reference. ``mse`` is the mean squared error per pixel (``[0, 1]``
   scale) over the test split, ``psnr = 10 log10(1 / mse)`` from that mse.

Choices:

- Architecture (:func:`build_model`): two stride-2 3x3 convolutions (``hidden``, ``2 hidden``
  channels, ReLU) -> Linear to ``latent_dim`` (twice that for the VAE: mean and log-variance);
  the decoder mirrors it (Linear, ReLU, two stride-2 transposed convolutions whose output
  padding restores the exact input size, odd sizes included) and ends in a sigmoid. No
  BatchNorm: the anchors are encoded in their own batch, and batch statistics would make their
  latents depend on it.
- VAE: during training the projection is applied to the sampled ``z = mean + eps * std``; at
  evaluation to the mean. The anchors are always encoded to their means (they are the fixed
  reference frame, not samples). The loss is ``MSE (summed over pixels, mean over the batch) +
  beta * KL(q(z|x) || N(0, I))`` (KL summed over the latent, mean over the batch); the AE's is
  the MSE term alone.
- Training is a function of (variant, kind, seed, options): the weights are initialised from
  ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the caller's RNG is left as
  it was); mini-batch order and the VAE noise come from a ``torch.Generator`` seeded with
  ``seed``; ``train_subset`` picks a class-balanced subset of the training split, deterministic
  in ``seed`` (:func:`latentbridge.data.vision.balanced_subset`). Adam(``lr``), ``epochs``,
  ``batch_size``.
- Weights are stored under ``DIR/models/`` (:func:`.results.save_state`) and reused, so a
  restarted run retrains nothing; the models of a variant are only loaded (or trained) when a
  cell or the image grid of that variant is missing.

Outputs: one cell per (variant, decoder model), rows ``[dataset, decoder model, encoder model,
variant, decoder seed, metric, value]`` (the decoder is the ``source`` column, the
encoder the ``target`` column), and an image grid per variant,
``DIR/grids/<dataset>__<variant>.png``: test images, the first model's reconstruction, and the
second model's encoder stitched to the first model's decoder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..._devices import resolve_device
from ..._files import write_bytes_atomic
from ..._plotting import figure, plain_text, png_bytes
from ..._validation import check_positive_int, check_seed
from ...modules import ProductProjection
from ...projections import PAPER_PRODUCT
from ...stitching import output_agreement
from ..config import AUTOENCODERS, DatasetConfig, ReconstructionConfig, RunConfig
from ..results import (
    CONSISTENCY,
    CONSISTENCY_METRIC,
    CellStore,
    ResultRow,
    load_state,
    model_path,
    save_state,
)
from ..selection import Sides, combine_targets, weighted_mean
from ..spaces import select_anchor_indices
from ..tables import Section, slug, stitching_section
from ..task import Cell, MetricInfo, Plan, RunContext
from ..training import fit, seeded
from ..variants import (
    SELECTIONS,
    Selection,
    Translation,
    Variant,
    build_layer,
    candidates,
    from_config,
    parse,
)

__all__ = [
    "KINDS",
    "Bottleneck",
    "ReconstructionModel",
    "build_model",
    "grid_path",
    "model_names",
    "reconstruct",
    "reconstruction_loss",
    "train_model",
    "write_grid",
]

#: The model kinds: a deterministic autoencoder and a variational one.
KINDS: tuple[str, ...] = AUTOENCODERS
_EVAL_BATCH = 1024


# -- the model ------------------------------------------------------------------------------


def _check_image_shape(image_shape: object) -> tuple[int, int, int]:
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {image_shape!r}")
    dims = tuple(check_positive_int(v, "image_shape[i]") for v in image_shape)
    return (1, dims[0], dims[1]) if len(dims) == 2 else (dims[0], dims[1], dims[2])


def _down(size: int) -> int:
    """Output size of a 3x3, stride-2, padding-1 convolution: ``ceil(size / 2)``."""
    return (size + 1) // 2


class Bottleneck(nn.Module):
    """Latent ``z (N, D)`` -> decoder input, given the anchors' latents ``(K, D)``.

    ``absolute``: the identity; a projection name: RelativeProjection then LayerNorm(K);
    ``product:<aggregation>``: ProductProjection. The learned weights (LayerNorm, aggregation)
    belong to the decoder side: stitching keeps them and swaps the anchors' latents.
    """

    def __init__(
        self,
        variant: str,
        latent_dim: int,
        num_anchors: int,
        *,
        normalization: str = "none",
        product_projections: Sequence[str] = PAPER_PRODUCT,
    ) -> None:
        super().__init__()
        if not isinstance(variant, str):
            raise ValueError(f"variant must be a variant name, got {variant!r}")
        parsed = parse(variant)
        if isinstance(parsed, Translation):
            raise ValueError(
                f"variant {variant!r}: the reconstruction task has no latent-translation variant"
            )
        self.variant = variant
        self.num_anchors = num_anchors
        self.projection = build_layer(
            parsed,
            num_anchors,
            normalization=normalization,
            product_projections=product_projections,
            check_inputs=False,
        )
        self.norm: nn.Module = nn.Identity()
        if self.projection is None:
            self.out_features = latent_dim
        elif isinstance(self.projection, ProductProjection):
            self.out_features = self.projection.out_features
        else:
            self.norm = nn.LayerNorm(num_anchors)
            self.out_features = num_anchors

    @property
    def needs_anchors(self) -> bool:
        return self.projection is not None

    def forward(self, z: Tensor, anchors: Tensor | None = None) -> Tensor:
        if self.projection is None:
            return z
        if anchors is None:
            raise ValueError(f"anchors are required by the {self.variant!r} bottleneck")
        if anchors.shape[0] != self.num_anchors:
            raise ValueError(
                f"anchors must hold {self.num_anchors} latents for this model, got "
                f"{anchors.shape[0]}"
            )
        return self.norm(self.projection(z, anchors=anchors))


class ReconstructionModel(nn.Module):
    """``encoder -> bottleneck -> decoder`` for images ``(N, C, H, W)`` in ``[0, 1]``.

    ``encoder`` maps images to ``latent_dim`` features (``2 * latent_dim`` for the VAE: mean and
    log-variance), ``bottleneck`` is a :class:`Bottleneck`, ``decoder`` maps its output back to
    images through a sigmoid. Build it with :func:`build_model`.
    """

    def __init__(
        self,
        kind: str,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        hidden: int,
        bottleneck: Bottleneck,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        c, h, w = image_shape
        h2, w2 = _down(_down(h)), _down(_down(w))
        flat = 2 * hidden * h2 * w2
        self.kind = kind
        self.image_shape = image_shape
        self.latent_dim = latent_dim
        self.encoder: nn.Module = nn.Sequential(
            nn.Conv2d(c, hidden, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, latent_dim * (2 if kind == "vae" else 1)),
        )
        self.bottleneck = bottleneck
        # output_padding = 1 for an even target size, 0 for an odd one: exact sizes back.
        self.decoder: nn.Module = nn.Sequential(
            nn.Linear(bottleneck.out_features, flat),
            nn.ReLU(),
            nn.Unflatten(1, (2 * hidden, h2, w2)),
            nn.ConvTranspose2d(
                2 * hidden,
                hidden,
                3,
                stride=2,
                padding=1,
                output_padding=(1 - _down(h) % 2, 1 - _down(w) % 2),
            ),
            nn.ReLU(),
            nn.ConvTranspose2d(
                hidden, c, 3, stride=2, padding=1, output_padding=(1 - h % 2, 1 - w % 2)
            ),
            nn.Sigmoid(),
        )

    @property
    def variant(self) -> str:
        return self.bottleneck.variant

    @property
    def num_anchors(self) -> int:
        return self.bottleneck.num_anchors

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mean, logvar)`` of ``images``; ``logvar`` is None for the AE (z = mean)."""
        out = self.encoder(images)
        if self.kind == "vae":
            mean, logvar = out.chunk(2, dim=1)
            return mean, logvar
        return out, None

    def decode(self, z: Tensor, anchors: Tensor | None = None) -> Tensor:
        """Images from latents ``z (N, D)`` and the anchors' latents ``(K, D)`` (relative)."""
        return self.decoder(self.bottleneck(z, anchors))

    def forward(
        self,
        images: Tensor,
        anchor_images: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(reconstruction, mean, logvar)``; the VAE samples z in training mode.

        The anchors are encoded by this model's encoder (to their means), with gradients.
        """
        mean, logvar = self.encode(images)
        z = mean
        if logvar is not None and self.training:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            z = mean + noise.to(mean.device) * torch.exp(0.5 * logvar)
        anchors = None
        if self.bottleneck.needs_anchors:
            if anchor_images is None:
                raise ValueError(f"anchor_images are required by the {self.variant!r} variant")
            anchors = self.encode(anchor_images)[0]
        return self.decode(z, anchors), mean, logvar


def _recon_config(config: RunConfig) -> ReconstructionConfig:
    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be a RunConfig, got {type(config).__name__}")
    return config.reconstruction if config.reconstruction is not None else ReconstructionConfig()


def build_model(
    kind: str,
    variant: str,
    image_shape: Sequence[int],
    config: RunConfig,
    *,
    num_anchors: int | None = None,
) -> ReconstructionModel:
    """A fresh model (initialised from the global RNG) of ``kind`` for ``variant``.

    ``image_shape`` is ``(H, W)`` or ``(C, H, W)``; width and latent size come from
    ``config.reconstruction`` (``hidden``, ``latent_dim``), the projections from
    ``config.variants``; ``num_anchors`` defaults to ``config.anchors.num``.
    """
    rc = _recon_config(config)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    shape = _check_image_shape(image_shape)
    k = check_positive_int(
        config.anchors.num if num_anchors is None else num_anchors, "num_anchors"
    )
    bottleneck = Bottleneck(
        variant,
        rc.latent_dim,
        int(k),
        normalization=config.variants.normalization,
        product_projections=config.variants.product_projections,
    )
    return ReconstructionModel(kind, shape, rc.latent_dim, rc.hidden, bottleneck)


# -- training -------------------------------------------------------------------------------


def reconstruction_loss(
    reconstruction: Tensor,
    target: Tensor,
    mean: Tensor | None = None,
    logvar: Tensor | None = None,
    beta: float = 1.0,
) -> Tensor:
    """Squared error summed over pixels, mean over the batch, ``+ beta * KL`` when ``logvar``."""
    if reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and target {tuple(target.shape)} "
            "must have the same shape"
        )
    loss = (reconstruction - target).pow(2).flatten(1).sum(1).mean()
    if logvar is not None:
        if mean is None:
            raise ValueError("mean is required with logvar (the VAE's KL term)")
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1).mean()
        loss = loss + beta * kl
    return loss


def train_model(
    kind: str,
    variant: str,
    images: Tensor,
    anchor_images: Tensor,
    config: RunConfig,
    *,
    seed: int,
) -> ReconstructionModel:
    """Build and train a model of ``kind`` for ``variant`` on ``images (N, C, H, W)``.

    Deterministic in ``seed`` (weights from ``torch.manual_seed(seed)`` in a forked RNG, batch
    order and VAE noise from a CPU generator seeded with ``seed``); the ``anchor_images (K, C,
    H, W)`` are re-encoded at every step. Trains on ``config.device``; returns the model on
    the CPU, in eval mode.
    """
    rc = _recon_config(config)
    images = _check_images(images, "images")
    anchor_images = _check_images(anchor_images, "anchor_images")
    seed = check_seed(seed)
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    with seeded(seed):
        model = build_model(
            kind, variant, tuple(images.shape[1:]), config, num_anchors=len(anchor_images)
        )
    generator = torch.Generator().manual_seed(int(seed))  # batch order and VAE noise: on the CPU
    device = resolve_device(config.device)
    model.to(device)
    images, anchor_images = images.to(device), anchor_images.to(device)

    def loss(indices: Tensor | None) -> Tensor:
        batch = images if indices is None else images[indices.to(device)]
        reconstruction, mean, logvar = model(batch, anchor_images, generator=generator)
        return reconstruction_loss(reconstruction, batch, mean, logvar, rc.beta)

    fit(
        model,
        loss,
        num_samples=len(images),
        epochs=rc.epochs,
        lr=rc.lr,
        batch_size=rc.batch_size,
        generator=generator,
    )
    return model.cpu()  # evaluated on the CPU


# -- evaluation -----------------------------------------------------------------------------


def _check_images(images: object, name: str) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a float tensor (N, C, H, W), got {shape}")
    return images


def _means(model: ReconstructionModel, images: Tensor, batch_size: int = _EVAL_BATCH) -> Tensor:
    """The encoder's means of ``images``, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            chunks = [
                model.encode(images[i : i + batch_size])[0]
                for i in range(0, len(images), batch_size)
            ]
            return torch.cat(chunks) if chunks else images.new_zeros(0, model.latent_dim)
    finally:
        model.train(was_training)


def _decode(
    model: ReconstructionModel, z: Tensor, anchors: Tensor | None, batch_size: int = _EVAL_BATCH
) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            chunks = [
                model.decode(z[i : i + batch_size], anchors) for i in range(0, len(z), batch_size)
            ]
            return torch.cat(chunks) if chunks else z.new_zeros(0, *model.image_shape)
    finally:
        model.train(was_training)


def _check_pair(encoder_model: ReconstructionModel, decoder_model: ReconstructionModel) -> None:
    for name, model in (("encoder_model", encoder_model), ("decoder_model", decoder_model)):
        if not isinstance(model, ReconstructionModel):
            raise ValueError(f"{name} must be a ReconstructionModel, got {type(model).__name__}")
    if encoder_model.image_shape != decoder_model.image_shape:
        raise ValueError(
            f"encoder_model's images {encoder_model.image_shape} differ from decoder_model's "
            f"{decoder_model.image_shape}"
        )
    if not decoder_model.bottleneck.needs_anchors and (
        encoder_model.latent_dim != decoder_model.latent_dim
    ):
        raise ValueError(
            f"absolute stitching needs equal latent sizes; encoder_model has "
            f"{encoder_model.latent_dim}, decoder_model {decoder_model.latent_dim}"
        )


def reconstruct(
    encoder_model: ReconstructionModel,
    decoder_model: ReconstructionModel,
    images: Tensor,
    anchor_images: Tensor | None = None,
    *,
    batch_size: int = _EVAL_BATCH,
) -> Tensor:
    """Zero-shot stitched reconstruction: ``encoder_model``'s encoder -> ``decoder_model``'s
    bottleneck and decoder.

    ``encoder_model`` encodes ``images`` and ``anchor_images`` (to their means); the decoder side
    projects the former onto the latter (relative variants) and decodes. The same model on both
    sides is the non-stitched reconstruction. Runs in eval mode without gradients.
    """
    _check_pair(encoder_model, decoder_model)
    images = _check_images(images, "images")
    if tuple(images.shape[1:]) != decoder_model.image_shape:
        raise ValueError(
            f"images must be {decoder_model.image_shape} like the models', got "
            f"{tuple(images.shape[1:])}"
        )
    batch_size = check_positive_int(batch_size, "batch_size")
    anchors = None
    if decoder_model.bottleneck.needs_anchors:
        if anchor_images is None:
            raise ValueError(f"anchor_images are required by the {decoder_model.variant!r} variant")
        anchor_images = _check_images(anchor_images, "anchor_images")
        if len(anchor_images) != decoder_model.num_anchors:
            raise ValueError(
                f"anchor_images must hold the decoder's {decoder_model.num_anchors} anchors, got "
                f"{len(anchor_images)}"
            )
        anchors = _means(encoder_model, anchor_images, batch_size)
    return _decode(decoder_model, _means(encoder_model, images, batch_size), anchors, batch_size)


def _mse(reconstruction: Tensor, target: Tensor) -> float:
    """Mean squared error per pixel, accumulated in float64."""
    diff = reconstruction.to(torch.float64) - target.to(torch.float64)
    return float(diff.pow(2).mean())


def _psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


# -- image grids ----------------------------------------------------------------------------


def grid_path(out: Path, dataset: str, variant: str) -> Path:
    """Where the image grid of (dataset, variant) is written: ``out/grids/<d>__<v>.png``."""
    return Path(out) / "grids" / f"{slug(dataset)}__{slug(variant)}.png"


def write_grid(path: Path, rows: Sequence[tuple[str, Tensor]], title: str = "") -> Path:
    """Write a PNG of labelled rows of images ``(G, C, H, W)`` in ``[0, 1]``, atomically.

    Needs matplotlib (the ``plot`` extra).
    """
    if not rows:
        raise ValueError("rows must hold at least one (label, images) row")
    columns = max(len(images) for _, images in rows)
    fig = figure(1.0 + 1.1 * columns, 0.4 + 1.2 * len(rows))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, (label, images) in enumerate(rows):
        images = _check_images(images, f"rows[{r}]")
        pictures = images.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy()
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(pictures):
                picture = pictures[c]
                if picture.shape[2] == 1:
                    ax.imshow(picture[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0)
                else:
                    ax.imshow(picture)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(plain_text(label), rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(plain_text(title), fontsize=10)
    fig.tight_layout()
    return write_bytes_atomic(Path(path), png_bytes(fig))


# -- the run --------------------------------------------------------------------------------


def model_names(config: RunConfig) -> list[str]:
    """``f"{kind}-{seed}"`` for every kind and seed of the config, kind-major."""
    rc = _recon_config(config)
    return [f"{kind}-{seed}" for kind in rc.kinds for seed in config.seeds]


def _parse_name(name: str) -> tuple[str, int]:
    kind, seed = name.rsplit("-", 1)
    return kind, int(seed)


def _load_images(ds: DatasetConfig, split: str) -> tuple[Tensor, np.ndarray, int]:
    from ... import data

    loaded = data.load(ds.name, split, **ds.options)
    if not isinstance(loaded, data.Dataset) or loaded.modality != "vision":
        raise ValueError(f"dataset {ds.name!r} is not an image dataset; the task needs images")
    pixels = np.asarray(loaded.inputs)
    if pixels.ndim not in (3, 4):
        raise ValueError(
            f"dataset {ds.name!r} must hold images (N, H, W) or (N, H, W, C), got {pixels.shape}"
        )
    x = torch.from_numpy(np.ascontiguousarray(pixels)).to(torch.float32).div_(255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    return x, np.asarray(loaded.labels), loaded.num_classes


class _Data:
    """The images of one dataset: train (for training and anchors), test, anchor indices."""

    def __init__(self, ds: DatasetConfig, config: RunConfig) -> None:
        self.train, self.train_labels, self.num_classes = _load_images(ds, ds.train_split)
        self.test = _load_images(ds, ds.test_split)[0]
        if len(self.train) == 0 or len(self.test) == 0:
            raise ValueError(f"dataset {ds.name!r} has an empty train or test split")
        flat = self.train.flatten(1).numpy()
        idx = select_anchor_indices(config, flat, self.train_labels, config.anchors.seed)
        self.anchors = self.train[torch.as_tensor(np.asarray(idx), dtype=torch.long)]

    def training_images(self, config: RunConfig, seed: int) -> Tensor:
        subset = _recon_config(config).train_subset
        if subset is None:
            return self.train
        from ...data.vision import balanced_subset

        idx = balanced_subset(self.train_labels, subset, seed, self.num_classes)
        return self.train[torch.as_tensor(idx, dtype=torch.long)]


def _obtain(
    ds: DatasetConfig,
    config: RunConfig,
    store: CellStore,
    images: _Data,
    variant: str,
    name: str,
    log: Callable[[str], None],
) -> ReconstructionModel:
    """The model ``name`` for ``variant``: stored weights if present, else trained and stored."""
    kind, seed = _parse_name(name)
    path = model_path(store.out, ds.name, variant, name)
    state = load_state(path)
    if state is not None:
        with seeded(seed):  # the weights are replaced by the stored ones
            model = build_model(
                kind,
                variant,
                tuple(images.train.shape[1:]),
                config,
                num_anchors=len(images.anchors),
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError:
            log(f"{ds.name}: stored weights of {name} ({variant}) do not fit; retraining")
        else:
            model.eval()
            return model
    log(f"{ds.name}: training {name} ({variant})")
    model = train_model(
        kind, variant, images.training_images(config, seed), images.anchors, config, seed=seed
    )
    save_state(path, model.state_dict())
    return model


class _Evaluator:
    """Stitched reconstructions of one variant's models, with each encoder's means cached."""

    def __init__(self, models: dict[str, ReconstructionModel], images: _Data) -> None:
        self.models = models
        self.images = images
        self._latents: dict[str, tuple[Tensor, Tensor]] = {}

    def latents(self, name: str) -> tuple[Tensor, Tensor]:
        if name not in self._latents:
            model = self.models[name]
            self._latents[name] = (
                _means(model, self.images.test),
                _means(model, self.images.anchors),
            )
        return self._latents[name]

    def reconstruct(self, encoder: str, decoder: str, index: Tensor | None = None) -> Tensor:
        """``encoder``'s test latents (those at ``index``, or all) through ``decoder``."""
        z, anchors = self.latents(encoder)
        model = self.models[decoder]
        _check_pair(self.models[encoder], model)
        z = z if index is None else z[index]
        return _decode(model, z, anchors if model.bottleneck.needs_anchors else None)

    def reconstruct_anchors(self, encoder: str, decoder: str) -> Tensor:
        """The anchor images encoded by ``encoder`` and decoded by ``decoder``."""
        _, anchors = self.latents(encoder)
        model = self.models[decoder]
        _check_pair(self.models[encoder], model)
        return _decode(model, anchors, anchors if model.bottleneck.needs_anchors else None)


def _sides(evaluator: _Evaluator, decoder: str) -> dict[str, Sides]:
    """Per model: its encoder into ``decoder``, as reconstructions of the test images, of the
    anchor images from ``decoder``'s own encoder and of the anchor images from that encoder."""
    own = evaluator.reconstruct_anchors(decoder, decoder)
    return {
        encoder: (
            evaluator.reconstruct(encoder, decoder),
            own,
            evaluator.reconstruct_anchors(encoder, decoder),
        )
        for encoder in evaluator.models
    }


def _agreement(own: Tensor, stitched: Tensor) -> float | None:
    """:func:`latentbridge.stitching.output_agreement` of two sets of anchor images; None
    (n/a) where it is undefined (a single anchor, or both sides constant)."""
    try:
        return output_agreement(own.flatten(1), stitched.flatten(1))
    except ValueError:
        return None


def _selection_agreement(own: Tensor, stitched: Tensor) -> float:
    """:func:`_agreement` for ranking the candidates: an undefined agreement ranks lowest."""
    agreement = _agreement(own, stitched)
    return 0.0 if agreement is None else agreement


def _cell_rows(
    sides: dict[str, Sides],
    target: Tensor,
    ds: DatasetConfig,
    variant: str,
    decoder: str,
    config: RunConfig,
) -> list[ResultRow]:
    """Rows of the cell (variant, decoder): every model's encoder into ``decoder``, from the
    :func:`_sides` of the variant (or of a selection over the candidates)."""
    seed = _parse_name(decoder)[1]
    rows: list[ResultRow] = []
    for encoder, (reconstruction, own, stitched) in sides.items():
        mse = _mse(reconstruction, target)
        values = {"mse": mse, "psnr": _psnr(mse)}
        chosen: dict[str, float | None] = {m: values[m] for m in config.metrics}
        if encoder != decoder:  # the label-free estimate, on the anchor images
            chosen[CONSISTENCY] = _agreement(own, stitched)
        rows += [
            ResultRow(ds.name, decoder, encoder, variant, seed, metric, value)
            for metric, value in chosen.items()
        ]
    return rows


def _grid(
    evaluator: _Evaluator, ds: DatasetConfig, variant: str, path: Path, config: RunConfig
) -> None:
    """The image grid of ``variant``: test images, first model, second encoder -> first."""
    n = len(evaluator.images.test)
    count = min(_recon_config(config).grid_images, n)
    spaced = np.unique(np.linspace(0, n - 1, count).round().astype(np.int64))
    idx = torch.as_tensor(spaced, dtype=torch.long)
    names = list(evaluator.models)
    first = names[0]
    rows: list[tuple[str, Tensor]] = [
        ("test images", evaluator.images.test[idx]),
        (f"{first} → {first}", evaluator.reconstruct(first, first, idx)),
    ]
    if len(names) > 1:
        rows.append(
            (f"{names[1]} → {first}\n(stitched)", evaluator.reconstruct(names[1], first, idx))
        )
    write_grid(path, rows, title=f"{ds.name} — {variant} (encoder → decoder)")


#: Per-pixel mean squared error (pixels in [0, 1]) and PSNR = 10 log10(1 / MSE).
METRICS = (
    MetricInfo("mse", "MSE", 0.0, 1.0, higher_is_better=False),
    MetricInfo("psnr", "PSNR (dB)", 0.0, math.inf),
    CONSISTENCY_METRIC,
)


class _ReconstructionRun:
    """The images of one dataset and each variant's models and evaluator, made on first use."""

    def __init__(self, ds: DatasetConfig, config: RunConfig, context: RunContext) -> None:
        self.ds, self.config, self.context = ds, config, context
        self._evaluators: dict[str, _Evaluator] = {}

    @functools.cached_property
    def images(self) -> _Data:
        self.context.log(f"{self.ds.name}: loading images")
        return _Data(self.ds, self.config)

    def evaluator(self, variant: str) -> _Evaluator:
        """``variant``'s models (stored weights, else trained and stored) and their stitching."""
        if variant not in self._evaluators:
            data, store, log = self.images, self.context.store, self.context.log
            models = {
                n: _obtain(self.ds, self.config, store, data, variant, n, log)
                for n in model_names(self.config)
            }
            self._evaluators[variant] = _Evaluator(models, data)
        return self._evaluators[variant]

    def rows(self, variant: str, decoder: str) -> list[ResultRow]:
        last = decoder == model_names(self.config)[-1]
        kind = parse(variant)
        if isinstance(kind, Selection):
            pool = [
                _sides(self.evaluator(c.name), decoder)
                for c in candidates(from_config(self.config.variants))
            ]
            sides = combine_targets(kind.kind, pool, _selection_agreement, weighted_mean)
            if last and kind.kind == SELECTIONS[-1]:  # the last selection: release the candidates
                self._evaluators.clear()
            return _cell_rows(sides, self.images.test, self.ds, variant, decoder, self.config)
        sides = _sides(self.evaluator(variant), decoder)
        rows = _cell_rows(sides, self.images.test, self.ds, variant, decoder, self.config)
        if last:  # the variant's last cell: its grid, then its models are released (a
            self._grid(variant)  # candidate's are kept for a selection)
            if not (self.config.variants.selection and kind in self._candidates):
                del self._evaluators[variant]
        return rows

    @functools.cached_property
    def _candidates(self) -> list[Variant]:
        return candidates(from_config(self.config.variants))

    def _grid(self, variant: str) -> None:
        path = grid_path(self.context.out, self.ds.name, variant)
        if not path.is_file():
            _grid(self.evaluator(variant), self.ds, variant, path, self.config)

    def grids(self) -> None:
        """The image grid of every variant whose grid is still missing (its cells were all
        finished by an earlier run)."""
        for v in from_config(self.config.variants):
            if isinstance(v, Selection):
                continue  # no models of its own: its outputs are the candidates'
            self._grid(v.name)
            self._evaluators.pop(v.name, None)


class Reconstruction:
    """Autoencoders and VAEs with the relative layer inside, stitched encoder i -> decoder j."""

    name = "reconstruction"
    metrics: tuple[MetricInfo, ...] = METRICS
    roles: tuple[str, str] = ("decoder's model", "encoder's model")
    note = (
        "Reconstruction: every model is an autoencoder (or VAE) trained from scratch with the "
        "variant's relative layer inside. The *train encoder* column of results.csv names the "
        "model whose decoder is used, the *test encoder* the model whose encoder (and anchors) "
        "feed it: stitched pairs are encoder i → decoder j with i ≠ j. MSE is per pixel in "
        "[0, 1] (lower is better, the smallest cell of a row is bold); PSNR = 10·log10(1/MSE). "
        "The image grids show test images, the non-stitched reconstruction and a stitched one "
        "for each variant."
    )

    def sections(self, rows: Sequence[ResultRow], metric: MetricInfo) -> list[Section]:
        """The stitched summary, the non-stitched reference and the aggregation ablation."""
        return [stitching_section(rows, metric, self.roles)]

    def plan(self, dataset: DatasetConfig, config: RunConfig, context: RunContext) -> Plan:
        """One cell per (variant, decoder model), then the variants' image grids. Images are
        loaded, and a variant's models trained or loaded, only for unfinished work."""
        work = _ReconstructionRun(dataset, config, context)
        cells = [
            Cell(
                dataset.name,
                v.name,
                _parse_name(name)[1],
                name,
                functools.partial(work.rows, v.name, name),
            )
            for v in from_config(config.variants)
            for name in model_names(config)
        ]
        return Plan(cells, finish=work.grids)
