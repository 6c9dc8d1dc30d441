"""A store directory on local disk: one SQLite database in WAL mode, plus evidence files.

Opening never destroys anything: a directory that is not a store, a corrupt database or a schema
this code does not know is refused with :class:`StoreOpenError` and left exactly as it was (the
checks and migrations are in :mod:`.schema`). The integrity check (``PRAGMA quick_check``,
which reads every page: 2.3 s for a 2 GB store of 1M engrams) runs on every open except when
the database file is exactly as this class's last clean close left it: the close writes a
``CLEAN`` stamp (size, inode, modification and change times, taken once the file-time clock
has moved past the last write), the open removes it. Any write to the file since (another
program, a restore, a truncation) changes the change time and the check runs; what it no
longer catches at such an open is damage that bypasses the file system (a failing disk), which
SQLite then reports as an error when the damaged page is read.

Evidence references are strings: ``file://`` URIs, absolute paths, or paths relative to the
evidence directory. When engrams are deleted, files that lie inside the evidence directory and
are referenced by no remaining engram are deleted too; anything else (other schemes, files
outside the evidence directory, symlinks) is never touched.

Files are private: the directory and its subdirectories are 0700, every file 0600 (the database
file is made 0600 before SQLite opens it, so its ``-wal``/``-shm`` files, which SQLite creates
with the database's mode, are too). A store written by an older version is tightened when it
opens, with a warning in the log.

Durability (``synchronous``): ``NORMAL`` (the default) keeps every acknowledged write through a
crash of the process (``kill -9``); after a power loss or an OS crash the writes of the last
moments may be rolled back, but the database stays consistent. ``FULL`` syncs the WAL at every
commit, so acknowledged writes also survive a power loss, at the cost of one ``fsync`` per
write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator
from typing import Sequence

from engram_ros.core.files import open_private
from engram_ros.core.files import private_dir
from engram_ros.core.files import tighten
from engram_ros.core.files import tighten_tree
from engram_ros.core.files import write_private
from engram_ros.core.model.edges import edge_key
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.storage import schema
from engram_ros.core.storage.base import check_dim_meta
from engram_ros.core.storage.base import check_edges
from engram_ros.core.storage.base import check_meta
from engram_ros.core.storage.base import chunks
from engram_ros.core.storage.base import decode_row
from engram_ros.core.storage.base import encode_rows
from engram_ros.core.storage.base import INT64_MAX
from engram_ros.core.storage.base import Storage
from engram_ros.core.storage.base import StoreClosedError
from engram_ros.core.storage.base import StoreOpenError
from engram_ros.core.storage.schema import DATABASE_NAME
from engram_ros.core.storage.schema import EVIDENCE
from engram_ros.core.storage.schema import EVIDENCE_DIR_NAME
from engram_ros.core.storage.schema import ID
from engram_ros.core.storage.schema import immediate
from engram_ros.core.storage.schema import INDEX_DIR_NAME
from engram_ros.core.storage.schema import MARKER_NAME
from engram_ros.core.storage.schema import META_DIM
from engram_ros.core.storage.schema import META_NEXT_ID
from engram_ros.core.storage.schema import SELECT
from engram_ros.core.storage.schema import TAGS
from engram_ros.core.storage.schema import UPSERT
from engram_ros.core.storage.sqlite_evidence import evidence_key
from engram_ros.core.storage.sqlite_evidence import EvidenceFiles
from engram_ros.core.storage.sqlite_scans import ColumnScans

logger = logging.getLogger(__name__)

#: Values of SQLite's ``synchronous`` the storage accepts (see the module doc). ``OFF`` is
#: refused: an OS crash could then corrupt the database.
SYNCHRONOUS_MODES = ('NORMAL', 'FULL')


class SQLiteStorage(ColumnScans, EvidenceFiles, Storage):
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

    def __init__(self, directory: Path | str, *, create: bool = True,
                 synchronous: str = 'NORMAL') -> None:
        """Open the store in ``directory``, creating it if allowed.

        :param directory: the store directory.
        :param create: create the store when ``directory`` is missing or empty.
        :param synchronous: ``NORMAL`` or ``FULL`` (see the module doc).
        :raises ValueError: for another ``synchronous``.
        :raises StoreOpenError: when the directory is not a store (non-empty without a marker),
            is missing and ``create`` is false, or holds a corrupt database or a schema version
            this code does not know. Nothing is changed in that case.
        """
        if str(synchronous).upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f'synchronous={synchronous!r}; accepted: '
                             f'{", ".join(SYNCHRONOUS_MODES)}')
        self._synchronous = str(synchronous).upper()
        self._directory = Path(directory).absolute()
        self._db_path = self._directory / DATABASE_NAME
        self._evidence_dir = self._directory / EVIDENCE_DIR_NAME
        self._index_dir = self._directory / INDEX_DIR_NAME
        self._write_lock = threading.Lock()
        #: The thread inside :meth:`transaction` (its writes and reads use the writer
        #: connection, uncommitted), the first error of a write in it, and the evidence files
        #: its deletes orphaned (removed after the commit).
        self._tx_owner: int | None = None
        self._tx_error: BaseException | None = None
        self._tx_files: list[str] = []
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        #: Whether this open ran ``PRAGMA quick_check`` over the database. It is skipped only
        #: when the file is exactly as this class's last clean close left it (same size,
        #: inode and change time: nothing wrote to it since, see :func:`.schema.clean_stamp`).
        self.integrity_checked = True
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
        schema.check_marker(marker, self._refusal)
        if not self._db_path.exists():
            if not schema.only_empty_skeleton(directory):
                raise self._refusal(f'the database {str(self._db_path)!r} is missing; restore it '
                                    'from a backup or move the directory aside')
            logger.warning('store %s has a marker but no database (creation was interrupted); '
                           'initialising it', directory)
            initialised = False
        else:
            stamp_path = directory / schema.CLEAN_STAMP_NAME
            try:
                stamp = stamp_path.read_text(encoding='utf-8')
            except OSError:
                stamp = None
            unchanged = stamp is not None and stamp == schema.clean_stamp(self._db_path)
            if not unchanged:
                logger.info('checking the integrity of %s (PRAGMA quick_check)', self._db_path)
            initialised = schema.check_database(self._db_path, self._refusal,
                                                integrity=not unchanged)
            self.integrity_checked = not unchanged
        try:
            # A store this code understands: make it private before anything else is read.
            with contextlib.suppress(FileNotFoundError):
                (directory / schema.CLEAN_STAMP_NAME).unlink()   # open: not clean any more
            tighten_tree(directory)
            private_dir(self._evidence_dir)
            private_dir(self._index_dir)
            os.close(open_private(self._db_path, os.O_WRONLY | os.O_CREAT))
            writer = self._connect()
            try:
                self._enable_wal(writer)
                if not initialised:
                    schema.init_schema(writer)
                else:
                    schema.migrate(writer, directory)
                schema.write_marker_version(marker)
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
            private_dir(directory)
            schema.write_new_marker(directory)
            private_dir(self._evidence_dir)
            private_dir(self._index_dir)
            os.close(open_private(self._db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            writer = self._connect()
            try:
                self._enable_wal(writer)
                schema.init_schema(writer)
            except BaseException:
                writer.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreOpenError(f'cannot create engram store {str(directory)!r}: {exc}') from exc
        logger.info('created engram store %s', directory)
        return writer

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are begun and ended explicitly. Connections move between
        # threads through the pool but are only ever used by one thread at a time.
        conn = sqlite3.connect(str(self._db_path), isolation_level=None,
                               check_same_thread=False, timeout=30.0)
        conn.execute('PRAGMA foreign_keys = ON')
        conn.execute(f'PRAGMA synchronous = {self._synchronous}')
        # Deleted rows are overwritten with zeros, so a forget leaves nothing in free pages.
        conn.execute('PRAGMA secure_delete = ON')
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute('PRAGMA journal_mode = WAL').fetchone()[0]
        if str(mode).lower() != 'wal':
            logger.warning('SQLite refused WAL mode (journal_mode=%s); readers will wait for '
                           'writers', mode)
        # SQLite gives them the database file's mode; made sure of here all the same.
        for suffix in ('-wal', '-shm'):
            with contextlib.suppress(FileNotFoundError):
                tighten(self._db_path.with_name(self._db_path.name + suffix))

    # -- connections and transactions -------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """See :meth:`Storage.transaction`: one ``BEGIN IMMEDIATE`` on the writer connection
        (a database locked by another process fails here, before anything is written)."""
        if self._tx_owner == threading.get_ident():
            yield           # nested: part of the outer transaction
            return
        with self._write_lock:
            if self._closed:
                raise StoreClosedError(f'the store {str(self._directory)!r} is closed')
            self._tx_owner, self._tx_error, self._tx_files = threading.get_ident(), None, []
            try:
                with immediate(self._writer):
                    yield
                    if self._tx_error is not None:
                        raise sqlite3.OperationalError(
                            f'a write of this transaction failed ({self._tx_error}); '
                            'rolled back') from self._tx_error
            finally:
                files = self._tx_files
                self._tx_owner, self._tx_error, self._tx_files = None, None, []
        self._remove_evidence(files)        # committed: the orphaned files go

    def _in_transaction(self) -> bool:
        return self._tx_owner == threading.get_ident()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection; rolled back on any error. Inside
        :meth:`transaction`, a part of that one (an error poisons it)."""
        if self._in_transaction():
            try:
                yield self._writer
            except BaseException as exc:
                self._tx_error = self._tx_error or exc
                raise
            return
        with self._write_lock:
            if self._closed:
                raise StoreClosedError(f'the store {str(self._directory)!r} is closed')
            with immediate(self._writer) as conn:
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction (a consistent snapshot) on a pooled reader connection; inside
        :meth:`transaction`, on the writer connection (its own writes are seen)."""
        if self._in_transaction():
            yield self._writer
            return
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
            if value >= INT64_MAX:
                raise OverflowError('engram ids are exhausted')
            conn.execute('UPDATE meta SET value = ? WHERE key = ?', (str(value + 1), META_NEXT_ID))
        return value

    def put(self, engrams: Sequence[Engram], *, dirty: bool = True) -> None:
        """See :meth:`Storage.put`."""
        with self._write() as conn:
            dim = self._meta_value(conn, META_DIM)
            rows, new_dim = encode_rows(engrams, None if dim is None else int(dim))
            if not rows:
                return
            self._delete_children(conn, [row[ID] for row in rows])
            conn.executemany(UPSERT, rows)
            tags = [(row[ID], tag) for row in rows if row[TAGS] != '[]'
                    for tag in json.loads(row[TAGS])]
            conn.executemany('INSERT OR IGNORE INTO engram_tags (engram_id, tag) VALUES (?, ?)',
                             tags)
            evidence = [(row[ID], uri, evidence_key(uri, self._evidence_dir)) for row in rows
                        if row[EVIDENCE] != '[]' for uri in json.loads(row[EVIDENCE])]
            conn.executemany(
                'INSERT OR IGNORE INTO engram_evidence (engram_id, uri, file) VALUES (?, ?, ?)',
                evidence)
            if dirty:
                conn.executemany('INSERT OR IGNORE INTO dirty (engram_id) VALUES (?)',
                                 [(row[ID],) for row in rows])
                self._stamp(conn, [row[ID] for row in rows])
            if dim is None:
                conn.execute('INSERT INTO meta (key, value) VALUES (?, ?)', (META_DIM,
                                                                             str(new_dim)))
            top = max(row[ID] for row in rows) + 1
            if top > int(self._meta_value(conn, META_NEXT_ID)):
                conn.execute('UPDATE meta SET value = ? WHERE key = ?', (str(top), META_NEXT_ID))

    def dirty_ids(self) -> list[int]:
        """See :meth:`Storage.dirty_ids`."""
        with self._read() as conn:
            return [int(row[0]) for row in conn.execute(
                'SELECT engram_id FROM dirty ORDER BY engram_id')]

    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, int]]:
        """See :meth:`Storage.changes_since`."""
        with self._read() as conn:
            return [(int(i), int(n)) for i, n in conn.execute(
                'SELECT engram_id, seq FROM changes WHERE seq > ? ORDER BY seq, engram_id '
                'LIMIT ?', (int(seq), max(0, int(limit))))]

    def prune_changes(self, through: int) -> int:
        """See :meth:`Storage.prune_changes`."""
        with self._write() as conn:
            return conn.execute(
                'DELETE FROM changes WHERE seq <= ? AND engram_id NOT IN '
                '(SELECT id FROM engrams)', (int(through),)).rowcount

    @staticmethod
    def _stamp(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Stamp ``ids`` with the next change number (writes are serialised, so numbers
        follow commit order)."""
        seq = conn.execute('SELECT COALESCE(MAX(seq), 0) + 1 FROM changes').fetchone()[0]
        conn.executemany('INSERT INTO changes (engram_id, seq) VALUES (?, ?) '
                         'ON CONFLICT(engram_id) DO UPDATE SET seq = excluded.seq',
                         [(int(i), seq) for i in ids])

    def clear_dirty(self) -> None:
        """See :meth:`Storage.clear_dirty`."""
        with self._write() as conn:
            conn.execute('DELETE FROM dirty')

    def get(self, ids: Sequence[int], *, shared: bool = False) -> list[Engram]:
        """See :meth:`Storage.get`."""
        wanted = [int(i) for i in ids]
        if not wanted:
            self._check_open()
            return []
        unique = list(dict.fromkeys(wanted))
        rows: dict[int, tuple] = {}
        with self._read() as conn:
            for chunk in chunks(unique):
                marks = ', '.join('?' * len(chunk))
                for row in conn.execute(f'{SELECT} WHERE id IN ({marks})', chunk):
                    rows[row[ID]] = row
        return [decode_row(rows[i]) for i in wanted if i in rows]

    def delete(self, ids: Sequence[int]) -> int:
        """See :meth:`Storage.delete`."""
        unique = sorted({int(i) for i in ids})
        if not unique:
            self._check_open()
            return 0
        orphans: list[str] = []
        with self._write() as conn:
            candidates: set[str] = set()
            for chunk in chunks(unique):
                marks = ', '.join('?' * len(chunk))
                candidates.update(row[0] for row in conn.execute(
                    f'SELECT file FROM engram_evidence WHERE file IS NOT NULL '
                    f'AND engram_id IN ({marks})', chunk))
            present = [int(row[0]) for chunk in chunks(unique) for row in conn.execute(
                f'SELECT id FROM engrams WHERE id IN ({", ".join("?" * len(chunk))})', chunk)]
            self._delete_children(conn, unique)
            deleted = 0
            for chunk in chunks(unique):
                marks = ', '.join('?' * len(chunk))
                conn.execute(f'DELETE FROM dirty WHERE engram_id IN ({marks})', chunk)
                deleted += conn.execute(f'DELETE FROM engrams WHERE id IN ({marks})',
                                        chunk).rowcount
                conn.execute(f'DELETE FROM place_edges WHERE a IN ({marks}) OR b IN ({marks})',
                             list(chunk) + list(chunk))
            if present:                 # a delete is a change only of engrams that existed
                self._stamp(conn, present)
            orphans = [f for f in sorted(candidates) if conn.execute(
                'SELECT 1 FROM engram_evidence WHERE file = ? LIMIT 1', (f,)).fetchone() is None]
        # Files go only after the commit, so a failed transaction never loses evidence. A put
        # that references one of them again in between would have to reuse a deleted file.
        if self._in_transaction():
            self._tx_files.extend(orphans)
        else:
            self._remove_evidence(orphans)
        return deleted

    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """See :meth:`Storage.iter_all`."""
        for rows in self._pages(SELECT, (), batch_size):
            yield from map(decode_row, rows)

    def put_edges(self, edges: Sequence[PlaceEdge]) -> None:
        """See :meth:`Storage.put_edges`."""
        rows = check_edges(edges)
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
        check_meta(key, value)
        with self._write() as conn:
            if key == META_DIM:
                has_engrams = conn.execute('SELECT 1 FROM engrams LIMIT 1').fetchone() is not None
                check_dim_meta(value, self._meta_value(conn, META_DIM), has_engrams)
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
            # The last connection checkpointed and removed the WAL: stamp the file so the next
            # open can tell it is unchanged (with a reader still busy, or another process
            # connected, the WAL stays and no stamp is written).
            stamp = schema.stamp_after_close(self._db_path)
            if stamp is not None:
                with contextlib.suppress(OSError):
                    write_private(self._directory / schema.CLEAN_STAMP_NAME, stamp)
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
        for chunk in chunks(ids):
            marks = ', '.join('?' * len(chunk))
            conn.execute(f'DELETE FROM engram_tags WHERE engram_id IN ({marks})', chunk)
            conn.execute(f'DELETE FROM engram_evidence WHERE engram_id IN ({marks})', chunk)

    @staticmethod
    def _meta_value(conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return None if row is None else row[0]
