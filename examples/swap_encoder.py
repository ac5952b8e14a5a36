"""Swap the embedding model under a trained classifier, without retraining it.

A :class:`latentbridge.StitchingClassifier` is fitted on ``minilm-l6``'s latents of WordNet
definitions (10 classes x 200, the ``quick`` config's subset) and stitched to ``mpnet-base``
through 256 shared anchors; it is scored on each encoder's test latents, next to a classifier
trained on ``mpnet-base`` itself and chance. The latents are encoded once and cached.

    python examples/swap_encoder.py
"""

from __future__ import annotations

import numpy as np

import latentbridge as lb

OPTIONS = {"num_classes": 10, "per_class": 200, "seed": 0}


def latents(encoder: str, split: str) -> np.ndarray:
    return lb.encode("wordnet", encoder, split, dataset_options=OPTIONS, progress=False)


def main() -> None:
    y = lb.data.load("wordnet", "train", **OPTIONS).labels
    y_test = lb.data.load("wordnet", "test", **OPTIONS).labels
    za, za_test = latents("minilm-l6", "train"), latents("minilm-l6", "test")
    zb, zb_test = latents("mpnet-base", "train"), latents("mpnet-base", "test")
    idx = lb.anchors.select(za, k=256, strategy="uniform", seed=0)  # the same samples in A and B
    clf = lb.StitchingClassifier(seed=0).fit(za, y, anchors=za[idx])
    stitched = clf.with_anchors(zb[idx])
    own = lb.StitchingClassifier(seed=0).fit(zb, y, anchors=zb[idx])
    print(f"trained on minilm-l6, tested on minilm-l6:       {clf.score(za_test, y_test):.4f}")
    print(f"trained on minilm-l6, stitched to mpnet-base:    {stitched.score(zb_test, y_test):.4f}")
    print(f"trained on mpnet-base, tested on mpnet-base:     {own.score(zb_test, y_test):.4f}")
    print(f"chance (1 / classes):                            {1 / len(np.unique(y)):.4f}")


if __name__ == "__main__":
    main()
