"""The argument checkers of ``latentbridge._validation`` and their use across the package: one
rule per kind of argument, one message form naming the argument, the error types kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from latentbridge import aggregations, alignment, anchors, metrics
from latentbridge._validation import (
    WrongTypeError,
    check_bool,
    check_choice,
    check_int,
    check_positive_int,
    check_seed,
)
from latentbridge.cache import EmbeddingCache
from latentbridge.data import graph, text, vision

NOT_INTEGERS = [True, False, np.True_, 2.0, 2.5, "3", None, np.float64(1.0), torch.tensor(3)]


def _x(n: int = 20, d: int = 3) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, d))


# -- the checkers --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 7, np.int64(7), np.uint8(3), 2**40])
def test_check_int_accepts_python_and_numpy_integers(value: object) -> None:
    out = check_int(value, "n")
    assert type(out) is int and out == int(value)  # type: ignore[call-overload]


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_check_int_rejects_other_types_as_type_and_value_error(value: object) -> None:
    with pytest.raises(WrongTypeError, match=r"^n must be an integer, got ") as info:
        check_int(value, "n")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("bounds", "inside", "outside", "message"),
    [
        ({"minimum": 1}, 1, 0, "n must be a positive integer, got 0"),
        ({"minimum": 0}, 0, -1, "n must be a non-negative integer, got -1"),
        ({"minimum": 32}, 32, 31, "n must be an integer >= 32, got 31"),
        ({"maximum": 9}, -5, 10, "n must be an integer <= 9, got 10"),
        ({"minimum": 0, "maximum": 9}, 9, 10, "n must be an integer in [0, 9], got 10"),
        ({"minimum": 0, "maximum": 9}, 0, -1, "n must be an integer in [0, 9], got -1"),
    ],
)
def test_check_int_bounds_are_value_errors_that_state_the_range(
    bounds: dict[str, int], inside: int, outside: int, message: str
) -> None:
    assert check_int(inside, "n", **bounds) == inside
    with pytest.raises(ValueError) as info:
        check_int(outside, "n", **bounds)
    assert str(info.value) == message
    assert not isinstance(info.value, TypeError)


def test_check_positive_int_and_check_seed() -> None:
    assert check_positive_int(1, "k") == 1
    assert check_positive_int(0, "k", allow_zero=True) == 0
    with pytest.raises(ValueError, match=r"^k must be a positive integer, got 0$"):
        check_positive_int(0, "k")
    with pytest.raises(ValueError, match=r"^k must be a non-negative integer, got -1$"):
        check_positive_int(-1, "k", allow_zero=True)
    assert check_seed(np.int32(5)) == 5 and check_seed(2**63) == 2**63
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got -1$"):
        check_seed(-1)
    with pytest.raises(TypeError, match=r"^init_seed must be a non-negative integer, got 1\.5$"):
        check_seed(1.5, "init_seed")


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_, np.bool_(1)])
def test_check_bool_accepts_python_and_numpy_booleans(value: object) -> None:
    out = check_bool(value, "flag")
    assert type(out) is bool and out == bool(value)


@pytest.mark.parametrize("value", [0, 1, np.int64(1), "yes", None, 1.0, torch.tensor(True)])
def test_check_bool_rejects_everything_else(value: object) -> None:
    with pytest.raises(WrongTypeError, match=r"^flag must be a bool, got "):
        check_bool(value, "flag")


def test_check_choice() -> None:
    assert check_choice("b", "mode", ("a", "b")) == "b"
    for bad in ("c", None, 1, ["a"]):
        with pytest.raises(ValueError, match=r"^mode must be one of \['a', 'b'\], got "):
            check_choice(bad, "mode", ("a", "b"))


# -- the same rule wherever an argument of that kind is taken --------------------------------

BOOL_ARGUMENTS: list[tuple[str, Callable[[Any], object]]] = [
    ("debiased", lambda v: metrics.linear_cka(_x(), _x(), debiased=v)),
    ("debiased", lambda v: metrics.rbf_cka(_x(), _x(), debiased=v)),
    ("proper", lambda v: alignment.Orthogonal(proper=v).fit(_x(), _x())),
    ("proper", lambda v: alignment.Similarity(proper=v).fit(_x(), _x())),
    ("std_scaling", lambda v: alignment.Translator(std_scaling=v).fit(_x(), _x())),
]


@pytest.mark.parametrize(("name", "call"), BOOL_ARGUMENTS)
def test_every_flag_accepts_numpy_booleans_and_rejects_integers(
    name: str, call: Callable[[Any], object]
) -> None:
    call(np.True_)
    call(False)
    for bad in (1, 0, "yes"):
        with pytest.raises(TypeError, match=rf"^{name} must be a bool, got {bad!r}$"):
            call(bad)


# Loader flags refused before any file is read (a ValueError as they always were).
LOADER_FLAGS: list[tuple[str, Callable[[Any], object]]] = [
    ("download", lambda v: vision.load_mnist(download=v)),
    ("download", lambda v: vision.load_cifar10(download=v)),
    ("download", lambda v: vision.load_cifar100(download=v)),
    ("with_lemma", lambda v: text.load_wordnet(with_lemma=v)),
    ("with_title", lambda v: text.load_hf_text("dbpedia_14", with_title=v)),
]


@pytest.mark.parametrize(("name", "call"), LOADER_FLAGS)
def test_loader_flags_follow_the_same_rule(name: str, call: Callable[[Any], object]) -> None:
    for bad in (1, "yes"):
        with pytest.raises(ValueError, match=rf"^{name} must be a bool, got {bad!r}$"):
            call(bad)


SEEDS: list[Callable[[Any], object]] = [
    lambda s: anchors.select(_x(), 3, seed=s),
    lambda s: vision.load_digits(seed=s),
    lambda s: text.load_wordnet(seed=s),
    lambda s: graph.load_sbm(seed=s),
    lambda s: graph.load_karate(seed=s),
]


@pytest.mark.parametrize("call", SEEDS)
def test_every_seed_is_a_non_negative_integer(call: Callable[[Any], object]) -> None:
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got "):
            call(bad)
    with pytest.raises(TypeError, match=r"^seed must be a non-negative integer, got 1\.5$"):
        call(1.5)


POSITIVE_INTS: list[tuple[str, Callable[[Any], object]]] = [
    ("k", lambda v: anchors.select(_x(), v)),
    ("chunk_size", lambda v: metrics.linear_cka(_x(), _x(), method="streaming", chunk_size=v)),
    ("num_anchors", lambda v: aggregations.get("sum")(2, v)),
    ("num_subspaces", lambda v: aggregations.get("concat")(v, 4)),
    ("chunk_size", lambda v: EmbeddingCache("unused").compute({}, 4, np.ones, chunk_size=v)),
    ("subset", lambda v: vision.balanced_subset(np.zeros(4, np.int64), v, 0, 1)),
    ("nodes_per_class", lambda v: graph.load_sbm(nodes_per_class=v)),
]


@pytest.mark.parametrize(("name", "call"), POSITIVE_INTS)
def test_every_positive_int_follows_the_same_rule(name: str, call: Callable[[Any], object]) -> None:
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, got {bad}$"):
            call(bad)
    for bad in (True, 2.0, "4"):
        with pytest.raises(TypeError, match=rf"^{name} must be a positive integer, got "):
            call(bad)


CHOICES: list[tuple[str, Callable[[Any], object]]] = [
    ("strategy", lambda v: anchors.select(_x(), 3, v)),
    ("method", lambda v: metrics.linear_cka(_x(), _x(), method=v)),
    ("aggregation", aggregations.get),
    ("split", lambda v: vision.load_digits(v)),
    ("split", lambda v: graph.load_karate(v)),
    ("name", lambda v: text.load_hf_text(v)),
]


@pytest.mark.parametrize(("name", "call"), CHOICES)
def test_every_choice_lists_the_names(name: str, call: Callable[[Any], object]) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be one of \['.*'\], got 'nonsense'$"):
        call("nonsense")
