"""The zero-shot stitching benchmark (classification): ``latentbridge run``.

Protocol, per dataset of the config:

1. Every encoder's latents of the train and test splits come from the embedding cache.
2. K anchors are chosen once (``anchors.num``, capped by the training set) as *indices* into the
   training split, shared by every encoder.
3. Space variants: ``absolute`` latents; each single relative projection; the product of the
   ``product_projections`` with each aggregation (``product:<aggregation>``); optionally a
   latent-translation baseline (``translation:<estimator>``: a Translator fitted on the anchors
   maps B's latents into A's space, where A's absolute head classifies them).
4. For each variant, seed and encoder A, a head (and, for products, the aggregation) is trained
   on A's training latents; it is evaluated with no retraining on the test latents of every
   encoder B, the relative variants using B's latents of the same anchors. A = B is the
   non-stitched reference. Absolute stitching between encoders of different dimensions is not
   applicable and is recorded as an empty value, never a number.

Relative spaces do not depend on learned weights, so they are computed once per encoder and
split, and training runs on them. Results go to ``DIR/results.csv`` (dataset, train_encoder,
test_encoder, variant, seed, metric, value). Each (dataset, variant, seed, train encoder) cell is
written atomically to ``DIR/cells/`` when it finishes; a restarted run skips finished cells, and
``results.csv`` is rebuilt from them after every cell, so an interruption loses at most the cell
in progress.

:func:`run` is also the entry point of the other tasks (``config.task``): ``reconstruction``,
``graph`` and ``similarity`` run through :mod:`.reconstruction`, :mod:`.graphs` and
:mod:`.similarity` into the same cell store (:mod:`.cells`), ``results.csv`` and report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._files import write_bytes_atomic
from .._progress import ProgressBar
from .cells import COLUMNS, CellStore
from .config import DatasetConfig, RunConfig, check_runnable, parse_seeds
from .training import macro_f1, make_head, predict, train_classifier

__all__ = ["COLUMNS", "Spaces", "load_spaces", "run", "variant_names"]


@dataclass(frozen=True)
class Spaces:
    """Latents of every encoder for one dataset, with labels and the shared anchor indices."""

    dataset: str
    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    train_labels: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def variant_names(config: RunConfig) -> list[str]:
    """The variants a config asks for, in report order."""
    v = config.variants
    names = ["absolute"] if v.absolute else []
    names += list(v.projections)
    names += [f"product:{a}" for a in v.aggregations]
    names += [f"translation:{e}" for e in v.translation]
    return names


def select_anchor_indices(config: RunConfig, reference: Any, labels: Any, seed: int) -> np.ndarray:
    """``config.anchors`` indices into a training split of ``len(reference)`` samples."""
    from ..anchors import select

    k = min(config.anchors.num, len(reference))
    return select(
        reference,
        k,
        config.anchors.strategy,
        labels=labels if config.anchors.strategy == "stratified" else None,
        seed=seed,
    )


# -- data -----------------------------------------------------------------------------------


def _synthetic_spaces(ds: DatasetConfig) -> Spaces:
    from ..data import split_indices
    from ..synthetic import make_spaces

    opts = dict(ds.synthetic or {})
    transformations = tuple(opts.pop("transformations", ("orthogonal",)))
    train: dict[str, np.ndarray] = {}
    test: dict[str, np.ndarray] = {}
    labels = None
    train_idx = test_idx = None
    for kind in transformations:
        spaces = make_spaces(transformations=(kind,), seed=0, **opts)
        if labels is None:
            labels = spaces.labels.numpy()
            train_idx, test_idx = split_indices(len(labels), 0.25, seed=0, labels=labels)
            x_a = spaces.x_a.numpy()
            train["identity"], test["identity"] = x_a[train_idx], x_a[test_idx]
        x_b = spaces.x_b.numpy()
        train[kind], test[kind] = x_b[train_idx], x_b[test_idx]
    assert labels is not None and train_idx is not None and test_idx is not None
    return Spaces(
        "synthetic", train, test, labels[train_idx], labels[test_idx], int(labels.max()) + 1
    )


def load_spaces(ds: DatasetConfig, *, cache: Any = None, progress: bool = True) -> Spaces:
    """Every encoder's train and test latents for ``ds`` (from the cache), and the labels."""
    if ds.name == "synthetic":
        return _synthetic_spaces(ds)
    from .. import data
    from ..encoding import encode

    encoders = list(ds.encoders)
    if ds.trained_encoders is not None:
        from .vision_models import train_encoder

        t = ds.trained_encoders
        for arch in t.architectures:
            for seed in t.seeds:
                trained = train_encoder(
                    ds.name,
                    arch,
                    seed=seed,
                    latent_dim=t.latent_dim,
                    epochs=t.epochs,
                    train_subset=t.train_subset,
                )
                trained.register(overwrite=True)
                encoders.append(trained.name)
    train_set = data.load(ds.name, ds.train_split, **ds.options)
    test_set = data.load(ds.name, ds.test_split, **ds.options)
    if not isinstance(train_set, data.Dataset) or not isinstance(test_set, data.Dataset):
        raise ValueError(
            f"dataset {ds.name!r} is a graph; the classification benchmark needs "
            "a vision or text dataset"
        )
    train: dict[str, np.ndarray] = {}
    test: dict[str, np.ndarray] = {}
    for name in encoders:
        for split, store in ((ds.train_split, train), (ds.test_split, test)):
            store[name] = encode(
                ds.name, name, split, dataset_options=ds.options, cache=cache, progress=progress
            )
    return Spaces(ds.name, train, test, train_set.labels, test_set.labels, len(train_set.classes))


# -- one cell -------------------------------------------------------------------------------


class _Features:
    """Per-encoder inputs of each variant, computed once and reused by every cell."""

    def __init__(self, spaces: Spaces, anchor_idx: np.ndarray, config: RunConfig) -> None:
        self.spaces = spaces
        self.idx = torch.as_tensor(anchor_idx, dtype=torch.long)
        self.config = config
        self._relative: dict[tuple[str, str, str], Tensor] = {}

    def absolute(self, encoder: str, split: str) -> Tensor:
        store = self.spaces.train if split == "train" else self.spaces.test
        return torch.as_tensor(store[encoder], dtype=torch.float32)

    def anchors(self, encoder: str) -> Tensor:
        return self.absolute(encoder, "train")[self.idx]

    def relative(self, encoder: str, split: str, projection: str) -> Tensor:
        key = (encoder, split, projection)
        if key not in self._relative:
            from ..projections import relative_projection

            self._relative[key] = relative_projection(
                self.absolute(encoder, split),
                self.anchors(encoder),
                projection,
                self.config.variants.normalization,
            ).to(torch.float32)
        return self._relative[key]

    def inputs(self, variant: str, encoder: str, split: str) -> Tensor:
        if variant == "absolute" or variant.startswith("translation:"):
            return self.absolute(encoder, split)
        if variant.startswith("product:"):
            parts = self.config.variants.product_projections
            return torch.stack([self.relative(encoder, split, p) for p in parts], dim=1)
        return self.relative(encoder, split, variant)


def _build_model(variant: str, x: Tensor, num_classes: int, config: RunConfig) -> nn.Module:
    hidden = config.head.hidden
    if variant.startswith("product:"):
        from ..aggregations import get as get_aggregation

        aggregation = get_aggregation(variant.split(":", 1)[1])(x.shape[1], x.shape[2])
        return nn.Sequential(aggregation, make_head(aggregation.out_features, num_classes, hidden))
    return make_head(x.shape[1], num_classes, hidden)


def _cell_rows(
    features: _Features, variant: str, seed: int, train_encoder: str, config: RunConfig
) -> list[list[object]]:
    spaces = features.spaces
    x = features.inputs(variant, train_encoder, "train")
    y = torch.as_tensor(spaces.train_labels, dtype=torch.long)
    # Initialisation draws from the global RNG: fork it so the caller's state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(variant, x, spaces.num_classes, config)
        train_classifier(
            model,
            x,
            y,
            epochs=config.head.epochs,
            lr=config.head.lr,
            batch_size=config.head.batch_size,
            weight_decay=config.head.weight_decay,
            generator=torch.Generator().manual_seed(seed),
        )
    target = np.asarray(spaces.test_labels)
    rows: list[list[object]] = []
    for test_encoder in spaces.train:
        values: dict[str, object] = {m: "" for m in config.metrics}
        x_test: Tensor | None = features.inputs(variant, test_encoder, "test")
        if variant.startswith("translation:") and test_encoder != train_encoder:
            from ..alignment import Translator

            try:
                translator = Translator(estimator=variant.split(":", 1)[1]).fit(
                    features.anchors(test_encoder), features.anchors(train_encoder)
                )
            except ValueError:
                x_test = None  # e.g. fewer anchors than the map has parameters: not applicable
            else:
                assert x_test is not None
                x_test = translator.transform(x_test).to(torch.float32)
        elif variant == "absolute" or variant.startswith("translation:"):
            if x_test is not None and x_test.shape[1] != x.shape[1]:
                x_test = None  # different dimensions: absolute stitching is not applicable
        if x_test is not None:
            predicted = predict(model, x_test).numpy()
            if "accuracy" in values:
                values["accuracy"] = f"{float(np.mean(predicted == target)):.6f}"
            if "macro_f1" in values:
                values["macro_f1"] = f"{macro_f1(predicted, target, spaces.num_classes):.6f}"
        for metric in config.metrics:
            rows.append(
                [spaces.dataset, train_encoder, test_encoder, variant, seed, metric, values[metric]]
            )
    return rows


# -- the run --------------------------------------------------------------------------------


def _run_classification(
    ds: DatasetConfig,
    config: RunConfig,
    store: CellStore,
    *,
    cache: Any,
    progress: bool,
    log: Callable[[str], None],
) -> None:
    log(f"{ds.name}: loading latents")
    spaces = load_spaces(ds, cache=cache, progress=progress)
    first = next(iter(spaces.train.values()))
    anchor_idx = select_anchor_indices(config, first, spaces.train_labels, config.anchors.seed)
    features = _Features(spaces, anchor_idx, config)
    cells = [(v, s, e) for v in variant_names(config) for s in config.seeds for e in spaces.train]
    bar = ProgressBar(f"{ds.name}: cells") if progress else None
    for i, (variant, seed, encoder) in enumerate(cells):
        store.compute(
            store.path(ds.name, variant, seed, encoder),
            partial(_cell_rows, features, variant, seed, encoder, config),
        )
        if bar is not None:
            bar(i + 1, len(cells))


def _same_config(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a run folder's config.json describes ``current``.

    Keys a newer version added (absent from ``stored``) match when ``current`` holds their
    default, so folders written before a field existed still resume.
    """
    defaults = RunConfig(name="", datasets=()).to_dict()
    for key, value in current.items():
        if key in stored:
            if stored[key] != value:
                return False
        elif value != defaults.get(key, object()):
            return False
    return set(stored) <= set(current)


def _finished_work(out: Path) -> list[Path]:
    """Finished cells and stored model weights in ``out``: a run's results, worth keeping."""
    found = sorted((out / "cells").glob("*.csv"))
    return found or sorted((out / "models").glob("**/*.pt"))


def _claim_folder(out: Path, current: dict[str, Any]) -> None:
    """Make ``out`` the folder of the config ``current``, or refuse another config's results.

    The same config resumes. A folder without finished work (say, left by a run that failed
    before its first cell) takes the new config; one holding another config's cells or models,
    or finished work and no readable ``config.json``, is refused rather than mixed in.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file, not a folder")
    config_file = out / "config.json"
    if config_file.is_file():
        try:
            stored = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError:
            stored = None  # unreadable: it describes no config
        if isinstance(stored, dict) and _same_config(stored, current):
            return
    finished = _finished_work(out) if out.is_dir() else []
    if finished:
        if config_file.is_file():
            where = f"see {config_file}"
        else:
            where = f"e.g. {finished[0]}, and no {config_file.name} to say which"
        raise ValueError(
            f"{out} holds the results of a different config ({where}); resume with the same "
            "config and seeds, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(current, indent=2, sort_keys=True)
    write_bytes_atomic(config_file, text.encode("utf-8"))


def run(
    config: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    seeds: Sequence[int] | None = None,
    cache: Any = None,
    progress: bool = True,
    report: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) ``config`` into ``out_dir``; returns the path of ``results.csv``.

    ``seeds`` replaces ``config.seeds``. Everything that can be checked without loading data
    is checked before ``out_dir`` is touched (:func:`~.config.check_runnable`): a bad config
    raises ``ConfigError`` (a ``ValueError``) and writes nothing. ``out_dir`` resumes the run
    of the same config; it takes a new config while it holds no finished cells or models, and
    refuses (``ValueError``) a config other than the one its results come from.
    """
    if seeds is not None:
        config = replace(config, seeds=parse_seeds(seeds, "seeds"))
    check_runnable(config)
    out = Path(out_dir)
    _claim_folder(out, json.loads(json.dumps(config.to_dict())))
    say = log or (lambda message: None)
    store = CellStore(out)
    for ds in config.datasets:
        if config.task == "classification":
            _run_classification(ds, config, store, cache=cache, progress=progress, log=say)
        else:
            task = _task_module(config.task)
            task.run_dataset(ds, config, store, cache=cache, progress=progress, log=say)
    results = store.consolidate()
    if report:
        from .report import write_report

        write_report(out)
    return results


def _task_module(task: str) -> Any:
    import importlib

    modules = {
        "reconstruction": ".reconstruction",
        "graph": ".graphs",
        "similarity": ".similarity",
    }
    if task not in modules:
        raise ValueError(f"task must be one of classification, {', '.join(modules)}; got {task!r}")
    return importlib.import_module(modules[task], __package__)
