"""Append-only, chained audit log: who asked the memory what, and what it answered.

Every recall, list, get, consolidation, edit, forget, import and export is appended as one JSON
line to ``<store>/audit.jsonl``. Each record carries ``seq`` (1, 2, ...), ``time`` [s since the
Unix epoch], ``action``, ``requester`` (a free string the caller gives; ``'unknown'`` when it
gives none), ``params`` (a summary of the request), ``result`` (a summary of the answer: ids
returned or changed, counts), ``prev`` (the SHA-256 of the previous line; 64 zeros for the
first) and its seal (:mod:`engram_ros.core.audit_chain` has the format and the check).

Keyed or not. With the operator's key (:mod:`engram_ros.core.keys`, a file outside the store)
every record is sealed with an HMAC-SHA256 under the audit sub-key: someone who can write the
store but cannot read the key cannot rewrite history unseen (recomputing plain hashes, as
they can, breaks the MACs). Without a key the seal is a plain SHA-256: it detects accidental
damage only. A keyed log cannot be extended without its key (:class:`AuditError` at open); an
unkeyed one that is opened with a key goes on keyed from an ``audit_keyed`` record on.

Truncation and deletion. After every record the head (last seq and hash, the oldest seq kept,
the number of files and of gaps) is saved beside the log, sealed the same way. When a log is
opened whose end or files disagree with its saved head (a crash that cut the tail, a deleted
rotated file, tampering) the memory still starts: it appends an ``audit_gap`` record, chained
to the saved head, that names what is missing; :attr:`AuditLog.gaps_found` says so (the node
reports ERROR), and every later check reports the gap. Checking (``engram verify``,
:func:`~engram_ros.core.audit_chain.verify_log`) only reads.

Data minimisation: the log says who did what to which engram ids, never what the memory holds.
Strings from requests (free text, tags, labels) are written as digests (:meth:`AuditLog.digest`,
``'h:<16 hex>'``): keyed, an HMAC under the digest sub-key, so without the key the small tag
vocabulary cannot be tried word by word; unkeyed, a SHA-256 salted with a salt kept in clear in
the log (comparable, not private).

Rotation keeps the log small on a robot that runs for months: once the file reaches
``max_bytes`` it becomes ``audit.jsonl.1`` (older files shift to ``.2``, ``.3``, ...; beyond
``keep_files`` the oldest is deleted, 0 keeps all) and the new file starts with an
``audit_rotate`` record chained to the last record of the old file, so the chain and the
sequence run unbroken across files. A crash between the rename and the first record of the new
file is repaired at the next open.

A RAM-only memory (no consent to persist) keeps its audit log in RAM: the last
``ram_records`` records, verifiable within that window, gone at shutdown like the memory.
Thread-safe.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import weakref
from pathlib import Path
from typing import Any
from typing import Iterable
from typing import Iterator

from engram_ros.core.audit_chain import AuditVerification
from engram_ros.core.audit_chain import canonical
from engram_ros.core.audit_chain import check_lines
from engram_ros.core.audit_chain import first_line
from engram_ros.core.audit_chain import GAP_ACTION
from engram_ros.core.audit_chain import GENESIS_PREV
from engram_ros.core.audit_chain import Head
from engram_ros.core.audit_chain import head_path
from engram_ros.core.audit_chain import legacy_head
from engram_ros.core.audit_chain import line_hash
from engram_ros.core.audit_chain import located_lines
from engram_ros.core.audit_chain import log_files
from engram_ros.core.audit_chain import read_head
from engram_ros.core.audit_chain import ROTATE_ACTION
from engram_ros.core.audit_chain import rotated_numbers
from engram_ros.core.audit_chain import rotated_path
from engram_ros.core.audit_chain import seal
from engram_ros.core.audit_chain import seal_ok
from engram_ros.core.audit_chain import tail_lines
from engram_ros.core.audit_chain import verify_log
from engram_ros.core.audit_chain import write_head
from engram_ros.core.audit_chain import write_head_slot
from engram_ros.core.keys import AuditKeys

_LOG = logging.getLogger(__name__)

AUDIT_FILE_NAME = 'audit.jsonl'
#: Defaults of the rotation: 64 MiB per file, 8 rotated files kept (~0.5 GiB in all).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_KEEP_FILES = 8
#: Ids listed per record at most; the count is always exact.
MAX_IDS_PER_RECORD = 1000
#: Records past the saved head that a crash between a record and its head can leave.
_HEAD_LAG = 1000


class AuditError(RuntimeError):
    """The audit log cannot be opened or written; the memory must not run unaudited."""


class AuditLog:
    """The audit log of one memory: JSON-lines files, or a bounded window in RAM."""

    def __init__(self, path: Path | str | None, *, key: AuditKeys | None = None,
                 db_head: str | None = None, ram_records: int = 10000,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 keep_files: int = DEFAULT_KEEP_FILES) -> None:
        """Open (or create) the log at ``path``; ``None`` keeps it in RAM.

        :param key: the audit sub-keys (:meth:`engram_ros.core.keys.MasterKey.audit_keys`);
            ``None``: unkeyed (detects accidental damage only).
        :param db_head: the head a store's database kept before the saved head file existed
            (``"<seq>:<hash>"``), compared when there is no saved head.
        :param max_bytes: rotate the file once it is this large (see the module docstring).
        :param keep_files: rotated files kept; 0 keeps every one.
        :raises AuditError: when the files cannot be read or created, or the log is keyed and
            ``key`` is not its key (nothing is changed then).
        :raises ValueError: for ``max_bytes < 1024`` or ``keep_files < 0``.
        """
        if max_bytes < 1024 or keep_files < 0:
            raise ValueError(f'max_bytes={max_bytes} must be >= 1024 and keep_files='
                             f'{keep_files} >= 0 (0 keeps every rotated file)')
        self.path = None if path is None else Path(path)
        self.key = key
        self.max_bytes = int(max_bytes)
        self.keep_files = int(keep_files)
        self._lock = threading.Lock()
        self._ram: collections.deque[str] = collections.deque(maxlen=max(1, ram_records))
        self._seq = 0
        self._prev = GENESIS_PREV
        self._salt = ''
        self._size = 0
        self._first = 1
        self._files = 1
        self._gaps = 0
        #: What was found missing when this process opened the log (a gap record was written
        #: for a cut or rewritten end; a deleted rotated file is named at every open while it
        #: is missing); non-empty means the node reports ERROR.
        self.gaps_found: list[str] = []
        #: Open descriptors, kept between records (opening and renaming a file per record
        #: was most of a recall's cost): 'log' (O_APPEND on the active file) and 'head' (the
        #: head file, updated in place); :meth:`close` (or garbage collection) closes them.
        self._fds: dict[str, int] = {}
        self._head_slot = 0
        weakref.finalize(self, _close_fds, self._fds)
        with self._lock:
            if self.path is None:
                self._start()
                return
            try:
                self._open_files(db_head)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise AuditError(f'cannot read the audit log {self.path}: {exc}') from exc

    # ----------------------------------------------------------------------------- opening
    def _open_files(self, db_head: str | None) -> None:
        assert self.path is not None
        files, holes = log_files(self.path)
        active = self.path.exists() and self.path.stat().st_size > 0
        rotated_tail = not active and rotated_path(self.path, 1).exists()
        tail_file = self.path if active else (rotated_path(self.path, 1) if rotated_tail
                                              else None)
        last = None
        if tail_file is not None:
            last_line = tail_lines(tail_file, 1)[0]
            last = json.loads(last_line)
            self._seq, self._prev = int(last['seq']), line_hash(last_line)
            self._salt = str((json.loads(first_line(tail_file)).get('params') or {})
                             .get('salt', ''))
            self._size = self.path.stat().st_size if active else 0
        if files:
            self._first = int(json.loads(first_line(files[0]))['seq'])
        self._files = len(files) + (0 if self.path.exists() else 1)
        self._check_key(last)
        reasons, saved = self._compare_head(last, tail_file, db_head)
        if rotated_tail:
            self._append(self._new_record(ROTATE_ACTION, 'engram_ros', self._rotate_params(),
                                          {}), 'start the new audit file')
        if reasons:
            self._append_gap(reasons, saved)
        for name in holes:      # reported at every open while the file is missing
            self.gaps_found.append(f'{name} is missing (a rotated file was deleted)')
            _LOG.error('audit log %s: %s is missing (a rotated file was deleted)', self.path,
                       name)
        if last is None and not reasons:
            self._start()
        elif last is not None and self.key is not None and 'mac' not in last:
            self._append(self._new_record('audit_keyed', 'engram_ros',
                                          {'key_id': self.key.key_id}, {}),
                         'the audit log is not keyed')
        self._save_head()

    def _start(self) -> None:
        if self.key is not None:
            params = {'key_id': self.key.key_id}
        else:
            self._salt = secrets.token_hex(16)
            params = {'salt': self._salt}
        self._append(self._new_record('audit_start', 'engram_ros', params, {}),
                     'the audit log was not started')

    def _check_key(self, last: dict | None) -> None:
        reason = _key_refusal(self.path, last, self.key)
        if reason:
            raise AuditError(reason)

    def _compare_head(self, last: dict | None, tail_file: Path | None,
                      db_head: str | None) -> tuple[list[str], Head | None]:
        """Why the log disagrees with its saved head (empty: it agrees), and that head."""
        assert self.path is not None
        reasons: list[str] = []
        head, why = read_head(self.path, self.key, plain_ok=last is None or 'mac' not in last)
        if head is None and why == 'missing' and (last is None or 'v' not in last):
            head = legacy_head(db_head)     # a log from before the saved head file
        elif head is None:
            reasons.append(f'the saved head {head_path(self.path).name} is {why}')
        if head is None:
            return reasons, None
        self._gaps = head.gaps
        if head.seq > self._seq:
            reasons.append(f'the log ended at seq {self._seq} but its saved head said seq '
                           f'{head.seq}: {head.seq - self._seq} record(s) were cut off the end')
        elif head.seq == self._seq and head.hash != self._prev:
            reasons.append(f'the record with seq {head.seq} is not the one the saved head '
                           'names: the end of the log was rewritten')
        elif head.seq < self._seq and not self._reaches(tail_file, head):
            reasons.append(f'the record with seq {head.seq} is not the one the saved head '
                           'names: the end of the log was rewritten')
        if head.first and self._first > head.first:
            reasons.append(f'the log started at seq {self._first} but its saved head said '
                           f'{head.first}: the oldest file(s) were deleted')
        return reasons, head

    def _reaches(self, tail_file: Path | None, head: Head) -> bool:
        """Whether the records after ``head`` (a crash before the head was saved) chain to it."""
        lag = self._seq - head.seq
        if tail_file is None or lag > _HEAD_LAG:
            return False
        for line in tail_lines(tail_file, lag + 1):
            if int(json.loads(line)['seq']) == head.seq:
                return line_hash(line) == head.hash
        return False

    def _append_gap(self, reasons: list[str], saved: Head | None) -> None:
        """A gap record chained to the saved head (or to the log's end when there is none)."""
        reason = '; '.join(reasons)
        params: dict[str, Any] = {'reason': reason,
                                  'log_end': {'seq': self._seq, 'hash': self._prev}}
        if saved is not None:
            params['saved_head'] = {'seq': saved.seq, 'hash': saved.hash}
            self._seq = max(self._seq, saved.seq)
            self._prev = saved.hash
        self._append(self._new_record(GAP_ACTION, 'engram_ros', params, {}),
                     'the gap was not recorded')
        self._gaps += 1
        self.gaps_found.append(reason)
        _LOG.error('audit log %s: %s; a gap record (seq %d) now says so', self.path, reason,
                   self._seq)

    # ----------------------------------------------------------------------------- files
    def files(self) -> list[Path]:
        """The log's files that exist, oldest first (rotated ones, then the active one)."""
        return [] if self.path is None else log_files(self.path)[0]

    def _rotate_params(self) -> dict[str, Any]:
        assert self.path is not None
        params: dict[str, Any] = {'previous': rotated_path(self.path, 1).name}
        if self._salt:
            params['salt'] = self._salt
        return params

    def _rotate(self) -> None:
        """Active file -> ``.1`` (older ones shift, those past ``keep_files`` are deleted);
        the new file starts with an ``audit_rotate`` record. Under ``_lock``."""
        assert self.path is not None
        path = self.path
        try:
            numbers = rotated_numbers(path)
            keep = [n for n in numbers if not self.keep_files or n < self.keep_files]
            drop = [n for n in numbers if n not in keep]
            if drop:
                # The head names the new oldest record before the old ones go, so a crash in
                # between leaves more history than the head says, never less.
                oldest = rotated_path(path, max(keep)) if keep else path
                self._first = int(json.loads(first_line(oldest))['seq'])
                self._save_head()
                for n in drop:
                    rotated_path(path, n).unlink(missing_ok=True)
            for n in sorted(keep, reverse=True):
                os.replace(rotated_path(path, n), rotated_path(path, n + 1))
            _close_fds(self._fds)       # the names move: reopen after the rotation
            os.replace(path, rotated_path(path, 1))
        except (OSError, ValueError, KeyError) as exc:
            _LOG.warning('cannot rotate the audit log %s (%s); it keeps growing', path, exc)
            return
        self._size = 0
        self._files = len(keep) + 2
        _LOG.info('audit log rotated at seq %d into %s', self._seq, rotated_path(path, 1))
        self._append(self._new_record(ROTATE_ACTION, 'engram_ros', self._rotate_params(), {}),
                     'start the new audit file')

    def _save_head(self) -> None:
        """Save the head: the first time a whole new file (atomically), then one slot in place,
        the two slots in turn (a write cut short leaves the other; see audit_chain)."""
        if self.path is None:
            return
        head = Head(self._seq, self._prev, self._first, self._files, self._gaps)
        try:
            fd = self._fds.get('head')
            if fd is None:
                write_head(self.path, head, self.key)
                self._fds['head'] = os.open(head_path(self.path), os.O_WRONLY)
                self._head_slot = 0
            else:
                self._head_slot ^= 1
                write_head_slot(fd, self._head_slot, head, self.key)
        except OSError as exc:
            _close_fds(self._fds, 'head')    # the next record starts a fresh file
            raise AuditError(f'cannot save the audit head beside {self.path}: {exc}') from exc

    def close(self) -> None:
        """Close the files kept open between records (a later record opens them again)."""
        with self._lock:
            _close_fds(self._fds)

    # ----------------------------------------------------------------------------- writing
    @property
    def persistent(self) -> bool:
        return self.path is not None

    @property
    def keyed(self) -> bool:
        return self.key is not None

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash of the last line)``: what a truncation check compares against."""
        with self._lock:
            return self._seq, self._prev

    @property
    def gaps(self) -> int:
        """Gap records the log holds (as its saved head counts them)."""
        with self._lock:
            return self._gaps

    def digest(self, value: str) -> str:
        """A digest of a request string: comparable, not readable (keyed: an HMAC)."""
        if self.key is not None:
            h = hmac.new(self.key.digest, value.encode('utf-8'), hashlib.sha256).hexdigest()
        else:
            h = hashlib.sha256((self._salt + '\0' + value).encode('utf-8')).hexdigest()
        return 'h:' + h[:16]

    def digests(self, values: Iterable[str]) -> list[str]:
        return [self.digest(v) for v in values]

    def record(self, action: str, requester: str = 'unknown',
               params: dict[str, Any] | None = None,
               result: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append one record (and save the head) and return it.

        :raises AuditError: when the file cannot be written (the caller's action has happened;
            the error says that it is unaudited).
        """
        with self._lock:
            record = self._new_record(action, requester, params, result)
            self._append(record, f'the {action} was not audited')
            if self.path is not None and self._size >= self.max_bytes:
                self._rotate()
            self._save_head()
            return record

    def _new_record(self, action: str, requester: str, params: dict[str, Any] | None,
                    result: dict[str, Any] | None) -> dict[str, Any]:
        record = {'seq': self._seq + 1, 'time': time.time(), 'action': action,
                  'requester': requester or 'unknown', 'params': params or {},
                  'result': result or {}, 'prev': self._prev, 'v': 2}
        return seal(record, self.key)

    def _append(self, record: dict[str, Any], unaudited: str) -> None:
        """Write one record and advance the chain (under ``_lock``)."""
        line = canonical(record)
        if self.path is None:
            self._ram.append(line)
        else:
            data = (line + '\n').encode('utf-8')
            try:
                fd = self._fds.get('log')
                if fd is None:
                    fd = self._fds['log'] = os.open(
                        self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                if os.write(fd, data) != len(data):
                    raise OSError(f'short write of {len(data)} bytes')
            except OSError as exc:
                _close_fds(self._fds, 'log')
                raise AuditError(f'cannot append to the audit log {self.path}: {exc}; '
                                 f'{unaudited}') from exc
            self._size += len(data)
        self._seq = int(record['seq'])
        self._prev = line_hash(line)

    # ----------------------------------------------------------------------------- reading
    def lines(self) -> Iterator[str]:
        """The log's lines, oldest first, across rotated files (a snapshot for the RAM log)."""
        for _, _, line in self._located_lines():
            yield line

    def _located_lines(self) -> Iterator[tuple[str, int, str]]:
        if self.path is None:
            with self._lock:
                snapshot = list(self._ram)
            for n, line in enumerate(snapshot, start=1):
                yield 'RAM', n, line
            return
        yield from located_lines(self.files())

    def records(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            yield json.loads(line)

    def verify(self) -> AuditVerification:
        """Check every record's seal, the chain, the sequence, the files and the saved head
        (reads only); gaps are reported, the first altered line stops the check."""
        if self.path is None:
            return check_lines(list(self._located_lines()), self.key, persistent=False)
        return verify_log(self.path, self.key)


def _close_fds(fds: dict[str, int], *names: str) -> None:
    """Close the named descriptors of ``fds`` (all without names) and forget them."""
    for name in names or tuple(fds):
        fd = fds.pop(name, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass    # already gone: nothing left to release


def check_key(path: Path | str, key: AuditKeys | None) -> None:
    """Refuse, before anything is opened, a keyed log without its key (read-only).

    :raises AuditError: when the log at ``path`` is keyed and ``key`` is not its key.
    """
    path = Path(path)
    tail = path if path.exists() and path.stat().st_size > 0 else rotated_path(path, 1)
    try:
        last = json.loads(tail_lines(tail, 1)[0]) if tail.exists() else None
    except (OSError, ValueError, IndexError) as exc:
        raise AuditError(f'cannot read the audit log {path}: {exc}') from exc
    reason = _key_refusal(path, last, key)
    if reason:
        raise AuditError(reason)


def _key_refusal(path: Path | None, last: dict | None, key: AuditKeys | None) -> str:
    if last is None or 'mac' not in last:
        return ''
    if key is None:
        return (f'the audit log {path} is keyed: give its key file (parameter audit_key_file, '
                'or engram --key FILE); without it the log cannot be extended. Nothing was '
                'changed')
    if not seal_ok(last, key):
        return (f'the last record of the audit log {path} does not match this key: the log is '
                'keyed with another key, or that record was altered (engram verify --key FILE '
                'says which). Nothing was changed')
    return ''


def id_summary(ids: Iterable[int]) -> dict[str, Any]:
    """``{'count': n, 'ids': [...]}`` with at most :data:`MAX_IDS_PER_RECORD` ids listed."""
    ids = [int(i) for i in ids]
    out: dict[str, Any] = {'count': len(ids), 'ids': ids[:MAX_IDS_PER_RECORD]}
    if len(ids) > MAX_IDS_PER_RECORD:
        out['ids_truncated'] = True
    return out


__all__ = ['AUDIT_FILE_NAME', 'DEFAULT_KEEP_FILES', 'DEFAULT_MAX_BYTES', 'AuditError', 'AuditLog',
           'AuditVerification', 'check_key', 'id_summary', 'line_hash', 'verify_log']
