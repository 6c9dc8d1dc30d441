"""A crash reopen answers before the HNSW graph is built (``graph pending``), exactly, and the
graph built meanwhile is swapped in (:mod:`engram_ros.core.memory.lifecycle`).

Real parts only: SQLite files in a temporary directory, written by a child process that is
killed with ``kill -9`` (so no index cache is saved), the real faiss index, real threads. The
reference is a copy of the same crashed files opened with the graph built before the store
opens, searched exactly (``exact_threshold`` above the store's size).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from test_ingest_batch import DIM
from test_ingest_batch import look
from test_ingest_batch import make_obs
from test_ingest_batch import open_store

from engram_ros.core.index import EngramIndex
from engram_ros.core.memory import MemoryStore
from engram_ros.core.query import RecallQuery

N = 3000            # above the index's exact threshold (2048): a built graph is searched
NOW = 1.7e9 + 10**6

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path[:0] = [{test_dir!r}]
    from test_graph_pending import observations
    from test_ingest_batch import open_store
    store = open_store('sqlite', Path({directory!r}), short_term_capacity=10000)
    store.ingest_many(observations(0, {n}))
    print('committed', flush=True)
    sys.stdin.readline()        # the parent kills us here
""")


def observations(start: int, stop: int) -> list:
    """Distinct things far apart (no merges), every third one tagged ``room:lab``."""
    return [make_obs(i, thing=f't{i}', x=3.0 * (i % 60), y=3.0 * (i // 60))
            for i in range(start, stop)]


@pytest.fixture(scope='module')
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SQLite files of ``N`` engrams whose writer was killed (no index cache saved)."""
    directory = tmp_path_factory.mktemp('crash') / 's'
    code = CHILD.format(test_dir=str(Path(__file__).parent), directory=str(directory), n=N)
    child = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'committed'
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return directory


def copy_of(crashed: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(crashed, tmp_path / name))


def queries() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return ([look(f't{i}', 10**6 + i) for i in (0, 17, 1234, 2999)]
            + [rng.normal(size=DIM).astype(np.float32) for _ in range(4)])


def dense_answers(store: MemoryStore) -> list[tuple[list, list]]:
    """Unfiltered and ``room:lab`` top-10 of every query: ids and similarities."""
    out = []
    with store._lock:
        index = store.index
        lab = index.filter(tags_all=('room:lab',))
        for q in queries():
            for cand in (None, lab):
                slots, sims = index.dense_topk(q, 10, cand)
                out.append((index.ids_of(slots).tolist(), sims.tolist()))
    return out


def recall_answers(store: MemoryStore) -> list[list[tuple[int, float]]]:
    out = []
    for q in queries():
        for tags in ((), ('room:lab',)):
            result = store.recall(RecallQuery(vector=q, tags_all=tags, k=10), now=NOW)
            out.append([(h.engram.id, round(h.score, 6)) for h in result.hits])
    return out


def exact_reference(crashed: Path, tmp_path: Path) -> MemoryStore:
    ref = open_store('sqlite', copy_of(crashed, tmp_path, 'ref'), graph_build='inline')
    assert not ref.graph_pending
    ref.index.exact_threshold = 10**9
    return ref


def test_a_crash_reopen_answers_exactly_before_the_graph_and_normally_after(
        crashed: Path, tmp_path: Path) -> None:
    ref = exact_reference(crashed, tmp_path)
    store = open_store('sqlite', copy_of(crashed, tmp_path, 'pending'), graph_build='manual')
    try:
        assert not store.index_from_cache
        assert len(store) == N == len(ref)
        assert store.graph_pending
        assert dense_answers(store) == dense_answers(ref)
        assert recall_answers(store) == recall_answers(ref)

        assert store.build_graph()
        assert not store.graph_pending
        assert not store.build_graph()                    # nothing pending any more
        dense = store.index._dense
        assert dense.hnsw.ntotal == store.index.slot_count == N
        assert not dense.use_exact(N, N)                  # unfiltered: the graph answers
        # the codes are those of the reference, bit for bit: forced exact, the same answers
        assert np.array_equal(dense.codes_view(), ref.index._dense.codes_view())
        for i in (0, 17, 1234, 2999):                     # a stored thing's look: found first
            slots, _ = store.index.dense_topk(look(f't{i}', 10**6 + i), 10, None)
            assert store.index.ids_of(slots)[0] == i + 1  # ids count from 1
        store.index.exact_threshold = 10**9
        assert dense_answers(store) == dense_answers(ref)
    finally:
        store.close()
        ref.close()


def test_writes_while_the_graph_is_pending_reach_the_graph(crashed: Path,
                                                           tmp_path: Path) -> None:
    store = open_store('sqlite', copy_of(crashed, tmp_path, 'pending'), graph_build='manual',
                       short_term_capacity=10000)
    try:
        assert store.graph_pending
        store.ingest_many(observations(N, N + 500))
        store.forget([1, 2, 3], requester='test')
        assert store.graph_pending
        new, gone = look(f't{N + 10}', 10**6), look('t1', 10**6)

        def top() -> list[int]:
            with store._lock:
                return [store.index.ids_of(store.index.dense_topk(q, 1, None)[0]).tolist()
                        for q in (new, gone)]

        assert top()[0] == [N + 11]             # ids count from 1
        assert top()[1] != [2]                  # t1 (id 2) is forgotten
        assert store.build_graph()
        dense = store.index._dense
        assert dense.hnsw.ntotal == store.index.slot_count
        assert top()[0] == [N + 11]
        assert top()[1] != [2]
    finally:
        store.close()


def test_the_background_build_swaps_in_while_ingest_goes_on(crashed: Path,
                                                            tmp_path: Path) -> None:
    directory = copy_of(crashed, tmp_path, 'background')
    store = open_store('sqlite', directory, short_term_capacity=10000)
    try:
        assert not store.index_from_cache
        for a in range(N, N + 1000, 50):        # while the thread builds (unless it is done)
            store.ingest_many(observations(a, a + 50))
        assert store.wait_graph()
        assert not store.graph_pending
        assert store.index._dense.hnsw.ntotal == store.index.slot_count == N + 1000
    finally:
        store.close()
    again = open_store('sqlite', directory)
    try:
        assert again.index_from_cache and not again.graph_pending
        assert len(again) == N + 1000
    finally:
        again.close()


def test_a_clean_close_while_pending_saves_a_complete_cache(crashed: Path,
                                                            tmp_path: Path) -> None:
    ref = exact_reference(crashed, tmp_path)
    directory = copy_of(crashed, tmp_path, 'closed')
    store = open_store('sqlite', directory, graph_build='manual', close_graph_wait=None)
    assert store.graph_pending
    store.close()
    assert not store.graph_abandoned_at_close
    again = open_store('sqlite', directory, graph_build='manual')
    try:
        assert again.index_from_cache and not again.graph_pending
        assert again.index._dense.hnsw.ntotal == N
        again.index.exact_threshold = 10**9
        assert dense_answers(again) == dense_answers(ref)
    finally:
        again.close()
        ref.close()


def test_a_close_that_cannot_wait_for_the_graph_saves_no_cache(crashed: Path,
                                                               tmp_path: Path) -> None:
    """Past ``close_graph_wait`` the close gives up on the graph instead of taking minutes:
    no cache is saved (none that would lack the graph, none stale), and the next open
    rebuilds from storage as after a crash, with the same answers."""
    ref = exact_reference(crashed, tmp_path)
    directory = copy_of(crashed, tmp_path, 'abandoned')
    store = open_store('sqlite', directory, graph_build='manual', close_graph_wait=0.0)
    assert store.graph_pending
    store.ingest_many(observations(N, N + 5))
    store.close()
    assert store.graph_abandoned_at_close
    assert not [p for p in (directory / 'index').iterdir() if p.is_file()]
    again = open_store('sqlite', directory, graph_build='manual')
    try:
        assert not again.index_from_cache and again.index_cache_rejected == 0
        assert again.graph_pending and len(again) == N + 5
        again.index.exact_threshold = 10**9
        ref.ingest_many(observations(N, N + 5))
        assert dense_answers(again) == dense_answers(ref)
    finally:
        again.close()
        ref.close()


def pending_index(m: int) -> EngramIndex:
    """An index of ``m`` engrams whose graph is pending (codes only)."""
    index = EngramIndex(DIM)
    index.defer_graph()
    index.add_batch(np.arange(1, m + 1), np.stack([look(f't{i}', i) for i in range(m)]),
                    kinds=np.zeros(m, dtype=np.uint8), positions=np.zeros((m, 3)),
                    first_seen=np.zeros(m), last_seen=np.zeros(m), tags=[()] * m)
    return index


def test_an_abandoned_build_stops_and_leaves_the_graph_pending() -> None:
    index = pending_index(50)
    assert not index.build_graph(threading.Lock(), abandoned=lambda: True)
    assert index.graph_pending
    assert index.build_graph(threading.Lock()) and not index.graph_pending


def test_a_compaction_while_pending_ends_the_build() -> None:
    m = 100
    index = pending_index(m)
    index.remove_batch([1, 2])
    index.compact()
    assert not index.graph_pending and len(index) == m - 2
    assert not index.build_graph(threading.Lock())


def test_only_known_graph_build_modes_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='graph_build'):
        open_store('sqlite', tmp_path / 's', graph_build='later')
