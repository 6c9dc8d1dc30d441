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
#: Ids listed per record at most; the count is always exact.
MAX_IDS_PER_RECORD = 1000


class AuditError(RuntimeError):
    """The audit log cannot be opened or written; the memory must not run unaudited."""


@dataclass
class AuditVerification:
    """Outcome of :meth:`AuditLog.verify`; ``line`` is 1-based (0 when the log is intact)."""

    ok: bool
    records: int
    line: int = 0
    message: str = ''


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

    def __init__(self, path: Path | str | None, *, ram_records: int = 10000) -> None:
        """Open (or create) the log at ``path``; ``None`` keeps it in RAM.

        :raises AuditError: when the file cannot be read or created.
        """
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._ram: collections.deque[str] = collections.deque(maxlen=max(1, ram_records))
        self._seq = 0
        self._prev = GENESIS_PREV
        self._salt = ''
        try:
            if self.path is not None and self.path.exists() and self.path.stat().st_size > 0:
                self._resume()
        except (OSError, ValueError, KeyError) as exc:
            raise AuditError(f'cannot read the audit log {self.path}: {exc}') from exc
        if not self._salt:
            self._salt = secrets.token_hex(16)
            self.record('audit_start', 'engram_ros', {'salt': self._salt}, {})

    def _resume(self) -> None:
        assert self.path is not None
        with open(self.path, 'rb') as f:
            first = f.readline().decode('utf-8').rstrip('\n')
            last = _last_line(f)
        self._salt = str(json.loads(first)['params']['salt'])
        last_record = json.loads(last)
        self._seq = int(last_record['seq'])
        self._prev = line_hash(last)

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
            record = {'seq': self._seq + 1, 'time': time.time(), 'action': action,
                      'requester': requester or 'unknown', 'params': params or {},
                      'result': result or {}, 'prev': self._prev}
            record['hash'] = _self_hash(record)
            line = _canonical(record)
            if self.path is None:
                self._ram.append(line)
            else:
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    try:
                        os.write(fd, (line + '\n').encode('utf-8'))
                    finally:
                        os.close(fd)
                except OSError as exc:
                    raise AuditError(f'cannot append to the audit log {self.path}: {exc}; '
                                     f'the {action} was not audited') from exc
            self._seq += 1
            self._prev = line_hash(line)
            return record

    def lines(self) -> Iterator[str]:
        """The log's lines, oldest first (a snapshot for the RAM log)."""
        if self.path is None:
            with self._lock:
                snapshot = list(self._ram)
            yield from snapshot
            return
        with open(self.path, encoding='utf-8') as f:
            for line in f:
                yield line.rstrip('\n')

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
        try:
            lines = list(self.lines())
        except OSError as exc:
            return AuditVerification(False, 0, 1, f'cannot read {self.path}: {exc}')
        for n, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                seq, prev, own = int(record['seq']), str(record['prev']), str(record['hash'])
            except (ValueError, KeyError, TypeError) as exc:
                return AuditVerification(False, n - 1, n, f'line {n} is not an audit record '
                                                          f'({exc})')
            if own != _self_hash(record):
                return AuditVerification(False, n - 1, n, f'line {n} was altered: its content '
                                                          'does not match its hash')
            if prev_hash is None:
                # The first line of a file chains to the genesis; the RAM window may start later.
                if self.path is not None and (prev != GENESIS_PREV or seq != 1):
                    return AuditVerification(False, 0, 1, 'line 1 is not the start of the log '
                                                          '(lines were removed before it)')
            elif prev != prev_hash:
                return AuditVerification(False, n - 2, n - 1,
                                         f'line {n - 1} was altered or line(s) were inserted or '
                                         f'removed after it: line {n} chains to another record')
            elif seq != (prev_seq or 0) + 1:
                return AuditVerification(False, n - 1, n, f'line {n} has seq {seq}, expected '
                                                          f'{(prev_seq or 0) + 1}')
            prev_hash, prev_seq = line_hash(line), seq
        if head is not None and head[0] > 0:
            if prev_seq is None or prev_seq < head[0]:
                return AuditVerification(False, n, n + 1,
                                         f'the log ends at seq {prev_seq or 0} but the store '
                                         f'recorded seq {head[0]}: lines were cut off the end')
            if prev_seq == head[0] and prev_hash != head[1]:
                return AuditVerification(False, n - 1, n, f'line {n} was altered: it is not the '
                                                          'last record the store saw')
        return AuditVerification(True, n, 0, f'{n} records, chain intact')


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


__all__ = ['AUDIT_FILE_NAME', 'AuditError', 'AuditLog', 'AuditVerification', 'id_summary',
           'line_hash']
