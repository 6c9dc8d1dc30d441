"""The per-engram facts the store keeps in RAM, in one object with one update path.

Storage holds every engram's full record and the index its columns and vectors; a few facts
are needed on every ingest, recall or consolidation faster than either can give them: which
engrams are short-term (in LRU order) or pinned, which are history and since when, what is
anchored to which place, which place a SLAM keyframe made, the place graph's edges, the labels
the memory has seen, what changed since the last consolidation and what recalls touched.

:class:`MemoryState` owns all of them. Writers change them only through
:meth:`~MemoryState.apply` (engrams just written), :meth:`~MemoryState.remove` (engrams
forgotten, evicted or merged away), :meth:`~MemoryState.set_edges` /
:meth:`~MemoryState.drop_edges` and the few bookkeeping methods below; readers use the
attributes. So no path that writes or forgets an engram can leave one structure behind: the
state after any sequence of writes equals the state :meth:`~MemoryState.apply` builds from the
stored records on the next open (the tests check this), and a removed engram's own facts are
gone from every structure; only the anchor ids that other engrams' records still name stay, as
on the next open. The labels are a vocabulary, not per-engram data: a label stays known after
the last engram carrying it is forgotten, until the next open.

Every structure is sparse or bounded (the short-term tier is at most the LRU capacity; pins,
history, anchors, keyframes and edges are a small part of a big memory), so they are dicts and
sets by id rather than arrays by index slot. The state holds no lock: the store guards it with
its index lock (see :mod:`engram_ros.core.memory`).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Collection
from typing import Iterable
from typing import Sequence

from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.validity import belief_interval
from engram_ros.core.validity import ValidityTable


class MemoryState:
    """What the store knows about its engrams in RAM besides the index (see the module doc)."""

    def __init__(self, edges: Iterable[PlaceEdge] = ()) -> None:
        #: Short-term engram ids, least recently used first.
        self.short: OrderedDict[int, None] = OrderedDict()
        #: Ids of pinned engrams: never evicted automatically.
        self.pinned: set[int] = set()
        #: Ids of history (``valid_to`` set): never reactivated, hidden from plain recalls.
        self.history: set[int] = set()
        #: Temporal validity of engrams that are history or moved: id -> (valid_from, valid_to
        #: or inf). Every other engram is current since its first sighting.
        self.validity: ValidityTable = ValidityTable()
        #: Anchors: engram id -> place id, and place id -> anchored engram ids.
        self.anchor_of: dict[int, int] = {}
        self.anchored: dict[int, set[int]] = {}
        #: SLAM keyframe id -> place engram id.
        self.keyframes: dict[str, int] = {}
        #: The place graph, (a, b) with a < b -> edge; mirrored in storage.
        self.edges: dict[tuple[int, int], PlaceEdge] = {(e.a, e.b): e for e in edges}
        #: Every label the memory has seen (for words in query text).
        self.labels: set[str] = set()
        #: Ids written since the last consolidation.
        self.dirty: set[int] = set()
        #: Recall statistics not yet written: id -> (last recall, recalls).
        self.touched: dict[int, tuple[float, int]] = {}
        #: The place the robot was last observed at, and when (for edges and missed things).
        self.last_place: tuple[int, float] | None = None

    # ------------------------------------------------------------------------- the update path
    def apply(self, engrams: Iterable[Engram], *, dirty: bool = True,
              access: dict[int, float] | None = None) -> None:
        """Take in engrams just written (or loaded): tier, pin, label, validity, anchor and
        keyframe of each replace what was known of it.

        :param dirty: mark them for the next consolidation (not when loading a store).
        :param access: when given, filled with id -> last access of the short-term ones (the
            LRU order of a store being opened, see :meth:`order_short`).
        """
        short, pinned, labels, changed = self.short, self.pinned, self.labels, self.dirty
        validity, anchor_of = self.validity, self.anchor_of
        for engram in engrams:
            engram_id = engram.id
            if engram.tier == TIER_SHORT:
                short[engram_id] = None
                short.move_to_end(engram_id)
                if access is not None:
                    access[engram_id] = engram.last_access
            else:
                short.pop(engram_id, None)
            if engram.pinned:
                pinned.add(engram_id)
            else:
                pinned.discard(engram_id)
            if engram.label:
                labels.add(engram.label)
            # Most engrams are current since first seen and unanchored: nothing to do for them
            # (history ids are a subset of the validity keys).
            if engram.valid_to is not None or engram.valid_from > engram.first_seen \
                    or engram_id in validity:
                self._apply_validity(engram)
            if engram.anchor_id or engram_id in anchor_of:
                self._apply_anchor(engram_id, engram.anchor_id)
            if engram.keyframe_id:
                self.keyframes[engram.keyframe_id] = engram_id
            if dirty:
                changed.add(engram_id)

    def _apply_validity(self, engram: Engram) -> None:
        if engram.valid_to is not None:
            self.history.add(engram.id)
        else:
            self.history.discard(engram.id)
        interval = belief_interval(engram)
        if interval is None:
            self.validity.pop(engram.id, None)
        else:
            self.validity[engram.id] = interval

    def _apply_anchor(self, engram_id: int, anchor_id: int) -> None:
        old = self.anchor_of.get(engram_id, 0)
        if old == anchor_id:
            return
        if old:
            self._unanchor(engram_id, old)
        if anchor_id:
            self.anchor_of[engram_id] = anchor_id
            self.anchored.setdefault(anchor_id, set()).add(engram_id)
        else:
            self.anchor_of.pop(engram_id, None)

    def _unanchor(self, engram_id: int, place: int) -> None:
        members = self.anchored.get(place)
        if members is not None:
            members.discard(engram_id)
            if not members:
                del self.anchored[place]

    def remove(self, ids: Sequence[int]) -> None:
        """Forget everything known of ``ids`` (forgotten, evicted or merged away)."""
        for engram_id in ids:
            self.short.pop(engram_id, None)
            self.pinned.discard(engram_id)
            self.dirty.discard(engram_id)
            self.touched.pop(engram_id, None)
            self.history.discard(engram_id)
            self.validity.pop(engram_id, None)
            place = self.anchor_of.pop(engram_id, 0)
            if place:
                self._unanchor(engram_id, place)
            # ``anchored[engram_id]`` stays: things anchored to a forgotten place keep its id,
            # as their records do (the next open finds the same).
        gone = set(ids)
        self.edges = {k: e for k, e in self.edges.items()
                      if k[0] not in gone and k[1] not in gone}
        self.keyframes = {k: v for k, v in self.keyframes.items() if v not in gone}
        if self.last_place is not None and self.last_place[0] in gone:
            self.last_place = None

    def set_edges(self, edges: Iterable[PlaceEdge]) -> None:
        """Take in place-graph edges just written (both ends must be live engrams)."""
        for edge in edges:
            self.edges[(edge.a, edge.b)] = edge

    def drop_edges(self, keys: Iterable[tuple[int, int]]) -> None:
        for key in keys:
            self.edges.pop(key, None)

    # ------------------------------------------------------------------------- bookkeeping
    def order_short(self, access: dict[int, float]) -> None:
        """LRU order on open: least recently accessed first (ties by id)."""
        self.short = OrderedDict.fromkeys(
            sorted(self.short, key=lambda i: (access.get(i, 0.0), i)))

    def touch(self, ids: Iterable[int], now: float) -> None:
        """Count a recall of ``ids`` at ``now``; short-term ones become most recently used."""
        for engram_id in ids:
            _, count = self.touched.get(engram_id, (now, 0))
            self.touched[engram_id] = (now, count + 1)
            if engram_id in self.short:
                self.short.move_to_end(engram_id)

    def take_touched(self) -> dict[int, tuple[float, int]]:
        """The recall statistics not yet written; they are written by the caller."""
        touched, self.touched = self.touched, {}
        return touched

    def lru_victims(self, short: Collection[int], capacity: int,
                    pinned: Iterable[int] = ()) -> list[int]:
        """Least recently used of ``short`` past ``capacity``; pinned engrams are never taken."""
        excess = len(short) - capacity
        if excess <= 0:
            return []
        keep = self.pinned.union(pinned)
        return list(itertools.islice((i for i in short if i not in keep), excess))
