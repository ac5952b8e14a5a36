"""Configuration of the stitching benchmark: YAML files validated on load.

A config names its ``task``, the datasets with their encoders, the anchors, the space variants,
the head and its optimiser, the seeds and the metrics. Tasks:

- ``classification`` (the default): zero-shot stitching of classification heads trained on
  frozen encoders' latents (:mod:`latentbridge.experiments.stitching`);
- ``reconstruction``: autoencoders / VAEs trained from scratch with the relative layer inside,
  stitched encoder i -> decoder j (:mod:`latentbridge.experiments.reconstruction`, options in
  the ``reconstruction`` key); the ``seeds`` are the models' seeds;
- ``graph``: GNN node classifiers with the relative layer before the head, stitched across
  seeds and architectures (:mod:`latentbridge.experiments.graphs`, options in ``graph``); the
  ``seeds`` are the models' seeds;
- ``similarity``: the similarity of every pair of encoders' spaces under each invariance class
  (:mod:`latentbridge.experiments.similarity`, options in ``similarity``); the ``seeds`` choose
  the anchor sets.

Unknown keys and bad values raise ``ConfigError`` naming the key (``datasets[0].encoders``):
numbers must be finite, dataset and encoder names registered (an encoder of the dataset's
modality), dataset options accepted by the dataset's loader, and the config's ``name`` (which
names its default output folder) a safe slug. Built-in configs live next to this module
(``configs/<name>.yaml``) and are selected by name: ``quick`` (the default), ``text``, ``vision``,
``synthetic``, ``reconstruction``, ``graph``, ``similarity``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from numbers import Integral
from pathlib import Path
from typing import Any

__all__ = [
    "TASKS",
    "AnchorConfig",
    "ConfigError",
    "DatasetConfig",
    "GraphConfig",
    "HeadConfig",
    "ReconstructionConfig",
    "RunConfig",
    "SimilarityConfig",
    "VariantConfig",
    "builtin_configs",
    "check_runnable",
    "load_config",
    "parse_config",
    "parse_seeds",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


@dataclass(frozen=True)
class TrainedEncodersConfig:
    """Vision encoders trained from scratch on the dataset (architectures x seeds)."""

    architectures: tuple[str, ...] = ("mlp", "cnn", "resnet")
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 3
    latent_dim: int = 64
    train_subset: int | None = None


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    encoders: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    test_split: str = "test"
    trained_encoders: TrainedEncodersConfig | None = None
    # synthetic datasets only: the transformation classes relating the generated spaces
    synthetic: dict[str, Any] | None = None


@dataclass(frozen=True)
class AnchorConfig:
    num: int = 1280
    strategy: str = "uniform"
    seed: int = 0


@dataclass(frozen=True)
class VariantConfig:
    absolute: bool = True
    projections: tuple[str, ...] = ("cosine", "euclidean", "l1", "linf")
    normalization: str = "none"
    product_projections: tuple[str, ...] = ("cosine", "euclidean", "l1", "linf")
    aggregations: tuple[str, ...] = ("mlp_sum", "concat", "sum", "self_attention")
    translation: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 256
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0


#: The experiment families ``latentbridge run`` knows.
TASKS: tuple[str, ...] = ("classification", "reconstruction", "graph", "similarity")


@dataclass(frozen=True)
class ReconstructionConfig:
    """Autoencoders trained from scratch with the relative layer inside (task ``reconstruction``).

    Every ``kind`` is trained once per seed of the run (``ae-0``, ``vae-1``, ...) and per variant.
    ``beta`` weighs the VAE's KL term; ``train_subset`` trains on a class-balanced subset of the
    training split; ``grid_images`` test images are shown in each image grid.
    """

    kinds: tuple[str, ...] = ("ae", "vae")
    latent_dim: int = 32
    hidden: int = 32
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    train_subset: int | None = None
    grid_images: int = 8


@dataclass(frozen=True)
class GraphConfig:
    """GNN node classifiers with the relative layer before the head (task ``graph``).

    Every architecture is trained once per seed of the run (``gcn-0``, ``sage-1``, ...) and per
    variant, full-batch, with Adam(lr, weight_decay) for ``epochs`` epochs.
    """

    architectures: tuple[str, ...] = ("gcn", "gat", "sage")
    hidden: int = 64
    latent_dim: int = 64
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    dropout: float = 0.5


@dataclass(frozen=True)
class SimilarityConfig:
    """The latent-similarity study (task ``similarity``).

    ``classes``: the representations compared (``absolute``, a projection name such as ``dot``,
    ``cosine``, ``euclidean``, ``l1``, ``linf``, or ``product``, the concatenation of the
    standardised ``variants.product_projections`` spaces). ``measures``: similarity measures
    between two encoders' representations of the same ``num_samples`` test samples.
    """

    classes: tuple[str, ...] = ("absolute", "dot", "cosine", "euclidean", "l1", "linf", "product")
    measures: tuple[str, ...] = ("linear_cka", "distance_pearson")
    num_samples: int = 2000


@dataclass(frozen=True)
class RunConfig:
    name: str
    datasets: tuple[DatasetConfig, ...]
    task: str = "classification"
    anchors: AnchorConfig = AnchorConfig()
    variants: VariantConfig = VariantConfig()
    head: HeadConfig = HeadConfig()
    seeds: tuple[int, ...] = (0, 1, 2)
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    description: str = ""
    reconstruction: ReconstructionConfig | None = None
    graph: GraphConfig | None = None
    similarity: SimilarityConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


METRICS = ("accuracy", "macro_f1")
#: The metrics each task can report, its defaults first.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": METRICS,
    "reconstruction": ("mse", "psnr"),
    "graph": METRICS,
    "similarity": ("linear_cka", "distance_pearson", "rbf_cka", "mean_cosine"),
}
SIMILARITY_MEASURES = TASK_METRICS["similarity"]


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"config key {key!r}: {message}")


def _check_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise _fail(f"{prefix}{unknown[0]}", f"unknown key; allowed keys are {sorted(allowed)}")


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(key, f"must be a mapping, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            raise _fail(key, f"keys must be strings, got {name!r}")
    return value


def _int(value: Any, key: str, minimum: int = 0, maximum: int | None = None) -> int:
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise _fail(key, f"must be an integer {bounds}, got {value!r}")
    return value


def _float(value: Any, key: str, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise _fail(key, f"must be a finite number, got {value!r}")
    if number < minimum or (strict and number == minimum):
        raise _fail(key, f"must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return number


def _plain(value: Any, key: str) -> Any:
    """``value`` if it is plain JSON data with finite numbers (what config.json stores)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(key, f"must be a finite number, got {value!r}")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain(item, f"{key}[{i}]")
        return value
    if isinstance(value, dict):
        for name, item in _mapping(value, key).items():
            _plain(item, f"{key}.{name}")
        return value
    raise _fail(key, f"must be a string, number, boolean, list or mapping, got {value!r}")


def _choice(value: Any, key: str, choices: list[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(key, f"{value!r} is not one of {choices}")
    return value


def _strings(value: Any, key: str, choices: list[str] | None = None) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _fail(key, f"must be a list of names, got {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise _fail(key, f"must hold names, got {item!r}")
        if choices is not None and item not in choices:
            raise _fail(key, f"{item!r} is not one of {choices}")
    if len(set(value)) != len(value):
        raise _fail(key, "names must not repeat")
    return tuple(value)


#: Seeds reach numpy and torch generators; 32 bits suit every one of them.
SEED_MAX = 2**32 - 1


def parse_seeds(value: Any, key: str = "seeds") -> tuple[int, ...]:
    """``value`` as seeds: a non-empty list of distinct integers in ``[0, 2**32 - 1]``.

    Raises :class:`ConfigError` naming ``key``.
    """
    items = None
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        items = list(value)
    if not items:
        raise _fail(key, f"must be a non-empty list of integers, got {value!r}")
    # numpy integers are integers too; booleans are not
    seeds = tuple(
        _int(v if isinstance(v, bool) or not isinstance(v, Integral) else int(v), key, 0, SEED_MAX)
        for v in items
    )
    if len(set(seeds)) != len(seeds):
        raise _fail(key, f"seeds must not repeat, got {list(seeds)}")
    return seeds


def _parse_trained(raw: Any, key: str) -> TrainedEncodersConfig | None:
    if raw is None:
        return None
    raw = _mapping(raw, key)
    _check_keys(raw, {f for f in TrainedEncodersConfig.__dataclass_fields__}, key)
    default = TrainedEncodersConfig()
    subset = raw.get("train_subset", default.train_subset)
    return TrainedEncodersConfig(
        architectures=_strings(
            raw.get("architectures", list(default.architectures)),
            f"{key}.architectures",
            ["mlp", "cnn", "resnet"],
        ),
        seeds=parse_seeds(raw.get("seeds", list(default.seeds)), f"{key}.seeds"),
        epochs=_int(raw.get("epochs", default.epochs), f"{key}.epochs", 1),
        latent_dim=_int(raw.get("latent_dim", default.latent_dim), f"{key}.latent_dim", 1),
        train_subset=None if subset is None else _int(subset, f"{key}.train_subset", 1),
    )


def _parse_synthetic(raw: Any, key: str) -> dict[str, Any]:
    """The options of :func:`latentbridge.synthetic.make_spaces` for the ``synthetic`` dataset."""
    from ..synthetic import make_spaces
    from ..transformations import TRANSFORMATIONS

    raw = _mapping(raw, key)
    allowed = {"num_samples", "dim", "num_classes", "transformations", "separation", "noise"}
    _check_keys(raw, allowed, key)
    defaults = {name: p.default for name, p in inspect.signature(make_spaces).parameters.items()}
    value = {**{k: defaults[k] for k in ("num_samples", "dim", "num_classes")}, **raw}
    num_classes = _int(value["num_classes"], f"{key}.num_classes", 2)
    _int(value["dim"], f"{key}.dim", 2)
    # at least 4 samples per class, so that the 75/25 split leaves each class in both splits
    _int(value["num_samples"], f"{key}.num_samples", 4 * num_classes)
    for name in ("separation", "noise"):
        if name in raw:
            _float(raw[name], f"{key}.{name}")
    if "transformations" in raw:
        kinds = _strings(raw["transformations"], f"{key}.transformations", list(TRANSFORMATIONS))
        if not kinds:
            raise _fail(f"{key}.transformations", "must name at least one transformation")
    return raw


def _check_options(spec: Any, options: dict[str, Any], key: str) -> None:
    """Every option is a keyword of the dataset's loader (its values are checked on load)."""
    from .. import data

    for option, value in options.items():
        try:
            data.check_options(spec.name, {option: value})
        except ValueError as error:
            raise _fail(f"{key}.{option}", str(error)) from None


def _check_encoders(names: tuple[str, ...], modality: str, dataset: str, key: str) -> None:
    """Every name is a registered encoder (or ``<family>:<id>``) of ``modality``."""
    from .. import encoders

    for name in names:
        try:
            info = encoders.info(name)
        except encoders.UnknownEncoderError as error:
            raise _fail(key, str(error)) from None
        if info.modality != modality:
            raise _fail(
                key,
                f"encoder {name!r} encodes {info.modality}, but dataset {dataset!r} is {modality}",
            )


def _split(raw: dict[str, Any], name: str, default: str, splits: tuple[str, ...], key: str) -> str:
    split = raw.get(name, default)
    if splits and split not in splits:
        raise _fail(f"{key}.{name}", f"must be one of {list(splits)}, got {split!r}")
    if not isinstance(split, str):
        raise _fail(f"{key}.{name}", f"must be a split name, got {split!r}")
    return split


def _parse_dataset(raw: Any, key: str, task: str = "classification") -> DatasetConfig:
    raw = _mapping(raw, key)
    _check_keys(raw, set(DatasetConfig.__dataclass_fields__), key)
    if "name" not in raw or not isinstance(raw["name"], str):
        raise _fail(f"{key}.name", "is required and must be a dataset name")
    name = raw["name"]
    options = _plain(_mapping(raw.get("options"), f"{key}.options"), f"{key}.options")
    splits: tuple[str, ...] = ()
    if name == "synthetic":
        synthetic: dict[str, Any] | None = _parse_synthetic(
            raw.get("synthetic"), f"{key}.synthetic"
        )
        modality = "synthetic"
    else:
        from .. import data

        specs = {s.name: s for s in data.available()}
        if name not in specs:
            raise _fail(f"{key}.name", f"{name!r} is not a dataset; choose from {list(specs)}")
        spec = specs[name]
        modality, splits = spec.modality, spec.splits
        wanted = {"graph": ("graph",), "reconstruction": ("vision",)}.get(task, ("vision", "text"))
        if modality not in wanted:
            choices = [n for n, s in specs.items() if s.modality in wanted]
            raise _fail(
                f"{key}.name",
                f"{name!r} is a {modality} dataset; task {task!r} needs one of {choices}",
            )
        if raw.get("synthetic") is not None:
            raise _fail(f"{key}.synthetic", "applies only to the 'synthetic' dataset")
        synthetic = None
        _check_options(spec, options, f"{key}.options")
    trained = _parse_trained(raw.get("trained_encoders"), f"{key}.trained_encoders")
    encoders = _strings(raw.get("encoders", []), f"{key}.encoders")
    if task in ("reconstruction", "graph"):
        if encoders or trained is not None:
            raise _fail(
                f"{key}.encoders",
                f"task {task!r} trains its own models; set them in the {task!r} key instead",
            )
    elif name == "synthetic" and task == "similarity":
        raise _fail(f"{key}.name", "the similarity study needs real encoders")
    elif name != "synthetic" and not encoders and trained is None:
        raise _fail(f"{key}.encoders", "name at least one encoder (or trained_encoders)")
    if name == "synthetic" and (encoders or trained is not None):
        raise _fail(f"{key}.encoders", "the synthetic dataset's spaces are generated, not encoded")
    if trained is not None and modality != "vision":
        raise _fail(
            f"{key}.trained_encoders", f"trains vision encoders, but {name!r} is a {modality} set"
        )
    _check_encoders(encoders, modality, name, f"{key}.encoders")
    # graph datasets have one split, "full", with node masks
    default_split = ("full", "full") if task == "graph" else ("train", "test")
    return DatasetConfig(
        name=name,
        encoders=encoders,
        options=options,
        train_split=_split(raw, "train_split", default_split[0], splits, key),
        test_split=_split(raw, "test_split", default_split[1], splits, key),
        trained_encoders=trained,
        synthetic=synthetic,
    )


def _parse_reconstruction(raw: Any, key: str) -> ReconstructionConfig:
    raw = _mapping(raw, key)
    _check_keys(raw, set(ReconstructionConfig.__dataclass_fields__), key)
    d = ReconstructionConfig()
    subset = raw.get("train_subset", d.train_subset)
    return ReconstructionConfig(
        kinds=_strings(raw.get("kinds", list(d.kinds)), f"{key}.kinds", ["ae", "vae"]) or d.kinds,
        latent_dim=_int(raw.get("latent_dim", d.latent_dim), f"{key}.latent_dim", 1),
        hidden=_int(raw.get("hidden", d.hidden), f"{key}.hidden", 1),
        epochs=_int(raw.get("epochs", d.epochs), f"{key}.epochs", 1),
        batch_size=_int(raw.get("batch_size", d.batch_size), f"{key}.batch_size", 1),
        lr=_float(raw.get("lr", d.lr), f"{key}.lr", 0.0, strict=True),
        beta=_float(raw.get("beta", d.beta), f"{key}.beta"),
        train_subset=None if subset is None else _int(subset, f"{key}.train_subset", 1),
        grid_images=_int(raw.get("grid_images", d.grid_images), f"{key}.grid_images", 1),
    )


def _parse_graph(raw: Any, key: str) -> GraphConfig:
    raw = _mapping(raw, key)
    _check_keys(raw, set(GraphConfig.__dataclass_fields__), key)
    d = GraphConfig()
    dropout = _float(raw.get("dropout", d.dropout), f"{key}.dropout")
    if dropout >= 1.0:
        raise _fail(f"{key}.dropout", f"must be < 1, got {dropout!r}")
    return GraphConfig(
        architectures=_strings(
            raw.get("architectures", list(d.architectures)),
            f"{key}.architectures",
            ["gcn", "gat", "sage"],
        )
        or d.architectures,
        hidden=_int(raw.get("hidden", d.hidden), f"{key}.hidden", 1),
        latent_dim=_int(raw.get("latent_dim", d.latent_dim), f"{key}.latent_dim", 1),
        epochs=_int(raw.get("epochs", d.epochs), f"{key}.epochs", 1),
        lr=_float(raw.get("lr", d.lr), f"{key}.lr", 0.0, strict=True),
        weight_decay=_float(raw.get("weight_decay", d.weight_decay), f"{key}.weight_decay"),
        dropout=dropout,
    )


def _parse_similarity(raw: Any, key: str) -> SimilarityConfig:
    from .. import projections

    raw = _mapping(raw, key)
    _check_keys(raw, set(SimilarityConfig.__dataclass_fields__), key)
    d = SimilarityConfig()
    classes = _strings(
        raw.get("classes", list(d.classes)),
        f"{key}.classes",
        ["absolute", "product", *projections.available()],
    )
    if not classes:
        raise _fail(f"{key}.classes", "must name at least one representation")
    measures = _strings(
        raw.get("measures", list(d.measures)), f"{key}.measures", list(SIMILARITY_MEASURES)
    )
    if not measures:
        raise _fail(f"{key}.measures", "must name at least one measure")
    return SimilarityConfig(
        classes=classes,
        measures=measures,
        num_samples=_int(raw.get("num_samples", d.num_samples), f"{key}.num_samples", 2),
    )


#: A config name: it names the default output folder ``runs/<name>``, so no path separators.
_SLUG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_SLUG_RULE = "letters, digits, '-', '_' and '.', not starting with '.'"


def _name(raw: dict[str, Any], fallback: str) -> str:
    """The config's ``name`` key, else ``fallback`` (a YAML file's stem), checked as a slug."""
    if "name" in raw:
        value = raw["name"]
        if not isinstance(value, str) or not _SLUG.fullmatch(value):
            raise _fail("name", f"must be a name of {_SLUG_RULE}; got {value!r}")
        return value
    if not _SLUG.fullmatch(fallback):
        raise ConfigError(
            f"the config has no 'name' key and the name from its file, {fallback!r}, is not "
            f"made of {_SLUG_RULE}; add a 'name' key"
        )
    return fallback


def parse_config(raw: Any, name: str = "config") -> RunConfig:
    """Validate a config mapping (as loaded from YAML) into a :class:`RunConfig`.

    ``name`` is the config's name when ``raw`` has no ``name`` key. Raises :class:`ConfigError`
    naming the first invalid key.
    """
    from .. import aggregations, anchors, normalization, projections
    from ..alignment import available as estimators

    raw = _mapping(raw, "<root>")
    _check_keys(raw, set(RunConfig.__dataclass_fields__), "")
    task = _choice(raw.get("task", "classification"), "task", list(TASKS))
    for other in ("reconstruction", "graph", "similarity"):
        if other != task and raw.get(other) is not None:
            raise _fail(other, f"applies only to task {other!r} (this config's task is {task!r})")
    datasets = raw.get("datasets")
    if not isinstance(datasets, (list, tuple)) or not datasets:
        raise _fail("datasets", "must be a non-empty list of datasets")
    parsed_datasets = tuple(
        _parse_dataset(d, f"datasets[{i}]", task) for i, d in enumerate(datasets)
    )

    a_raw = _mapping(raw.get("anchors"), "anchors")
    _check_keys(a_raw, set(AnchorConfig.__dataclass_fields__), "anchors")
    anchor_cfg = AnchorConfig(
        num=_int(a_raw.get("num", 1280), "anchors.num", 1),
        strategy=_choice(a_raw.get("strategy", "uniform"), "anchors.strategy", anchors.available()),
        seed=_int(a_raw.get("seed", 0), "anchors.seed", 0, SEED_MAX),
    )

    v_raw = _mapping(raw.get("variants"), "variants")
    _check_keys(v_raw, set(VariantConfig.__dataclass_fields__), "variants")
    default_v = VariantConfig()
    absolute = v_raw.get("absolute", True)
    if not isinstance(absolute, bool):
        raise _fail("variants.absolute", f"must be true or false, got {absolute!r}")
    norm = _choice(
        v_raw.get("normalization", "none"), "variants.normalization", list(normalization.ABSOLUTE)
    )
    variant_cfg = VariantConfig(
        absolute=absolute,
        projections=_strings(
            v_raw.get("projections", list(default_v.projections)),
            "variants.projections",
            projections.available(),
        ),
        normalization=norm,
        product_projections=_strings(
            v_raw.get("product_projections", list(default_v.product_projections)),
            "variants.product_projections",
            projections.available(),
        ),
        aggregations=_strings(
            v_raw.get("aggregations", list(default_v.aggregations)),
            "variants.aggregations",
            aggregations.available(),
        ),
        translation=_strings(v_raw.get("translation", []), "variants.translation", estimators()),
    )
    if variant_cfg.aggregations and not variant_cfg.product_projections:
        raise _fail("variants.product_projections", "is empty but aggregations are requested")
    if variant_cfg.translation and task != "classification":
        raise _fail("variants.translation", "applies only to task 'classification'")

    h_raw = _mapping(raw.get("head"), "head")
    _check_keys(h_raw, set(HeadConfig.__dataclass_fields__), "head")
    default_h = HeadConfig()
    head_cfg = HeadConfig(
        hidden=_int(h_raw.get("hidden", default_h.hidden), "head.hidden", 1),
        epochs=_int(h_raw.get("epochs", default_h.epochs), "head.epochs", 1),
        lr=_float(h_raw.get("lr", default_h.lr), "head.lr", 0.0, strict=True),
        batch_size=_int(h_raw.get("batch_size", default_h.batch_size), "head.batch_size", 1),
        weight_decay=_float(h_raw.get("weight_decay", 0.0), "head.weight_decay"),
    )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", "must be a string")
    config_name = _name(raw, name)
    allowed_metrics = list(TASK_METRICS[task])
    similarity = (
        _parse_similarity(raw.get("similarity"), "similarity") if task == "similarity" else None
    )
    if similarity is not None:
        # the measures are the metrics; a second list would only repeat them
        if "metrics" in raw:
            raise _fail("metrics", "task 'similarity' reports similarity.measures; drop 'metrics'")
        metrics: tuple[str, ...] = similarity.measures
    else:
        default_metrics = list(TASK_METRICS[task][:2])
        metrics = _strings(raw.get("metrics", default_metrics), "metrics", allowed_metrics)
        if not metrics:
            raise _fail("metrics", "must name at least one metric")
    return RunConfig(
        name=config_name,
        datasets=parsed_datasets,
        task=task,
        anchors=anchor_cfg,
        variants=variant_cfg,
        head=head_cfg,
        seeds=parse_seeds(raw.get("seeds", [0, 1, 2]), "seeds"),
        metrics=metrics,
        description=description,
        reconstruction=(
            _parse_reconstruction(raw.get("reconstruction"), "reconstruction")
            if task == "reconstruction"
            else None
        ),
        graph=_parse_graph(raw.get("graph"), "graph") if task == "graph" else None,
        similarity=similarity,
    )


def builtin_configs() -> list[str]:
    """Names of the configs shipped with the package."""
    folder = resources.files(__package__).joinpath("configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | os.PathLike[str]) -> RunConfig:
    """Load a built-in config by name, or a YAML file by path, and validate it.

    Without a ``name`` key the config is named after the file's stem. Raises
    :class:`ConfigError` for a file that cannot be read or is not valid YAML, as for a bad value.
    """
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("reading configs needs PyYAML: pip install pyyaml") from error
    text: str
    label = str(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in builtin_configs():
        text = resources.files(__package__).joinpath(f"configs/{name_or_path}.yaml").read_text()
        name = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                f"{label!r} is neither a built-in config {builtin_configs()} nor a file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{label!r} is not UTF-8 text ({error.reason} at byte {error.start})"
            ) from None
        except OSError as error:
            raise ConfigError(f"cannot read {label!r}: {error.strerror or error}") from None
        name = path.stem
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{label!r} is not valid YAML: {_yaml_problem(error)}") from None
    return parse_config(raw, name=name)


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
    to install). Only registry metadata and file probes are
    read: nothing is loaded or encoded.
    """
    try:  # the form config.json stores; non-finite numbers pass, for parse_config to name
        raw = json.loads(json.dumps(config.to_dict()))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the config holds a value config.json cannot store: {error}") from None
    if config.task == "similarity":
        raw.pop("metrics", None)  # derived from similarity.measures
    parse_config(raw, name=config.name)
    from .. import data, encoders

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
