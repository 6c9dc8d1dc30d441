"""Edges of the place graph: the robot went from one place engram to another.

Part of the model (not of storage) because the place graph, the memory and every storage
backend all speak in these edges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlaceEdge:
    """An undirected edge of the place graph: the robot went from one place to the other.

    ``a < b`` always (see :func:`edge_key`); ``last_traversed`` is seconds since the epoch.
    """

    a: int
    b: int
    traversals: int = 1
    last_traversed: float = 0.0


def edge_key(a: int, b: int) -> tuple[int, int]:
    """The stored (smaller, larger) pair of an edge between ``a`` and ``b``."""
    return (a, b) if a < b else (b, a)
