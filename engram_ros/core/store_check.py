"""Checking a store directory without changing a byte of it (``engram verify``).

Opening a store the ordinary way migrates its schema, clears the index cache stamp, repairs an
interrupted audit rotation, records audit gaps and saves heads at close: right for a memory
that runs, wrong for a check, which must find the same thing however often it is run. Here the
database is read through a read-only SQLite connection (``immutable`` when there is no WAL
file, so SQLite creates no ``-wal``/``-shm`` files either; with one, after a crash or while a
node runs, only SQLite's shared-memory index ``-shm`` is touched), the index cache and the
audit files are only read.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Iterator

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit_chain import AuditVerification
from engram_ros.core.audit_chain import head_path
from engram_ros.core.audit_chain import log_files
from engram_ros.core.audit_chain import verify_log
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.index import EngramIndex
from engram_ros.core.index import IndexLoadError
from engram_ros.core.keys import AuditKeys
from engram_ros.core.memory.config import META_AUDIT_HEAD
from engram_ros.core.memory.config import META_INDEX_GENERATION
from engram_ros.core.model.engram import Engram
from engram_ros.core.storage import DATABASE_NAME
from engram_ros.core.storage import EVIDENCE_DIR_NAME
from engram_ros.core.storage import INDEX_DIR_NAME
from engram_ros.core.storage import MARKER_NAME
from engram_ros.core.storage import SCHEMA_VERSION
from engram_ros.core.storage import StoreOpenError
from engram_ros.core.storage.base import decode_row
from engram_ros.core.storage.schema import check_marker
from engram_ros.core.storage.schema import SELECT


@dataclass
class Check:
    """One line of the report: a name, what is wrong (empty: nothing) and what holds."""

    name: str
    problems: list[str] = field(default_factory=list)
    ok_text: str = ''


class ReadOnlyStore:
    """A store directory opened for reading only."""

    def __init__(self, directory: Path | str) -> None:
        """:raises StoreOpenError: when ``directory`` is not a readable store."""
        self.directory = Path(directory).absolute()
        marker = self.directory / MARKER_NAME
        db_path = self.directory / DATABASE_NAME

        def refuse(what: str) -> StoreOpenError:
            return StoreOpenError(f'cannot check engram store {str(self.directory)!r}: {what}')

        if not marker.is_file() or not db_path.is_file():
            raise refuse(f'not an engram store (no {MARKER_NAME} marker or no database)')
        check_marker(marker, refuse)
        wal = db_path.with_name(db_path.name + '-wal')
        query = '?mode=ro' if wal.exists() else '?mode=ro&immutable=1'
        try:
            self._conn = sqlite3.connect(db_path.as_uri() + query, uri=True,
                                         isolation_level=None)
            self.version = int(self._conn.execute('PRAGMA user_version').fetchone()[0])
        except sqlite3.Error as exc:
            raise refuse(f'the database cannot be read ({exc})') from exc

    def meta(self, key: str) -> str | None:
        row = self._conn.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return None if row is None else str(row[0])

    def quick_check(self) -> list[str]:
        rows = [str(r[0]) for r in self._conn.execute('PRAGMA quick_check(20)')]
        return [] if rows == ['ok'] else rows

    def engrams(self, batch_size: int = 2000) -> Iterator[Engram]:
        last = None
        while True:
            where = '' if last is None else ' WHERE id > ?'
            rows = self._conn.execute(f'{SELECT}{where} ORDER BY id LIMIT ?',
                                      (() if last is None else (last,)) + (batch_size,)
                                      ).fetchall()
            for row in rows:
                yield decode_row(row)
            if len(rows) < batch_size:
                return
            last = rows[-1][0]

    def close(self) -> None:
        self._conn.close()


def check_store(directory: Path | str, key: AuditKeys | None = None) -> list[Check]:
    """Every check of ``engram verify``, in order: SQLite, index, evidence, audit.

    :raises StoreOpenError: when ``directory`` is not a readable store.
    """
    store = ReadOnlyStore(directory)
    try:
        checks = [Check('sqlite', store.quick_check(), 'quick_check ok')]
        if store.version != SCHEMA_VERSION:
            checks.append(Check('rows', [], f'schema version {store.version}: migrated at '
                                             'the next open; rows not checked'))
        else:
            checks += _rows_checks(store)
        checks.append(audit_check(store.directory, key, store.meta(META_AUDIT_HEAD)))
        return checks
    finally:
        store.close()


def _rows_checks(store: ReadOnlyStore) -> list[Check]:
    evidence = EvidenceStore(store.directory / EVIDENCE_DIR_NAME)
    ids: set[int] = set()
    missing = []
    for e in store.engrams():
        ids.add(e.id)
        for uri in e.evidence:
            path = evidence.path_of(uri)
            if path is not None and not path.is_file():
                missing.append(f'engram {e.id}: {path} is missing')
    return [_index_check(store, ids),
            Check('evidence', missing, 'every referenced evidence file exists')]


def _index_check(store: ReadOnlyStore, ids: set[int]) -> Check:
    index_dir = store.directory / INDEX_DIR_NAME
    generation = store.meta(META_INDEX_GENERATION)
    stamp = index_dir / 'GENERATION'
    if not generation or not stamp.is_file() or stamp.read_text().strip() != generation:
        return Check('index', [], f'no current index cache: the next open rebuilds it from '
                                  f'the {len(ids)} rows')
    try:
        index = EngramIndex.load(index_dir)
    except IndexLoadError as exc:
        return Check('index', [f'the index cache is unreadable ({exc})'])
    cached = {int(i) for i in index.ids_of(index.live_slots())}
    if cached != ids:
        return Check('index', [f'{len(ids - cached)} rows not in the index cache, '
                               f'{len(cached - ids)} cache entries without a row'])
    return Check('index', [], f'{len(cached)} cached entries match {len(ids)} rows')


def audit_check(directory: Path, key: AuditKeys | None, db_head: str | None) -> Check:
    """The audit log's check (:func:`~engram_ros.core.audit_chain.verify_log`)."""
    path = Path(directory) / AUDIT_FILE_NAME
    if not log_files(path)[0] and not head_path(path).exists() and not db_head:
        if key is not None:
            return Check('audit', ['there is no audit log (audit.jsonl and audit.head are '
                                   'missing)'])
        return Check('audit', [], 'no audit log')
    result: AuditVerification = verify_log(path, key, db_head)
    return Check('audit', [] if result.ok else [result.message], result.message)


__all__ = ['Check', 'ReadOnlyStore', 'audit_check', 'check_store']
