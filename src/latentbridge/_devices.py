"""Where the experiments train: ``cpu``, ``cuda`` (or ``cuda:N``) or ``auto``."""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICES", "check_device", "resolve_device"]

#: The device names a config or a command accepts (``cuda:N`` names one GPU of several).
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")


def check_device(name: object, argument: str = "device") -> str:
    """``name`` if it is ``cpu``, ``cuda``, ``cuda:N`` or ``auto``; else a ``ValueError``
    naming ``argument``."""
    if not isinstance(name, str) or not (name in DEVICES or re.fullmatch(r"cuda:\d+", name)):
        raise ValueError(f"{argument} must be one of {list(DEVICES)} or 'cuda:N', got {name!r}")
    return name


def resolve_device(name: str, argument: str = "device") -> torch.device:
    """The torch device of ``name``: ``auto`` is CUDA where a GPU is present, else the CPU;
    ``cuda`` without one is a ``ValueError`` naming ``argument``, never a silent CPU run."""
    check_device(name, argument)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"{argument} {name!r} needs a CUDA GPU, and torch sees none here "
                "(torch.cuda.is_available() is False); use 'cpu' or 'auto'"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"{argument} {name!r}: there are {torch.cuda.device_count()} CUDA device(s)"
            )
    return torch.device(name)
