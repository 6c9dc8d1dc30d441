"""Saving and loading the index: a cache of the database, checked before it is trusted.

An index directory holds three files: ``hnsw.faiss`` (graph and bf16 codes), ``columns.npz``
(per-slot columns, id map, tag pool, posting lists) and ``meta.json`` (format version,
parameters, tag dictionary and the SHA-256 of the other two). Each is written to a temporary
name and renamed; ``meta.json`` goes last, so a crash in between leaves hashes that do not
match. Anything missing, corrupt or inconsistent raises :class:`IndexLoadError`, and the store
rebuilds the index from the database, which always holds everything the index does. The
directory is 0700 and every file 0600 (:mod:`engram_ros.core.files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from engram_ros.core.files import open_private
from engram_ros.core.files import private_dir
from engram_ros.core.files import write_private

if TYPE_CHECKING:     # the façade imports this module to save and load itself
    from engram_ros.core.index.engram_index import EngramIndex

_LOG = logging.getLogger(__name__)

#: On-disk format version; bump when the saved layout changes. 2 added the observation-count
#: column; an older saved index fails to load with :class:`IndexLoadError`, and the store then
#: rebuilds it from the database (which always kept the counts).
FORMAT_VERSION = 2

FAISS_FILE = 'hnsw.faiss'
COLUMNS_FILE = 'columns.npz'
META_FILE = 'meta.json'
_FILES = (FAISS_FILE, COLUMNS_FILE)


class IndexLoadError(RuntimeError):
    """A saved index is missing, corrupt or does not match; rebuild it from the database."""


def save_index(index: EngramIndex, directory: Path) -> None:
    """Write ``index`` to ``directory`` (see :meth:`EngramIndex.save`)."""
    directory = private_dir(directory)
    if index.graph_pending:
        # the cache holds the graph: build it now (the caller holds the index's lock)
        index.build_graph(contextlib.nullcontext())
    cols, tags, id_map, dense = index._cols, index._tags, index._id_map, index._dense
    n = cols.n
    sizes = np.array(tags.postings.sizes, dtype=np.int64)
    post_ptr = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    post_data = (np.concatenate([tags.postings.get(c) for c in range(len(sizes))])
                 if len(sizes) else np.zeros(0, dtype=np.int32)).astype(np.int32)
    map_n = id_map.n
    columns = {
        'ids': cols.ids[:n], 'pos': cols.pos[:n], 'first': cols.first[:n],
        'last': cols.last[:n], 'score': cols.score[:n], 'count': cols.count[:n],
        'kind': cols.kind[:n],
        'alive': cols.alive[:n], 'tag_off': tags.off[:n],
        'tag_cnt': tags.cnt[:n], 'pool': tags.pool[:tags.pool_n],
        'map_ids': id_map.ids[:map_n], 'map_slots': id_map.slots[:map_n],
        'post_ptr': post_ptr, 'post_data': post_data,
    }
    tmp_faiss = directory / (FAISS_FILE + '.tmp')
    tmp_cols = directory / (COLUMNS_FILE + '.tmp')
    # Every file 0600 (the cache holds every vector and tag name): faiss writes into a file
    # made private first.
    os.close(open_private(tmp_faiss))
    faiss.write_index(dense.hnsw, str(tmp_faiss))
    with os.fdopen(open_private(tmp_cols), 'wb') as f:
        np.savez(f, **columns)
    meta = {
        'format': FORMAT_VERSION, 'dim': index.dim, 'slots': n, 'live': cols.n_live,
        'pool_garbage': tags.garbage, 'exact_threshold': index.exact_threshold,
        'hnsw_m': index.hnsw_m, 'ef_search': index.ef_search,
        'ef_construction': index.ef_construction, 'max_ef': index.max_ef,
        'max_exact': index.max_exact, 'filtered_ef': index.filtered_ef,
        'cell_size': index.cell_size, 'tags': tags.names,
        'sha256': {FAISS_FILE: digest(tmp_faiss), COLUMNS_FILE: digest(tmp_cols)},
    }
    tmp_meta = directory / (META_FILE + '.tmp')
    write_private(tmp_meta, json.dumps(meta))
    # meta goes last: a crash in between leaves hashes that do not match -> rebuild.
    os.replace(tmp_faiss, directory / FAISS_FILE)
    os.replace(tmp_cols, directory / COLUMNS_FILE)
    os.replace(tmp_meta, directory / META_FILE)
    _LOG.info('saved engram index (%d live, %d slots) to %s', cols.n_live, n, directory)


def load_index(cls: type[EngramIndex], directory: Path) -> EngramIndex:
    """Read an index written by :func:`save_index` (see :meth:`EngramIndex.load`)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f'cannot read {directory / META_FILE}: {exc}') from exc
    try:
        if meta['format'] != FORMAT_VERSION:
            raise IndexLoadError(f'index format {meta["format"]} is not {FORMAT_VERSION} '
                                 '(format 1 lacks observation counts); rebuild it from the '
                                 'database')
        for name in _FILES:
            path = directory / name
            if not path.is_file():
                raise IndexLoadError(f'missing index file {path}')
            if digest(path) != meta['sha256'][name]:
                raise IndexLoadError(f'checksum mismatch in {path}')
        index = cls(int(meta['dim']), exact_threshold=int(meta['exact_threshold']),
                    hnsw_m=int(meta['hnsw_m']), ef_search=int(meta['ef_search']),
                    ef_construction=int(meta['ef_construction']),
                    max_ef=int(meta['max_ef']), max_exact=int(meta['max_exact']),
                    filtered_ef=int(meta['filtered_ef']),
                    cell_size=float(meta.get('cell_size', 4.0)))
        _load_parts(index, directory, meta)
    except IndexLoadError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as exc:
        raise IndexLoadError(f'cannot load index from {directory}: {exc}') from exc
    _LOG.info('loaded engram index (%d live) from %s', len(index), directory)
    return index


def _load_parts(index: EngramIndex, directory: Path, meta: dict) -> None:
    """Fill the freshly made ``index`` from the files in ``directory``."""
    dim = index.dim
    hnsw = faiss.read_index(str(directory / FAISS_FILE))
    if not isinstance(hnsw, faiss.IndexHNSWSQ) or hnsw.d != dim or \
            hnsw.metric_type != faiss.METRIC_INNER_PRODUCT or \
            faiss.downcast_index(hnsw.storage).sq.qtype != faiss.ScalarQuantizer.QT_bf16:
        raise IndexLoadError('saved faiss index is not an inner-product bf16 IndexHNSWSQ of '
                             f'dimension {dim}')
    n = int(meta['slots'])
    if hnsw.ntotal != n:
        raise IndexLoadError(f'faiss index holds {hnsw.ntotal} vectors; meta says {n}')
    with np.load(directory / COLUMNS_FILE, allow_pickle=False) as z:
        cols = {key: z[key] for key in z.files}
    expected = {'ids': (n,), 'pos': (n, 3), 'first': (n,), 'last': (n,), 'score': (n,),
                'count': (n,), 'kind': (n,), 'alive': (n,), 'tag_off': (n,), 'tag_cnt': (n,)}
    for key, shape in expected.items():
        if cols[key].shape != shape:
            raise IndexLoadError(f'column {key} has shape {cols[key].shape}, not {shape}')
    index._dense.hnsw = hnsw
    hnsw.hnsw.efSearch = index.ef_search
    index._reserve(n)
    c, tags, id_map = index._cols, index._tags, index._id_map
    c.ids[:n] = cols['ids']
    c.pos[:n] = cols['pos']
    c.first[:n] = cols['first']
    c.last[:n] = cols['last']
    c.score[:n] = cols['score']
    c.count[:n] = cols['count']
    c.kind[:n] = cols['kind']
    c.alive[:n] = cols['alive']
    tags.off[:n] = cols['tag_off']
    tags.cnt[:n] = cols['tag_cnt']
    tags.pool = cols['pool'].astype(np.int32)
    tags.pool_n = tags.pool.shape[0]
    tags.garbage = int(meta['pool_garbage'])
    id_map.ids = cols['map_ids'].astype(np.int64)
    id_map.slots = cols['map_slots'].astype(np.int32)
    id_map.n = id_map.ids.shape[0]
    c.n = n
    c.n_live = int(c.alive[:n].sum())
    if c.n_live != int(meta['live']):
        raise IndexLoadError(f'{c.n_live} live slots; meta says {meta["live"]}')
    names = [str(t) for t in meta['tags']]
    ptr = cols['post_ptr']
    data = cols['post_data']
    if ptr.shape[0] != len(names) + 1 or int(ptr[-1]) != data.shape[0]:
        raise IndexLoadError('posting lists do not match the tag dictionary')
    for name in names:
        tags.intern(name)
    for code in range(len(names)):
        lst = data[ptr[code]:ptr[code + 1]]
        if lst.shape[0]:
            tags.postings.append(code, lst.astype(np.int32))
    live = np.flatnonzero(c.alive[:n])
    index._grid.append(live, c.pos[live])


def digest(path: Path) -> str:
    """SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    return h.hexdigest()
