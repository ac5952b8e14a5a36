"""Zero-shot stitching of GNN node classifiers: task ``graph`` of ``latentbridge run``.

Protocol, per dataset of the config (loaded with split ``"full"`` and the dataset's options):

1. Anchors: ``K = min(anchors.num, #training nodes)`` training nodes, chosen once by
   :func:`~latentbridge.experiments.spaces.select_anchor_indices` over the training nodes'
   input features (seed ``anchors.seed``) and shared by every model.
2. Models ``f"{arch}-{seed}"`` for each architecture of ``graph.architectures`` (``gcn``, ``gat``,
   ``sage``) and each seed of ``seeds``: a two-layer message-passing encoder
   (conv(in, hidden) -> ReLU -> dropout -> conv(hidden, latent_dim)) gives the node
   embeddings ``z``; for each variant the relative layer sits between ``z`` and the head and
   is trained end to end:

   * ``absolute``: ``z`` goes to the head;
   * a projection name (``cosine``, ...): :class:`~latentbridge.RelativeProjection` with
     ``variants.normalization`` onto the anchors' embeddings *of the same forward pass*, then
     the head;
   * ``product:<aggregation>``: :class:`~latentbridge.ProductProjection` of
     ``variants.product_projections`` with that aggregation, then the head.

   The head is :func:`~latentbridge.experiments.training.make_head` (LayerNorm first) with
   ``head.hidden`` units. Training is full-batch: Adam(``graph.lr``, ``graph.weight_decay``)
   for ``graph.epochs`` epochs of cross-entropy on the training nodes; the weights kept are
   those of the epoch with the best validation accuracy (the first such epoch; the last epoch
   when the graph has no validation nodes), as is usual for Planetoid-style node
   classification. Everything is deterministic for the seed (``torch.manual_seed`` inside
   :func:`torch.random.fork_rng`: the caller's global RNG is left untouched); every variant
   of a model starts from the same encoder initialisation.
3. Cells: for each variant and each *head* model ``j``, the encoder of every model ``i`` (with
   its own embeddings of the anchors) feeds model ``j``'s projection / aggregation and head,
   with no retraining; the test nodes are scored. Rows are ``(dataset, source=j,
   target=i, variant, seed of j, metric, value)``; ``i = j`` is the non-stitched
   reference. Absolute stitching is applicable (every model has ``latent_dim`` dimensions) and
   is expected to be poor across models.

Weights are stored under ``DIR/models/`` (:func:`~latentbridge.experiments.results.save_state`)
and reused by a restarted run; a variant's models are trained (or loaded) only when one of its
cells is unfinished. ``torch_geometric`` (the ``graph`` extra) is imported when a model is
built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..._devices import resolve_device
from ..._validation import check_positive_int
from ...modules import ProductProjection, RelativeProjection
from ...stitching import consistency_ensemble, prediction_agreement
from .. import results as cells
from ..config import GRAPH_ARCHITECTURES, DatasetConfig, GraphConfig, RunConfig
from ..results import CONSISTENCY, CONSISTENCY_METRIC, CellStore, ResultRow
from ..selection import Sides, combine_targets
from ..spaces import select_anchor_indices
from ..tables import Section, stitching_section
from ..task import Cell, MetricInfo, Plan, RunContext
from ..training import fit, macro_f1, make_head, seeded
from ..variants import (
    Absolute,
    Selection,
    Translation,
    build_layer,
    candidates,
    from_config,
    parse,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...data import GraphDataset

__all__ = [
    "ARCHITECTURES",
    "GAT_HEADS",
    "GNNEncoder",
    "GraphModel",
    "GraphTensors",
    "anchor_nodes",
    "build_model",
    "graph_tensors",
    "model_names",
    "stitched_logits",
    "train_model",
]

#: The message-passing architectures: ``torch_geometric``'s GCNConv, GATConv and SAGEConv.
ARCHITECTURES: tuple[str, ...] = GRAPH_ARCHITECTURES
#: Attention heads of the first GAT layer (concatenated; ``hidden // GAT_HEADS`` units each).
GAT_HEADS = 4


def _require_pyg() -> Any:
    """``torch_geometric.nn``, or an ImportError saying how to install it."""
    try:
        import torch_geometric.nn as pyg_nn
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the graph task needs torch_geometric: pip install 'latentbridge[graph]'"
        ) from error
    return pyg_nn


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphTensors:
    """A node-classification graph as tensors: what the models consume.

    ``x`` float32 ``(N, F)``, ``edge_index`` int64 ``(2, E)``, ``labels`` int64 ``(N,)``,
    boolean masks ``(N,)``.
    """

    x: Tensor
    edge_index: Tensor
    labels: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])


def graph_tensors(graph: GraphDataset | GraphTensors) -> GraphTensors:
    """``graph`` (a :class:`~latentbridge.data.GraphDataset`) converted to :class:`GraphTensors`.

    A :class:`GraphTensors` is returned as is.
    """
    if isinstance(graph, GraphTensors):
        return graph
    from ...data import GraphDataset

    if not isinstance(graph, GraphDataset):
        raise TypeError(f"graph must be a GraphDataset or GraphTensors, got {type(graph).__name__}")
    from ...data.graph import to_tensors

    tensors = to_tensors(graph)
    return GraphTensors(labels=tensors.pop("y"), **tensors, num_classes=graph.num_classes)


def anchor_nodes(config: RunConfig, graph: GraphDataset | GraphTensors) -> Tensor:
    """The anchors: ``min(anchors.num, #training nodes)`` training-node indices, int64 ``(K,)``.

    Chosen by ``config.anchors`` (strategy and seed) over the training nodes' input features.
    """
    g = graph_tensors(graph)
    train_nodes = torch.nonzero(g.train_mask, as_tuple=False).flatten()
    if train_nodes.numel() == 0:
        raise ValueError("graph has no training nodes: train_mask is all False")
    chosen = select_anchor_indices(
        config,
        g.x[train_nodes].numpy(),
        g.labels[train_nodes].numpy(),
        config.anchors.seed,
    )
    return train_nodes[torch.as_tensor(np.asarray(chosen), dtype=torch.long)]


# -- models ---------------------------------------------------------------------------------


class GNNEncoder(nn.Module):
    """Two message-passing layers: ``(x (N, F), edge_index) -> z (N, latent_dim)``.

    conv(F, hidden) -> ReLU -> dropout -> conv(hidden, latent_dim); no dropout on the input
    features (on wide bag-of-words features it costs more than the rest of an epoch). ``gat``'s
    first layer has :data:`GAT_HEADS` concatenated heads of ``max(1, hidden // GAT_HEADS)`` units,
    its second one head.
    """

    def __init__(
        self, architecture: str, in_dim: int, hidden: int, latent_dim: int, dropout: float
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {list(ARCHITECTURES)}, got {architecture!r}"
            )
        in_dim = check_positive_int(in_dim, "in_dim")
        hidden = check_positive_int(hidden, "hidden")
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        pyg = _require_pyg()
        self.architecture = architecture
        self.dropout = float(dropout)
        self.latent_dim = latent_dim
        if architecture == "gcn":
            self.conv1 = pyg.GCNConv(in_dim, hidden)
            self.conv2 = pyg.GCNConv(hidden, latent_dim)
        elif architecture == "gat":
            per_head = max(1, hidden // GAT_HEADS)
            self.conv1 = pyg.GATConv(in_dim, per_head, heads=GAT_HEADS)
            self.conv2 = pyg.GATConv(per_head * GAT_HEADS, latent_dim, heads=1)
        else:
            self.conv1 = pyg.SAGEConv(in_dim, hidden)
            self.conv2 = pyg.SAGEConv(hidden, latent_dim)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = torch.relu(self.conv1(x, edge_index))
        h = nn.functional.dropout(h, self.dropout, self.training)
        out: Tensor = self.conv2(h, edge_index)
        return out

    def extra_repr(self) -> str:
        return f"architecture={self.architecture!r}, dropout={self.dropout}"


class GraphModel(nn.Module):
    """A node classifier: GNN ``encoder`` -> optional relative ``projection`` -> ``head``.

    :meth:`embed` runs the encoder on the whole graph; :meth:`decode` projects the embeddings
    of some nodes onto the embeddings of the anchor nodes (rows ``anchor_idx`` of the same
    ``z``) and classifies them. Stitching is ``head_model.decode(encoder_model.embed(...),
    anchor_idx)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        projection: RelativeProjection | ProductProjection | None,
        head: nn.Module,
        variant: str,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = projection
        self.head = head
        self.variant = variant

    def embed(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Node embeddings ``z (N, latent_dim)``."""
        z: Tensor = self.encoder(x, edge_index)
        return z

    def decode(self, z: Tensor, anchor_idx: Tensor, nodes: Tensor | None = None) -> Tensor:
        """Logits of the rows ``nodes`` (a mask or indices; all if None) of embeddings ``z``.

        The anchors are ``z[anchor_idx]``: every node's embedding comes from the same pass.
        """
        selected = z if nodes is None else z[nodes]
        if self.projection is None:
            logits: Tensor = self.head(selected)
            return logits
        logits = self.head(self.projection(selected, anchors=z[anchor_idx]))
        return logits

    def forward(
        self, x: Tensor, edge_index: Tensor, anchor_idx: Tensor, nodes: Tensor | None = None
    ) -> Tensor:
        """Logits of ``nodes`` (all if None): :meth:`embed` then :meth:`decode`."""
        return self.decode(self.embed(x, edge_index), anchor_idx, nodes)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"


def _graph_config(config: RunConfig) -> GraphConfig:
    return config.graph if config.graph is not None else GraphConfig()


def build_model(
    architecture: str,
    variant: str,
    in_dim: int,
    num_classes: int,
    config: RunConfig,
    *,
    num_anchors: int | None = None,
) -> GraphModel:
    """An untrained :class:`GraphModel` for ``variant`` (initialised from the global RNG).

    Sizes come from ``config.graph`` (hidden, latent_dim, dropout; the defaults of
    :class:`~latentbridge.experiments.config.GraphConfig` when absent), ``config.head.hidden``
    and ``config.variants`` (normalization, product_projections). ``num_anchors`` (K) is
    required by every variant but ``absolute``.
    """
    g = _graph_config(config)
    num_classes = check_positive_int(num_classes, "num_classes")
    parsed = parse(variant)
    if isinstance(parsed, Translation):
        raise ValueError(f"variant {variant!r}: the graph task has no latent-translation variant")
    encoder = GNNEncoder(architecture, in_dim, g.hidden, g.latent_dim, g.dropout)
    if isinstance(parsed, Absolute):
        return GraphModel(
            encoder, None, make_head(g.latent_dim, num_classes, config.head.hidden), variant
        )
    if num_anchors is None:
        raise ValueError(f"num_anchors is required for variant {variant!r}")
    k = check_positive_int(num_anchors, "num_anchors")
    projection = build_layer(
        parsed,
        k,
        normalization=config.variants.normalization,
        product_projections=config.variants.product_projections,
    )
    assert projection is not None  # a relative or product variant
    width = projection.out_features if isinstance(projection, ProductProjection) else k
    return GraphModel(
        encoder, projection, make_head(width, num_classes, config.head.hidden), variant
    )


# -- training and evaluation ----------------------------------------------------------------


def train_model(
    model: GraphModel,
    graph: GraphDataset | GraphTensors,
    anchor_idx: Tensor,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    device: torch.device | str = "cpu",
) -> GraphModel:
    """Train ``model`` full-batch on the training nodes (on ``device``; the model comes back
    on the CPU); returns it in evaluation mode.

    Adam(``lr``, ``weight_decay``) on the cross-entropy of the training nodes for ``epochs``
    epochs. The weights kept are those of the first epoch with the best validation accuracy
    (the last epoch's when there are no validation nodes). Dropout draws from the global RNG:
    seed it (inside :func:`torch.random.fork_rng`) for a deterministic result.
    """
    epochs = check_positive_int(epochs, "epochs")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)):
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    g = graph_tensors(graph)
    if not bool(g.train_mask.any()):
        raise ValueError("graph has no training nodes: train_mask is all False")
    device = torch.device(device)
    if device.type != "cpu":
        moved = {
            f.name: getattr(g, f.name).to(device) for f in fields(g) if f.name != "num_classes"
        }
        g = replace(g, **moved)
        anchor_idx = anchor_idx.to(device)
        model.to(device)
    loss_fn = nn.CrossEntropyLoss()
    best: dict[str, Any] = {"accuracy": -1.0, "state": None}

    def loss(batch: Tensor | None) -> Tensor:
        # Full batch: the head sees only the training nodes; the anchors come from the same pass.
        logits = model(g.x, g.edge_index, anchor_idx, g.train_mask)
        return loss_fn(logits, g.labels[g.train_mask])

    def keep_best(epoch: int) -> None:
        model.eval()
        with torch.no_grad():
            predicted = model(g.x, g.edge_index, anchor_idx, g.val_mask).argmax(dim=1)
            accuracy = float((predicted == g.labels[g.val_mask]).float().mean())
        if accuracy > best["accuracy"]:
            best["accuracy"] = accuracy
            best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    fit(
        model,
        loss,
        num_samples=g.num_nodes,
        epochs=epochs,
        lr=float(lr),
        weight_decay=float(weight_decay),
        end_of_epoch=keep_best if bool(g.val_mask.any()) else None,
    )
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        model.eval()
    return model.cpu()


@torch.no_grad()
def stitched_logits(
    encoder_model: GraphModel,
    head_model: GraphModel,
    graph: GraphDataset | GraphTensors,
    anchor_idx: Tensor,
    nodes: Tensor | None = None,
) -> Tensor:
    """Logits of ``nodes`` (a mask or indices; every node if None): ``encoder_model``'s GNN,
    ``head_model``'s projection (or aggregation) and head, with the anchors embedded by
    ``encoder_model``.

    Evaluated without dropout; both models' training flags are restored afterwards. With the
    same model twice this is the model's own prediction.
    """
    g = graph_tensors(graph)
    flags = (encoder_model.training, head_model.training)
    encoder_model.eval()
    head_model.eval()
    try:
        return head_model.decode(encoder_model.embed(g.x, g.edge_index), anchor_idx, nodes)
    finally:
        encoder_model.train(flags[0])
        head_model.train(flags[1])


# -- the run --------------------------------------------------------------------------------


def model_names(config: RunConfig) -> list[tuple[str, str, int]]:
    """``(name, architecture, seed)`` of every model, ``name = f"{arch}-{seed}"``, in order."""
    g = _graph_config(config)
    return [(f"{arch}-{seed}", arch, seed) for arch in g.architectures for seed in config.seeds]


class _VariantModels:
    """The trained models of one variant and their test-time embeddings, made on first use."""

    def __init__(self, make: Callable[[], dict[str, GraphModel]], graph: GraphTensors) -> None:
        self._make = make
        self._graph = graph
        self._models: dict[str, GraphModel] | None = None
        self._embeddings: dict[str, Tensor] | None = None

    @property
    def models(self) -> dict[str, GraphModel]:
        if self._models is None:
            self._models = self._make()
        return self._models

    @property
    def embeddings(self) -> dict[str, Tensor]:
        if self._embeddings is None:
            out: dict[str, Tensor] = {}
            with torch.no_grad():
                for name, model in self.models.items():
                    model.eval()
                    out[name] = model.embed(self._graph.x, self._graph.edge_index)
            self._embeddings = out
        return self._embeddings


def _train_or_load(
    ds: DatasetConfig,
    config: RunConfig,
    store: CellStore,
    variant: str,
    graph: GraphTensors,
    anchor_idx: Tensor,
    log: Callable[[str], None],
) -> dict[str, GraphModel]:
    """Every model of ``variant``: loaded from ``DIR/models/`` or trained and stored there."""
    g = _graph_config(config)
    models: dict[str, GraphModel] = {}
    for name, arch, seed in model_names(config):
        path = cells.model_path(store.out, ds.name, variant, name)
        with seeded(seed):
            model = build_model(
                arch,
                variant,
                graph.x.shape[1],
                graph.num_classes,
                config,
                num_anchors=int(anchor_idx.numel()),
            )
            state = cells.load_state(path)
            loaded = False
            if state is not None:
                try:
                    model.load_state_dict(state)
                    loaded = True
                except RuntimeError:  # a stale or foreign file: retrain
                    loaded = False
            if not loaded:
                train_model(
                    model,
                    graph,
                    anchor_idx,
                    epochs=g.epochs,
                    lr=g.lr,
                    weight_decay=g.weight_decay,
                    device=resolve_device(config.device),
                )
                cells.save_state(path, model.state_dict())
        model.eval()
        if loaded:
            log(f"{ds.name}: {variant} {name}: loaded")
        else:
            split = "val" if bool(graph.val_mask.any()) else "train"
            mask = graph.val_mask if split == "val" else graph.train_mask
            predicted = stitched_logits(model, model, graph, anchor_idx, mask).argmax(dim=1)
            accuracy = float((predicted == graph.labels[mask]).float().mean())
            log(f"{ds.name}: {variant} {name}: trained, {split} accuracy {accuracy:.3f}")
        models[name] = model
    return models


def _sides(
    variant_models: _VariantModels, head_name: str, graph: GraphTensors, anchor_idx: Tensor
) -> dict[str, Sides]:
    """Per model: ``head_name``'s head on that model's GNN, as logits of the test nodes, of the
    anchor nodes from the head's own GNN, and of the anchor nodes from that model's GNN."""
    head_model = variant_models.models[head_name]
    embeddings = variant_models.embeddings
    with torch.no_grad():
        own = head_model.decode(embeddings[head_name], anchor_idx, anchor_idx)
        return {
            name: (
                head_model.decode(z, anchor_idx, graph.test_mask),
                own,
                head_model.decode(z, anchor_idx, anchor_idx),
            )
            for name, z in embeddings.items()
        }


def _cell_rows(
    dataset: str,
    variant: str,
    head_name: str,
    seed: int,
    sides: dict[str, Sides],
    graph: GraphTensors,
    metrics: Sequence[str],
) -> list[ResultRow]:
    """Rows of one cell: ``head_name``'s head under the encoder of every model, from the
    :func:`_sides` of the variant (or of a selection over the candidates)."""
    target = graph.labels[graph.test_mask].numpy()
    rows: list[ResultRow] = []
    for encoder_name, (logits, own, stitched) in sides.items():
        predicted = logits.argmax(dim=1).numpy()
        values: dict[str, float | None] = {
            "accuracy": float(np.mean(predicted == target)) if target.size else 0.0,
            "macro_f1": macro_f1(predicted, target, graph.num_classes),
        }
        for metric in metrics:
            if metric not in values:
                raise ValueError(f"metric {metric!r} is not one of {sorted(values)}")
        chosen = {m: values[m] for m in metrics}
        if encoder_name != head_name:  # the label-free estimate, on the anchor nodes
            chosen[CONSISTENCY] = prediction_agreement(own, stitched)
        rows += [
            ResultRow(dataset, head_name, encoder_name, variant, seed, metric, value)
            for metric, value in chosen.items()
        ]
    return rows


#: Accuracy and macro-F1 of the test nodes' predicted classes.
METRICS = (
    MetricInfo("accuracy", "Accuracy", 0.0, 1.0),
    MetricInfo("macro_f1", "Macro F1", 0.0, 1.0),
    CONSISTENCY_METRIC,
)


class _GraphRun:
    """The graph, its anchor nodes and each variant's models, made on first use."""

    def __init__(self, ds: DatasetConfig, config: RunConfig, context: RunContext) -> None:
        self.ds, self.config, self.context = ds, config, context
        self._models: dict[str, _VariantModels] = {}

    @functools.cached_property
    def graph(self) -> GraphTensors:
        from ... import data

        self.context.log(f"{self.ds.name}: loading the graph")
        loaded = data.load(self.ds.name, "full", **self.ds.options)
        if not isinstance(loaded, data.GraphDataset):
            raise ValueError(
                f"dataset {self.ds.name!r} is not a graph; the graph task needs a graph dataset"
            )
        return graph_tensors(loaded)

    @functools.cached_property
    def anchor_idx(self) -> Tensor:
        return anchor_nodes(self.config, self.graph)

    def models(self, variant: str) -> _VariantModels:
        if variant not in self._models:
            make = functools.partial(
                _train_or_load,
                self.ds,
                self.config,
                self.context.store,
                variant,
                self.graph,
                self.anchor_idx,
                self.context.log,
            )
            self._models[variant] = _VariantModels(make, self.graph)
        return self._models[variant]

    def sides(self, variant: str, head_name: str) -> dict[str, Sides]:
        """The :func:`_sides` of a trained variant, or those ``selected`` / ``ensemble`` makes
        of the candidates' (their trained models, no other training)."""
        kind = parse(variant)
        if not isinstance(kind, Selection):
            return _sides(self.models(variant), head_name, self.graph, self.anchor_idx)
        pool = [
            _sides(self.models(c.name), head_name, self.graph, self.anchor_idx)
            for c in candidates(from_config(self.config.variants))
        ]
        return combine_targets(kind.kind, pool, prediction_agreement, consistency_ensemble)

    def rows(self, variant: str, head_name: str, seed: int) -> list[ResultRow]:
        return _cell_rows(
            self.ds.name,
            variant,
            head_name,
            seed,
            self.sides(variant, head_name),
            self.graph,
            self.config.metrics,
        )


class Graph:
    """GNN node classifiers with the relative layer before the head, stitched across models."""

    name = "graph"
    metrics: tuple[MetricInfo, ...] = METRICS
    roles: tuple[str, str] = ("head's model", "GNN's model")
    note = (
        "Graphs: every model is a GNN node classifier trained from scratch with the variant's "
        "relative layer before its head. *Train encoder* names the model whose head is used, "
        "*test encoder* the model whose GNN (and anchor nodes) feed it; metrics are on the test "
        "nodes."
    )

    def sections(self, rows: Sequence[ResultRow], metric: MetricInfo) -> list[Section]:
        """The stitched summary, the non-stitched reference and the aggregation ablation."""
        return [stitching_section(rows, metric, self.roles)]

    def plan(self, dataset: DatasetConfig, config: RunConfig, context: RunContext) -> Plan:
        """One cell per (variant, model): the model's head under every model's GNN. The graph
        is loaded, and a variant's models trained or loaded, only for an unfinished cell."""
        work = _GraphRun(dataset, config, context)
        return Plan(
            [
                Cell(
                    dataset.name,
                    v.name,
                    seed,
                    name,
                    functools.partial(work.rows, v.name, name, seed),
                )
                for v in from_config(config.variants)
                for name, _arch, seed in model_names(config)
            ]
        )
