"""The invariance profile and `latentbridge compare`: which transformation relates two spaces?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import latentbridge as lb
from latentbridge.analysis import invariance_profile
from latentbridge.cli import main
from latentbridge.io import save_embeddings
from latentbridge.transformations import compose, random_transformation

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
