"""Engrams into the index: the one translation of an :class:`Engram` into index columns.

The store (:mod:`engram_ros.core.memory.writes`) and the embedded backend
(:mod:`engram_ros.core.backend`) both put engrams into an :class:`EngramIndex`; both call here,
so a new indexed field is added in one place.
"""

from __future__ import annotations

from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import stack_rows

if TYPE_CHECKING:
    from engram_ros.core.index.engram_index import EngramIndex


def add_engrams(index: EngramIndex, engrams: Sequence[Engram]) -> None:
    """Add engrams the index does not hold yet (their columns, vector and tags)."""
    index.add_batch(
        np.array([e.id for e in engrams], dtype=np.int64),
        stack_rows([e.vector for e in engrams]).astype(np.float32),
        kinds=np.array([kind_code(e.kind) for e in engrams], dtype=np.int64),
        positions=stack_rows([e.position for e in engrams]),
        first_seen=np.array([e.first_seen for e in engrams]),
        last_seen=np.array([e.last_seen for e in engrams]),
        tags=[e.tags for e in engrams],
        scores=np.array([e.score for e in engrams], dtype=np.float32),
        counts=np.array([e.observation_count for e in engrams], dtype=np.int64))


def put_engrams(index: EngramIndex, engrams: Sequence[Engram]) -> None:
    """Index engrams of unique ids: one update of those it holds, one add of the rest."""
    if not engrams:
        return
    present = index.has_ids(np.array([e.id for e in engrams], dtype=np.int64))
    old = [e for e, p in zip(engrams, present.tolist()) if p]
    new = [e for e, p in zip(engrams, present.tolist()) if not p]
    if old:
        index.update_batch(
            np.array([e.id for e in old], dtype=np.int64),
            vectors=stack_rows([e.vector for e in old]).astype(np.float32),
            positions=stack_rows([e.position for e in old]),
            first_seen=np.array([e.first_seen for e in old]),
            last_seen=np.array([e.last_seen for e in old]),
            tags=[e.tags for e in old], scores=np.array([e.score for e in old]),
            counts=np.array([e.observation_count for e in old]))
    if new:
        add_engrams(index, new)
