"""The ``reconstruction`` task: autoencoders with the relative layer inside, stitched i -> j."""

from __future__ import annotations

import copy
import csv
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from latentbridge.cli import main
from latentbridge.experiments.config import ConfigError, parse_config
from latentbridge.experiments.tasks import reconstruction
from latentbridge.experiments.tasks.reconstruction import build_model, reconstruct, train_model

TINY = {
    "name": "tiny-reconstruction",
    "task": "reconstruction",
    "datasets": [{"name": "digits"}],
    "anchors": {"num": 12},
    "variants": {
        "projections": ["cosine"],
        "product_projections": ["cosine", "euclidean"],
        "aggregations": ["mlp_sum"],
    },
    "reconstruction": {
        "kinds": ["ae", "vae"],
        "hidden": 4,
        "latent_dim": 6,
        "epochs": 1,
        "batch_size": 256,
        "grid_images": 4,
    },
    "seeds": [0, 1],
    "metrics": ["mse", "psnr"],
}
MODELS = ["ae-0", "ae-1", "vae-0", "vae-1"]
VARIANTS = ["absolute", "cosine", "product:mlp_sum"]


def _rows(path: Path) -> dict[tuple[str, str, str, str], str]:
    with path.open() as handle:
        return {
            (r["source"], r["target"], r["variant"], r["metric"]): r["value"]
            for r in csv.DictReader(handle)
        }


def _cli_run(config: dict, folder: Path, out: Path) -> int:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["run", str(path), "--out", str(out), "--quiet"])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Iterator[Path]:
    """One run of the tiny config through the CLI, shared (read-only) by the tests."""
    root = tmp_path_factory.mktemp("reconstruction")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENTBRIDGE_CACHE", str(root / "cache"))
        assert _cli_run(TINY, root, root / "run") == 0
    yield root / "run"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))


# -- invariance: no training luck involved ----------------------------------------------------


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from latentbridge import data

    digits = data.load("digits", "train")
    assert isinstance(digits, data.Dataset)
    images = torch.from_numpy(digits.inputs).float().div(255).unsqueeze(1)
    return images[:300], images[300:312]


@pytest.mark.parametrize(
    ("variant", "invariant"),
    [
        ("cosine", True),
        ("euclidean", True),
        ("product:mlp_sum", True),  # cosine x euclidean: both invariant to rotations
        ("absolute", False),
        ("l1", False),
    ],
)
def test_stitching_across_an_orthogonal_map_of_the_latent(variant: str, invariant: bool) -> None:
    config = parse_config(TINY)
    images, anchors = _digits()
    first = train_model("ae", variant, images, anchors, config, seed=0)
    # The second model's encoder is the first one's followed by a fixed random rotation.
    dim = config.reconstruction.latent_dim if config.reconstruction else 0
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(3)))
    rotate = nn.Linear(dim, dim, bias=False)
    rotate.weight.data.copy_(q)
    second = copy.deepcopy(first)
    second.encoder = nn.Sequential(copy.deepcopy(first.encoder), rotate)
    test = images[:64]
    reference = reconstruct(first, first, test, anchors)
    stitched = reconstruct(second, first, test, anchors)
    assert reference.shape == test.shape
    if invariant:
        torch.testing.assert_close(stitched, reference, atol=1e-5, rtol=1e-4)
    else:
        assert (stitched - reference).abs().max() > 1e-2


def test_models_build_for_any_image_size_and_train_deterministically() -> None:
    config = parse_config(TINY)
    for shape in [(8, 8), (1, 28, 28), (3, 7, 9), (1, 1, 1)]:
        for kind in ("ae", "vae"):
            model = build_model(kind, "cosine", shape, config, num_anchors=5)
            x = torch.rand(3, *((1, *shape) if len(shape) == 2 else shape))
            out, mean, logvar = model(x, torch.rand(5, *x.shape[1:]))
            assert out.shape == x.shape and mean.shape == (3, 6)
            assert (logvar is None) == (kind == "ae")
            assert float(out.detach().min()) >= 0.0 and float(out.detach().max()) <= 1.0
    images, anchors = _digits()
    state = torch.get_rng_state()
    a = train_model("vae", "product:mlp_sum", images, anchors, config, seed=4)
    b = train_model("vae", "product:mlp_sum", images, anchors, config, seed=4)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_bad_arguments_raise_naming_them() -> None:
    config = parse_config(TINY)
    with pytest.raises(ValueError, match="kind"):
        build_model("gan", "cosine", (8, 8), config)
    with pytest.raises(ValueError, match="variant"):
        build_model("ae", "translation:affine", (8, 8), config)
    with pytest.raises(ValueError, match="image_shape"):
        build_model("ae", "cosine", (8,), config)
    with pytest.raises(ValueError, match="num_anchors"):
        build_model("ae", "cosine", (8, 8), config, num_anchors=0)
    model = build_model("ae", "cosine", (8, 8), config, num_anchors=4)
    images = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="anchor_images"):
        reconstruct(model, model, images)
    with pytest.raises(ValueError, match="anchor_images"):
        reconstruct(model, model, images, torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="images"):
        reconstruct(model, model, torch.rand(2, 8, 8), torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match="seed"):
        train_model("ae", "cosine", images, torch.rand(4, 1, 8, 8), config, seed=-1)


# -- the run ----------------------------------------------------------------------------------


def test_tiny_run_end_to_end_through_the_cli(finished: Path) -> None:
    rows = _rows(finished / "results.csv")
    stitched = len(MODELS) * (len(MODELS) - 1)
    assert len(rows) == len(VARIANTS) * (len(MODELS) * len(MODELS) * 2 + stitched)
    for variant in VARIANTS:
        for decoder in MODELS:
            for encoder in MODELS:
                consistency = rows.get((decoder, encoder, variant, "anchor_consistency"))
                assert (consistency is None) == (decoder == encoder)
                assert consistency is None or 0.0 < float(consistency) <= 1.0
                mse = float(rows[(decoder, encoder, variant, "mse")])
                psnr = float(rows[(decoder, encoder, variant, "psnr")])
                assert math.isfinite(mse) and math.isfinite(psnr) and 0 < mse < 1
                assert psnr == pytest.approx(10 * math.log10(1 / mse), abs=1e-3)
    grids = sorted(p.name for p in (finished / "grids").iterdir())
    assert grids == [
        "digits__absolute.png",
        "digits__cosine.png",
        "digits__product-mlp_sum.png",
    ]
    assert all((finished / "grids" / g).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for g in grids)
    with (finished / "results.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["dataset"] == "digits" and first["seed"] == "0"  # ae-0's seed


def test_runs_are_deterministic(finished: Path, tmp_path: Path) -> None:
    assert _cli_run(TINY, tmp_path, tmp_path / "again") == 0
    assert (tmp_path / "again" / "results.csv").read_bytes() == (
        finished / "results.csv"
    ).read_bytes()


def test_resume_trains_and_recomputes_nothing_that_finished(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = (out / "results.csv").read_bytes()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stored model was retrained")

    calls: list[tuple[str, str]] = []
    real = reconstruction._cell_rows

    def counting(sides, target, ds, variant, decoder, config):  # type: ignore[no-untyped-def]
        calls.append((variant, decoder))
        return real(sides, target, ds, variant, decoder, config)

    loads: list[str] = []
    real_load = reconstruction._load_images

    def counting_loads(ds, split):  # type: ignore[no-untyped-def]
        loads.append(split)
        return real_load(ds, split)

    monkeypatch.setattr(reconstruction, "train_model", no_training)
    monkeypatch.setattr(reconstruction, "_cell_rows", counting)
    monkeypatch.setattr(reconstruction, "_load_images", counting_loads)
    assert _cli_run(TINY, tmp_path, out) == 0
    assert calls == [] and loads == []  # a finished run does not even load the images
    assert (out / "results.csv").read_bytes() == before
    # Deleting one cell (and one grid) recomputes that cell only, from the stored weights.
    cells = sorted((out / "cells").glob("digits__cosine__s1__*.csv"))
    assert len(cells) == 2  # ae-1 and vae-1
    cells[0].unlink()
    (out / "grids" / "digits__absolute.png").unlink()
    assert _cli_run(TINY, tmp_path, out) == 0
    assert len(calls) == 1 and calls[0][0] == "cosine"
    assert (out / "results.csv").read_bytes() == before
    assert (out / "grids" / "digits__absolute.png").is_file()


# -- bad configs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"reconstruction": {"kinds": ["gan"]}}, "'reconstruction.kinds'"),
        ({"reconstruction": {"epochs": 0}}, "'reconstruction.epochs'"),
        ({"reconstruction": {"colour": 1}}, "'reconstruction.colour'"),
        ({"datasets": [{"name": "trec"}]}, "'datasets[0].name'"),
        ({"datasets": [{"name": "cora"}]}, "'datasets[0].name'"),
        ({"datasets": [{"name": "digits", "encoders": ["x"]}]}, "'datasets[0].encoders'"),
        ({"variants": {"translation": ["affine"]}}, "'variants.translation'"),
        ({"metrics": ["accuracy"]}, "'metrics'"),
        ({"task": "classification"}, "'reconstruction'"),
    ],
)
def test_bad_configs_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config({**TINY, **change})


def test_the_builtin_config_validates() -> None:
    from latentbridge.experiments.config import load_config

    config = load_config("reconstruction")
    assert config.task == "reconstruction" and config.reconstruction is not None
    assert [d.name for d in config.datasets] == ["fashion-mnist", "mnist-5k"]
    assert config.reconstruction.kinds == ("ae", "vae") and config.seeds == (0, 1)


def test_selection_over_the_trained_autoencoders(tmp_path: Path) -> None:
    config = {**TINY, "variants": {**TINY["variants"], "selection": True}}
    assert _cli_run(config, tmp_path, tmp_path / "run") == 0
    rows = {k: float(v) for k, v in _rows(tmp_path / "run" / "results.csv").items()}
    candidates = ["cosine", "product:mlp_sum"]
    for decoder in MODELS:
        for encoder in MODELS:
            mses = [rows[(decoder, encoder, c, "mse")] for c in candidates]
            if decoder == encoder:
                chosen = candidates[0]
            else:
                scores = [rows[(decoder, encoder, c, "anchor_consistency")] for c in candidates]
                chosen = candidates[scores.index(max(scores))]
            assert (
                rows[(decoder, encoder, "selected", "mse")]
                == rows[(decoder, encoder, chosen, "mse")]
            )
            # The MSE is convex: a weighted mean of reconstructions is no worse than the worst.
            assert rows[(decoder, encoder, "ensemble", "mse")] <= max(mses) + 1e-6
    assert not (tmp_path / "run" / "grids" / "digits__selected.png").exists()


def test_an_undefined_anchor_agreement_is_not_applicable() -> None:
    one = torch.rand(1, 1, 8, 8)
    assert reconstruction._agreement(one, one + 0.1) is None  # a single anchor
    flat = torch.zeros(3, 1, 8, 8)
    assert reconstruction._agreement(flat, flat) is None  # both sides constant
    assert reconstruction._selection_agreement(flat, flat) == 0.0
    images = torch.rand(4, 1, 8, 8)
    assert reconstruction._agreement(images, images) == pytest.approx(1.0)
