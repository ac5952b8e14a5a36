"""Test configuration: user-registered projections that go through the generated tests.

They are registered before collection so that every test parametrised over
``latentbridge.projections.available()`` covers them, exactly as it covers the built-ins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from hypothesis import settings

import latentbridge as lb

settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("LATENTBRIDGE_HYPOTHESIS_PROFILE", "ci"))

USER_PROJECTIONS = ("test_sqeuclidean", "test_shifted_dot")


def _sqeuclidean(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, anchors, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def _shifted_dot(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    # <x + w, a + w> with a fixed, non-constant offset w: breaks every class of the vocabulary
    # (a constant offset such as w = 1 would keep permutation invariance).
    w = torch.linspace(1.0, 2.0, x.shape[1], dtype=x.dtype, device=x.device)
    return (x + w) @ (anchors + w).T


if "test_sqeuclidean" not in lb.projections.available():
    lb.projections.register(
        "test_sqeuclidean",
        _sqeuclidean,
        invariances={"orthogonal", "translation"},
        scaled_by={"isotropic_scaling"},
        description="squared euclidean distance (user-registered in the tests)",
    )
    lb.projections.register(
        "test_shifted_dot", _shifted_dot, invariances=(), description="<x + w, a + w>"
    )


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a module of many tiny computations.

    With a pool of threads, a core shared with another process costs every parallel region a
    scheduler time slice (OpenMP spin-waits): measured on 2 cores under load, 137 s against 9 s
    for the two numerics modules. Both sides of every comparison in a module run in the same
    configuration, so no compared result depends on it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
