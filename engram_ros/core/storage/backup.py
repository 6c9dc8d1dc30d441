"""A consistent copy of a store while its memory runs (``engram backup DIR``).

The memory node keeps writing while the copy is made, so each part is copied the way that
keeps it consistent with the others:

* the database through SQLite's online backup API, in one step: a snapshot of one instant,
  taken while the writer goes on (WAL readers never block it). Every engram acknowledged
  before the backup started is in it;
* the evidence files that snapshot references. They are copied once before the snapshot and
  the missing ones after it; a file the running memory deleted in between (its engram was
  forgotten or merged after the snapshot) is dropped from the backup's engram, and counted, so
  the backup verifies. Files the snapshot does not reference are left out;
* the audit log after the snapshot, each file up to its last complete line, so it reaches at
  least the head the snapshot recorded;
* the index cache is left out: while the memory runs the cache on disk is stale by design (its
  stamp in the database is cleared at open), and a restored store rebuilds it from the
  database on its first open.

The backup is itself a store directory, private like every store (0700/0600): restore it by
stopping the memory and putting the backup where ``store_dir`` points (evidence URIs name their
files by absolute path, so restore it at the same path to keep them readable).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit_chain import head_path
from engram_ros.core.files import open_private
from engram_ros.core.files import private_dir
from engram_ros.core.files import write_private
from engram_ros.core.storage.base import StoreOpenError
from engram_ros.core.storage.schema import check_marker
from engram_ros.core.storage.schema import DATABASE_NAME
from engram_ros.core.storage.schema import EVIDENCE_DIR_NAME
from engram_ros.core.storage.schema import INDEX_DIR_NAME
from engram_ros.core.storage.schema import MARKER_NAME

_LOG = logging.getLogger(__name__)


class BackupError(RuntimeError):
    """A backup cannot be made; the message says why (the source store is never changed)."""


@dataclass
class BackupReport:
    """What a backup holds."""

    target: Path
    engrams: int = 0
    evidence_files: int = 0
    #: Evidence references dropped: their files were deleted by the running memory between
    #: the snapshot and the copy.
    evidence_dropped: int = 0
    audit_files: int = 0


def backup_store(source: Path | str, target: Path | str) -> BackupReport:
    """Copy the store in ``source`` to the new directory ``target`` (see the module doc).

    :raises BackupError: when ``source`` is not a store or ``target`` exists and is not empty.
    """
    source, target = Path(source).absolute(), Path(target).absolute()
    _check(source, target)
    report = BackupReport(target)
    try:
        private_dir(target)
        write_private(target / MARKER_NAME, (source / MARKER_NAME).read_bytes())
        private_dir(target / INDEX_DIR_NAME)
        evidence_src, evidence_dst = source / EVIDENCE_DIR_NAME, target / EVIDENCE_DIR_NAME
        private_dir(evidence_dst)
        early = _copy_tree(evidence_src, evidence_dst)
        with contextlib.closing(_snapshot(source / DATABASE_NAME,
                                          target / DATABASE_NAME)) as conn:
            report.engrams = conn.execute('SELECT COUNT(*) FROM engrams').fetchone()[0]
            report.evidence_files, report.evidence_dropped = _settle_evidence(
                conn, evidence_src, evidence_dst, early)
            conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        report.audit_files = _copy_audit(source, target)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f'backup of {str(source)!r} to {str(target)!r} failed: {exc}; '
                          f'the store is unchanged, delete {str(target)!r}') from exc
    _LOG.info('backup of %s: %d engrams, %d evidence files (%d dropped), %d audit files -> %s',
              source, report.engrams, report.evidence_files, report.evidence_dropped,
              report.audit_files, target)
    return report


def _check(source: Path, target: Path) -> None:
    def refuse(what: str) -> BackupError:
        return BackupError(f'cannot back up {str(source)!r}: {what}')

    marker = source / MARKER_NAME
    if not marker.is_file() or not (source / DATABASE_NAME).is_file():
        raise refuse(f'not a store (no {MARKER_NAME} marker or no {DATABASE_NAME})')
    try:
        check_marker(marker, lambda what: StoreOpenError(what))
    except StoreOpenError as exc:
        raise refuse(str(exc)) from None
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f'the backup directory {str(target)!r} exists and is not empty; '
                          'give a new one')
    if target == source or target.is_relative_to(source):
        raise BackupError(f'the backup directory {str(target)!r} is inside the store')


def _snapshot(db: Path, copy: Path) -> sqlite3.Connection:
    """The database at one instant, copied by the online backup API; a connection to the copy."""
    os.close(open_private(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    # Read-write but query-only: a read-only connection to a closed WAL store would leave
    # -wal/-shm files behind, which the last read-write connection removes when it closes.
    src = sqlite3.connect(str(db), timeout=30.0)
    src.execute('PRAGMA query_only = ON')
    dst = sqlite3.connect(str(copy), isolation_level=None)
    try:
        src.backup(dst)    # pages=-1: all in one step, so one consistent snapshot
    except BaseException:
        dst.close()
        raise
    finally:
        src.close()
    return dst


def _copy_file(src: Path, dst: Path) -> None:
    private_dir(dst.parent)
    with open(src, 'rb') as fin, os.fdopen(open_private(dst), 'wb') as fout:
        shutil.copyfileobj(fin, fout)
    st = os.stat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))   # retention counts from the mtime


def _copy_tree(src: Path, dst: Path) -> set[str]:
    """Copy the regular files under ``src`` (no symlinks, no temporary files); their relative
    paths. A file deleted meanwhile is skipped."""
    copied = set()
    for folder, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            path = Path(folder) / name
            if name.startswith('.') or path.is_symlink():
                continue
            relative = path.relative_to(src).as_posix()
            with contextlib.suppress(FileNotFoundError):
                _copy_file(path, dst / relative)
                copied.add(relative)
    return copied


def _settle_evidence(conn: sqlite3.Connection, src: Path, dst: Path,
                     early: set[str]) -> tuple[int, int]:
    """Make the copied evidence exactly what the snapshot references; (files, dropped refs)."""
    refs = conn.execute('SELECT engram_id, uri, file FROM engram_evidence '
                        'WHERE file IS NOT NULL').fetchall()
    wanted = {file for _, _, file in refs}
    gone = set()
    for file in sorted(wanted - early):
        try:
            _copy_file(src / file, dst / file)
        except FileNotFoundError:
            gone.add(file)
    for file in early - wanted:
        (dst / file).unlink()
    dropped = [(engram_id, uri) for engram_id, uri, file in refs if file in gone]
    if dropped:
        _drop_references(conn, dropped)
        _LOG.warning('%d evidence files were deleted by the running memory during the backup; '
                     'their references are dropped from the backup', len(gone))
    return len(wanted - gone), len(dropped)


def _drop_references(conn: sqlite3.Connection, dropped: list[tuple[int, str]]) -> None:
    by_engram: dict[int, set[str]] = {}
    for engram_id, uri in dropped:
        by_engram.setdefault(int(engram_id), set()).add(uri)
    conn.execute('BEGIN IMMEDIATE')
    for engram_id, uris in by_engram.items():
        row = conn.execute('SELECT evidence FROM engrams WHERE id = ?', (engram_id,)).fetchone()
        kept = [u for u in json.loads(row[0]) if u not in uris]
        conn.execute('UPDATE engrams SET evidence = ? WHERE id = ?',
                     (json.dumps(kept), engram_id))
        conn.executemany('DELETE FROM engram_evidence WHERE engram_id = ? AND uri = ?',
                         [(engram_id, u) for u in uris])
    conn.execute('COMMIT')


def _copy_audit(source: Path, target: Path) -> int:
    """Copy the saved head, then ``audit.jsonl`` and its rotated files, each up to its last
    complete line. The head first: records written meanwhile only extend the copied log past
    it, which a check accepts, where a head newer than the log would read as a cut tail."""
    head = head_path(source / AUDIT_FILE_NAME)
    with contextlib.suppress(FileNotFoundError):
        write_private(target / head.name, head.read_bytes())
    names = [p.name for p in source.iterdir()
             if p.name == AUDIT_FILE_NAME or p.name.startswith(AUDIT_FILE_NAME + '.')
             and p.name[len(AUDIT_FILE_NAME) + 1:].isdigit()]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            data = (source / name).read_bytes()
            write_private(target / name, data[:data.rfind(b'\n') + 1])
    return len(names)
