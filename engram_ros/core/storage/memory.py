"""RAM-only storage: the backend used when the user has not consented to persistence.

It validates and encodes a put exactly as SQLite does and keeps the decoded engrams, so what it
hands back is what :class:`~.sqlite.SQLiteStorage` would; nothing ever reaches the disk.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator
from typing import Sequence

from engram_ros.core.model.edges import edge_key
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.storage.base import check_dim_meta
from engram_ros.core.storage.base import check_edges
from engram_ros.core.storage.base import check_meta
from engram_ros.core.storage.base import chunks
from engram_ros.core.storage.base import decode_row
from engram_ros.core.storage.base import encode_rows
from engram_ros.core.storage.base import INT64_MAX
from engram_ros.core.storage.base import Storage
from engram_ros.core.storage.base import StoreClosedError
from engram_ros.core.storage.schema import FIRST_ID
from engram_ros.core.storage.schema import ID
from engram_ros.core.storage.schema import META_DIM
from engram_ros.core.storage.schema import META_NEXT_ID
from engram_ros.core.storage.schema import META_SCHEMA_VERSION
from engram_ros.core.storage.schema import SCHEMA_VERSION


class MemoryStorage(Storage):
    """RAM-only storage: nothing is written to disk and everything is lost on close.

    Used when the user has not consented to persistence. One lock serialises all access; a
    :meth:`transaction` holds it throughout (other threads wait) and notes the old value of
    everything it changes, to put back on a rollback.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._engrams: dict[int, Engram] = {}
        self._edges: dict[tuple[int, int], PlaceEdge] = {}
        self._dirty: set[int] = set()
        #: id -> change number (see :meth:`Storage.changes_since`); a rollback keeps the
        #: numbers it stamped (a sync then re-reads an unchanged engram: harmless).
        self._changes: dict[int, int] = {}
        self._change_seq = 0
        self._meta: dict[str, str] = {META_SCHEMA_VERSION: str(SCHEMA_VERSION),
                                      META_NEXT_ID: str(FIRST_ID)}
        self._closed = False
        #: Inside :meth:`transaction`: the old values of what it changed, else None.
        self._undo: _Undo | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """See :meth:`Storage.transaction`."""
        with self._lock:
            if self._undo is not None:
                yield           # nested: part of the outer transaction
                return
            self._check_open()
            self._undo = _Undo(dict(self._meta))
            try:
                yield
            except BaseException:
                self._undo.restore(self)
                raise
            finally:
                self._undo = None

    def _note(self, ids: Iterator[int] | Sequence[int]) -> None:
        """Inside a transaction, keep the old record and dirty mark of ``ids`` (first time)."""
        if self._undo is not None:
            self._undo.note(self, ids)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError('the memory storage is closed')

    def next_id(self) -> int:
        """See :meth:`Storage.next_id`."""
        with self._lock:
            self._check_open()
            value = int(self._meta[META_NEXT_ID])
            if value >= INT64_MAX:
                raise OverflowError('engram ids are exhausted')
            self._meta[META_NEXT_ID] = str(value + 1)
            return value

    def put(self, engrams: Sequence[Engram], *, dirty: bool = True) -> None:
        """See :meth:`Storage.put`."""
        with self._lock:
            self._check_open()
            dim = self._meta.get(META_DIM)
            rows, new_dim = encode_rows(engrams, None if dim is None else int(dim))
            if not rows:
                return
            self._note([row[ID] for row in rows])
            # Decoding the rows gives exactly what SQLiteStorage would return.
            for row in rows:
                self._engrams[row[ID]] = decode_row(row)
            if dirty:
                self._dirty.update(row[ID] for row in rows)
                self._stamp(row[ID] for row in rows)
            self._meta[META_DIM] = str(new_dim)
            top = max(row[ID] for row in rows) + 1
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
            self._note(gone)
            if self._undo is not None:
                self._undo.note_edges(self, [k for k in self._edges
                                             if k[0] in gone or k[1] in gone])
            self._edges = {k: e for k, e in self._edges.items()
                           if k[0] not in gone and k[1] not in gone}
            self._dirty -= gone
            self._stamp(i for i in gone if i in self._engrams)
            return sum(self._engrams.pop(i, None) is not None for i in gone)

    def dirty_ids(self) -> list[int]:
        """See :meth:`Storage.dirty_ids`."""
        with self._lock:
            self._check_open()
            return sorted(self._dirty)

    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, int]]:
        """See :meth:`Storage.changes_since`."""
        with self._lock:
            self._check_open()
            later = sorted((n, i) for i, n in self._changes.items() if n > seq)
            return [(i, n) for n, i in later[:max(0, int(limit))]]

    def prune_changes(self, through: int) -> int:
        """See :meth:`Storage.prune_changes`."""
        with self._lock:
            self._check_open()
            gone = [i for i, n in self._changes.items()
                    if n <= through and i not in self._engrams]
            for i in gone:
                del self._changes[i]
            return len(gone)

    def _stamp(self, ids: Iterator[int] | Sequence[int] | set[int]) -> None:
        self._change_seq += 1
        for i in ids:
            self._changes[int(i)] = self._change_seq

    def clear_dirty(self) -> None:
        """See :meth:`Storage.clear_dirty`."""
        with self._lock:
            self._check_open()
            self._note(list(self._dirty))
            self._dirty.clear()

    def put_edges(self, edges: Sequence[PlaceEdge]) -> None:
        """See :meth:`Storage.put_edges`."""
        rows = check_edges(edges)
        with self._lock:
            self._check_open()
            if self._undo is not None:
                self._undo.note_edges(self, [(a, b) for a, b, _, _ in rows])
            for a, b, n, t in rows:
                self._edges[(a, b)] = PlaceEdge(a, b, n, t)

    def delete_edges(self, pairs: Sequence[tuple[int, int]]) -> None:
        """See :meth:`Storage.delete_edges`."""
        with self._lock:
            self._check_open()
            if self._undo is not None:
                self._undo.note_edges(self, [edge_key(int(a), int(b)) for a, b in pairs])
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
        for chunk in chunks(ids, batch_size):
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
        check_meta(key, value)
        with self._lock:
            self._check_open()
            if key == META_DIM:
                check_dim_meta(value, self._meta.get(META_DIM), bool(self._engrams))
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
            self._dirty.clear()
            self._changes.clear()


_MISSING = object()


class _Undo:
    """The old values of what a transaction changed: records and dirty marks by id, edges by
    key (each noted the first time it is changed) and the meta table (small: copied)."""

    def __init__(self, meta: dict[str, str]) -> None:
        self.meta = meta
        self.engrams: dict[int, object] = {}
        self.dirty: dict[int, bool] = {}
        self.edges: dict[tuple[int, int], object] = {}

    def note(self, storage: MemoryStorage, ids: Iterator[int] | Sequence[int]) -> None:
        for i in ids:
            if i not in self.engrams:
                self.engrams[i] = storage._engrams.get(i, _MISSING)
                self.dirty[i] = i in storage._dirty

    def note_edges(self, storage: MemoryStorage, keys: Sequence[tuple[int, int]]) -> None:
        for key in keys:
            if key not in self.edges:
                self.edges[key] = storage._edges.get(key, _MISSING)

    def restore(self, storage: MemoryStorage) -> None:
        storage._meta = self.meta
        for i, old in self.engrams.items():
            if old is _MISSING:
                storage._engrams.pop(i, None)
            else:
                storage._engrams[i] = old       # type: ignore[assignment]
            if self.dirty[i]:
                storage._dirty.add(i)
            else:
                storage._dirty.discard(i)
        for key, old in self.edges.items():
            if old is _MISSING:
                storage._edges.pop(key, None)
            else:
                storage._edges[key] = old       # type: ignore[assignment]
