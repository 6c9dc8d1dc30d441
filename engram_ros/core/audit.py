"""Append-only, hash-chained audit log: who asked the memory what, and what it answered.

Every recall, list, get, consolidation, edit, forget, import and export is appended as one JSON
line to ``<store>/audit.jsonl``. Each record carries

* ``seq`` (1, 2, ...), ``time`` [s since the Unix epoch], ``action``, ``requester`` (a free
  string the caller gives; ``'unknown'`` when it gives none),
* ``params``: a summary of the request, ``result``: a summary of the answer (ids returned or
  changed, counts),
* ``prev``: the SHA-256 (hex) of the previous record's line (64 zeros for the first record),
* ``hash``: the SHA-256 of the record's own canonical JSON without ``hash``.

Changing a line breaks its own ``hash``; rewriting a line with a matching ``hash`` breaks the
next line's ``prev``. :meth:`AuditLog.verify` reports the first line that no longer holds.
Cutting lines off the end cannot be seen from the log alone; :class:`MemoryStore` therefore
records the last ``seq``/hash in the database at close (``audit_head``), which ``verify`` can
compare against.

Data minimisation: the log says who did what to which engram ids, never what the memory holds.
Strings from requests (free text, tags, labels) are written as salted digests
(:meth:`AuditLog.digest`, ``'h:<16 hex>'``), so forgetting an engram leaves none of its words in
the log, while "did anyone ask for X?" can still be answered by digesting X with the log's salt
(kept in the first record).

Rotation keeps the log small on a robot that runs for months: once the file reaches
``max_bytes`` it becomes ``audit.jsonl.1`` (older files shift to ``.2``, ``.3``, ...; beyond
``keep_files`` the oldest is deleted, 0 keeps all) and the new file starts with an
``audit_rotate`` record that carries the salt and chains to the last record of the old file, so
the chain and the sequence run unbroken across files. :meth:`AuditLog.verify` reads the files
oldest first; a log whose oldest files were rotated out must start with an ``audit_rotate``
record (it says from which ``seq`` on the history is kept), so lines removed from the start of
a file are still found. A crash between the rename and the first record of the new file is
repaired at the next open.

A RAM-only memory (no consent to persist) keeps its audit log in RAM: the last
``ram_records`` records, verifiable within that window, gone at shutdown like the memory.
Thread-safe.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Iterable
from typing import Iterator

_LOG = logging.getLogger(__name__)

AUDIT_FILE_NAME = 'audit.jsonl'
GENESIS_PREV = '0' * 64
#: Defaults of the rotation: 64 MiB per file, 8 rotated files kept (~0.5 GiB in all).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_KEEP_FILES = 8
#: The first record of every file after a rotation.
ROTATE_ACTION = 'audit_rotate'
#: Ids listed per record at most; the count is always exact.
MAX_IDS_PER_RECORD = 1000


class AuditError(RuntimeError):
    """The audit log cannot be opened or written; the memory must not run unaudited."""


@dataclass
class AuditVerification:
    """Outcome of :meth:`AuditLog.verify`; ``line`` is 1-based over all the log's files, oldest
    first (0 when the log is intact)."""

    ok: bool
    records: int
    line: int = 0
    message: str = ''
    #: The file and the line in it of the first bad line ('' and 0 when intact).
    file: str = ''
    file_line: int = 0


def line_hash(line: str) -> str:
    """SHA-256 hex of one log line (without its newline)."""
    return hashlib.sha256(line.encode('utf-8')).hexdigest()


def _canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(',', ':'), ensure_ascii=True)


def _self_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != 'hash'}
    return hashlib.sha256(_canonical(body).encode('utf-8')).hexdigest()


class AuditLog:
    """The audit log of one memory: a JSON-lines file, or a bounded window in RAM."""

    def __init__(self, path: Path | str | None, *, ram_records: int = 10000,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 keep_files: int = DEFAULT_KEEP_FILES) -> None:
        """Open (or create) the log at ``path``; ``None`` keeps it in RAM.

        :param max_bytes: rotate the file once it is this large (see the module docstring).
        :param keep_files: rotated files kept; 0 keeps every one.
        :raises AuditError: when the file cannot be read or created.
        :raises ValueError: for ``max_bytes < 1024`` or ``keep_files < 0``.
        """
        if max_bytes < 1024 or keep_files < 0:
            raise ValueError(f'max_bytes={max_bytes} must be >= 1024 and keep_files='
                             f'{keep_files} >= 0 (0 keeps every rotated file)')
        self.path = None if path is None else Path(path)
        self.max_bytes = int(max_bytes)
        self.keep_files = int(keep_files)
        self._lock = threading.Lock()
        self._ram: collections.deque[str] = collections.deque(maxlen=max(1, ram_records))
        self._seq = 0
        self._prev = GENESIS_PREV
        self._salt = ''
        self._size = 0
        rotated_tail = False
        try:
            if self.path is not None and self.path.exists() and self.path.stat().st_size > 0:
                self._resume(self.path)
                self._size = self.path.stat().st_size
            elif self.path is not None and self._rotated(1).exists():
                # A crash after the rename, before the new file's first record: go on from there.
                self._resume(self._rotated(1))
                rotated_tail = True
        except (OSError, ValueError, KeyError) as exc:
            raise AuditError(f'cannot read the audit log {self.path}: {exc}') from exc
        if rotated_tail:
            with self._lock:
                self._append(self._new_record(ROTATE_ACTION, 'engram_ros', self._rotate_params(),
                                              {}), 'start the new audit file')
        elif not self._salt:
            self._salt = secrets.token_hex(16)
            self.record('audit_start', 'engram_ros', {'salt': self._salt}, {})

    def _resume(self, path: Path) -> None:
        with open(path, 'rb') as f:
            first = f.readline().decode('utf-8').rstrip('\n')
            last = _last_line(f)
        self._salt = str(json.loads(first)['params']['salt'])
        last_record = json.loads(last)
        self._seq = int(last_record['seq'])
        self._prev = line_hash(last)

    def _rotated(self, n: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f'{self.path.name}.{n}')

    def files(self) -> list[Path]:
        """The log's files that exist, oldest first (rotated ones, then the active one)."""
        if self.path is None:
            return []
        rotated = []
        n = 1
        while self._rotated(n).exists():
            rotated.append(self._rotated(n))
            n += 1
        return rotated[::-1] + ([self.path] if self.path.exists() else [])

    def _rotate_params(self) -> dict[str, Any]:
        return {'salt': self._salt, 'previous': self._rotated(1).name}

    def _rotate(self) -> None:
        """Active file -> ``.1`` (older ones shift, the oldest past ``keep_files`` is deleted);
        the new file starts with an ``audit_rotate`` record. Under ``_lock``."""
        assert self.path is not None
        try:
            existing = len(self.files()) - 1
            if self.keep_files and existing >= self.keep_files:
                for n in range(self.keep_files, existing + 1):
                    self._rotated(n).unlink(missing_ok=True)
                existing = self.keep_files - 1
            for n in range(existing, 0, -1):
                os.replace(self._rotated(n), self._rotated(n + 1))
            os.replace(self.path, self._rotated(1))
        except OSError as exc:
            _LOG.warning('cannot rotate the audit log %s (%s); it keeps growing', self.path, exc)
            return
        self._size = 0
        _LOG.info('audit log rotated at seq %d into %s', self._seq, self._rotated(1))
        self._append(self._new_record(ROTATE_ACTION, 'engram_ros', self._rotate_params(), {}),
                     'start the new audit file')

    @property
    def persistent(self) -> bool:
        return self.path is not None

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash of the last line)``: what a truncation check compares against."""
        with self._lock:
            return self._seq, self._prev

    def digest(self, value: str) -> str:
        """A salted digest of a request string: comparable, not readable."""
        h = hashlib.sha256((self._salt + '\0' + value).encode('utf-8')).hexdigest()
        return 'h:' + h[:16]

    def digests(self, values: Iterable[str]) -> list[str]:
        return [self.digest(v) for v in values]

    def record(self, action: str, requester: str = 'unknown',
               params: dict[str, Any] | None = None,
               result: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append one record and return it.

        :raises AuditError: when the file cannot be written (the caller's action has happened;
            the error says that it is unaudited).
        """
        with self._lock:
            record = self._new_record(action, requester, params, result)
            self._append(record, f'the {action} was not audited')
            if self.path is not None and self._size >= self.max_bytes:
                self._rotate()
            return record

    def _new_record(self, action: str, requester: str, params: dict[str, Any] | None,
                    result: dict[str, Any] | None) -> dict[str, Any]:
        record = {'seq': self._seq + 1, 'time': time.time(), 'action': action,
                  'requester': requester or 'unknown', 'params': params or {},
                  'result': result or {}, 'prev': self._prev}
        record['hash'] = _self_hash(record)
        return record

    def _append(self, record: dict[str, Any], unaudited: str) -> None:
        """Write one record and advance the chain (under ``_lock``)."""
        line = _canonical(record)
        if self.path is None:
            self._ram.append(line)
        else:
            data = (line + '\n').encode('utf-8')
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(f'cannot append to the audit log {self.path}: {exc}; '
                                 f'{unaudited}') from exc
            self._size += len(data)
        self._seq += 1
        self._prev = line_hash(line)

    def lines(self) -> Iterator[str]:
        """The log's lines, oldest first, across rotated files (a snapshot for the RAM log)."""
        for _, _, line in self._located_lines():
            yield line

    def _located_lines(self) -> Iterator[tuple[str, int, str]]:
        """``(file name, line number in it, line)``, oldest first."""
        if self.path is None:
            with self._lock:
                snapshot = list(self._ram)
            for n, line in enumerate(snapshot, start=1):
                yield 'RAM', n, line
            return
        for path in self.files():
            with open(path, encoding='utf-8') as f:
                for n, line in enumerate(f, start=1):
                    yield path.name, n, line.rstrip('\n')

    def records(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            yield json.loads(line)

    def verify(self, head: tuple[int, str] | None = None) -> AuditVerification:
        """Check every line's own hash, the chain and the sequence; report the first bad line.

        :param head: ``(seq, hash)`` the last line must have (e.g. the store's ``audit_head``);
            ``None`` skips the truncation check.
        """
        prev_hash: str | None = None
        prev_seq: int | None = None
        n = 0
        rotated_out = 0
        try:
            lines = list(self._located_lines())
        except OSError as exc:
            return AuditVerification(False, 0, 1, f'cannot read {self.path}: {exc}')

        def bad(index: int, text: str) -> AuditVerification:
            name, k, _ = lines[index - 1]
            return AuditVerification(False, index - 1, index, f'line {k} of {name} {text}',
                                     file=name, file_line=k)

        for n, (_, _, line) in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                seq, prev, own = int(record['seq']), str(record['prev']), str(record['hash'])
            except (ValueError, KeyError, TypeError) as exc:
                return bad(n, f'is not an audit record ({exc})')
            if own != _self_hash(record):
                return bad(n, 'was altered: its content does not match its hash')
            if prev_hash is None:
                # A log starts at the genesis, or (older files rotated out) with a rotation
                # record; the RAM window may start anywhere.
                if self.path is not None and (prev != GENESIS_PREV or seq != 1):
                    if record.get('action') != ROTATE_ACTION:
                        return bad(n, 'is not the start of the log (lines were removed '
                                      'before it)')
                    rotated_out = seq - 1
            elif prev != prev_hash:
                return bad(n - 1, 'was altered, or line(s) were inserted or removed after '
                                  'it: the next record chains to another one')
            elif seq != (prev_seq or 0) + 1:
                return bad(n, f'has seq {seq}, expected {(prev_seq or 0) + 1}')
            prev_hash, prev_seq = line_hash(line), seq
        if head is not None and head[0] > 0:
            if prev_seq is None or prev_seq < head[0]:
                return AuditVerification(False, n, n + 1,
                                         f'the log ends at seq {prev_seq or 0} but the store '
                                         f'recorded seq {head[0]}: lines were cut off the end')
            if prev_seq == head[0] and prev_hash != head[1]:
                return bad(n, 'was altered: it is not the last record the store saw')
        files = len({name for name, _, _ in lines})
        message = f'{n} records, chain intact'
        if files > 1:
            message += f' across {files} files'
        if rotated_out:
            message += f' (records 1 to {rotated_out} were rotated out)'
        return AuditVerification(True, n, 0, message)


def id_summary(ids: Iterable[int]) -> dict[str, Any]:
    """``{'count': n, 'ids': [...]}`` with at most :data:`MAX_IDS_PER_RECORD` ids listed."""
    ids = [int(i) for i in ids]
    out: dict[str, Any] = {'count': len(ids), 'ids': ids[:MAX_IDS_PER_RECORD]}
    if len(ids) > MAX_IDS_PER_RECORD:
        out['ids_truncated'] = True
    return out


def _last_line(f) -> str:
    """The last non-empty line of a binary file opened for reading."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    block = 4096
    data = b''
    pos = end
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
        stripped = data.rstrip(b'\n')
        if b'\n' in stripped:
            return stripped.rsplit(b'\n', 1)[1].decode('utf-8')
    return data.rstrip(b'\n').decode('utf-8')


__all__ = ['AUDIT_FILE_NAME', 'DEFAULT_KEEP_FILES', 'DEFAULT_MAX_BYTES', 'AuditError', 'AuditLog',
           'AuditVerification', 'id_summary', 'line_hash']
