"""Fingerprints of model folders (``hf:<dir>``, ``sbert:<dir>``, built-in package folders).

The folders are small, real-format sentence-transformers / transformers layouts written in
``tmp_path`` (a safetensors file, configs, a tokenizer, a pooling module); the expected digests
are recomputed here independently, from the documented formula.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from latentbridge.encoders import base
from latentbridge.encoders.base import hash_files, hash_model_folder
from latentbridge.encoders.generic import HFEncoder, SBertEncoder


def _safetensors(values: list[float]) -> bytes:
    """A real safetensors file: u64 header length, JSON header, little-endian float32 data."""
    data = struct.pack(f"<{len(values)}f", *values)
    header = {"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, len(data)]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def sbert_folder(root: Path) -> Path:
    """A sentence-transformers folder: transformer at the root, then 1_Pooling/."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    _write(root / "modules.json", json.dumps(modules))
    _write(root / "config.json", json.dumps({"model_type": "bert", "hidden_size": 4}))
    _write(root / "tokenizer.json", json.dumps({"model": {"vocab": {"[PAD]": 0, "a": 1}}}))
    _write(root / "vocab.txt", "[PAD]\na\n")
    _write(root / "model.safetensors", _safetensors([0.5, -1.0, 2.0, 0.25]))
    _write(root / "1_Pooling" / "config.json", json.dumps({"pooling_mode_mean_tokens": True}))
    _write(root / "README.md", "# a model card\n")
    _write(root / ".gitattributes", "*.safetensors filter=lfs\n")
    _write(root / "checkpoints" / "step_100" / "model.safetensors", _safetensors([9.0]))
    return root


HASHED = ("1_Pooling/config.json", "config.json", "model.safetensors", "modules.json")
HASHED += ("tokenizer.json", "vocab.txt")


def expected_digest(root: Path, names: tuple[str, ...], extra: dict) -> str:
    """The documented digest: sorted ``key=repr(value)`` lines, then sorted ``path:sha256``."""
    h = hashlib.sha256()
    for key, value in sorted(extra.items()):
        h.update(f"{key}={value!r}\n".encode())
    for name in sorted(names):
        h.update(f"{name}:{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _symlink(link: Path, target: Path) -> None:
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError):  # Windows without the symlink privilege
        pytest.skip("symbolic links are not available here")


def test_model_folder_hashes_exactly_the_files_a_loader_reads(tmp_path: Path) -> None:
    root = sbert_folder(tmp_path / "model")
    extra = {"family": "sbert"}
    assert hash_model_folder(root, extra=extra) == expected_digest(root, HASHED, extra)
    assert SBertEncoder(str(root)).fingerprint() == expected_digest(root, HASHED, extra)
    hf = HFEncoder(str(root), pooling="mean")
    assert hf.fingerprint() == expected_digest(root, HASHED, {"family": "hf", **hf._options()})


@pytest.mark.parametrize("name", HASHED)
def test_every_model_file_changes_the_fingerprint(tmp_path: Path, name: str) -> None:
    root = sbert_folder(tmp_path / "model")
    before = hash_model_folder(root)
    path = root / name
    path.write_bytes(path.read_bytes() + b" ")
    base._FILE_DIGESTS.clear()  # the memo is keyed by mtime, which may not have moved
    assert hash_model_folder(root) != before


@pytest.mark.parametrize(
    "name", ["README.md", ".gitattributes", "checkpoints/step_100/model.safetensors", "x.py"]
)
def test_other_files_do_not_change_the_fingerprint(tmp_path: Path, name: str) -> None:
    root = sbert_folder(tmp_path / "model")
    before = hash_model_folder(root)
    _write(root / name, b"changed or added")
    assert hash_model_folder(root) == before


@pytest.mark.parametrize(
    "make",
    [
        lambda root: root.mkdir(),  # empty
        lambda root: _write(root / "notes.txt", "not a model"),  # files, but no model
        lambda root: _write(root / "config.json", "{}"),  # a config, no safetensors weights
        lambda root: _write(root / "sub" / "model.safetensors", _safetensors([1.0])),  # too deep
    ],
    ids=["empty", "no-model-file", "no-weights", "weights-in-unlisted-folder"],
)
def test_folders_without_a_model_are_refused(tmp_path: Path, make) -> None:
    root = tmp_path / "folder"
    make(root)
    with pytest.raises(ValueError, match="is not a model folder"):
        hash_model_folder(root)
    with pytest.raises(ValueError, match=r"encoder 'hf:.*is not a model folder"):
        HFEncoder(str(root)).fingerprint()


def test_the_filesystem_root_is_refused_without_reading_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hashed: list[Path] = []
    monkeypatch.setattr(base, "_file_digest", lambda path: hashed.append(path) or "")
    with pytest.raises(ValueError, match="not a model folder"):
        HFEncoder("/").fingerprint()
    assert hashed == []


def test_bounds_on_entries_and_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = sbert_folder(tmp_path / "model")
    monkeypatch.setattr(base, "MAX_FOLDER_FILES", 5)
    with pytest.raises(ValueError, match="more than 5 files and folders"):
        hash_model_folder(root)
    with pytest.raises(ValueError, match="more than 5 files and folders"):
        hash_files([root])
    monkeypatch.setattr(base, "MAX_FOLDER_FILES", 10_000)
    monkeypatch.setattr(base, "MAX_HASHED_BYTES", 64)
    with pytest.raises(ValueError, match="more than 64 bytes"):
        hash_model_folder(root)
    with pytest.raises(ValueError, match="more than 64 bytes"):
        hash_files([root])


def test_links_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    root = sbert_folder(tmp_path / "model")
    secret = _write(tmp_path / "outside" / "secret.json", '{"password": 1}')
    _symlink(root / "tokenizer_config.json", secret)
    with pytest.raises(ValueError, match=r"symbolic link to .*outside"):
        hash_model_folder(root)
    with pytest.raises(ValueError, match=r"symbolic link to .*outside"):
        hash_files([root])
    (root / "tokenizer_config.json").unlink()
    # a module folder that is a link out, and a modules.json path that climbs out
    (root / "1_Pooling" / "config.json").unlink()
    (root / "1_Pooling").rmdir()
    _symlink(root / "1_Pooling", secret.parent)
    with pytest.raises(ValueError, match="outside the folder"):
        hash_model_folder(root)
    modules = [{"path": ""}, {"path": "../outside"}]
    (root / "1_Pooling").unlink()
    _write(root / "modules.json", json.dumps(modules))
    with pytest.raises(ValueError, match=r"'\.\./outside', outside the folder"):
        hash_model_folder(root)


def test_links_inside_the_folder_are_followed(tmp_path: Path) -> None:
    root = sbert_folder(tmp_path / "model")
    copy = sbert_folder(tmp_path / "copy")
    weights = _write(root / "blobs" / "weights", (root / "model.safetensors").read_bytes())
    (root / "model.safetensors").unlink()
    _symlink(root / "model.safetensors", weights)
    assert hash_model_folder(root) == hash_model_folder(copy)


def test_hub_snapshot_links_into_its_blobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hugging Face cache layout: snapshots/<rev>/<file> -> ../../blobs/<sha256>."""
    hub = pytest.importorskip("huggingface_hub")
    source = sbert_folder(tmp_path / "source")
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    for name in HASHED:
        content = (source / name).read_bytes()
        blob = _write(repo / "blobs" / hashlib.sha256(content).hexdigest(), content)
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        _symlink(snapshot / name, Path(os.path.relpath(blob, (snapshot / name).parent)))
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    encoder = SBertEncoder("org/tiny")
    assert encoder.local_dir() == snapshot
    assert encoder.fingerprint() == expected_digest(source, HASHED, {"family": "sbert"})
    # the same layout, but a file linking out of the repository's cache folder
    outside = _write(tmp_path / "elsewhere" / "vocab.txt", "x\n")
    (snapshot / "vocab.txt").unlink()
    _symlink(snapshot / "vocab.txt", outside)
    with pytest.raises(ValueError, match="outside"):
        SBertEncoder("org/tiny").fingerprint()


def test_hash_files_of_a_package_folder_is_unchanged(tmp_path: Path) -> None:
    """Built-in encoders hash their whole package folder, recursively (their cached entries
    stay valid): every file but ``__pycache__``, by relative path."""
    root = sbert_folder(tmp_path / "pkg")
    _write(root / "__pycache__" / "x.pyc", b"\0")
    names = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert len(names) == 9
    assert hash_files([root], extra={"encoder": "e"}) == expected_digest(
        root, tuple(names), {"encoder": "e"}
    )
