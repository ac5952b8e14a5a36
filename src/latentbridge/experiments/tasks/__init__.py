"""The task plug-ins of ``latentbridge run``, by name (each implements :class:`~..task.Task`).

========================  ================================================================
task                      what a cell computes
========================  ================================================================
``classification``        a head trained on one encoder's space, scored on every encoder's
``reconstruction``        an autoencoder's decoder fed every model's encoder (stitched)
``graph``                 a GNN's head fed every GNN's node embeddings (stitched)
``similarity``            the similarity of two encoders' spaces under one invariance class
========================  ================================================================
"""

from __future__ import annotations

from ..task import Task
from .classification import Classification
from .graph import Graph
from .reconstruction import Reconstruction
from .similarity import Similarity

__all__ = ["TASKS"]

#: Every task, by the name a config's ``task`` key uses.
TASKS: dict[str, Task] = {
    task.name: task for task in (Classification(), Reconstruction(), Graph(), Similarity())
}
