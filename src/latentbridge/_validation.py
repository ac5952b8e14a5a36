"""Input checks at the public boundary: tensors (conversion, shapes, dtypes, finiteness) and
plain arguments (integers, seeds, booleans, choices), each failing with a message that names the
argument, what it must be and what it was."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeAlias, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike: TypeAlias = Union[Tensor, np.ndarray]  # noqa: UP007 (a runtime alias on 3.10)

# dtypes computed as they are; half precision is computed in float32 and cast back.
_NATIVE = (torch.float32, torch.float64)


def as_tensor(value: object, name: str) -> Tensor:
    """Return ``value`` (numpy array or tensor) as a floating tensor, without copying."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "f":
            raise TypeError(
                f"{name} must hold floating-point numbers, got numpy dtype {value.dtype}; "
                f"cast it first, e.g. {name}.astype(np.float32)"
            )
        if value.dtype.itemsize > 8:
            raise TypeError(
                f"{name} has numpy dtype {value.dtype}, which torch does not support; cast it "
                f"first, e.g. {name}.astype(np.float64)"
            )
        if not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        with warnings.catch_warnings():
            # Read-only arrays are shared, never written to.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy(np.ascontiguousarray(value))
    elif isinstance(value, Tensor):
        tensor = value
        if not tensor.is_floating_point():
            raise TypeError(
                f"{name} must hold floating-point numbers, got torch dtype {tensor.dtype}; "
                f"cast it first, e.g. {name}.float()"
            )
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}"
        )
    return tensor


def as_matrix(value: object, name: str, *, rows: str = "N", cols: str = "D") -> Tensor:
    """Return ``value`` as a 2-D floating tensor, or fail with an error naming ``name``."""
    tensor = as_tensor(value, name)
    if tensor.ndim != 2:
        hint = f"; for a single sample use {name}[None]" if tensor.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D with shape ({rows}, {cols}), got shape {tuple(tensor.shape)}{hint}"
        )
    return tensor


def check_finite(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` holds NaN or infinite values."""
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        first = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{name} contains {bad.shape[0]} NaN or infinite value(s), the first at index "
            f"{first}; remove or impute them"
        )


@contextmanager
def linalg_errors(what: str) -> Iterator[None]:
    """Turn torch's ``LinAlgError`` (no convergence, a singular system) into a ``ValueError``
    that says which computation on which input failed."""
    try:
        yield
    except torch.linalg.LinAlgError as error:
        raise ValueError(
            f"{what} failed in float64 ({error}); the input is numerically degenerate "
            "(e.g. rank-deficient or with an extreme spread of magnitudes)"
        ) from error


def check_features(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if the 2-D ``tensor`` has no feature columns (``D = 0``)."""
    if tensor.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one feature (D >= 1), got shape {tuple(tensor.shape)}"
        )


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype computations run in: the promoted dtype, with half precision raised to float32."""
    dtype = dtypes[0]
    for other in dtypes[1:]:
        dtype = torch.promote_types(dtype, other)
    return dtype if dtype in _NATIVE else torch.float32


def check_pair(x: Tensor, anchors: Tensor) -> None:
    """Check that samples and anchors can be projected onto each other."""
    if anchors.shape[0] == 0:
        raise ValueError("anchors must hold at least one anchor, got shape (0, D)")
    check_features(x, "x")
    check_features(anchors, "anchors")
    if x.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"x and anchors must have the same feature dimension, got x with D={x.shape[1]} "
            f"and anchors with D={anchors.shape[1]}"
        )
    if x.device != anchors.device:
        raise ValueError(
            f"x and anchors must be on the same device, got x on {x.device} and anchors on "
            f"{anchors.device}"
        )


def warn_duplicates(anchors: Tensor, name: str = "anchors") -> None:
    """Warn when ``anchors`` holds repeated rows: their relative coordinates are redundant."""
    unique = torch.unique(anchors.detach(), dim=0)
    if unique.shape[0] < anchors.shape[0]:
        warn_user(
            f"{name} holds {anchors.shape[0] - unique.shape[0]} duplicate row(s) out of "
            f"{anchors.shape[0]}: their relative coordinates repeat and add no information"
        )


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside this package."""
    frame = sys._getframe(1)
    level = 2  # stacklevel 1 is this function, 2 its caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR + os.sep
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


# -- plain arguments ---------------------------------------------------------------------------


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type (a ``str`` where an integer belongs, an ``int`` for a flag).

    A ``TypeError``, and a ``ValueError`` too, so that ``except ValueError`` around a call still
    catches every invalid argument, whatever made it invalid.
    """


def _integer_range(minimum: int | None, maximum: int | None) -> str:
    """``"a positive integer"``, ``"an integer in [0, 9]"``, ...: what an integer must be."""
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if maximum is not None:
        return f"an integer <= {maximum}"
    if minimum is None:
        return "an integer"
    return {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )


def check_int(
    value: object, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (a bound left ``None`` is open).

    Python and numpy integers are accepted; ``bool`` is not an integer here. Raises
    :class:`WrongTypeError` for another type and ``ValueError`` outside the bounds.
    """
    wanted = _integer_range(minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise WrongTypeError(f"{name} must be {wanted}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str, *, allow_zero: bool = False) -> int:
    """``value`` as an ``int >= 1`` (``>= 0`` with ``allow_zero``); see :func:`check_int`."""
    return check_int(value, name, minimum=0 if allow_zero else 1)


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as a seed: a non-negative ``int`` (see :func:`check_int`)."""
    return check_int(value, name, minimum=0)


def check_bool(value: object, name: str) -> bool:
    """``value`` as a ``bool``: Python and numpy booleans are accepted, ``0`` and ``1`` are not
    (:class:`WrongTypeError`)."""
    if not isinstance(value, (bool, np.bool_)):
        raise WrongTypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of the names ``choices``, else ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
