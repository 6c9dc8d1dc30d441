"""The index façade: :class:`EngramIndex` composes columns, id map, tags, grid and vectors.

Recall is two-stage. Stage 1 (:meth:`EngramIndex.filter`) narrows the memory to the engrams
that satisfy a symbolic / kind / space / time filter; stage 2 (:meth:`EngramIndex.dense_topk`)
ranks those candidates by cosine similarity of their context vectors. Each write goes to every
part here, so the parts never disagree; the parts themselves know nothing of each other.

Removed engrams are tombstoned: they keep their graph node (it still routes searches) but are
dropped from every posting list and the alive bitmap and marked removed in the id map, so they
never come back. :meth:`EngramIndex.compact` rebuilds the index from its live engrams alone
(:mod:`.compaction`): the store does it before every save and when tombstones pass a threshold
in RAM, so no removed engram's vector, id or tag name reaches a saved file.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable
from typing import Sequence

import numpy as np

from engram_ros.core.index.checks import checked_columns
from engram_ros.core.index.checks import checked_rows
from engram_ros.core.index.columns import Columns
from engram_ros.core.index.compaction import compacted
from engram_ros.core.index.compaction import has_dead_entries
from engram_ros.core.index.compaction import worth_compacting
from engram_ros.core.index.dense import bf16_to_f32
from engram_ros.core.index.dense import DenseVectors
from engram_ros.core.index.grid import Grid
from engram_ros.core.index.ids import id_array
from engram_ros.core.index.ids import IdMap
from engram_ros.core.index.persistence import load_index
from engram_ros.core.index.persistence import save_index
from engram_ros.core.index.stage1 import filter_slots
from engram_ros.core.index.tags import check_tag_lists
from engram_ros.core.index.tags import TagPool


def _tuning(name: str, doc: str) -> property:
    """A search parameter held by :class:`DenseVectors`, read and set through the façade."""
    return property(lambda self: getattr(self._dense, name),
                    lambda self, value: setattr(self._dense, name, value), doc=doc)


class EngramIndex:
    """Columnar hot index of engrams: stage-1 filters and stage-2 dense top-k.

    :param dim: context-vector dimension.
    :param exact_threshold: candidate sets up to this size are ranked exactly.
    :param hnsw_m: HNSW links per node (memory ~ ``8 * hnsw_m`` bytes per engram).
    :param ef_search: HNSW beam width for an unfiltered search; filtered searches scale it.
    :param ef_construction: HNSW beam width while inserting.
    :param max_ef: cap on the scaled beam width of a filtered HNSW search.
    :param max_exact: above this many candidates the exact path is never taken.
    :param filtered_ef: beam width of a filtered HNSW search before it is scaled by
        ``slots / candidates``.
    :param cell_size: [m] side of the grid cells that index positions for radius filters.
    :raises ValueError: for a non-positive dimension or parameter.
    """

    def __init__(self, dim: int, *, exact_threshold: int = 2048, hnsw_m: int = 16,
                 ef_search: int = 128, ef_construction: int = 40, max_ef: int = 1024,
                 max_exact: int = 40000, filtered_ef: int = 64, cell_size: float = 4.0) -> None:
        if min(dim, ef_search, ef_construction, max_ef, filtered_ef) <= 0 or hnsw_m <= 1:
            raise ValueError('dim, ef_search, ef_construction, max_ef and filtered_ef must be '
                             '> 0, hnsw_m > 1')
        if exact_threshold < 0:
            raise ValueError(f'exact_threshold={exact_threshold} must be >= 0')
        if not cell_size > 0.0:
            raise ValueError(f'cell_size={cell_size} must be > 0 [m]')
        self.cell_size = float(cell_size)
        self._dense = DenseVectors(
            int(dim), exact_threshold=int(exact_threshold), hnsw_m=int(hnsw_m),
            ef_search=int(ef_search), ef_construction=int(ef_construction),
            max_ef=int(max_ef), max_exact=int(max_exact), filtered_ef=int(filtered_ef))
        self._cols = Columns()
        self._id_map = IdMap()
        self._tags = TagPool()
        self._grid = Grid(self.cell_size)
        #: Bumped whenever slots are renumbered (:meth:`compact`): what a reader caches by
        #: slot holds for one layout.
        self.layout = 0

    # The search parameters live with the vectors; the façade reads and sets them there.
    dim = property(lambda self: self._dense.dim, doc='Context-vector dimension.')
    exact_threshold = _tuning('exact_threshold', 'Candidate sets up to this size are exact.')
    hnsw_m = _tuning('hnsw_m', 'HNSW links per node.')
    ef_search = _tuning('ef_search', 'HNSW beam width of an unfiltered search.')
    ef_construction = _tuning('ef_construction', 'HNSW beam width while inserting.')
    max_ef = _tuning('max_ef', 'Cap on the scaled beam width of a filtered search.')
    max_exact = _tuning('max_exact', 'Above this many candidates, never the exact path.')
    filtered_ef = _tuning('filtered_ef', 'Beam width of a filtered search before scaling.')

    def _reserve(self, n: int) -> None:
        self._cols.reserve(n)
        self._tags.reserve(n)

    # ------------------------------------------------------------------ writers

    def add(self, engram_id: int, vector: np.ndarray, *, kind: int, position: np.ndarray,
            first_seen: float, last_seen: float, tags: Sequence[str],
            score: float = 0.5, count: int = 1) -> None:
        """Add one engram (the robot's steady-state path).

        :raises ValueError: if the id is already live, or for a malformed vector / position.
        :raises TypeError: if ``tags`` is one string instead of a sequence of strings.
        """
        self.add_batch(np.array([engram_id], dtype=np.int64), np.asarray(vector)[None, ...],
                       kinds=np.array([kind]), positions=np.asarray(position)[None, ...],
                       first_seen=np.array([first_seen]), last_seen=np.array([last_seen]),
                       tags=[tags], scores=np.array([score]), counts=np.array([count]))

    def add_batch(self, ids: np.ndarray, vectors: np.ndarray, *, kinds: np.ndarray,
                  positions: np.ndarray, first_seen: np.ndarray, last_seen: np.ndarray,
                  tags: Sequence[Sequence[str]], scores: np.ndarray | None = None,
                  counts: np.ndarray | None = None) -> None:
        """Add many engrams at once (start-up rebuild from the database, benchmarks).

        :param scores: usefulness scores (default 0.5 each).
        :param counts: observations merged into each engram (default 1 each).
        :raises ValueError: for duplicate or already-live ids, or mismatched lengths/shapes,
            or an observation count below 1.
        :raises TypeError: if an engram's tags are one string instead of a sequence.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        m = ids.shape[0]
        if m == 0:
            return
        x = self._dense.normalise(vectors, 'vectors')
        pos, kinds_a, first, last, sc, cn = checked_rows(
            m, x, positions=positions, kinds=kinds, first_seen=first_seen, last_seen=last_seen,
            scores=scores, counts=counts, tags=tags)
        if np.unique(ids).shape[0] != m:
            raise ValueError('add_batch: duplicate ids in the batch')
        map_pos = self._id_map.lookup(ids)
        live = self._id_map.live_at(map_pos)
        if np.any(live):
            raise ValueError(f'engram id(s) already in the index: {ids[live][:5].tolist()}')
        # everything that can fail is done before the first mutation
        code_lists = [self._tags.codes_of(t) for t in tags]
        tag_counts = np.fromiter((c.shape[0] for c in code_lists), dtype=np.int64, count=m)
        if np.any(tag_counts > np.iinfo(np.uint16).max):
            raise ValueError('at most 65535 tags per engram are supported')
        cols = self._cols
        n0 = cols.n
        n1 = n0 + m
        self._reserve(n1)
        self._dense.add(x)
        slots = np.arange(n0, n1, dtype=np.int64)
        cols.ids[n0:n1] = ids
        cols.pos[n0:n1] = pos
        self._grid.append(slots, cols.pos[n0:n1])
        cols.first[n0:n1] = first
        cols.last[n0:n1] = last
        cols.score[n0:n1] = sc
        cols.count[n0:n1] = cn
        cols.kind[n0:n1] = kinds_a
        cols.alive[n0:n1] = True
        self._tags.append_rows(slots, code_lists, tag_counts)
        self._id_map.add(ids, slots, map_pos)
        cols.n = n1
        cols.n_live += m
        cols.alive_bits = None

    def update(self, engram_id: int, *, vector: np.ndarray | None = None,
               kind: int | None = None, position: np.ndarray | None = None,
               first_seen: float | None = None, last_seen: float | None = None,
               tags: Sequence[str] | None = None, score: float | None = None,
               count: int | None = None) -> None:
        """Change the given fields of a live engram (a merge); ``None`` leaves a field as is.

        :raises KeyError: if ``engram_id`` is not live in the index.
        :raises ValueError: for a malformed vector or value.
        :raises TypeError: if ``tags`` is one string instead of a sequence of strings.
        """
        slot = self.slot_of(engram_id)
        cols = self._cols
        if count is not None and not 1 <= int(count) <= np.iinfo(np.uint32).max:
            raise ValueError(f'observation count {count} must be in 1..2**32-1')
        if vector is not None:
            x = self._dense.normalise(vector, 'vector')
            self._dense.codes_view()[slot] = self._dense.encode(x)[0]
        if kind is not None:
            if not 0 <= int(kind) <= 255:
                raise ValueError(f'kind code {kind} must be in 0..255')
            cols.kind[slot] = int(kind)
        if position is not None:
            p = np.asarray(position, dtype=np.float64).reshape(-1)
            if p.shape[0] != 3 or not np.all(np.isfinite(p)):
                raise ValueError('position must be three finite coordinates')
            self._grid.discard(slot, cols.pos[slot])
            cols.pos[slot] = p
            self._grid.insert(slot, cols.pos[slot])
        for name, value in (('first_seen', first_seen), ('last_seen', last_seen),
                            ('score', score)):
            if value is not None and not math.isfinite(float(value)):
                raise ValueError(f'{name}={value} must be finite')
        if first_seen is not None:
            cols.first[slot] = float(first_seen)
        if last_seen is not None:
            cols.last[slot] = float(last_seen)
        if score is not None:
            cols.score[slot] = float(score)
        if count is not None:
            cols.count[slot] = int(count)
        if tags is not None:
            self._tags.set_tags(slot, tags, cols.n)

    def remove(self, engram_id: int) -> None:
        """Tombstone an engram: it is never returned again (its graph node keeps routing).

        :raises KeyError: if ``engram_id`` is not live in the index.
        """
        slot = self.slot_of(engram_id)
        cols = self._cols
        self._tags.drop(slot)
        self._grid.discard(slot, cols.pos[slot])
        cols.alive[slot] = False
        self._id_map.slots[self._id_map.find(engram_id)] = -1
        cols.n_live -= 1
        cols.alive_bits = None

    def update_batch(self, ids: np.ndarray | Sequence[int], *,
                     vectors: np.ndarray | None = None, kinds: np.ndarray | None = None,
                     positions: np.ndarray | None = None, first_seen: np.ndarray | None = None,
                     last_seen: np.ndarray | None = None,
                     tags: Sequence[Sequence[str]] | None = None,
                     scores: np.ndarray | None = None,
                     counts: np.ndarray | None = None) -> None:
        """Change the given columns of many live engrams at once (a consolidation pass).

        The same as :meth:`update` per id, with one faiss encode for all vectors, one merge per
        touched posting list and grid cell, and no re-posting of tags that did not change.
        Every given column holds one row per id; ``None`` leaves that column as is.

        :raises KeyError: if an id is not live in the index; nothing is changed then.
        :raises ValueError: for duplicate ids, a column of the wrong length, a malformed
            vector, a non-finite value or a kind code outside 0..255; nothing is changed.
        :raises TypeError: for non-integer ids, or an engram's tags given as one string.
        """
        ids_a = id_array(ids)
        m = ids_a.shape[0]
        if m == 0:
            return
        slots, _ = self._id_map.live_slots(ids_a)
        x = None if vectors is None else self._dense.normalise(vectors, 'vectors')
        pos = None if positions is None else np.asarray(positions, dtype=np.float64)
        if pos is not None and pos.shape != (m, 3):
            raise ValueError(f'update_batch: positions has shape {pos.shape}, not ({m}, 3)')
        columns = checked_columns(m, x, pos, first_seen=first_seen, last_seen=last_seen,
                                   scores=scores, kinds=kinds, counts=counts)
        if tags is not None:
            check_tag_lists(tags, m)
        # everything that can fail is checked before the first mutation
        cols = self._cols
        if x is not None:
            self._dense.codes_view()[slots] = self._dense.encode(x)
        if 'kinds' in columns:
            cols.kind[slots] = columns['kinds'].astype(np.uint8)
        if pos is not None:
            new_pos = pos.astype(np.float32)
            moved = np.flatnonzero(np.any(self._grid.cells(cols.pos[slots])
                                          != self._grid.cells(new_pos), axis=1))
            self._grid.discard_many(slots[moved], cols.pos[slots[moved]])
            cols.pos[slots] = new_pos
            self._grid.insert_many(slots[moved], cols.pos[slots[moved]])
        if 'first_seen' in columns:
            cols.first[slots] = columns['first_seen']
        if 'last_seen' in columns:
            cols.last[slots] = columns['last_seen']
        if 'scores' in columns:
            cols.score[slots] = columns['scores']
        if 'counts' in columns:
            cols.count[slots] = columns['counts'].astype(np.uint32)
        if tags is not None:
            self._tags.retag(slots, tags, cols.n)

    def remove_batch(self, ids: np.ndarray | Sequence[int]) -> None:
        """Tombstone many engrams at once: :meth:`remove` per id, with one pass per touched
        posting list and grid cell instead of one per engram.

        :raises KeyError: if an id is not live in the index; nothing is changed then.
        :raises ValueError: for duplicate ids; nothing is changed then.
        :raises TypeError: for non-integer ids.
        """
        ids_a = id_array(ids)
        if ids_a.shape[0] == 0:
            return
        slots, map_pos = self._id_map.live_slots(ids_a)
        cols = self._cols
        self._tags.drop_many(slots)
        self._grid.discard_many(slots, cols.pos[slots])
        cols.alive[slots] = False
        self._id_map.slots[map_pos] = -1
        cols.n_live -= slots.shape[0]
        cols.alive_bits = None

    # ------------------------------------------------------------------ lookups

    def has_ids(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Which of ``ids`` are live in the index (``bool`` array; vectorised ``in``)."""
        ids_a = id_array(ids)
        return self._id_map.live_at(self._id_map.lookup(ids_a))

    def __len__(self) -> int:
        return self._cols.n_live

    def __contains__(self, engram_id: object) -> bool:
        try:
            pos = self._id_map.find(int(engram_id))  # type: ignore[call-overload]
        except (TypeError, ValueError, OverflowError):
            return False
        return pos >= 0 and self._id_map.slots[pos] >= 0

    def slot_of(self, engram_id: int) -> int:
        """Slot of a live engram.

        :raises KeyError: if ``engram_id`` is not live in the index.
        """
        return self._id_map.slot_of(engram_id)

    def live_slots_of(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Sorted slots of those of ``ids`` that are live (others are skipped; vectorised)."""
        ids_a = id_array(ids)
        map_pos = self._id_map.lookup(ids_a)
        live = self._id_map.live_at(map_pos)
        return np.sort(self._id_map.slots[map_pos[live]].astype(np.int64))

    def holds(self, slots: np.ndarray, ids: np.ndarray) -> bool:
        """Whether every slot in ``slots`` is live and holds the id beside it in ``ids``."""
        s = np.asarray(slots, dtype=np.int64)
        if s.shape[0] and (s.min() < 0 or s.max() >= self._cols.n):
            return False
        return bool(np.all(self._cols.alive[s]) and np.array_equal(self._cols.ids[s], ids))

    def alive_of(self, slots: np.ndarray) -> np.ndarray:
        """Whether each slot is live (``bool``)."""
        return self._cols.alive[self._cols.check_slots(slots)]

    def member(self, slots: np.ndarray, sorted_slots: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``slots`` are in the sorted ``sorted_slots``."""
        return self._cols.member(np.asarray(slots, dtype=np.int64), sorted_slots)

    @property
    def slot_count(self) -> int:
        """Slots in use, tombstones included (a rebuild drops the tombstones)."""
        return self._cols.n

    @property
    def tombstones(self) -> int:
        """Removed engrams still holding a slot and a graph node."""
        return self._cols.n - self._cols.n_live

    def live_slots(self) -> np.ndarray:
        """All live slots, increasing."""
        return self._cols.live_slots()

    def ids_of(self, slots: np.ndarray) -> np.ndarray:
        """Engram ids (``int64``) of ``slots``.

        The ``*_of`` accessors take any integer array of slots and return a new array.

        :raises IndexError: for a slot out of range (all ``*_of`` accessors).
        """
        return self._cols.ids[self._cols.check_slots(slots)]

    def positions_of(self, slots: np.ndarray) -> np.ndarray:
        """Positions, ``(n, 3)`` ``float32`` metres."""
        return self._cols.pos[self._cols.check_slots(slots)]

    def first_seen_of(self, slots: np.ndarray) -> np.ndarray:
        """First-seen stamps (``float64`` s since epoch)."""
        return self._cols.first[self._cols.check_slots(slots)]

    def last_seen_of(self, slots: np.ndarray) -> np.ndarray:
        """Last-seen stamps (``float64`` s since epoch)."""
        return self._cols.last[self._cols.check_slots(slots)]

    def scores_of(self, slots: np.ndarray) -> np.ndarray:
        """Usefulness scores (``float32``)."""
        return self._cols.score[self._cols.check_slots(slots)]

    def counts_of(self, slots: np.ndarray) -> np.ndarray:
        """Observation counts (``uint32``): how many observations each engram merged."""
        return self._cols.count[self._cols.check_slots(slots)]

    def kinds_of(self, slots: np.ndarray) -> np.ndarray:
        """Kind codes (``uint8``)."""
        return self._cols.kind[self._cols.check_slots(slots)]

    def tags_of(self, slot: int) -> tuple[str, ...]:
        """Tags of one slot, sorted."""
        s = int(slot)
        n = self._cols.n
        if not 0 <= s < n:           # one slot: no array round trip (a hot path)
            raise IndexError(f'slot out of range 0..{n - 1}')
        return self._tags.names_of(s)

    def vectors_of(self, slots: np.ndarray) -> np.ndarray:
        """Stored (bf16-decoded) unit vectors, ``(n, dim)`` ``float32``."""
        s = self._cols.check_slots(slots)
        return bf16_to_f32(self._dense.codes_view()[s])

    def pair_similarities(self, vectors: np.ndarray, rows: np.ndarray,
                          slots: np.ndarray) -> np.ndarray:
        """``vectors[rows[k]] . stored vector of slots[k]`` for every k (``float32``).

        For many (query, engram) pairs at once, e.g. every close pair a consolidation pass
        finds: the stored bf16 codes are decoded chunk by chunk, never all at once.

        :param vectors: ``(m, dim)`` query vectors, used as given (not normalised).
        :raises ValueError: for vectors of the wrong dimension or arrays of unequal length.
        :raises IndexError: for a slot or row out of range.
        """
        q = np.asarray(vectors, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f'vectors have shape {q.shape}; ({q.shape[0] if q.ndim else 0}, '
                             f'{self.dim}) is required')
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        s = self._cols.check_slots(slots)
        if rows.shape[0] != s.shape[0]:
            raise ValueError(f'{rows.shape[0]} rows but {s.shape[0]} slots')
        if rows.shape[0] and (rows.min() < 0 or rows.max() >= q.shape[0]):
            raise IndexError(f'row out of range 0..{q.shape[0] - 1}')
        return self._dense.pair_similarities(q, rows, s)

    def tag_match_count(self, slots: np.ndarray, tags: Sequence[str]) -> np.ndarray:
        """How many of ``tags`` each slot carries (``int32``; unknown tags match nothing)."""
        s = self._cols.check_slots(slots)
        out = np.zeros(s.shape[0], dtype=np.int32)
        for tag in set(tags):
            code = self._tags.codes.get(tag)
            if code is not None:
                out += self._cols.member(s, self._tags.postings.get(code))
        return out

    def present_tags(self, namespaces: Sequence[str] = (), among: Sequence[str] | None = None
                     ) -> list[str]:
        """Tags carried by at least one live engram, sorted; only ``namespaces`` when given, and
        only those ``among`` when given (cheaper than every tag name: a question's words)."""
        out = []
        alive = self._cols.alive
        postings = self._tags.postings
        codes = self._tags.codes
        names = enumerate(self._tags.names) if among is None else (
            (codes[t], t) for t in dict.fromkeys(among) if t in codes)
        for code, tag in names:
            if namespaces and tag.partition(':')[0] not in namespaces:
                continue
            posting = postings.get(code)
            if posting.size and alive[posting].any():
                out.append(tag)
        return sorted(out)

    # ------------------------------------------------------------------ stage 1

    def filter(self, *, tags_all: Sequence[str] = (), tags_any: Sequence[str] = (),
               tags_none: Sequence[str] = (), kinds: Sequence[int] = (),
               center: np.ndarray | None = None, radius: float = 0.0,
               t_start: float | None = None, t_end: float | None = None) -> np.ndarray | None:
        """Live slots passing every given condition, increasing; ``None`` if none was given.

        Tags: all of ``tags_all``, at least one of ``tags_any``, none of ``tags_none``.
        ``radius > 0`` keeps engrams within ``radius`` metres (3D) of ``center``. The time
        window keeps engrams whose ``[first_seen, last_seen]`` overlaps ``[t_start, t_end]``;
        ``None`` leaves that side open.

        :raises ValueError: for a positive radius without a three-value finite centre.
        """
        return filter_slots(self._cols, self._tags, self._grid, tags_all=tags_all,
                            tags_any=tags_any, tags_none=tags_none, kinds=kinds,
                            center=center, radius=radius, t_start=t_start, t_end=t_end)

    # ------------------------------------------------------------------ stage 2

    def dense_topk(self, vector: np.ndarray, k: int,
                   candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` slots by cosine similarity, best first, among ``candidates``.

        :param candidates: unique slots, e.g. from :meth:`filter`; ``None`` means every live
            engram. Removed slots among them are ignored.
        :returns: ``(slots int64, similarities float32)``, at most ``k`` of each.
        :raises ValueError: for ``k < 1`` or a malformed query vector.
        :raises IndexError: for a candidate slot out of range.
        """
        if k < 1:
            raise ValueError(f'k={k} must be >= 1')
        q = self._dense.normalise(vector, 'query vector')
        if q.shape[0] != 1:
            raise ValueError('dense_topk takes one query vector')
        cand = None if candidates is None else self._cols.check_slots(candidates)
        return self._dense.topk(q, k, cand, self._cols)

    def _use_exact(self, m: int) -> bool:
        """Whether ``m`` candidates are ranked exactly (see :mod:`.dense`)."""
        return self._dense.use_exact(m, self._cols.n)

    # ------------------------------------------------------------------ graph pending

    @property
    def graph_pending(self) -> bool:
        """Whether the HNSW graph is still to be built (every search is exact meanwhile; see
        :mod:`.dense`)."""
        return self._dense.graph_pending

    def defer_graph(self) -> None:
        """Start without the HNSW graph (only while empty): adds keep codes only, searches
        are exact, until :meth:`build_graph`."""
        self._dense.defer_graph()

    def build_graph(self, lock: AbstractContextManager,
                    abandoned: Callable[[], bool] = lambda: False) -> bool:
        """Build the pending graph over the codes and swap it in (see
        :meth:`.dense.DenseVectors.build_graph`); ``lock`` guards this index and is held only
        for short steps, so searches and writes go on meanwhile. ``False`` when nothing was
        pending, when a compaction replaced the vectors meanwhile (its graph is built), or
        when ``abandoned()`` turned true (checked between batches; the graph stays pending)."""
        with lock:
            dense = self._dense
        return dense.build_graph(lock, lambda: self._dense is dense and not abandoned())

    # ------------------------------------------------------------------ compaction

    def has_dead_entries(self) -> bool:
        """Whether anything of a removed engram or tag is still held (see :mod:`.compaction`)."""
        return has_dead_entries(self)

    def worth_compacting(self) -> bool:
        """Whether tombstones passed the threshold for a compaction in RAM."""
        return worth_compacting(self)

    def compacted(self) -> 'EngramIndex':
        """A new index of the live engrams only; this one is only read (readers may run)."""
        return compacted(self)

    def compact(self, fresh: 'EngramIndex | None' = None) -> None:
        """Drop every dead entry: become :meth:`compacted` (or ``fresh``, made by it with no
        write in between). Slots are renumbered: hold none across this call."""
        fresh = self.compacted() if fresh is None else fresh
        self._dense, self._cols, self._id_map = fresh._dense, fresh._cols, fresh._id_map
        self._tags, self._grid = fresh._tags, fresh._grid
        self.layout += 1

    # ------------------------------------------------------------------ persistence

    def memory_bytes(self) -> int:
        """Estimated bytes held: bf16 codes, HNSW graph, columns, id map, tags."""
        arrays = sum(a.nbytes for a in self._cols.arrays())
        arrays += self._id_map.ids.nbytes + self._id_map.slots.nbytes
        return int(self._dense.nbytes() + arrays + self._tags.nbytes())

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` (created if needed); files are replaced atomically.

        :raises OSError: if the files cannot be written.
        """
        save_index(self, directory)

    @classmethod
    def load(cls, directory: Path) -> 'EngramIndex':
        """Read an index written by :meth:`save`.

        :raises IndexLoadError: if a file is missing, corrupt (checksum, parse) or the parts
            disagree; the caller should rebuild from the database.
        """
        return load_index(cls, directory)

