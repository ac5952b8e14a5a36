"""Task ``graph`` of `latentbridge run`: GNN node classifiers stitched across seeds and
architectures (invariance of the relative layer, the CLI end to end, determinism, resumption,
config errors)."""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import Tensor, nn

pytest.importorskip("torch_geometric")

from latentbridge import data
from latentbridge.cli import main
from latentbridge.experiments import results, runner
from latentbridge.experiments.config import ConfigError, parse_config
from latentbridge.experiments.tasks import graph as graphs

SBM = {
    "num_classes": 3,
    "nodes_per_class": 40,
    "feature_dim": 8,
    "p_in": 0.15,
    "p_out": 0.01,
    "feature_noise": 1.0,
    "num_train_per_class": 5,
    "seed": 0,
}
TINY = {
    "name": "tiny-graph",
    "task": "graph",
    "datasets": [{"name": "sbm", "options": SBM}],
    "graph": {"architectures": ["gcn", "sage"], "hidden": 16, "latent_dim": 8, "epochs": 30},
    "anchors": {"num": 10},
    "variants": {
        "projections": ["cosine"],
        "product_projections": ["cosine", "euclidean"],
        "aggregations": ["sum"],
    },
    "head": {"hidden": 16},
    "seeds": [0, 1],
}
MODELS = ["gcn-0", "gcn-1", "sage-0", "sage-1"]
VARIANTS = ["absolute", "cosine", "product:sum"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _graph(name: str, **options: object) -> data.GraphDataset:
    loaded = data.load(name, "full", **options)
    assert isinstance(loaded, data.GraphDataset)
    return loaded


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _results(path: Path) -> dict[tuple[str, str, str, str], str]:
    with path.open() as handle:
        return {
            (r["source"], r["target"], r["variant"], r["metric"]): r["value"]
            for r in csv.DictReader(handle)
        }


# -- invariance of the relative layer, with no training luck involved ------------------------


class _Rotated(nn.Module):
    """An encoder followed by a fixed orthogonal map of its output."""

    q: Tensor

    def __init__(self, encoder: nn.Module, q: Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("q", q)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        out: Tensor = self.encoder(x, edge_index) @ self.q
        return out


def _model_and_rotated_copy(
    arch: str, variant: str, config_changes: dict | None = None
) -> tuple[graphs.GraphModel, graphs.GraphModel, graphs.GraphTensors, Tensor]:
    config = parse_config({**TINY, **(config_changes or {})})
    graph = graphs.graph_tensors(_graph("karate"))
    anchor_idx = graphs.anchor_nodes(config, graph)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = graphs.build_model(
            arch, variant, graph.x.shape[1], graph.num_classes, config, num_anchors=len(anchor_idx)
        )
        graphs.train_model(model, graph, anchor_idx, epochs=5, lr=0.01)
        q, _ = torch.linalg.qr(torch.randn(8, 8))
    rotated = copy.deepcopy(model)
    rotated.encoder = _Rotated(rotated.encoder, q)
    return model, rotated, graph, anchor_idx


@pytest.mark.parametrize(
    ("arch", "variant"),
    [
        ("gcn", "cosine"),
        ("gat", "cosine"),
        ("sage", "cosine"),
        ("gcn", "euclidean"),
        ("gcn", "product:mlp_sum"),  # cosine x euclidean: both invariant to rotations
        ("sage", "product:concat"),
    ],
)
def test_stitching_across_a_rotation_is_exact_for_invariant_variants(
    arch: str, variant: str
) -> None:
    model, rotated, graph, idx = _model_and_rotated_copy(arch, variant)
    assert len(idx) == 4  # karate has 4 training nodes: K = min(10, 4)
    own = graphs.stitched_logits(model, model, graph, idx)
    stitched = graphs.stitched_logits(rotated, model, graph, idx)
    assert own.shape == (34, 2)
    # the rotation really changed the embeddings
    z = model.embed(graph.x, graph.edge_index)
    assert not torch.allclose(rotated.embed(graph.x, graph.edge_index), z, atol=1e-3)
    torch.testing.assert_close(stitched, own, atol=1e-4, rtol=1e-4)
    assert torch.equal(stitched.argmax(dim=1), own.argmax(dim=1))


@pytest.mark.parametrize("variant", ["absolute", "l1", "linf"])
def test_stitching_across_a_rotation_changes_non_invariant_variants(variant: str) -> None:
    model, rotated, graph, idx = _model_and_rotated_copy("gcn", variant)
    own = graphs.stitched_logits(model, model, graph, idx)
    stitched = graphs.stitched_logits(rotated, model, graph, idx)
    assert (stitched - own).abs().max() > 1e-2


def test_stitched_logits_selects_nodes_and_restores_training_flags() -> None:
    model, rotated, graph, idx = _model_and_rotated_copy("gcn", "cosine")
    model.train()
    every = graphs.stitched_logits(rotated, model, graph, idx)
    assert model.training and not rotated.training  # flags restored, dropout was off
    test = graphs.stitched_logits(rotated, model, graph, idx, graph.test_mask)
    torch.testing.assert_close(test, every[graph.test_mask])


def test_anchors_are_training_nodes_shared_by_every_model() -> None:
    config = parse_config({**TINY, "anchors": {"num": 12, "seed": 3}})
    g = _graph("sbm", **SBM)
    idx = graphs.anchor_nodes(config, g)
    assert len(idx) == 12 and len(set(idx.tolist())) == 12
    assert bool(torch.as_tensor(g.train_mask)[idx].all())
    assert torch.equal(idx, graphs.anchor_nodes(config, g))
    capped = graphs.anchor_nodes(parse_config({**TINY, "anchors": {"num": 500}}), g)
    assert len(capped) == int(g.train_mask.sum()) == 15


def test_build_model_validates_its_arguments() -> None:
    config = parse_config(TINY)
    with pytest.raises(ValueError, match="architecture"):
        graphs.build_model("gin", "absolute", 8, 3, config)
    with pytest.raises(ValueError, match="variant"):
        graphs.build_model("gcn", "cosinus", 8, 3, config, num_anchors=4)
    with pytest.raises(ValueError, match="aggregation"):
        graphs.build_model("gcn", "product:mean", 8, 3, config, num_anchors=4)
    with pytest.raises(ValueError, match="num_anchors"):
        graphs.build_model("gcn", "cosine", 8, 3, config)
    with pytest.raises(ValueError, match="num_classes"):
        graphs.build_model("gcn", "absolute", 8, 0, config)
    model = graphs.build_model("gat", "product:concat", 8, 3, config, num_anchors=4)
    assert isinstance(model.projection, graphs.ProductProjection)
    assert model.projection.out_features == 2 * 4
    g = graphs.graph_tensors(_graph("karate"))
    with pytest.raises(ValueError, match="epochs"):
        graphs.train_model(model, g, torch.arange(4), epochs=0, lr=0.01)


# -- the run through the CLI ----------------------------------------------------------------


def test_tiny_graph_run_end_to_end_through_the_cli(tmp_path: Path) -> None:
    path = _write(tmp_path, TINY)
    out = tmp_path / "a"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    for name in ("results.csv", "config.json"):
        assert (out / name).is_file(), name
    res = _results(out / "results.csv")
    stitched = len(MODELS) * (len(MODELS) - 1)
    assert len(res) == len(VARIANTS) * (len(MODELS) ** 2 * 2 + stitched)
    assert {k[0] for k in res} == {k[1] for k in res} == set(MODELS)
    assert {k[2] for k in res} == set(VARIANTS)
    assert {k[3] for k in res} == {"accuracy", "macro_f1", "anchor_consistency"}
    consistency = [k for k in res if k[3] == "anchor_consistency"]
    assert all(k[0] != k[1] for k in consistency) and len(consistency) == len(VARIANTS) * stitched
    assert all(0.0 <= float(v) <= 1.0 for v in res.values())
    # every model classifies its own test nodes well above chance (1/3) on this easy SBM
    for variant in VARIANTS:
        for m in MODELS:
            assert float(res[(m, m, variant, "accuracy")]) > 0.6, (variant, m)

    # Cosine stitches across seeds and architectures; absolute latents do not.
    def stitched(variant: str) -> float:
        values = [float(res[(a, b, variant, "accuracy")]) for a in MODELS for b in MODELS if a != b]
        return sum(values) / len(values)

    assert stitched("cosine") > 0.8
    assert stitched("cosine") > stitched("absolute") + 0.2
    # one trained model per variant and model, stored for a restart
    assert len(list((out / "models").rglob("*.pt"))) == len(VARIANTS) * len(MODELS)
    # deterministic: a second run in another folder gives the same bytes
    other = tmp_path / "b"
    assert main(["run", str(path), "--out", str(other), "--quiet"]) == 0
    assert (other / "results.csv").read_bytes() == (out / "results.csv").read_bytes()


def test_resume_retrains_and_recomputes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(TINY)
    out = tmp_path / "run"
    first = runner.run(config, out, progress=False, report=False).read_bytes()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was retrained")

    computed: list[tuple[str, str]] = []
    real_rows = graphs._cell_rows

    def counting(dataset, variant, head, *rest):  # type: ignore[no-untyped-def]
        computed.append((variant, head))
        return real_rows(dataset, variant, head, *rest)

    monkeypatch.setattr(graphs, "train_model", no_training)
    monkeypatch.setattr(graphs, "_cell_rows", counting)
    assert runner.run(config, out, progress=False, report=False).read_bytes() == first
    assert computed == []
    # Deleting one cell recomputes that cell only, from the stored models.
    cell = out / "cells"
    victim = results.CellStore(out).path("sbm", "cosine", 1, "sage-1")
    assert victim.parent == cell and victim.is_file()
    victim.unlink()
    assert runner.run(config, out, progress=False, report=False).read_bytes() == first
    assert computed == [("cosine", "sage-1")]


def test_lost_model_files_are_retrained_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config({**TINY, "variants": {"projections": ["cosine"], "aggregations": []}})
    out = tmp_path / "run"
    first = runner.run(config, out, progress=False, report=False).read_bytes()
    for path in (out / "cells").iterdir():
        path.unlink()
    weights = sorted((out / "models").rglob("*.pt"))
    weights[0].write_bytes(b"not a checkpoint")  # unreadable: retrained
    trained: list[str] = []
    real = graphs.train_model

    def counting(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        trained.append(model.variant)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(graphs, "train_model", counting)
    assert runner.run(config, out, progress=False, report=False).read_bytes() == first
    assert len(trained) == 1


# -- config errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"graph": {"architectures": ["gin"]}}, "'graph.architectures'"),
        ({"graph": {"epochs": 0}}, "'graph.epochs'"),
        ({"graph": {"dropout": 1.0}}, "'graph.dropout'"),
        ({"graph": {"layers": 3}}, "'graph.layers'"),
        ({"datasets": [{"name": "digits"}]}, "'datasets[0].name'"),
        ({"datasets": [{"name": "sbm", "encoders": ["minilm-l6"]}]}, "'datasets[0].encoders'"),
        ({"metrics": ["mse"]}, "'metrics'"),
        ({"task": "classification"}, "'graph'"),
    ],
)
def test_bad_graph_configs_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config({**TINY, **change})


def test_builtin_graph_config_validates_and_loads_its_datasets() -> None:
    from latentbridge.experiments.config import load_config

    config = load_config("graph")
    assert config.task == "graph" and config.graph is not None
    assert [ds.name for ds in config.datasets] == ["wordnet-graph", "sbm"]
    for ds in config.datasets:
        loaded = data.load(ds.name, "full", **ds.options)
        assert isinstance(loaded, data.GraphDataset) and loaded.num_nodes > 0


def test_selection_picks_the_most_consistent_candidate_per_pair(tmp_path: Path) -> None:
    config = {**TINY, "seeds": [0], "variants": {**TINY["variants"], "selection": True}}
    out = tmp_path / "run"
    assert main(["run", str(_write(tmp_path, config)), "--out", str(out), "--quiet"]) == 0
    res = {k: float(v) for k, v in _results(out / "results.csv").items()}
    candidates = ["cosine", "product:sum"]
    models = ["gcn-0", "sage-0"]
    for head in models:
        for encoder in models:
            assert (head, encoder, "ensemble", "accuracy") in res
            if head == encoder:
                chosen = candidates[0]
            else:
                scores = [res[(head, encoder, c, "anchor_consistency")] for c in candidates]
                chosen = candidates[scores.index(max(scores))]
                selected = res[(head, encoder, "selected", "anchor_consistency")]
                assert selected == max(scores)
            for metric in ("accuracy", "macro_f1"):
                assert (
                    res[(head, encoder, "selected", metric)] == res[(head, encoder, chosen, metric)]
                )
