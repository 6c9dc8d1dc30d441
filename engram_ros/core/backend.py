"""The backend boundary of the memory: records, vectors and stage-1 filters behind one protocol.

The store needs three things from wherever engrams live: keep records (put / get / delete /
iterate), find the ``k`` nearest context vectors, and narrow both to the engrams a recall may
see (stage 1). Today SQLite (or RAM) keeps the records and the in-RAM :class:`EngramIndex`
keeps columns and vectors (:class:`EmbeddedBackend`); a fleet backend (e.g. Milvus) would keep
both in a server. So that such an engine can run stage 1 itself, the filter is plain data
(:class:`Stage1Filter`): kinds, tags, a region, a time window and temporal validity, each
with the meaning the embedded index gives it, which another engine turns into its own filter
expressions. Nothing here imports ROS.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Iterator
from typing import Mapping
from typing import Protocol
from typing import runtime_checkable
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.index import EngramIndex
from engram_ros.core.index.engrams import put_engrams
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import KINDS
from engram_ros.core.storage import Storage
from engram_ros.core.validity import belief_interval
from engram_ros.core.validity import valid_mask
from engram_ros.core.validity import ValidityTable

if TYPE_CHECKING:
    from engram_ros.core.query import RecallQuery


@dataclass(frozen=True)
class Region:
    """A ball: engrams within ``radius`` metres (3D distance) of ``center``.

    :param frame_id: frame of ``center``; ``''`` means the memory's frame.
    :raises ValueError: for a centre that is not three finite numbers, or a radius that is
        not a finite distance > 0.
    """

    center: tuple[float, float, float]
    radius: float
    frame_id: str = ''

    def __post_init__(self) -> None:
        center = tuple(float(c) for c in np.asarray(self.center, dtype=np.float64).reshape(-1))
        if len(center) != 3 or not all(math.isfinite(c) for c in center):
            raise ValueError('a region centre is three finite coordinates (x, y, z in metres)')
        if not (math.isfinite(self.radius) and self.radius > 0.0):
            raise ValueError(f'region radius={self.radius} must be a finite distance > 0 [m]')
        object.__setattr__(self, 'center', center)
        object.__setattr__(self, 'radius', float(self.radius))


@dataclass(frozen=True)
class Stage1Filter:
    """Which engrams a search may return, as data; every given condition must hold.

    * ``kinds``: the engram's kind is one of these (names from :data:`KINDS`); empty: any.
    * ``tags_all`` / ``tags_any`` / ``tags_none``: it carries every one / at least one / none
      of these tags (exact strings, already normalised by the caller). An empty tuple does
      not filter; a ``tags_all`` tag no engram carries matches nothing.
    * ``region``: its position lies within the ball (see :class:`Region`).
    * ``t_start`` / ``t_end`` [s since epoch]: its ``[first_seen, last_seen]`` interval
      overlaps ``[t_start, t_end]``, i.e. ``last_seen >= t_start`` and
      ``first_seen <= t_end``; ``None`` leaves that side open.
    * validity (:mod:`engram_ros.core.validity`): with neither ``at_time`` nor
      ``changed_since``, only current beliefs pass unless ``include_history``; ``at_time``
      keeps the beliefs current then (``valid_from <= at_time < valid_to``);
      ``changed_since`` keeps those that began or ended at or after it (history included).
      A current belief's ``valid_from`` is ``max(valid_from, first_seen)`` and its
      ``valid_to`` infinite; a history belief's are its own.
    * ``robots`` / ``not_robots``: the robot that wrote it (the backend's ``robot_id``) is one
      of / none of these; empty: any. A fleet recall asks for the other robots' rows
      (``not_robots=(own id,)``): its own are replicas of its local engrams.

    :raises ValueError: for an unknown kind, tags or robots given as one string, an empty
        robot id, a non-finite time, a window that ends before it starts, or
        ``include_history`` with a validity time.
    """

    kinds: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    region: Region | None = None
    t_start: float | None = None
    t_end: float | None = None
    at_time: float | None = None
    changed_since: float | None = None
    include_history: bool = False
    robots: tuple[str, ...] = ()
    not_robots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ('kinds', 'tags_all', 'tags_any', 'tags_none', 'robots', 'not_robots'):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f'{name} is a sequence of strings, not one string')
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if '' in self.robots or '' in self.not_robots:
            raise ValueError('a robot id in robots / not_robots is a non-empty string')
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f'unknown kind(s) {unknown}; accepted: {", ".join(KINDS)}')
        for name in ('t_start', 't_end', 'at_time', 'changed_since'):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f'{name}={value} must be finite')
        if self.t_start is not None and self.t_end is not None and self.t_end < self.t_start:
            raise ValueError(f'time window ends ({self.t_end}) before it starts '
                             f'({self.t_start})')
        if self.include_history and (self.at_time is not None
                                     or self.changed_since is not None):
            raise ValueError('include_history is for a filter without at_time / changed_since; '
                             'those already choose among current and past beliefs')

    @classmethod
    def for_recall(cls, query: RecallQuery, *, tags_all: Sequence[str],
                   tags_any: Sequence[str], tags_none: Sequence[str]) -> Stage1Filter:
        """The stage 1 of a validated recall: the store's tags after normalisation (and the
        text's tags added to ``tags_any``), the rest as the query gives it."""
        region = None
        if query.radius > 0.0:
            center = np.asarray(query.center, dtype=np.float64).reshape(-1)
            region = Region((center[0], center[1], center[2]), query.radius, query.frame_id)
        return cls(kinds=tuple(query.kinds), tags_all=tuple(tags_all),
                   tags_any=tuple(tags_any), tags_none=tuple(tags_none), region=region,
                   t_start=query.t_start, t_end=query.t_end, at_time=query.at_time,
                   changed_since=query.changed_since)

    def admits_robot(self, robot_id: str) -> bool:
        """Whether rows written by ``robot_id`` may pass (the robot condition alone)."""
        return ((not self.robots or robot_id in self.robots)
                and robot_id not in self.not_robots)

    def index_arguments(self) -> dict:
        """The keyword arguments of :meth:`EngramIndex.filter` for all but validity."""
        return {'tags_all': self.tags_all, 'tags_any': self.tags_any,
                'tags_none': self.tags_none, 'kinds': [kind_code(k) for k in self.kinds],
                'center': None if self.region is None else np.asarray(self.region.center),
                'radius': 0.0 if self.region is None else self.region.radius,
                't_start': self.t_start, 't_end': self.t_end}


def filter_index(index: EngramIndex, where: Stage1Filter,
                 validity: Mapping[int, tuple[float, float]]) -> np.ndarray | None:
    """Live slots of ``index`` passing ``where``, increasing; ``None`` for every live slot.

    :param validity: ``id -> (valid_from, valid_to)`` of every live engram whose validity is
        not ``(first_seen, inf)``: each history belief (finite ``valid_to``) and each current
        one with ``valid_from > first_seen`` (what the store keeps as ``_validity``). A
        :class:`~engram_ros.core.validity.ValidityTable` keeps its arrays and the history's
        slots between calls, so a recall costs the same however much history there is; any
        other mapping is turned into one per call.
    """
    table = validity if isinstance(validity, ValidityTable) else ValidityTable(validity)
    slots = index.filter(**where.index_arguments())
    at_time, changed_since = where.at_time, where.changed_since
    if at_time is None and changed_since is None:
        if where.include_history or not table:
            return slots
        hidden = _history_slots(index, table)
        if hidden.shape[0] == 0:
            return slots
        if slots is None:
            slots = index.live_slots()
        slots = np.asarray(slots, dtype=np.int64)
        return slots[~index.member(slots, hidden)]
    if slots is None:
        slots = index.live_slots()
    slots = np.asarray(slots, dtype=np.int64)
    valid_from = index.first_seen_of(slots).astype(np.float64)
    valid_to = np.full(len(slots), math.inf)
    if table:
        ids, froms, tos, _ = table.arrays()
        slot_ids = index.ids_of(slots)
        at = np.minimum(np.searchsorted(ids, slot_ids), ids.shape[0] - 1)
        hit = ids[at] == slot_ids
        valid_from[hit] = froms[at[hit]]
        valid_to[hit] = tos[at[hit]]
    return slots[valid_mask(valid_from, valid_to, at_time=at_time,
                            changed_since=changed_since)]


def _history_slots(index: EngramIndex, table: ValidityTable) -> np.ndarray:
    """Sorted live slots of the history beliefs in ``table``, kept in its cache: the cache
    holds for one layout of the index (a compaction renumbers slots, see
    :attr:`EngramIndex.layout`), and slots added since are checked alone (a history id
    re-added after being forgotten), so a recall does not look up the whole history again."""
    history = table.arrays()[3]
    key = ('history_slots', id(index))
    cached = table.cache.get(key)
    n = index.slot_count
    if cached is not None and cached[0] == index.layout and cached[1] <= n \
            and index.holds(cached[3], cached[2]):
        _, seen, ids, slots = cached
        if seen < n:
            new = np.arange(seen, n, dtype=np.int64)
            new = new[index.alive_of(new) & np.isin(index.ids_of(new), history)]
            if new.shape[0]:
                slots = np.concatenate((slots, new))
                ids = np.concatenate((ids, index.ids_of(new)))
            table.cache[key] = (index.layout, n, ids, slots)
        return slots
    slots = index.live_slots_of(history)
    table.cache[key] = (index.layout, n, index.ids_of(slots), slots)
    return slots


def check_engram(engram: Engram, dim: int) -> None:
    """Refuse, before anything is written, an engram no backend can hold: an unknown kind, a
    vector of another dimension than ``dim`` (or not finite, or all zeros), a position that
    is not three finite coordinates, a time or score that is not finite.

    :raises ValueError: naming the engram and what is wrong.
    """
    kind_code(engram.kind)
    vector = np.asarray(engram.vector, dtype=np.float64).reshape(-1)
    if vector.shape[0] != dim:
        raise ValueError(f'engram {engram.id} has a {vector.shape[0]}-d vector; the '
                         f'memory uses {dim}')
    if not (np.all(np.isfinite(vector)) and np.any(vector != 0.0)):
        raise ValueError(f'engram {engram.id} has a vector that is not finite or all zeros')
    position = np.asarray(engram.position, dtype=np.float64).reshape(-1)
    if position.shape[0] != 3 or not np.all(np.isfinite(position)):
        raise ValueError(f'engram {engram.id} needs a position of three finite coordinates')
    if not all(math.isfinite(t) for t in (engram.first_seen, engram.last_seen,
                                          engram.score)):
        raise ValueError(f'engram {engram.id} has a time or score that is not finite')


@dataclass(frozen=True)
class SearchResult:
    """Nearest engrams, best first: ``ids`` (``int64``) and cosine ``scores`` (``float32``)."""

    ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Fetched:
    """Engrams passing a filter, read in one go: the engrams, the robot that wrote each
    (``id -> robot id``), and whether more passed than were read (``limit`` reached)."""

    engrams: list[Engram]
    robots: dict[int, str]
    more: bool


@runtime_checkable
class MemoryBackend(Protocol):
    """Where a memory keeps its engrams, their vectors and how it filters them.

    Ids are the engrams' own positive int64 ids (the caller allocates them). Every call is
    safe from several threads; a write is atomic (all engrams of a ``put`` or none). After
    :meth:`close` every call but :meth:`close` raises.
    """

    @property
    def dim(self) -> int:
        """Context-vector dimension every engram and query must have."""

    def put(self, engrams: Sequence[Engram]) -> None:
        """Insert or replace engrams by id (the last of an id given twice wins); a search
        sees the new vector, tags, kind, position, times and validity once it returns.

        :raises ValueError: for a vector of the wrong dimension (or all zeros / not finite),
            an unknown kind, or a malformed record; nothing is written then.
        """

    def get(self, ids: Sequence[int]) -> list[Engram]:
        """The engrams with these ids, in the order given; unknown ids are skipped."""

    def delete(self, ids: Sequence[int]) -> int:
        """Delete engrams by id (unknown ids are ignored); how many were deleted. A deleted
        id is never returned by :meth:`search` or :meth:`select` again."""

    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """Every engram in increasing id order."""

    def count(self) -> int:
        """How many engrams are kept (history included)."""

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A metadata string (e.g. the embedding model's name), or ``default``."""

    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata string, atomically."""

    def search(self, vector: np.ndarray, k: int,
               where: Stage1Filter | None = None) -> SearchResult:
        """The at most ``k`` engrams passing ``where`` whose vectors are most similar
        (cosine) to ``vector``, best first; ties in no promised order. ``None`` filters
        nothing (history included). Fewer than ``k`` come back only when fewer pass.
        Scores are within ~1e-2 of the exact cosine (vectors may be stored compressed), and
        ranking may be approximate (an ANN index) when many engrams pass.

        :raises ValueError: for ``k < 1``, or a vector of the wrong dimension, not finite or
            all zeros; or a region in a frame the backend does not answer in.
        """

    def select(self, where: Stage1Filter) -> np.ndarray:
        """Ids (``int64``, increasing) of every engram passing ``where``.

        :raises ValueError: for a region in a frame the backend does not answer in.
        """

    def robots_of(self, ids: Sequence[int]) -> dict[int, str]:
        """``id -> robot id`` of the robot that wrote each of these engrams (the writing
        backend's ``robot_id``); unknown ids are left out."""

    def fetch(self, where: Stage1Filter, limit: int) -> Fetched:
        """At most ``limit`` engrams passing ``where`` (which ones, when more pass, is not
        promised), with their robots: what :meth:`select`, :meth:`get` and :meth:`robots_of`
        give, in one read of the engine. ``more`` is true when more engrams than ``limit``
        may pass.

        :raises ValueError: for ``limit < 1``, or a region in a frame the backend does not
            answer in.
        """

    def close(self) -> None:
        """Release every resource; calling it again does nothing."""


class EmbeddedBackend:
    """:class:`MemoryBackend` over a :class:`Storage` (records) and an :class:`EngramIndex`
    (columns, vectors, stage 1), both in this process.

    Engrams already in ``storage`` are indexed when the backend is made.

    :param dim: context-vector dimension.
    :param frame_id: the frame positions are in; a region in another frame is refused
        (``''``: regions are not checked).
    :param robot_id: the robot every engram here belongs to (one robot's memory), for the
        robot condition of a :class:`Stage1Filter`.
    :param index_options: keyword arguments of :class:`EngramIndex` (search tuning).
    :raises ValueError: for a stored engram the index cannot hold (see :meth:`put`).
    """

    def __init__(self, storage: Storage, dim: int, *, frame_id: str = '', robot_id: str = '',
                 **index_options: float) -> None:
        self.storage = storage
        self.frame_id = frame_id
        self.robot_id = robot_id
        self._index = EngramIndex(dim, **index_options)      # type: ignore[arg-type]
        self._validity: ValidityTable = ValidityTable()
        self._lock = threading.RLock()
        batch: list[Engram] = []
        for engram in storage.iter_all():
            self._check(engram)
            batch.append(engram)
            if len(batch) >= 10000:
                self._index_put(batch)
                batch = []
        if batch:
            self._index_put(batch)

    @property
    def dim(self) -> int:
        return self._index.dim

    def put(self, engrams: Sequence[Engram]) -> None:
        """See :meth:`MemoryBackend.put`."""
        last = list({e.id: e for e in engrams}.values())
        for engram in last:
            self._check(engram)
        with self._lock:
            self.storage.put(engrams)
            if last:
                self._index_put(last)

    def get(self, ids: Sequence[int]) -> list[Engram]:
        """See :meth:`MemoryBackend.get`."""
        return self.storage.get(ids)

    def delete(self, ids: Sequence[int]) -> int:
        """See :meth:`MemoryBackend.delete`."""
        with self._lock:
            deleted = self.storage.delete(ids)
            gone = np.unique(np.asarray([int(i) for i in ids], dtype=np.int64))
            gone = gone[self._index.has_ids(gone)]
            self._index.remove_batch(gone)
            for i in gone.tolist():
                self._validity.pop(i, None)
            return deleted

    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """See :meth:`MemoryBackend.iter_all`."""
        return self.storage.iter_all(batch_size)

    def count(self) -> int:
        """See :meth:`MemoryBackend.count`."""
        return self.storage.count()

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """See :meth:`MemoryBackend.get_meta`."""
        return self.storage.get_meta(key, default)

    def set_meta(self, key: str, value: str) -> None:
        """See :meth:`MemoryBackend.set_meta`."""
        self.storage.set_meta(key, value)

    def search(self, vector: np.ndarray, k: int,
               where: Stage1Filter | None = None) -> SearchResult:
        """See :meth:`MemoryBackend.search`."""
        with self._lock:
            candidates = None if where is None else self._slots(where)
            slots, scores = self._index.dense_topk(vector, k, candidates)
            return SearchResult(self._index.ids_of(slots), scores)

    def select(self, where: Stage1Filter) -> np.ndarray:
        """See :meth:`MemoryBackend.select`."""
        with self._lock:
            slots = self._slots(where)
            if slots is None:
                slots = self._index.live_slots()
            return np.sort(self._index.ids_of(slots))

    def robots_of(self, ids: Sequence[int]) -> dict[int, str]:
        """See :meth:`MemoryBackend.robots_of`: this memory's robot for every kept id."""
        with self._lock:
            wanted = np.asarray([int(i) for i in ids], dtype=np.int64)
            kept = wanted[self._index.has_ids(wanted)] if wanted.shape[0] else wanted
            return {int(i): self.robot_id for i in kept.tolist()}

    def fetch(self, where: Stage1Filter, limit: int) -> Fetched:
        """See :meth:`MemoryBackend.fetch`."""
        if limit < 1:
            raise ValueError(f'limit={limit} must be >= 1')
        ids = self.select(where)
        engrams = self.get(ids[:limit].tolist())
        return Fetched(engrams, dict.fromkeys((e.id for e in engrams), self.robot_id),
                       ids.shape[0] > limit)

    def close(self) -> None:
        """See :meth:`MemoryBackend.close`; closes the storage."""
        self.storage.close()

    # ------------------------------------------------------------------ internals

    def _slots(self, where: Stage1Filter) -> np.ndarray | None:
        region = where.region
        if region is not None and region.frame_id and self.frame_id and \
                region.frame_id != self.frame_id:
            raise ValueError(f'region is in frame {region.frame_id!r}; this memory answers in '
                             f'{self.frame_id!r}')
        if not where.admits_robot(self.robot_id):
            return np.zeros(0, dtype=np.int64)
        return filter_index(self._index, where, self._validity)

    def _check(self, engram: Engram) -> None:
        check_engram(engram, self.dim)

    def _index_put(self, engrams: list[Engram]) -> None:
        """Index engrams of unique ids and keep their validity for stage 1."""
        put_engrams(self._index, engrams)
        for engram in engrams:
            interval = belief_interval(engram)
            if interval is None:
                self._validity.pop(engram.id, None)
            else:
                self._validity[engram.id] = interval

