"""The in-RAM hot index of the memory: compact columns for filtering, faiss HNSW for ranking.

Recall is two-stage. Stage 1 (:meth:`EngramIndex.filter`) narrows the memory to the engrams
that satisfy a symbolic / kind / space / time filter; stage 2 (:meth:`EngramIndex.dense_topk`)
ranks those candidates by cosine similarity of their context vectors. Full engram records live
in SQLite; this index keeps only what the two stages need, as columns addressed by a *slot*
(the engram's insertion position), so it holds no Python object per engram.

Layout (about 750 B per engram at 256-d, measured in ``docs/benchmarks/index.md``):

* **vectors**: a faiss ``IndexHNSWSQ`` with ``QT_bf16`` storage (2 B per dimension, no training,
  so the index can start empty and grow one add at a time) and ``M = 16`` (about 140 B of graph
  links per engram). Vectors are L2-normalised, so inner product is cosine similarity. bf16
  rather than fp16: its error on a unit vector's dot product is ~1e-4 (far below the gaps
  between neighbours), and decoding it is a 16-bit shift, which numpy does ~7x faster than
  fp16 -> float32 here; that makes the exact path below affordable. Updating a vector
  re-encodes the slot's code in place; the graph links stay, which is fine for the small
  nudges a merge makes.
* **columns**: ``int64`` id, ``float32`` position (mm precision within ~10 km), ``float64``
  first/last seen (epoch seconds need it), ``float32`` score, ``uint32`` observation count
  (the evidence behind an engram, which ranking weighs), ``uint8`` kind, ``bool`` alive.
* **id -> slot**: a sorted ``int64`` id array with a parallel ``int32`` slot array, searched
  with ``np.searchsorted`` (ids are sparse but arrive increasing, so adds append).
* **tags**: interned to ``int32`` codes; one sorted ``int32`` posting list per tag (amortised
  doubling) holding only live slots, plus a per-slot ``(offset, count)`` into a shared tag-code
  pool so a slot's old tags can be found on update / remove.

Retrieval strategy (thresholds measured on one core, see the benchmark):

* no filter: plain HNSW with ``ef_search`` (an alive-bitmap ``IDSelectorBitmap`` once engrams
  have been removed);
* at most ``exact_threshold`` candidates, or a selectivity so low that HNSW would need an
  ``efSearch`` above ``max_ef`` (``candidates < slots * filtered_ef / max_ef``) while there are
  at most ``max_exact`` candidates: exact similarities over just those candidates (their bf16
  codes are gathered and decoded in cache-sized chunks), because a filtered HNSW search loses
  its recall when few engrams match;
* otherwise: HNSW restricted by an ``IDSelectorBitmap``, with ``efSearch`` scaled up as the
  selectivity drops (``filtered_ef * slots / candidates``, at least ``ef_search``, capped at
  ``max_ef``); if it still returns fewer than ``k`` hits the exact path answers instead.

Defaults (``exact_threshold=2048``, ``ef_search=128``, ``filtered_ef=64``, ``max_ef=1024``,
``max_exact=40000``, ``hnsw_m=16``, ``ef_construction=40``) were tuned on one core with 1M
clustered 256-d engrams. ``ef_search=64`` left unfiltered recall@10 at 0.91 (0.97 at 128). An
exact pass costs about 0.4-0.6 us per candidate at 1M (10k candidates: 4-6 ms); a filtered
HNSW search at efSearch 640 costs about 4 ms. See ``docs/benchmarks/index.md``.

Removed engrams are tombstoned: they keep their graph node (it still routes searches) but are
dropped from every posting list and the alive bitmap and marked removed in the id map, so they
never come back; :attr:`EngramIndex.tombstones` tells the store when a rebuild is worth it.
Slots never move, so a slot stays valid across adds and removes (a rebuild reassigns them).

Thread safety: none. The store serialises writers and holds its lock around search + add;
readers must not run concurrently with a writer. faiss uses OpenMP threads inside ``add_batch``
(``faiss.omp_set_num_threads`` sets how many).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

_LOG = logging.getLogger(__name__)

#: On-disk format version; bump when the saved layout changes. 2 added the observation-count
#: column; an older saved index fails to load with :class:`IndexLoadError`, and the store then
#: rebuilds it from the database (which always kept the counts).
FORMAT_VERSION = 2

_FAISS_FILE = 'hnsw.faiss'
_COLUMNS_FILE = 'columns.npz'
_META_FILE = 'meta.json'
_FILES = (_FAISS_FILE, _COLUMNS_FILE)

#: Rows decoded per chunk on the exact path (256-d uint32 -> 1 MiB: stays in L2 cache).
_EXACT_CHUNK = 1024
#: A membership test switches from ``searchsorted`` to a scratch bitmap above n / this.
_MASK_RATIO = 16


class IndexLoadError(RuntimeError):
    """A saved index is missing, corrupt or does not match; rebuild it from the database."""


def _grow(arr: np.ndarray, needed: int) -> np.ndarray:
    """Return ``arr`` (or a copy with doubled capacity) able to hold ``needed`` rows."""
    cap = arr.shape[0]
    if needed <= cap:
        return arr
    new_cap = max(needed, 2 * cap, 16)
    out = np.zeros((new_cap,) + arr.shape[1:], dtype=arr.dtype)
    out[:cap] = arr
    return out


class _Postings:
    """Sorted, growable ``int32`` posting lists, one per interned tag code."""

    def __init__(self) -> None:
        self.lists: list[np.ndarray] = []
        self.sizes: list[int] = []

    def new_tag(self) -> None:
        self.lists.append(np.zeros(0, dtype=np.int32))
        self.sizes.append(0)

    def get(self, code: int) -> np.ndarray:
        return self.lists[code][:self.sizes[code]]

    def append(self, code: int, slots: np.ndarray) -> None:
        """Append slots larger than every slot already in the list (the add path)."""
        n = self.sizes[code]
        arr = _grow(self.lists[code], n + slots.shape[0])
        arr[n:n + slots.shape[0]] = slots
        self.lists[code] = arr
        self.sizes[code] = n + slots.shape[0]

    def insert(self, code: int, slot: int) -> None:
        n = self.sizes[code]
        arr = _grow(self.lists[code], n + 1)
        pos = int(np.searchsorted(arr[:n], slot))
        if pos < n and arr[pos] == slot:
            return
        arr[pos + 1:n + 1] = arr[pos:n].copy()
        arr[pos] = slot
        self.lists[code] = arr
        self.sizes[code] = n + 1

    def discard(self, code: int, slot: int) -> None:
        n = self.sizes[code]
        arr = self.lists[code]
        pos = int(np.searchsorted(arr[:n], slot))
        if pos < n and arr[pos] == slot:
            arr[pos:n - 1] = arr[pos + 1:n].copy()
            self.sizes[code] = n - 1

    def insert_many(self, code: int, slots: np.ndarray) -> None:
        """Insert sorted unique ``slots`` anywhere in the list (one merge, not one per slot)."""
        n = self.sizes[code]
        merged = np.union1d(self.lists[code][:n], slots).astype(np.int32)
        arr = _grow(self.lists[code], merged.shape[0])
        arr[:merged.shape[0]] = merged
        self.lists[code] = arr
        self.sizes[code] = merged.shape[0]

    def discard_many(self, code: int, slots: np.ndarray) -> None:
        """Drop sorted unique ``slots`` from the list (those absent are ignored)."""
        n = self.sizes[code]
        arr = self.lists[code]
        current = arr[:n]
        pos = np.searchsorted(slots, current)
        np.minimum(pos, slots.shape[0] - 1, out=pos)
        kept = current[slots[pos] != current]
        arr[:kept.shape[0]] = kept
        self.sizes[code] = kept.shape[0]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.lists)


class _Grid:
    """Uniform grid over (x, y): cell -> sorted live slots, so a radius filter (a recall near a
    place, or ingest looking for the engram an observation reactivates) reads the few cells
    around the centre instead of every position."""

    #: A radius covering more cells than this is filtered by one pass over every position.
    MAX_CELLS = 256

    def __init__(self, cell: float) -> None:
        self.cell = float(cell)
        self._codes: dict[tuple[int, int], int] = {}
        self._postings = _Postings()

    def _key(self, p: np.ndarray) -> tuple[int, int]:
        # float64 like _cells: a float32 quotient could round into the neighbouring cell
        return (int(math.floor(float(p[0]) / self.cell)),
                int(math.floor(float(p[1]) / self.cell)))

    def _cells(self, positions: np.ndarray) -> np.ndarray:
        """``(n, 2)`` int64 cell coordinates of positions (the vectorised :meth:`_key`)."""
        xy = np.asarray(positions, dtype=np.float64)[:, :2]
        return np.floor(xy / self.cell).astype(np.int64)

    def _groups(self, slots: np.ndarray, positions: np.ndarray):
        """``(cell key, sorted int32 slots)`` for each cell the positions fall in."""
        cells = self._cells(positions)
        order = np.lexsort((slots, cells[:, 1], cells[:, 0]))
        cells, ordered = cells[order], slots[order].astype(np.int32)
        bounds = np.flatnonzero(np.any(np.diff(cells, axis=0) != 0, axis=1)) + 1
        for a, b in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(ordered)].tolist()):
            yield (int(cells[a, 0]), int(cells[a, 1])), ordered[a:b]

    def _code(self, key: tuple[int, int]) -> int:
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self._codes)
            self._postings.new_tag()
        return code

    def append(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Add new slots (each larger than every slot already in the grid)."""
        if slots.shape[0] == 0:
            return
        for key, group in self._groups(slots, positions):
            self._postings.append(self._code(key), group)

    def discard(self, slot: int, position: np.ndarray) -> None:
        code = self._codes.get(self._key(position))
        if code is not None:
            self._postings.discard(code, slot)

    def insert(self, slot: int, position: np.ndarray) -> None:
        self._postings.insert(self._code(self._key(position)), slot)

    def discard_many(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Drop slots (at these positions) from their cells, one pass per cell."""
        if slots.shape[0] == 0:
            return
        for key, group in self._groups(slots, positions):
            code = self._codes.get(key)
            if code is not None:
                self._postings.discard_many(code, group)

    def insert_many(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Put slots (at these positions) into their cells, wherever they fall in the order."""
        if slots.shape[0] == 0:
            return
        for key, group in self._groups(slots, positions):
            self._postings.insert_many(self._code(key), group)

    def near(self, center: np.ndarray, radius: float) -> np.ndarray | None:
        """Sorted slots in the cells the circle touches, or ``None`` when it spans too many."""
        x0, y0 = self._key(center - radius)
        x1, y1 = self._key(center + radius)
        if (x1 - x0 + 1) * (y1 - y0 + 1) > self.MAX_CELLS:
            return None
        lists = [self._postings.get(code) for code in
                 (self._codes.get((x, y)) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))
                 if code is not None]
        if not lists:
            return np.zeros(0, dtype=np.int32)
        return np.sort(np.concatenate(lists)) if len(lists) > 1 else lists[0]

    def nbytes(self) -> int:
        return self._postings.nbytes()


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
        self.dim = int(dim)
        self.exact_threshold = int(exact_threshold)
        self.hnsw_m = int(hnsw_m)
        self.ef_search = int(ef_search)
        self.ef_construction = int(ef_construction)
        self.max_ef = int(max_ef)
        self.max_exact = int(max_exact)
        self.filtered_ef = int(filtered_ef)
        if not cell_size > 0.0:
            raise ValueError(f'cell_size={cell_size} must be > 0 [m]')
        self.cell_size = float(cell_size)
        self._hnsw = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_bf16, self.hnsw_m,
                                       faiss.METRIC_INNER_PRODUCT)
        self._hnsw.hnsw.efConstruction = self.ef_construction
        self._hnsw.hnsw.efSearch = self.ef_search
        self._init_columns()

    # ------------------------------------------------------------------ construction helpers

    def _init_columns(self) -> None:
        self._n = 0  # slots used (live + tombstoned)
        self._n_live = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._pos = np.zeros((0, 3), dtype=np.float32)
        self._first = np.zeros(0, dtype=np.float64)
        self._last = np.zeros(0, dtype=np.float64)
        self._score = np.zeros(0, dtype=np.float32)
        self._count = np.zeros(0, dtype=np.uint32)
        self._kind = np.zeros(0, dtype=np.uint8)
        self._alive = np.zeros(0, dtype=bool)
        self._scratch = np.zeros(0, dtype=bool)
        self._grid = _Grid(self.cell_size)
        # id -> slot map; -1 marks a removed id
        self._map_ids = np.zeros(0, dtype=np.int64)
        self._map_slots = np.zeros(0, dtype=np.int32)
        self._map_n = 0
        # per-slot tag codes in a shared pool
        self._tag_off = np.zeros(0, dtype=np.int64)
        self._tag_cnt = np.zeros(0, dtype=np.uint16)
        self._pool = np.zeros(0, dtype=np.int32)
        self._pool_n = 0
        self._pool_garbage = 0
        self._tag_codes: dict[str, int] = {}
        self._tag_names: list[str] = []
        self._postings = _Postings()
        self._alive_bits: np.ndarray | None = None

    def _reserve(self, n: int) -> None:
        self._ids = _grow(self._ids, n)
        self._pos = _grow(self._pos, n)
        self._first = _grow(self._first, n)
        self._last = _grow(self._last, n)
        self._score = _grow(self._score, n)
        self._count = _grow(self._count, n)
        self._kind = _grow(self._kind, n)
        self._alive = _grow(self._alive, n)
        self._scratch = _grow(self._scratch, n)
        self._tag_off = _grow(self._tag_off, n)
        self._tag_cnt = _grow(self._tag_cnt, n)

    # ------------------------------------------------------------------ small helpers

    def _normalise(self, vectors: np.ndarray, what: str) -> np.ndarray:
        x = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f'{what} has shape {np.shape(vectors)}; {self.dim} values per '
                             'vector are required')
        if not np.all(np.isfinite(x)):
            raise ValueError(f'{what} contains NaN or inf')
        norms = np.linalg.norm(x, axis=1)
        if np.any(norms <= 0.0):
            raise ValueError(f'{what} contains an all-zero vector; it cannot be ranked')
        x /= norms[:, None]
        return np.ascontiguousarray(x)

    def _intern(self, tag: str) -> int:
        code = self._tag_codes.get(tag)
        if code is None:
            code = len(self._tag_names)
            self._tag_codes[tag] = code
            self._tag_names.append(tag)
            self._postings.new_tag()
        return code

    def _codes_of(self, tags: Sequence[str]) -> np.ndarray:
        if isinstance(tags, str):
            raise TypeError('tags must be a sequence of strings, not one string')
        return np.array(sorted({self._intern(str(t)) for t in tags}), dtype=np.int32)

    def _map_find(self, engram_id: int) -> int:
        """Position of ``engram_id`` in the id map, or -1."""
        ids = self._map_ids[:self._map_n]
        pos = int(np.searchsorted(ids, engram_id))
        if pos < self._map_n and ids[pos] == engram_id:
            return pos
        return -1

    def _map_lookup(self, ids: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`_map_find`: map positions of ``ids`` (-1 where absent)."""
        n = self._map_n
        if n == 0:
            return np.full(ids.shape[0], -1, dtype=np.int64)
        pos = np.searchsorted(self._map_ids[:n], ids)
        np.minimum(pos, n - 1, out=pos)
        return np.where(self._map_ids[pos] == ids, pos, -1)

    def _slot_tags(self, slot: int) -> np.ndarray:
        off = int(self._tag_off[slot])
        return self._pool[off:off + int(self._tag_cnt[slot])]

    def _pool_put(self, slot: int, codes: np.ndarray) -> None:
        """Store ``codes`` as the slot's tags (in place if they fit, else appended)."""
        if codes.shape[0] > np.iinfo(np.uint16).max:
            raise ValueError(f'{codes.shape[0]} tags on one engram; at most 65535 are supported')
        cnt = int(self._tag_cnt[slot])
        if codes.shape[0] <= cnt:
            off = int(self._tag_off[slot])
            self._pool[off:off + codes.shape[0]] = codes
            self._pool_garbage += cnt - codes.shape[0]
        else:
            self._pool = _grow(self._pool, self._pool_n + codes.shape[0])
            self._pool[self._pool_n:self._pool_n + codes.shape[0]] = codes
            self._tag_off[slot] = self._pool_n
            self._pool_n += codes.shape[0]
            self._pool_garbage += cnt
        self._tag_cnt[slot] = codes.shape[0]
        if self._pool_garbage > 1024 and self._pool_garbage * 2 > self._pool_n:
            self._compact_pool()

    def _compact_pool(self) -> None:
        n = self._n
        cnt = self._tag_cnt[:n].astype(np.int64)
        new_off = np.concatenate(([0], np.cumsum(cnt)[:-1])) if n else np.zeros(0, np.int64)
        total = int(cnt.sum())
        src = np.repeat(self._tag_off[:n] - new_off, cnt) + np.arange(total, dtype=np.int64)
        self._pool = self._pool[src].copy()
        self._pool_n = total
        self._tag_off[:n] = new_off
        self._pool_garbage = 0

    def _member(self, slots: np.ndarray, posting: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``slots`` appear in the sorted ``posting`` list."""
        if posting.shape[0] == 0 or slots.shape[0] == 0:
            return np.zeros(slots.shape[0], dtype=bool)
        if slots.shape[0] * _MASK_RATIO > self._n and posting.shape[0] * _MASK_RATIO > self._n:
            scratch = self._scratch
            scratch[posting] = True
            out = scratch[slots]
            scratch[posting] = False
            return out
        pos = np.searchsorted(posting, slots)
        np.minimum(pos, posting.shape[0] - 1, out=pos)
        return posting[pos] == slots

    def _codes_view(self) -> np.ndarray:
        """The bf16 storage codes as an ``(n, dim)`` uint16 view (valid until the next add)."""
        storage = faiss.downcast_index(self._hnsw.storage)
        n = storage.ntotal
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.uint16)
        raw = faiss.rev_swig_ptr(storage.codes.data(), n * storage.code_size)
        return raw.view(np.uint16).reshape(n, self.dim)

    def _check_slots(self, slots: np.ndarray | Sequence[int]) -> np.ndarray:
        s = np.asarray(slots, dtype=np.int64).reshape(-1)
        if s.shape[0] and (s.min() < 0 or s.max() >= self._n):
            raise IndexError(f'slot out of range 0..{self._n - 1}')
        return s

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
        x = self._normalise(vectors, 'vectors')
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        kinds_a = np.asarray(kinds).reshape(-1)
        first = np.asarray(first_seen, dtype=np.float64).reshape(-1)
        last = np.asarray(last_seen, dtype=np.float64).reshape(-1)
        sc = (np.full(m, 0.5) if scores is None
              else np.asarray(scores, dtype=np.float64).reshape(-1))
        cn = (np.ones(m, dtype=np.int64) if counts is None
              else np.asarray(counts, dtype=np.int64).reshape(-1))
        if isinstance(tags, str):
            raise TypeError('tags must be one sequence of strings per engram')
        lengths = {x.shape[0], pos.shape[0], kinds_a.shape[0], first.shape[0], last.shape[0],
                   sc.shape[0], cn.shape[0], len(tags)}
        if lengths != {m}:
            raise ValueError(f'add_batch: {m} ids but columns of lengths {sorted(lengths)}')
        if np.unique(ids).shape[0] != m:
            raise ValueError('add_batch: duplicate ids in the batch')
        if np.any((kinds_a < 0) | (kinds_a > 255)):
            raise ValueError('kind codes must be in 0..255')
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(first))
                and np.all(np.isfinite(last)) and np.all(np.isfinite(sc))):
            raise ValueError('positions, times and scores must be finite')
        if np.any((cn < 1) | (cn > np.iinfo(np.uint32).max)):
            raise ValueError('observation counts must be in 1..2**32-1')
        map_pos = self._map_lookup(ids)
        known = map_pos >= 0
        live = known.copy()
        live[known] = self._map_slots[map_pos[known]] >= 0
        if np.any(live):
            raise ValueError(f'engram id(s) already in the index: {ids[live][:5].tolist()}')
        # everything that can fail is done before the first mutation
        code_lists = [self._codes_of(t) for t in tags]
        counts = np.fromiter((c.shape[0] for c in code_lists), dtype=np.int64, count=m)
        if np.any(counts > np.iinfo(np.uint16).max):
            raise ValueError('at most 65535 tags per engram are supported')
        n0 = self._n
        n1 = n0 + m
        self._reserve(n1)
        self._hnsw.add(x)
        slots = np.arange(n0, n1, dtype=np.int64)
        self._ids[n0:n1] = ids
        self._pos[n0:n1] = pos
        self._grid.append(slots, self._pos[n0:n1])
        self._first[n0:n1] = first
        self._last[n0:n1] = last
        self._score[n0:n1] = sc
        self._count[n0:n1] = cn
        self._kind[n0:n1] = kinds_a
        self._alive[n0:n1] = True
        # tags: per-slot pool entries, then posting lists grouped by tag code
        flat = (np.concatenate(code_lists) if counts.sum() else np.zeros(0, dtype=np.int32))
        self._pool = _grow(self._pool, self._pool_n + flat.shape[0])
        self._pool[self._pool_n:self._pool_n + flat.shape[0]] = flat
        self._tag_off[n0:n1] = self._pool_n + np.concatenate(([0], np.cumsum(counts)[:-1]))
        self._tag_cnt[n0:n1] = counts
        self._pool_n += flat.shape[0]
        if flat.shape[0]:
            owner = np.repeat(slots, counts).astype(np.int32)
            order = np.argsort(flat, kind='stable')
            flat_sorted = flat[order]
            owner_sorted = owner[order]
            bounds = np.flatnonzero(np.diff(flat_sorted)) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [flat_sorted.shape[0]]))
            for a, b in zip(starts.tolist(), ends.tolist()):
                self._postings.append(int(flat_sorted[a]), owner_sorted[a:b])
        # id map: the common case appends increasing ids
        if (self._map_n == 0 or ids[0] > self._map_ids[self._map_n - 1]) and \
                np.all(np.diff(ids) > 0):
            k = self._map_n
            self._map_ids = _grow(self._map_ids, k + m)
            self._map_slots = _grow(self._map_slots, k + m)
            self._map_ids[k:k + m] = ids
            self._map_slots[k:k + m] = slots
            self._map_n = k + m
        else:
            # re-added ids reuse their map entry; new ones are merged in and re-sorted
            self._map_slots[map_pos[known]] = slots[known]
            k = self._map_n
            all_ids = np.concatenate((self._map_ids[:k], ids[~known]))
            all_slots = np.concatenate((self._map_slots[:k], slots[~known].astype(np.int32)))
            order = np.argsort(all_ids, kind='stable')
            self._map_ids = all_ids[order]
            self._map_slots = all_slots[order]
            self._map_n = all_ids.shape[0]
        self._n = n1
        self._n_live += m
        self._alive_bits = None

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
        if count is not None and not 1 <= int(count) <= np.iinfo(np.uint32).max:
            raise ValueError(f'observation count {count} must be in 1..2**32-1')
        if vector is not None:
            x = self._normalise(vector, 'vector')
            storage = faiss.downcast_index(self._hnsw.storage)
            self._codes_view()[slot] = storage.sa_encode(x)[0].view(np.uint16)
        if kind is not None:
            if not 0 <= int(kind) <= 255:
                raise ValueError(f'kind code {kind} must be in 0..255')
            self._kind[slot] = int(kind)
        if position is not None:
            p = np.asarray(position, dtype=np.float64).reshape(-1)
            if p.shape[0] != 3 or not np.all(np.isfinite(p)):
                raise ValueError('position must be three finite coordinates')
            self._grid.discard(slot, self._pos[slot])
            self._pos[slot] = p
            self._grid.insert(slot, self._pos[slot])
        for name, value in (('first_seen', first_seen), ('last_seen', last_seen),
                            ('score', score)):
            if value is not None and not math.isfinite(float(value)):
                raise ValueError(f'{name}={value} must be finite')
        if first_seen is not None:
            self._first[slot] = float(first_seen)
        if last_seen is not None:
            self._last[slot] = float(last_seen)
        if score is not None:
            self._score[slot] = float(score)
        if count is not None:
            self._count[slot] = int(count)
        if tags is not None:
            new = self._codes_of(tags)
            old = self._slot_tags(slot).copy()
            for code in np.setdiff1d(old, new, assume_unique=True).tolist():
                self._postings.discard(code, slot)
            for code in np.setdiff1d(new, old, assume_unique=True).tolist():
                self._postings.insert(code, slot)
            self._pool_put(slot, new)

    def remove(self, engram_id: int) -> None:
        """Tombstone an engram: it is never returned again (its graph node keeps routing).

        :raises KeyError: if ``engram_id`` is not live in the index.
        """
        slot = self.slot_of(engram_id)
        for code in self._slot_tags(slot).tolist():
            self._postings.discard(code, slot)
        self._grid.discard(slot, self._pos[slot])
        self._pool_garbage += int(self._tag_cnt[slot])
        self._tag_cnt[slot] = 0
        self._alive[slot] = False
        self._map_slots[self._map_find(engram_id)] = -1
        self._n_live -= 1
        self._alive_bits = None

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
        ids_a = _id_array(ids)
        m = ids_a.shape[0]
        if m == 0:
            return
        slots, _ = self._live_slots(ids_a)
        x = None if vectors is None else self._normalise(vectors, 'vectors')
        pos = None if positions is None else np.asarray(positions, dtype=np.float64)
        if pos is not None and pos.shape != (m, 3):
            raise ValueError(f'update_batch: positions has shape {pos.shape}, not ({m}, 3)')
        columns = {}
        for name, value in (('first_seen', first_seen), ('last_seen', last_seen),
                            ('scores', scores), ('kinds', kinds), ('counts', counts)):
            if value is not None:
                columns[name] = np.asarray(value, dtype=np.float64).reshape(-1)
        for name, arr in list(columns.items()) + ([('vectors', x)] if x is not None else []) \
                + ([('positions', pos)] if pos is not None else []):
            if arr.shape[0] != m:
                raise ValueError(f'update_batch: {m} ids but {arr.shape[0]} {name}')
            if not np.all(np.isfinite(arr)):
                raise ValueError(f'update_batch: {name} must be finite')
        if 'kinds' in columns and np.any((columns['kinds'] < 0) | (columns['kinds'] > 255)
                                         | (columns['kinds'] != np.round(columns['kinds']))):
            raise ValueError('kind codes must be integers in 0..255')
        if 'counts' in columns and np.any((columns['counts'] < 1)
                                          | (columns['counts'] > np.iinfo(np.uint32).max)):
            raise ValueError('observation counts must be in 1..2**32-1')
        if tags is not None:
            _check_tag_lists(tags, m)
        # everything that can fail is checked before the first mutation
        if x is not None:
            storage = faiss.downcast_index(self._hnsw.storage)
            self._codes_view()[slots] = storage.sa_encode(x).view(np.uint16)
        if 'kinds' in columns:
            self._kind[slots] = columns['kinds'].astype(np.uint8)
        if pos is not None:
            new_pos = pos.astype(np.float32)
            moved = np.flatnonzero(np.any(self._grid._cells(self._pos[slots])
                                          != self._grid._cells(new_pos), axis=1))
            self._grid.discard_many(slots[moved], self._pos[slots[moved]])
            self._pos[slots] = new_pos
            self._grid.insert_many(slots[moved], self._pos[slots[moved]])
        if 'first_seen' in columns:
            self._first[slots] = columns['first_seen']
        if 'last_seen' in columns:
            self._last[slots] = columns['last_seen']
        if 'scores' in columns:
            self._score[slots] = columns['scores']
        if 'counts' in columns:
            self._count[slots] = columns['counts'].astype(np.uint32)
        if tags is not None:
            self._retag(slots, tags)

    def _retag(self, slots: np.ndarray, tags: Sequence[Sequence[str]]) -> None:
        """Set the tags of ``slots`` (live, unique), touching only those that change."""
        flat, owner, counts = self._tag_table(tags)
        starts = np.cumsum(counts) - counts
        old_cnt = self._tag_cnt[slots].astype(np.int64)
        same = old_cnt == counts
        check = np.flatnonzero(same & (counts > 0))
        if check.shape[0]:
            c = counts[check]
            ramp = _ramp(c)
            old = self._pool[np.repeat(self._tag_off[slots[check]], c) + ramp]
            differs = old != flat[np.repeat(starts[check], c) + ramp]
            same[check[np.repeat(np.arange(check.shape[0]), c)[differs]]] = False
        changed = np.flatnonzero(~same)
        if changed.shape[0] == 0:
            return
        ch_slots = slots[changed]
        oc = old_cnt[changed]
        old_codes = self._pool[np.repeat(self._tag_off[ch_slots], oc) + _ramp(oc)]
        old_owner = np.repeat(ch_slots, oc)
        sel = ~same[owner]
        new_codes = flat[sel]
        new_owner = slots[owner[sel]]
        width = len(self._tag_names)
        old_keys = old_owner * width + old_codes
        new_keys = new_owner * width + new_codes
        drop = ~np.isin(old_keys, new_keys)
        for code, group in _group_by(old_codes[drop], old_owner[drop]):
            self._postings.discard_many(code, group)
        add = ~np.isin(new_keys, old_keys)
        for code, group in _group_by(new_codes[add], new_owner[add]):
            self._postings.insert_many(code, group)
        # the changed slots' codes go to the end of the pool, in slot-list order
        total = new_codes.shape[0]
        self._pool = _grow(self._pool, self._pool_n + total)
        self._pool[self._pool_n:self._pool_n + total] = new_codes
        new_cnt = counts[changed]
        self._tag_off[ch_slots] = self._pool_n + np.cumsum(new_cnt) - new_cnt
        self._tag_cnt[ch_slots] = new_cnt
        self._pool_n += total
        self._pool_garbage += int(oc.sum())
        if self._pool_garbage > 1024 and self._pool_garbage * 2 > self._pool_n:
            self._compact_pool()

    def _tag_table(self, tags: Sequence[Sequence[str]]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Interned tags of many engrams: ``(codes, owner, counts)``, each engram's codes
        sorted and unique and contiguous (``owner`` = its row)."""
        known = self._tag_codes
        flat_list: list[int] = []
        lengths = []
        for row in tags:
            lengths.append(len(row))
            for tag in row:
                code = known.get(tag)
                flat_list.append(self._intern(str(tag)) if code is None else code)
        m = len(lengths)
        flat = np.array(flat_list, dtype=np.int64)
        owner = np.repeat(np.arange(m, dtype=np.int64), lengths)
        order = np.lexsort((flat, owner))
        flat, owner = flat[order], owner[order]
        if flat.shape[0] > 1:
            first = np.r_[True, (np.diff(flat) != 0) | (np.diff(owner) != 0)]
            flat, owner = flat[first], owner[first]
        counts = np.bincount(owner, minlength=m).astype(np.int64)
        return flat.astype(np.int32), owner, counts

    def remove_batch(self, ids: np.ndarray | Sequence[int]) -> None:
        """Tombstone many engrams at once: :meth:`remove` per id, with one pass per touched
        posting list and grid cell instead of one per engram.

        :raises KeyError: if an id is not live in the index; nothing is changed then.
        :raises ValueError: for duplicate ids; nothing is changed then.
        :raises TypeError: for non-integer ids.
        """
        ids_a = _id_array(ids)
        if ids_a.shape[0] == 0:
            return
        slots, map_pos = self._live_slots(ids_a)
        cnt = self._tag_cnt[slots].astype(np.int64)
        codes = self._pool[np.repeat(self._tag_off[slots], cnt) + _ramp(cnt)]
        for code, group in _group_by(codes, np.repeat(slots, cnt)):
            self._postings.discard_many(code, group)
        self._grid.discard_many(slots, self._pos[slots])
        self._pool_garbage += int(cnt.sum())
        self._tag_cnt[slots] = 0
        self._alive[slots] = False
        self._map_slots[map_pos] = -1
        self._n_live -= slots.shape[0]
        self._alive_bits = None

    def _live_slots(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots and id-map positions of unique live ``ids``.

        :raises ValueError: for duplicate ids. :raises KeyError: naming ids not live.
        """
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError('duplicate ids in the batch')
        map_pos = self._map_lookup(ids)
        live = self._live_at(map_pos)
        if not np.all(live):
            raise KeyError(f'engram id(s) not in the index: {ids[~live][:10].tolist()}; '
                           'nothing was changed')
        return self._map_slots[map_pos].astype(np.int64), map_pos

    def _live_at(self, map_pos: np.ndarray) -> np.ndarray:
        live = map_pos >= 0
        live[live] = self._map_slots[map_pos[live]] >= 0
        return live

    # ------------------------------------------------------------------ lookups

    def has_ids(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Which of ``ids`` are live in the index (``bool`` array; vectorised ``in``)."""
        ids_a = _id_array(ids)
        return self._live_at(self._map_lookup(ids_a))

    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, engram_id: object) -> bool:
        try:
            pos = self._map_find(int(engram_id))  # type: ignore[call-overload]
        except (TypeError, ValueError, OverflowError):
            return False
        return pos >= 0 and self._map_slots[pos] >= 0

    def slot_of(self, engram_id: int) -> int:
        """Slot of a live engram.

        :raises KeyError: if ``engram_id`` is not live in the index.
        """
        pos = self._map_find(int(engram_id))
        if pos < 0 or self._map_slots[pos] < 0:
            raise KeyError(engram_id)
        return int(self._map_slots[pos])

    @property
    def slot_count(self) -> int:
        """Slots in use, tombstones included (a rebuild drops the tombstones)."""
        return self._n

    @property
    def tombstones(self) -> int:
        """Removed engrams still holding a slot and a graph node."""
        return self._n - self._n_live

    def live_slots(self) -> np.ndarray:
        """All live slots, increasing."""
        return np.flatnonzero(self._alive[:self._n])

    def ids_of(self, slots: np.ndarray) -> np.ndarray:
        """Engram ids (``int64``) of ``slots``.

        The ``*_of`` accessors take any integer array of slots and return a new array.

        :raises IndexError: for a slot out of range (all ``*_of`` accessors).
        """
        return self._ids[self._check_slots(slots)]

    def positions_of(self, slots: np.ndarray) -> np.ndarray:
        """Positions, ``(n, 3)`` ``float32`` metres."""
        return self._pos[self._check_slots(slots)]

    def first_seen_of(self, slots: np.ndarray) -> np.ndarray:
        """First-seen stamps (``float64`` s since epoch)."""
        return self._first[self._check_slots(slots)]

    def last_seen_of(self, slots: np.ndarray) -> np.ndarray:
        """Last-seen stamps (``float64`` s since epoch)."""
        return self._last[self._check_slots(slots)]

    def scores_of(self, slots: np.ndarray) -> np.ndarray:
        """Usefulness scores (``float32``)."""
        return self._score[self._check_slots(slots)]

    def counts_of(self, slots: np.ndarray) -> np.ndarray:
        """Observation counts (``uint32``): how many observations each engram merged."""
        return self._count[self._check_slots(slots)]

    def kinds_of(self, slots: np.ndarray) -> np.ndarray:
        """Kind codes (``uint8``)."""
        return self._kind[self._check_slots(slots)]

    def tags_of(self, slot: int) -> tuple[str, ...]:
        """Tags of one slot, sorted."""
        s = int(slot)
        if not 0 <= s < self._n:           # one slot: no array round trip (a hot path)
            raise IndexError(f'slot out of range 0..{self._n - 1}')
        names = self._tag_names
        return tuple(sorted([names[c] for c in self._slot_tags(s).tolist()]))

    def vectors_of(self, slots: np.ndarray) -> np.ndarray:
        """Stored (bf16-decoded) unit vectors, ``(n, dim)`` ``float32``."""
        s = self._check_slots(slots)
        return _bf16_to_f32(self._codes_view()[s])

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
        s = self._check_slots(slots)
        if rows.shape[0] != s.shape[0]:
            raise ValueError(f'{rows.shape[0]} rows but {s.shape[0]} slots')
        if rows.shape[0] and (rows.min() < 0 or rows.max() >= q.shape[0]):
            raise IndexError(f'row out of range 0..{q.shape[0] - 1}')
        codes = self._codes_view()
        out = np.empty(s.shape[0], dtype=np.float32)
        chunk = min(_EXACT_CHUNK, s.shape[0])
        x = np.empty((chunk, self.dim), dtype=np.float32)
        y = np.empty((chunk, self.dim), dtype=np.uint32)
        for a in range(0, s.shape[0], _EXACT_CHUNK):
            n = min(_EXACT_CHUNK, s.shape[0] - a)
            np.take(q, rows[a:a + n], axis=0, out=x[:n])
            y[:n] = np.take(codes, s[a:a + n], axis=0)
            y[:n] <<= 16
            x[:n] *= y[:n].view(np.float32)
            out[a:a + n] = x[:n].sum(axis=1)
        return out

    def tag_match_count(self, slots: np.ndarray, tags: Sequence[str]) -> np.ndarray:
        """How many of ``tags`` each slot carries (``int32``; unknown tags match nothing)."""
        s = self._check_slots(slots)
        out = np.zeros(s.shape[0], dtype=np.int32)
        for tag in set(tags):
            code = self._tag_codes.get(tag)
            if code is not None:
                out += self._member(s, self._postings.get(code))
        return out

    def present_tags(self, namespaces: Sequence[str] = ()) -> list[str]:
        """Tags carried by at least one live engram, sorted; only ``namespaces`` when given."""
        out = []
        for code, tag in enumerate(self._tag_names):
            if namespaces and tag.partition(':')[0] not in namespaces:
                continue
            posting = self._postings.get(code)
            if posting.size and self._alive[posting].any():
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
        spatial = radius > 0.0
        if spatial:
            c = None if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
            if c is None or c.shape[0] != 3 or not np.all(np.isfinite(c)):
                raise ValueError('a positive radius needs a centre of three finite coordinates')
        if not (len(tags_all) or len(tags_any) or len(tags_none) or len(kinds) or spatial
                or t_start is not None or t_end is not None):
            return None
        n = self._n
        cand: np.ndarray | None = None
        if len(tags_all):
            lists = []
            for tag in set(tags_all):
                code = self._tag_codes.get(tag)
                if code is None:
                    return np.zeros(0, dtype=np.int64)
                lists.append(self._postings.get(code))
            lists.sort(key=len)
            cand = lists[0].astype(np.int64)
            for lst in lists[1:]:
                if cand.shape[0] == 0:
                    break
                cand = cand[self._member(cand, lst)]
        if len(tags_any):
            lists = [self._postings.get(self._tag_codes[t]) for t in set(tags_any)
                     if t in self._tag_codes]
            if cand is not None:
                keep = np.zeros(cand.shape[0], dtype=bool)
                for lst in lists:
                    keep |= self._member(cand, lst)
                cand = cand[keep]
            elif sum(len(lst) for lst in lists) * _MASK_RATIO > n:
                scratch = self._scratch
                for lst in lists:
                    scratch[lst] = True
                cand = np.flatnonzero(scratch[:n])
                scratch[:n] = False
            elif lists:
                cand = np.unique(np.concatenate(lists)).astype(np.int64)
            else:
                cand = np.zeros(0, dtype=np.int64)
        if spatial:
            near = self._grid.near(c, radius)
            if near is not None:
                cand = near.astype(np.int64) if cand is None else cand[self._member(cand, near)]
        none_lists = [self._postings.get(self._tag_codes[t]) for t in set(tags_none)
                      if t in self._tag_codes]
        if cand is None:
            # No positive tag: one boolean pass over every slot.
            mask = self._alive[:n].copy()
            if len(kinds):
                mask &= np.isin(self._kind[:n], np.asarray(kinds, dtype=np.int64))
            if t_start is not None:
                mask &= self._last[:n] >= t_start
            if t_end is not None:
                mask &= self._first[:n] <= t_end
            for lst in none_lists:
                mask[lst] = False
            cand = np.flatnonzero(mask)
            if spatial:
                d = self._pos[cand] - c
                cand = cand[np.einsum('ij,ij->i', d, d) <= radius * radius]
            return cand
        for lst in none_lists:
            if cand.shape[0] == 0:
                break
            cand = cand[~self._member(cand, lst)]
        if len(kinds) and cand.shape[0]:
            cand = cand[np.isin(self._kind[cand], np.asarray(kinds, dtype=np.int64))]
        if t_start is not None and cand.shape[0]:
            cand = cand[self._last[cand] >= t_start]
        if t_end is not None and cand.shape[0]:
            cand = cand[self._first[cand] <= t_end]
        if spatial and cand.shape[0]:
            d = self._pos[cand] - c
            cand = cand[np.einsum('ij,ij->i', d, d) <= radius * radius]
        return cand

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
        q = self._normalise(vector, 'query vector')
        if q.shape[0] != 1:
            raise ValueError('dense_topk takes one query vector')
        if candidates is None:
            if self._n_live == 0:
                return _empty()
            if self._use_exact(self._n_live):
                return self._exact(q[0], self.live_slots(), k)
            if self._n_live == self._n:
                return self._hnsw_search(q, k, None, max(self.ef_search, k))
            return self._hnsw_filtered(q, k, self.live_slots(), self._alive_bitmap())
        cand = self._check_slots(candidates)
        if self._use_exact(cand.shape[0]):
            cand = cand[self._alive[cand]]
            if cand.shape[0] == 0:
                return _empty()
            return self._exact(q[0], cand, k)
        return self._hnsw_filtered(q, k, cand, None)

    def _use_exact(self, m: int) -> bool:
        """Exact ranking for small or too selective candidate sets (see the module notes)."""
        if m <= self.exact_threshold:
            return True
        return m <= self.max_exact and m * self.max_ef < self._n * self.filtered_ef

    def _alive_bitmap(self) -> np.ndarray:
        if self._alive_bits is None:
            self._alive_bits = np.packbits(self._alive[:self._n], bitorder='little')
        return self._alive_bits

    def _hnsw_filtered(self, q: np.ndarray, k: int, cand: np.ndarray,
                       bits: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if bits is None:
            # the bitmap also drops removed slots, so large sets skip a per-slot alive gather
            scratch = self._scratch
            scratch[cand] = True
            scratch[:self._n] &= self._alive[:self._n]
            bits = np.packbits(scratch[:self._n], bitorder='little')
            scratch[:self._n] = False
        ef = self.filtered_ef * self._n / cand.shape[0]
        ef = int(min(max(ef, self.ef_search, k), max(self.max_ef, k)))
        sel = faiss.IDSelectorBitmap(bits.shape[0], faiss.swig_ptr(bits))
        slots, sims = self._hnsw_search(q, k, sel, ef)
        if slots.shape[0] < k:
            cand = cand[self._alive[cand]]
        if slots.shape[0] < min(k, cand.shape[0]):
            _LOG.debug('filtered HNSW found %d of %d; falling back to exact ranking',
                       slots.shape[0], k)
            return self._exact(q[0], cand, k)
        return slots, sims

    def _hnsw_search(self, q: np.ndarray, k: int, sel: faiss.IDSelector | None,
                     ef: int) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        if sel is not None:
            params.sel = sel
        sims, labels = self._hnsw.search(q, k, params=params)
        keep = labels[0] >= 0
        return labels[0][keep].astype(np.int64), sims[0][keep]

    def _exact(self, q: np.ndarray, cand: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products over ``cand`` by decoding their codes chunk by chunk."""
        codes = self._codes_view()
        sims = np.empty(cand.shape[0], dtype=np.float32)
        buf = np.empty((min(_EXACT_CHUNK, cand.shape[0]), self.dim), dtype=np.uint32)
        for a in range(0, cand.shape[0], _EXACT_CHUNK):
            idx = cand[a:a + _EXACT_CHUNK]
            rows = buf[:idx.shape[0]]
            rows[...] = np.take(codes, idx, axis=0)
            rows <<= 16
            sims[a:a + idx.shape[0]] = rows.view(np.float32) @ q
        if cand.shape[0] > k:
            top = np.argpartition(-sims, k - 1)[:k]
        else:
            top = np.arange(cand.shape[0])
        order = top[np.lexsort((cand[top], -sims[top]))]
        return cand[order], sims[order]

    # ------------------------------------------------------------------ persistence

    def memory_bytes(self) -> int:
        """Estimated bytes held: bf16 codes, HNSW graph, columns, id map, tags."""
        hnsw = self._hnsw.hnsw
        graph = (hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4)
        codes = faiss.downcast_index(self._hnsw.storage).codes.size()
        arrays = sum(a.nbytes for a in (
            self._ids, self._pos, self._first, self._last, self._score, self._count, self._kind,
            self._alive, self._scratch, self._map_ids, self._map_slots, self._tag_off,
            self._tag_cnt, self._pool))
        tags = self._postings.nbytes() + sum(len(t) + 80 for t in self._tag_names)
        return int(graph + codes + arrays + tags)

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` (created if needed); files are replaced atomically.

        :raises OSError: if the files cannot be written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n = self._n
        sizes = np.array(self._postings.sizes, dtype=np.int64)
        post_ptr = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        post_data = (np.concatenate([self._postings.get(c) for c in range(len(sizes))])
                     if len(sizes) else np.zeros(0, dtype=np.int32)).astype(np.int32)
        map_n = self._map_n
        columns = {
            'ids': self._ids[:n], 'pos': self._pos[:n], 'first': self._first[:n],
            'last': self._last[:n], 'score': self._score[:n], 'count': self._count[:n],
            'kind': self._kind[:n],
            'alive': self._alive[:n], 'tag_off': self._tag_off[:n],
            'tag_cnt': self._tag_cnt[:n], 'pool': self._pool[:self._pool_n],
            'map_ids': self._map_ids[:map_n], 'map_slots': self._map_slots[:map_n],
            'post_ptr': post_ptr, 'post_data': post_data,
        }
        tmp_faiss = directory / (_FAISS_FILE + '.tmp')
        tmp_cols = directory / (_COLUMNS_FILE + '.tmp')
        faiss.write_index(self._hnsw, str(tmp_faiss))
        with open(tmp_cols, 'wb') as f:
            np.savez(f, **columns)
        meta = {
            'format': FORMAT_VERSION, 'dim': self.dim, 'slots': n, 'live': self._n_live,
            'pool_garbage': self._pool_garbage, 'exact_threshold': self.exact_threshold,
            'hnsw_m': self.hnsw_m, 'ef_search': self.ef_search,
            'ef_construction': self.ef_construction, 'max_ef': self.max_ef,
            'max_exact': self.max_exact, 'filtered_ef': self.filtered_ef,
            'cell_size': self.cell_size, 'tags': self._tag_names,
            'sha256': {_FAISS_FILE: _digest(tmp_faiss), _COLUMNS_FILE: _digest(tmp_cols)},
        }
        tmp_meta = directory / (_META_FILE + '.tmp')
        tmp_meta.write_text(json.dumps(meta), encoding='utf-8')
        # meta goes last: a crash in between leaves hashes that do not match -> rebuild.
        os.replace(tmp_faiss, directory / _FAISS_FILE)
        os.replace(tmp_cols, directory / _COLUMNS_FILE)
        os.replace(tmp_meta, directory / _META_FILE)
        _LOG.info('saved engram index (%d live, %d slots) to %s', self._n_live, n, directory)

    @classmethod
    def load(cls, directory: Path) -> 'EngramIndex':
        """Read an index written by :meth:`save`.

        :raises IndexLoadError: if a file is missing, corrupt (checksum, parse) or the parts
            disagree; the caller should rebuild from the database.
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META_FILE).read_text(encoding='utf-8'))
        except (OSError, ValueError) as exc:
            raise IndexLoadError(f'cannot read {directory / _META_FILE}: {exc}') from exc
        try:
            if meta['format'] != FORMAT_VERSION:
                raise IndexLoadError(f'index format {meta["format"]} is not {FORMAT_VERSION} '
                                     '(format 1 lacks observation counts); rebuild it from the '
                                     'database')
            for name in _FILES:
                path = directory / name
                if not path.is_file():
                    raise IndexLoadError(f'missing index file {path}')
                if _digest(path) != meta['sha256'][name]:
                    raise IndexLoadError(f'checksum mismatch in {path}')
            index = cls(int(meta['dim']), exact_threshold=int(meta['exact_threshold']),
                        hnsw_m=int(meta['hnsw_m']), ef_search=int(meta['ef_search']),
                        ef_construction=int(meta['ef_construction']),
                        max_ef=int(meta['max_ef']), max_exact=int(meta['max_exact']),
                        filtered_ef=int(meta['filtered_ef']),
                        cell_size=float(meta.get('cell_size', 4.0)))
            index._load_parts(directory, meta)
        except IndexLoadError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as exc:
            raise IndexLoadError(f'cannot load index from {directory}: {exc}') from exc
        _LOG.info('loaded engram index (%d live) from %s', len(index), directory)
        return index

    def _load_parts(self, directory: Path, meta: dict) -> None:
        hnsw = faiss.read_index(str(directory / _FAISS_FILE))
        if not isinstance(hnsw, faiss.IndexHNSWSQ) or hnsw.d != self.dim or \
                hnsw.metric_type != faiss.METRIC_INNER_PRODUCT or \
                faiss.downcast_index(hnsw.storage).sq.qtype != faiss.ScalarQuantizer.QT_bf16:
            raise IndexLoadError('saved faiss index is not an inner-product bf16 IndexHNSWSQ of '
                                 f'dimension {self.dim}')
        n = int(meta['slots'])
        if hnsw.ntotal != n:
            raise IndexLoadError(f'faiss index holds {hnsw.ntotal} vectors; meta says {n}')
        with np.load(directory / _COLUMNS_FILE, allow_pickle=False) as z:
            cols = {key: z[key] for key in z.files}
        expected = {'ids': (n,), 'pos': (n, 3), 'first': (n,), 'last': (n,), 'score': (n,),
                    'count': (n,), 'kind': (n,), 'alive': (n,), 'tag_off': (n,), 'tag_cnt': (n,)}
        for key, shape in expected.items():
            if cols[key].shape != shape:
                raise IndexLoadError(f'column {key} has shape {cols[key].shape}, not {shape}')
        self._hnsw = hnsw
        self._hnsw.hnsw.efSearch = self.ef_search
        self._reserve(n)
        self._ids[:n] = cols['ids']
        self._pos[:n] = cols['pos']
        self._first[:n] = cols['first']
        self._last[:n] = cols['last']
        self._score[:n] = cols['score']
        self._count[:n] = cols['count']
        self._kind[:n] = cols['kind']
        self._alive[:n] = cols['alive']
        self._tag_off[:n] = cols['tag_off']
        self._tag_cnt[:n] = cols['tag_cnt']
        self._pool = cols['pool'].astype(np.int32)
        self._pool_n = self._pool.shape[0]
        self._pool_garbage = int(meta['pool_garbage'])
        self._map_ids = cols['map_ids'].astype(np.int64)
        self._map_slots = cols['map_slots'].astype(np.int32)
        self._map_n = self._map_ids.shape[0]
        self._n = n
        self._n_live = int(self._alive[:n].sum())
        if self._n_live != int(meta['live']):
            raise IndexLoadError(f'{self._n_live} live slots; meta says {meta["live"]}')
        names = [str(t) for t in meta['tags']]
        ptr = cols['post_ptr']
        data = cols['post_data']
        if ptr.shape[0] != len(names) + 1 or int(ptr[-1]) != data.shape[0]:
            raise IndexLoadError('posting lists do not match the tag dictionary')
        for name in names:
            self._intern(name)
        for code in range(len(names)):
            lst = data[ptr[code]:ptr[code + 1]]
            if lst.shape[0]:
                self._postings.append(code, lst.astype(np.int32))
        live = np.flatnonzero(self._alive[:n])
        self._grid.append(live, self._pos[live])


def _id_array(ids: np.ndarray | Sequence[int]) -> np.ndarray:
    """Engram ids as a flat ``int64`` array.

    :raises TypeError: for anything but integers (a float id would be truncated silently).
    """
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in 'iu':
        raise TypeError(f'engram ids must be integers, not {arr.dtype}')
    return arr.astype(np.int64).reshape(-1)


def _check_tag_lists(tags: Sequence[Sequence[str]], m: int) -> None:
    """Check one tag sequence per engram (before anything is interned)."""
    if isinstance(tags, str):
        raise TypeError('tags must be one sequence of strings per engram')
    if len(tags) != m:
        raise ValueError(f'{m} ids but {len(tags)} tag lists')
    for row in tags:
        if isinstance(row, str):
            raise TypeError('tags must be a sequence of strings per engram, not one string')
        if len(row) > np.iinfo(np.uint16).max and \
                len(set(map(str, row))) > np.iinfo(np.uint16).max:
            raise ValueError('at most 65535 tags per engram are supported')


def _ramp(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each ``c`` in ``counts``, concatenated."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def _group_by(keys: np.ndarray, values: np.ndarray):
    """``(key, sorted int32 values)`` for each distinct key."""
    if keys.shape[0] == 0:
        return
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order].astype(np.int32)
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for a, b in zip(np.r_[0, bounds].tolist(), np.r_[bounds, keys.shape[0]].tolist()):
        yield int(keys[a]), values[a:b]


def _bf16_to_f32(codes: np.ndarray) -> np.ndarray:
    """Decode bf16 codes (``uint16``) to ``float32``: they are the top half of the bits."""
    return (codes.astype(np.uint32) << 16).view(np.float32)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    return h.hexdigest()
