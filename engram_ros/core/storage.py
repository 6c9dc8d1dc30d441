"""Durable storage of engrams behind a small interface.

:class:`Storage` is the contract the memory needs from a backend; :class:`SQLiteStorage` keeps a
store on local disk and :class:`MemoryStorage` keeps it in RAM only (used when the user has not
consented to persistence). A distributed backend (Milvus, Postgres, ...) can implement the same
interface later without touching the rest of the memory.

A store directory looks like this::

    <dir>/STORE             marker: JSON {"format": "engram_ros store", "schema_version": 2, ...}
    <dir>/engrams.sqlite3   the database (WAL mode; -wal/-shm files appear beside it)
    <dir>/evidence/         evidence files (crops, frames, clips) written by perception
    <dir>/index/            a cached vector index; derived data, safe to delete

Opening never destroys anything: a directory that is not a store, a corrupt database or a schema
this code does not know is refused with :class:`StoreOpenError` and left exactly as it was. A
store of an older known schema is migrated in place, without losing a row: schema 1 -> 2 adds
the temporal-validity and anchoring columns of ``engrams`` (``ALTER TABLE ... ADD COLUMN``) and
the ``place_edges`` table of the place graph (``CREATE TABLE``), in one transaction, then
rewrites the marker.

Evidence references are strings: ``file://`` URIs, absolute paths, or paths relative to the
evidence directory. When engrams are deleted, files that lie inside the evidence directory and
are referenced by no remaining engram are deleted too; anything else (other schemes, files
outside the evidence directory, symlinks) is never touched.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import functools
import json
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Iterable
from typing import Iterator
from typing import Sequence
from urllib.parse import unquote
from urllib.parse import urlparse

import numpy as np

from engram_ros.core.engram import Engram

logger = logging.getLogger(__name__)

#: Version of the on-disk layout and SQL schema this code reads and writes.
SCHEMA_VERSION = 2
#: Older schema versions this code migrates in place when it opens them.
MIGRATABLE_VERSIONS = frozenset({1})
#: Value of ``format`` in the marker file.
STORE_FORMAT = 'engram_ros store'
MARKER_NAME = 'STORE'
DATABASE_NAME = 'engrams.sqlite3'
EVIDENCE_DIR_NAME = 'evidence'
INDEX_DIR_NAME = 'index'

#: Meta keys the storage maintains itself. ``schema_version`` and ``next_id`` are read-only
#: through :meth:`Storage.set_meta`; ``dim`` may be set to pin the vector dimension early.
META_SCHEMA_VERSION = 'schema_version'
META_NEXT_ID = 'next_id'
META_DIM = 'dim'
_READ_ONLY_META = frozenset({META_SCHEMA_VERSION, META_NEXT_ID})

#: The first id :meth:`Storage.next_id` hands out (0 is left free to mean "no engram").
FIRST_ID = 1
_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1
#: Ids per ``IN (...)`` clause; well under SQLite's bound-parameter limit.
_CHUNK = 500

_TABLES = ('meta', 'engrams', 'engram_tags', 'engram_evidence')
#: Tables added by schema 2.
_TABLES_V2 = ('place_edges',)

#: What schema 1 -> 2 adds (statements run in order in one transaction).
_MIGRATE_1_TO_2 = (
    'ALTER TABLE engrams ADD COLUMN valid_from REAL NOT NULL DEFAULT 0',
    'ALTER TABLE engrams ADD COLUMN valid_to REAL',           # NULL: a current belief
    'ALTER TABLE engrams ADD COLUMN successor_id INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE engrams ADD COLUMN anchor_id INTEGER NOT NULL DEFAULT 0',
    "ALTER TABLE engrams ADD COLUMN keyframe_id TEXT NOT NULL DEFAULT ''",
    'UPDATE engrams SET valid_from = first_seen',
    # Undirected traversal edges between place engrams, stored with a < b.
    'CREATE TABLE place_edges ('
    ' a INTEGER NOT NULL,'
    ' b INTEGER NOT NULL,'
    ' traversals INTEGER NOT NULL,'
    ' last_traversed REAL NOT NULL,'
    ' PRIMARY KEY (a, b)'
    ') WITHOUT ROWID',
    'CREATE INDEX place_edges_by_b ON place_edges(b)',
)

_SCHEMA_SQL = (
    'CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)',
    'CREATE TABLE engrams ('
    ' id INTEGER PRIMARY KEY,'
    ' kind TEXT NOT NULL,'
    ' frame_id TEXT NOT NULL,'
    ' label TEXT NOT NULL,'
    ' modality TEXT NOT NULL,'
    ' confidence REAL NOT NULL,'
    ' first_seen REAL NOT NULL,'
    ' last_seen REAL NOT NULL,'
    ' observation_count INTEGER NOT NULL,'
    ' score REAL NOT NULL,'
    ' tier TEXT NOT NULL,'
    ' pinned INTEGER NOT NULL,'
    ' last_access REAL NOT NULL,'
    ' recall_count INTEGER NOT NULL,'
    ' position BLOB NOT NULL,'      # float64 little-endian, 3 values
    ' orientation BLOB NOT NULL,'   # float64 little-endian, 4 values (x, y, z, w)
    ' covariance BLOB NOT NULL,'    # float64 little-endian, 36 values, row-major 6x6
    ' vector BLOB NOT NULL,'        # float32 little-endian, meta 'dim' values
    ' tags TEXT NOT NULL,'          # JSON list of strings, in the engram's order
    ' evidence TEXT NOT NULL'       # JSON list of strings, in the engram's order
    ')',
    'CREATE TABLE engram_tags ('
    ' engram_id INTEGER NOT NULL REFERENCES engrams(id) ON DELETE CASCADE,'
    ' tag TEXT NOT NULL,'
    ' PRIMARY KEY (engram_id, tag)'
    ') WITHOUT ROWID',
    'CREATE INDEX engram_tags_by_tag ON engram_tags(tag)',
    # ``file`` is the evidence file's path relative to the evidence directory, or NULL when the
    # reference is not a file inside it; it is what deletion uses to find orphaned files.
    'CREATE TABLE engram_evidence ('
    ' engram_id INTEGER NOT NULL REFERENCES engrams(id) ON DELETE CASCADE,'
    ' uri TEXT NOT NULL,'
    ' file TEXT,'
    ' PRIMARY KEY (engram_id, uri)'
    ') WITHOUT ROWID',
    'CREATE INDEX engram_evidence_by_file ON engram_evidence(file)',
    'CREATE INDEX engrams_by_kind ON engrams(kind)',
    'CREATE INDEX engrams_by_last_seen ON engrams(last_seen)',
) + _MIGRATE_1_TO_2

_COLUMNS = ('id', 'kind', 'frame_id', 'label', 'modality', 'confidence', 'first_seen',
            'last_seen', 'observation_count', 'score', 'tier', 'pinned', 'last_access',
            'recall_count', 'position', 'orientation', 'covariance', 'vector', 'tags',
            'evidence', 'valid_from', 'valid_to', 'successor_id', 'anchor_id', 'keyframe_id')
_SELECT = f'SELECT {", ".join(_COLUMNS)} FROM engrams'
_UPSERT = (f'INSERT INTO engrams ({", ".join(_COLUMNS)}) '
           f'VALUES ({", ".join("?" for _ in _COLUMNS)}) '
           'ON CONFLICT(id) DO UPDATE SET '
           + ', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:]))


@dataclass(frozen=True)
class PlaceEdge:
    """An undirected edge of the place graph: the robot went from one place to the other.

    ``a < b`` always (see :func:`edge_key`); ``last_traversed`` is seconds since the epoch.
    """

    a: int
    b: int
    traversals: int = 1
    last_traversed: float = 0.0


def edge_key(a: int, b: int) -> tuple[int, int]:
    """The stored (smaller, larger) pair of an edge between ``a`` and ``b``."""
    return (a, b) if a < b else (b, a)


def _check_edges(edges: Sequence[PlaceEdge]) -> list[tuple]:
    rows = []
    for e in edges:
        a, b = _check_id(e.a), _check_id(e.b)
        if a <= 0 or b <= 0 or a == b:
            raise ValueError(f'edge ({a}, {b}): ends must be two different positive ids')
        a, b = edge_key(a, b)
        rows.append((a, b, int(e.traversals), float(e.last_traversed)))
    return rows


class StoreOpenError(RuntimeError):
    """A store cannot be opened; the message says what and where, and that nothing changed."""


class StoreClosedError(RuntimeError):
    """The storage was used after :meth:`Storage.close`."""


class Storage(abc.ABC):
    """Where engrams live: the contract every backend implements.

    All methods are safe to call from several threads at once. Writes (:meth:`put`,
    :meth:`delete`, :meth:`next_id`, :meth:`set_meta`) are each atomic; a reader sees either
    all or none of a write. Engrams handed in and out are copies: mutating them never changes
    the store. After :meth:`close` every method except :meth:`close` raises
    :class:`StoreClosedError`.
    """

    @abc.abstractmethod
    def next_id(self) -> int:
        """Allocate a new unique int64 id.

        Ids increase monotonically and are never handed out twice, not even after the engram
        that had one was deleted or the store was reopened (the counter is persisted).

        :raises OverflowError: when int64 ids are exhausted.
        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def put(self, engrams: Sequence[Engram]) -> None:
        """Insert or replace engrams by id, atomically (all of them or none).

        Arrays are stored flat: position (3), orientation (4), covariance (36) as float64, the
        vector as float32. The vector dimension is fixed by the first put (or a ``dim`` meta
        entry) and checked on every later put. Ids above the id counter advance it, so
        :meth:`next_id` never returns an id that is in use. If an id appears twice in one
        batch, the last one wins.

        :raises ValueError: for a vector whose dimension differs from the store's, arrays of the
            wrong size, NaN scalars or ids outside int64; nothing is written then.
        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def get(self, ids: Sequence[int], *, shared: bool = False) -> list[Engram]:
        """Return the engrams with these ids, in the order given; unknown ids are skipped.

        All engrams returned come from one consistent snapshot. An id given twice is returned
        twice.

        :param shared: the caller only reads the engrams (a consolidation pass over thousands):
            a backend that holds engram objects may return its own instead of copies, which
            must then not be changed. Backends that decode rows ignore it.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def delete(self, ids: Sequence[int]) -> int:
        """Delete engrams by id (unknown ids are ignored) and return how many were deleted.

        Evidence files inside :attr:`evidence_dir` that no remaining engram references are
        deleted after the rows are gone; a file that cannot be deleted is logged, not raised.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """Yield every engram in increasing id order, reading ``batch_size`` at a time.

        Each batch is a consistent snapshot; writes between batches may or may not be seen.

        :raises ValueError: for ``batch_size < 1``.
        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def count(self) -> int:
        """Return the number of engrams stored.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Return the metadata value stored under ``key``, or ``default``.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata string (e.g. the embedding model name), atomically.

        :raises ValueError: for an empty key, a read-only key (``schema_version``,
            ``next_id``), or a ``dim`` that is not a positive integer or contradicts the
            stored engrams.
        :raises TypeError: when ``key`` or ``value`` is not a string.
        :raises StoreClosedError: after :meth:`close`.
        """

    @property
    @abc.abstractmethod
    def evidence_dir(self) -> Path | None:
        """Directory where evidence files are written; ``None`` for RAM storage."""

    @property
    @abc.abstractmethod
    def index_dir(self) -> Path | None:
        """Directory where a saved vector index may be cached; ``None`` for RAM storage."""

    @property
    @abc.abstractmethod
    def persistent(self) -> bool:
        """True when engrams survive the process."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every resource; calling it again does nothing."""

    # Place graph: undirected traversal edges between place engrams.

    @abc.abstractmethod
    def put_edges(self, edges: Sequence[PlaceEdge]) -> None:
        """Insert or replace place-graph edges (keyed by their ordered pair), atomically.

        :raises ValueError: for an edge whose ends are equal or not positive ids.
        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def delete_edges(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Delete edges by their (smaller id, larger id) pair; unknown pairs are ignored."""

    @abc.abstractmethod
    def edges(self) -> list[PlaceEdge]:
        """Every place-graph edge, ordered by pair. Deleting an engram deletes its edges."""

    # Governance helpers: concrete defaults that suit a backend without files.

    def purge(self) -> bool:
        """Make deleted data unrecoverable from the backend's files; True when complete.

        SQLite overwrites deleted content (``secure_delete``) and truncates its WAL here.
        """
        return True

    def vacuum(self) -> None:
        """Rewrite the backend's files without free space (no-op without files)."""

    def integrity_check(self) -> list[str]:
        """Problems the backend finds in its own files; ``[]`` when it is sound."""
        return []

    def evidence_users(self, uris: Sequence[str]) -> dict[str, list[int]]:
        """Which engrams reference each of ``uris`` (only the URIs some engram references).

        Two URIs that name the same file inside :attr:`evidence_dir` (a path and a ``file:``
        URI) count as the same reference.
        """
        wanted = set(uris)
        out: dict[str, list[int]] = {}
        for engram in self.iter_all():
            for uri in set(engram.evidence) & wanted:
                out.setdefault(uri, []).append(engram.id)
        return out

    def __enter__(self) -> 'Storage':
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Shared validation and (de)serialisation


def _check_id(engram_id: object) -> int:
    if isinstance(engram_id, (bool, np.bool_)) or not isinstance(engram_id, (int, np.integer)):
        raise ValueError(f'engram id {engram_id!r} is not an integer')
    value = int(engram_id)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f'engram id {value} does not fit in int64')
    return value


def _array_bytes(name: str, engram_id: int, value: np.ndarray, dtype: str,
                 size: int | None) -> tuple[bytes, int]:
    """Return ``value`` flattened as little-endian ``dtype`` bytes, and its number of values."""
    arr = np.asarray(value, dtype=dtype)
    if size is not None and arr.size != size:
        raise ValueError(f'engram {engram_id}: {name} has {arr.size} values; {size} required')
    return arr.tobytes(), arr.size


def _rows(engrams: Sequence[Engram], dim: int | None) -> tuple[list[tuple], int | None]:
    """Validate a put batch; return its rows for :data:`_UPSERT` and its vector dimension.

    Rows are deduplicated by id, the last engram winning. Arrays become flat little-endian
    bytes (float64, the vector float32); tags and evidence become JSON lists.

    :raises ValueError: naming the first problem found.
    """
    latest: dict[int, tuple] = {}
    for e in engrams:
        engram_id = _check_id(e.id)
        vector, n = _array_bytes('vector', engram_id, e.vector, '<f4', None)
        if n == 0:
            raise ValueError(f'engram {engram_id}: vector is empty')
        if dim is None:
            dim = n
        elif n != dim:
            raise ValueError(f'engram {engram_id}: vector has dimension {n}; '
                             f'this store holds dimension {dim}')
        confidence = float(e.confidence)
        first_seen = float(e.first_seen)
        last_seen = float(e.last_seen)
        score = float(e.score)
        last_access = float(e.last_access)
        valid_from = float(e.valid_from)
        valid_to = None if e.valid_to is None else float(e.valid_to)
        if math.isnan(confidence + first_seen + last_seen + score + last_access + valid_from
                      + (0.0 if valid_to is None else valid_to)):
            raise ValueError(f'engram {engram_id}: a time, confidence or score is NaN')
        latest[engram_id] = (
            engram_id, str(e.kind), str(e.frame_id), str(e.label), str(e.modality), confidence,
            first_seen, last_seen, int(e.observation_count), score, str(e.tier),
            int(bool(e.pinned)), last_access, int(e.recall_count),
            _array_bytes('position', engram_id, e.position, '<f8', 3)[0],
            _array_bytes('orientation', engram_id, e.orientation, '<f8', 4)[0],
            _array_bytes('covariance', engram_id, e.covariance, '<f8', 36)[0],
            vector, _json_list(e.tags), _json_list(e.evidence), valid_from, valid_to,
            int(e.successor_id), int(e.anchor_id), str(e.keyframe_id))
    return list(latest.values()), dim


def _json_list(values: Sequence[str]) -> str:
    if not values:
        return '[]'
    if type(values) is tuple and all(type(v) is str for v in values):
        return _json_tuple(values)      # only exact str: 1 == True == 1.0 as cache keys
    return json.dumps([str(v) for v in values])


# Tag lists repeat a lot (every engram of a label carries the same few tags): a consolidation
# pass re-encodes and re-decodes thousands of them. Cached, both directions are a dict lookup.
@functools.lru_cache(maxsize=4096)
def _json_tuple(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


@functools.lru_cache(maxsize=4096)
def _tag_tuple(text: str) -> tuple[str, ...]:
    """A stored JSON tag list as a tuple (immutable, so one tuple can serve every row)."""
    return tuple(json.loads(text))


def _from_row(row: Sequence) -> Engram:
    """Engram from a row of :data:`_SELECT` (or of :func:`_rows`)."""
    return Engram(
        id=int(row[0]), kind=row[1], frame_id=row[2], label=row[3], modality=row[4],
        confidence=row[5], first_seen=row[6], last_seen=row[7],
        observation_count=row[8], score=row[9], tier=row[10],
        pinned=bool(row[11]), last_access=row[12], recall_count=row[13],
        position=np.frombuffer(row[14], dtype='<f8').astype(np.float64),
        orientation=np.frombuffer(row[15], dtype='<f8').astype(np.float64),
        covariance=np.frombuffer(row[16], dtype='<f8').astype(np.float64),
        vector=np.frombuffer(row[17], dtype='<f4').astype(np.float32),
        tags=_tag_tuple(row[18]) if row[18] != '[]' else (),
        evidence=tuple(json.loads(row[19])) if row[19] != '[]' else (),
        valid_from=row[20], valid_to=row[21], successor_id=int(row[22]),
        anchor_id=int(row[23]), keyframe_id=row[24])


def _check_meta(key: str, value: str) -> None:
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError('meta keys and values must be strings')
    if not key:
        raise ValueError('meta key is empty')
    if key in _READ_ONLY_META:
        raise ValueError(f'meta key {key!r} is maintained by the storage and cannot be set')


def _check_dim_meta(value: str, current: str | None, has_engrams: bool) -> None:
    try:
        dim = int(value)
    except ValueError:
        raise ValueError(f'dim {value!r} is not an integer') from None
    if dim < 1 or str(dim) != value:
        raise ValueError(f'dim {value!r} must be a positive integer written in decimal')
    if has_engrams and current is not None and current != value:
        raise ValueError(f'dim {value} contradicts the stored engrams (dimension {current})')


def _chunks(values: Sequence[int], size: int = _CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# --------------------------------------------------------------------------------------------
# RAM storage


class MemoryStorage(Storage):
    """RAM-only storage: nothing is written to disk and everything is lost on close.

    Used when the user has not consented to persistence. One lock serialises all access.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._engrams: dict[int, Engram] = {}
        self._edges: dict[tuple[int, int], PlaceEdge] = {}
        self._meta: dict[str, str] = {META_SCHEMA_VERSION: str(SCHEMA_VERSION),
                                      META_NEXT_ID: str(FIRST_ID)}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError('the memory storage is closed')

    def next_id(self) -> int:
        """See :meth:`Storage.next_id`."""
        with self._lock:
            self._check_open()
            value = int(self._meta[META_NEXT_ID])
            if value >= _INT64_MAX:
                raise OverflowError('engram ids are exhausted')
            self._meta[META_NEXT_ID] = str(value + 1)
            return value

    def put(self, engrams: Sequence[Engram]) -> None:
        """See :meth:`Storage.put`."""
        with self._lock:
            self._check_open()
            dim = self._meta.get(META_DIM)
            rows, new_dim = _rows(engrams, None if dim is None else int(dim))
            if not rows:
                return
            # Decoding the rows gives exactly what SQLiteStorage would return.
            for row in rows:
                self._engrams[row[0]] = _from_row(row)
            self._meta[META_DIM] = str(new_dim)
            top = max(row[0] for row in rows) + 1
            if top > int(self._meta[META_NEXT_ID]):
                self._meta[META_NEXT_ID] = str(top)

    def get(self, ids: Sequence[int], *, shared: bool = False) -> list[Engram]:
        """See :meth:`Storage.get`."""
        with self._lock:
            self._check_open()
            found = (self._engrams.get(int(i)) for i in ids)
            if shared:
                return [e for e in found if e is not None]
            return [e.copy() for e in found if e is not None]

    def delete(self, ids: Sequence[int]) -> int:
        """See :meth:`Storage.delete` (there is no evidence directory to clean)."""
        with self._lock:
            self._check_open()
            gone = {int(i) for i in ids}
            self._edges = {k: e for k, e in self._edges.items()
                           if k[0] not in gone and k[1] not in gone}
            return sum(self._engrams.pop(i, None) is not None for i in gone)

    def put_edges(self, edges: Sequence[PlaceEdge]) -> None:
        """See :meth:`Storage.put_edges`."""
        rows = _check_edges(edges)
        with self._lock:
            self._check_open()
            for a, b, n, t in rows:
                self._edges[(a, b)] = PlaceEdge(a, b, n, t)

    def delete_edges(self, pairs: Sequence[tuple[int, int]]) -> None:
        """See :meth:`Storage.delete_edges`."""
        with self._lock:
            self._check_open()
            for a, b in pairs:
                self._edges.pop(edge_key(int(a), int(b)), None)

    def edges(self) -> list[PlaceEdge]:
        """See :meth:`Storage.edges`."""
        with self._lock:
            self._check_open()
            return [self._edges[k] for k in sorted(self._edges)]

    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """See :meth:`Storage.iter_all`."""
        if batch_size < 1:
            raise ValueError(f'batch_size={batch_size} must be >= 1')
        with self._lock:
            self._check_open()
            ids = sorted(self._engrams)
        for chunk in _chunks(ids, batch_size):
            yield from self.get(chunk)

    def count(self) -> int:
        """See :meth:`Storage.count`."""
        with self._lock:
            self._check_open()
            return len(self._engrams)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """See :meth:`Storage.get_meta`."""
        with self._lock:
            self._check_open()
            return self._meta.get(key, default)

    def set_meta(self, key: str, value: str) -> None:
        """See :meth:`Storage.set_meta`."""
        _check_meta(key, value)
        with self._lock:
            self._check_open()
            if key == META_DIM:
                _check_dim_meta(value, self._meta.get(META_DIM), bool(self._engrams))
            self._meta[key] = value

    @property
    def evidence_dir(self) -> Path | None:
        """Always ``None``: RAM storage keeps no files."""
        return None

    @property
    def index_dir(self) -> Path | None:
        """Always ``None``: RAM storage keeps no files."""
        return None

    @property
    def persistent(self) -> bool:
        """Always ``False``."""
        return False

    def close(self) -> None:
        """Drop everything held; idempotent."""
        with self._lock:
            self._closed = True
            self._engrams.clear()
            self._edges.clear()


# --------------------------------------------------------------------------------------------
# SQLite storage


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` write transaction: committed at the end, rolled back on any
    error (Ctrl-C included)."""
    conn.execute('BEGIN IMMEDIATE')
    try:
        yield conn
        conn.execute('COMMIT')
    except BaseException:
        if conn.in_transaction:
            conn.execute('ROLLBACK')
        raise


class SQLiteStorage(Storage):
    """A store directory on local disk, backed by one SQLite database in WAL mode.

    Threading: one writer connection, used under a lock, performs every write in a single
    ``BEGIN IMMEDIATE`` transaction. Reads take a connection from a pool of reader connections
    (a new one is opened when all are busy, so concurrent readers never wait on each other) and
    read inside one transaction, which in WAL mode is a consistent snapshot that proceeds while
    the writer commits. A pool rather than ``threading.local`` keeps the number of connections
    bounded by the peak concurrency even when threads come and go. :meth:`close` closes the
    writer and idle readers at once, and readers in use as soon as their current read ends.

    Several processes may open the same store (SQLite locking keeps writes atomic and ids
    unique), but the memory expects one writer process.
    """

    def __init__(self, directory: Path | str, *, create: bool = True) -> None:
        """Open the store in ``directory``, creating it if allowed.

        :param directory: the store directory.
        :param create: create the store when ``directory`` is missing or empty.
        :raises StoreOpenError: when the directory is not a store (non-empty without a marker),
            is missing and ``create`` is false, or holds a corrupt database or a schema version
            this code does not know. Nothing is changed in that case.
        """
        self._directory = Path(directory).absolute()
        self._db_path = self._directory / DATABASE_NAME
        self._evidence_dir = self._directory / EVIDENCE_DIR_NAME
        self._index_dir = self._directory / INDEX_DIR_NAME
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self._writer = self._open(create)
        except OSError as exc:
            raise self._refusal(f'the directory cannot be read ({exc})') from exc

    # -- opening ---------------------------------------------------------------------------

    def _refusal(self, what: str) -> StoreOpenError:
        return StoreOpenError(f'cannot open engram store {str(self._directory)!r}: {what}; '
                              'nothing was changed')

    def _open(self, create: bool) -> sqlite3.Connection:
        directory = self._directory
        marker = directory / MARKER_NAME
        if directory.exists() and not directory.is_dir():
            raise self._refusal('the path exists and is not a directory')
        if not directory.exists() or not any(directory.iterdir()):
            if not create:
                raise self._refusal('there is no store here (missing or empty directory) '
                                    'and create=False')
            return self._create()
        if not marker.is_file():
            raise self._refusal(f'not an engram store: the directory is not empty and has no '
                                f'{MARKER_NAME} marker file')
        self._check_marker(marker)
        if not self._db_path.exists():
            if not self._only_empty_skeleton():
                raise self._refusal(f'the database {str(self._db_path)!r} is missing; restore it '
                                    'from a backup or move the directory aside')
            logger.warning('store %s has a marker but no database (creation was interrupted); '
                           'initialising it', directory)
            initialised = False
        else:
            initialised = self._check_database()
        try:
            self._evidence_dir.mkdir(exist_ok=True)
            self._index_dir.mkdir(exist_ok=True)
            writer = self._connect()
            try:
                self._enable_wal(writer)
                if not initialised:
                    self._init_schema(writer)
                else:
                    self._migrate(writer)
                self._write_marker_version(marker)
            except BaseException:
                writer.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreOpenError(f'cannot open engram store {str(directory)!r}: {exc}') from exc
        logger.info('opened engram store %s (%d engrams)', directory,
                    writer.execute('SELECT COUNT(*) FROM engrams').fetchone()[0])
        return writer

    def _create(self) -> sqlite3.Connection:
        """Create a fresh store: marker first, so an interrupted creation is recognisable."""
        directory = self._directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            marker = {'format': STORE_FORMAT, 'schema_version': SCHEMA_VERSION,
                      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(),
                      'created_unix': time.time()}
            tmp = directory / (MARKER_NAME + '.tmp')
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(marker, f, indent=2)
                f.write('\n')
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, directory / MARKER_NAME)
            self._evidence_dir.mkdir(exist_ok=True)
            self._index_dir.mkdir(exist_ok=True)
            writer = self._connect()
            try:
                self._enable_wal(writer)
                self._init_schema(writer)
            except BaseException:
                writer.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreOpenError(f'cannot create engram store {str(directory)!r}: {exc}') from exc
        logger.info('created engram store %s', directory)
        return writer

    def _only_empty_skeleton(self) -> bool:
        """True when the directory holds nothing but the marker and empty subdirectories."""
        for entry in self._directory.iterdir():
            if entry.name == MARKER_NAME:
                continue
            if entry.name in (EVIDENCE_DIR_NAME, INDEX_DIR_NAME) and entry.is_dir() \
                    and not any(entry.iterdir()):
                continue
            return False
        return True

    def _check_marker(self, marker: Path) -> None:
        try:
            content = json.loads(marker.read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._refusal(f'the marker file {str(marker)!r} is unreadable ({exc})') from exc
        if not isinstance(content, dict) or content.get('format') != STORE_FORMAT:
            raise self._refusal(f'not an engram store: {str(marker)!r} does not declare format '
                                f'{STORE_FORMAT!r}')
        version = content.get('schema_version')
        if isinstance(version, bool) or not isinstance(version, int):
            raise self._refusal(f'the marker file {str(marker)!r} has no valid schema_version')
        self._check_version(version, str(marker))

    def _check_version(self, version: int, where: str) -> None:
        if version > SCHEMA_VERSION:
            raise self._refusal(f'{where!r} has schema version {version}, newer than the '
                                f'{SCHEMA_VERSION} this software supports; upgrade engram_ros')
        if version != SCHEMA_VERSION and version not in MIGRATABLE_VERSIONS:
            raise self._refusal(f'{where!r} has unknown schema version {version} (supported: '
                                f'{SCHEMA_VERSION})')

    def _check_database(self) -> bool:
        """Validate the database read-only; return False when it is empty (never initialised).

        :raises StoreOpenError: for a corrupt file or an unknown or newer schema.
        """
        where = str(self._db_path)
        # Without a WAL file the database file is complete: open it as immutable, which makes
        # SQLite create no -wal/-shm files either. With one (after a crash) read it as well.
        wal = self._db_path.with_name(self._db_path.name + '-wal')
        query = '?mode=ro' if wal.exists() else '?mode=ro&immutable=1'
        try:
            conn = sqlite3.connect(self._db_path.as_uri() + query, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._refusal(f'the database {where!r} cannot be opened ({exc})') from exc
        try:
            check = [row[0] for row in conn.execute('PRAGMA quick_check(5)')]
            if check != ['ok']:
                raise self._refusal(f'the database {where!r} is corrupt: {"; ".join(check)}')
            version = conn.execute('PRAGMA user_version').fetchone()[0]
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 and not tables:
                return False
            self._check_version(version, where)
            missing = [t for t in _TABLES + (_TABLES_V2 if version >= 2 else ())
                       if t not in tables]
            if missing:
                raise self._refusal(f'the database {where!r} lacks tables {", ".join(missing)}')
            row = conn.execute('SELECT value FROM meta WHERE key = ?',
                               (META_SCHEMA_VERSION,)).fetchone()
            if row is None or row[0] != str(version):
                raise self._refusal(f'the database {where!r} has schema version '
                                    f'{None if row is None else row[0]!r} in its meta table but '
                                    f'{version} in user_version')
            return True
        except sqlite3.DatabaseError as exc:
            raise self._refusal(f'the database {where!r} is corrupt or not an SQLite database '
                                f'({exc})') from exc
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are begun and ended explicitly. Connections move between
        # threads through the pool but are only ever used by one thread at a time.
        conn = sqlite3.connect(str(self._db_path), isolation_level=None,
                               check_same_thread=False, timeout=30.0)
        conn.execute('PRAGMA foreign_keys = ON')
        conn.execute('PRAGMA synchronous = NORMAL')
        # Deleted rows are overwritten with zeros, so a forget leaves nothing in free pages.
        conn.execute('PRAGMA secure_delete = ON')
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> None:
        mode = conn.execute('PRAGMA journal_mode = WAL').fetchone()[0]
        if str(mode).lower() != 'wal':
            logger.warning('SQLite refused WAL mode (journal_mode=%s); readers will wait for '
                           'writers', mode)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older known schema up to :data:`SCHEMA_VERSION` in one transaction.

        Only adds columns and tables: every engram, tag and evidence row is kept.
        """
        version = conn.execute('PRAGMA user_version').fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with _immediate(conn):
            if version == 1:
                for statement in _MIGRATE_1_TO_2:
                    conn.execute(statement)
            conn.execute('UPDATE meta SET value = ? WHERE key = ?',
                         (str(SCHEMA_VERSION), META_SCHEMA_VERSION))
            conn.execute(f'PRAGMA user_version = {SCHEMA_VERSION}')
        logger.warning('migrated engram store %s from schema %d to %d (%d engrams kept)',
                       self._directory, version, SCHEMA_VERSION,
                       conn.execute('SELECT COUNT(*) FROM engrams').fetchone()[0])

    def _write_marker_version(self, marker: Path) -> None:
        """Record the current schema version in the marker (after a migration committed)."""
        content = json.loads(marker.read_text(encoding='utf-8'))
        if content.get('schema_version') == SCHEMA_VERSION:
            return
        content['schema_version'] = SCHEMA_VERSION
        tmp = marker.with_name(MARKER_NAME + '.tmp')
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(content, f, indent=2)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, marker)

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        with _immediate(conn):
            for statement in _SCHEMA_SQL:
                conn.execute(statement)
            conn.executemany('INSERT INTO meta (key, value) VALUES (?, ?)', (
                (META_SCHEMA_VERSION, str(SCHEMA_VERSION)), (META_NEXT_ID, str(FIRST_ID))))
            conn.execute(f'PRAGMA user_version = {SCHEMA_VERSION}')

    # -- connections and transactions -------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection; rolled back on any error."""
        with self._write_lock:
            if self._closed:
                raise StoreClosedError(f'the store {str(self._directory)!r} is closed')
            with _immediate(self._writer) as conn:
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction (a consistent snapshot) on a pooled reader connection."""
        with self._pool_lock:
            if self._closed:
                raise StoreClosedError(f'the store {str(self._directory)!r} is closed')
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            conn.execute('BEGIN')
            try:
                yield conn
            finally:
                conn.execute('COMMIT')
        finally:
            with self._pool_lock:
                if not self._closed:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    # -- Storage API -------------------------------------------------------------------------

    def next_id(self) -> int:
        """See :meth:`Storage.next_id`."""
        with self._write() as conn:
            value = int(self._meta_value(conn, META_NEXT_ID))
            if value >= _INT64_MAX:
                raise OverflowError('engram ids are exhausted')
            conn.execute('UPDATE meta SET value = ? WHERE key = ?', (str(value + 1), META_NEXT_ID))
        return value

    def put(self, engrams: Sequence[Engram]) -> None:
        """See :meth:`Storage.put`."""
        with self._write() as conn:
            dim = self._meta_value(conn, META_DIM)
            rows, new_dim = _rows(engrams, None if dim is None else int(dim))
            if not rows:
                return
            self._delete_children(conn, [row[0] for row in rows])
            conn.executemany(_UPSERT, rows)
            tags = [(row[0], tag) for row in rows if row[18] != '[]'
                    for tag in json.loads(row[18])]
            conn.executemany('INSERT OR IGNORE INTO engram_tags (engram_id, tag) VALUES (?, ?)',
                             tags)
            evidence = [(row[0], uri, _evidence_key(uri, self._evidence_dir))
                        for row in rows if row[19] != '[]' for uri in json.loads(row[19])]
            conn.executemany(
                'INSERT OR IGNORE INTO engram_evidence (engram_id, uri, file) VALUES (?, ?, ?)',
                evidence)
            if dim is None:
                conn.execute('INSERT INTO meta (key, value) VALUES (?, ?)', (META_DIM,
                                                                             str(new_dim)))
            top = max(row[0] for row in rows) + 1
            if top > int(self._meta_value(conn, META_NEXT_ID)):
                conn.execute('UPDATE meta SET value = ? WHERE key = ?', (str(top), META_NEXT_ID))

    def get(self, ids: Sequence[int], *, shared: bool = False) -> list[Engram]:
        """See :meth:`Storage.get`."""
        wanted = [int(i) for i in ids]
        if not wanted:
            self._check_open()
            return []
        unique = list(dict.fromkeys(wanted))
        rows: dict[int, tuple] = {}
        with self._read() as conn:
            for chunk in _chunks(unique):
                marks = ', '.join('?' * len(chunk))
                for row in conn.execute(f'{_SELECT} WHERE id IN ({marks})', chunk):
                    rows[row[0]] = row
        return [_from_row(rows[i]) for i in wanted if i in rows]

    def delete(self, ids: Sequence[int]) -> int:
        """See :meth:`Storage.delete`."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            self._check_open()
            return 0
        orphans: list[str] = []
        with self._write() as conn:
            candidates: set[str] = set()
            for chunk in _chunks(unique):
                marks = ', '.join('?' * len(chunk))
                candidates.update(row[0] for row in conn.execute(
                    f'SELECT file FROM engram_evidence WHERE file IS NOT NULL '
                    f'AND engram_id IN ({marks})', chunk))
            self._delete_children(conn, unique)
            deleted = 0
            for chunk in _chunks(unique):
                marks = ', '.join('?' * len(chunk))
                deleted += conn.execute(f'DELETE FROM engrams WHERE id IN ({marks})',
                                        chunk).rowcount
                conn.execute(f'DELETE FROM place_edges WHERE a IN ({marks}) OR b IN ({marks})',
                             list(chunk) + list(chunk))
            orphans = [f for f in sorted(candidates) if conn.execute(
                'SELECT 1 FROM engram_evidence WHERE file = ? LIMIT 1', (f,)).fetchone() is None]
        # Files go only after the commit, so a failed transaction never loses evidence. A put
        # that references one of them again in between would have to reuse a deleted file.
        self._remove_evidence(orphans)
        return deleted

    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """See :meth:`Storage.iter_all`."""
        if batch_size < 1:
            raise ValueError(f'batch_size={batch_size} must be >= 1')
        start = _INT64_MIN
        while True:
            with self._read() as conn:
                rows = conn.execute(f'{_SELECT} WHERE id >= ? ORDER BY id LIMIT ?',
                                    (start, batch_size)).fetchall()
            for row in rows:
                yield _from_row(row)
            if len(rows) < batch_size or rows[-1][0] == _INT64_MAX:
                return
            start = rows[-1][0] + 1

    def put_edges(self, edges: Sequence[PlaceEdge]) -> None:
        """See :meth:`Storage.put_edges`."""
        rows = _check_edges(edges)
        if not rows:
            return
        with self._write() as conn:
            conn.executemany('INSERT INTO place_edges (a, b, traversals, last_traversed) '
                             'VALUES (?, ?, ?, ?) ON CONFLICT(a, b) DO UPDATE SET '
                             'traversals = excluded.traversals, '
                             'last_traversed = excluded.last_traversed', rows)

    def delete_edges(self, pairs: Sequence[tuple[int, int]]) -> None:
        """See :meth:`Storage.delete_edges`."""
        keys = [edge_key(int(a), int(b)) for a, b in pairs]
        if not keys:
            return
        with self._write() as conn:
            conn.executemany('DELETE FROM place_edges WHERE a = ? AND b = ?', keys)

    def edges(self) -> list[PlaceEdge]:
        """See :meth:`Storage.edges`."""
        with self._read() as conn:
            return [PlaceEdge(int(a), int(b), int(n), float(t)) for a, b, n, t in conn.execute(
                'SELECT a, b, traversals, last_traversed FROM place_edges ORDER BY a, b')]

    def count(self) -> int:
        """See :meth:`Storage.count`."""
        with self._read() as conn:
            return int(conn.execute('SELECT COUNT(*) FROM engrams').fetchone()[0])

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """See :meth:`Storage.get_meta`."""
        with self._read() as conn:
            value = self._meta_value(conn, key)
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        """See :meth:`Storage.set_meta`."""
        _check_meta(key, value)
        with self._write() as conn:
            if key == META_DIM:
                has_engrams = conn.execute('SELECT 1 FROM engrams LIMIT 1').fetchone() is not None
                _check_dim_meta(value, self._meta_value(conn, META_DIM), has_engrams)
            conn.execute('INSERT INTO meta (key, value) VALUES (?, ?) '
                         'ON CONFLICT(key) DO UPDATE SET value = excluded.value', (key, value))

    def purge(self) -> bool:
        """See :meth:`Storage.purge`: checkpoint the WAL into the database and truncate it.

        Retries briefly while a reader holds an old snapshot; returns False if one still does
        (the next purge or a clean close completes it).
        """
        for attempt in range(20):
            with self._write_lock:
                self._check_open()
                busy = self._writer.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0]
            if not busy:
                return True
            time.sleep(0.01 * (attempt + 1))
        logger.warning('WAL checkpoint of %s incomplete: a reader is busy', self._directory)
        return False

    def vacuum(self) -> None:
        """See :meth:`Storage.vacuum`."""
        with self._write_lock:
            self._check_open()
            self._writer.execute('VACUUM')

    def integrity_check(self) -> list[str]:
        """See :meth:`Storage.integrity_check` (SQLite ``quick_check``)."""
        with self._read() as conn:
            rows = [str(row[0]) for row in conn.execute('PRAGMA quick_check(20)')]
        return [] if rows == ['ok'] else rows

    def evidence_users(self, uris: Sequence[str]) -> dict[str, list[int]]:
        """See :meth:`Storage.evidence_users`."""
        keys: dict[str, list[str]] = {}
        for uri in uris:
            key = _evidence_key(uri, self._evidence_dir)
            if key is not None:
                keys.setdefault(key, []).append(uri)
        out: dict[str, list[int]] = {}
        files = list(keys)
        with self._read() as conn:
            for start in range(0, len(files), _CHUNK):
                chunk = files[start:start + _CHUNK]
                marks = ', '.join('?' * len(chunk))
                for key, engram_id in conn.execute(
                        f'SELECT file, engram_id FROM engram_evidence WHERE file IN ({marks})',
                        chunk):
                    for uri in keys[key]:
                        out.setdefault(uri, []).append(int(engram_id))
        return out

    @property
    def directory(self) -> Path:
        """The store directory (absolute)."""
        return self._directory

    @property
    def evidence_dir(self) -> Path | None:
        """``<dir>/evidence``: where perception writes crops, frames and clips."""
        return self._evidence_dir

    @property
    def index_dir(self) -> Path | None:
        """``<dir>/index``: where a saved vector index may be cached."""
        return self._index_dir

    @property
    def persistent(self) -> bool:
        """Always ``True``."""
        return True

    def close(self) -> None:
        """Close the writer and idle readers now, busy readers when their read ends."""
        with self._write_lock:
            with self._pool_lock:
                if self._closed:
                    return
                self._closed = True
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()
            self._writer.close()
        logger.info('closed engram store %s', self._directory)

    def __repr__(self) -> str:
        return f'SQLiteStorage({str(self._directory)!r})'

    # -- helpers -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f'the store {str(self._directory)!r} is closed')

    @staticmethod
    def _delete_children(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Delete the tag and evidence rows of ``ids`` (explicitly, whatever the FK setting)."""
        for chunk in _chunks(ids):
            marks = ', '.join('?' * len(chunk))
            conn.execute(f'DELETE FROM engram_tags WHERE engram_id IN ({marks})', chunk)
            conn.execute(f'DELETE FROM engram_evidence WHERE engram_id IN ({marks})', chunk)

    @staticmethod
    def _meta_value(conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return None if row is None else row[0]

    def _remove_evidence(self, files: Iterable[str]) -> None:
        """Delete orphaned evidence files; only regular files really inside the evidence dir."""
        root = self._evidence_dir.resolve()
        for relative in files:
            path = self._evidence_dir / relative
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                if not path.resolve().is_relative_to(root):
                    continue
                path.unlink()
            except OSError as exc:
                logger.warning('could not delete evidence file %s: %s', path, exc)


def _evidence_key(uri: str, evidence_dir: Path) -> str | None:
    """Return the path of ``uri`` relative to ``evidence_dir``, or None if it is not inside it.

    ``file:`` URIs and plain paths are understood; relative paths are relative to the evidence
    directory. The test is lexical: symlinks are checked when the file is deleted.
    """
    if uri.startswith('file:'):
        parsed = urlparse(uri)
        if parsed.netloc not in ('', 'localhost'):
            return None
        path_text = unquote(parsed.path)
    elif '://' in uri:
        return None
    else:
        path_text = uri
    if not path_text:
        return None
    path = Path(path_text)
    if not path.is_absolute():
        path = evidence_dir / path
    relative = os.path.relpath(os.path.normpath(path), os.path.normpath(evidence_dir))
    if relative == os.curdir or relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return Path(relative).as_posix()
