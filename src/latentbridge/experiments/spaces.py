"""The latent spaces of one dataset, and the anchors shared by every space: pure loading.

:func:`load_spaces` returns every encoder's train and test latents (from the embedding cache)
with the labels; it loads and encodes, and changes no registry. Encoders trained from scratch
for a config (``trained_encoders``) are made by :func:`trained_encoders`, which the runner calls
explicitly and whose encoder objects it passes in. :func:`select_anchor_indices` chooses the
anchors once per dataset, as indices shared by every space.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import data
from ..anchors import select
from ..encoding import encode
from ..synthetic import make_spaces
from .config import DatasetConfig, RunConfig

__all__ = [
    "Spaces",
    "encode_device",
    "encoder_names",
    "load_spaces",
    "select_anchor_indices",
    "trained_encoders",
]


@dataclass(frozen=True)
class Spaces:
    """Latents of every encoder for one dataset, with the labels of both splits."""

    dataset: str
    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    train_labels: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def select_anchor_indices(config: RunConfig, reference: Any, labels: Any, seed: int) -> np.ndarray:
    """``config.anchors`` indices into a training split of ``len(reference)`` samples (K capped
    by the split's size)."""
    k = min(config.anchors.num, len(reference))
    return select(
        reference,
        k,
        config.anchors.strategy,
        labels=labels if config.anchors.strategy == "stratified" else None,
        seed=seed,
    )


def _synthetic_spaces(ds: DatasetConfig) -> Spaces:
    """Space A and one space B per transformation class of ``ds.synthetic`` (seed 0)."""
    opts = dict(ds.synthetic or {})
    transformations = tuple(opts.pop("transformations", ("orthogonal",)))
    train: dict[str, np.ndarray] = {}
    test: dict[str, np.ndarray] = {}
    labels = train_idx = test_idx = None
    for kind in transformations:
        spaces = make_spaces(transformations=(kind,), seed=0, **opts)
        if labels is None:
            labels = spaces.labels.numpy()
            train_idx, test_idx = data.split_indices(len(labels), 0.25, seed=0, labels=labels)
            x_a = spaces.x_a.numpy()
            train["identity"], test["identity"] = x_a[train_idx], x_a[test_idx]
        x_b = spaces.x_b.numpy()
        train[kind], test[kind] = x_b[train_idx], x_b[test_idx]
    assert labels is not None and train_idx is not None and test_idx is not None
    return Spaces(
        "synthetic", train, test, labels[train_idx], labels[test_idx], int(labels.max()) + 1
    )


def encoder_names(ds: DatasetConfig) -> list[str]:
    """The names of ``ds``'s spaces, in order: its encoders, then those trained from scratch
    (architecture-major), or the generated spaces of the synthetic dataset. Nothing is loaded."""
    from .vision_models import encoder_name

    if ds.name == "synthetic":
        return ["identity", *(ds.synthetic or {}).get("transformations", ("orthogonal",))]
    names = list(ds.encoders)
    if ds.trained_encoders is not None:
        t = ds.trained_encoders
        names += [
            encoder_name(ds.name, arch, seed, t.latent_dim)
            for arch in t.architectures
            for seed in t.seeds
        ]
    return names


def trained_encoders(ds: DatasetConfig, device: str = "cpu") -> dict[str, Any]:
    """The encoders ``ds.trained_encoders`` asks for, by name, trained on ``device`` (or loaded
    from the cache of trained models) in architecture-major order; nothing is registered."""
    from .vision_models import train_encoder

    if ds.trained_encoders is None:
        return {}
    t = ds.trained_encoders
    out: dict[str, Any] = {}
    for arch in t.architectures:
        for seed in t.seeds:
            trained = train_encoder(
                ds.name,
                arch,
                seed=seed,
                latent_dim=t.latent_dim,
                epochs=t.epochs,
                train_subset=t.train_subset,
                device=device,
            )
            out[trained.name] = trained.encoder()
    return out


def encode_device(encoder: Any, device: str) -> str:
    """Where ``encoder`` (a name or an encoder object) encodes in a run on ``device``: there,
    when the encoder runs on that device type, else on the CPU (the ONNX and C encoders)."""
    from ..encoders import get

    if device in ("cpu", "auto"):
        return device  # "auto" is resolved per encoder by Encoder.to
    enc = get(encoder) if isinstance(encoder, str) else encoder
    kind = device.split(":")[0]
    return device if kind in getattr(enc, "device_types", ("cpu",)) else "cpu"


def load_spaces(
    ds: DatasetConfig,
    encoders: Mapping[str, Any] | None = None,
    *,
    cache: Any = None,
    progress: bool = True,
    executor: str = "local",
    device: str = "cpu",
) -> Spaces:
    """Every encoder's train and test latents for ``ds`` (from the cache), and the labels.

    The encoders are ``ds.encoders`` (registered names) followed by ``encoders`` (name ->
    encoder object, e.g. from :func:`trained_encoders`). The synthetic dataset is generated.
    With ``executor="ray"``, missing latents of the registered encoders are encoded with Ray
    Data (:func:`latentbridge.encode`); the encoder objects encode here. The torch encoders
    encode on ``device`` (:func:`encode_device`), the others on the CPU.
    """
    if ds.name == "synthetic":
        return _synthetic_spaces(ds)
    train_set = data.load(ds.name, ds.train_split, **ds.options)
    test_set = data.load(ds.name, ds.test_split, **ds.options)
    if not isinstance(train_set, data.Dataset) or not isinstance(test_set, data.Dataset):
        raise ValueError(
            f"dataset {ds.name!r} is a graph; this task needs a vision or text dataset"
        )
    named: dict[str, Any] = {name: name for name in ds.encoders}
    named.update(encoders or {})
    train: dict[str, np.ndarray] = {}
    test: dict[str, np.ndarray] = {}
    for name, encoder in named.items():
        on = encode_device(encoder, device)
        for split, store in ((ds.train_split, train), (ds.test_split, test)):
            store[name] = encode(
                ds.name,
                encoder,
                split,
                dataset_options=ds.options,
                cache=cache,
                progress=progress,
                executor=executor if isinstance(encoder, str) else "local",
                device=on,
            )
    return Spaces(ds.name, train, test, train_set.labels, test_set.labels, len(train_set.classes))
