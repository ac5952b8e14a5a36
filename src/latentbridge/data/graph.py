"""Graph datasets for node classification (Cora-style), offline-first.

Registered (modality ``"graph"``, one split named ``"full"`` with train/val/test masks):

``wordnet-graph``
    A Cora-like text-attributed graph built from WordNet noun synsets (Debian ``wordnet-base``).
    Nodes are synsets, edges noun→noun pointers, labels lexicographer classes, features a binary
    bag of words of the gloss. See :func:`load_wordnet_graph`.
``sbm``
    A stochastic block model with class-dependent Gaussian features. See :func:`load_sbm`.
``karate``
    Zachary's karate club (34 nodes, 2 clubs). See :func:`load_karate`.
``cora``, ``citeseer``, ``pubmed``
    The LINQS citation graphs, read from their *original text formats* when the files are
    present (the Planetoid pickles are never read: unpickling runs arbitrary code). See
    :func:`load_linqs`.

Every graph is undirected: ``edge_index`` lists both directions of each edge, has no self loops
and no duplicates. Masks follow Planetoid (Yang et al., 2016): ``num_train_per_class`` labelled
nodes per class, then ``num_val`` and ``num_test`` nodes drawn from the rest; the remaining
nodes are unlabelled for training purposes. Everything is deterministic for ``seed``.

Nothing is read and nothing heavy (networkx, torch_geometric) is imported before a loader runs.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_choice, check_int, check_positive_int, check_seed
from ._common import DATA_ENV, wordnet_root
from ._registry import DatasetSpec, GraphDataset, SourceMissingError, register

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor
    from torch_geometric.data import Data

__all__ = [
    "LEXNAMES",
    "STOP_WORDS",
    "homophily",
    "load_karate",
    "load_linqs",
    "load_sbm",
    "load_wordnet_graph",
    "planetoid_masks",
    "to_pyg",
    "to_tensors",
]

# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

#: Planetoid's Cora proportions (500 val and 1000 test nodes out of 2708), used where a dataset
#: is sized by options rather than fixed (``sbm``).
_CORA_VAL_FRACTION = 500 / 2708
_CORA_TEST_FRACTION = 1000 / 2708


def _data_dir(name: str, root: str | os.PathLike[str] | None) -> Path | None:
    """``root`` if given, else ``$LATENTBRIDGE_DATA/<name>`` if set, else ``None``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser() / name
    return None


#: The one split of a graph dataset (train/val/test are masks).
_SPLITS = ("full",)


def _check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _undirected_edge_index(pairs: np.ndarray, num_nodes: int) -> np.ndarray:
    """``int64 (2, 2E)``: both directions of each undirected edge, no self loops, no duplicates.

    ``pairs`` is ``(2, M)`` of node indices in any direction, possibly repeated; the result is
    sorted by (source, target).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(2, -1)
    pairs = pairs[:, pairs[0] != pairs[1]]
    both = np.concatenate([pairs, pairs[::-1]], axis=1)
    keys = np.unique(both[0] * num_nodes + both[1])
    return np.stack([keys // num_nodes, keys % num_nodes]).astype(np.int64)


def planetoid_masks(
    labels: np.ndarray, num_train_per_class: int, num_val: int, num_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planetoid-style boolean masks ``(train, val, test)``, each ``bool (N,)``, disjoint.

    ``num_train_per_class`` nodes of each class are drawn at random for training; ``num_val``
    then ``num_test`` nodes are drawn from a random permutation of the remaining nodes (as
    ``torch_geometric``'s ``RandomNodeSplit(split="random")``). Deterministic for ``seed``.
    """
    labels = np.asarray(labels)
    n = int(labels.shape[0])
    rng = np.random.default_rng(seed)
    train = np.zeros(n, dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if members.size < num_train_per_class:
            raise ValueError(
                f"num_train_per_class={num_train_per_class} exceeds the {members.size} nodes "
                f"of class {int(c)}"
            )
        train[rng.choice(members, size=num_train_per_class, replace=False)] = True
    rest = rng.permutation(np.flatnonzero(~train))
    if num_val + num_test > rest.size:
        raise ValueError(
            f"num_val + num_test must be at most the {rest.size} nodes left after training, "
            f"got num_val={num_val}, num_test={num_test}"
        )
    val = np.zeros(n, dtype=bool)
    test = np.zeros(n, dtype=bool)
    val[rest[:num_val]] = True
    test[rest[num_val : num_val + num_test]] = True
    return train, val, test


def homophily(graph: GraphDataset) -> float:
    """Edge homophily: the fraction of edges whose two endpoints share a label.

    ``h = |{(u, v) in E : y_u = y_v}| / |E|`` (Zhu et al., 2020). Counting both directions of an
    undirected edge does not change the ratio. Raises ``ValueError`` on a graph without edges.
    """
    edge_index = np.asarray(graph.edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"graph.edge_index must have shape (2, E), got {edge_index.shape}")
    if edge_index.shape[1] == 0:
        raise ValueError("graph has no edges: homophily is undefined")
    labels = np.asarray(graph.labels)
    return float(np.mean(labels[edge_index[0]] == labels[edge_index[1]]))


def to_tensors(graph: GraphDataset) -> dict[str, Tensor]:
    """The graph's arrays copied into tensors: ``x`` float32 ``(N, F)``, ``edge_index`` int64
    ``(2, E)``, ``y`` int64 ``(N,)`` and the ``train_mask``/``val_mask``/``test_mask`` bool
    ``(N,)``. Needs torch only."""
    if not isinstance(graph, GraphDataset):
        raise TypeError(f"graph must be a GraphDataset, got {type(graph).__name__}")
    import torch

    return {
        "x": torch.tensor(graph.features, dtype=torch.float32),
        "edge_index": torch.tensor(graph.edge_index, dtype=torch.int64),
        "y": torch.tensor(graph.labels, dtype=torch.int64),
        "train_mask": torch.tensor(graph.train_mask, dtype=torch.bool),
        "val_mask": torch.tensor(graph.val_mask, dtype=torch.bool),
        "test_mask": torch.tensor(graph.test_mask, dtype=torch.bool),
    }


def to_pyg(graph: GraphDataset) -> Data:
    """The graph as a ``torch_geometric.data.Data`` holding :func:`to_tensors`' tensors."""
    tensors = to_tensors(graph)
    from torch_geometric.data import Data

    return Data(**tensors, num_nodes=graph.num_nodes)


def _graph(
    name: str,
    features: np.ndarray,
    pairs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: dict[str, Any],
) -> GraphDataset:
    num_nodes = int(labels.shape[0])
    return GraphDataset(
        name=name,
        features=np.ascontiguousarray(features, dtype=np.float32),
        edge_index=_undirected_edge_index(pairs, num_nodes),
        labels=np.asarray(labels, dtype=np.int64),
        classes=tuple(classes),
        train_mask=masks[0],
        val_mask=masks[1],
        test_mask=masks[2],
        options=options,
    )


# --------------------------------------------------------------------------------------------
# WordNet noun graph
# --------------------------------------------------------------------------------------------

#: The standard WordNet lexicographer files, indexed by ``lex_filenum``.
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip

#: Stop words removed from glosses before building the vocabulary: a short list of English
#: function words (articles, pronouns, prepositions, conjunctions, auxiliaries), so that the
#: features carry topical words, as Cora's do (Cora's vocabulary also excludes stop words).
STOP_WORDS: frozenset[str] = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each etc
    few for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just may me might more most much must my myself no nor not now of
    off on once one only or other ought our ours ourselves out over own same she should so some
    such than that the their theirs them themselves then there these they this those through
    to too under until up upon very was we were what when where which while who whom whose why
    will with within without would you your yours yourself yourselves""".split()
)

_TOKEN = re.compile(r"[a-z]+")


def _wordnet_available() -> bool:
    return (wordnet_root() / "data.noun").is_file()


_WORDNET_HINT = (
    "install Debian's wordnet-base (apt-get install wordnet-base, which provides "
    "/usr/share/wordnet/data.noun), or put WordNet 3.0's data.noun in $LATENTBRIDGE_DATA/wordnet "
    "or in the folder passed as root="
)


@functools.lru_cache(maxsize=4)
def _parse_wordnet_nouns(
    path: str, _mtime_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Parse ``data.noun`` into ``(offsets, lexfile, pairs, glosses)``.

    ``offsets`` and ``lexfile`` are ``int64 (S,)`` (one per synset), ``pairs`` ``int64 (2, M)``.

    ``pairs`` are noun→noun pointers as synset indices (direction as listed; pointers to other
    parts of speech are dropped). Cached per file and modification time.
    """
    offsets: list[int] = []
    lexfile: list[int] = []
    targets: list[list[int]] = []
    glosses: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            if line.startswith("  ") or not line.strip():
                continue  # licence header
            data, sep, gloss = line.partition(" | ")
            fields = data.split()
            try:
                if not sep or fields[2] != "n":
                    raise ValueError("not a noun synset line")
                w_cnt = int(fields[3], 16)
                p_pos = 4 + 2 * w_cnt
                p_cnt = int(fields[p_pos])
                ptrs = fields[p_pos + 1 : p_pos + 1 + 4 * p_cnt]
                if len(ptrs) != 4 * p_cnt:
                    raise ValueError("too few pointer fields")
                offsets.append(int(fields[0]))
                lexfile.append(int(fields[1]))
                targets.append(
                    [int(ptrs[i + 1]) for i in range(0, len(ptrs), 4) if ptrs[i + 2] == "n"]
                )
            except (IndexError, ValueError) as error:
                raise ValueError(f"{path}, line {lineno}: malformed synset ({error})") from None
            glosses.append(gloss.strip())
    offset_array = np.asarray(offsets, dtype=np.int64)
    index = {o: i for i, o in enumerate(offsets)}
    src = [i for i, ts in enumerate(targets) for t in ts if t in index]
    dst = [index[t] for ts in targets for t in ts if t in index]
    pairs = np.asarray([src, dst], dtype=np.int64).reshape(2, -1)
    return offset_array, np.asarray(lexfile, dtype=np.int64), pairs, tuple(glosses)


def _grow_balanced(
    adjacency: list[list[int]],
    node_class: np.ndarray,
    num_classes: int,
    per_class: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Balanced, connectivity-preferring sample of ``per_class`` nodes of each class.

    Each class keeps a *frontier*: one entry per edge from a chosen node to an unchosen node of
    that class, so a frontier node is picked with probability proportional to its number of
    already-chosen neighbours. Classes take turns (round robin); at its turn a class adds one
    node, uniformly from its frontier, or, when the frontier is empty (at the start, or when a
    component is exhausted), a uniformly random unchosen node of the class (a new seed). The
    result is exactly balanced, and every node but the seeds has an edge into the sample.
    """
    chosen = np.zeros(len(adjacency), dtype=bool)
    frontier: list[list[int]] = [[] for _ in range(num_classes)]
    pools = [rng.permutation(np.flatnonzero(node_class == c)).tolist() for c in range(num_classes)]
    counts = [0] * num_classes
    order: list[int] = []
    while len(order) < num_classes * per_class:
        for c in range(num_classes):
            if counts[c] == per_class:
                continue
            node = -1
            while frontier[c]:
                j = int(rng.integers(len(frontier[c])))
                frontier[c][j], frontier[c][-1] = frontier[c][-1], frontier[c][j]
                candidate = frontier[c].pop()
                if not chosen[candidate]:
                    node = candidate
                    break
            while node < 0:  # new seed: pools are shuffled, so popping is a uniform draw
                candidate = pools[c].pop()
                if not chosen[candidate]:
                    node = candidate
            chosen[node] = True
            counts[c] += 1
            order.append(node)
            for neighbour in adjacency[node]:
                if not chosen[neighbour] and node_class[neighbour] >= 0:
                    frontier[int(node_class[neighbour])].append(neighbour)
    return np.sort(np.asarray(order, dtype=np.int64))


def load_wordnet_graph(
    split: str = "full",
    *,
    num_classes: int = 7,
    nodes_per_class: int = 400,
    vocab_size: int = 1433,
    num_train_per_class: int = 20,
    num_val: int = 500,
    num_test: int = 1000,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
) -> GraphDataset:
    """A Cora-like text-attributed graph from WordNet noun synsets.

    * **Nodes**: noun synsets of the ``num_classes`` most frequent lexicographer classes (ties
      broken by class index), ``nodes_per_class`` of each, sampled by
      :func:`_grow_balanced` (a balanced growth that prefers nodes adjacent to those already
      chosen, so the sample stays connected; a plain BFS over-samples some classes).
    * **Edges**: every noun→noun pointer (hypernym ``@``, hyponym ``~``, instance, member /
      part / substance meronyms and holonyms, attribute, domain, derivation, ...) between two
      sampled synsets, undirected, deduplicated, without self loops.
    * **Labels**: the lexicographer class (``noun.animal``, ...); ``classes`` are in lexname
      order.
    * **Features**: ``float32 (N, V)`` binary bag of words of the gloss (definition and
      examples) over the ``vocab_size`` tokens (lowercase runs of ``a-z``, at least two letters,
      not in :data:`STOP_WORDS`) that occur in the most sampled glosses (ties alphabetical);
      ``V`` is smaller only when fewer distinct tokens occur.
    * **Masks**: :func:`planetoid_masks` (20 per class, 500 val, 1000 test by default).

    Nodes are ordered by synset offset. Reads ``data.noun`` from ``root``, else
    ``$LATENTBRIDGE_DATA/wordnet`` if that folder exists, else ``/usr/share/wordnet`` (see
    :func:`latentbridge.data._common.wordnet_root`). Deterministic for ``seed``.
    """
    check_choice(split, "split", _SPLITS)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    nodes_per_class = check_positive_int(nodes_per_class, "nodes_per_class")
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    num_train_per_class = check_positive_int(num_train_per_class, "num_train_per_class")
    num_val = check_positive_int(num_val, "num_val", allow_zero=True)
    num_test = check_positive_int(num_test, "num_test", allow_zero=True)
    seed = check_seed(seed)
    if num_train_per_class > nodes_per_class:
        raise ValueError(
            f"num_train_per_class must be at most nodes_per_class={nodes_per_class}, "
            f"got {num_train_per_class}"
        )
    path = wordnet_root(root) / "data.noun"
    if not path.is_file():
        raise SourceMissingError(f"WordNet data.noun not found (looked at {path}): {_WORDNET_HINT}")
    offsets, lexfile, pairs, glosses = _parse_wordnet_nouns(str(path), path.stat().st_mtime_ns)

    counts = Counter(lexfile.tolist())
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    if num_classes > len(ranked):
        raise ValueError(f"num_classes must be at most {len(ranked)}, got {num_classes}")
    kept = sorted(ranked[:num_classes])
    smallest = min(counts[k] for k in kept)
    if nodes_per_class > smallest:
        raise ValueError(
            f"nodes_per_class must be at most {smallest} (the smallest of the {num_classes} "
            f"classes), got {nodes_per_class}"
        )
    node_class = np.full(offsets.shape[0], -1, dtype=np.int64)
    for c, k in enumerate(kept):
        node_class[lexfile == k] = c
    adjacency: list[list[int]] = [[] for _ in range(offsets.shape[0])]
    for u, v in pairs.T.tolist():
        if u != v and node_class[u] >= 0 and node_class[v] >= 0:
            adjacency[u].append(v)
            adjacency[v].append(u)
    adjacency = [sorted(set(a)) for a in adjacency]  # dedupe: frontier weights count neighbours

    rng = np.random.default_rng(seed)
    nodes = _grow_balanced(adjacency, node_class, num_classes, nodes_per_class, rng)
    position = np.full(offsets.shape[0], -1, dtype=np.int64)
    position[nodes] = np.arange(nodes.size)
    inside = (position[pairs[0]] >= 0) & (position[pairs[1]] >= 0)
    local_pairs = position[pairs[:, inside]]

    tokens = [
        {t for t in _TOKEN.findall(glosses[i].lower()) if len(t) > 1 and t not in STOP_WORDS}
        for i in nodes.tolist()
    ]
    frequency = Counter(t for ts in tokens for t in ts)
    vocabulary = sorted(frequency, key=lambda t: (-frequency[t], t))[:vocab_size]
    column = {t: j for j, t in enumerate(vocabulary)}
    features = np.zeros((nodes.size, len(vocabulary)), dtype=np.float32)
    for i, ts in enumerate(tokens):
        features[i, [column[t] for t in ts if t in column]] = 1.0

    labels = node_class[nodes]
    masks = planetoid_masks(labels, num_train_per_class, num_val, num_test, seed)
    options = {
        "num_classes": num_classes,
        "nodes_per_class": nodes_per_class,
        "vocab_size": vocab_size,
        "num_train_per_class": num_train_per_class,
        "num_val": num_val,
        "num_test": num_test,
        "seed": seed,
        "root": str(path.parent),
        "vocabulary": tuple(vocabulary),
        "synset_offsets": offsets[nodes],
    }
    classes = [LEXNAMES[k] for k in kept]
    return _graph("wordnet-graph", features, local_pairs, labels, classes, masks, options)


# --------------------------------------------------------------------------------------------
# Stochastic block model
# --------------------------------------------------------------------------------------------


def load_sbm(
    split: str = "full",
    *,
    num_classes: int = 5,
    nodes_per_class: int = 200,
    p_in: float = 0.05,
    p_out: float = 0.005,
    feature_dim: int = 32,
    feature_noise: float = 1.0,
    num_train_per_class: int = 20,
    num_val: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
) -> GraphDataset:
    """A stochastic block model with class-dependent Gaussian features.

    Node ``i`` of class ``y_i`` links to node ``j`` with probability ``p_in`` if ``y_i = y_j``
    and ``p_out`` otherwise (``torch_geometric.utils.stochastic_blockmodel_graph``, undirected).
    Features: ``x_i = mu_{y_i} + feature_noise * eps_i`` with class means ``mu_c ~ N(0, I_d)``
    and ``eps_i ~ N(0, I_d)``, ``d = feature_dim``. The expected edge homophily is
    ``p_in / (p_in + (C - 1) p_out)``, i.e. ``1 / C`` when ``p_in == p_out``.

    Masks: :func:`planetoid_masks` with ``num_train_per_class`` per class and, by default,
    Cora's proportions of all nodes for validation and test (``round(N * 500 / 2708)`` and
    ``round(N * 1000 / 2708)``: 185 and 369 of the default 1000 nodes). Nodes are ordered by
    class. Randomness comes from ``seed`` inside ``torch.random.fork_rng``: the global torch
    RNG state is left untouched.
    """
    check_choice(split, "split", _SPLITS)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    nodes_per_class = check_positive_int(nodes_per_class, "nodes_per_class")
    p_in = _check_probability("p_in", p_in)
    p_out = _check_probability("p_out", p_out)
    feature_dim = check_positive_int(feature_dim, "feature_dim")
    if isinstance(feature_noise, bool) or not isinstance(feature_noise, (int, float)):
        raise ValueError(f"feature_noise must be a number >= 0, got {feature_noise!r}")
    if not feature_noise >= 0.0:
        raise ValueError(f"feature_noise must be a number >= 0, got {feature_noise!r}")
    num_train_per_class = check_positive_int(num_train_per_class, "num_train_per_class")
    seed = check_seed(seed)
    n = num_classes * nodes_per_class
    num_val = round(n * _CORA_VAL_FRACTION) if num_val is None else num_val
    num_test = round(n * _CORA_TEST_FRACTION) if num_test is None else num_test
    num_val = check_positive_int(num_val, "num_val", allow_zero=True)
    num_test = check_positive_int(num_test, "num_test", allow_zero=True)

    import torch
    from torch_geometric.utils import stochastic_blockmodel_graph

    probs = torch.full((num_classes, num_classes), p_out)
    probs.fill_diagonal_(p_in)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        edge_index = stochastic_blockmodel_graph([nodes_per_class] * num_classes, probs)
        labels = torch.arange(num_classes).repeat_interleave(nodes_per_class)
        means = torch.randn(num_classes, feature_dim)
        features = means[labels] + feature_noise * torch.randn(n, feature_dim)
    labels_np = labels.numpy().astype(np.int64)
    masks = planetoid_masks(labels_np, num_train_per_class, num_val, num_test, seed)
    options = {
        "num_classes": num_classes,
        "nodes_per_class": nodes_per_class,
        "p_in": p_in,
        "p_out": p_out,
        "feature_dim": feature_dim,
        "feature_noise": float(feature_noise),
        "num_train_per_class": num_train_per_class,
        "num_val": num_val,
        "num_test": num_test,
        "seed": seed,
    }
    classes = [f"block{c}" for c in range(num_classes)]
    return _graph("sbm", features.numpy(), edge_index.numpy(), labels_np, classes, masks, options)


# --------------------------------------------------------------------------------------------
# Zachary's karate club
# --------------------------------------------------------------------------------------------


def load_karate(split: str = "full", *, seed: int = 0) -> GraphDataset:
    """Zachary's karate club (Zachary, 1977) via ``networkx.karate_club_graph``.

    34 members, 78 friendships (156 directed entries), labelled by the club each joined after
    the split (``"Mr. Hi"`` = 0, ``"Officer"`` = 1). Features are the identity ``(34, 34)``.
    Masks: 2 training nodes per class (4 in all), then the 30 others split 10 validation /
    20 test (Planetoid's 1:2 ratio), deterministic for ``seed``.
    """
    check_choice(split, "split", _SPLITS)
    seed = check_seed(seed)
    import networkx as nx

    g = nx.karate_club_graph()
    classes = ("Mr. Hi", "Officer")
    nodes = sorted(g.nodes)
    labels = np.asarray([classes.index(g.nodes[v]["club"]) for v in nodes], dtype=np.int64)
    pairs = np.asarray(list(g.edges), dtype=np.int64).T
    masks = planetoid_masks(labels, 2, 10, 20, seed)
    features = np.eye(len(nodes), dtype=np.float32)
    return _graph("karate", features, pairs, labels, classes, masks, {"seed": seed})


# --------------------------------------------------------------------------------------------
# LINQS citation graphs (original text formats)
# --------------------------------------------------------------------------------------------

_LINQS_FILES: dict[str, tuple[str, str]] = {
    "cora": ("cora.content", "cora.cites"),
    "citeseer": ("citeseer.content", "citeseer.cites"),
    "pubmed": ("Pubmed-Diabetes.NODE.paper.tab", "Pubmed-Diabetes.DIRECTED.cites.tab"),
}


def _linqs_paths(name: str, root: str | os.PathLike[str] | None) -> tuple[Path, Path] | None:
    folder = _data_dir(name, root)
    if folder is None:
        return None
    content, cites = _LINQS_FILES[name]
    return folder / content, folder / cites


def _linqs_available(name: str) -> bool:
    paths = _linqs_paths(name, None)
    return paths is not None and all(p.is_file() for p in paths)


def _linqs_hint(name: str) -> str:
    content, cites = _LINQS_FILES[name]
    return (
        f"put the original LINQS files {content} and {cites} in $LATENTBRIDGE_DATA/{name} (or "
        f"the folder passed as root=); the Planetoid pickles (ind.{name}.*) are not read"
    )


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _read_content(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """``<paper_id> \\t <word_1> ... <word_F> \\t <class_label>`` → ids, ``(N, F)`` 0/1, labels."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    labels: list[str] = []
    seen: set[str] = set()
    width = -1
    for lineno, line in _lines(path):
        fields = line.split("\t")
        if width < 0:
            width = len(fields)
        try:
            if len(fields) != width or width < 3:
                raise ValueError(
                    f"expected {max(width, 3)} tab-separated fields, got {len(fields)}"
                )
            row = np.asarray(fields[1:-1], dtype=np.float32)
            if not np.all((row == 0) | (row == 1)):
                raise ValueError("word attributes must be 0 or 1")
        except ValueError as error:
            raise ValueError(f"{path}, line {lineno}: malformed content line ({error})") from None
        if fields[0] in seen:
            raise ValueError(f"{path}, line {lineno}: duplicate paper id {fields[0]!r}")
        seen.add(fields[0])
        ids.append(fields[0])
        rows.append(row)
        labels.append(fields[-1])
    if not ids:
        raise ValueError(f"{path}: no content lines")
    return ids, np.stack(rows), labels


def _read_cites(path: Path, index: dict[str, int]) -> np.ndarray:
    """``<cited> \\t <citing>`` → ``(2, M)`` node indices; ids without a content row are dropped
    (CiteSeer cites a few papers that have none)."""
    src: list[int] = []
    dst: list[int] = []
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(
                f"{path}, line {lineno}: malformed cites line (expected 2 fields, got "
                f"{len(fields)})"
            )
        if fields[0] in index and fields[1] in index:
            src.append(index[fields[1]])
            dst.append(index[fields[0]])
    return np.asarray([src, dst], dtype=np.int64).reshape(2, -1)


def _read_pubmed_nodes(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """``Pubmed-Diabetes.NODE.paper.tab``: a ``NODE paper`` line, a header declaring the
    ``numeric:w-xxx:0.0`` word features, then ``id \\t label=N \\t w-xxx=tfidf ... \\t summary=...``
    (only the non-zero words are listed). Returns ids, TF-IDF ``(N, 500)``, label strings."""
    lines = iter(_lines(path))
    words: dict[str, int] = {}
    try:
        lineno, first = next(lines)
        if not first.startswith("NODE"):
            raise ValueError(f"{path}, line {lineno}: expected the 'NODE\\tpaper' header")
        lineno, header = next(lines)
    except StopIteration:
        raise ValueError(f"{path}: missing header lines") from None
    for field in header.split("\t"):
        kind, _, rest = field.partition(":")
        if kind == "numeric":
            words.setdefault(rest.split(":")[0], len(words))
    if not words:
        raise ValueError(f"{path}, line {lineno}: header declares no numeric word features")
    ids: list[str] = []
    rows: list[np.ndarray] = []
    labels: list[str] = []
    for lineno, line in lines:
        fields = line.split("\t")
        row = np.zeros(len(words), dtype=np.float32)
        try:
            if len(fields) < 2 or not fields[1].startswith("label="):
                raise ValueError("expected 'id \\t label=N \\t ...'")
            for field in fields[2:]:
                key, eq, value = field.partition("=")
                if not field or key == "summary":
                    continue
                if not eq or key not in words:
                    raise ValueError(f"unknown word feature {field!r}")
                row[words[key]] = float(value)
        except ValueError as error:
            raise ValueError(f"{path}, line {lineno}: malformed node line ({error})") from None
        ids.append(fields[0])
        labels.append(fields[1][len("label=") :])
        rows.append(row)
    if not ids:
        raise ValueError(f"{path}: no node lines")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate paper ids")
    return ids, np.stack(rows), labels


def _read_pubmed_cites(path: Path, index: dict[str, int]) -> np.ndarray:
    """``Pubmed-Diabetes.DIRECTED.cites.tab``: two header lines (``DIRECTED cites``,
    ``NO_FEATURES``), then ``edge_id \\t paper:A \\t | \\t paper:B`` (A cites B)."""
    src: list[int] = []
    dst: list[int] = []
    for count, (lineno, line) in enumerate(_lines(path)):
        if count < 2:
            if count == 0 and not line.startswith("DIRECTED"):
                raise ValueError(f"{path}, line {lineno}: expected the 'DIRECTED\\tcites' header")
            continue
        fields = line.split("\t")
        if (
            len(fields) != 4
            or fields[2].strip() != "|"
            or not fields[1].startswith("paper:")
            or not fields[3].startswith("paper:")
        ):
            raise ValueError(
                f"{path}, line {lineno}: malformed cites line "
                "(expected 'id \\t paper:A \\t | \\t paper:B')"
            )
        a, b = fields[1][len("paper:") :], fields[3][len("paper:") :]
        if a in index and b in index:
            src.append(index[a])
            dst.append(index[b])
    return np.asarray([src, dst], dtype=np.int64).reshape(2, -1)


def load_linqs(
    name: str,
    split: str = "full",
    *,
    root: str | os.PathLike[str] | None = None,
    num_train_per_class: int = 20,
    num_val: int = 500,
    num_test: int = 1000,
    seed: int = 0,
) -> GraphDataset:
    """Cora, CiteSeer or PubMed from the original LINQS text files (never the Planetoid pickles).

    * ``cora``: ``cora.content`` (``paper_id \\t 1433 binary words \\t label``) and
      ``cora.cites`` (``cited \\t citing``).
    * ``citeseer``: ``citeseer.content`` / ``citeseer.cites``, same layout with string ids;
      citations of papers without a content row are dropped.
    * ``pubmed``: ``Pubmed-Diabetes.NODE.paper.tab`` (TF-IDF of 500 words, labels 1–3) and
      ``Pubmed-Diabetes.DIRECTED.cites.tab``.

    Files are read from ``root``, else ``$LATENTBRIDGE_DATA/<name>``. Nodes keep the order of the
    content file; ``classes`` are the sorted label strings (numerically for PubMed). Citations
    become undirected edges (deduplicated, self citations dropped). Masks:
    :func:`planetoid_masks`. A malformed line raises ``ValueError`` naming the file and line.
    """
    if name not in _LINQS_FILES:
        raise ValueError(f"name must be one of {sorted(_LINQS_FILES)}, got {name!r}")
    check_choice(split, "split", _SPLITS)
    num_train_per_class = check_positive_int(num_train_per_class, "num_train_per_class")
    num_val = check_positive_int(num_val, "num_val", allow_zero=True)
    num_test = check_positive_int(num_test, "num_test", allow_zero=True)
    seed = check_seed(seed)
    paths = _linqs_paths(name, root)
    if paths is None or not all(p.is_file() for p in paths):
        where = (
            "root and $LATENTBRIDGE_DATA are unset" if paths is None else f"under {paths[0].parent}"
        )
        raise SourceMissingError(f"{name} files not found ({where}): {_linqs_hint(name)}")
    content_path, cites_path = paths
    if name == "pubmed":
        ids, features, label_names = _read_pubmed_nodes(content_path)
        index = {p: i for i, p in enumerate(ids)}
        pairs = _read_pubmed_cites(cites_path, index)
        classes = sorted(set(label_names), key=lambda s: (len(s), s))
    else:
        ids, features, label_names = _read_content(content_path)
        index = {p: i for i, p in enumerate(ids)}
        pairs = _read_cites(cites_path, index)
        classes = sorted(set(label_names))
    labels = np.asarray([classes.index(s) for s in label_names], dtype=np.int64)
    masks = planetoid_masks(labels, num_train_per_class, num_val, num_test, seed)
    options = {
        "root": str(content_path.parent),
        "num_train_per_class": num_train_per_class,
        "num_val": num_val,
        "num_test": num_test,
        "seed": seed,
        "paper_ids": tuple(ids),
    }
    return _graph(name, features, pairs, labels, classes, masks, options)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------

register(
    DatasetSpec(
        name="wordnet-graph",
        modality="graph",
        splits=("full",),
        num_classes=7,
        size={"full": 2800},
        loader=load_wordnet_graph,
        is_available=_wordnet_available,
        install_hint=_WORDNET_HINT,
        source="WordNet 3.0 noun synsets (Princeton University): data.noun, Debian wordnet-base",
        license="WordNet 3.0 license (Princeton University; free use, copy and distribution)",
        description="Cora-like: synsets, noun pointers, gloss bag of words, lexicographer class",
    )
)
register(
    DatasetSpec(
        name="sbm",
        modality="graph",
        splits=("full",),
        num_classes=5,
        size={"full": 1000},
        loader=load_sbm,
        is_available=lambda: True,
        install_hint="needs torch_geometric (pip install torch_geometric)",
        source="synthetic: torch_geometric.utils.stochastic_blockmodel_graph + Gaussian features",
        license="synthetic (no license restrictions)",
        description="stochastic block model with class-dependent Gaussian features",
    )
)
register(
    DatasetSpec(
        name="karate",
        modality="graph",
        splits=("full",),
        num_classes=2,
        size={"full": 34},
        loader=load_karate,
        is_available=lambda: True,
        install_hint="needs networkx (pip install networkx)",
        source="Zachary (1977), J. Anthropol. Res. 33(4); networkx.karate_club_graph",
        license="public (published in Zachary, 1977)",
        description="Zachary's karate club, 2 clubs, identity features (smoke tests)",
    )
)
for _name, _size, _classes, _title in (
    ("cora", 2708, 7, "Cora (McCallum et al., 2000; Sen et al., 2008)"),
    ("citeseer", 3312, 6, "CiteSeer (Giles et al., 1998; Sen et al., 2008)"),
    ("pubmed", 19717, 3, "PubMed Diabetes (Namata et al., 2012)"),
):
    register(
        DatasetSpec(
            name=_name,
            modality="graph",
            splits=("full",),
            num_classes=_classes,
            size={"full": _size},
            loader=functools.partial(load_linqs, _name),
            is_available=functools.partial(_linqs_available, _name),
            install_hint=_linqs_hint(_name),
            source=f"{_title}, LINQS original text files (https://linqs.org/datasets/)",
            license="LINQS: free for research use",
            description="citation graph read from the original LINQS text formats",
        )
    )
del _name, _size, _classes, _title
