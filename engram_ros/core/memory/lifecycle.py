"""Opening and closing the memory: the index cache, loaded or rebuilt from storage.

The index is cached on disk at a clean close, stamped with a generation that storage also
records; on open a cache whose generation, dimension or size disagrees with storage is rebuilt
from the stored records. Once opened, the cache files are deleted and the stamp in storage is
cleared until the next clean close: a crash never leaves a stale cache that looks current, and
nothing removed while the memory runs (forgotten, evicted, merged away) stays in a cache file.
The cache is saved compacted (:meth:`engram_ros.core.index.EngramIndex.compact`): without
tombstoned vectors, removed ids, or tag names no live engram carries.

Beside the index the cache holds ``state.json`` (:data:`STATE_FILE`), stamped with the same
generation: the ids of the engrams with a fact of their own in the RAM state (short-term,
pinned, history or moved, anchored, keyframe places: a small part of a big memory) and the
labels stored, both read from storage at close (:meth:`~engram_ros.core.storage.Storage.
state_scan`). A clean open then reads just those engrams instead of decoding every record, so
opening costs the index files and a few rows, not one Python object per engram. Without a
usable ``state.json`` (an older cache) the state is built from every record, as before. A cache
that was present but not used (corrupt, truncated, another format, a stale stamp or size) is
logged and counted (:attr:`~engram_ros.core.memory.store.MemoryStore.index_cache_rejected`).

After a crash the index is rebuilt from one column scan of storage; inserting every engram
into the HNSW graph would then take most of the time (about 0.1 ms of CPU each: 100 s at 1M).
So the rebuilt index starts with its codes only, "graph pending"
(:attr:`~engram_ros.core.memory.store.MemoryStore.graph_pending`): the memory answers as soon as
the scan is done, every dense search exact (same answers, slower per query at scale), while a
background thread builds the graph and swaps it in (:data:`StoreConfig.graph_build` chooses
``'background'``, ``'inline'`` or ``'manual'``). A clean close while the graph is pending waits
up to :attr:`StoreConfig.close_graph_wait` (10 s) for the build and saves the full cache, so the
next open is a clean one with the graph; a build that needs longer (minutes at 1M) is abandoned
and no cache is saved, so the next open rebuilds from storage as after a crash.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING

from engram_ros.core.files import write_private
from engram_ros.core.index import EngramIndex
from engram_ros.core.index import IndexLoadError
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.memory.config import META_INDEX_GENERATION

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)
_REBUILD_BATCH = 10000
#: The state file of the cache (see the module doc); bump :data:`STATE_FORMAT` on a change.
STATE_FILE = 'state.json'
STATE_FORMAT = 1


def open_index(store: MemoryStore) -> EngramIndex:
    """The index of ``store.storage`` (cached or rebuilt); fills ``store.state`` on the way."""
    storage, state = store.storage, store.state
    index = _load_cached(store)
    store.index_from_cache = index is not None
    access: dict[int, float] = {}
    if index is None:
        index = EngramIndex(store.config.dim)
        _rebuild(store, index, access)
    else:
        saved = _saved_state(store)
        if saved is None:
            state.apply(storage.iter_all(), dirty=False, access=access)
        else:
            ids, labels = saved
            engrams = sorted(storage.get(ids), key=lambda e: e.id)
            state.apply(engrams, dirty=False, access=access)
            state.labels.update(labels)
    state.order_short(access)
    if storage.persistent:
        # Until a clean close saves the index again, the cache on disk is stale: gone with it,
        # so whatever leaves the memory from now on leaves no copy in a cache file.
        drop_cache(store)
    _LOG.info('memory open: %d engrams (%d short-term)', len(index), len(state.short))
    return index


def _load_cached(store: MemoryStore) -> EngramIndex | None:
    generation = store.storage.get_meta(META_INDEX_GENERATION)
    index_dir = store.storage.index_dir
    if index_dir is None or not index_dir.is_dir() or not any(index_dir.iterdir()):
        return None                                  # no cache at all: nothing to count
    if not generation or not (index_dir / 'GENERATION').exists():
        return _reject(store, 'no generation stamp (the store was not closed cleanly)')
    if (index_dir / 'GENERATION').read_text().strip() != generation:
        return _reject(store, 'its generation is not the store\'s (written before the last '
                              'change)')
    try:
        index = EngramIndex.load(index_dir)
    except IndexLoadError as exc:
        return _reject(store, str(exc))
    if index.dim != store.config.dim or len(index) != store.storage.count():
        return _reject(store, f'it holds {len(index)} {index.dim}-d engrams; storage holds '
                              f'{store.storage.count()} of dimension {store.config.dim}')
    return index


def _reject(store: MemoryStore, why: str) -> None:
    """Count and log a cache that is there but not used; the caller rebuilds."""
    store.index_cache_rejected += 1
    store.index_cache_problem = why
    _LOG.warning('cached index unusable (%s); rebuilding from storage', why)
    return None


def _saved_state(store: MemoryStore) -> tuple[list[int], list[str]] | None:
    """The ids and labels of a ``state.json`` stamped like the loaded cache, or ``None``."""
    index_dir = store.storage.index_dir
    try:
        saved = json.loads((index_dir / STATE_FILE).read_text(encoding='utf-8'))
        generation = (index_dir / 'GENERATION').read_text().strip()
        if saved['format'] != STATE_FORMAT or saved['generation'] != generation:
            raise ValueError(f'format {saved["format"]}, another generation')
        ids = [int(i) for i in saved['ids']]
        labels = [str(label) for label in saved['labels']]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _LOG.warning('index cache without a usable %s (%s); reading every record for the '
                     'RAM state', STATE_FILE, exc)
        return None
    return ids, labels


def _rebuild(store: MemoryStore, index: EngramIndex, access: dict[int, float]) -> None:
    """The index from the stored columns (one scan, no record decoded), and the RAM state
    from the few engrams that have one (:meth:`~engram_ros.core.storage.Storage.state_scan`),
    as a clean open reads them."""
    dim = store.config.dim
    storage = store.storage
    defer = store.config.graph_build != 'inline'
    for rows in storage.iter_index_rows(_REBUILD_BATCH):
        vectors = rows['vectors']
        if vectors.shape[1] != dim:
            bad = int(rows['ids'][0])
            raise ValueError(f'stored engram {bad} has a {vectors.shape[1]}-d vector; the '
                             f'memory is configured for {dim}')
        if defer and len(index) == 0 and not index.graph_pending:
            index.defer_graph()
        index.add_batch(rows['ids'], vectors, kinds=rows['kinds'], positions=rows['positions'],
                        first_seen=rows['first_seen'], last_seen=rows['last_seen'],
                        tags=rows['tags'], scores=rows['scores'], counts=rows['counts'])
    ids, labels = storage.state_scan()
    store.state.apply(sorted(storage.get(ids), key=lambda e: e.id), dirty=False, access=access)
    store.state.labels.update(labels)


def save(store: MemoryStore) -> None:
    """Write the index cache, compacted first when anything was removed (no removed engram's
    vector or tags reach the file); under the write lock, at close.

    The audit log saves its own head with every record (:mod:`engram_ros.core.audit`): a head
    written here, at close, would overwrite the evidence of a cut log.
    """
    storage = store.storage
    index_dir = storage.index_dir
    if index_dir is not None:
        generation = uuid.uuid4().hex
        with store._lock:
            if store.index.has_dead_entries():
                store.index.compact()
            store.index.save(index_dir)
        ids, labels = storage.state_scan()
        write_private(index_dir / STATE_FILE, json.dumps(
            {'format': STATE_FORMAT, 'generation': generation, 'ids': ids,
             'labels': sorted(labels)}))
        write_private(index_dir / 'GENERATION', generation)
        storage.set_meta(META_INDEX_GENERATION, generation)


def drop_cache(store: MemoryStore) -> None:
    """Delete the saved index cache and clear its stamp (a clean close saves it again)."""
    index_dir = store.storage.index_dir
    if index_dir is not None and index_dir.is_dir():
        for path in index_dir.iterdir():
            if path.is_file() and not path.is_symlink():
                path.unlink()
    if store.storage.persistent:
        store.storage.set_meta(META_INDEX_GENERATION, '')
