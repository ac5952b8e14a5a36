"""Run configs: the schema (dataclasses and their rules), validation messages, built-in configs.

Every check names the key it refuses (``config key 'head.lr': ...``). The tests generated from
the schema (:func:`_rule_cases`) read each field's rule, so a rule cannot claim a bound or a
registry it does not enforce; the pinned ``config.json`` dicts keep run folders resumable.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import yaml

from latentbridge.experiments import config as schema
from latentbridge.experiments.config import (
    TASK_METRICS,
    TASK_SCHEMAS,
    TASKS,
    ConfigError,
    RunConfig,
    builtin_configs,
    check_runnable,
    load_config,
    parse_config,
    parse_seeds,
)

DATA = Path(__file__).parent / "data"

#: A tiny valid config (synthetic spaces), the base that the tests below change.
TINY = {
    "name": "tiny",
    "datasets": [
        {
            "name": "synthetic",
            "synthetic": {
                "num_samples": 800,
                "dim": 12,
                "num_classes": 4,
                "separation": 1.0,
                "transformations": ["orthogonal", "translation"],
            },
        }
    ],
    "anchors": {"num": 48},
    "variants": {
        "projections": ["euclidean", "l1", "cosine"],
        "product_projections": ["cosine", "euclidean", "l1", "linf"],
        "aggregations": ["mlp_sum"],
    },
    "head": {"hidden": 32, "epochs": 4, "batch_size": 64},
    "seeds": [0],
}


def test_builtin_configs_validate() -> None:
    assert builtin_configs() == [
        "graph",
        "quick",
        "reconstruction",
        "similarity",
        "synthetic",
        "text",
        "vision",
    ]
    tasks = {}
    for name in builtin_configs():
        config = load_config(name)
        assert config.name == name and config.datasets
        check_runnable(config)  # every encoder they name is installed (as CI installs them)
        tasks[name] = config.task
    assert tasks["reconstruction"] == "reconstruction" and tasks["graph"] == "graph"
    assert tasks["similarity"] == "similarity" and tasks["quick"] == "classification"
    quick = load_config("quick")
    assert quick.anchors.num == 256 and quick.seeds == (0, 1, 2)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": 1}, "'colour'"),
        ({"anchors": {"num": 0}}, "'anchors.num'"),
        ({"anchors": {"strategy": "random"}}, "'anchors.strategy'"),
        ({"head": {"lr": -1}}, "'head.lr'"),
        ({"head": {"epochs": "ten"}}, "'head.epochs'"),
        ({"seeds": []}, "'seeds'"),
        ({"variants": {"projections": ["cosinus"]}}, "'variants.projections'"),
        ({"variants": {"aggregations": ["mean"]}}, "'variants.aggregations'"),
        ({"metrics": ["auc"]}, "'metrics'"),
        ({"datasets": [{"name": "cifar1000", "encoders": ["x"]}]}, "'datasets[0].name'"),
        ({"datasets": [{"name": "wordnet"}]}, "'datasets[0].encoders'"),
        (
            {"datasets": [{"name": "wordnet", "encoders": ["minilm-l6"], "colour": 1}]},
            "'datasets[0].colour'",
        ),
    ],
)
def test_bad_configs_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config({**TINY, **change})


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"task": "segmentation"}, "'task'"),
        ({"task": "graph", "datasets": [{"name": "digits"}]}, "'datasets[0].name'"),
        ({"task": "graph", "datasets": [{"name": "sbm", "encoders": ["x"]}]}, "encoders"),
        ({"task": "reconstruction", "datasets": [{"name": "wordnet"}]}, "'datasets[0].name'"),
        ({"task": "classification", "graph": {"epochs": 3}}, "'graph'"),
        ({"task": "graph", "datasets": [{"name": "sbm"}], "graph": {"dropout": 1}}, "dropout"),
        ({"task": "graph", "datasets": [{"name": "sbm"}], "metrics": ["mse"]}, "'metrics'"),
        (
            {
                "task": "graph",
                "datasets": [{"name": "sbm"}],
                "variants": {"translation": ["affine"]},
            },
            "'variants.translation'",
        ),
        (
            {
                "task": "reconstruction",
                "datasets": [{"name": "digits"}],
                "reconstruction": {"x": 1},
            },
            "'reconstruction.x'",
        ),
        (
            {
                "task": "similarity",
                "datasets": [{"name": "wordnet", "encoders": ["minilm-l6"]}],
                "similarity": {"measures": ["accuracy"]},
            },
            "'similarity.measures'",
        ),
        (
            {
                "task": "similarity",
                "datasets": [{"name": "wordnet", "encoders": ["minilm-l6"]}],
                "metrics": ["linear_cka"],
            },
            "'metrics'",
        ),
    ],
)
def test_task_configs_name_the_key(raw: dict, key: str) -> None:
    base = {"name": "t", "datasets": TINY["datasets"]}
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config({**base, **raw})


def test_task_defaults() -> None:
    graph = parse_config({"task": "graph", "datasets": [{"name": "sbm"}]})
    assert graph.graph is not None and graph.reconstruction is None
    assert (graph.datasets[0].train_split, graph.datasets[0].test_split) == ("full", "full")
    assert graph.metrics == ("accuracy", "macro_f1")
    rec = parse_config({"task": "reconstruction", "datasets": [{"name": "digits"}]})
    assert rec.reconstruction is not None and rec.metrics == ("mse", "psnr")
    sim = parse_config(
        {"task": "similarity", "datasets": [{"name": "wordnet", "encoders": ["minilm-l6"]}]}
    )
    assert sim.similarity is not None and sim.metrics == sim.similarity.measures


@pytest.mark.parametrize("name", builtin_configs())
def test_builtin_configs_load_their_datasets(name: str) -> None:
    """A built-in config's dataset options must be valid for the data, not only well-formed."""
    from latentbridge import data

    for ds in load_config(name).datasets:
        if ds.name == "synthetic":
            continue
        for split in (ds.train_split, ds.test_split):
            loaded = data.load(ds.name, split, **ds.options)
            size = loaded.num_nodes if isinstance(loaded, data.GraphDataset) else len(loaded)
            assert size > 0


# -- validation: numbers, names, datasets and encoders ------------------------------------

SYNTHETIC = TINY["datasets"][0]


def _with_synthetic(**changes: object) -> dict:
    return {**TINY, "datasets": [{**SYNTHETIC, "synthetic": {**SYNTHETIC["synthetic"], **changes}}]}


GRAPH = {"name": "g", "task": "graph", "datasets": [{"name": "sbm"}]}
RECONSTRUCTION = {"name": "r", "task": "reconstruction", "datasets": [{"name": "digits"}]}


NUMBERS = [
    (lambda v: {**TINY, "head": {"lr": v}}, "head.lr"),
    (lambda v: {**TINY, "head": {"weight_decay": v}}, "head.weight_decay"),
    (lambda v: {**GRAPH, "graph": {"lr": v}}, "graph.lr"),
    (lambda v: {**GRAPH, "graph": {"dropout": v}}, "graph.dropout"),
    (lambda v: {**GRAPH, "graph": {"weight_decay": v}}, "graph.weight_decay"),
    (lambda v: {**RECONSTRUCTION, "reconstruction": {"lr": v}}, "reconstruction.lr"),
    (lambda v: {**RECONSTRUCTION, "reconstruction": {"beta": v}}, "reconstruction.beta"),
    (lambda v: _with_synthetic(separation=v), "datasets[0].synthetic.separation"),
    (lambda v: _with_synthetic(noise=v), "datasets[0].synthetic.noise"),
]
OPTIONS = [  # free-form option values: a float must be finite (a big integer is valid JSON)
    (
        lambda v: {**GRAPH, "datasets": [{"name": "sbm", "options": {"p_in": v}}]},
        "datasets[0].options.p_in",
    ),
    (
        lambda v: {**GRAPH, "datasets": [{"name": "sbm", "options": {"p_in": [0.1, v]}}]},
        "datasets[0].options.p_in[1]",
    ),
]
NON_FINITE = [float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize(
    ("build", "key", "bad"),
    [(b, k, v) for b, k in NUMBERS for v in [*NON_FINITE, 10**400]]
    + [(b, k, v) for b, k in OPTIONS for v in NON_FINITE],
)
def test_non_finite_numbers_are_refused_everywhere(build, key: str, bad: float) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        parse_config(build(bad))
    parse_config(build(0.25))  # the control: a finite value in range is accepted


def test_yaml_infinity_and_nan_name_the_key(tmp_path: Path) -> None:
    for text in (".inf", ".nan", "-.inf"):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(TINY).replace("hidden: 32", f"hidden: 32\n  lr: {text}"))
        with pytest.raises(ConfigError, match=r"'head\.lr': must be a finite number"):
            load_config(path)


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "", "has space", "x\\y", 3, None])
def test_config_names_are_safe_slugs(name: object) -> None:
    with pytest.raises(ConfigError, match="'name'"):
        parse_config({**TINY, "name": name})


def test_a_file_name_that_is_not_a_slug_needs_a_name_key(tmp_path: Path) -> None:
    path = tmp_path / "my config.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k != "name"}))
    with pytest.raises(ConfigError, match="add a 'name' key"):
        load_config(path)
    path.write_text(yaml.safe_dump({**TINY, "name": "my-config_2.1"}))
    assert load_config(path).name == "my-config_2.1"
    path.rename(tmp_path / "stem.yaml")
    path = tmp_path / "stem.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k != "name"}))
    assert load_config(path).name == "stem"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"datasets": [{"name": "drug-reviews", "encoders": ["nosuch"]}]}, "datasets[0].encoders"),
        (
            {"datasets": [{"name": "drug-reviews", "encoders": ["open-nsfw-resnet50"]}]},
            "datasets[0].encoders",
        ),
        (
            {"datasets": [{"name": "digits", "encoders": ["glove-50d"]}]},
            "datasets[0].encoders",
        ),
        (
            {
                "datasets": [
                    {"name": "drug-reviews", "encoders": ["glove-50d"], "options": {"x": 1}}
                ]
            },
            "datasets[0].options.x",
        ),
        (
            {
                "datasets": [
                    {"name": "wordnet", "encoders": ["glove-50d"], "options": {"num_class": 5}}
                ]
            },
            "datasets[0].options.num_class",
        ),
        (
            {
                "datasets": [
                    {"name": "drug-reviews", "encoders": ["glove-50d"], "test_split": "dev"}
                ]
            },
            "datasets[0].test_split",
        ),
        (
            {
                "datasets": [
                    {"name": "wordnet", "trained_encoders": {"architectures": ["mlp"]}},
                ]
            },
            "datasets[0].trained_encoders",
        ),
        ({"datasets": [{**SYNTHETIC, "encoders": ["glove-50d"]}]}, "datasets[0].encoders"),
        (_with_synthetic(transformations=[]), "datasets[0].synthetic.transformations"),
        (_with_synthetic(num_samples=10), "datasets[0].synthetic.num_samples"),
        (_with_synthetic(dim=1), "datasets[0].synthetic.dim"),
        ({"seeds": [0, 0]}, "seeds"),
        ({"seeds": [2**32]}, "seeds"),
        ({"seeds": [True]}, "seeds"),
        ({"anchors": {"seed": -1}}, "anchors.seed"),
        ({"anchors": {"strategy": ["uniform"]}}, "anchors.strategy"),
        ({"variants": {"normalization": ["none"]}}, "variants.normalization"),
        ({"head": {1: 2}}, "head"),
        (
            {
                "datasets": [
                    {"name": "drug-reviews", "encoders": ["glove-50d"], "options": {"d": {1}}}
                ]
            },
            "datasets[0].options.d",
        ),
    ],
)
def test_names_and_options_are_checked_against_the_registries(change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        parse_config({**TINY, **change})


def test_registered_and_family_encoders_are_accepted() -> None:
    config = parse_config(
        {**TINY, "datasets": [{"name": "drug-reviews", "encoders": ["glove-50d", "hf:./model"]}]}
    )
    assert config.datasets[0].encoders == ("glove-50d", "hf:./model")


# -- config.json: what run folders store and compare on resumption ---------------------------

#: ``RunConfig.to_dict()`` of every built-in and regression config, as recorded before the
#: schema became dataclass-driven: a run folder's config.json must still match it.
PINNED = json.loads((DATA / "config_json.json").read_text(encoding="utf-8"))


def test_every_builtin_config_is_pinned() -> None:
    assert set(builtin_configs()) <= set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_config_json_is_unchanged(name: str) -> None:
    source = DATA / f"{name}.yaml" if name.startswith("regression/") else name
    # json.dumps keeps key order and the int / float distinction: config.json byte for byte
    assert json.dumps(load_config(source).to_dict()) == json.dumps(PINNED[name])


# -- the task table ---------------------------------------------------------------------------


def test_the_task_table_is_the_one_task_list() -> None:
    hints = get_type_hints(RunConfig)
    assert TASKS == tuple(TASK_SCHEMAS) and set(TASK_METRICS) == set(TASKS)
    assert RunConfig.__dataclass_fields__["task"].metadata["rule"].names() == list(TASKS)
    optioned = {name for name, task in TASK_SCHEMAS.items() if task.options is not None}
    task_keys = {f.name for f in fields(RunConfig) if f.name in TASKS}
    assert task_keys == optioned  # each task with options has the key named after it
    for name in optioned:
        assert hints[name] == TASK_SCHEMAS[name].options | None
    # a RunConfig built in Python is a classification run: its default metrics are that task's
    assert RunConfig.task == "classification"
    assert RunConfig.metrics == TASK_METRICS["classification"]


@pytest.mark.parametrize("task", TASKS)
def test_each_task_parses_with_its_defaults(task: str) -> None:
    modality = TASK_SCHEMAS[task].modalities[0]
    dataset = {
        "vision": {"name": "digits", "encoders": ["open-nsfw-resnet50"]},
        "text": {"name": "wordnet", "encoders": ["minilm-l6"]},
        "graph": {"name": "sbm"},
    }[modality]
    if TASK_SCHEMAS[task].trains_models:
        dataset = {"name": dataset["name"]}
    config = parse_config({"task": task, "datasets": [dataset]})
    options = TASK_SCHEMAS[task].options
    if options is None:  # no task's options
        assert all(getattr(config, t) is None for t in TASKS if TASK_SCHEMAS[t].options)
    else:
        assert getattr(config, task) == options()  # the options' defaults, stated once
    assert set(config.metrics) <= set(TASK_METRICS[task]) and config.metrics
    check_runnable(config)  # a parsed config passes the check a Python-built one gets


def test_defaults_are_the_dataclasses() -> None:
    """A config that sets nothing optional holds exactly the dataclasses' defaults."""
    config = parse_config(
        {"name": "d", "datasets": [{"name": "wordnet", "encoders": ["glove-50d"]}]}
    )
    expected = RunConfig(name="d", datasets=config.datasets)
    assert config == expected
    assert config.datasets[0] == schema.DatasetConfig(name="wordnet", encoders=("glove-50d",))


# -- rules generated from the schema ----------------------------------------------------------

GRAPH_BASE = {"name": "g", "task": "graph", "datasets": [{"name": "sbm"}]}
VISION_BASE = {"name": "v", "datasets": [{"name": "digits", "trained_encoders": {}}]}
#: Where each dataclass with rules sits in a valid config: (the config, the key path to it).
PLACES: dict[type, tuple[dict[str, Any], tuple[Any, ...]]] = {
    schema.RunConfig: (TINY, ()),
    schema.DatasetConfig: (TINY, ("datasets", 0)),
    schema.AnchorConfig: (TINY, ("anchors",)),
    schema.VariantConfig: (TINY, ("variants",)),
    schema.HeadConfig: (TINY, ("head",)),
    schema.TrainedEncodersConfig: (VISION_BASE, ("datasets", 0, "trained_encoders")),
    schema.ReconstructionConfig: (
        {"name": "r", "task": "reconstruction", "datasets": [{"name": "digits"}]},
        ("reconstruction",),
    ),
    schema.GraphConfig: (GRAPH_BASE, ("graph",)),
    schema.SimilarityConfig: (
        {"task": "similarity", "datasets": [{"name": "wordnet", "encoders": ["glove-50d"]}]},
        ("similarity",),
    ),
}


def _dataclasses(cls: type = RunConfig) -> set[type]:
    found = {cls}
    for hint in get_type_hints(cls).values():
        for inner in (hint, *getattr(hint, "__args__", ())):
            if is_dataclass(inner) and inner not in found:
                found |= _dataclasses(inner)  # type: ignore[arg-type]
    return found


def test_every_dataclass_with_rules_is_placed() -> None:
    ruled = {c for c in _dataclasses() if any("rule" in f.metadata for f in fields(c))}
    assert ruled == set(PLACES)  # a new section gets a place here, or its rules go untested


def _set(config: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(config))
    target = copy
    for part in path[:-1]:
        target = target[part] if isinstance(part, int) else target.setdefault(part, {})
    target[path[-1]] = value
    return copy


def _rule_cases() -> list[tuple[str, Any, Any, bool]]:
    """(key, raw config, value, valid) for each bound, choice and non-empty rule."""
    cases = []
    for cls, (base, prefix) in PLACES.items():
        hints = get_type_hints(cls)
        for f in fields(cls):
            rule = f.metadata.get("rule")
            if rule is None or rule.parse is not None:
                continue  # parse rules (seeds) have tests of their own
            scalar = hints[f.name] if hints[f.name] in (int, float, str) else None
            values: list[tuple[Any, bool]] = []
            if rule.minimum is not None:
                step = 1 if scalar is int else 0.5
                values += [(rule.minimum, True), (rule.minimum - step, False)]
            if rule.maximum is not None:
                values += [(rule.maximum, True), (rule.maximum + 1, False)]
            if rule.above is not None:
                values += [(rule.above + 0.125, True), (rule.above, False)]
            if rule.below is not None:
                values += [(rule.below - 0.25, True), (rule.below, False)]
            if rule.choices is not None:
                names = rule.names()
                assert names, f"{cls.__name__}.{f.name} has no choices"
                values += [(n if scalar is str else [n], True) for n in names]
                values += [("no-such-name" if scalar is str else ["no-such-name"], False)]
            if rule.nonempty:
                values += [([], False)]
            if scalar is int:
                values += [(1.5, False), (True, False), ("1", False)]
            if scalar is float:
                values += [(True, False), ("0.1", False)]
            if cls is RunConfig and f.name == "task":
                # another task needs another dataset: test_each_task_parses_with_its_defaults
                values = [(v, valid) for v, valid in values if not valid]
            for value, valid in values:
                path = (*prefix, f.name)
                key = ".".join(str(p) for p in path).replace(".0.", "[0].")
                cases.append((key, _set(base, path, value), value, valid))
    return cases


@pytest.mark.parametrize(
    ("key", "raw", "value", "valid"), _rule_cases(), ids=lambda v: repr(v)[:40]
)
def test_each_rule_of_the_schema_is_enforced(key: str, raw: dict, value: Any, valid: bool) -> None:
    if valid:  # the control: a value the rule allows is accepted
        parse_config(raw)
    else:
        with pytest.raises(ConfigError, match=re.escape(f"config key {key!r}: ")):
            parse_config(raw)


def test_rule_messages_say_what_is_allowed() -> None:
    cases = [
        ({**TINY, "head": {"epochs": 0}}, "'head.epochs': must be an integer >= 1, got 0"),
        ({**TINY, "head": {"lr": 0}}, "'head.lr': must be > 0.0, got 0"),
        ({**TINY, "head": {"weight_decay": -1}}, "'head.weight_decay': must be >= 0.0, got -1"),
        ({**TINY, "anchors": {"seed": 2**32}}, "must be an integer in [0, 4294967295]"),
        ({**GRAPH_BASE, "graph": {"dropout": 1}}, "'graph.dropout': must be < 1, got 1"),
        ({**GRAPH_BASE, "graph": {"architectures": []}}, "must name at least one architecture"),
        ({**TINY, "head": {"lr": "0.1"}}, "'head.lr': must be a number, got '0.1'"),
        ({**TINY, "variants": {"absolute": 1}}, "'variants.absolute': must be true or false"),
        ({**TINY, "variants": {"projections": "cosine"}}, "must be a list of names, got 'cosine'"),
        ({**TINY, "variants": {"projections": ["l1", "l1"]}}, "names must not repeat"),
        ({**TINY, "anchors": {"strategy": "random"}}, "'random' is not one of ['uniform'"),
        ({**TINY, "head": {"colour": 1}}, "'head.colour': unknown key; allowed keys are ['batch_"),
        ({**TINY, "head": 3}, "'head': must be a mapping, got int"),
        ({**TINY, "description": 3}, "'description': must be a string, got 3"),
        ({**TINY, "datasets": []}, "'datasets': must name at least one dataset"),
        ({**TINY, "datasets": [{"encoders": ["x"]}]}, "'datasets[0].name': is required"),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(raw)


def test_an_empty_section_means_its_defaults() -> None:
    config = parse_config({**TINY, "head": None, "anchors": {}})
    assert config.head == schema.HeadConfig() and config.anchors == schema.AnchorConfig()
    graph = parse_config({**GRAPH_BASE, "graph": None})
    assert graph.graph == schema.GraphConfig()


def test_seeds() -> None:
    import numpy as np

    assert parse_seeds(np.arange(3)) == (0, 1, 2) and parse_seeds(range(2)) == (0, 1)
    assert all(type(s) is int for s in parse_seeds(np.arange(3)))
    for bad, message in (
        ([], "must be a non-empty list of integers"),
        ("01", "must be a non-empty list of integers"),
        ([1, 1], "seeds must not repeat, got [1, 1]"),
        ([-1], "must be an integer in [0, 4294967295], got -1"),
        ([1.0], "must be an integer in [0, 4294967295], got 1.0"),
    ):
        with pytest.raises(ConfigError, match=re.escape(f"'seeds': {message}")):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match=re.escape("'datasets[0].trained_encoders.seeds'")):
        parse_config(_set(VISION_BASE, ("datasets", 0, "trained_encoders", "seeds"), [0, 0]))


# -- cross-field rules ------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["graph", "reconstruction", "similarity"])
def test_the_synthetic_dataset_belongs_to_classification(task: str) -> None:
    raw = {**TINY, "task": task, "variants": {}}
    with pytest.raises(ConfigError, match=r"'datasets\[0\]\.name': the synthetic dataset's spaces"):
        parse_config(raw)
    assert parse_config({**raw, "task": "classification"}).datasets[0].name == "synthetic"


def test_the_graph_task_defaults_to_the_full_split() -> None:
    config = parse_config(GRAPH_BASE)
    assert (config.datasets[0].train_split, config.datasets[0].test_split) == ("full", "full")
    with pytest.raises(
        ConfigError, match=r"'datasets\[0\]\.train_split': must be one of \['full'\]"
    ):
        parse_config({**GRAPH_BASE, "datasets": [{"name": "sbm", "train_split": "train"}]})


def test_the_synthetic_options_are_stored_as_given() -> None:
    raw = _set(TINY, ("datasets", 0, "synthetic"), {"dim": 4})
    assert parse_config(raw).datasets[0].synthetic == {"dim": 4}  # not filled with defaults
    for key, value in (("seed", 1), ("num_samples", 8)):
        with pytest.raises(ConfigError, match=re.escape(f"'datasets[0].synthetic.{key}'")):
            parse_config(_set(TINY, ("datasets", 0, "synthetic", key), value))
    with pytest.raises(ConfigError, match=r"applies only to the 'synthetic' dataset"):
        parse_config(
            {
                **TINY,
                "datasets": [
                    {"name": "digits", "encoders": ["open-nsfw-resnet50"], "synthetic": {}}
                ],
            }
        )


def test_a_python_config_gets_the_yaml_checks() -> None:
    from dataclasses import replace

    config = parse_config(TINY)
    check_runnable(config)
    for bad, key in (
        (replace(config, head=schema.HeadConfig(epochs=0)), "'head.epochs'"),
        (replace(config, task="graph"), "'datasets[0].name'"),
        (replace(config, metrics=("mse",)), "'metrics'"),
        (replace(config, head=schema.HeadConfig(lr=float("inf"))), "'head.lr'"),
    ):
        with pytest.raises(ConfigError, match=re.escape(key)):
            check_runnable(bad)


def test_fields_without_a_default_are_required() -> None:
    required = [
        f.name for f in fields(RunConfig) if f.default is MISSING and f.default_factory is MISSING
    ]
    assert required == ["name", "datasets"]
    with pytest.raises(ConfigError, match="'datasets': is required"):
        parse_config({"name": "x"})


# -- variants: per-projection normalisation, selection ----------------------------------------


def _variants(**change: Any) -> dict[str, Any]:
    return {**TINY, "variants": {**TINY["variants"], **change}}


def test_a_projection_entry_may_name_its_own_normalization() -> None:
    entries = ["cosine", {"projection": "cosine", "normalization": "whiten"}, "euclidean+whiten"]
    config = parse_config(_variants(projections=[*entries, "l1+none", {"projection": "linf"}]))
    # the parsed config holds the string form, and so does config.json
    assert config.variants.projections == (
        "cosine",
        "cosine+whiten",
        "euclidean+whiten",
        "l1+none",
        "linf",
    )
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["variants"]["projections"][1] == "cosine+whiten"
    assert parse_config(stored) == config  # config.json reads back to the same config
    check_runnable(config)
    mapped = {"projection": "cosine", "normalization": "whiten"}
    assert parse_config(_variants(projections=[mapped])) == parse_config(
        _variants(projections=["cosine+whiten"])
    )
    explicit = {"projection": "l1", "normalization": "none"}
    assert parse_config(_variants(projections=[explicit])).variants.projections == ("l1+none",)
    # a null normalisation is the config's, as for a plain name
    empty = {"projection": "l1", "normalization": None}
    assert parse_config(_variants(projections=[empty])).variants.projections == ("l1",)


def test_product_projections_take_the_same_entries() -> None:
    entries = ["cosine", {"projection": "euclidean", "normalization": "whiten"}, "l1+center"]
    config = parse_config(_variants(product_projections=entries))
    assert config.variants.product_projections == ("cosine", "euclidean+whiten", "l1+center")
    check_runnable(config)


@pytest.mark.parametrize("field", ["projections", "product_projections"])
@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("cosinus", "", "'cosinus' is not a projection name ["),
        ("absolute", "", "'absolute' is not a projection name ["),
        ("cosinus+whiten", "", "'cosinus+whiten': the projection must be one of ["),
        ("cosine+whitened", "", "'cosine+whitened': the normalization must be one of ['none'"),
        ("cosine+", "", "'cosine+': the normalization must be one of"),
        (3, "", "must hold projection names or mappings of ['projection', 'normalization']"),
        ({"projection": "cosinus"}, "[1].projection", "'cosinus' is not one of ['cosine'"),
        ({"projection": "cosine+whiten"}, "[1].projection", "'cosine+whiten' is not one of"),
        ({"projection": 3}, "[1].projection", "3 is not one of ['cosine'"),
        ({"projection": "l1", "normalization": "zca"}, "[1].normalization", "'zca' is not one"),
        ({"normalization": "whiten"}, "[1].projection", "is required"),
        ({"projection": "l1", "norm": "whiten"}, "[1].norm", "unknown key; allowed keys are"),
    ],
)
def test_bad_projection_entries_name_the_key(
    field: str, entry: Any, key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'variants.{field}{key}': {message}")):
        parse_config(_variants(**{field: ["l1", entry]}))


@pytest.mark.parametrize("field", ["projections", "product_projections"])
def test_projection_entries_must_not_repeat_in_either_form(field: str) -> None:
    twice = ["cosine+whiten", {"projection": "cosine", "normalization": "whiten"}]
    with pytest.raises(
        ConfigError, match=re.escape(f"'variants.{field}': names must not repeat, got 'cosine+")
    ):
        parse_config(_variants(**{field: twice}))
    with pytest.raises(ConfigError, match=re.escape(f"'variants.{field}': must be a list of")):
        parse_config(_variants(**{field: "cosine"}))
    # a plain name and one with its own normalisation are two entries
    parse_config(_variants(**{field: ["cosine", "cosine+none"]}))


def test_the_similarity_study_takes_no_subspace_normalization() -> None:
    raw = {
        "task": "similarity",
        "datasets": [{"name": "wordnet", "encoders": ["glove-50d"]}],
        "variants": {"product_projections": ["cosine", "l1+whiten"]},
    }
    with pytest.raises(ConfigError, match=re.escape("'variants.product_projections[1]': task")):
        parse_config(raw)


def test_selection_is_a_bool_stored_only_when_set() -> None:
    assert schema.VariantConfig().selection is False
    assert parse_config(TINY).variants.selection is False
    assert "selection" not in parse_config(TINY).to_dict()["variants"]  # config.json unchanged
    config = parse_config(_variants(selection=True))
    assert config.variants.selection is True
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["variants"]["selection"] is True and parse_config(stored) == config
    check_runnable(config)
    for bad in (1, "yes", None):
        with pytest.raises(ConfigError, match=re.escape("'variants.selection': must be true or")):
            parse_config(_variants(selection=bad))


@pytest.mark.parametrize(
    ("projections", "aggregations", "found"),
    [([], [], 0), (["cosine"], [], 1), ([], ["sum"], 1)],
)
def test_selection_needs_two_candidates(
    projections: list[str], aggregations: list[str], found: int
) -> None:
    raw = _variants(projections=projections, aggregations=aggregations, selection=True)
    with pytest.raises(
        ConfigError, match=re.escape("'variants.selection': needs at least 2 candidates")
    ) as error:
        parse_config(raw)
    assert str(error.value).endswith(f"got {found}")
    parse_config({**raw, "variants": {**raw["variants"], "selection": False}})  # the control
    # two candidates of either kind suffice; absolute and translations are no candidates
    parse_config(_variants(projections=["cosine"], aggregations=["sum"], selection=True))
    parse_config(
        _variants(projections=["cosine", "cosine+whiten"], aggregations=[], selection=True)
    )


def test_selection_applies_to_the_stitching_tasks_only() -> None:
    raw = {
        "task": "similarity",
        "datasets": [{"name": "wordnet", "encoders": ["glove-50d"]}],
        "variants": {"selection": True},
    }
    with pytest.raises(ConfigError, match=re.escape("'variants.selection': applies only to")):
        parse_config(raw)
    for task, dataset in (("graph", "sbm"), ("reconstruction", "digits")):
        config = parse_config(
            {"task": task, "datasets": [{"name": dataset}], "variants": {"selection": True}}
        )
        assert config.variants.selection
