"""The encoder contract: a named, lazily loaded map from raw inputs to float32 vectors.

An :class:`Encoder` turns a batch of raw inputs (a list of strings for ``modality == "text"``,
``uint8`` images ``(N, H, W)`` or ``(N, H, W, 3)`` for ``modality == "vision"``) into an
``(N, dim)`` float32 array. Subclasses implement two things: :meth:`Encoder._load` (build the
model, called once on the first :meth:`Encoder.encode`) and :meth:`Encoder._encode_batch`
(encode one non-empty, validated batch). Validation, batching, progress reporting and the
output contract live here, once.

:meth:`Encoder.fingerprint` identifies the weights (and the options that change the output) and
is the key of the embedding cache; :func:`hash_files` hashes the *bytes* of the model files, so
two different weights never share a fingerprint. :func:`hash_model_folder` does so for a
user-named model folder (``hf:<dir>``, ``sbert:<dir>``), reading only the files a loader reads.

Fingerprinting is bounded: at most :data:`MAX_FOLDER_FILES` directory entries are listed and
:data:`MAX_HASHED_BYTES` bytes hashed, and a symbolic link is followed only to a file inside
the folder (or inside a Hugging Face cache's ``blobs/`` for a Hub snapshot); beyond that the
fingerprint is refused with a ``ValueError`` naming the folder, rather than reading whatever a
path such as ``/`` leads to.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .._devices import resolve_device
from .._validation import check_positive_int

__all__ = [
    "MODALITIES",
    "Encoder",
    "EncoderInfo",
    "Progress",
    "hash_files",
    "hash_model_folder",
    "validate_images",
    "validate_texts",
]

MODALITIES = ("text", "vision")

Progress = Callable[[int, int], None]
"""``progress(n_done, n_total)``, called after every batch."""


@dataclass(frozen=True)
class EncoderInfo:
    """Registry metadata of one encoder, readable without loading it.

    ``dim`` is ``None`` for families whose dimension is only known once a model id is given
    (``hf:``, ``sbert:``, ``timm:``); ``is_available()`` probes whether the encoder can run here
    (packages and files present, nothing loaded), and ``install_hint`` says how to make it so.
    """

    name: str
    modality: str
    dim: int | None
    is_available: Callable[[], bool]
    install_hint: str
    description: str = ""


#: The most directory entries a fingerprint lists (model folders hold tens).
MAX_FOLDER_FILES = 10_000
#: The most bytes a fingerprint hashes (the largest encoders' weights are a few GiB).
MAX_HASHED_BYTES = 64 * 2**30
#: The files of a model folder a loader reads: weights, configs, vocabularies, tokenizers.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".onnx")

# (resolved path, size, mtime_ns) -> sha256 of the bytes: a file is read once per process.
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        digest = h.hexdigest()
        _FILE_DIGESTS[key] = digest
    return digest


class _Budget:
    """Counts the entries listed and the bytes to hash of one fingerprint against the bounds."""

    def __init__(self, what: Path) -> None:
        self.what = what
        self.entries = 0
        self.bytes = 0

    def listed(self, count: int) -> None:
        self.entries += count
        if self.entries > MAX_FOLDER_FILES:
            raise ValueError(
                f"cannot fingerprint {self.what}: more than {MAX_FOLDER_FILES} files and "
                "folders; name the model's own folder (config, tokenizer and weights files)"
            )

    def hashed(self, file: Path) -> None:
        self.bytes += file.stat().st_size
        if self.bytes > MAX_HASHED_BYTES:
            raise ValueError(
                f"cannot fingerprint {self.what}: more than {MAX_HASHED_BYTES} bytes of files; "
                "name the model's own folder (config, tokenizer and weights files)"
            )


def _inside(file: Path, roots: Sequence[Path]) -> Path:
    """``file`` resolved; ValueError when a symbolic link leads outside every root."""
    real = file.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise ValueError(
            f"cannot fingerprint {file}: it is a symbolic link to {real}, outside "
            f"{roots[0]}; copy the file into the folder instead"
        )
    return real


def _walk(root: Path, budget: _Budget) -> list[Path]:
    """Every regular file under ``root`` (no ``__pycache__``), without following links to
    folders; links to files are returned and checked by the caller."""
    files: list[Path] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        budget.listed(len(dirnames) + len(filenames))
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        files += [Path(folder) / name for name in filenames]
    return files


def _digest(entries: Iterable[tuple[str, str]], extra: Mapping[str, Any] | None) -> str:
    h = hashlib.sha256()
    for key, value in sorted((extra or {}).items()):
        h.update(f"{key}={value!r}\n".encode())
    for name, digest in sorted(entries):
        h.update(f"{name}:{digest}\n".encode())
    return h.hexdigest()


def hash_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 over the bytes of ``paths`` (directories walked recursively) and ``extra``.

    Each file contributes its path relative to the directory it was found in and the SHA-256
    of its content, in sorted order, so the digest does not depend on where a package is
    installed nor on file times. ``extra`` (encoder name, options) is hashed as sorted
    ``key=repr(value)`` lines. Byte digests are memoised per process by (path, size, mtime).
    A directory is walked within the module's bounds (entries listed, bytes hashed; links
    to folders are not followed and links to files only inside the directory), else
    ``ValueError``.
    """
    entries: list[tuple[str, str]] = []
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            real_root = root.resolve()
            budget = _Budget(root)
            for file in _walk(root, budget):
                if not file.is_file():
                    continue  # a broken link or a special file
                if file.is_symlink():
                    _inside(file, [real_root])
                budget.hashed(file)
                entries.append((file.relative_to(root).as_posix(), _file_digest(file)))
        elif root.is_file():
            entries.append((root.name, _file_digest(root)))
        else:
            raise FileNotFoundError(f"cannot fingerprint {root}: no such file or directory")
    return _digest(entries, extra)


def _module_folders(root: Path, real_root: Path) -> list[Path]:
    """The folder and the sub-folders its ``modules.json`` (sentence-transformers) names."""
    folders = [root]
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return folders
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot fingerprint {root}: unreadable modules.json ({error})") from None
    if not isinstance(modules, list):
        raise ValueError(f"cannot fingerprint {root}: modules.json is not a list of modules")
    for module in modules:
        path = module.get("path", "") if isinstance(module, dict) else None
        if not isinstance(path, str):
            raise ValueError(f"cannot fingerprint {root}: modules.json has a module {module!r}")
        sub = root / path
        if not sub.resolve().is_relative_to(real_root):
            raise ValueError(
                f"cannot fingerprint {root}: modules.json names {path!r}, outside the folder"
            )
        if sub.is_dir() and sub.resolve() not in {f.resolve() for f in folders}:
            folders.append(sub)
    return folders


def hash_model_folder(
    folder: str | os.PathLike[str],
    *,
    extra: Mapping[str, Any] | None = None,
    link_roots: Sequence[str | os.PathLike[str]] = (),
) -> str:
    """SHA-256 of the files of a model folder that a loader reads, and ``extra``.

    Hashed: the files named ``*`` + one of :data:`MODEL_FILE_SUFFIXES` (weights, configs,
    vocabularies, tokenizers) directly in ``folder`` and in the sub-folders its
    ``modules.json`` lists (sentence-transformers' ``1_Pooling/``, ``2_Normalize/``, ...), with
    the digest of :func:`hash_files` (relative path and SHA-256 of each file). Other files
    (``README.md``, training checkpoints in other folders) do not change the fingerprint.

    Raises ``ValueError`` naming ``folder`` when it is not a model folder (no ``config.json``
    or ``modules.json``, or no ``*.safetensors`` weights: the only weights loaded), when a
    model file is a symbolic link outside ``folder`` and ``link_roots`` (the Hub cache's
    ``blobs/`` of a snapshot), and beyond the module's bounds on entries and bytes.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"cannot fingerprint {root}: no such directory")
    real_root = root.resolve()
    roots = [real_root, *(Path(r).resolve() for r in link_roots)]
    budget = _Budget(root)
    files: list[Path] = []
    for sub in _module_folders(root, real_root):
        try:
            listed = sorted(os.scandir(sub), key=lambda e: e.name)
        except OSError as error:
            raise ValueError(f"cannot fingerprint {root}: cannot list {sub} ({error})") from None
        budget.listed(len(listed))
        files += [
            Path(e.path)
            for e in listed
            if e.name.endswith(MODEL_FILE_SUFFIXES) and e.is_file(follow_symlinks=True)
        ]
    names = {f.name for f in files if f.parent == root}
    if not names & {"config.json", "modules.json"} or not any(
        f.name.endswith(".safetensors") for f in files
    ):
        raise ValueError(
            f"{root} is not a model folder: expected config.json (or modules.json) and "
            f"*.safetensors weights, found {sorted(names) or 'no model file'}"
        )
    entries = []
    for file in files:
        if file.is_symlink():
            _inside(file, roots)
        budget.hashed(file)
        entries.append((file.relative_to(root).as_posix(), _file_digest(file)))
    return _digest(entries, extra)


def validate_texts(inputs: object) -> list[str]:
    """Return ``inputs`` as a list of strings, or raise ``TypeError`` naming ``inputs``."""
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise TypeError(
            f"inputs must be a list of str for a text encoder, got {type(inputs).__name__}"
        )
    texts = list(inputs)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"inputs[{i}] must be str, got {type(text).__name__}")
    return texts


def validate_images(inputs: object) -> np.ndarray:
    """Return ``inputs`` as a uint8 array ``(N, H, W)`` or ``(N, H, W, 3)``.

    Raises ``TypeError`` (naming ``inputs``) for anything but a uint8 ``numpy.ndarray``, and
    ``ValueError`` for another shape.
    """
    if not isinstance(inputs, np.ndarray):
        raise TypeError(
            "inputs must be a numpy.ndarray of uint8 images (N, H, W) or (N, H, W, 3) for a "
            f"vision encoder, got {type(inputs).__name__}"
        )
    if inputs.dtype != np.uint8:
        raise TypeError(f"inputs must have dtype uint8, got {inputs.dtype}")
    if not (inputs.ndim == 3 or (inputs.ndim == 4 and inputs.shape[-1] == 3)):
        raise ValueError(f"inputs must have shape (N, H, W) or (N, H, W, 3), got {inputs.shape}")
    return inputs


class Encoder(ABC):
    """Base class of all encoders: ``encode(inputs) -> (N, dim)`` float32.

    Attributes
    ----------
    name:
        Registry name (``"minilm-l6"``, ``"hf:bert-base-uncased"``).
    modality:
        ``"text"`` (inputs: list of str) or ``"vision"`` (inputs: uint8 ``(N, H, W[, 3])``).
    dim:
        Width of the embeddings.
    install_hint:
        What to install for :meth:`is_available` to become true.

    The model is built on the first :meth:`encode` and kept in the instance; encoders run in
    inference mode (no dropout, no gradients), so the same call gives the same output.

    Encoders run on the CPU unless moved with :meth:`to`; the torch encoders (``device_types``
    ``("cpu", "cuda")``: sentence-transformers, ``hf:``, ``timm:`` and module encoders) run on a
    CUDA GPU too, the ONNX and C engines only on the CPU.
    """

    name: str
    modality: str
    install_hint: str = ""
    #: Distributions (pip names) the encoder needs beyond latentbridge's core.
    requirements: ClassVar[tuple[str, ...]] = ()
    #: Whether first use may download the model (``hf:``/``sbert:``), so that an encoder that
    #: is not available offline is still tried.
    downloads: ClassVar[bool] = False
    #: The torch device types the encoder runs on (see :meth:`to`).
    device_types: ClassVar[tuple[str, ...]] = ("cpu",)

    def __init__(self) -> None:
        self._model: Any = None
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        """Where the encoder runs (the CPU unless moved with :meth:`to`)."""
        return getattr(self, "_device", torch.device("cpu"))

    def to(self, device: str | torch.device) -> Encoder:
        """Run on ``device`` from now on; returns the encoder itself.

        ``device`` is ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (CUDA where a GPU is present and
        the encoder runs there, else the CPU) or a ``torch.device``. A device type not in
        :attr:`device_types` (named with the encoder), or CUDA without a GPU, is a
        ``ValueError`` naming ``device``.
        A loaded model is moved; outputs are float32 NumPy arrays wherever it runs (their last
        bits may differ between devices, which is why the embedding cache keys on the device).
        """
        if device == "auto":
            usable = "cuda" in self.device_types and torch.cuda.is_available()
            target = torch.device("cuda" if usable else "cpu")
        elif isinstance(device, torch.device):
            target = resolve_device(str(device), "device")
        else:
            target = resolve_device(device, "device")
        if target.type not in self.device_types:
            raise ValueError(
                f"device {str(device)!r}: encoder {self.name!r} runs on "
                f"{' or '.join(self.device_types)} only"
            )
        self._device = target
        if self._model is not None:
            self._model = self._moved(self._model, target)
        return self

    def _moved(self, model: Any, device: torch.device) -> Any:
        """``model`` (as :meth:`_load` returned it) on ``device``; torch encoders override."""
        return model

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the embeddings."""

    @abstractmethod
    def is_available(self) -> bool:
        """Whether the encoder can run here (its packages and files are present)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A stable hex digest identifying the weights and the output-changing options."""

    @abstractmethod
    def _load(self) -> Any:
        """Build the model (called once, on first use)."""

    @abstractmethod
    def _encode_batch(self, batch: Any) -> np.ndarray:
        """Encode one validated, non-empty batch into ``(len(batch), dim)``."""

    @property
    def model(self) -> Any:
        """The underlying model, loaded on first access."""
        if self._model is None:
            if not (self.downloads or self.is_available()):
                raise RuntimeError(
                    f"encoder {self.name!r} is not available here; {self.install_hint}"
                )
            self._model = self._load()
        return self._model

    def _validate(self, inputs: object) -> Any:
        if self.modality == "text":
            return validate_texts(inputs)
        return validate_images(inputs)

    def encode(
        self,
        inputs: Sequence[str] | np.ndarray,
        batch_size: int = 64,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Encode ``inputs`` into a float32 array ``(N, dim)``.

        Parameters
        ----------
        inputs:
            A list of N strings (text) or a uint8 array ``(N, H, W)`` / ``(N, H, W, 3)``
            (vision; greyscale is repeated to three channels where the model wants colour).
        batch_size:
            Inputs per forward pass; the result does not depend on it (up to float rounding).
        progress:
            Optional ``progress(n_done, n_total)`` called after every batch.

        Empty ``inputs`` give a ``(0, dim)`` array without loading the model.
        """
        data = self._validate(inputs)
        batch_size = check_positive_int(batch_size, "batch_size")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
        n = len(data)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, batch_size):
            batch = data[start : start + batch_size]
            emb = np.asarray(self._encode_batch(batch), dtype=np.float32)
            emb = emb.reshape(len(batch), -1)
            if emb.shape[1] != self.dim:
                raise RuntimeError(
                    f"encoder {self.name!r} returned width {emb.shape[1]}, declared {self.dim}"
                )
            out[start : start + len(batch)] = emb
            if progress is not None:
                progress(start + len(batch), n)
        return out

    def info(self) -> EncoderInfo:
        """This encoder's registry metadata."""
        return EncoderInfo(self.name, self.modality, self.dim, self.is_available, self.install_hint)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, modality={self.modality!r})"
