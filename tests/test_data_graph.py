"""Graph datasets: WordNet noun graph, SBM, karate club, LINQS text formats, helpers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import latentbridge.data as data
from latentbridge.data import GraphDataset, SourceMissingError
from latentbridge.data import graph as G

# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def assert_valid_graph(g: GraphDataset) -> None:
    """Shapes, dtypes, masks disjoint, edge_index undirected without self loops/duplicates."""
    n = g.num_nodes
    assert g.features.dtype == np.float32 and g.features.ndim == 2 and g.features.shape[0] == n
    assert g.edge_index.dtype == np.int64 and g.edge_index.shape == (2, g.num_edges)
    assert g.labels.dtype == np.int64 and g.labels.shape == (n,)
    assert g.labels.min() >= 0 and g.labels.max() < g.num_classes
    assert g.modality == "graph"
    for mask in (g.train_mask, g.val_mask, g.test_mask):
        assert mask.dtype == np.bool_ and mask.shape == (n,)
    total = g.train_mask.astype(int) + g.val_mask.astype(int) + g.test_mask.astype(int)
    assert total.max() <= 1, "masks overlap"
    src, dst = g.edge_index
    assert src.min() >= 0 and max(src.max(), dst.max()) < n
    assert not np.any(src == dst), "self loops"
    keys = src * n + dst
    assert np.unique(keys).size == keys.size, "duplicate edges"
    assert set(keys.tolist()) == set((dst * n + src).tolist()), "not symmetric"


def train_counts(g: GraphDataset) -> np.ndarray:
    return np.bincount(g.labels[g.train_mask], minlength=g.num_classes)


def same_graph(a: GraphDataset, b: GraphDataset) -> bool:
    return (
        np.array_equal(a.features, b.features)
        and np.array_equal(a.edge_index, b.edge_index)
        and np.array_equal(a.labels, b.labels)
        and all(
            np.array_equal(x, y)
            for x, y in zip(
                (a.train_mask, a.val_mask, a.test_mask),
                (b.train_mask, b.val_mask, b.test_mask),
                strict=True,
            )
        )
    )


def node_accuracy(g: GraphDataset, use_graph: bool, epochs: int = 100, seed: int = 0) -> float:
    """Test-mask accuracy of a 2-layer GCN (Kipf & Welling) or the same network without A_hat.

    A_hat = D^-1/2 (A + I) D^-1/2; hidden 16, dropout 0.5 on the hidden layer, Adam lr 0.01,
    weight decay 5e-4. The MLP is the same model with A_hat replaced by the identity.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n = g.num_nodes
        x, y = torch.from_numpy(g.features), torch.from_numpy(g.labels)
        loops = torch.arange(n)
        ei = torch.from_numpy(g.edge_index)
        row, col = torch.cat([ei[0], loops]), torch.cat([ei[1], loops])
        deg = torch.bincount(row, minlength=n).float()
        a_hat = torch.sparse_coo_tensor(
            torch.stack([row, col]),
            deg[row].rsqrt() * deg[col].rsqrt(),
            (n, n),
            check_invariants=False,
        ).coalesce()

        def propagate(h: torch.Tensor) -> torch.Tensor:
            return torch.sparse.mm(a_hat, h) if use_graph else h

        l1 = torch.nn.Linear(x.shape[1], 16)
        l2 = torch.nn.Linear(16, g.num_classes)
        params = [*l1.parameters(), *l2.parameters()]
        opt = torch.optim.Adam(params, lr=0.01, weight_decay=5e-4)
        train, test = torch.from_numpy(g.train_mask), torch.from_numpy(g.test_mask)

        def forward(training: bool) -> torch.Tensor:
            h = torch.relu(propagate(l1(x)))
            return propagate(l2(torch.nn.functional.dropout(h, 0.5, training)))

        for _ in range(epochs):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(forward(True)[train], y[train]).backward()
            opt.step()
        with torch.no_grad():
            return float((forward(False).argmax(1)[test] == y[test]).float().mean())


# ------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wordnet-graph", "sbm", "karate", "cora", "citeseer", "pubmed"])
def test_registered_as_graph_with_full_split(name: str) -> None:
    spec = data.get(name)
    assert spec.modality == "graph" and spec.splits == ("full",)
    assert set(spec.size) == {"full"} and spec.size["full"] > 0
    assert spec.source and spec.license and spec.install_hint
    assert spec in data.available("graph")


@pytest.mark.parametrize("name", ["sbm", "karate"])
def test_spec_metadata_matches_loaded_graph(name: str) -> None:
    g = data.load(name, "full")
    spec = data.get(name)
    assert isinstance(g, GraphDataset)
    assert g.num_nodes == spec.size["full"] and g.num_classes == spec.num_classes
    assert_valid_graph(g)


def test_wrong_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split"):
        data.load("karate", "train")
    with pytest.raises(ValueError, match="split"):
        G.load_karate("test")


# ------------------------------------------------------------------------------------------
# WordNet noun graph
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordnet() -> GraphDataset:
    if not data.get("wordnet-graph").is_available():
        if os.environ.get("CI"):
            pytest.fail("wordnet-base must be installed in CI (/usr/share/wordnet/data.noun)")
        pytest.skip("WordNet data.noun not present here (install Debian wordnet-base)")
    g = data.load("wordnet-graph", "full")
    assert isinstance(g, GraphDataset)
    return g


def test_wordnet_shapes_balance_and_masks(wordnet: GraphDataset) -> None:
    g = wordnet
    spec = data.get("wordnet-graph")
    assert_valid_graph(g)
    assert g.num_nodes == spec.size["full"] == 2800 and g.num_classes == spec.num_classes == 7
    assert np.bincount(g.labels).tolist() == [400] * 7
    assert all(c.startswith("noun.") for c in g.classes)
    assert g.features.shape == (2800, 1433)
    assert set(np.unique(g.features).tolist()) == {0.0, 1.0}
    assert len(g.options["vocabulary"]) == 1433
    assert not set(g.options["vocabulary"]) & G.STOP_WORDS
    assert train_counts(g).tolist() == [20] * 7
    assert (g.val_mask.sum(), g.test_mask.sum()) == (500, 1000)


def test_wordnet_is_homophilous_and_dense_enough(wordnet: GraphDataset) -> None:
    h = G.homophily(wordnet)
    avg_degree = wordnet.num_edges / wordnet.num_nodes
    print(f"wordnet-graph: homophily {h:.3f}, average degree {avg_degree:.2f}")
    assert h > 0.6
    assert avg_degree > 1.5
    # Sampling prefers neighbours of chosen nodes: almost no node is isolated.
    isolated = np.bincount(wordnet.edge_index[0], minlength=wordnet.num_nodes) == 0
    assert isolated.mean() < 0.05


def test_wordnet_sampling_negative_control(
    wordnet: GraphDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uniform balanced sampling (no preference for neighbours) leaves the graph nearly empty."""

    def uniform(adjacency, node_class, num_classes, per_class, rng):  # type: ignore[no-untyped-def]
        chosen = [
            rng.choice(np.flatnonzero(node_class == c), per_class, replace=False)
            for c in range(num_classes)
        ]
        return np.sort(np.concatenate(chosen))

    monkeypatch.setattr(G, "_grow_balanced", uniform)
    sparse = G.load_wordnet_graph()
    assert np.bincount(sparse.labels).tolist() == [400] * 7
    assert sparse.num_edges / sparse.num_nodes < 1.5 < wordnet.num_edges / wordnet.num_nodes


def test_wordnet_gcn_beats_mlp(wordnet: GraphDataset) -> None:
    gcn = node_accuracy(wordnet, use_graph=True)
    mlp = node_accuracy(wordnet, use_graph=False)
    print(f"wordnet-graph: GCN {gcn:.3f} vs MLP {mlp:.3f}")
    assert gcn > mlp + 0.03
    assert gcn > 0.5


def test_wordnet_deterministic_for_seed(wordnet: GraphDataset) -> None:
    assert same_graph(G.load_wordnet_graph(seed=0), wordnet)
    other = G.load_wordnet_graph(seed=1)
    assert not np.array_equal(other.options["synset_offsets"], wordnet.options["synset_offsets"])
    assert not np.array_equal(other.train_mask, wordnet.train_mask)


def test_wordnet_small_options(wordnet: GraphDataset) -> None:
    g = G.load_wordnet_graph(
        num_classes=3,
        nodes_per_class=50,
        vocab_size=40,
        num_train_per_class=5,
        num_val=20,
        num_test=30,
        seed=3,
    )
    assert_valid_graph(g)
    assert np.bincount(g.labels).tolist() == [50, 50, 50]
    assert g.features.shape == (150, 40)
    assert train_counts(g).tolist() == [5, 5, 5]
    assert (g.val_mask.sum(), g.test_mask.sum()) == (20, 30)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("num_classes", 1),
        ("num_classes", 1000),
        ("nodes_per_class", 0),
        ("nodes_per_class", 10**7),
        ("vocab_size", 0),
        ("num_val", -1),
        ("seed", "x"),
        ("num_train_per_class", 500),
    ],
)
def test_wordnet_bad_options(wordnet: GraphDataset, option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        G.load_wordnet_graph(**{option: value})  # type: ignore[arg-type]


_SYNSETS = """\
  1 This software and database is being provided to you, the LICENSEE, by  
  2 Princeton University under the following license.  
00000001 05 n 01 dog 0 002 @ 00000003 n 0000 ~ 00000002 n 0000 | a domestic canine animal  
00000002 05 n 02 puppy 0 pup 0 001 @ 00000001 n 0000 | a young dog animal  
00000003 05 n 01 canine 0 002 ~ 00000001 n 0000 + 00001000 v 0101 | a carnivorous animal  
00000004 06 n 01 leash 0 001 ;c 00000001 n 0000 | a strap; "walk the dog on a leash"  
00000005 06 n 01 strap 0 001 ~ 00000004 n 0000 | a strip of leather  
00000006 06 n 01 kennel 0 002 @ 00000005 n 0000 %p 00000003 n 0000 | a dog house  
"""  # noqa: W291  (the licence header of the real file has trailing spaces)


def test_wordnet_fixture_parsed_from_root(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(_SYNSETS)
    g = G.load_wordnet_graph(
        root=tmp_path,
        num_classes=2,
        nodes_per_class=3,
        num_train_per_class=1,
        num_val=1,
        num_test=2,
    )
    assert_valid_graph(g)
    assert g.classes == ("noun.animal", "noun.artifact")
    assert g.labels.tolist() == [0, 0, 0, 1, 1, 1]
    # undirected noun pointers: 1-3, 1-2, 4-1, 5-4, 6-5, 6-3 (the verb pointer is dropped)
    expected = {(0, 2), (0, 1), (3, 0), (4, 3), (5, 4), (5, 2)}
    edges = {tuple(e) for e in g.edge_index.T.tolist()}
    assert edges == expected | {(b, a) for a, b in expected}
    assert "animal" in g.options["vocabulary"] and "a" not in g.options["vocabulary"]
    column = g.options["vocabulary"].index("animal")
    assert g.features[:, column].tolist() == [1, 1, 1, 0, 0, 0]


def test_wordnet_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "data.noun"
    path.write_text(_SYNSETS + "00000007 06 n 01 bad 0 003 @ 00000001 n 0000 | too few\n")
    with pytest.raises(ValueError, match=r"data\.noun, line 9"):
        G.load_wordnet_graph(root=tmp_path, num_classes=2, nodes_per_class=3, num_train_per_class=1)


_WORDNET_LAYOUT = (  # some of the files of Debian wordnet-base's /usr/share/wordnet
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "index.noun",
    "index.verb",
    "index.sense",
    "lexnames",
)
_VERBS = "  1 header  \n00000101 29 v 01 bark 0 000 | make a barking sound  \n"


def _wordnet_folder(folder: Path) -> Path:
    """A WordNet folder in the real layout; ``data.noun`` holds :data:`_SYNSETS`."""
    folder.mkdir(parents=True)
    for name in _WORDNET_LAYOUT:
        (folder / name).write_text("  1 header\n")
    (folder / "data.noun").write_text(_SYNSETS)
    (folder / "data.verb").write_text(_VERBS)
    return folder


def test_one_wordnet_locator_for_the_text_and_graph_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentbridge.data import _common, text

    system = _wordnet_folder(tmp_path / "usr" / "share" / "wordnet")
    monkeypatch.setattr(_common, "WORDNET_SYSTEM_ROOT", system)
    monkeypatch.delenv("LATENTBRIDGE_DATA", raising=False)
    small = {"num_classes": 2, "nodes_per_class": 3, "num_train_per_class": 1, "num_val": 1}

    def found() -> tuple[Path, bool, bool]:
        text._parse_wordnet.cache_clear()
        return (
            _common.wordnet_root(),
            text.WORDNET.is_available(),
            data.get("wordnet-graph").is_available(),
        )

    # without $LATENTBRIDGE_DATA: the system folder, for both datasets
    assert found() == (system, True, True)
    assert text.read_wordnet()[0][-1] == "make a barking sound"
    assert G.load_wordnet_graph(**small, num_test=2).options["root"] == str(system)
    # $LATENTBRIDGE_DATA/wordnet, once it exists, takes precedence for both -- even empty
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path / "data"))
    assert found() == (system, True, True)  # no wordnet folder there yet
    (tmp_path / "data" / "wordnet").mkdir(parents=True)
    assert found() == (tmp_path / "data" / "wordnet", False, False)
    (tmp_path / "data" / "wordnet").rmdir()
    mine = _wordnet_folder(tmp_path / "data" / "wordnet")
    (mine / "data.verb").write_text("  1 header\n00000101 29 v 01 mew 0 000 | cry like a cat\n")
    assert found() == (mine, True, True)
    assert text.read_wordnet()[0][-1] == "cry like a cat"
    # root= wins over both, whatever it holds
    assert _common.wordnet_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    with pytest.raises(SourceMissingError, match="wordnet-base"):
        G.load_wordnet_graph(root=tmp_path / "elsewhere")
    with pytest.raises(SourceMissingError, match="wordnet-base"):
        text.load_wordnet(root=tmp_path / "elsewhere")


def test_wordnet_missing_root_raises_source_missing(tmp_path: Path) -> None:
    with pytest.raises(SourceMissingError, match="wordnet-base"):
        G.load_wordnet_graph(root=tmp_path)


# ------------------------------------------------------------------------------------------
# stochastic block model
# ------------------------------------------------------------------------------------------


def test_sbm_shapes_masks_and_rng_untouched() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    g = G.load_sbm()
    assert torch.equal(state, torch.get_rng_state()), "global torch RNG state changed"
    assert_valid_graph(g)
    assert g.features.shape == (1000, 32)
    assert np.bincount(g.labels).tolist() == [200] * 5
    assert train_counts(g).tolist() == [20] * 5
    assert (g.val_mask.sum(), g.test_mask.sum()) == (185, 369)


def test_sbm_deterministic_for_seed() -> None:
    assert same_graph(G.load_sbm(seed=4), G.load_sbm(seed=4))
    a, b = G.load_sbm(seed=4), G.load_sbm(seed=5)
    assert not np.array_equal(a.features, b.features)
    assert a.edge_index.shape != b.edge_index.shape or not np.array_equal(
        a.edge_index, b.edge_index
    )


def test_sbm_homophily_follows_block_probabilities() -> None:
    g = G.load_sbm()
    expected = 0.05 / (0.05 + 4 * 0.005)  # p_in / (p_in + (C - 1) p_out) = 0.714
    assert abs(G.homophily(g) - expected) < 0.05
    # Negative control: without community structure homophily falls to 1 / num_classes.
    flat = G.load_sbm(p_in=0.02, p_out=0.02)
    assert abs(G.homophily(flat) - 0.2) < 0.04
    assert G.homophily(g) > G.homophily(flat) + 0.3


def test_sbm_features_are_class_dependent() -> None:
    g = G.load_sbm(feature_noise=0.1)
    means = np.stack([g.features[g.labels == c].mean(0) for c in range(5)])
    nearest = np.argmin(((g.features[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == g.labels).mean() > 0.95


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("p_in", 1.5),
        ("p_out", -0.1),
        ("num_classes", 1),
        ("nodes_per_class", 0),
        ("feature_dim", 0),
        ("feature_noise", -1.0),
        ("num_val", 10**6),
    ],
)
def test_sbm_bad_options(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        G.load_sbm(**{option: value})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# karate club
# ------------------------------------------------------------------------------------------


def test_karate_exact_counts() -> None:
    import networkx as nx

    g = G.load_karate()
    assert_valid_graph(g)
    assert (g.num_nodes, g.num_edges) == (34, 156)
    assert g.classes == ("Mr. Hi", "Officer")
    assert np.bincount(g.labels).tolist() == [17, 17]
    assert np.array_equal(g.features, np.eye(34, dtype=np.float32))
    assert train_counts(g).tolist() == [2, 2]
    assert (g.val_mask.sum(), g.test_mask.sum()) == (10, 20)
    assert g.train_mask.sum() + g.val_mask.sum() + g.test_mask.sum() == 34
    reference = nx.karate_club_graph()
    assert {frozenset(e) for e in g.edge_index.T.tolist()} == {
        frozenset(e) for e in reference.edges
    }
    assert g.labels[0] == 0 and g.labels[33] == 1  # Mr. Hi and the officer themselves
    assert not np.array_equal(G.load_karate(seed=1).train_mask, g.train_mask)


# ------------------------------------------------------------------------------------------
# LINQS original text formats
# ------------------------------------------------------------------------------------------

_CORA_CONTENT = [
    ("31336", "1 0 0 1", "Neural_Networks"),
    ("1061127", "0 1 0 0", "Rule_Learning"),
    ("1106406", "0 0 1 0", "Neural_Networks"),
    ("13195", "1 1 0 0", "Theory"),
    ("37879", "0 0 0 1", "Rule_Learning"),
    ("1126012", "1 0 1 0", "Theory"),
]
# cited \t citing; one duplicate, one reversed duplicate and a self citation
_CORA_CITES = [
    ("31336", "1061127"),
    ("31336", "1061127"),
    ("1061127", "31336"),
    ("1106406", "13195"),
    ("37879", "37879"),
    ("13195", "1126012"),
]
_CORA_EDGES = {(0, 1), (2, 3), (3, 5)}


def _write_linqs(folder: Path, prefix: str, content: list[tuple[str, str, str]], cites) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join([pid, *bits.split(), label]) for pid, bits, label in content]
    (folder / f"{prefix}.content").write_text("\n".join(lines) + "\n")
    (folder / f"{prefix}.cites").write_text("".join(f"{a}\t{b}\n" for a, b in cites))


def _edges(g: GraphDataset) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in g.edge_index.T.tolist()}


_SMALL = {"num_train_per_class": 1, "num_val": 1, "num_test": 2}


def test_cora_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_linqs(tmp_path / "cora", "cora", _CORA_CONTENT, _CORA_CITES)
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path))
    assert data.get("cora").is_available()
    g = data.load("cora", "full", **_SMALL)
    assert isinstance(g, GraphDataset)
    assert_valid_graph(g)
    assert g.classes == ("Neural_Networks", "Rule_Learning", "Theory")
    assert g.labels.tolist() == [0, 1, 0, 2, 1, 2]
    assert g.features.shape == (6, 4) and g.features[3].tolist() == [1, 1, 0, 0]
    assert _edges(g) == _CORA_EDGES and g.num_edges == 6
    assert g.options["paper_ids"][0] == "31336"
    assert train_counts(g).tolist() == [1, 1, 1]
    assert (g.val_mask.sum(), g.test_mask.sum()) == (1, 2)
    # the same files through root=, with the environment pointing elsewhere
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path / "nowhere"))
    assert same_graph(G.load_linqs("cora", root=tmp_path / "cora", **_SMALL), g)


def test_citeseer_fixture_drops_citations_without_content(tmp_path: Path) -> None:
    content = [
        ("100157", "1 0 1", "Agents"),
        ("bradshaw97introduction", "0 1 0", "IR"),
        ("zunino01representing", "1 1 0", "Agents"),
        ("hahn98ontology", "0 0 1", "IR"),
    ]
    cites = [
        ("100157", "bradshaw97introduction"),
        ("hahn98ontology", "zunino01representing"),
        ("missing-paper", "100157"),  # cited paper without a content row
        ("100157", "also-missing"),
    ]
    _write_linqs(tmp_path, "citeseer", content, cites)
    g = G.load_linqs("citeseer", root=tmp_path, num_train_per_class=1, num_val=1, num_test=1)
    assert_valid_graph(g)
    assert g.classes == ("Agents", "IR")
    assert _edges(g) == {(0, 1), (2, 3)}


_PUBMED_NODES = """\
NODE\tpaper
cat=1,2,3:label\tnumeric:w-rat:0.0\tnumeric:w-insulin:0.0\tnumeric:w-common:0.0\tstring:summary
12187484\tlabel=1\tw-rat=0.0939\tw-common=0.0287\tsummary=w-rat,w-common
2344352\tlabel=3\tw-insulin=0.5\tsummary=w-insulin
14654069\tlabel=2\tw-rat=0.25\tw-insulin=0.125\tsummary=w-rat,w-insulin
16443886\tlabel=1\tw-common=1.0\tsummary=w-common
2684155\tlabel=3\tsummary=
"""

_PUBMED_CITES = """\
DIRECTED\tcites
NO_FEATURES
33824\tpaper:12187484\t|\tpaper:2344352
33825\tpaper:2344352\t|\tpaper:12187484
33826\tpaper:14654069\t|\tpaper:16443886
33827\tpaper:2684155\t|\tpaper:99999999
33828\tpaper:2684155\t|\tpaper:14654069
"""


def _write_pubmed(folder: Path, nodes: str = _PUBMED_NODES, cites: str = _PUBMED_CITES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pubmed-Diabetes.NODE.paper.tab").write_text(nodes)
    (folder / "Pubmed-Diabetes.DIRECTED.cites.tab").write_text(cites)


def test_pubmed_fixture(tmp_path: Path) -> None:
    _write_pubmed(tmp_path)
    g = G.load_linqs("pubmed", root=tmp_path, num_train_per_class=1, num_val=1, num_test=1)
    assert_valid_graph(g)
    assert g.classes == ("1", "2", "3")
    assert g.labels.tolist() == [0, 2, 1, 0, 2]
    np.testing.assert_allclose(g.features[0], [0.0939, 0.0, 0.0287], rtol=1e-6)
    np.testing.assert_allclose(g.features[2], [0.25, 0.125, 0.0])
    assert not g.features[4].any()
    assert _edges(g) == {(0, 1), (2, 3), (2, 4)}


@pytest.mark.parametrize(
    ("name", "filename", "line"),
    [
        ("cora", "cora.content", 3),
        ("cora", "cora.cites", 2),
        ("pubmed", "Pubmed-Diabetes.NODE.paper.tab", 4),
        ("pubmed", "Pubmed-Diabetes.DIRECTED.cites.tab", 4),
    ],
)
def test_linqs_malformed_line_names_file_and_line(
    tmp_path: Path, name: str, filename: str, line: int
) -> None:
    if name == "cora":
        _write_linqs(tmp_path, "cora", _CORA_CONTENT, _CORA_CITES)
    else:
        _write_pubmed(tmp_path)
    path = tmp_path / filename
    lines = path.read_text().splitlines()
    bad = {
        "cora.content": "1106406\t0\t2\t1\t0\tNeural_Networks",  # a 2 in a binary row
        "cora.cites": "31336 1061127 13195",
        "Pubmed-Diabetes.NODE.paper.tab": "2344352\tlabel=3\tw-unknown=0.5\tsummary=",
        "Pubmed-Diabetes.DIRECTED.cites.tab": "33825\tpaper:2344352\tpaper:12187484",
    }[filename]
    lines[line - 1] = bad
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{filename}, line {line}\b"):
        G.load_linqs(name, root=tmp_path, **_SMALL)


def test_cora_ragged_content_row_is_rejected(tmp_path: Path) -> None:
    _write_linqs(tmp_path, "cora", _CORA_CONTENT, _CORA_CITES)
    path = tmp_path / "cora.content"
    path.write_text(path.read_text() + "999\t1\t0\tTheory\n")
    with pytest.raises(ValueError, match=r"cora\.content, line 7"):
        G.load_linqs("cora", root=tmp_path, **_SMALL)


@pytest.mark.parametrize("name", ["cora", "citeseer", "pubmed"])
def test_linqs_missing_files_raise_source_missing_with_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path))
    spec = data.get(name)
    assert not spec.is_available()
    with pytest.raises(SourceMissingError, match="LATENTBRIDGE_DATA") as info:
        data.load(name, "full")
    assert spec.install_hint in str(info.value)
    content_file = {"cora": "cora.content", "citeseer": "citeseer.content"}.get(
        name, "Pubmed-Diabetes.NODE.paper.tab"
    )
    assert content_file in spec.install_hint
    with pytest.raises(SourceMissingError, match=content_file):
        G.load_linqs(name, root=tmp_path / "empty")
    monkeypatch.delenv("LATENTBRIDGE_DATA")
    assert not spec.is_available()


def test_linqs_bad_options(tmp_path: Path) -> None:
    _write_linqs(tmp_path, "cora", _CORA_CONTENT, _CORA_CITES)
    with pytest.raises(ValueError, match="num_val"):
        # the default num_val=500 asks for more nodes than the 6 of the fixture
        G.load_linqs("cora", root=tmp_path, num_train_per_class=1)
    with pytest.raises(ValueError, match="num_train_per_class"):
        G.load_linqs("cora", root=tmp_path, num_train_per_class=3, num_val=0, num_test=0)
    with pytest.raises(ValueError, match="name"):
        G.load_linqs("arxiv", root=tmp_path)


# ------------------------------------------------------------------------------------------
# helpers: homophily, to_pyg, masks
# ------------------------------------------------------------------------------------------


def _tiny(edges: list[tuple[int, int]], labels: list[int]) -> GraphDataset:
    n = len(labels)
    masks = G.planetoid_masks(np.asarray(labels), 1, 0, 0, seed=0)
    pairs = np.asarray(edges, dtype=np.int64).T.reshape(2, -1)
    return G._graph("tiny", np.eye(n), pairs, np.asarray(labels), ("a", "b"), masks, {})


def test_homophily_closed_form() -> None:
    g = _tiny([(0, 1), (1, 2), (2, 3), (0, 3)], [0, 0, 1, 1])
    assert G.homophily(g) == pytest.approx(0.5)
    assert G.homophily(_tiny([(0, 1), (2, 3)], [0, 0, 1, 1])) == 1.0
    assert G.homophily(_tiny([(0, 2), (1, 3)], [0, 0, 1, 1])) == 0.0
    with pytest.raises(ValueError, match="no edges"):
        G.homophily(_tiny([], [0, 1]))


def test_to_pyg_round_trip() -> None:
    g = G.load_karate()
    d = G.to_pyg(g)
    assert d.num_nodes == 34
    assert d.x.dtype == torch.float32 and np.array_equal(d.x.numpy(), g.features)
    assert d.edge_index.dtype == torch.int64 and np.array_equal(d.edge_index.numpy(), g.edge_index)
    assert np.array_equal(d.y.numpy(), g.labels)
    for key in ("train_mask", "val_mask", "test_mask"):
        assert d[key].dtype == torch.bool and np.array_equal(d[key].numpy(), getattr(g, key))
    assert d.is_undirected() and not d.has_self_loops()
    with pytest.raises(TypeError, match="graph"):
        G.to_pyg(d)  # type: ignore[arg-type]


def test_planetoid_masks_errors() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    train, val, test = G.planetoid_masks(labels, 2, 1, 1, seed=0)
    assert train.sum() == 4 and val.sum() == 1 and test.sum() == 1
    with pytest.raises(ValueError, match="num_train_per_class"):
        G.planetoid_masks(labels, 4, 0, 0, seed=0)
    with pytest.raises(ValueError, match="num_val"):
        G.planetoid_masks(labels, 2, 2, 1, seed=0)
