"""The rules that relate several fields of a config, and :func:`parse_config`.

Each field is checked alone by the schema (:mod:`.schema`); what depends on another field or on
a registry's metadata is one small function here: the task's own options key, the task's
datasets (modality, splits, encoders or trained models), dataset options against the loader's
signature, the synthetic dataset's options, the variants the task compares, the metrics it
reports, and the config's name (a slug: it names the default output folder ``runs/<name>``).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from typing import Any

from ... import data, encoders
from ...synthetic import make_spaces
from ...transformations import TRANSFORMATIONS
from ..variants import candidates, from_config, parse_relative
from .schema import TASK_SCHEMAS, DatasetConfig, RunConfig, TaskSchema, VariantConfig
from .validate import (
    ConfigError,
    Rule,
    check,
    check_keys,
    fail,
    mapping,
    parse_dataclass,
    parse_field,
)

#: A config name: it names the default output folder ``runs/<name>``, so no path separators.
_SLUG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_SLUG_RULE = "letters, digits, '-', '_' and '.', not starting with '.'"


def parse_config(raw: Any, name: str = "config") -> RunConfig:
    """Validate a config mapping (as loaded from YAML) into a :class:`RunConfig`.

    ``name`` is the config's name when ``raw`` has no ``name`` key. Raises
    :class:`~.validate.ConfigError` naming the first invalid key.
    """
    raw = mapping(raw, "<root>")
    task = parse_field(RunConfig, "task", raw)  # first: the other rules depend on it
    schema = TASK_SCHEMAS[task]
    _check_task_keys(raw, task)
    config = parse_dataclass(RunConfig, raw, "", defaults={"name": name, "metrics": schema.metrics})
    datasets = tuple(
        _dataset(ds, raw["datasets"][i], f"datasets[{i}]", task)
        for i, ds in enumerate(config.datasets)
    )
    _check_variants(config.variants, task)
    _check_name(config.name, given="name" in raw)
    if schema.options is not None and getattr(config, task) is None:  # the options' defaults
        config = replace(config, **{task: schema.options()})
    return replace(config, datasets=datasets, metrics=_metrics(config))


def _check_task_keys(raw: dict[str, Any], task: str) -> None:
    """A task's options key (named after it) belongs to that task only."""
    for other, schema in TASK_SCHEMAS.items():
        if schema.options is not None and other != task and raw.get(other) is not None:
            raise fail(other, f"applies only to task {other!r} (this config's task is {task!r})")
    if task == "similarity" and "metrics" in raw:  # its measures are its metrics
        raise fail("metrics", "task 'similarity' reports similarity.measures; drop 'metrics'")


def _dataset(ds: DatasetConfig, raw: dict[str, Any], key: str, task: str) -> DatasetConfig:
    """``ds`` checked against the registries and the task; the task's default splits set."""
    schema = TASK_SCHEMAS[task]
    modality, splits = _modality_and_splits(ds.name, f"{key}.name", task)
    if ds.name == "synthetic":
        ds = replace(ds, synthetic=_synthetic(ds.synthetic, f"{key}.synthetic"))
    elif ds.synthetic is not None:
        raise fail(f"{key}.synthetic", "applies only to the 'synthetic' dataset")
    else:
        _check_options(ds, f"{key}.options")
    _check_encoders(ds, modality, schema, key, task)
    if schema.default_splits is not None:
        train, test = schema.default_splits
        ds = replace(
            ds,
            train_split=ds.train_split if "train_split" in raw else train,
            test_split=ds.test_split if "test_split" in raw else test,
        )
    for name, split in (("train_split", ds.train_split), ("test_split", ds.test_split)):
        if splits and split not in splits:
            raise fail(f"{key}.{name}", f"must be one of {list(splits)}, got {split!r}")
    return ds


def _modality_and_splits(name: str, key: str, task: str) -> tuple[str, tuple[str, ...]]:
    """The modality and splits of dataset ``name``, which must be one task ``task`` takes."""
    specs = {s.name: s for s in data.available()}
    wanted = TASK_SCHEMAS[task].modalities
    splits: tuple[str, ...] = ()
    if name == "synthetic":
        modality = "synthetic"
    elif name in specs:
        modality, splits = specs[name].modality, specs[name].splits
    else:
        raise fail(key, f"{name!r} is not a dataset; choose from {[*specs, 'synthetic']}")
    if modality not in wanted:
        choices = [n for n, s in specs.items() if s.modality in wanted]
        choices += ["synthetic"] if "synthetic" in wanted else []
        what = (
            "the synthetic dataset's spaces are generated latents"
            if name == "synthetic"
            else f"{name!r} is a {modality} dataset"
        )
        raise fail(key, f"{what}; task {task!r} needs one of {choices}")
    return modality, splits


def _synthetic(raw: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """The options of :func:`latentbridge.synthetic.make_spaces`, checked, stored as given."""
    raw = mapping(raw, key)
    check_keys(
        raw, ("num_samples", "dim", "num_classes", "transformations", "separation", "noise"), key
    )
    value = {
        **{name: p.default for name, p in inspect.signature(make_spaces).parameters.items()},
        **raw,
    }
    num_classes = check(value["num_classes"], int, f"{key}.num_classes", Rule(minimum=2))
    check(value["dim"], int, f"{key}.dim", Rule(minimum=2))
    # at least 4 samples per class, so that the 75/25 split leaves each class in both splits
    check(value["num_samples"], int, f"{key}.num_samples", Rule(minimum=4 * num_classes))
    for name in ("separation", "noise"):
        if name in raw:
            check(raw[name], float, f"{key}.{name}", Rule(minimum=0.0))
    if "transformations" in raw:
        kinds = Rule(choices=TRANSFORMATIONS, nonempty="transformation")
        check(raw["transformations"], tuple[str, ...], f"{key}.transformations", kinds)
    return raw


def _check_options(ds: DatasetConfig, key: str) -> None:
    """Every option is a keyword of the dataset's loader (its values are checked on load)."""
    for option, value in ds.options.items():
        try:
            data.check_options(ds.name, {option: value})
        except ValueError as error:
            raise fail(f"{key}.{option}", str(error)) from None


def _check_encoders(
    ds: DatasetConfig, modality: str, schema: TaskSchema, key: str, task: str
) -> None:
    """The dataset's encoders (or trained encoders) suit the task, the dataset and its modality."""
    named = bool(ds.encoders) or ds.trained_encoders is not None
    if schema.trains_models and named:
        raise fail(
            f"{key}.encoders",
            f"task {task!r} trains its own models; set them in the {task!r} key instead",
        )
    if ds.name == "synthetic" and named:
        raise fail(f"{key}.encoders", "the synthetic dataset's spaces are generated, not encoded")
    if not schema.trains_models and ds.name != "synthetic" and not named:
        raise fail(f"{key}.encoders", "name at least one encoder (or trained_encoders)")
    if ds.trained_encoders is not None and modality != "vision":
        raise fail(
            f"{key}.trained_encoders",
            f"trains vision encoders, but {ds.name!r} is a {modality} set",
        )
    for name in ds.encoders:  # a registered encoder, or <family>:<id>, of the dataset's modality
        try:
            info = encoders.info(name)
        except encoders.UnknownEncoderError as error:
            raise fail(f"{key}.encoders", str(error)) from None
        if info.modality != modality:
            raise fail(
                f"{key}.encoders",
                f"encoder {name!r} encodes {info.modality}, but dataset {ds.name!r} is {modality}",
            )


def _check_variants(variants: VariantConfig, task: str) -> None:
    if variants.aggregations and not variants.product_projections:
        raise fail("variants.product_projections", "is empty but aggregations are requested")
    if variants.translation and not TASK_SCHEMAS[task].translation:
        tasks = " or ".join(repr(n) for n, s in TASK_SCHEMAS.items() if s.translation)
        raise fail("variants.translation", f"applies only to task {tasks}")
    if task == "similarity":  # its product representation takes projection names only
        for i, entry in enumerate(variants.product_projections):
            if parse_relative(entry).normalization is not None:
                raise fail(
                    f"variants.product_projections[{i}]",
                    f"task 'similarity' takes no normalisation per subspace, got {entry!r}; "
                    "it applies variants.normalization to every one",
                )
    if variants.selection:
        if not TASK_SCHEMAS[task].selection:
            tasks = ", ".join(repr(n) for n, s in TASK_SCHEMAS.items() if s.selection)
            raise fail("variants.selection", f"applies only to the tasks {tasks}")
        found = len(candidates(from_config(variants)))
        if found < 2:
            raise fail(
                "variants.selection",
                "needs at least 2 candidates (single projections and product aggregations) "
                f"to select among, got {found}",
            )


def _metrics(config: RunConfig) -> tuple[str, ...]:
    """The metrics the config reports: some of its task's (the similarity study's measures)."""
    if config.similarity is not None:  # the measures are the metrics
        return config.similarity.measures
    allowed = list(TASK_SCHEMAS[config.task].metrics)
    for metric in config.metrics:
        if metric not in allowed:
            raise fail("metrics", f"{metric!r} is not one of {allowed}")
    return config.metrics


def _check_name(name: str, given: bool) -> None:
    """The config's ``name`` key, else its file's stem, is a slug."""
    if _SLUG.fullmatch(name):
        return
    if given:
        raise fail("name", f"must be a name of {_SLUG_RULE}; got {name!r}")
    raise ConfigError(
        f"the config has no 'name' key and the name from its file, {name!r}, is not "
        f"made of {_SLUG_RULE}; add a 'name' key"
    )
