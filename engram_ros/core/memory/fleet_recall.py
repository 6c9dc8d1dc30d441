"""Recall beyond this robot (issue 15): the other robots' candidates from the fleet backend,
ranked by the same code as this robot's own (:func:`engram_ros.core.ranking.rank`), to be
merged with them by score.

The fleet is the store's ``fleet`` (a :class:`~engram_ros.core.fleet.view.FleetView`). Its rows
of this robot are never asked for (``not_robots``): they are replicas of the local engrams,
which answer for themselves. The fleet's candidates pass the same stage 1 in the fleet engine
(:class:`~engram_ros.core.backend.Stage1Filter`, with the robot condition added); they are
then put into a small index of their own, so :func:`rank` scores them exactly as it scores
local candidates. Fleet engram ids are the fleet's (they may differ from, or coincide with, a
local engram's id): a fleet hit is known by its ``robot``, not by its id.

A fleet that is not configured, unreachable (``backend()`` gives ``None``) or that fails during
the recall leaves the answer local: :class:`FleetPart` says which, and the store counts it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from dataclasses import field
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.backend import Stage1Filter
from engram_ros.core.index import EngramIndex
from engram_ros.core.index.engrams import put_engrams
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.model.engram import Engram
from engram_ros.core.query import FleetAnswer
from engram_ros.core.query import RecallHit
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallScope
from engram_ros.core.ranking import rank

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)

#: Most fleet engrams a recall without a query vector ranks (with a vector, the fleet engine
#: returns ``k`` times the dense overfetch); when more match, the message says so.
FLEET_CANDIDATES = 4096
#: Fleet candidates fetched per requested hit with a query vector (as the local dense stage).
_FLEET_OVERFETCH = 4


@dataclass
class FleetPart:
    """What the fleet added to a recall: ranked hits (each with its robot), the candidates it
    gave, whether it answered, and a note for the message (why not, or what was cut)."""

    answer: FleetAnswer
    hits: list[RecallHit] = field(default_factory=list)
    candidates: int = 0
    note: str = ''


def own_robot_id(store: MemoryStore) -> str:
    """This robot's id: the fleet's when one is configured, else the store's ``robot_id``."""
    return store.fleet.robot_id if store.fleet is not None else store.robot_id


def reach(query: RecallQuery, own: str) -> tuple[bool, tuple[str, ...] | None]:
    """``(local, others)``: whether this robot's memory is searched, and which other robots
    (``()`` for every other robot, ``None`` for none) the scope of ``query`` asks for."""
    if query.scope == RecallScope.FLEET:
        return True, ()
    if query.scope == RecallScope.ROBOTS:
        others = tuple(dict.fromkeys(r for r in query.robots if r != own))
        return own in query.robots, (others or None)
    return True, None


def fleet_hits(store: MemoryStore, query: RecallQuery, where: Stage1Filter,
               others: tuple[str, ...], query_tags: Sequence[str | tuple[str, ...]],
               now: float) -> FleetPart:
    """The fleet's ranked hits for ``query`` among ``others`` (``()``: every other robot).

    Never raises for the fleet's sake: a fleet missing, unreachable or failing gives a
    :class:`FleetPart` without hits that says so (and is counted by the store).
    """
    fleet = store.fleet
    if fleet is None:
        with store._lock:
            store.fleet_recalls_unanswered += 1
        return FleetPart(FleetAnswer.NOT_CONFIGURED,
                         note='the fleet was asked but this memory has no fleet configured; '
                              "this robot's memory alone answered")
    own = fleet.robot_id
    fleet_where = dataclasses.replace(where, robots=others,
                                      not_robots=(own,) if own else ())
    try:
        backend = fleet.backend()
        if backend is None:
            return _unanswered(store, 'the fleet is unreachable')
        if backend.dim != store.config.dim:
            return _unanswered(store, f'the fleet keeps {backend.dim}-d vectors; this memory '
                                      f'uses {store.config.dim}')
        more = False
        if query.vector is not None:
            found = backend.search(np.asarray(query.vector, dtype=np.float32),
                                   query.k * _FLEET_OVERFETCH, fleet_where)
            ids = [int(i) for i in found.ids]
            engrams = backend.get(ids)
            robots = backend.robots_of(ids) if ids else {}
        else:       # every match is ranked: read them in one go (one query of the engine)
            fetched = backend.fetch(fleet_where, FLEET_CANDIDATES)
            engrams, robots, more = fetched.engrams, fetched.robots, fetched.more
    except Exception as exc:    # any engine error: the fleet did not answer this recall
        return _unanswered(store, f'the fleet failed: {type(exc).__name__}: {exc}')
    engrams = [e for e in engrams if e.id in robots]    # deleted between the two reads
    try:
        hits = _ranked(store, query, engrams, robots, query_tags, now)
    except ValueError as exc:   # an engram another robot wrote that no index can hold
        return _unanswered(store, f"the fleet's engrams could not be ranked: {exc}")
    with store._lock:
        store.fleet_recalls += 1
    note = (f'; more than {FLEET_CANDIDATES} fleet candidates: {FLEET_CANDIDATES} of them '
            'ranked (give a query vector or narrow the filter)' if more else '')
    return FleetPart(FleetAnswer.ANSWERED, hits, len(engrams), note)


def _ranked(store: MemoryStore, query: RecallQuery, engrams: list[Engram],
            robots: dict[int, str], query_tags: Sequence[str | tuple[str, ...]],
            now: float) -> list[RecallHit]:
    """``engrams`` ranked by :func:`rank` in an index of their own, each marked with its
    robot. :raises ValueError: for an engram the index cannot hold."""
    if not engrams:
        return []
    index = EngramIndex(store.config.dim)
    index.defer_graph()     # a throwaway index: codes only, exact search, no HNSW build
    put_engrams(index, engrams)
    by_id = {e.id: e for e in engrams}
    ranked = rank(index, query, index.live_slots(), query_tags, store.config.ranking, now)
    hits = []
    for i, engram_id in enumerate(index.ids_of(ranked.slots).tolist()):
        engram = by_id[int(engram_id)]
        hits.append(RecallHit(engram, float(ranked.combined[i]), float(ranked.symbolic[i]),
                              float(ranked.dense[i]), float(ranked.spatial[i]),
                              float(ranked.temporal[i]), float(ranked.support[i]),
                              robot=robots[engram.id]))
    return hits


def _unanswered(store: MemoryStore, why: str) -> FleetPart:
    with store._lock:
        store.fleet_recalls_unanswered += 1
    _LOG.warning('recall answered locally: %s', why)
    return FleetPart(FleetAnswer.UNREACHABLE,
                     note=f"{why}; this robot's memory alone answered")


def merge(local: list[RecallHit], fleet: list[RecallHit], k: int) -> list[RecallHit]:
    """The ``k`` best of both by combined score; local first among equal scores."""
    both = local + fleet
    order = sorted(range(len(both)), key=lambda i: -both[i].score)
    return [both[i] for i in order[:k]]
