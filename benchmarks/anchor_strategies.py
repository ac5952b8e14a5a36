"""Anchor strategies and the paper's subset product, measured on a built-in config.

Runs a classification config once per anchor strategy of :mod:`latentbridge.anchors`
(``uniform``, ``stratified``, ``fps``, ``kmeans``; everything else as in the config) and once
more with the paper's subset product without L∞ (``product_projections: [cosine, euclidean,
l1]``, ``mlp_sum``, uniform anchors), each into its own folder under ``--out`` (a rerun resumes
them), and prints the stitched accuracy (mean ± std over the stitched pairs and seeds, as the
report's tables: ``†`` where n/a pairs were left out, ``—`` where a variant did not run) of
every variant, one row per (dataset, strategy).

    .venv/bin/python benchmarks/anchor_strategies.py quick --out DIR [--seeds 0]
        [--aggregations]   # no product variants in the strategy runs (the slow cells)
        [--table-only]     # print the table of the folders already in DIR, run nothing

``stratified`` uses the training labels to balance the anchors' classes; the other strategies
use none (``fps`` and ``kmeans`` look only at the first encoder's latents). A strategy that
cannot serve a dataset (stratified anchors when a class has fewer samples than its quota) is
reported on stderr; the table then holds the datasets it finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from latentbridge.anchors import STRATEGIES
from latentbridge.experiments.config import RunConfig, load_config
from latentbridge.experiments.report import read_results
from latentbridge.experiments.runner import run
from latentbridge.experiments.tables import collect, fmt, stat, unique

SUBSET = ("cosine", "euclidean", "l1")


def _configs(
    config: RunConfig, aggregations: tuple[str, ...] | None = None
) -> dict[str, RunConfig]:
    """One config per anchor strategy (with ``aggregations`` in place of the config's, if
    given), and the subset product."""
    variants = config.variants
    if aggregations is not None:
        variants = dataclasses.replace(variants, aggregations=aggregations)
    out = {
        s: dataclasses.replace(
            config,
            anchors=dataclasses.replace(config.anchors, strategy=s),
            variants=variants,
        )
        for s in STRATEGIES
    }
    subset = dataclasses.replace(
        config.variants,
        absolute=False,
        projections=(),
        product_projections=SUBSET,
        aggregations=("mlp_sum",),
        translation=(),
        selection=False,
    )
    out["subset-product"] = dataclasses.replace(config, variants=subset)
    return out


def _stitched(path: Path, metric: str) -> dict[tuple[str, str], list[float | None]]:
    """The stitched values of ``metric`` per (dataset, variant) (None: not applicable)."""
    return collect(read_results(path), metric, stitched=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a built-in classification config or a YAML file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument(
        "--aggregations",
        nargs="*",
        help="the product aggregations of the strategy runs (none: no product variants)",
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="run nothing: print the table of the results already in --out",
    )
    args = parser.parse_args()
    config = load_config(args.config)
    aggregations = None if args.aggregations is None else tuple(args.aggregations)
    tables = {}
    for name, variant_config in _configs(config, aggregations).items():
        try:
            if args.table_only:
                raise ValueError("not run (--table-only)")
            results = run(variant_config, args.out / name, seeds=args.seeds, report=False)
        except ValueError as error:  # e.g. a class too small for stratified anchors
            print(f"{name}: {error}", file=sys.stderr)
            results = args.out / name / "results.csv"  # the datasets it finished, if any
            if not results.is_file():
                continue
        tables[name] = _stitched(results, args.metric)
    variants = unique(v for t in tables.values() for _, v in t)
    datasets = unique(d for t in tables.values() for d, _ in t)
    print(f"| dataset | anchors | {' | '.join(variants)} |")
    print("|---|---|" + "---:|" * len(variants))
    for d in datasets:
        for name, table in tables.items():
            cells = [fmt(stat(table.get((d, v), []))) for v in variants]
            print(f"| {d} | {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
