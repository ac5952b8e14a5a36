"""The schema of a run config: frozen dataclasses whose fields state each default once.

A field's type and its :class:`~.validate.Rule` (``constrained(10, minimum=1)``) are all that
:func:`~.validate.parse_dataclass` checks a YAML value against; the rules that relate several
fields (a dataset's modality and the task, encoders and their dataset) live in :mod:`.rules`.
:data:`TASK_SCHEMAS` is the one list of tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from numbers import Integral
from typing import Any, TypeVar

from ... import analysis
from ..._devices import check_device
from ...aggregations import available as aggregation_names
from ...alignment import available as translation_estimators
from ...anchors import available as anchor_strategies
from ...normalization import ABSOLUTE as NORMALIZATIONS
from ...projections import PAPER_PRODUCT
from ...projections import available as projection_names
from ..variants import Relative, parse_relative
from .validate import Rule, check, check_keys, constrained, fail, mapping, rule

#: Seeds reach numpy and torch generators; 32 bits suit every one of them.
SEED_MAX = 2**32 - 1

T = TypeVar("T")
#: Field metadata: config.json holds the field only when its value is not the default.
_STORED_WHEN_SET = "stored_when_set"


def stored_when_set(default: T) -> T:
    """A field (checked by its type alone) that :meth:`RunConfig.to_dict` leaves out at its
    default: a key added after run folders were written, so that their ``config.json`` (and
    the pinned one of every built-in config) stays byte for byte what it was."""
    return field(default=default, metadata={_STORED_WHEN_SET: True})


def _drop_unset(config: Any, stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` (``asdict(config)``) without the :func:`stored_when_set` fields at their
    default, in ``config`` and the dataclasses it holds."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.metadata.get(_STORED_WHEN_SET) and value == f.default:
            del stored[f.name]
        elif is_dataclass(value):
            _drop_unset(value, stored[f.name])
        elif isinstance(value, tuple) and value and is_dataclass(value[0]):
            for item, item_stored in zip(value, stored[f.name], strict=True):
                _drop_unset(item, item_stored)
    return stored


def parse_device(value: Any, key: str = "device") -> str:
    """``value`` as a device name: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``
    (:class:`~.validate.ConfigError` naming ``key`` otherwise). Whether a GPU is present is
    checked when the run starts (:func:`~.loading.check_runnable`)."""
    try:
        return check_device(value, "it")
    except ValueError as error:
        raise fail(key, str(error).removeprefix("it ")) from None


def parse_seeds(value: Any, key: str = "seeds") -> tuple[int, ...]:
    """``value`` as seeds: a non-empty list of distinct integers in ``[0, 2**32 - 1]``.

    Raises :class:`~.validate.ConfigError` naming ``key``.
    """
    items = None
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        items = list(value)
    if not items:
        raise fail(key, f"must be a non-empty list of integers, got {value!r}")
    # numpy integers are integers too; booleans are not
    seeds = tuple(
        check(v if isinstance(v, bool) or not isinstance(v, Integral) else int(v), int, key, _SEED)
        for v in items
    )
    if len(set(seeds)) != len(seeds):
        raise fail(key, f"seeds must not repeat, got {list(seeds)}")
    return seeds


_SEED = Rule(minimum=0, maximum=SEED_MAX)


#: The keys of a projection entry's mapping form, ``{projection: cosine, normalization: whiten}``.
_ENTRY_KEYS = ("projection", "normalization")


def parse_projection_entries(value: Any, key: str) -> tuple[str, ...]:
    """``value`` as projection entries: a list of projection names, each optionally with an
    absolute normalisation of its own, given as the variant name (``cosine+whiten``) or as a
    mapping ``{projection: cosine, normalization: whiten}``. Stored as variant names (which
    :func:`~latentbridge.experiments.variants.parse_relative` reads), none repeated. Raises
    :class:`~.validate.ConfigError` naming the key.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise fail(key, f"must be a list of names, got {value!r}")
    names = tuple(_projection_entry(v, key, i) for i, v in enumerate(value))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise fail(key, f"names must not repeat, got {repeated[0]!r} twice")
    return names


def _projection_entry(value: Any, key: str, index: int) -> str:
    """Entry ``index`` of the list ``key`` (a name or a mapping) as its variant name; a bad name
    is reported on the list (as any list of names), a bad mapping on its own key."""
    if isinstance(value, dict):
        where = f"{key}[{index}]"
        raw = mapping(value, where)
        check_keys(raw, _ENTRY_KEYS, where)
        if "projection" not in raw:
            raise fail(f"{where}.projection", "is required")
        projection = check(raw["projection"], str, f"{where}.projection", _PROJECTION)
        normalization = raw.get("normalization")
        if normalization is not None:
            check(normalization, str, f"{where}.normalization", _NORMALIZATION)
        return Relative(projection, normalization).name
    if not isinstance(value, str):
        raise fail(
            key, f"must hold projection names or mappings of {list(_ENTRY_KEYS)}, got {value!r}"
        )
    try:
        return parse_relative(value).name
    except ValueError as error:
        raise fail(key, str(error)) from None


_PROJECTION = Rule(choices=projection_names)
_NORMALIZATION = Rule(choices=NORMALIZATIONS)


def _checked_by_its_dataset(value: Any, key: str) -> Any:
    """A value whose check depends on the dataset (:mod:`.rules` checks it)."""
    return value


#: The four projections of the paper's product, the default of single and product variants.
_PAPER_PROJECTIONS = PAPER_PRODUCT
#: Architectures of the encoders trained from scratch (vision), of the GNNs, of the autoencoders.
VISION_ARCHITECTURES = ("mlp", "cnn", "resnet")
GRAPH_ARCHITECTURES = ("gcn", "gat", "sage")
AUTOENCODERS = ("ae", "vae")
#: The metrics of the classification and graph tasks, and the similarity study's measures.
METRICS = ("accuracy", "macro_f1")
SIMILARITY_MEASURES = analysis.SIMILARITY_MEASURES


@dataclass(frozen=True)
class TrainedEncodersConfig:
    """Vision encoders trained from scratch on the dataset (architectures x seeds)."""

    architectures: tuple[str, ...] = constrained(
        VISION_ARCHITECTURES, choices=VISION_ARCHITECTURES, nonempty="architecture"
    )
    seeds: tuple[int, ...] = constrained((0, 1), parse=parse_seeds)
    epochs: int = constrained(3, minimum=1)
    latent_dim: int = constrained(64, minimum=1)
    train_subset: int | None = constrained(None, minimum=1)


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset, the encoders whose spaces are compared on it, and its loader's options.

    ``options`` are keywords of the dataset's loader; ``synthetic`` (the ``synthetic`` dataset
    only) holds the options of :func:`latentbridge.synthetic.make_spaces`, the transformation
    classes relating the generated spaces among them.
    """

    name: str
    encoders: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    test_split: str = "test"
    trained_encoders: TrainedEncodersConfig | None = None
    synthetic: dict[str, Any] | None = field(
        default=None, metadata=rule(parse=_checked_by_its_dataset)
    )


@dataclass(frozen=True)
class AnchorConfig:
    """How many anchors, chosen how (a strategy of :mod:`latentbridge.anchors`), from which seed."""

    num: int = constrained(1280, minimum=1)
    strategy: str = constrained("uniform", choices=anchor_strategies)
    seed: int = constrained(0, minimum=0, maximum=SEED_MAX)


@dataclass(frozen=True)
class VariantConfig:
    """The space variants compared: absolute, single projections, products, translations and
    the selection among them.

    ``projections`` are the single projections, normalised by ``normalization`` unless an entry
    names its own (``cosine+whiten``, or ``{projection: cosine, normalization: whiten}``);
    ``product_projections`` (entries of the same form) are the subspaces of every product, one
    variant per aggregation; ``translation`` names latent-translation estimators
    (:mod:`latentbridge.alignment`). ``selection``: zero-shot selection over the trained single
    projections and products: ``selected`` (per stitched pair, the candidate with the highest
    anchor consistency) and ``ensemble`` (the candidates' probabilities weighted by a softmax of
    their anchor consistency).
    """

    absolute: bool = True
    projections: tuple[str, ...] = constrained(_PAPER_PROJECTIONS, parse=parse_projection_entries)
    normalization: str = constrained("none", choices=NORMALIZATIONS)
    product_projections: tuple[str, ...] = constrained(
        _PAPER_PROJECTIONS, parse=parse_projection_entries
    )
    aggregations: tuple[str, ...] = constrained(
        ("mlp_sum", "concat", "sum", "self_attention"), choices=aggregation_names
    )
    translation: tuple[str, ...] = constrained((), choices=translation_estimators)
    selection: bool = stored_when_set(False)


@dataclass(frozen=True)
class HeadConfig:
    """The classification head trained on each space, and its Adam optimiser."""

    hidden: int = constrained(256, minimum=1)
    epochs: int = constrained(10, minimum=1)
    lr: float = constrained(1e-3, above=0.0)
    batch_size: int = constrained(64, minimum=1)
    weight_decay: float = constrained(0.0, minimum=0.0)


@dataclass(frozen=True)
class ReconstructionConfig:
    """Autoencoders trained from scratch with the relative layer inside (task ``reconstruction``).

    Every ``kind`` is trained once per seed of the run (``ae-0``, ``vae-1``, ...) and per variant.
    ``beta`` weighs the VAE's KL term; ``train_subset`` trains on a class-balanced subset of the
    training split; ``grid_images`` test images are shown in each image grid.
    """

    kinds: tuple[str, ...] = constrained(AUTOENCODERS, choices=AUTOENCODERS, nonempty="kind")
    latent_dim: int = constrained(32, minimum=1)
    hidden: int = constrained(32, minimum=1)
    epochs: int = constrained(5, minimum=1)
    batch_size: int = constrained(128, minimum=1)
    lr: float = constrained(1e-3, above=0.0)
    beta: float = constrained(1.0, minimum=0.0)
    train_subset: int | None = constrained(None, minimum=1)
    grid_images: int = constrained(8, minimum=1)


@dataclass(frozen=True)
class GraphConfig:
    """GNN node classifiers with the relative layer before the head (task ``graph``).

    Every architecture is trained once per seed of the run (``gcn-0``, ``sage-1``, ...) and per
    variant, full-batch, with Adam(lr, weight_decay) for ``epochs`` epochs.
    """

    architectures: tuple[str, ...] = constrained(
        GRAPH_ARCHITECTURES, choices=GRAPH_ARCHITECTURES, nonempty="architecture"
    )
    hidden: int = constrained(64, minimum=1)
    latent_dim: int = constrained(64, minimum=1)
    epochs: int = constrained(200, minimum=1)
    lr: float = constrained(0.01, above=0.0)
    weight_decay: float = constrained(5e-4, minimum=0.0)
    dropout: float = constrained(0.5, minimum=0.0, below=1)


def _similarity_classes() -> tuple[str, ...]:
    return tuple(analysis.representation_classes())


@dataclass(frozen=True)
class SimilarityConfig:
    """The latent-similarity study (task ``similarity``).

    ``classes``: the representations compared (``absolute``, a projection name such as ``dot``,
    ``cosine``, ``euclidean``, ``l1``, ``linf``, or ``product``, the concatenation of the
    standardised ``variants.product_projections`` spaces). ``measures``: similarity measures
    between two encoders' representations of the same ``num_samples`` test samples.
    """

    classes: tuple[str, ...] = constrained(
        ("absolute", "dot", "cosine", "euclidean", "l1", "linf", "product"),
        choices=_similarity_classes,
        nonempty="representation",
    )
    measures: tuple[str, ...] = constrained(
        ("linear_cka", "distance_pearson"), choices=SIMILARITY_MEASURES, nonempty="measure"
    )
    num_samples: int = constrained(2000, minimum=2)


@dataclass(frozen=True)
class TaskSchema:
    """What a config of one task may hold.

    ``options``: the dataclass of the config key named after the task (None: the task has none).
    ``metrics``: the metrics it can report, all of them by default. ``modalities``: the dataset
    modalities it takes (``synthetic``: the generated spaces of the ``synthetic`` dataset).
    ``trains_models``: its models are trained on the data, so its datasets name no encoders.
    ``default_splits``: the (train, test) splits of a dataset that names none, when not
    :class:`DatasetConfig`'s. ``translation``: it compares ``variants.translation``.
    ``selection``: it stitches models whose anchor consistency ``variants.selection`` selects by.
    """

    options: type | None
    metrics: tuple[str, ...]
    modalities: tuple[str, ...]
    trains_models: bool = False
    default_splits: tuple[str, str] | None = None
    translation: bool = False
    selection: bool = False


#: The experiment families ``latentbridge run`` knows, by the name a config's ``task`` gives.
TASK_SCHEMAS: dict[str, TaskSchema] = {
    "classification": TaskSchema(
        None, METRICS, ("vision", "text", "synthetic"), translation=True, selection=True
    ),
    "reconstruction": TaskSchema(
        ReconstructionConfig, ("mse", "psnr"), ("vision",), trains_models=True, selection=True
    ),
    # graph datasets have one split, "full", with node masks
    "graph": TaskSchema(
        GraphConfig,
        METRICS,
        ("graph",),
        trains_models=True,
        default_splits=("full", "full"),
        selection=True,
    ),
    # the measures are the metrics: SimilarityConfig.measures chooses among them
    "similarity": TaskSchema(SimilarityConfig, SIMILARITY_MEASURES, ("vision", "text")),
}
TASKS: tuple[str, ...] = tuple(TASK_SCHEMAS)
#: The metrics each task can report.
TASK_METRICS: dict[str, tuple[str, ...]] = {n: s.metrics for n, s in TASK_SCHEMAS.items()}


@dataclass(frozen=True)
class RunConfig:
    """A run: its task, datasets, anchors, space variants, head, seeds and metrics.

    The key named after the task (``reconstruction``, ``graph``, ``similarity``) holds that
    task's options. :meth:`to_dict` is what a run folder's ``config.json`` stores.
    """

    name: str
    datasets: tuple[DatasetConfig, ...] = field(metadata=rule(nonempty="dataset"))
    task: str = constrained("classification", choices=TASKS)
    anchors: AnchorConfig = AnchorConfig()
    variants: VariantConfig = VariantConfig()
    head: HeadConfig = HeadConfig()
    seeds: tuple[int, ...] = constrained((0, 1, 2), parse=parse_seeds)
    metrics: tuple[str, ...] = constrained(METRICS, nonempty="metric")
    description: str = ""
    #: Where heads train: ``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA where present). Not
    #: part of a run folder's identity: a run may resume on another device.
    device: str = field(
        default="cpu", metadata={_STORED_WHEN_SET: True, **rule(parse=parse_device)}
    )
    reconstruction: ReconstructionConfig | None = None
    graph: GraphConfig | None = None
    similarity: SimilarityConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_unset(self, asdict(self))
