"""The storage contract, its errors, and the helpers every backend shares.

:class:`Storage` is the contract the memory needs from a backend; :class:`~.sqlite.SQLiteStorage`
keeps a store on local disk and :class:`~.memory.MemoryStorage` keeps it in RAM only (used when
the user has not consented to persistence). A distributed backend (Milvus, Postgres, ...) can
implement the same interface later without touching the rest of the memory.

Both backends validate a put the same way, by encoding it into the rows of the ``engrams``
table (:func:`encode_rows`, field by field through :mod:`engram_ros.core.model.codec`); RAM
storage then decodes those rows, so it hands back exactly what SQLite would.
"""

from __future__ import annotations

import abc
import contextlib
import math
import operator
from pathlib import Path
from types import TracebackType
from typing import Iterator
from typing import Sequence

import numpy as np

from engram_ros.core.forgetting import RetentionRows
from engram_ros.core.model.codec import FloatType
from engram_ros.core.model.codec import TYPES
from engram_ros.core.model.edges import edge_key
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.storage.schema import COLUMNS
from engram_ros.core.storage.schema import READ_ONLY_META

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1
#: Ids per ``IN (...)`` clause; well under SQLite's bound-parameter limit.
CHUNK = 500


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
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """One transaction around many writes (a group commit): inside the ``with`` block the
        writes of this thread (:meth:`put`, :meth:`delete`, :meth:`next_id`, edges, meta) are
        not committed one by one but all together when the block ends, and rolled back all
        together when it raises: another thread or a reopen after a crash sees all of them or
        none. Reads of this thread inside the block see its own uncommitted writes; evidence
        files orphaned by a delete go only after the commit. A nested ``transaction()`` is
        part of the outer one. Other writers wait until the block ends.

        A write inside the block that raises (and is caught by the caller) still rolls the
        whole transaction back when the block ends: the block then raises that error.

        :raises StoreClosedError: after :meth:`close`.
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
    def put(self, engrams: Sequence[Engram], *, dirty: bool = True) -> None:
        """Insert or replace engrams by id, atomically (all of them or none).

        With ``dirty`` their ids join the set of engrams changed since the last consolidation
        (:meth:`dirty_ids`) and are stamped with the next change number (:meth:`changes_since`),
        in the same transaction: a restart keeps both, so recent duplicates are still merged by
        the next pass and a fleet sync still uploads them. Bookkeeping writes (recall
        statistics) pass False.

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
    def dirty_ids(self) -> list[int]:
        """Ids put with ``dirty`` since the last :meth:`clear_dirty` and not deleted, sorted.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, int]]:
        """``(id, change number)`` of the engrams put (with ``dirty``) or deleted after change
        number ``seq``, oldest change first, at most ``limit``; a deleted id is still listed
        (its engram is gone) until :meth:`prune_changes` passes it.

        Every put with ``dirty`` and every delete stamps its ids with one new number, larger
        than any before, in the write's own transaction; so a reader that keeps the last
        number it handled (e.g. in :meth:`set_meta`) and asks for what follows sees every
        change once, across restarts and crashes.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def prune_changes(self, through: int) -> int:
        """Forget the change rows of deleted engrams numbered at most ``through`` (a sync has
        passed them); return how many were removed.

        :raises StoreClosedError: after :meth:`close`.
        """

    @abc.abstractmethod
    def clear_dirty(self) -> None:
        """Empty the set of changed engrams (a consolidation pass has seen them), atomically.

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

    # Scans for opening and forgetting: concrete defaults over :meth:`iter_all`; a backend
    # that can read a few columns without decoding whole records overrides them.

    def state_scan(self) -> tuple[list[int], set[str]]:
        """What the memory keeps in RAM besides the index, without decoding every record.

        :returns: the ids (increasing) of the engrams with a fact of their own in
            :class:`~engram_ros.core.memory.state.MemoryState` (short-term, pinned, not
            current since first seen, anchored, or a SLAM keyframe's place), and every
            non-empty label stored.
        :raises StoreClosedError: after :meth:`close`.
        """
        ids, labels = [], set()
        for e in self.iter_all():
            if e.tier == TIER_SHORT or e.pinned or e.valid_to is not None or \
                    e.valid_from > e.first_seen or e.anchor_id or e.keyframe_id:
                ids.append(e.id)
            if e.label:
                labels.add(e.label)
        return ids, labels

    def iter_retention(self, batch_size: int = 65536) -> Iterator[RetentionRows]:
        """Yield the columns the storage budget weighs (:class:`~engram_ros.core.forgetting.
        RetentionRows`) of every engram, in increasing id order, ``batch_size`` rows at a time.

        :raises ValueError: for ``batch_size < 1``.
        :raises StoreClosedError: after :meth:`close`.
        """
        yield from map(RetentionRows.of, self._record_batches(batch_size))

    def iter_index_rows(self, batch_size: int = 10000) -> Iterator[dict]:
        """Yield what the index holds of every engram, in increasing id order, ``batch_size``
        at a time, as columns: ``ids`` (int64), ``kinds`` (kind codes), ``positions``
        (``(n, 3)`` float64), ``vectors`` (``(n, dim)`` float32), ``first_seen``,
        ``last_seen``, ``scores`` (float64), ``counts`` (int64) and ``tags`` (a tuple per row).

        :raises ValueError: for ``batch_size < 1``.
        :raises StoreClosedError: after :meth:`close`.
        """
        yield from map(index_rows, self._record_batches(batch_size))

    def _record_batches(self, batch_size: int) -> Iterator[list[Engram]]:
        """Every record, in increasing id order, in lists of ``batch_size`` (the defaults'
        way; a backend with columns reads only those)."""
        batch: list[Engram] = []
        for engram in self.iter_all(batch_size):
            batch.append(engram)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def ids_with_tags(self, tags: Sequence[str]) -> set[int]:
        """Ids of the engrams carrying at least one of ``tags``.

        :raises StoreClosedError: after :meth:`close`.
        """
        wanted = set(tags)
        if not wanted:
            self.count()                     # raises after close, like every method
            return set()
        return {e.id for e in self.iter_all() if wanted.intersection(e.tags)}

    # Governance helpers: concrete defaults that suit a backend without files.

    def purge(self) -> bool:
        """Make deleted data unrecoverable from the backend's files; True when complete.

        SQLite overwrites deleted content (``secure_delete``) and truncates its WAL here.
        """
        return True

    def vacuum(self) -> None:  # noqa: B027 - a default no-op, overridden with files
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
# Shared validation and the row codec


def index_rows(engrams: Sequence[Engram]) -> dict:
    """The columns of :meth:`Storage.iter_index_rows` of engram records."""
    return {'ids': np.array([e.id for e in engrams], dtype=np.int64),
            'kinds': np.array([kind_code(e.kind) for e in engrams], dtype=np.int64),
            'positions': np.array([e.position for e in engrams], dtype=np.float64).reshape(-1, 3),
            'vectors': np.array([e.vector for e in engrams], dtype=np.float32),
            'first_seen': np.array([e.first_seen for e in engrams], dtype=np.float64),
            'last_seen': np.array([e.last_seen for e in engrams], dtype=np.float64),
            'scores': np.array([e.score for e in engrams], dtype=np.float64),
            'counts': np.array([e.observation_count for e in engrams], dtype=np.int64),
            'tags': [tuple(e.tags) for e in engrams]}


def check_id(engram_id: object) -> int:
    """``engram_id`` as an int64.

    :raises ValueError: for a non-integer (bools included) or one outside int64.
    """
    if isinstance(engram_id, (bool, np.bool_)) or not isinstance(engram_id, (int, np.integer)):
        raise ValueError(f'engram id {engram_id!r} is not an integer')
    value = int(engram_id)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f'engram id {value} does not fit in int64')
    return value


def check_edges(edges: Sequence[PlaceEdge]) -> list[tuple]:
    """Validate edges; return their ``place_edges`` rows, each pair ordered."""
    rows = []
    for e in edges:
        a, b = check_id(e.a), check_id(e.b)
        if a <= 0 or b <= 0 or a == b:
            raise ValueError(f'edge ({a}, {b}): ends must be two different positive ids')
        a, b = edge_key(a, b)
        rows.append((a, b, int(e.traversals), float(e.last_traversed)))
    return rows


_FIELDS_OF = operator.attrgetter(*COLUMNS)
_ENCODERS = tuple(TYPES[name].to_column for name in COLUMNS)
#: (field, row position, decoder) of the columns not used as stored.
_DECODERS = tuple((name, i, TYPES[name].from_column) for i, name in enumerate(COLUMNS)
                  if TYPES[name].from_column is not None)
_FLOATS = tuple(i for i, name in enumerate(COLUMNS) if isinstance(TYPES[name], FloatType))
_VECTOR = COLUMNS.index('vector')


def encode_rows(engrams: Sequence[Engram], dim: int | None) -> tuple[list[tuple], int | None]:
    """Validate a put batch; return its rows for :data:`~.schema.UPSERT` and its vector
    dimension.

    Rows are deduplicated by id, the last engram winning. Each field is encoded by its codec
    type: arrays become flat little-endian bytes (float64, the vector float32); tags and
    evidence become JSON lists.

    :raises ValueError: naming the first problem found.
    """
    latest: dict[int, tuple] = {}
    for e in engrams:
        fields = _FIELDS_OF(e)
        engram_id = check_id(fields[0])
        try:
            row = tuple([encode(value) for encode, value in zip(_ENCODERS, fields)])
        except ValueError:
            raise ValueError(f'engram {engram_id}: {_encoding_problem(fields)}') from None
        if math.isnan(sum([row[i] for i in _FLOATS if row[i] is not None])):
            raise ValueError(f'engram {engram_id}: a time, confidence or score is NaN')
        n = len(row[_VECTOR]) // 4
        if dim is None:
            dim = n
        elif n != dim:
            raise ValueError(f'engram {engram_id}: vector has dimension {n}; '
                             f'this store holds dimension {dim}')
        latest[engram_id] = row
    return list(latest.values()), dim


def _encoding_problem(fields: tuple) -> str:
    """Which field of a row could not be encoded, and why."""
    for name, encode, value in zip(COLUMNS, _ENCODERS, fields):
        try:
            encode(value)
        except ValueError as exc:
            return f'{name} {exc}'
    raise AssertionError('no field fails to encode')


def decode_row(row: Sequence) -> Engram:
    """Engram from a row of :data:`~.schema.SELECT` (or of :func:`encode_rows`)."""
    values = dict(zip(COLUMNS, row))
    for name, i, decode in _DECODERS:
        values[name] = decode(row[i])
    return Engram(**values)


def check_meta(key: str, value: str) -> None:
    """Refuse a meta entry :meth:`Storage.set_meta` must not store."""
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError('meta keys and values must be strings')
    if not key:
        raise ValueError('meta key is empty')
    if key in READ_ONLY_META:
        raise ValueError(f'meta key {key!r} is maintained by the storage and cannot be set')


def check_dim_meta(value: str, current: str | None, has_engrams: bool) -> None:
    """Refuse a ``dim`` that is no positive decimal integer or contradicts stored engrams."""
    try:
        dim = int(value)
    except ValueError:
        raise ValueError(f'dim {value!r} is not an integer') from None
    if dim < 1 or str(dim) != value:
        raise ValueError(f'dim {value!r} must be a positive integer written in decimal')
    if has_engrams and current is not None and current != value:
        raise ValueError(f'dim {value} contradicts the stored engrams (dimension {current})')


def chunks(values: Sequence[int], size: int = CHUNK) -> Iterator[Sequence[int]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
