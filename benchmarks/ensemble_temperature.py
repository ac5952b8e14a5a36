"""The ``ensemble`` temperature, measured: stitched accuracy of the consistency-weighted
ensemble at several temperatures, from the outputs a finished classification run kept.

A classification run with ``variants.selection: true`` keeps every candidate's logits on the
test splits and on the anchors (``DIR/models/``). This script reads them back, recomputes the
anchor consistencies and, for each temperature ``T``, the ensemble's stitched accuracy (mean
over the stitched pairs and seeds of each dataset), next to ``selected``, the plain average
(``T = inf``) and the best candidate per pair (``oracle``); then, over every dataset of the
given folders, the mean of the datasets' means. No training and no new latents: it needs the run
folder and the embedding cache the run used (for the test labels).

    .venv/bin/python benchmarks/ensemble_temperature.py DIR [DIR ...]

The library's :data:`latentbridge.stitching.ENSEMBLE_TEMPERATURE` was chosen once with it on
the built-in configs (see the README); it is never tuned per dataset.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from latentbridge.experiments.config import parse_config
from latentbridge.experiments.results import CellStore, load_state
from latentbridge.experiments.task import RunContext
from latentbridge.experiments.tasks import classification
from latentbridge.experiments.variants import candidates, from_config
from latentbridge.stitching import (
    consistency_ensemble,
    consistency_weights,
    prediction_agreement,
    select_by_consistency,
)

TEMPERATURES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, math.inf)


def _run(folder: Path) -> dict[str, dict[str, list[float]]]:
    stored = json.loads((folder / "config.json").read_text())
    stored.get("variants", {}).pop("ensemble_temperature", None)  # the run's own T
    config = parse_config(stored)
    pool = candidates(from_config(config.variants))
    context = RunContext(out=folder, store=CellStore(folder), progress=False)
    results: dict[str, dict[str, list[float]]] = {}
    for ds in config.datasets:
        features = classification._features(ds, config, context)
        labels = torch.as_tensor(np.asarray(features.spaces.test_labels))
        table = results.setdefault(ds.name, {})
        for seed in config.seeds:
            for source in features.spaces.train:
                outputs = []
                for c in pool:
                    path = classification._outputs_path(folder, ds.name, c, seed, source)
                    stored = load_state(path)
                    if stored is None:
                        raise SystemExit(f"{path} is missing: run the config to the end first")
                    outputs.append(stored)
                for target in features.spaces.train:
                    if target == source:
                        continue
                    _pair(table, outputs, pool, source, target, labels)
    return results


def _pair(table, outputs, pool, source, target, labels) -> None:  # type: ignore[no-untyped-def]
    test = [o[f"test/{target}"] for o in outputs]
    scores = [prediction_agreement(o[f"anchors/{source}"], o[f"anchors/{target}"]) for o in outputs]

    def accuracy(scores_: torch.Tensor) -> float:
        return float((scores_.argmax(dim=1) == labels).double().mean())

    singles = [accuracy(t) for t in test]
    for c, value in zip(pool, singles, strict=True):
        table.setdefault(c.name, []).append(value)
    table.setdefault("selected", []).append(singles[select_by_consistency(scores)])
    table.setdefault("oracle", []).append(max(singles))
    for t in TEMPERATURES:
        weights = (
            torch.full((len(test),), 1 / len(test), dtype=torch.float64)
            if math.isinf(t)
            else consistency_weights(scores, t)
        )
        table.setdefault(f"T={t:g}", []).append(accuracy(consistency_ensemble(test, weights)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    means: dict[str, list[float]] = {}
    for folder in args.folders:
        for dataset, table in _run(folder).items():
            print(f"\n{folder.name} / {dataset} (stitched accuracy, mean over pairs and seeds)")
            print("| variant | accuracy |\n|---|---:|")
            for name, values in table.items():
                print(f"| {name} | {np.mean(values):.3f} |")
                means.setdefault(name, []).append(float(np.mean(values)))
    count = max(len(v) for v in means.values())
    print(f"\nmean over the {count} datasets (each dataset's mean weighs the same)")
    print("| variant | accuracy |\n|---|---:|")
    for name, values in means.items():
        if len(values) == count:  # a variant every dataset has
            print(f"| {name} | {np.mean(values):.3f} |")


if __name__ == "__main__":
    main()
