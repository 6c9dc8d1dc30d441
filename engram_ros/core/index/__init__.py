"""The in-RAM hot index of the memory: compact columns for filtering, faiss HNSW for ranking.

Recall is two-stage. Stage 1 (:meth:`EngramIndex.filter`) narrows the memory to the engrams
that satisfy a symbolic / kind / space / time filter; stage 2 (:meth:`EngramIndex.dense_topk`)
ranks those candidates by cosine similarity of their context vectors. Full engram records live
in SQLite; this index keeps only what the two stages need, as columns addressed by a *slot*
(the engram's insertion position), so it holds no Python object per engram.

Layout (about 750 B per engram at 256-d, measured in ``docs/benchmarks/index.md``), one module
per part:

* :mod:`.columns`: the per-slot arrays (id, position, first/last seen, score, observation
  count, kind, alive) and how they grow;
* :mod:`.ids`: the id -> slot map (a sorted id array searched with ``np.searchsorted``);
* :mod:`.tags`: interned tag codes, one sorted posting list per tag, each slot's codes;
* :mod:`.grid`: spatial buckets of live slots for radius filters;
* :mod:`.dense`: faiss HNSW over bf16 codes, the exact path, and when each is taken;
* :mod:`.persistence`: save / load, the format version and :class:`IndexLoadError`;
* :mod:`.compaction`: the index rebuilt from its live engrams (no removed engram survives);
* :mod:`.engram_index`: :class:`EngramIndex`, the façade every caller uses.

Thread safety: none. The store serialises writers and holds its lock around search + add;
readers must not run concurrently with a writer; the one exception is
:meth:`EngramIndex.build_graph` (a graph pending after a crash reopen), which takes the lock it
is given for its short steps and builds the bulk of the graph outside it. faiss uses OpenMP
threads inside ``add_batch`` (``faiss.omp_set_num_threads`` sets how many).
"""

from engram_ros.core.index.engram_index import EngramIndex
from engram_ros.core.index.persistence import FORMAT_VERSION
from engram_ros.core.index.persistence import IndexLoadError

__all__ = ['EngramIndex', 'FORMAT_VERSION', 'IndexLoadError']
