"""Packaging promises: a light core, nothing done at import, typed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import latentbridge

HEAVY = (
    "scipy",
    "sklearn",
    "pandas",
    "matplotlib",
    "transformers",
    "onnxruntime",
    "torch_geometric",
    "sentence_transformers",
    "safetensors",
    "yaml",
)


def test_import_loads_only_the_core_and_writes_nothing(tmp_path: Path) -> None:
    loaded = "{m.split('.')[0] for m in sys.modules}"
    code = f"import sys, json, latentbridge; print(json.dumps(sorted({loaded} & {set(HEAVY)!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []
    assert list(tmp_path.iterdir()) == []


def test_typed_marker_ships_with_the_package() -> None:
    assert (Path(latentbridge.__file__).parent / "py.typed").is_file()


def test_public_api() -> None:
    for name in latentbridge.__all__:
        assert hasattr(latentbridge, name), name
    assert callable(latentbridge.relative_projection)
    assert latentbridge.TRANSFORMATIONS == (
        "orthogonal",
        "isotropic_scaling",
        "translation",
        "permutation",
        "sign_flip",
        "diagonal_scaling",
        "affine",
    )
