"""Write two embedding files for `latentbridge compare`: scikit-learn's digits (1,797 x 64
pixels) and a copy under a random rotation plus a translation of 5 in every coordinate.

    python examples/digits_pair.py OUT_DIR   # OUT_DIR/digits.npy, OUT_DIR/digits_rotated.npy
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from latentbridge.io import save_embeddings


def main(out: Path) -> None:
    x = load_digits().data.astype(np.float32)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 64)))
    save_embeddings(out / "digits.npy", x)
    save_embeddings(out / "digits_rotated.npy", (x @ q + 5).astype(np.float32))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
