"""Temporal validity: when a belief about where a thing is stops being current.

Plasticity with stability. An object engram is one belief "this thing is here"; it stays current
until the memory has two pieces of evidence that the thing is elsewhere:

* **seen elsewhere**: a newer current engram of the same identity (label/sound tags) that looks
  alike (context vectors above the kind's merge similarity) lies far from the old one (beyond
  twice the merge radius), was first seen after the old one was last seen, and is confirmed:
  seen at least ``min_observations`` times (the store's ``promote_after``), because a one-off
  sighting elsewhere is as often the detector naming something else wrongly;
* **missed where it was**: the robot was at the old engram's anchor place after the old engram
  was last seen (plus a grace period) and has left that place since, without seeing it there.

Both are needed, so two identical mugs in two rooms, each re-seen whenever the robot passes,
stay two current engrams, and a thing that is merely hidden for a while is not moved. The old
engram becomes history (``valid_to`` = when the new one was first seen, ``successor_id``); the
new one is the current belief. Recall answers current beliefs unless asked about a time
(``at_time``) or about changes (``changed_since``). Nothing here imports ROS or touches storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """What the move decision needs to know about one current engram."""

    id: int
    identity: frozenset[str]
    position: np.ndarray
    vector: np.ndarray
    first_seen: float
    last_seen: float
    #: Anchor place id (0 = none) and when the robot was last at that place (None = unknown).
    anchor_id: int = 0
    anchor_last_seen: float | None = None
    #: Observations merged into it: the evidence that it is really there.
    observation_count: int = 1
    #: Whether a keyframe view should have shown it after its last sighting, without a
    #: sighting (None: no views, judge by the anchor place; see core/visibility.py).
    view_missed: bool | None = None


@dataclass(frozen=True)
class Move:
    """``old`` became history at ``when``; ``new`` is the current belief."""

    old: int
    new: int
    when: float


def find_moves(candidates: list[Candidate], *, min_distance: float, min_similarity: float,
               grace: float, robot_place: int, min_observations: int = 1) -> list[Move]:
    """Decide which current engrams are superseded by a newer one seen elsewhere.

    :param candidates: current engrams of one kind.
    :param min_distance: [m] farther apart than this, two sightings cannot be one placement.
    :param min_similarity: cosine similarity above which two engrams may be one thing.
    :param grace: [s] how long after its last sighting a missed thing still counts as seen.
    :param robot_place: the place the robot was last at (0 = unknown); a thing is only judged
        missed once the robot has left its anchor place.
    :param min_observations: a newer engram seen fewer times than this is no evidence of a
        move (a one-off sighting of a well-known thing elsewhere is mostly label noise).
    :returns: moves, at most one per old and one per new engram, most similar pairs first.
    """
    groups: dict[frozenset[str], list[Candidate]] = {}
    for c in candidates:
        if c.identity:
            groups.setdefault(c.identity, []).append(c)
    pairs: list[tuple[float, Candidate, Candidate]] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        for old in members:
            if not _missed(old, grace, robot_place):
                continue
            for new in members:
                if new.id == old.id or new.first_seen <= old.last_seen:
                    continue
                if new.observation_count < min_observations:
                    continue
                if float(np.linalg.norm(new.position - old.position)) <= min_distance:
                    continue
                sim = float(np.dot(old.vector, new.vector))
                if sim >= min_similarity:
                    pairs.append((sim, old, new))
    pairs.sort(key=lambda p: (-p[0], p[1].id, p[2].id))
    used_old: set[int] = set()
    used_new: set[int] = set()
    moves = []
    for _, old, new in pairs:
        # A new engram that is itself being superseded cannot take over another one.
        if old.id in used_old or new.id in used_new or new.id in used_old:
            continue
        used_old.add(old.id)
        used_new.add(new.id)
        moves.append(Move(old.id, new.id, new.first_seen))
    return moves


def _missed(c: Candidate, grace: float, robot_place: int) -> bool:
    """True when a view should have shown ``c`` after it was last seen; without views, when
    the robot was at ``c``'s anchor place after ``c`` was last seen, and left."""
    if c.view_missed is not None:
        return c.view_missed
    return missed(c.anchor_id, c.anchor_last_seen, c.last_seen, grace, robot_place)


def missed(anchor_id: int, anchor_last_seen: float | None, last_seen: float, grace: float,
           robot_place: int) -> bool:
    """True when the robot was at the anchor place after the thing was last seen (plus
    ``grace``) and has left it: the rule without views. :func:`find_moves` never supersedes a
    belief that is not missed, so a caller can skip building candidates when none is."""
    if not anchor_id or anchor_last_seen is None:
        return False
    return anchor_last_seen > last_seen + grace and robot_place != anchor_id


def valid_mask(valid_from: np.ndarray, valid_to: np.ndarray, *, at_time: float | None = None,
               changed_since: float | None = None) -> np.ndarray:
    """Which beliefs a recall may see; ``valid_to`` is ``inf`` for current beliefs.

    * neither time given: current beliefs only;
    * ``at_time``: beliefs current at that time (``valid_from <= t < valid_to``);
    * ``changed_since``: beliefs that began or ended at or after that time (history included).
    """
    if at_time is None and changed_since is None:
        return np.isinf(valid_to)
    mask = np.ones(valid_from.shape[0], dtype=bool)
    if at_time is not None:
        mask &= (valid_from <= at_time) & (at_time < valid_to)
    if changed_since is not None:
        mask &= (valid_from >= changed_since) | (np.isfinite(valid_to)
                                                  & (valid_to >= changed_since))
    return mask


class ValidityTable(dict):
    """``id -> (valid_from, valid_to)`` of the beliefs whose validity is not ``(first_seen,
    inf)``, with the arrays a recall needs kept until the table changes.

    A plain dict to write (the store's state and the embedded backend fill it per engram);
    every change bumps :attr:`version` and drops the arrays, which :meth:`arrays` rebuilds once
    (a move or an end is rare; recalls are not), so a recall no longer walks the table in
    Python. :attr:`cache` is for a reader's own derived data, keyed by what it depends on.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.version = 0
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.cache: dict = {}

    def _changed(self) -> None:
        self.version += 1
        self._arrays = None
        self.cache.clear()

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, key, *default):
        if key in self:
            self._changed()
        return super().pop(key, *default)

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args, **kwargs) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key, default=None):
        if key not in self:
            self._changed()
        return super().setdefault(key, default)

    def popitem(self):
        self._changed()
        return super().popitem()

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, valid_from, valid_to, history ids)``: ids sorted (``int64``), their
        intervals (``float64``), and the ids whose ``valid_to`` is finite (sorted)."""
        if self._arrays is None:
            ids = np.fromiter(self.keys(), dtype=np.int64, count=len(self))
            order = np.argsort(ids)
            spans = np.array(list(self.values()), dtype=np.float64).reshape(-1, 2)[order]
            ids = ids[order]
            self._arrays = (ids, spans[:, 0].copy(), spans[:, 1].copy(),
                            ids[np.isfinite(spans[:, 1])])
        return self._arrays


def check_time(name: str, value: float | None) -> str | None:
    """A message saying what is wrong with a validity time, or None when it is fine."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0.0:
        return f'{name}={value} must be a finite time >= 0 (s since the epoch), or 0 for unset'
    return None


def belief_interval(engram) -> tuple[float, float] | None:
    """``(valid_from, valid_to)`` of an engram whose validity is not the default
    ``(first_seen, inf)``, else None: a history belief (``valid_to`` set) or a current one
    that became current after its first sighting (a move's successor)."""
    if engram.valid_to is not None:
        return float(engram.valid_from), float(engram.valid_to)
    if engram.valid_from > engram.first_seen:
        return float(engram.valid_from), math.inf
    return None
