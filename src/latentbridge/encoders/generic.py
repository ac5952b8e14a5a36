"""Generic encoders: any Hugging Face / sentence-transformers / timm model, or a torch module.

- ``hf:<model-id-or-dir>`` (:class:`HFEncoder`): ``transformers.AutoModel`` +
  ``AutoTokenizer``; the sentence vector is the hidden state of ``layer`` (default ``-1``, the
  last; ``0`` is the embedding layer) pooled by ``"cls"`` (first token) or ``"mean"`` (mean over
  non-padding tokens).
- ``sbert:<model-id-or-dir>`` (:class:`SBertEncoder`): a sentence-transformers model with its
  own pooling.
- ``timm:<name>`` (:class:`TimmEncoder`): ``timm.create_model(name, pretrained=True,
  num_classes=0)``, the pooled pre-logits features.
- :class:`ModuleEncoder`: a trained ``torch.nn.Module`` (see
  :func:`latentbridge.encoders.register_module`).

A model id that is an existing directory is read from there. Any other id is a Hub repository:
it is downloaded on first use when the machine is online (``snapshot_download``, safetensors
and configs only) and read from the local Hugging Face cache otherwise. ``is_available()``
means "runs here without network": true for a local directory or a repository already in the
cache. Weights are only ever read from safetensors (``use_safetensors=True``): nothing is
unpickled.

The fingerprint of ``hf:``/``sbert:`` hashes only the files the loaders read (configs,
tokenizer files, weights; :func:`~latentbridge.encoders.base.hash_model_folder`), within
bounds, and refuses a folder that holds no model: ``hf:/`` fails with a clear error instead of
reading the file system.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._validation import check_choice, check_int, check_positive_int
from ._locate import has_modules
from .base import MODALITIES, Encoder, hash_model_folder

__all__ = ["HFEncoder", "ModuleEncoder", "SBertEncoder", "TimmEncoder", "state_dict_digest"]

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*tokenizer*"]


def state_dict_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's ``state_dict``: each entry's name, dtype, shape and raw bytes."""
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class _HubEncoder(Encoder):
    """Shared resolution of ``<model-id-or-dir>`` to a local folder."""

    prefix = ""
    modality = "text"
    downloads = True

    def __init__(self, model_id: str) -> None:
        super().__init__()
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"model_id must be a non-empty str, got {model_id!r}")
        self.model_id = model_id
        self.name = f"{self.prefix}:{model_id}"
        self._dir: Path | None = None

    def _runtime_available(self) -> bool:
        raise NotImplementedError

    def _cached_dir(self) -> Path | None:
        local = Path(self.model_id).expanduser()
        if local.is_dir():
            return local
        if not has_modules("huggingface_hub"):
            return None
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(self.model_id, local_files_only=True))
        except Exception:  # not in the cache (or not a valid repository id)
            return None

    def local_dir(self) -> Path:
        """The model's folder: the directory itself, or the Hub snapshot (downloaded if online)."""
        if self._dir is None:
            cached = self._cached_dir()
            if cached is None:
                from huggingface_hub import snapshot_download

                cached = Path(snapshot_download(self.model_id, allow_patterns=_HUB_PATTERNS))
            self._dir = cached
        return self._dir

    def is_available(self) -> bool:
        """True when the runtime is installed and the files are local (no network needed)."""
        return self._runtime_available() and self._cached_dir() is not None

    def _options(self) -> dict[str, Any]:
        return {}

    def _link_roots(self, folder: Path) -> tuple[Path, ...]:
        """Where the model files may link to: nowhere outside a local folder; a Hub snapshot
        (``<cache>/models--<org>--<name>/snapshots/<revision>/``) links into its ``blobs/``."""
        if Path(self.model_id).expanduser().is_dir():
            return ()
        return (folder.parent.parent / "blobs",)

    def fingerprint(self) -> str:
        """SHA-256 of the model files' bytes (configs, tokenizer, weights) and the options.

        Raises ``ValueError`` when the folder holds no model (see
        :func:`~latentbridge.encoders.base.hash_model_folder`).
        """
        folder = self.local_dir()
        try:
            return hash_model_folder(
                folder,
                extra={"family": self.prefix, **self._options()},
                link_roots=self._link_roots(folder),
            )
        except ValueError as error:
            raise ValueError(f"encoder {self.name!r}: {error}") from None


class HFEncoder(_HubEncoder):
    """A ``transformers`` encoder pooled into one vector per text.

    ``e(text) = pool(H_layer)``, ``H_layer = hidden_states[layer]`` of shape ``(T, d)``;
    ``pool = H[0]`` (``"cls"``) or ``sum_t m_t H_t / sum_t m_t`` (``"mean"``, ``m`` the attention
    mask). Texts are truncated to ``max_length`` tokens.
    """

    prefix = "hf"
    install_hint = (
        "pip install transformers; a Hub id is downloaded on first use (needs network), "
        "a local directory works offline"
    )
    requirements = ("transformers",)
    device_types = ("cpu", "cuda")

    def __init__(
        self, model_id: str, layer: int = -1, pooling: str = "cls", max_length: int = 512
    ) -> None:
        super().__init__(model_id)
        self.layer = check_int(layer, "layer")
        self.pooling = check_choice(pooling, "pooling", ("cls", "mean"))
        self.max_length = check_positive_int(max_length, "max_length")

    def _runtime_available(self) -> bool:
        return has_modules("transformers")

    def _options(self) -> dict[str, Any]:
        return {"layer": self.layer, "pooling": self.pooling, "max_length": self.max_length}

    def _config(self) -> dict[str, Any]:
        with (self.local_dir() / "config.json").open(encoding="utf-8") as f:
            config: dict[str, Any] = json.load(f)
        return config

    @property
    def dim(self) -> int:
        """``hidden_size`` of the model's config (read without loading the weights)."""
        config = self._config()
        return int(config.get("hidden_size", config.get("d_model", 0)))

    def _load(self) -> Any:
        from transformers import AutoModel, AutoTokenizer

        folder = str(self.local_dir())
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        model.eval().to(self.device)
        n_layers = int(model.config.num_hidden_layers)
        if not -(n_layers + 1) <= self.layer <= n_layers:
            raise ValueError(
                f"layer must be in [-{n_layers + 1}, {n_layers}] for {self.name}, got {self.layer}"
            )
        return tokenizer, model

    def _moved(self, model: Any, device: torch.device) -> Any:
        tokenizer, module = model
        return tokenizer, module.to(device)

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        tokenizer, model = self.model
        enc = tokenizer(
            batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            out = model(**enc, output_hidden_states=True)
            hidden = out.hidden_states[self.layer]
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return pooled.float().cpu().numpy()


class SBertEncoder(_HubEncoder):
    """A sentence-transformers model (its own pooling and normalisation)."""

    prefix = "sbert"
    install_hint = (
        "pip install sentence-transformers; a Hub id is downloaded on first use (needs "
        "network), a local directory works offline"
    )
    requirements = ("sentence-transformers",)
    device_types = ("cpu", "cuda")

    def _runtime_available(self) -> bool:
        return has_modules("sentence_transformers")

    def _moved(self, model: Any, device: torch.device) -> Any:
        return model.to(device)

    @property
    def dim(self) -> int:
        """The model's sentence embedding dimension (loads the model)."""
        model = self.model
        # renamed in sentence-transformers 6 (get_sentence_embedding_dimension is deprecated)
        getter = getattr(model, "get_embedding_dimension", None)
        if getter is None:
            getter = model.get_sentence_embedding_dimension
        return int(getter())

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            str(self.local_dir()),
            device=str(self.device),
            local_files_only=True,
            model_kwargs={"use_safetensors": True},
        )
        return model.eval()

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False
            )
        )


class TimmEncoder(Encoder):
    """A ``timm`` image model's pooled features (``num_classes=0``), ImageNet-normalised.

    Images are resized to the model's ``input_size`` (bilinear, antialiased), greyscale
    repeated to three channels, scaled to [0, 1] and normalised by the model's mean/std.
    """

    modality = "vision"
    install_hint = "pip install timm (weights are downloaded from the Hub on first use)"
    requirements = ("timm",)
    device_types = ("cpu", "cuda")

    def __init__(self, model_name: str) -> None:
        super().__init__()
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty str, got {model_name!r}")
        self.model_name = model_name
        self.name = f"timm:{model_name}"

    def is_available(self) -> bool:
        """True when ``timm`` is installed (weights may still need a download)."""
        return has_modules("timm")

    @property
    def dim(self) -> int:
        """``num_features`` of the model (loads it)."""
        return int(self.model[0].num_features)

    def fingerprint(self) -> str:
        """SHA-256 of the model's state_dict bytes and its name."""
        h = hashlib.sha256(f"timm:{self.model_name}\n".encode())
        h.update(state_dict_digest(self.model[0]).encode())
        return h.hexdigest()

    def _load(self) -> Any:
        import timm

        model = timm.create_model(self.model_name, pretrained=True, num_classes=0).eval()
        config = timm.data.resolve_data_config({}, model=model)
        return model.to(self.device), config

    def _moved(self, model: Any, device: torch.device) -> Any:
        module, config = model
        return module.to(device), config

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        model, config = self.model
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).float() / 255.0
        if x.ndim == 3:
            x = x.unsqueeze(-1).expand(-1, -1, -1, 3)
        x = x.permute(0, 3, 1, 2)
        size = tuple(config["input_size"][-2:])
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True)
        mean = torch.tensor(config["mean"], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(config["std"], device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            return model((x - mean) / std).float().cpu().numpy()


def default_image_preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> ``(N, 1, H, W)``, ``(N, H, W, 3)`` -> ``(N, 3, H, W)``; x / 255."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32) / 255.0
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


class ModuleEncoder(Encoder):
    """A trained ``torch.nn.Module`` used as an encoder.

    ``e(inputs) = module(preprocess(inputs))`` flattened to ``(N, dim)``, run in eval mode
    under ``torch.inference_mode`` (the module's train/eval flag is restored afterwards).
    ``preprocess`` maps a batch of raw inputs to the module's input tensor; for vision it
    defaults to :func:`default_image_preprocess`, for text it is required.

    The fingerprint hashes the state_dict bytes (:func:`state_dict_digest`), the module's
    ``repr`` (its architecture) and ``dim``; it is recomputed on every call, so it follows
    further training of the module.

    The encoder starts on the device of the module's parameters; :meth:`to` another device
    runs a copy of the module there and leaves the module itself where it is.
    """

    downloads = False
    device_types = ("cpu", "cuda")

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        modality: str,
        dim: int,
        preprocess: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        check_choice(modality, "modality", MODALITIES)
        dim = check_positive_int(dim, "dim")
        if preprocess is None and modality == "text":
            raise ValueError("preprocess is required for a text module (list[str] -> Tensor)")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be callable, got {type(preprocess).__name__}")
        self.name = name
        self.modality = modality
        self._dim = dim
        self.module = module
        self.preprocess = preprocess or default_image_preprocess
        self.install_hint = "registered in this process with register_module"
        param = next(module.parameters(), None)
        if param is not None and param.device.type in self.device_types:
            self._device = param.device  # where the module already is

    @property
    def dim(self) -> int:
        """The declared width."""
        return self._dim

    def is_available(self) -> bool:
        """Always true: the module is in memory."""
        return True

    def fingerprint(self) -> str:
        """SHA-256 of the state_dict bytes, the architecture (``repr``) and ``dim``."""
        h = hashlib.sha256(f"module\n{self.module!r}\n{self._dim}\n".encode())
        h.update(state_dict_digest(self.module).encode())
        return h.hexdigest()

    def _load(self) -> Any:
        return self._on(self.device)

    def _moved(self, model: Any, device: torch.device) -> Any:
        return self._on(device)

    def _on(self, device: torch.device) -> torch.nn.Module:
        """The module where it is, or a copy of it on ``device``: the caller's module is never
        moved (a copy is made by :meth:`to` or on first use; call ``to`` again after training
        the module further)."""
        param = next(self.module.parameters(), None)
        here = param is None or (
            param.device.type == device.type and device.index in (None, param.device.index)
        )
        return self.module if here else copy.deepcopy(self.module).to(device)

    def _encode_batch(self, batch: Any) -> np.ndarray:
        module = self.model
        was_training = module.training
        module.eval()
        try:
            x = self.preprocess(batch).to(self.device)
            with torch.inference_mode():
                out = module(x)
        finally:
            module.train(was_training)
        return out.detach().float().cpu().reshape(len(batch), -1).numpy()
