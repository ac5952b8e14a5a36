"""The optional Ray connection of ``--executor ray`` (runs and encoding): imported where used."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["connected", "import_ray", "in_task", "session"]


def import_ray() -> Any:
    """The ``ray`` module, or a ``ValueError`` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "executor 'ray' needs Ray: pip install 'latentbridge[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


@contextlib.contextmanager
def session(address: str | None) -> Iterator[Any]:
    """A Ray connection for the block: the one this process holds, else the cluster at
    ``address``, else a Ray instance started here and stopped at the end."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def connected() -> Any:
    """The ``ray`` module when this process is connected to a Ray instance, else None (Ray is
    not imported by asking)."""
    ray = sys.modules.get("ray")
    return ray if ray is not None and ray.is_initialized() else None


def in_task() -> bool:
    """Whether this process is a Ray worker running a task or an actor."""
    ray = connected()
    return ray is not None and ray.get_runtime_context().get_task_id() is not None
