"""Dense search of the index: faiss HNSW over bf16 codes, and exact ranking of small sets.

Vectors live in a faiss ``IndexHNSWSQ`` with ``QT_bf16`` storage (2 B per dimension, no
training, so the index can start empty and grow one add at a time) and ``M = 16`` (about
140 B of graph links per engram). Vectors are L2-normalised, so inner product is cosine
similarity. bf16 rather than fp16: its error on a unit vector's dot product is ~1e-4 (far
below the gaps between neighbours), and decoding it is a 16-bit shift, which numpy does ~7x
faster than fp16 -> float32 here; that makes the exact path below affordable. Updating a
vector re-encodes the slot's code in place; the graph links stay, which is fine for the small
nudges a merge makes.

Retrieval strategy (thresholds measured on one core, see ``docs/benchmarks/index.md``):

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
HNSW search at efSearch 640 costs about 4 ms.

Graph pending: after a crash the index is rebuilt from storage, and inserting 1M engrams into
the graph takes minutes of CPU. The store then starts with the codes only
(:meth:`DenseVectors.defer_graph`: a flat ``IndexScalarQuantizer`` with the same bf16 codes):
every search takes the exact path (over the candidates, or over every live slot when
unfiltered: slower per query, the same answers as a built index's exact path), and
:meth:`DenseVectors.build_graph` builds the HNSW graph in batches outside the caller's lock
(faiss releases the GIL in ``add``), then, under the lock, adds the slots that came meanwhile,
copies every code (updates made meanwhile included) and swaps the graph in.

Removed engrams keep their graph node (it still routes searches); the alive bitmap keeps them
out of every answer. faiss uses OpenMP threads inside ``add`` (``faiss.omp_set_num_threads``
sets how many).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Callable

import faiss
import numpy as np

from engram_ros.core.index.columns import Columns

_LOG = logging.getLogger(__name__)

#: Rows decoded per chunk on the exact path (256-d uint32 -> 1 MiB: stays in L2 cache).
EXACT_CHUNK = 1024
#: Rows a pending graph build inserts per batch, outside the caller's lock.
BUILD_BATCH = 20000
#: At most this many rows left: the build inserts them and swaps the graph in under the lock.
SWAP_ROWS = 2000


class DenseVectors:
    """The HNSW graph and bf16 codes of every slot, with the search strategy above."""

    def __init__(self, dim: int, *, exact_threshold: int, hnsw_m: int, ef_search: int,
                 ef_construction: int, max_ef: int, max_exact: int, filtered_ef: int) -> None:
        self.dim = dim
        self.exact_threshold = exact_threshold
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.max_ef = max_ef
        self.max_exact = max_exact
        self.filtered_ef = filtered_ef
        self.hnsw = self.new_graph()
        #: The codes alone while the graph is pending (see the module notes), else ``None``.
        self.flat: faiss.IndexScalarQuantizer | None = None

    def new_graph(self) -> faiss.IndexHNSWSQ:
        """An empty HNSW index with this object's parameters."""
        hnsw = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_bf16, self.hnsw_m,
                                 faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.ef_construction
        hnsw.hnsw.efSearch = self.ef_search
        return hnsw

    @property
    def graph_pending(self) -> bool:
        """Whether the HNSW graph is not built yet (every search is exact meanwhile)."""
        return self.flat is not None

    def defer_graph(self) -> None:
        """Keep codes only, no graph, until :meth:`build_graph` (only while empty)."""
        if self.hnsw is None or self.hnsw.ntotal:
            raise ValueError('defer_graph: only an empty index can start without its graph')
        self.flat = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_bf16,
                                               faiss.METRIC_INNER_PRODUCT)
        self.hnsw = None

    def add(self, x: np.ndarray) -> None:
        """Append unit vectors ``x`` (to the graph, or to the codes while it is pending)."""
        (self.flat if self.flat is not None else self.hnsw).add(x)

    def build_graph(self, lock: AbstractContextManager,
                    current: Callable[[], bool] = lambda: True) -> bool:
        """Build the pending graph and swap it in; ``False`` if there was nothing to build or
        ``current()`` turned false (this object was replaced, e.g. compacted, or closed).

        ``lock`` guards this object (the store's index lock): it is held to read codes and for
        the swap, not while the bulk of the graph is built, so searches and adds go on.
        """
        graph = self.new_graph()
        done = 0
        while True:
            with lock:
                if self.flat is None or not current():
                    return False
                n = self.flat.ntotal
                stop = min(n, done + BUILD_BATCH)
                x = bf16_to_f32(self.codes_view()[done:stop])
                if n - done <= SWAP_ROWS:
                    if stop > done:
                        graph.add(x)
                    if n:
                        # updates since a row was read: the codes are the flat's, exactly
                        codes = faiss.downcast_index(graph.storage).codes
                        raw = faiss.rev_swig_ptr(codes.data(), codes.size())
                        raw[:] = faiss.rev_swig_ptr(self.flat.codes.data(), codes.size())
                    self.hnsw, self.flat = graph, None
                    return True
            graph.add(x)
            done = stop

    def storage(self) -> faiss.IndexScalarQuantizer:
        """Where the bf16 codes are: the graph's storage, or the flat codes while pending."""
        if self.flat is not None:
            return self.flat
        return faiss.downcast_index(self.hnsw.storage)

    def normalise(self, vectors: np.ndarray, what: str) -> np.ndarray:
        """Unit-length ``float32`` rows of ``vectors``.

        :raises ValueError: for the wrong dimension, NaN / inf or an all-zero vector.
        """
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

    def codes_view(self) -> np.ndarray:
        """The bf16 storage codes as an ``(n, dim)`` uint16 view (valid until the next add)."""
        storage = self.storage()
        n = storage.ntotal
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.uint16)
        raw = faiss.rev_swig_ptr(storage.codes.data(), n * storage.code_size)
        return raw.view(np.uint16).reshape(n, self.dim)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """bf16 codes (``(m, dim)`` uint16) of unit vectors ``x``."""
        return self.storage().sa_encode(x).view(np.uint16)

    def nbytes(self) -> int:
        """Bytes of the HNSW graph and the codes."""
        if self.flat is not None:
            return self.flat.codes.size()
        hnsw = self.hnsw.hnsw
        graph = (hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4)
        return graph + faiss.downcast_index(self.hnsw.storage).codes.size()

    def pair_similarities(self, q: np.ndarray, rows: np.ndarray,
                          s: np.ndarray) -> np.ndarray:
        """``q[rows[k]] . stored vector of s[k]`` for every k, decoding chunk by chunk."""
        codes = self.codes_view()
        out = np.empty(s.shape[0], dtype=np.float32)
        chunk = min(EXACT_CHUNK, s.shape[0])
        x = np.empty((chunk, self.dim), dtype=np.float32)
        y = np.empty((chunk, self.dim), dtype=np.uint32)
        for a in range(0, s.shape[0], EXACT_CHUNK):
            n = min(EXACT_CHUNK, s.shape[0] - a)
            np.take(q, rows[a:a + n], axis=0, out=x[:n])
            y[:n] = np.take(codes, s[a:a + n], axis=0)
            y[:n] <<= 16
            x[:n] *= y[:n].view(np.float32)
            out[a:a + n] = x[:n].sum(axis=1)
        return out

    # ------------------------------------------------------------------ top-k

    def topk(self, q: np.ndarray, k: int, cand: np.ndarray | None,
             cols: Columns) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` slots for the unit query ``q`` (``(1, dim)``) among checked ``cand``
        (``None``: every live slot); removed slots among them are ignored."""
        if cand is None:
            if cols.n_live == 0:
                return empty()
            if self.use_exact(cols.n_live, cols.n):
                return self.exact(q[0], cols.live_slots(), k)
            if cols.n_live == cols.n:
                return self.hnsw_search(q, k, None, max(self.ef_search, k))
            return self.hnsw_filtered(q, k, cols.live_slots(), cols.alive_bitmap(), cols)
        if self.use_exact(cand.shape[0], cols.n):
            cand = cand[cols.alive[cand]]
            if cand.shape[0] == 0:
                return empty()
            return self.exact(q[0], cand, k)
        return self.hnsw_filtered(q, k, cand, None, cols)

    def use_exact(self, m: int, n: int) -> bool:
        """Exact ranking for small or too selective candidate sets, or while the graph is
        pending (see the module notes)."""
        if m <= self.exact_threshold or self.flat is not None:
            return True
        return m <= self.max_exact and m * self.max_ef < n * self.filtered_ef

    def hnsw_filtered(self, q: np.ndarray, k: int, cand: np.ndarray, bits: np.ndarray | None,
                      cols: Columns) -> tuple[np.ndarray, np.ndarray]:
        n = cols.n
        if bits is None:
            # the bitmap also drops removed slots, so large sets skip a per-slot alive gather
            scratch = cols.scratch
            scratch[cand] = True
            scratch[:n] &= cols.alive[:n]
            bits = np.packbits(scratch[:n], bitorder='little')
            scratch[:n] = False
        ef = self.filtered_ef * n / cand.shape[0]
        ef = int(min(max(ef, self.ef_search, k), max(self.max_ef, k)))
        sel = faiss.IDSelectorBitmap(bits.shape[0], faiss.swig_ptr(bits))
        slots, sims = self.hnsw_search(q, k, sel, ef)
        if slots.shape[0] < k:
            cand = cand[cols.alive[cand]]
        if slots.shape[0] < min(k, cand.shape[0]):
            _LOG.debug('filtered HNSW found %d of %d; falling back to exact ranking',
                       slots.shape[0], k)
            return self.exact(q[0], cand, k)
        return slots, sims

    def hnsw_search(self, q: np.ndarray, k: int, sel: faiss.IDSelector | None,
                    ef: int) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        if sel is not None:
            params.sel = sel
        sims, labels = self.hnsw.search(q, k, params=params)
        keep = labels[0] >= 0
        return labels[0][keep].astype(np.int64), sims[0][keep]

    def exact(self, q: np.ndarray, cand: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products over ``cand`` by decoding their codes chunk by chunk."""
        codes = self.codes_view()
        sims = np.empty(cand.shape[0], dtype=np.float32)
        buf = np.empty((min(EXACT_CHUNK, cand.shape[0]), self.dim), dtype=np.uint32)
        for a in range(0, cand.shape[0], EXACT_CHUNK):
            idx = cand[a:a + EXACT_CHUNK]
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


def bf16_to_f32(codes: np.ndarray) -> np.ndarray:
    """Decode bf16 codes (``uint16``) to ``float32``: they are the top half of the bits."""
    return (codes.astype(np.uint32) << 16).view(np.float32)


def empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
