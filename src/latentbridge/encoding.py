"""``latentbridge.encode``: dataset x encoder -> cached latents."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._progress import progress_bar
from ._validation import check_positive_int
from .cache import FORMAT_VERSION, EmbeddingCache, fingerprint_inputs

__all__ = ["encode"]


def encode(
    dataset: str,
    encoder: Any,
    split: str = "train",
    *,
    dataset_options: dict[str, Any] | None = None,
    batch_size: int = 64,
    chunk_size: int = 4096,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    refresh: bool = False,
) -> np.ndarray:
    """The latents of ``split`` of ``dataset`` under ``encoder``, from the cache when present.

    Args:
        dataset: a name from :func:`latentbridge.data.available` (vision or text).
        encoder: a name from :func:`latentbridge.encoders.available`, or an encoder object.
        dataset_options: options passed to :func:`latentbridge.data.load` (part of the key).
        batch_size: the encoder's batch size (not part of the key: it does not change results).
        chunk_size: samples per resumable chunk.
        cache: defaults to ``EmbeddingCache()`` (``$LATENTBRIDGE_CACHE`` or the user cache).
        progress: draw a progress bar on standard error (the encoder's name, the samples
            encoded and the time left; drawn by ``tqdm``, nothing where it is not installed).
        refresh: recompute even if cached.

    Raises:
        ValueError: an unknown dataset, split or encoder name (the encoder's is an
            :class:`~latentbridge.encoders.UnknownEncoderError`), an encoder of another
            modality than the dataset, or a ``batch_size`` / ``chunk_size`` below 1.
        TypeError: a ``batch_size`` / ``chunk_size`` that is not an integer, or
            ``dataset_options`` that are not a dict.

    Returns:
        ``float32 (N, dim)``, row i the latent of sample i of the split.
    """
    from . import data, encoders

    batch_size = check_positive_int(batch_size, "batch_size")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if dataset_options is not None and not isinstance(dataset_options, dict):
        raise TypeError(f"dataset_options must be a dict, got {type(dataset_options).__name__}")
    options = dict(dataset_options or {})
    # An unknown name fails here, before the data is loaded.
    enc = encoders.get(encoder) if isinstance(encoder, str) else encoder
    loaded = data.load(dataset, split, **options)
    if not isinstance(loaded, data.Dataset):
        raise ValueError(
            f"dataset {dataset!r} is a graph: its node features are given; encoders apply to "
            "vision and text datasets"
        )
    if enc.modality != loaded.modality:
        raise ValueError(
            f"encoder {enc.name!r} encodes {enc.modality} but dataset {dataset!r} is "
            f"{loaded.modality}"
        )
    fields = {
        "format": FORMAT_VERSION,
        "encoder": enc.name,
        "encoder_fingerprint": enc.fingerprint(),
        "dataset": dataset,
        "split": split,
        "options": options,
        "inputs": fingerprint_inputs(loaded.inputs),
        "num_samples": len(loaded),
    }
    inputs = loaded.inputs
    bar = progress_bar(
        len(loaded), f"encode {dataset}/{split} with {enc.name}", enabled=progress, unit="sample"
    )

    def encode_range(start: int, stop: int) -> np.ndarray:
        if isinstance(enc, encoders.Encoder):  # the library's encoders report every batch
            out = enc.encode(
                inputs[start:stop],
                batch_size=batch_size,
                progress=lambda done, _: bar(start + done, len(loaded)),
            )
        else:
            out = enc.encode(inputs[start:stop], batch_size=batch_size)
        if out.shape[1:] != (enc.dim,):
            raise ValueError(f"encoder {enc.name!r} returned shape {out.shape}, not (n, {enc.dim})")
        return out

    store = cache if cache is not None else EmbeddingCache()
    with bar:
        return store.compute(
            fields, len(loaded), encode_range, chunk_size=chunk_size, progress=bar, refresh=refresh
        )
