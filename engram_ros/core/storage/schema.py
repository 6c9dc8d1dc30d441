"""The on-disk format of a store: its files, the SQL schema, its versions and their migrations.

A store directory looks like this::

    <dir>/STORE             marker: JSON {"format": "engram_ros store", "schema_version": 4, ...}
    <dir>/engrams.sqlite3   the database (WAL mode; -wal/-shm files appear beside it)
    <dir>/evidence/         evidence files (crops, frames, clips) written by perception
    <dir>/index/            a cached vector index; derived data, safe to delete

The directory is 0700 and every file in it 0600 (:mod:`engram_ros.core.files`).

Every check here is read-only and refuses through the ``refuse`` callable it is given (the
storage's :class:`~engram_ros.core.storage.base.StoreOpenError` with "nothing was changed"), so
a store this code does not understand is never touched. A store of an older known schema is
migrated in place without losing a row: schema 1 -> 2 adds the temporal-validity and anchoring
columns of ``engrams`` (``ALTER TABLE ... ADD COLUMN``) and the ``place_edges`` table of the
place graph (``CREATE TABLE``); schema 2 -> 3 adds the ``dirty`` table, the engrams changed
since the last consolidation (schema 2 kept that set in RAM only, so a restart lost it and
recent duplicates were never merged; the migration marks the short-term engrams, the recent
ones, as changed); schema 3 -> 4 adds the ``changes`` table, a change sequence per engram id
(every put and delete stamps its ids with the next number, in the same transaction) that a
fleet sync reads to upload only what changed since its last run (the migration stamps every
engram kept with 1, so a first sync uploads them all). Each migration runs in one transaction,
then the marker is rewritten.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable
from typing import Iterator

from engram_ros.core.files import open_private

logger = logging.getLogger(__name__)

#: Version of the on-disk layout and SQL schema this code reads and writes.
SCHEMA_VERSION = 4
#: Older schema versions this code migrates in place when it opens them.
MIGRATABLE_VERSIONS = frozenset({1, 2, 3})
#: Value of ``format`` in the marker file.
STORE_FORMAT = 'engram_ros store'
MARKER_NAME = 'STORE'
#: Written at a clean close: the database file's :func:`clean_stamp`; removed at open.
CLEAN_STAMP_NAME = 'CLEAN'
DATABASE_NAME = 'engrams.sqlite3'
EVIDENCE_DIR_NAME = 'evidence'
INDEX_DIR_NAME = 'index'

#: Meta keys the storage maintains itself. ``schema_version`` and ``next_id`` are read-only
#: through :meth:`Storage.set_meta`; ``dim`` may be set to pin the vector dimension early.
META_SCHEMA_VERSION = 'schema_version'
META_NEXT_ID = 'next_id'
META_DIM = 'dim'
READ_ONLY_META = frozenset({META_SCHEMA_VERSION, META_NEXT_ID})

#: The first id :meth:`Storage.next_id` hands out (0 is left free to mean "no engram").
FIRST_ID = 1

#: A refusal to open: takes what is wrong, returns the exception to raise.
Refuse = Callable[[str], Exception]

TABLES = ('meta', 'engrams', 'engram_tags', 'engram_evidence')
#: Tables added by schema 2.
TABLES_V2 = ('place_edges',)
#: Tables added by schema 3.
TABLES_V3 = ('dirty',)
#: Tables added by schema 4.
TABLES_V4 = ('changes',)

#: What schema 1 -> 2 adds (statements run in order in one transaction).
MIGRATE_1_TO_2 = (
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

#: What schema 2 -> 3 adds: the ids written since the last consolidation, kept in the same
#: transaction as their rows (see :meth:`~engram_ros.core.storage.base.Storage.put`).
MIGRATE_2_TO_3 = (
    'CREATE TABLE dirty ('
    ' engram_id INTEGER PRIMARY KEY REFERENCES engrams(id) ON DELETE CASCADE'
    ')',
    # Which engrams changed since the last consolidation was not recorded: the short-term ones
    # are the recent sightings, so their duplicates are still found by the next pass.
    "INSERT INTO dirty (engram_id) SELECT id FROM engrams WHERE tier = 'short'",
)

_SCHEMA_1_SQL = (
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
)

#: What schema 3 -> 4 adds: the change sequence (see :meth:`Storage.changes_since`). A
#: deleted engram keeps its row (a tombstone: the id with the delete's number) until a sync
#: that has passed it prunes it (:meth:`Storage.prune_changes`), so no foreign key.
MIGRATE_3_TO_4 = (
    'CREATE TABLE changes ('
    ' engram_id INTEGER PRIMARY KEY,'
    ' seq INTEGER NOT NULL'
    ')',
    'CREATE INDEX changes_by_seq ON changes(seq)',
    'INSERT INTO changes (engram_id, seq) SELECT id, 1 FROM engrams',
)
SCHEMA_SQL = _SCHEMA_1_SQL + MIGRATE_1_TO_2 + MIGRATE_2_TO_3[:1] + MIGRATE_3_TO_4[:2]

#: Columns of ``engrams`` in row order; each is named after the :class:`Engram` field it holds
#: (:mod:`engram_ros.core.model.codec` encodes them).
COLUMNS = ('id', 'kind', 'frame_id', 'label', 'modality', 'confidence', 'first_seen',
           'last_seen', 'observation_count', 'score', 'tier', 'pinned', 'last_access',
           'recall_count', 'position', 'orientation', 'covariance', 'vector', 'tags',
           'evidence', 'valid_from', 'valid_to', 'successor_id', 'anchor_id', 'keyframe_id')
#: Row positions the storage reads directly.
ID, TAGS, EVIDENCE = COLUMNS.index('id'), COLUMNS.index('tags'), COLUMNS.index('evidence')
SELECT = f'SELECT {", ".join(COLUMNS)} FROM engrams'
UPSERT = (f'INSERT INTO engrams ({", ".join(COLUMNS)}) '
          f'VALUES ({", ".join("?" for _ in COLUMNS)}) '
          'ON CONFLICT(id) DO UPDATE SET '
          + ', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:]))


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
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


# -- the marker --------------------------------------------------------------------------------


def write_new_marker(directory: Path) -> None:
    """Write the marker of a new store, atomically (it goes first: an interrupted creation is
    then recognisable)."""
    _write_json(directory / MARKER_NAME, {
        'format': STORE_FORMAT, 'schema_version': SCHEMA_VERSION,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'created_unix': time.time()})


def write_marker_version(marker: Path) -> None:
    """Record the current schema version in the marker (after a migration committed)."""
    content = json.loads(marker.read_text(encoding='utf-8'))
    if content.get('schema_version') == SCHEMA_VERSION:
        return
    content['schema_version'] = SCHEMA_VERSION
    _write_json(marker, content)


def _write_json(path: Path, content: dict) -> None:
    tmp = path.with_name(MARKER_NAME + '.tmp')
    with os.fdopen(open_private(tmp), 'w', encoding='utf-8') as f:
        json.dump(content, f, indent=2)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def clean_stamp(db_path: Path) -> str | None:
    """What identifies the database file as a clean close left it: size, inode and change
    times (``st_ctime_ns`` cannot be set from user space: any write, truncation or rename
    changes it), or ``None`` while a ``-wal`` file exists (another connection, or a crash)."""
    if db_path.with_name(db_path.name + '-wal').exists():
        return None
    try:
        st = os.stat(db_path)
    except FileNotFoundError:
        return None
    return _identity(st)


def stamp_after_close(db_path: Path) -> str | None:
    """:func:`clean_stamp` taken at least :data:`_TICK_NS` after the file's last change.

    File times come from a coarse clock (one tick is a few ms): a write in the same tick as
    the last one would leave them as they were. Stamping once the clock has moved past that
    tick means any later write lands in a later tick, so it changes ``st_ctime_ns``.
    """
    stamp = clean_stamp(db_path)
    if stamp is None:
        return None
    wait = json.loads(stamp)['ctime_ns'] + _TICK_NS - time.time_ns()
    if wait > 0:
        time.sleep(wait / 1e9)
    st = os.stat(db_path)
    return _identity(st) if _identity(st) == stamp else None


#: More than one tick of the kernel's coarse file-time clock (1-10 ms).
_TICK_NS = 25_000_000


def _identity(st: os.stat_result) -> str:
    return json.dumps({'size': st.st_size, 'ino': st.st_ino, 'dev': st.st_dev,
                       'mtime_ns': st.st_mtime_ns, 'ctime_ns': st.st_ctime_ns})


def only_empty_skeleton(directory: Path) -> bool:
    """True when ``directory`` holds nothing but the marker and empty subdirectories (a store
    whose creation was interrupted before its database existed)."""
    for entry in directory.iterdir():
        if entry.name in (MARKER_NAME, CLEAN_STAMP_NAME):     # the stamp holds no data
            continue
        if entry.name in (EVIDENCE_DIR_NAME, INDEX_DIR_NAME) and entry.is_dir() \
                and not any(entry.iterdir()):
            continue
        return False
    return True


def check_marker(marker: Path, refuse: Refuse) -> None:
    """Refuse a marker that does not declare a store of a version this code reads."""
    try:
        content = json.loads(marker.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse(f'the marker file {str(marker)!r} is unreadable ({exc})') from exc
    if not isinstance(content, dict) or content.get('format') != STORE_FORMAT:
        raise refuse(f'not an engram store: {str(marker)!r} does not declare format '
                     f'{STORE_FORMAT!r}')
    version = content.get('schema_version')
    if isinstance(version, bool) or not isinstance(version, int):
        raise refuse(f'the marker file {str(marker)!r} has no valid schema_version')
    check_version(version, str(marker), refuse)


def check_version(version: int, where: str, refuse: Refuse) -> None:
    """Refuse a schema version that is newer than this code or unknown to it."""
    if version > SCHEMA_VERSION:
        raise refuse(f'{where!r} has schema version {version}, newer than the '
                     f'{SCHEMA_VERSION} this software supports; upgrade engram_ros')
    if version != SCHEMA_VERSION and version not in MIGRATABLE_VERSIONS:
        raise refuse(f'{where!r} has unknown schema version {version} (supported: '
                     f'{SCHEMA_VERSION})')


# -- the database ------------------------------------------------------------------------------


def check_database(db_path: Path, refuse: Refuse, *, integrity: bool = True) -> bool:
    """Validate the database read-only; return False when it is empty (never initialised).

    :param integrity: run ``PRAGMA quick_check`` (reads every page: 2.3 s for a 2 GB store);
        the caller skips it only for a file provably unchanged since a clean close
        (:func:`clean_stamp`).
    :raises: what ``refuse`` returns, for a corrupt file or an unknown or newer schema.
    """
    where = str(db_path)
    # Without a WAL file the database file is complete: open it as immutable, which makes
    # SQLite create no -wal/-shm files either. With one (after a crash) read it as well.
    wal = db_path.with_name(db_path.name + '-wal')
    query = '?mode=ro' if wal.exists() else '?mode=ro&immutable=1'
    try:
        conn = sqlite3.connect(db_path.as_uri() + query, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise refuse(f'the database {where!r} cannot be opened ({exc})') from exc
    try:
        return _check_tables(conn, where, refuse, integrity)
    except sqlite3.DatabaseError as exc:
        raise refuse(f'the database {where!r} is corrupt or not an SQLite database '
                     f'({exc})') from exc
    finally:
        conn.close()


def _check_tables(conn: sqlite3.Connection, where: str, refuse: Refuse,
                  integrity: bool = True) -> bool:
    if integrity:
        check = [row[0] for row in conn.execute('PRAGMA quick_check(5)')]
        if check != ['ok']:
            raise refuse(f'the database {where!r} is corrupt: {"; ".join(check)}')
    version = conn.execute('PRAGMA user_version').fetchone()[0]
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and not tables:
        return False
    check_version(version, where, refuse)
    missing = [t for t in TABLES + (TABLES_V2 if version >= 2 else ())
               + (TABLES_V3 if version >= 3 else ()) + (TABLES_V4 if version >= 4 else ())
               if t not in tables]
    if missing:
        raise refuse(f'the database {where!r} lacks tables {", ".join(missing)}')
    row = conn.execute('SELECT value FROM meta WHERE key = ?',
                       (META_SCHEMA_VERSION,)).fetchone()
    if row is None or row[0] != str(version):
        raise refuse(f'the database {where!r} has schema version '
                     f'{None if row is None else row[0]!r} in its meta table but '
                     f'{version} in user_version')
    return True


def init_schema(conn: sqlite3.Connection) -> None:
    """Create every table of the current schema in an empty database."""
    with immediate(conn):
        for statement in SCHEMA_SQL:
            conn.execute(statement)
        conn.executemany('INSERT INTO meta (key, value) VALUES (?, ?)', (
            (META_SCHEMA_VERSION, str(SCHEMA_VERSION)), (META_NEXT_ID, str(FIRST_ID))))
        conn.execute(f'PRAGMA user_version = {SCHEMA_VERSION}')


def migrate(conn: sqlite3.Connection, directory: Path) -> None:
    """Bring an older known schema up to :data:`SCHEMA_VERSION` in one transaction.

    Only adds columns and tables: every engram, tag and evidence row is kept.
    """
    version = conn.execute('PRAGMA user_version').fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    with immediate(conn):
        if version == 1:
            for statement in MIGRATE_1_TO_2:
                conn.execute(statement)
        if version <= 2:
            for statement in MIGRATE_2_TO_3:
                conn.execute(statement)
        if version <= 3:
            for statement in MIGRATE_3_TO_4:
                conn.execute(statement)
        conn.execute('UPDATE meta SET value = ? WHERE key = ?',
                     (str(SCHEMA_VERSION), META_SCHEMA_VERSION))
        conn.execute(f'PRAGMA user_version = {SCHEMA_VERSION}')
    logger.warning('migrated engram store %s from schema %d to %d (%d engrams kept)',
                   directory, version, SCHEMA_VERSION,
                   conn.execute('SELECT COUNT(*) FROM engrams').fetchone()[0])
