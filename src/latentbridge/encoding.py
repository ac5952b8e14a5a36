"""``latentbridge.encode``: dataset x encoder -> cached latents."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _ray
from ._devices import check_device
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
    executor: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    device: str | None = None,
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
        executor: ``local`` encodes here, chunk after chunk; ``ray`` encodes the missing chunks
            with Ray Data (``map_batches`` over a pool of at most ``max_parallel`` actors, each
            with the encoder loaded once; the inputs go to the object store once), on the
            cluster at ``address`` or a Ray instance started here. The chunks are stored in the
            cache in order, as a local run stores them: the same bytes. Needs an encoder name.
        device: where the encoder runs: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA where
            present and the encoder runs there; see :meth:`Encoder.to
            <latentbridge.encoders.Encoder.to>`); ``None`` leaves an encoder where it is (a
            named one starts on the CPU; a module encoder where its module is). Latents
            computed off the CPU are cached under their own key (the device type is part of
            it: their last bits differ); with Ray, each actor takes one GPU.

    Raises:
        ValueError: an unknown dataset, split or encoder name (the encoder's is an
            :class:`~latentbridge.encoders.UnknownEncoderError`), an encoder of another
            modality than the dataset, a ``batch_size`` / ``chunk_size`` below 1, or a
            ``device`` the encoder does not run on (or CUDA without a GPU).
        TypeError: a ``batch_size`` / ``chunk_size`` that is not an integer, or
            ``dataset_options`` that are not a dict.

    Returns:
        ``float32 (N, dim)``, row i the latent of sample i of the split.
    """
    from . import data, encoders

    batch_size = check_positive_int(batch_size, "batch_size")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be one of ['local', 'ray'], got {executor!r}")
    if max_parallel is not None:
        max_parallel = check_positive_int(max_parallel, "max_parallel")
    if dataset_options is not None and not isinstance(dataset_options, dict):
        raise TypeError(f"dataset_options must be a dict, got {type(dataset_options).__name__}")
    options = dict(dataset_options or {})
    # An unknown name fails here, before the data is loaded.
    enc = encoders.get(encoder) if isinstance(encoder, str) else encoder
    if device is not None:
        enc = _placed(enc, device)
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
    on = getattr(enc, "device", None)
    if on is not None and on.type != "cpu":  # CPU latents keep the keys they always had
        fields["device"] = on.type
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
    if executor == "ray" and _ray.in_task():
        executor = "local"  # inside a Ray task (a worker of a run): no nested pool of actors
    if executor == "ray":
        if not isinstance(encoder, str):
            raise ValueError("executor 'ray' needs the encoder's name (each actor loads it)")
        device_type = "cpu" if on is None else on.type
        chunks = _RayChunks(
            encoder, inputs, len(loaded), batch_size, chunk_size, max_parallel, device_type
        )
        with bar, chunks.connected(address):
            return store.compute(
                fields, len(loaded), chunks, chunk_size=chunk_size, progress=bar, refresh=refresh
            )
    with bar:
        return store.compute(
            fields, len(loaded), encode_range, chunk_size=chunk_size, progress=bar, refresh=refresh
        )


def _placed(enc: Any, device: str) -> Any:
    """``enc`` moved to ``device`` (:meth:`Encoder.to`); an encoder object without ``.to``
    runs where it runs, which is taken to be the CPU: any other device is refused."""
    if callable(getattr(enc, "to", None)):
        return enc.to(device)
    if check_device(device) not in ("cpu", "auto"):
        raise ValueError(
            f"device {device!r}: encoder {getattr(enc, 'name', enc)!r} has no .to, so it "
            "runs only where it is; pass device='cpu' or None"
        )
    return enc


class _RayChunks:
    """``encode_range`` of the cache, served by Ray Data: on the first call, the chunks from
    that one to the end are submitted to a pool of actors (:class:`_EncodeChunks`) and come
    back in order; each call takes the next (a chunk the cache already holds is skipped)."""

    def __init__(
        self,
        encoder: str,
        inputs: Any,
        num_samples: int,
        batch_size: int,
        chunk_size: int,
        max_parallel: int | None,
        device: str,
    ) -> None:
        self.encoder, self.inputs, self.num_samples = encoder, inputs, num_samples
        self.batch_size, self.chunk_size, self.max_parallel = batch_size, chunk_size, max_parallel
        self.device = device  # the actors' device type (each takes one GPU for "cuda")
        self._results: Any = None

    @contextlib.contextmanager
    def connected(self, address: str | None) -> Iterator[None]:
        """A Ray connection for the encoding (:func:`latentbridge._ray.session`)."""
        with _ray.session(address):
            try:
                yield
            finally:
                self._results = None

    def __call__(self, start: int, stop: int) -> np.ndarray:
        if self._results is None:
            self._results = self._submit(start)
        for first, latents in self._results:
            if first == start:
                return np.asarray(latents)
        raise RuntimeError(f"the distributed encoding returned no chunk at sample {start}")

    def _submit(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        import ray
        import ray.data
        import torch

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # chunks come back in order
        context.enable_progress_bars = False
        ranges = [
            {"start": s, "stop": min(s + self.chunk_size, self.num_samples)}
            for s in range(start, self.num_samples, self.chunk_size)
        ]
        unit = "GPU" if self.device == "cuda" else "CPU"  # an actor's resource
        workers = self.max_parallel or max(1, int(ray.cluster_resources().get(unit, 1)))
        encoded = ray.data.from_items(ranges).map_batches(
            _EncodeChunks,
            fn_constructor_kwargs={
                "encoder": self.encoder,
                "inputs": [ray.put(self.inputs)],  # in a list: the actors read it themselves
                "batch_size": self.batch_size,
                "threads": torch.get_num_threads(),
                "device": self.device,
            },
            batch_size=1,
            concurrency=min(workers, len(ranges)),
            num_cpus=1,
            num_gpus=1 if self.device == "cuda" else 0,
            batch_format="numpy",
        )
        for row in encoded.iter_rows():
            yield int(row["start"]), row["latents"]


class _EncodeChunks:
    """A Ray Data actor: the encoder loaded once, the inputs read once from the object store,
    then one chunk of samples encoded per call (with the driver's torch thread count, so the
    bytes are those of a local encode)."""

    def __init__(
        self, encoder: str, inputs: list[Any], batch_size: int, threads: int, device: str
    ) -> None:
        import ray
        import torch

        from . import encoders

        torch.set_num_threads(threads)
        self.encoder = encoders.get(encoder).to(device)
        self.inputs = ray.get(inputs[0])
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        start, stop = int(batch["start"][0]), int(batch["stop"][0])
        latents = self.encoder.encode(self.inputs[start:stop], batch_size=self.batch_size)
        return {"start": batch["start"], "latents": [np.asarray(latents, dtype=np.float32)]}
