"""The experiments' building blocks: typed variants, result rows, the training loop, the runner."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import latentbridge as lb
import latentbridge.experiments.report
from latentbridge.experiments import results, runner, training, variants
from latentbridge.experiments.config import parse_config
from latentbridge.experiments.tasks import TASKS

from .test_config import TINY

# --------------------------------------------------------------------------- variants

NAMES = ["absolute", "cosine", "linf", "product:mlp_sum", "product:concat", "translation:affine"]


@pytest.mark.parametrize("name", NAMES)
def test_a_variant_name_parses_and_writes_back(name: str) -> None:
    variant = variants.parse(name)
    assert variant.name == name
    assert variants.parse(variant.name) == variant


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cosinus", "variant must be 'absolute', a projection name"),
        ("product:mean", "the aggregation must be one of"),
        ("translation:rigid", "the estimator must be one of"),
        ("product:", "the aggregation must be one of"),
    ],
)
def test_unknown_variants_are_clear_errors(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        variants.parse(name)
    with pytest.raises(TypeError, match="variant must be a name"):
        variants.parse(3)  # type: ignore[arg-type]


def test_from_config_keeps_the_report_order() -> None:
    config = parse_config(
        {
            **TINY,
            "variants": {
                "projections": ["l1", "cosine"],
                "aggregations": ["sum", "mlp_sum"],
                "translation": ["orthogonal"],
            },
        }
    )
    names = [v.name for v in variants.from_config(config.variants)]
    assert names == ["absolute", "l1", "cosine", "product:sum", "product:mlp_sum",
                     "translation:orthogonal"]  # fmt: skip


def test_build_layer_returns_the_librarys_modules() -> None:
    relative = variants.build_layer(variants.Relative("euclidean"), 5, normalization="center")
    assert isinstance(relative, lb.RelativeProjection)
    assert (relative.projection, relative.normalization) == ("euclidean", "center")
    torch.manual_seed(0)
    product = variants.build_layer(
        variants.Product("mlp_sum"), 5, product_projections=("cosine", "l1")
    )
    assert isinstance(product, lb.ProductProjection)
    assert product.projections == ("cosine", "l1") and product.num_anchors == 5
    torch.manual_seed(0)
    same = lb.ProductProjection(("cosine", "l1"), "mlp_sum", 5)
    for a, b in zip(product.parameters(), same.parameters(), strict=True):
        assert torch.equal(a, b)  # the same initialisation as the module built directly
    assert variants.build_layer(variants.Absolute(), 5) is None
    assert variants.build_layer(variants.Translation("affine"), 5) is None
    assert variants.needs_anchors(variants.Product("sum"))
    assert not variants.needs_anchors(variants.Translation("affine"))


def test_product_aggregation_reads_names_tolerantly() -> None:
    assert variants.product_aggregation("product:concat") == "concat"
    assert variants.product_aggregation("product") is None  # the similarity study's class
    assert variants.product_aggregation("cosine") is None


# --------------------------------------------------------------------------- results


def test_values_are_written_with_six_decimals_and_read_back(tmp_path: Path) -> None:
    rows = [
        results.ResultRow("d", "a", "b", "cosine", 0, "accuracy", 0.123456789),
        results.ResultRow("d", "a", "a", "cosine", 0, "accuracy", None),
        results.ResultRow("d", "b", "a", "cosine", 1, "accuracy", -1e-9),
    ]
    path = tmp_path / "results.csv"
    path.write_text(results.csv_text(rows), encoding="utf-8")
    back = results.read_results(path)
    assert [r.value for r in back] == [0.123457, None, 0.0]
    assert path.read_text().splitlines()[3].endswith(",0.000000")  # no negative zero
    assert [r.stitched for r in back] == [True, False, True]
    assert results.format_value(None) == ""


def test_files_with_the_older_column_names_are_read(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "train_encoder", "test_encoder", "variant", "seed", "metric",
                         "value"])  # fmt: skip
        writer.writerow(["d", "a", "b", "cosine", "0", "accuracy", "0.5"])
    (row,) = results.read_results(path)
    assert (row.source, row.target, row.value) == ("a", "b", 0.5)


def test_values_outside_their_metric_range_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    row = results.ResultRow("d", "a", "b", "cosine", 0, "accuracy", 1.5)
    path.write_text(results.csv_text([row]), encoding="utf-8")
    assert results.read_results(path)[0].value == 1.5  # no range given: any finite number
    with pytest.raises(ValueError, match=r"line 2: value '1.500000' of accuracy"):
        results.read_results(path, {"accuracy": (0.0, 1.0)})


# --------------------------------------------------------------------------- training


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def _train(seed: int, batch_size: int | None) -> nn.Module:
    x, y = _data()
    with training.seeded(seed):
        model = nn.Linear(4, 2)
    loss_fn = nn.CrossEntropyLoss()

    def loss(batch: torch.Tensor | None) -> torch.Tensor:
        xb, yb = (x, y) if batch is None else (x[batch], y[batch])
        return loss_fn(model(xb), yb)

    generator = torch.Generator().manual_seed(seed)
    return training.fit(model, loss, num_samples=64, epochs=5, lr=0.05, batch_size=batch_size,
                        generator=generator)  # fmt: skip


def test_fit_is_deterministic_and_learns() -> None:
    a, b, c = _train(0, 16), _train(0, 16), _train(1, 16)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    assert not a.training  # returned in eval mode
    x, y = _data()
    assert float((a(x).argmax(1) == y).float().mean()) > 0.8


def test_fit_full_batch_and_the_end_of_epoch_hook() -> None:
    x, y = _data()
    model = nn.Linear(4, 2)
    seen: list[tuple[int, bool]] = []
    batches: list[object] = []

    def loss(batch: torch.Tensor | None) -> torch.Tensor:
        batches.append(batch)
        return nn.functional.cross_entropy(model(x), y)

    def hook(epoch: int) -> None:
        seen.append((epoch, model.training))

    training.fit(model, loss, num_samples=64, epochs=3, lr=0.1, end_of_epoch=hook)
    assert batches == [None, None, None]  # one full batch per epoch
    assert seen == [(0, True), (1, True), (2, True)]


def test_seeded_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with training.seeded(7):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with training.seeded(7):
        assert torch.equal(torch.rand(3), inside)


# --------------------------------------------------------------------------- runner


def test_the_runner_knows_every_task_of_the_schema() -> None:
    assert set(runner.TASKS) == set(TASKS)
    for task in TASKS.values():
        for metric in task.metrics:
            assert metric.low < metric.high and not math.isnan(metric.low), metric
            assert metric.title and metric.name in lb.experiments.report.METRICS
        assert len(task.roles) == 2 and all(task.roles)


def test_a_resumed_run_with_every_cell_finished_loads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentbridge.experiments import spaces

    config = parse_config({**TINY, "variants": {**TINY["variants"], "aggregations": []}})
    out = tmp_path / "run"
    first = runner.run(config, out, progress=False, report=False).read_bytes()

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run loaded its data")

    monkeypatch.setattr(spaces, "_synthetic_spaces", no_loading)
    assert runner.run(config, out, progress=False, report=False).read_bytes() == first
