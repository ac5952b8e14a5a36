"""`latentbridge.analysis`: the invariance profile and `latentbridge compare` (which
transformation relates two spaces?), and spaces under an invariance class with their
similarity measures."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import latentbridge as lb
from latentbridge import analysis as an
from latentbridge.analysis import invariance_profile, sample_space
from latentbridge.cli import main
from latentbridge.io import save_embeddings
from latentbridge.normalization import ABSOLUTE, standardize_rows
from latentbridge.transformations import TRANSFORMATIONS, compose, random_transformation

PNG = b"\x89PNG\r\n\x1a\n"


def _space(n: int = 300, dim: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.5, 2.0, dim, dtype=torch.float64)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) * scales + 1.0


def _idx(n: int = 300, k: int = 60) -> np.ndarray:
    return lb.anchors.select(np.zeros((n, 1)), k, seed=0)


def test_rotation_plus_translation_is_recognised() -> None:
    x = _space()
    g = torch.Generator().manual_seed(1)
    t = compose(
        random_transformation("orthogonal", 10, generator=g),
        random_transformation("translation", 10, generator=g),
    )
    profile = invariance_profile(x, t(x), _idx())
    sim, err = profile.similarities, profile.map_errors
    assert sim["euclidean"] == pytest.approx(1.0, abs=1e-9)
    assert sim["rbf"] == pytest.approx(1.0, abs=1e-9)
    assert sim["l1"] < 0.999 and sim["linf"] < 0.999  # not invariant to rotations
    assert sim["cosine"] < 0.999  # not invariant to translations
    assert err["similarity"] == pytest.approx(0.0, abs=1e-9)
    assert err["affine"] == pytest.approx(0.0, abs=1e-9)
    assert err["orthogonal"] > 0.1  # no bias: cannot absorb the translation
    assert err["permutation"] > 0.1
    assert profile.num_anchors == 60 and profile.num_heldout == 240


def test_unit_permutation_is_recognised() -> None:
    x = _space()
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    profile = invariance_profile(x, x[:, perm], _idx(), metric="mutual_knn")
    for name in ("l1", "linf", "euclidean", "cosine", "dot"):
        assert profile.similarities[name] == pytest.approx(1.0), name
    assert profile.map_errors["permutation"] == pytest.approx(0.0, abs=1e-12)
    assert profile.map_errors["orthogonal"] == pytest.approx(0.0, abs=1e-9)


def test_anisotropic_scaling_breaks_every_projection_but_not_affine() -> None:
    x = _space()
    y = x * torch.linspace(0.2, 5.0, 10, dtype=torch.float64)
    profile = invariance_profile(x, y, _idx(), projections=("cosine", "euclidean", "l1"))
    assert set(profile.similarities) == {"absolute", "cosine", "euclidean", "l1"}
    assert all(v < 0.999 for k, v in profile.similarities.items() if k != "absolute")
    assert profile.map_errors["linear"] == pytest.approx(0.0, abs=1e-9)
    assert profile.map_errors["orthogonal"] > 0.1


def test_different_dimensions_and_markdown() -> None:
    x = _space(dim=8)
    w = torch.randn(8, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.tanh(x @ w / 3)
    profile = invariance_profile(x.numpy(), y.numpy(), _idx())
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in profile.similarities.values())
    assert all(e is not None and e >= 0 for e in profile.map_errors.values())
    table = profile.to_markdown()
    assert "| euclidean |" in table and "| affine |" in table


def test_inapplicable_estimator_is_reported_not_faked() -> None:
    x = _space(n=40, dim=30)
    profile = invariance_profile(x, x, _idx(n=40, k=20), estimators=("affine", "orthogonal"))
    assert profile.map_errors["affine"] is None
    assert "ridge" in profile.notes["affine"]
    # 20 anchors in 30 dimensions underdetermine the rotation: a real (large) error, not n/a.
    assert profile.map_errors["orthogonal"] is not None and profile.map_errors["orthogonal"] > 0.1
    assert "n/a (" in profile.to_markdown()


def test_plot_writes_a_png(tmp_path: Path) -> None:
    x = _space()
    profile = invariance_profile(x, x * 2, _idx(), projections=("cosine", "euclidean"))
    out = profile.plot(tmp_path / "figs/profile.png", title="x vs 2x")
    assert out.read_bytes()[:8] == PNG


def test_profile_errors() -> None:
    x = _space(n=50)
    with pytest.raises(ValueError, match="same samples"):
        invariance_profile(x, x[:40], [0, 1])
    with pytest.raises(ValueError, match=r"rows in \[0, 50\)"):
        invariance_profile(x, x, [0, 50])
    with pytest.raises(ValueError, match="must not repeat"):
        invariance_profile(x, x, [1, 1, 2])
    with pytest.raises(ValueError, match="at least 4 samples besides"):
        invariance_profile(x, x, np.arange(48))
    with pytest.raises(ValueError, match="metric must name"):
        invariance_profile(x, x, [0, 1, 2], metric="accuracy")
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains"):
        invariance_profile(x, bad, [0, 1, 2])


def test_compare_cli_on_npy_and_safetensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = _space(n=200).numpy().astype(np.float32)
    q = random_transformation("orthogonal", 10, generator=torch.Generator().manual_seed(4))
    y = (x @ q.weight.numpy()).astype(np.float32)
    a = save_embeddings(tmp_path / "a.npy", x)
    b = save_embeddings(tmp_path / "b.safetensors", y)
    png = tmp_path / "fig.png"
    code = main(["compare", str(a), str(b), "--anchors", "50", "--plot", str(png)])
    assert code == 0
    out = capsys.readouterr().out
    rows = dict(
        (cells[0], cells[1])
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in out.splitlines())
        if len(cells) == 2
    )
    assert float(rows["euclidean"]) == pytest.approx(1.0, abs=1e-5)
    assert float(rows["orthogonal"]) == pytest.approx(0.0, abs=1e-5)
    assert png.read_bytes()[:8] == PNG


def test_compare_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = save_embeddings(tmp_path / "a.npy", np.ones((20, 3), np.float32))
    b = save_embeddings(tmp_path / "b.npy", np.ones((10, 3), np.float32))
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(b)])
    assert exc.value.code == 2
    assert "same samples in the same order" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(tmp_path / "missing.npy")])
    assert exc.value.code == 2
    assert "no embedding file" in capsys.readouterr().err


# Per-cell absolute tolerance for the README's 4-decimal figures. The printed values differ
# between CPUs (BLAS rounding: AMD EPYC vs Intel Xeon with AVX-512), so the figures are compared
# as numbers, never as strings. Under random one-ulp (2^-23) perturbations of the float32 rotated
# copy, every figure moves by less than 3e-5, except "similarity": it moves by up to 2e-3 (20
# trials: 0.0052 to 0.0071, std 6e-4; an Intel CPU prints 0.0059 against the README's 0.0069),
# because some pixels are 0 in every anchor and the rotation the SVD picks in their null space
# is arbitrary, yet decides the held-out error. 2e-3 covers the rounding of the printed figure
# and that drift; "similarity" gets 4e-3 (about 7 std). A real change of a figure (a different
# estimator, projection or anchor draw) moves it by far more.
README_TOLERANCE = 2e-3
README_SENSITIVE = {"similarity": 4e-3}


def _markdown_tables(lines: list[str]) -> list[list[list[str]]]:
    """The markdown tables among ``lines``: rows of stripped cells, separator rows dropped."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _cell(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # e.g. "n/a (reason)": compared exactly


def test_readme_tables_are_compared_as_numbers() -> None:
    """The comparison below fails on a changed figure, label or header (negative controls)."""
    shown = ["| space | m |", "|---|---|", "| a | 0.5000 |", "", "| map | e |", "| b | n/a (x) |"]
    tables = _markdown_tables(shown)
    assert tables == [[["space", "m"], ["a", "0.5000"]], [["map", "e"], ["b", "n/a (x)"]]]

    def altered(old: str, new: str) -> list[list[list[str]]]:
        return _markdown_tables([line.replace(old, new) for line in shown])

    _assert_tables_match(tables, altered("0.5000", "0.5012"))  # within the tolerance
    for old, new in (("0.5000", "0.5100"), ("| a |", "| c |"), ("space", "s"), ("n/a (x)", "0")):
        with pytest.raises(AssertionError):
            _assert_tables_match(tables, altered(old, new))


def _assert_tables_match(shown: list[list[list[str]]], printed: list[list[list[str]]]) -> None:
    assert len(printed) == len(shown)
    for table_shown, table_printed in zip(shown, printed, strict=True):
        assert table_printed[0] == table_shown[0]  # the header, exactly
        assert [row[0] for row in table_printed] == [row[0] for row in table_shown]  # labels
        for row_shown, row_printed in zip(table_shown[1:], table_printed[1:], strict=True):
            label = row_shown[0]
            tolerance = README_SENSITIVE.get(label, README_TOLERANCE)
            cells = zip(row_shown[1:], row_printed[1:], strict=True)  # same number of cells
            for want, got in ((_cell(a), _cell(b)) for a, b in cells):
                if isinstance(want, float) and isinstance(got, float):
                    assert got == pytest.approx(want, abs=tolerance), label
                else:
                    assert got == want, label


def test_readme_compare_example_is_what_the_command_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's `latentbridge compare` figures are reproduced by its command."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("digits_pair", root / "examples/digits_pair.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(tmp_path)
    assert (
        main(["compare", str(tmp_path / "digits.npy"), str(tmp_path / "digits_rotated.npy")]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    # conftest registers test_* projections, which the README's run did not have
    printed = [line for line in out if not line.startswith("| test_")]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Comparing latent spaces")[1].split("\n## ")[0]
    shown = section.split("printed (")[1].splitlines()
    tables = _markdown_tables(shown)
    assert len(tables) == 2 and len(tables[0]) > 5 and len(tables[1]) == 6  # both were parsed
    _assert_tables_match(tables, _markdown_tables(printed))


# --------------------------------------------------------------------------------------------
# Spaces under an invariance class: represent, class_invariances, and their similarity


def _points(seed: int, n: int = 80, k: int = 16, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples and anchors of one generic space (no symmetry that hides an invariance)."""
    points = sample_space(n + k, dim, generator=torch.Generator().manual_seed(seed))
    return points[:n], points[n:]


RELATIVE_CLASSES = ["product", *lb.projections.available()]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(("name", "norm"), list(itertools.product(RELATIVE_CLASSES, ABSOLUTE)))
def test_declared_invariances_give_one_and_the_others_do_not(name: str, norm: str) -> None:
    """A class invariant (up to a positive factor) to T compares to its T-image with every
    measure exactly 1; for any other T the structural measures drop clearly below 1."""
    x, anchors = _points(0)
    invariant = an.class_invariances(name, normalization=norm)
    before = an.represent(x, anchors, name, normalization=norm)
    for kind in TRANSFORMATIONS:
        t = random_transformation(kind, x.shape[1], generator=torch.Generator().manual_seed(7))
        after = an.represent(t(x), t(anchors), name, normalization=norm)
        values = an.similarity(before, after)
        assert set(values) == set(an.SIMILARITY_MEASURES)
        if kind in invariant:
            for measure, value in values.items():
                assert value == pytest.approx(1.0, abs=1e-6), (name, norm, kind, measure)
        else:
            for measure in ("linear_cka", "rbf_cka", "distance_pearson"):
                value = values[measure]
                assert value is not None and value < 1 - 1e-3, (name, norm, kind, measure, value)
            assert values["mean_cosine"] is not None and values["mean_cosine"] < 1 - 1e-6


def test_class_invariances_follow_the_registry() -> None:
    get = lb.projections.get
    for name in lb.projections.available():
        assert an.class_invariances(name) == get(name).invariances | get(name).scaled_by
    assert an.class_invariances("cosine") >= {"orthogonal", "isotropic_scaling"}
    assert "orthogonal" not in an.class_invariances("l1")
    assert "translation" not in an.class_invariances("cosine")
    # The product is invariant to what all its subspaces share.
    assert "orthogonal" in an.class_invariances("product", product_projections=["dot", "cosine"])
    assert "orthogonal" not in an.class_invariances("product", product_projections=["cosine", "l1"])
    assert an.class_invariances("absolute") == {"isotropic_scaling"}
    assert an.representation_classes() == ["absolute", "product", *lb.projections.available()]


@pytest.mark.parametrize("norm", list(ABSOLUTE))
def test_the_product_class_is_the_library_product(norm: str) -> None:
    """Its invariances are the module's own, and those every subspace has up to a factor."""
    names = ("cosine", "euclidean", "l1", "linf")
    module = lb.ProductProjection(names, "concat", 16, normalization=norm)
    assert an.class_invariances("product", normalization=norm) == module.invariances
    shared = frozenset.intersection(*(an.class_invariances(p, normalization=norm) for p in names))
    assert an.class_invariances("product", normalization=norm) == shared


def test_absolute_latents_under_a_rotation() -> None:
    """The latents are not invariant to a rotation, but CKA and distances are blind to it."""
    x, anchors = _points(1)
    q = random_transformation("orthogonal", x.shape[1], generator=torch.Generator().manual_seed(3))
    values = an.similarity(an.represent(x, anchors, "absolute"), q(x))
    for measure in ("linear_cka", "rbf_cka", "distance_pearson"):
        assert values[measure] == pytest.approx(1.0, abs=1e-9)
    assert values["mean_cosine"] is not None and values["mean_cosine"] < 0.99


def test_float32_invariance_holds_to_1e6() -> None:
    x, anchors = _points(2, n=200, k=32, dim=16)
    x, anchors = x.float(), anchors.float()
    q = random_transformation("orthogonal", 16, generator=torch.Generator().manual_seed(4))
    rotation_invariant = ["cosine", "euclidean", "dot"]  # the product of these is too
    for name in (*rotation_invariant, "product"):
        a = an.represent(x, anchors, name, product_projections=rotation_invariant)
        b = an.represent(q(x), q(anchors), name, product_projections=rotation_invariant)
        assert a.dtype == torch.float32
        for measure, value in an.similarity(a, b).items():
            assert value == pytest.approx(1.0, abs=1e-6), (name, measure)


def test_product_closed_form() -> None:
    """Each block is the subspace standardised per sample across the anchors (LayerNorm at
    initialisation): row mean 0 and population variance 1, i.e. a row norm of sqrt(K)."""
    x, anchors = _points(3)
    names = ["cosine", "l1"]
    product = an.represent(x, anchors, "product", product_projections=names)
    k = anchors.shape[0]
    assert product.shape == (x.shape[0], 2 * k)
    assert product.dtype == torch.float64
    module = lb.ProductProjection(names, "concat", k).double().fit(anchors)
    with torch.no_grad():
        assert torch.allclose(product, module(x), rtol=0, atol=1e-12)
    for i, p in enumerate(names):
        block = product[:, i * k : (i + 1) * k]
        relative = lb.relative_projection(x, anchors, p)
        assert torch.allclose(block, standardize_rows(relative), rtol=0, atol=1e-12)
        standardized = lb.relative_projection(x, anchors, p, relative_normalization="standardize")
        assert torch.allclose(block, standardized, rtol=0, atol=1e-12)
        by_hand = (relative - relative.mean(dim=1, keepdim=True)) / relative.std(
            dim=1, unbiased=False, keepdim=True
        )
        assert torch.allclose(block, by_hand, rtol=0, atol=1e-12)
        assert torch.allclose(block.mean(dim=1), torch.zeros(x.shape[0], dtype=x.dtype), atol=1e-12)
        norms = torch.linalg.vector_norm(block, dim=1)
        assert torch.allclose(norms, torch.full_like(norms, k**0.5), rtol=1e-12)
    # A latent with every dot product 0 (the origin) carries no information: its row stays 0.
    zero = torch.cat([torch.zeros(1, x.shape[1], dtype=x.dtype), x[:3]])
    assert torch.equal(
        an.represent(zero, anchors, "product", product_projections=["dot"])[0],
        torch.zeros(k, dtype=x.dtype),
    )


def test_a_sample_is_represented_alone() -> None:
    """No batch statistic: a sample's representation is the same in any batch (a column
    standardisation over the batch would fail this: the negative control)."""
    x, anchors = _points(4)
    for name in ("product", "cosine", "absolute"):
        whole = an.represent(x, anchors, name)
        assert torch.allclose(an.represent(x[:10], anchors, name), whole[:10], rtol=0, atol=1e-12)
    relative = lb.relative_projection(x, anchors, "l1")
    centred = relative - relative.mean(dim=0)
    centred_part = relative[:10] - relative[:10].mean(dim=0)
    assert not torch.allclose(centred_part, centred[:10], atol=1e-3)


def test_represent_dtypes_devices_and_gradients() -> None:
    x, anchors = _points(5)
    mixed = an.represent(x.float(), anchors, "product")
    assert mixed.dtype == torch.float64  # the promoted dtype
    half = an.represent(x.half(), anchors.half(), "product")
    assert half.dtype == torch.float16  # computed in float32, returned as given
    reference = an.represent(x.half().float(), anchors.half().float(), "product")
    assert torch.allclose(half.float(), reference, atol=1e-2)
    latents = x.clone().requires_grad_(True)
    an.represent(latents, anchors, "product").square().sum().backward()
    assert latents.grad is not None and bool(latents.grad.abs().sum() > 0)
    from_numpy = an.represent(x.numpy(), anchors.numpy(), "product")
    assert torch.equal(from_numpy, an.represent(x, anchors, "product"))


# Measures against independent computations


def _numpy_cka(kx: np.ndarray, ky: np.ndarray) -> float:
    n = kx.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    a, b = h @ kx @ h, h @ ky @ h
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def test_measures_match_independent_computations() -> None:
    from scipy.spatial.distance import pdist, squareform

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7))
    y = x @ rng.normal(size=(7, 5)) + 0.5 * rng.normal(size=(60, 5))
    z = rng.normal(size=(60, 7)) + x
    for a, b in ((x, y), (x, z)):
        values = an.similarity(a, b)
        dx, dy = pdist(a), pdist(b)
        assert values["distance_pearson"] == pytest.approx(np.corrcoef(dx, dy)[0, 1], abs=1e-12)
        assert values["linear_cka"] == pytest.approx(_numpy_cka(a @ a.T, b @ b.T), abs=1e-12)
        gx = np.exp(-(squareform(dx) ** 2) / (2 * np.median(dx) ** 2))
        gy = np.exp(-(squareform(dy) ** 2) / (2 * np.median(dy) ** 2))
        assert values["rbf_cka"] == pytest.approx(_numpy_cka(gx, gy), abs=1e-12)
        # ... and the library's own measures
        assert values["linear_cka"] == pytest.approx(lb.metrics.linear_cka(a, b), abs=1e-12)
        assert values["rbf_cka"] == pytest.approx(lb.metrics.rbf_cka(a, b), abs=1e-12)
        assert values["distance_pearson"] == pytest.approx(
            lb.metrics.distance_correlation(a, b), abs=1e-12
        )
    assert an.similarity(x, y)["mean_cosine"] is None  # different widths: not applicable
    cos = np.sum(x * z, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(z, axis=1)
    assert an.similarity(x, z)["mean_cosine"] == pytest.approx(cos.mean(), abs=1e-12)
    assert an.similarity(x, z, ["linear_cka"]) == {
        "linear_cka": pytest.approx(_numpy_cka(x @ x.T, z @ z.T))
    }


def test_measures_are_symmetric_and_prepared_spaces_are_reused() -> None:
    rng = np.random.default_rng(1)
    a = an.PreparedSpace(rng.normal(size=(30, 4)), an.SIMILARITY_MEASURES, "a")
    b = an.PreparedSpace(rng.normal(size=(30, 4)), an.SIMILARITY_MEASURES, "b")
    assert an.compare(a, b) == an.compare(b, a)
    assert an.compare(a, a) == pytest.approx({m: 1.0 for m in an.SIMILARITY_MEASURES})
    assert (a.num_samples, a.width) == (30, 4)
    only = an.PreparedSpace(rng.normal(size=(30, 4)), ["mean_cosine"], "c")
    assert only.linear is None and only.distances is None and only.rbf is None


def test_measures_are_blind_to_a_positive_factor_and_mean_cosine_to_no_shift() -> None:
    x, _ = _points(6)
    y = x @ torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=x.dtype) + x
    base = an.similarity(x, y)
    assert an.similarity(x, 3.0 * y) == pytest.approx(base, abs=1e-12)
    shifted = an.similarity(x, y + 5.0)
    for measure in ("linear_cka", "rbf_cka", "distance_pearson"):
        assert shifted[measure] == pytest.approx(base[measure], abs=1e-12)
    assert base["mean_cosine"] is not None and shifted["mean_cosine"] is not None
    assert abs(shifted["mean_cosine"] - base["mean_cosine"]) > 1e-3


def test_bad_arguments_are_named() -> None:
    x, anchors = _points(4)
    with pytest.raises(ValueError, match="name must be one of"):
        an.represent(x, anchors, "cosinus")
    with pytest.raises(ValueError, match="product_projections"):
        an.represent(x, anchors, "product", product_projections=[])
    with pytest.raises(ValueError, match="product_projections must hold names"):
        an.represent(x, anchors, "product", product_projections=["cosine", "cosinus"])
    with pytest.raises(TypeError, match="product_projections must be a sequence"):
        an.represent(x, anchors, "product", product_projections="cosine")
    with pytest.raises(ValueError, match="normalization"):
        an.represent(x, anchors, "cosine", normalization="zscore")
    with pytest.raises(ValueError, match="normalization"):
        an.class_invariances("product", normalization="zscore")
    with pytest.raises(ValueError, match="name must be one of"):
        an.class_invariances("cosinus")
    with pytest.raises(ValueError, match="anchors"):
        an.represent(x, anchors[:, :3], "product")
    with pytest.raises(ValueError, match="at least one anchor"):
        an.represent(x, anchors[:0], "product")
    bad = x.clone()
    bad[1, 2] = float("nan")
    for name in ("absolute", "cosine", "product"):
        with pytest.raises(ValueError, match="NaN"):
            an.represent(bad, anchors, name)
    with pytest.raises(ValueError, match="measures"):
        an.similarity(x, x, ["pearson"])
    with pytest.raises(ValueError, match="measures must be a sequence"):
        an.similarity(x, x, "linear_cka")
    with pytest.raises(ValueError, match="at least 3 samples"):
        an.similarity(x[:2], x[:2])
    with pytest.raises(ValueError, match="same samples"):
        an.similarity(x, x[:10])
    with pytest.raises(ValueError, match="zero variance"):
        an.similarity(torch.ones(5, 2), x[:5])
    with pytest.raises(ValueError, match="all pairwise distances of x are equal"):
        an.similarity(torch.eye(4, dtype=torch.float64), x[:4])
    limit = lb.metrics.DISTANCE_CORRELATION_MAX_N
    with pytest.raises(ValueError, match=f"at most {limit}"):
        an.PreparedSpace(torch.zeros(limit + 1, 1), ["linear_cka"], "big")
    with pytest.raises(ValueError, match="at least one feature"):
        an.PreparedSpace(torch.zeros(5, 0), ["linear_cka"], "empty")
    a = an.PreparedSpace(x, ["linear_cka"], "a")
    with pytest.raises(ValueError, match="not prepared for the measure 'mean_cosine'"):
        an.compare(a, a, ["mean_cosine"])
