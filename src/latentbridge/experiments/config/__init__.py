"""Configuration of a ``latentbridge run``: YAML files validated on load.

A config names its ``task``, the datasets with their encoders, the anchors, the space variants,
the head and its optimiser, the seeds and the metrics. Tasks:

- ``classification`` (the default): zero-shot stitching of classification heads trained on
  frozen encoders' latents;
- ``reconstruction``: autoencoders / VAEs trained from scratch with the relative layer inside,
  stitched encoder i -> decoder j (options in the ``reconstruction`` key); the ``seeds`` are
  the models' seeds;
- ``graph``: GNN node classifiers with the relative layer before the head, stitched across
  seeds and architectures (options in ``graph``); the ``seeds`` are the models' seeds;
- ``similarity``: the similarity of every pair of encoders' spaces under each invariance class
  (options in ``similarity``); the ``seeds`` choose the anchor sets.

The dataclasses of :mod:`.schema` are the schema: each field's type, default and rule. Unknown
keys and bad values raise :class:`ConfigError` naming the key (``datasets[0].encoders``):
numbers must be finite, dataset and encoder names registered (an encoder of the dataset's
modality), dataset options accepted by the dataset's loader, and the config's ``name`` (which
names its default output folder) a safe slug. Built-in configs live in
``latentbridge/experiments/configs/<name>.yaml`` and are selected by name: ``quick`` (the
default), ``text``, ``vision``, ``synthetic``, ``reconstruction``, ``graph``, ``similarity``.
"""

from .loading import builtin_configs, check_runnable, load_config
from .rules import parse_config
from .schema import (
    AUTOENCODERS,
    GRAPH_ARCHITECTURES,
    METRICS,
    SEED_MAX,
    SIMILARITY_MEASURES,
    TASK_METRICS,
    TASK_SCHEMAS,
    TASKS,
    VISION_ARCHITECTURES,
    AnchorConfig,
    DatasetConfig,
    GraphConfig,
    HeadConfig,
    ReconstructionConfig,
    RunConfig,
    SimilarityConfig,
    TaskSchema,
    TrainedEncodersConfig,
    VariantConfig,
    parse_seeds,
)
from .validate import ConfigError

__all__ = [
    "AUTOENCODERS",
    "GRAPH_ARCHITECTURES",
    "METRICS",
    "SEED_MAX",
    "SIMILARITY_MEASURES",
    "TASKS",
    "TASK_METRICS",
    "TASK_SCHEMAS",
    "VISION_ARCHITECTURES",
    "AnchorConfig",
    "ConfigError",
    "DatasetConfig",
    "GraphConfig",
    "HeadConfig",
    "ReconstructionConfig",
    "RunConfig",
    "SimilarityConfig",
    "TaskSchema",
    "TrainedEncodersConfig",
    "VariantConfig",
    "builtin_configs",
    "check_runnable",
    "load_config",
    "parse_config",
    "parse_seeds",
]
