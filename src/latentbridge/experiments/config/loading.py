"""Configs from files (built-in by name, or a YAML path), and the check before a run."""

from __future__ import annotations

import json
import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ... import data, encoders
from ..._devices import resolve_device
from .rules import parse_config
from .schema import RunConfig
from .validate import ConfigError


def _folder() -> Traversable:
    """The built-in configs: ``latentbridge/experiments/configs/<name>.yaml``."""
    return resources.files("latentbridge.experiments").joinpath("configs")


def builtin_configs() -> list[str]:
    """Names of the configs shipped with the package."""
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | os.PathLike[str]) -> RunConfig:
    """Load a built-in config by name, or a YAML file by path, and validate it.

    Without a ``name`` key the config is named after the file's stem. Raises
    :class:`ConfigError` for a file that cannot be read or is not valid YAML, as for a bad value.
    """
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("reading configs needs PyYAML: pip install pyyaml") from error
    label = str(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in builtin_configs():
        text = _folder().joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
        name = name_or_path
    else:
        path = Path(name_or_path)
        text = _read(path, label)
        name = path.stem
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{label!r} is not valid YAML: {_yaml_problem(error)}") from None
    return parse_config(raw, name=name)


def _read(path: Path, label: str) -> str:
    if not path.is_file():
        raise ConfigError(f"{label!r} is neither a built-in config {builtin_configs()} nor a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{label!r} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read {label!r}: {error.strerror or error}") from None


def _yaml_problem(error: Exception) -> str:
    """One line for a PyYAML error: what went wrong, and where."""
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error)
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def check_runnable(config: RunConfig) -> None:
    """Check, before a run writes anything, that ``config`` is valid and can run here.

    A :class:`RunConfig` built in Python gets the checks :func:`load_config` applies to a YAML
    file (``ConfigError`` naming the key); then every dataset's source must be here
    (``SourceMissingError``) and every encoder it names installed (``RuntimeError`` saying what
    to install). Only registry metadata and file probes are read: nothing is loaded or encoded.
    """
    try:  # the form config.json stores; non-finite numbers pass, for parse_config to name
        raw = json.loads(json.dumps(config.to_dict()))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the config holds a value config.json cannot store: {error}") from None
    if config.task == "similarity":
        raw.pop("metrics", None)  # derived from similarity.measures
    parse_config(raw, name=config.name)
    if config.device != "cpu":
        if config.task == "similarity":
            raise ConfigError(
                f"config key 'device': the similarity task trains nothing; use device: cpu "
                f"(got {config.device!r})"
            )
        try:
            resolve_device(config.device, "config key 'device':")
        except ValueError as error:
            raise ConfigError(str(error)) from None
    for i, ds in enumerate(config.datasets):
        if ds.name != "synthetic":
            try:
                data.check_available(ds.name, ds.options)
            except data.SourceMissingError as error:
                raise type(error)(f"config key 'datasets[{i}].name': {error}") from None
        for name in ds.encoders:
            info = encoders.info(name)
            if not info.is_available():
                raise RuntimeError(
                    f"config key 'datasets[{i}].encoders': encoder {name!r} is not installed "
                    f"here; {info.install_hint}"
                )
