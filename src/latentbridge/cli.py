"""The ``latentbridge`` command line: parses arguments and calls the library, nothing more.

A user error (a bad argument, config or input file, an output path that cannot be written)
ends the command with exit status 2 and one line on standard error, ``latentbridge COMMAND:
error: ...``, naming the argument or path; output paths are checked before any long work.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["build_parser", "invariance_table", "main"]

_MARK = {True: "✓", False: "·"}


def invariance_table(
    normalization: str = "none",
    relative_normalization: str = "none",
    *,
    every_normalization: bool = False,
    verify: bool = False,
) -> str:
    """The projection x transformation table generated from the registry, as markdown.

    ``✓`` marks a declared invariance, ``·`` its absence; ``✓*`` one that holds when the
    whitening is exact (``whiten`` with K > D anchors whose correlation matrix is well
    conditioned, see :func:`latentbridge.normalization.whitening_is_exact`). With ``verify``,
    each cell also shows the worst relative change measured by
    :func:`latentbridge.analysis.verify_invariances`, and a ``!`` flags a declaration the
    measurement contradicts.
    """
    from . import projections
    from .normalization import ABSOLUTE, RELATIVE
    from .transformations import TRANSFORMATIONS

    if every_normalization:
        configs = [(p, n, r) for p in projections.available() for n in ABSOLUTE for r in RELATIVE]
    else:
        configs = [(p, normalization, relative_normalization) for p in projections.available()]
    show_norms = every_normalization or (normalization, relative_normalization) != ("none", "none")
    head = ["projection"] + (["normalization", "relative"] if show_norms else [])
    lines = [
        "| " + " | ".join(head + list(TRANSFORMATIONS)) + " |",
        "|" + "---|" * (len(head) + len(TRANSFORMATIONS)),
    ]
    checks = None
    for p, n, r in configs:
        declared = projections.effective_invariances(p, n, r)
        unconditional = projections.effective_invariances(p, n, r, exact_whitening=False)
        if verify:
            from .analysis import verify_invariances

            checks = verify_invariances(p, n, r)
        cells = [p] + ([n, r] if show_norms else [])
        for kind in TRANSFORMATIONS:
            cell = _MARK[kind in declared] + ("*" if kind in declared - unconditional else "")
            if checks is not None:
                check = checks[kind]
                cell += f" {check.error:.0e}" + ("" if check.consistent else " !")
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cmd_invariances(args: argparse.Namespace) -> int:
    table = invariance_table(
        args.normalization,
        args.relative_normalization,
        every_normalization=args.all,
        verify=args.verify,
    )
    print(table)
    if "✓*" in table:
        print(
            "\n✓*: holds when the whitening is exact (K > D anchors with a well-conditioned "
            "correlation matrix, see latentbridge.normalization.whitening_is_exact)"
        )
    if args.verify:
        print(
            "\ncells: declared invariance (✓) or not (·), then the worst relative change of the "
            "output under 3 random members of the class (float64); ! marks a contradiction"
        )
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .experiments.quickstart import format_table, run_quickstart

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    transformations = tuple(args.transformations)
    rows = run_quickstart(
        num_samples=args.samples,
        dim=args.dim,
        num_anchors=args.anchors,
        transformations=transformations,
        aggregation=args.aggregation,
        epochs=args.epochs,
        seed=args.seed,
        progress=None if args.quiet else progress,
    )
    print(
        f"Zero-shot stitching between two synthetic {args.dim}-d spaces: "
        f"B = A under a random {' + '.join(transformations) or 'identity'} "
        f"(seed {args.seed}, {args.anchors} anchors).\n"
        "A head is trained on A's latents; B's latents are then fed to it, the relative "
        "variants using B's latents of the same anchor samples.\n"
    )
    print(format_table(rows, transformations))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from .analysis import invariance_profile
    from .anchors import select
    from .io import load_embeddings, load_labels

    if args.plot is not None:
        _check_plot_path(args.plot)
    x = load_embeddings(args.a, args.key_a)
    y = load_embeddings(args.b, args.key_b)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"A and B must hold the same samples in the same order, got N={x.shape[0]} and "
            f"N={y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"A and B must hold at least 2 samples, got N={x.shape[0]}")
    for path, array in ((args.a, x), (args.b, y)):
        bad = ~np.isfinite(array)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{path!r} holds {int(bad.sum())} NaN or infinite value(s), the first at row "
                f"{row}, column {col}"
            )
    labels = None
    if args.labels is not None:
        labels = load_labels(args.labels)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(
                f"--labels {args.labels!r} holds {labels.shape[0]} labels, but A and B hold "
                f"N={x.shape[0]} samples"
            )
    k = min(args.anchors, x.shape[0] // 2)
    idx = select(x, k, args.strategy, labels=labels, seed=args.seed)
    profile = invariance_profile(
        x,
        y,
        idx,
        metric=args.metric,
        projections=args.projections,
        normalization=args.normalization,
        relative_normalization=args.relative_normalization,
    )
    print(
        f"A = {args.a} {tuple(x.shape)}, B = {args.b} {tuple(y.shape)}; {k} {args.strategy} "
        f"anchors (seed {args.seed}), the other {profile.num_heldout} samples held out.\n"
    )
    print(profile.to_markdown())
    if args.plot is not None:
        out = profile.plot(args.plot, title=f"{args.a} vs {args.b}")
        print(f"\nbar chart: {out}")
    return 0


def _markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cmd_datasets(args: argparse.Namespace) -> int:
    from . import data

    rows = []
    for spec in data.available(args.modality):
        present = spec.is_available()
        sizes = ", ".join(f"{k} {v:,}" for k, v in spec.size.items())
        rows.append(
            [
                spec.name,
                spec.modality,
                spec.num_classes,
                sizes,
                "yes" if present else "no",
                spec.source if present else spec.install_hint,
            ]
        )
    print(_markdown(["dataset", "modality", "classes", "size", "here", "source / how"], rows))
    return 0


def _cmd_encoders(args: argparse.Namespace) -> int:
    from . import encoders

    rows = []
    generic = [f for f in encoders.families() if args.modality in (None, f.modality)]
    for enc in [*encoders.available(args.modality), *generic]:
        present = enc.is_available()
        rows.append(
            [
                enc.name,
                enc.modality,
                enc.dim if enc.dim else "model's",
                "yes" if present else "no",
                "" if present and enc.dim else enc.install_hint,
            ]
        )
    print(_markdown(["encoder", "modality", "dim", "here", "notes"], rows))
    return 0


def _parse_options(pairs: Sequence[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs; a value is JSON when it parses as JSON (but not NaN or Infinity)."""
    import json

    def refuse(constant: str) -> object:
        raise ValueError(f"--option {key}: {constant} is not a finite number")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):  # 1e999 overflows to inf
            refuse(text)
        return value

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes KEY=VALUE, got {pair!r}")
        if key in options:
            raise ValueError(f"--option {key} is given twice")
        try:
            options[key] = json.loads(raw, parse_constant=refuse, parse_float=finite)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _cmd_encode(args: argparse.Namespace) -> int:
    from .cache import EmbeddingCache
    from .encoding import encode

    if args.out:
        from .io import check_embedding_path

        check_embedding_path(args.out, "--out")
        _check_output(args.out, "--out", folder=False)
    if args.cache:
        _check_output(args.cache, "--cache", folder=True)
    options = _parse_options(args.option)
    cache = EmbeddingCache(args.cache) if args.cache else EmbeddingCache()
    latents = encode(
        args.dataset,
        args.encoder,
        args.split,
        dataset_options=options,
        batch_size=args.batch_size,
        cache=cache,
        progress=not args.quiet,
        refresh=args.refresh,
        executor=args.executor,
        address=args.address,
        max_parallel=args.max_parallel,
        device=args.device,
    )
    print(
        f"{args.dataset}/{args.split} with {args.encoder}: {latents.shape[0]} x "
        f"{latents.shape[1]} float32 latents, cached under {cache.root}"
    )
    if args.out:
        from .io import save_embeddings

        print(f"written to {save_embeddings(args.out, latents)}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments.config import load_config
    from .experiments.runner import run

    config = load_config(args.config)
    if args.device is not None:
        from dataclasses import replace

        config = replace(config, device=args.device)
    out = args.out or f"runs/{config.name}"
    _check_output(out, "--out" if args.out else "the output folder", folder=True)
    results = run(
        config,
        out,
        seeds=args.seeds,
        executor=args.executor,
        address=args.address,
        max_parallel=args.max_parallel,
        progress=not args.quiet,
        log=None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
    )
    from .experiments.report import (
        ablation_table,
        non_stitched_table,
        read_results,
        summary_table,
    )
    from .experiments.variants import product_aggregation

    rows = read_results(results)
    metric = config.metrics[0]
    if config.task == "similarity":
        print(f"Latent similarity ({metric}, mean ± std over encoder pairs and anchor sets):\n")
        print(summary_table(rows, metric))
    else:
        order = " (lower is better)" if metric == "mse" else ""
        print(f"Zero-shot stitching {metric}{order} (mean ± std over stitched pairs and seeds):\n")
        print(summary_table(rows, metric))
        print("\nNon-stitched reference (train encoder = test encoder):\n")
        print(non_stitched_table(rows, metric))
        if any(product_aggregation(r.variant) is not None for r in rows):
            print("\nAggregation ablation (stitched):\n")
            print(ablation_table(rows, metric))
    print(f"\nresults: {results}\nsummary: {results.parent / 'summary.md'}")
    print(f"report: {results.parent / 'report.html'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .experiments.report import write_report

    folder = Path(args.dir)
    if not folder.is_dir():
        raise ValueError(f"DIR {args.dir!r} is not a folder")
    if not (folder / "results.csv").is_file():
        raise ValueError(
            f"DIR {args.dir!r} holds no results.csv: it is not the folder of a `latentbridge run`"
        )
    _check_output(args.dir, "DIR", folder=True)
    print(f"report: {write_report(args.dir)}")
    return 0


def _cmd_project(args: argparse.Namespace) -> int:
    import numpy as np

    from .streaming import partial_paths, project_file

    _check_output(args.out, "--out", folder=False)
    if Path(args.out).suffix.lower() != ".npy":
        raise ValueError(f"--out must end with .npy, got {args.out!r}")
    if os.path.lexists(args.out) and not args.overwrite:
        raise ValueError(f"--out {args.out!r} exists; pass --overwrite to replace it")
    try:
        out = project_file(
            args.latents,
            args.out,
            anchors=args.anchors,
            anchor_indices=args.anchor_indices,
            projections=args.projection,
            normalization=args.normalization,
            relative_normalization=args.relative_normalization,
            dtype=args.dtype,
            chunk_size=args.chunk_size,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        partial = partial_paths(args.out)[0]
        if partial.exists():
            print(
                f"latentbridge project: the finished rows are kept in {str(partial)!r}; run the "
                "same command again to resume",
                file=sys.stderr,
            )
        raise
    rows, width = np.load(out, mmap_mode="r").shape
    print(
        f"{rows} x {width} {args.dtype} relative representation ({' + '.join(args.projection)}, "
        f"normalization {args.normalization}) written to {out}"
    )
    return 0


# -- argument checks ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage is one ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _argument_int(text: str, **bounds: int) -> int:
    """``text`` as an integer within ``bounds`` (those of :func:`check_int`), or argparse's
    error, which names the option itself."""
    from ._validation import check_int

    try:
        value: object = int(text)
    except ValueError:
        value = text  # refused by check_int, with the expected form
    try:
        return check_int(value, "argument", **bounds)
    except ValueError as error:  # a wrong type is a ValueError too
        raise argparse.ArgumentTypeError(str(error).removeprefix("argument ")) from None


def _positive_int(text: str) -> int:
    return _argument_int(text, minimum=1)


def _device(text: str) -> str:
    """``text`` if it names a device (``cpu``, ``cuda``, ``cuda:N``, ``auto``), or argparse's
    error; whether a GPU is there is checked where the device is used."""
    from ._devices import check_device

    try:
        return check_device(text, "argument")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("argument ")) from None


def _seed(text: str) -> int:
    from .experiments.config import SEED_MAX

    return _argument_int(text, minimum=0, maximum=SEED_MAX)


def _check_output(path: str | os.PathLike[str], option: str, *, folder: bool) -> None:
    """Refuse an output ``path`` that cannot be written, before any work (``ValueError``).

    A folder must not be a file and a file not a folder; the nearest existing ancestor must be
    a writable folder (missing folders are created on write).
    """
    target = Path(path)
    shown = repr(str(path))
    if target.exists():
        if folder and not target.is_dir():
            raise ValueError(f"{option} {shown} is a file, not a folder")
        if not folder and target.is_dir():
            raise ValueError(f"{option} {shown} is a folder, not a file")
    existing = target if folder else target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {shown} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {shown}: no permission to write in {str(existing)!r}")


def _check_plot_path(path: str) -> None:
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from error
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if Path(path).suffix.lower().lstrip(".") not in formats:
        raise ValueError(f"--plot must end with an image format suffix {formats}, got {path!r}")
    _check_output(path, "--plot", folder=False)


def _one_line(error: BaseException) -> str:
    """The error's message on one line; an OSError as 'what: path'."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.strerror}: {str(error.filename)!r}"
        if error.filename2 is not None:
            text += f" -> {str(error.filename2)!r}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _add_invariances(sub: Any) -> None:
    """``latentbridge invariances``."""
    from . import normalization

    inv = sub.add_parser(
        "invariances", help="print the projection x transformation table of the registry"
    )
    inv.add_argument("--normalization", default="none", choices=list(normalization.ABSOLUTE))
    inv.add_argument(
        "--relative-normalization", default="none", choices=list(normalization.RELATIVE)
    )
    inv.add_argument("--all", action="store_true", help="every normalisation combination")
    inv.add_argument("--verify", action="store_true", help="measure each cell numerically")
    inv.set_defaults(func=_cmd_invariances)


def _add_quickstart(sub: Any) -> None:
    """``latentbridge quickstart``."""
    from . import aggregations
    from .transformations import TRANSFORMATIONS

    quick = sub.add_parser(
        "quickstart", help="stitch two synthetic spaces related by an unknown transformation"
    )
    quick.add_argument("--seed", type=_seed, default=0)
    quick.add_argument("--samples", type=_positive_int, default=4000)
    quick.add_argument("--dim", type=_positive_int, default=32)
    quick.add_argument("--anchors", type=_positive_int, default=256)
    quick.add_argument("--epochs", type=_positive_int, default=10)
    quick.add_argument("--aggregation", default="mlp_sum", choices=aggregations.available())
    quick.add_argument(
        "--transformations",
        nargs="*",
        default=["orthogonal", "translation"],
        choices=list(TRANSFORMATIONS),
        metavar="CLASS",
        help=f"classes relating the two spaces, from {', '.join(TRANSFORMATIONS)}",
    )
    quick.add_argument("--quiet", action="store_true", help="no progress messages")
    quick.set_defaults(func=_cmd_quickstart)


def _add_compare(sub: Any) -> None:
    """``latentbridge compare``."""
    from . import anchors, normalization, projections
    from .analysis import PROFILE_METRICS

    cmp_ = sub.add_parser(
        "compare",
        help="which transformation relates two embedding files? (the invariance profile)",
        description="Compare two embedding files (.npy or .safetensors) holding the same "
        "samples in the same order: similarity under each projection, and the held-out error "
        "of maps fitted on anchors.",
    )
    cmp_.add_argument("a", help="embeddings of space A (.npy or .safetensors), shape (N, D_A)")
    cmp_.add_argument("b", help="embeddings of space B, shape (N, D_B)")
    cmp_.add_argument("--key-a", default=None, help="tensor name in A's safetensors file")
    cmp_.add_argument("--key-b", default=None, help="tensor name in B's safetensors file")
    cmp_.add_argument(
        "--anchors", type=_positive_int, default=300, help="number of anchors (<= N/2)"
    )
    cmp_.add_argument("--strategy", default="uniform", choices=anchors.available())
    cmp_.add_argument("--labels", default=None, help=".npy labels, for --strategy stratified")
    cmp_.add_argument("--seed", type=_seed, default=0)
    cmp_.add_argument("--metric", default="linear_cka", choices=list(PROFILE_METRICS))
    cmp_.add_argument(
        "--projections",
        nargs="+",
        default=None,
        choices=projections.available(),
        metavar="NAME",
        help="projections to compare (default: all registered)",
    )
    cmp_.add_argument("--normalization", default="none", choices=list(normalization.ABSOLUTE))
    cmp_.add_argument(
        "--relative-normalization", default="none", choices=list(normalization.RELATIVE)
    )
    cmp_.add_argument("--plot", default=None, metavar="PNG", help="save a bar chart here")
    cmp_.set_defaults(func=_cmd_compare)


def _add_listings(sub: Any) -> None:
    """``latentbridge datasets`` and ``latentbridge encoders``."""
    modalities = ["vision", "text", "graph"]
    ds = sub.add_parser("datasets", help="list the datasets and whether their source is here")
    ds.add_argument("--modality", default=None, choices=modalities)
    ds.set_defaults(func=_cmd_datasets)

    en = sub.add_parser("encoders", help="list the encoders and whether they are installed")
    en.add_argument("--modality", default=None, choices=["vision", "text"])
    en.set_defaults(func=_cmd_encoders)


def _add_encode(sub: Any) -> None:
    """``latentbridge encode``."""
    enc = sub.add_parser("encode", help="encode a dataset split (cached, resumable)")
    enc.add_argument("--dataset", required=True)
    enc.add_argument("--encoder", required=True)
    enc.add_argument("--split", default="train")
    enc.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dataset option (value parsed as JSON when it can be), repeatable",
    )
    enc.add_argument("--batch-size", type=_positive_int, default=64)
    enc.add_argument("--cache", default=None, help="cache folder (default $LATENTBRIDGE_CACHE)")
    enc.add_argument("--out", default=None, help="also write the latents here (.npy/.safetensors)")
    enc.add_argument("--refresh", action="store_true", help="recompute even if cached")
    enc.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_executor(enc, "chunk after chunk here", "the chunks by Ray Data actors")
    enc.add_argument(
        "--device",
        type=_device,
        default=None,
        help="where the encoder runs: cpu (default), cuda, cuda:N or auto (CUDA where present "
        "and the encoder runs there); the ONNX and C encoders run on the CPU only",
    )
    enc.set_defaults(func=_cmd_encode)


def _add_executor(parser: Any, local: str, ray: str) -> None:
    """``--executor``, ``--address`` and ``--max-parallel`` of ``run`` and ``encode``."""
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help=f"local: {local}; ray: {ray} (the ray extra)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --executor ray: the Ray cluster's address ('auto' for the cluster this "
        "node belongs to; default: start a local Ray instance)",
    )
    parser.add_argument(
        "--max-parallel",
        type=_positive_int,
        default=None,
        help="with --executor ray: at most this many at once (default: the cluster's CPUs)",
    )


def _add_run(sub: Any) -> None:
    """``latentbridge run`` and ``latentbridge report``."""
    run_ = sub.add_parser(
        "run",
        help="run (or resume) an experiment config (stitching, reconstruction, graph, similarity)",
        description="Run a config: a built-in name (quick, text, vision, synthetic, "
        "reconstruction, graph, similarity) or a YAML file. Finished cells (and trained models) "
        "are kept, so an interrupted run resumes where it stopped.",
    )
    run_.add_argument("config", nargs="?", default="quick", help="built-in name or YAML path")
    run_.add_argument("--out", default=None, help="output folder (default runs/<config name>)")
    run_.add_argument("--seeds", type=_seed, nargs="+", default=None, help="override the seeds")
    _add_executor(run_, "the cells one after another here", "as Ray tasks")
    run_.add_argument(
        "--device",
        type=_device,
        default=None,
        help="where models train and torch encoders encode: cpu, cuda, cuda:N or auto (CUDA "
        "where present); overrides the config's device (the similarity task: cpu only)",
    )
    run_.add_argument("--quiet", action="store_true", help="no progress output")
    run_.set_defaults(func=_cmd_run)

    rep = sub.add_parser("report", help="rebuild summary.md, heatmaps and report.html of a run")
    rep.add_argument("dir", help="a run's output folder (holding results.csv)")
    rep.set_defaults(func=_cmd_report)


def _add_project(sub: Any) -> None:
    """``latentbridge project``."""
    from . import normalization, projections
    from .streaming import OUTPUT_DTYPES

    proj = sub.add_parser(
        "project",
        help="project a large .npy embedding file onto anchors, in chunks (resumable)",
        description="Write the relative representation of LATENTS (a .npy file, N x D) to "
        "--out, reading and writing chunk by chunk through memory maps. Several --projection "
        "write their subspaces side by side (N x P*K, in the order given). An interrupted run "
        "keeps its finished rows in OUT.partial and resumes when the same command is run again.",
    )
    proj.add_argument("latents", metavar="LATENTS", help="the latents, a .npy file (N, D)")
    which = proj.add_mutually_exclusive_group(required=True)
    which.add_argument("--anchors", default=None, help="the anchors' latents, .npy (K, D)")
    which.add_argument(
        "--anchor-indices",
        default=None,
        metavar="IDX",
        help="a .npy of K distinct integer row indices into LATENTS: the anchors",
    )
    proj.add_argument(
        "--projection",
        action="append",
        required=True,
        choices=projections.available(),
        metavar="NAME",
        help=f"a projection ({', '.join(projections.available())}), repeatable",
    )
    proj.add_argument("--normalization", default="none", choices=list(normalization.ABSOLUTE))
    proj.add_argument(
        "--relative-normalization", default="none", choices=list(normalization.RELATIVE)
    )
    proj.add_argument("--out", required=True, help="the .npy file to write")
    proj.add_argument("--dtype", default="float32", choices=list(OUTPUT_DTYPES))
    proj.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=None,
        help="rows per chunk (default: about 64 MiB of working memory)",
    )
    proj.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    proj.add_argument("--quiet", action="store_true", help="no progress bar")
    proj.set_defaults(func=_cmd_project)


def build_parser() -> argparse.ArgumentParser:
    """The ``latentbridge`` argument parser, one sub-command per ``_add_*`` function."""
    from . import __version__

    parser = _Parser(
        prog="latentbridge",
        description="Latent space communication with relative projections and their product.",
    )
    parser.add_argument("--version", action="version", version=f"latentbridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_invariances,
        _add_quickstart,
        _add_compare,
        _add_listings,
        _add_encode,
        _add_run,
        _add_project,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    A user error exits with status 2 (``SystemExit``) after one line on standard error; an
    interruption (Ctrl-C) returns 130 after one line. With ``LATENTBRIDGE_DEBUG=1`` in the
    environment, errors propagate with their traceback instead (for bug reports).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # the reader (e.g. `head`) closed the pipe: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"latentbridge {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as error:
        if os.environ.get("LATENTBRIDGE_DEBUG", "") not in ("", "0"):
            raise
        parser.exit(2, f"latentbridge {args.command}: error: {_one_line(error)}\n")


if __name__ == "__main__":
    raise SystemExit(main())
