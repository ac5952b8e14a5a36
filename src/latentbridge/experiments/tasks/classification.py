"""The zero-shot stitching benchmark (task ``classification``).

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
   applicable and is recorded as an empty value, never a number. Each stitched (A, B) pair
   also records ``anchor_consistency``: how often the head's predictions from A's and from B's
   inputs of the K anchors agree (:func:`latentbridge.stitching.prediction_agreement`), a
   label-free estimate of the stitched accuracy.
5. With ``variants.selection``, two zero-shot selections over the candidates (the single
   projections and the products) reuse their trained heads, per (A, B) pair: ``selected``
   takes the candidate with the highest anchor consistency, ``ensemble`` averages the
   candidates' class probabilities weighted by ``softmax(consistency / T)``
   (:data:`latentbridge.stitching.ENSEMBLE_TEMPERATURE`). The candidates' logits on the test
   splits and the anchors are kept in ``DIR/models/`` for them (recomputed, by training the
   candidate again with its seed, when missing).

Relative spaces do not depend on learned weights, so they are computed once per encoder and
split, and training runs on them. Results go to ``DIR/results.csv`` (dataset, source,
target, variant, seed, metric, value). Each (dataset, variant, seed, train encoder) cell is
written atomically to ``DIR/cells/`` when it finishes; a restarted run skips finished cells, and
``results.csv`` is rebuilt from them after every cell, so an interruption loses at most the cell
in progress.

Nothing is loaded until the first unfinished cell computes: a resumed run whose cells are all
finished loads no latents.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..._devices import resolve_device
from ...alignment import Translator
from ...modules import ProductProjection, RelativeProjection
from ...stitching import consistency_ensemble, prediction_agreement
from ..config import DatasetConfig, RunConfig
from ..results import CONSISTENCY, CONSISTENCY_METRIC, ResultRow, load_state, model_path, save_state
from ..selection import combine
from ..spaces import (
    Spaces,
    encoder_names,
    load_spaces,
    select_anchor_indices,
    trained_encoders,
)
from ..tables import Section, stitching_section
from ..task import Cell, MetricInfo, Plan, RunContext, Shared
from ..training import logits, macro_f1, make_head, seeded, train_classifiers
from ..variants import Selection, Translation, Variant, build_layer, candidates, from_config

__all__ = ["Classification"]

Layer = RelativeProjection | ProductProjection | None

#: Accuracy and macro-F1 of the predicted classes on the test split, and (stitched pairs only)
#: the label-free anchor consistency of the stitched head.
METRICS = (
    MetricInfo("accuracy", "Accuracy", 0.0, 1.0),
    MetricInfo("macro_f1", "Macro F1", 0.0, 1.0),
    CONSISTENCY_METRIC,
)


class _Features:
    """Per-encoder inputs of each variant, computed once and reused by every cell.

    A relative variant's input is its layer's fixed part (the projections onto the encoder's
    anchors), which does not depend on the layer's learned weights: it is computed with the
    first layer that asks for it and shared by every cell of the variant.
    """

    def __init__(self, spaces: Spaces, anchor_idx: np.ndarray, config: RunConfig) -> None:
        self.spaces = spaces
        self.idx = torch.as_tensor(anchor_idx, dtype=torch.long)
        self.config = config
        self._relative: dict[tuple[str, str, str], Tensor] = {}
        #: Heads trained with another cell's, until their own cell takes them.
        self.trained: dict[tuple[str, int, str], tuple[Layer, nn.Module]] = {}

    def absolute(self, encoder: str, split: str) -> Tensor:
        store = self.spaces.train if split == "train" else self.spaces.test
        array = store[encoder]
        if isinstance(array, np.ndarray) and not array.flags.writeable:
            # read from Ray's object store (read-only shared memory): a private copy, once
            array = store[encoder] = np.array(array, dtype=np.float32)
        return torch.as_tensor(array, dtype=torch.float32)

    def anchors(self, encoder: str) -> Tensor:
        return self.absolute(encoder, "train")[self.idx]

    def inputs(self, variant: Variant, layer: Layer, encoder: str, split: str) -> Tensor:
        """What the learned part of ``variant``'s model sees for ``encoder``'s ``split``."""
        if layer is None:  # absolute latents (translated at test time for translation)
            return self.absolute(encoder, split)
        key = (encoder, split, variant.name)
        if key not in self._relative:
            x, anchors = self.absolute(encoder, split), self.anchors(encoder)
            with torch.no_grad():
                if isinstance(layer, ProductProjection):
                    fixed = layer.with_anchors(anchors).relative(x)
                else:
                    fixed = layer.with_anchors(anchors)(x)
            self._relative[key] = fixed.to(torch.float32)
        return self._relative[key]


def _build_model(
    variant: Variant, num_features: int, num_anchors: int, num_classes: int, config: RunConfig
) -> tuple[Layer, nn.Module]:
    """``(relative layer or None, trainable model)``: the head, after the product's learned
    aggregation for a product variant (the layer's fixed part is its input)."""
    layer = build_layer(
        variant,
        num_anchors,
        normalization=config.variants.normalization,
        product_projections=config.variants.product_projections,
    )
    hidden = config.head.hidden
    if isinstance(layer, ProductProjection):
        aggregation = layer.aggregation
        head = make_head(aggregation.out_features, num_classes, hidden)
        return layer, nn.Sequential(aggregation, head)
    in_features = num_features if layer is None else num_anchors
    return layer, make_head(in_features, num_classes, hidden)


def _stitched_inputs(
    features: _Features, variant: Variant, layer: Layer, source: str, target: str
) -> tuple[Tensor, Tensor] | None:
    """``target``'s inputs ``(test split, anchors)`` for a head trained on ``source``, or None
    where not applicable (absolute latents of another dimension; a translation the anchors
    cannot determine). A translation's map is fitted once, on the anchors, for both."""
    x_test = features.inputs(variant, layer, target, "test")
    x_anchors = features.inputs(variant, layer, target, "train")[features.idx]
    if isinstance(variant, Translation) and target != source:
        try:
            translator = Translator(estimator=variant.estimator).fit(
                features.anchors(target), features.anchors(source)
            )
        except ValueError:
            return None  # e.g. fewer anchors than the map has parameters
        test, anchors = (translator.transform(x).to(torch.float32) for x in (x_test, x_anchors))
        return test, anchors
    if layer is None and x_test.shape[1] != features.absolute(source, "test").shape[1]:
        return None  # different dimensions: absolute stitching is not applicable
    return x_test, x_anchors


Job = tuple[int, str]  # (seed, train encoder)


def _train(
    features: _Features, variant: Variant, jobs: Sequence[Job], config: RunConfig, wanted: Job
) -> dict[Job, tuple[Layer, nn.Module]]:
    """``variant``'s layers and heads trained on each job's ``source`` training split, for the
    jobs whose head has the input width of ``wanted``'s: one group, trained as one stack
    (:func:`~latentbridge.experiments.training.train_classifiers`).

    Each head is initialised with its own seed and draws its own mini-batches; the group is
    fixed by the config (every seed and train encoder of the variant with that width), never
    by what a resumed run has left to do, so a head's values are the same however the run
    was interrupted.
    """
    spaces = features.spaces
    y = torch.tensor(np.array(spaces.train_labels), dtype=torch.long)
    built: dict[Job, tuple[Layer, nn.Module, Tensor]] = {}
    for seed, source in jobs:
        with seeded(seed):
            num_features = features.absolute(source, "train").shape[1]
            layer, model = _build_model(
                variant, num_features, int(features.idx.numel()), spaces.num_classes, config
            )
        built[(seed, source)] = (layer, model, features.inputs(variant, layer, source, "train"))
    width = built[wanted][2].shape[1:]
    same = [job for job, (_, _, x) in built.items() if x.shape[1:] == width]
    group = next(g for g in _stacks(same, built) if wanted in g)
    train_classifiers(
        [built[job][1] for job in group],
        [built[job][2] for job in group],
        y,
        epochs=config.head.epochs,
        lr=config.head.lr,
        batch_size=config.head.batch_size,
        weight_decay=config.head.weight_decay,
        generators=[torch.Generator().manual_seed(seed) for seed, _ in group],
        device=resolve_device(config.device),
    )
    return {job: built[job][:2] for job in group}


#: Parameters of one stack of heads at most (2^28, 1 GiB of float32 per copy; training holds
#: about five copies: the models, the stack, its gradients and Adam's two moments).
MAX_STACK_PARAMETERS = 1 << 28


def _stacks(
    jobs: Sequence[Job], built: dict[Job, tuple[Layer, nn.Module, Tensor]]
) -> list[list[Job]]:
    """``jobs`` in consecutive stacks of at most :data:`MAX_STACK_PARAMETERS` parameters (at
    least one head each): fixed by the config's order, like the group."""
    stacks: list[list[Job]] = [[]]
    total = 0
    for job in jobs:
        size = sum(p.numel() for p in built[job][1].parameters())
        if stacks[-1] and total + size > MAX_STACK_PARAMETERS:
            stacks.append([])
            total = 0
        stacks[-1].append(job)
        total += size
    return stacks


def _trained(
    features: _Features,
    variant: Variant,
    seed: int,
    source: str,
    config: RunConfig,
    keep: Callable[[Job], bool],
) -> tuple[Layer, nn.Module]:
    """``variant``'s layer and head for (``seed``, ``source``): trained with the rest of its
    group (:func:`_train`) by the first cell of the group that asks; the heads of the group
    that ``keep(job)`` (a cell still to compute) stay in memory for their cells, which take
    them."""
    key = (variant.name, seed, source)
    if key not in features.trained:
        jobs = [(s, e) for s in config.seeds for e in features.spaces.train]
        for job, result in _train(features, variant, jobs, config, (seed, source)).items():
            if job == (seed, source) or keep(job):
                features.trained[(variant.name, job[0], job[1])] = result
    return features.trained.pop(key)


def _outputs(
    features: _Features, variant: Variant, layer: Layer, model: nn.Module, source: str
) -> dict[str, Tensor]:
    """The logits of the head trained on ``source``, stitched to every target where that
    applies: ``test/<target>`` on the target's test split and ``anchors/<target>`` on its
    inputs of the anchors (for ``source`` itself, the head's own view of the anchors)."""
    out: dict[str, Tensor] = {}
    for target in features.spaces.train:
        inputs = _stitched_inputs(features, variant, layer, source, target)
        if inputs is not None:
            out[f"test/{target}"] = logits(model, inputs[0])
            out[f"anchors/{target}"] = logits(model, inputs[1])
    return out


def _rows(
    features: _Features,
    variant: str,
    seed: int,
    source: str,
    config: RunConfig,
    outputs: Callable[[str], tuple[Tensor | None, Tensor | None, Tensor | None]],
) -> list[ResultRow]:
    """The rows of a cell from ``outputs(target) -> (test scores, source's anchor scores,
    target's anchor scores)``, each None where not applicable: the configured metrics of every
    target, and the anchor consistency (:func:`latentbridge.stitching.prediction_agreement` of
    the two anchor sides) of the stitched ones."""
    spaces = features.spaces
    target_labels = np.asarray(spaces.test_labels)
    rows: list[ResultRow] = []
    for target in spaces.train:
        values: dict[str, float | None] = {m: None for m in config.metrics}
        test, own, stitched = outputs(target)
        if test is not None:
            predicted = test.argmax(dim=1).numpy()
            if "accuracy" in values:
                values["accuracy"] = float(np.mean(predicted == target_labels))
            if "macro_f1" in values:
                values["macro_f1"] = macro_f1(predicted, target_labels, spaces.num_classes)
        if target != source:  # the label-free estimate of the stitched metrics above
            agree = None if own is None or stitched is None else prediction_agreement(own, stitched)
            values[CONSISTENCY] = agree
        rows += [
            ResultRow(spaces.dataset, source, target, variant, seed, metric, value)
            for metric, value in values.items()
        ]
    return rows


def _cell_rows(
    make_features: Callable[[], _Features],
    variant: Variant,
    seed: int,
    source: str,
    config: RunConfig,
    out: Path | None,
    pending: Callable[[Job], bool],
) -> list[ResultRow]:
    """The rows of a trained variant; with ``out``, its outputs are kept for a selection.
    ``pending(job)``: whether the variant's cell of that job is still to compute."""
    features = make_features()
    layer, model = _trained(features, variant, seed, source, config, pending)
    outputs = _outputs(features, variant, layer, model, source)
    if out is not None:
        save_state(_outputs_path(out, features.spaces.dataset, variant, seed, source), outputs)
    return _rows(features, variant.name, seed, source, config, _lookup(outputs, source))


def _lookup(
    outputs: dict[str, Tensor], source: str
) -> Callable[[str], tuple[Tensor | None, Tensor | None, Tensor | None]]:
    def get(target: str) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        return (
            outputs.get(f"test/{target}"),
            outputs.get(f"anchors/{source}"),
            outputs.get(f"anchors/{target}"),
        )

    return get


# -- zero-shot selection ----------------------------------------------------------------------


def _outputs_path(out: Path, dataset: str, variant: Variant, seed: int, source: str) -> Path:
    return model_path(out, dataset, variant.name, f"{source}__seed{seed}__outputs")


def _candidate_outputs(
    features: _Features, variant: Variant, seed: int, source: str, config: RunConfig, out: Path
) -> dict[str, Tensor]:
    """A candidate's outputs as its own cell stored them, or trained again (deterministic: the
    same seed gives the same head) when they are missing or incomplete."""
    path = _outputs_path(out, features.spaces.dataset, variant, seed, source)
    stored = load_state(path)
    expected = {f"{kind}/{t}" for kind in ("test", "anchors") for t in features.spaces.train}
    if stored is not None and set(stored) == expected:
        return stored
    dataset = features.spaces.dataset

    def missing(job: Job) -> bool:  # another selection cell will ask for that head
        return not _outputs_path(out, dataset, variant, *job).is_file()

    layer, model = _trained(features, variant, seed, source, config, missing)
    outputs = _outputs(features, variant, layer, model, source)
    save_state(path, outputs)
    return outputs


def _selection_rows(
    make_features: Callable[[], _Features],
    selection: Selection,
    candidates: Sequence[Variant],
    seed: int,
    source: str,
    config: RunConfig,
    out: Path,
) -> list[ResultRow]:
    """``selected`` or ``ensemble`` over the ``candidates`` trained on ``source``, per target:
    the candidate with the highest anchor consistency, or the candidates' probabilities
    weighted by :func:`latentbridge.stitching.consistency_weights` of their consistencies
    (on ``source`` itself every consistency is 1: the first candidate, or the plain average).
    No training beyond the candidates' own, no label of the target."""
    features = make_features()
    outputs = [_candidate_outputs(features, c, seed, source, config, out) for c in candidates]

    def combined(target: str) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        keys = (f"test/{target}", f"anchors/{source}", f"anchors/{target}")
        sides = [(o[keys[0]], o[keys[1]], o[keys[2]]) for o in outputs]
        return combine(selection.kind, sides, prediction_agreement, consistency_ensemble)

    return _rows(features, selection.name, seed, source, config, combined)


# -- the task -----------------------------------------------------------------------------


class Classification:
    """Heads trained on one encoder's space, evaluated on every encoder's (zero-shot)."""

    name = "classification"
    metrics: tuple[MetricInfo, ...] = METRICS
    roles: tuple[str, str] = ("train encoder", "test encoder")
    note = ""

    def sections(self, rows: Sequence[ResultRow], metric: MetricInfo) -> list[Section]:
        """The stitched summary, the non-stitched reference and the aggregation ablation."""
        return [stitching_section(rows, metric, self.roles)]

    def plan(self, dataset: DatasetConfig, config: RunConfig, context: RunContext) -> Plan:
        features = Shared(functools.partial(_features, dataset, config, context))
        variants = from_config(config.variants)
        pool = candidates(variants)
        keep = context.out if config.variants.selection else None
        cells = []
        for v in variants:
            for seed in config.seeds:
                for encoder in encoder_names(dataset):
                    if isinstance(v, Selection):
                        compute = functools.partial(
                            _selection_rows, features, v, pool, seed, encoder, config, context.out
                        )
                    else:
                        out = keep if v in pool else None
                        pending = functools.partial(_pending, context, dataset.name, v.name)
                        compute = functools.partial(
                            _cell_rows, features, v, seed, encoder, config, out, pending
                        )
                    # a variant's heads train as one group; a selection reads its candidates'
                    stage = 1 if isinstance(v, Selection) else 0
                    cells.append(
                        Cell(dataset.name, v.name, seed, encoder, compute, (v.name,), stage)
                    )
        return Plan(cells)


def _pending(context: RunContext, dataset: str, variant: str, job: Job) -> bool:
    """Whether the cell of ``variant`` for ``job`` (seed, train encoder) is not stored yet."""
    store = context.store
    return not store.done(store.path(dataset, variant, *job))


def _features(dataset: DatasetConfig, config: RunConfig, context: RunContext) -> _Features:
    context.log(f"{dataset.name}: loading latents")
    spaces = load_spaces(
        dataset,
        trained_encoders(dataset, config.device),
        cache=context.cache,
        progress=context.progress,
        executor=context.executor,
        device=config.device,
    )
    first = next(iter(spaces.train.values()))
    anchor_idx = select_anchor_indices(config, first, spaces.train_labels, config.anchors.seed)
    return _Features(spaces, anchor_idx, config)
