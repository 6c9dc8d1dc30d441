"""The audit log's format on disk and its read-only check: records, the saved head, the files.

Kept apart from :class:`~engram_ros.core.audit.AuditLog` (which writes) so that checking a log
(``engram verify``) is a pure reader that never changes a byte of the store.

Records. One canonical JSON object per line: ``seq``, ``time``, ``action``, ``requester``,
``params``, ``result``, ``prev`` (SHA-256 of the previous line), ``v`` (2; absent in records of
the first format) and its seal: ``mac``, the HMAC-SHA256 of the record without its seal under
the audit sub-key (a keyed log), or ``hash``, its plain SHA-256 (an unkeyed log, which anyone
can recompute: it detects accidental damage only).

The saved head, ``audit.head`` beside the log, is saved after every record: the last ``seq``
and line hash, ``first`` (the seq of the oldest record kept, so deleting the
oldest file shows), ``files`` and ``gaps`` (gap records ever written), sealed like a record.
Cutting lines off the end, deleting a rotated file or replacing the head is therefore seen;
with a key, forging a matching head needs the key. The file holds two slots of
:data:`HEAD_SLOT` bytes (one head line each, padded with spaces); an open log overwrites them
in turn in place (one ``pwrite``, no new file per record) and a reader takes the newest slot
that is intact, so a write cut short by a crash leaves the previous head, which the log's end
still chains to. A file of one line (the first format) reads as one slot.

What a store alone cannot show is a rollback of log *and* head to an earlier state both
really had: compare the head ``engram verify`` prints with one kept elsewhere for that.

Gap records (``action: audit_gap``) are written when a log is opened whose end disagrees with
its saved head (a crash that cut the tail, or tampering): chained to the saved head, they name
what is missing, so the memory can go on while every later check reports the gap.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Iterable
from typing import Iterator

from engram_ros.core.keys import AuditKeys

GENESIS_PREV = '0' * 64
FORMAT_VERSION = 2
#: The first record of every file after a rotation.
ROTATE_ACTION = 'audit_rotate'
#: Written at open when the log's end and its saved head disagree.
GAP_ACTION = 'audit_gap'
HEAD_SUFFIX = '.head'
#: Bytes per slot of the head file (a sealed head line is about 230 bytes).
HEAD_SLOT = 512
UNKEYED_NOTE = 'unkeyed: detects accidental damage only'


@dataclass
class AuditVerification:
    """Outcome of a check; ``line`` is 1-based over all the log's files, oldest first (0 when
    nothing is wrong at a line)."""

    ok: bool
    records: int
    line: int = 0
    message: str = ''
    #: The file and the line in it of the first bad line ('' and 0 when intact).
    file: str = ''
    file_line: int = 0
    #: Every gap the log records or shows (cut tail, missing file, gap records).
    gaps: list[str] = field(default_factory=list)
    #: Whether the check used a key (records' MACs checked).
    keyed: bool = False


@dataclass
class Head:
    """The saved head of a log (see the module docstring)."""

    seq: int
    hash: str
    first: int = 1
    files: int = 1
    gaps: int = 0
    keyed: bool = False


def canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(',', ':'), ensure_ascii=True)


def line_hash(line: str) -> str:
    """SHA-256 hex of one log line (without its newline)."""
    return hashlib.sha256(line.encode('utf-8')).hexdigest()


def _body(record: dict) -> bytes:
    return canonical({k: v for k, v in record.items() if k not in ('hash', 'mac')}).encode()


def seal(record: dict, key: AuditKeys | None) -> dict:
    """``record`` with its ``mac`` (keyed) or ``hash`` (unkeyed) set."""
    body = _body(record)
    if key is not None:
        record['mac'] = hmac.new(key.mac, body, hashlib.sha256).hexdigest()
    else:
        record['hash'] = hashlib.sha256(body).hexdigest()
    return record


def seal_ok(record: dict, key: AuditKeys | None) -> bool | None:
    """Whether the record's seal holds; ``None`` for a MAC that cannot be checked (no key)."""
    body = _body(record)
    if 'mac' in record:
        if key is None:
            return None
        expected = hmac.new(key.mac, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(str(record['mac']), expected)
    return str(record.get('hash')) == hashlib.sha256(body).hexdigest()


# ----------------------------------------------------------------------------- files

def rotated_path(path: Path, n: int) -> Path:
    return path.with_name(f'{path.name}.{n}')


def head_path(path: Path) -> Path:
    return path.with_name(path.name.rsplit('.', 1)[0] + HEAD_SUFFIX)


def rotated_numbers(path: Path) -> list[int]:
    """The numbers ``n`` of the rotated files ``<name>.n`` that exist, ascending."""
    pattern = re.compile(re.escape(path.name) + r'\.([1-9][0-9]*)$')
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(pattern.match, names) if m)


def log_files(path: Path) -> tuple[list[Path], list[str]]:
    """The log's files, oldest first, and the rotated files missing between them."""
    numbers = rotated_numbers(path)
    holes = [rotated_path(path, n).name for n in range(1, max(numbers, default=0) + 1)
             if n not in numbers]
    files = [rotated_path(path, n) for n in reversed(numbers)]
    return files + ([path] if path.exists() else []), holes


def first_line(path: Path) -> str:
    with open(path, 'rb') as f:
        return f.readline().decode('utf-8').rstrip('\n')


def tail_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` non-empty lines of a file, oldest first."""
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        data = b''
        while pos > 0 and data.rstrip(b'\n').count(b'\n') < n:
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = [ln.decode('utf-8') for ln in data.rstrip(b'\n').split(b'\n') if ln]
    return lines[-n:]


# ----------------------------------------------------------------------------- head

def head_record(head: Head, key: AuditKeys | None) -> dict[str, Any]:
    record = {'seq': head.seq, 'hash': head.hash, 'first': head.first, 'files': head.files,
              'gaps': head.gaps, 'v': FORMAT_VERSION}
    body = canonical(record).encode()
    if key is not None:
        record['head_mac'] = hmac.new(key.mac, b'head\0' + body, hashlib.sha256).hexdigest()
    else:
        record['head_hash'] = hashlib.sha256(b'head\0' + body).hexdigest()
    return record


def head_slot(head: Head, key: AuditKeys | None) -> bytes:
    """One slot of the head file: the sealed head line padded with spaces to HEAD_SLOT bytes."""
    line = canonical(head_record(head, key)).encode()
    if len(line) >= HEAD_SLOT:
        raise ValueError(f'audit head of {len(line)} bytes does not fit a {HEAD_SLOT}-byte slot')
    return line + b' ' * (HEAD_SLOT - 1 - len(line)) + b'\n'


def write_head(path: Path, head: Head, key: AuditKeys | None) -> None:
    """Replace the saved head atomically (temporary file, then rename), mode 0600: both slots
    hold ``head``. An open log then updates it in place (:func:`write_head_slot`)."""
    target = head_path(path)
    tmp = target.with_name('.' + target.name + '.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, head_slot(head, key) * 2)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def write_head_slot(fd: int, slot: int, head: Head, key: AuditKeys | None) -> None:
    """Overwrite slot ``slot`` (0 or 1) of a head file written by :func:`write_head`, in place.

    One ``pwrite`` of one slot: a crash leaves the other slot intact, so callers alternate.
    """
    data = head_slot(head, key)
    if os.pwrite(fd, data, slot * HEAD_SLOT) != len(data):
        raise OSError(f'short write of the audit head slot {slot}')


def read_head(path: Path, key: AuditKeys | None,
              plain_ok: bool = False) -> tuple[Head | None, str]:
    """The saved head and ``''``, or ``None`` and why it cannot be used (``'missing'`` when
    there is none).

    :param plain_ok: accept an unkeyed head although a key is given (a log that was unkeyed
        until now is being opened with a key).
    """
    try:
        text = head_path(path).read_text(errors='replace')
    except FileNotFoundError:
        return None, 'missing'
    except OSError as exc:
        return None, f'unreadable ({exc.strerror})'
    best: tuple[Head | None, str] = (None, 'not a saved head')
    for line in text.splitlines() or ['']:
        head, why = _read_head_line(line, key, plain_ok)
        if head is not None and (best[0] is None or (head.seq, head.first, head.files,
                                                     head.gaps) > (best[0].seq, best[0].first,
                                                                   best[0].files, best[0].gaps)):
            best = head, why
        elif best[0] is None and why != 'not a saved head':
            best = None, why    # a slot sealed otherwise says more than a torn one
    return best


def _read_head_line(line: str, key: AuditKeys | None,
                    plain_ok: bool) -> tuple[Head | None, str]:
    """One slot of the head file, as :func:`read_head` answers."""
    try:
        record = json.loads(line)
        body = canonical({k: record[k] for k in ('seq', 'hash', 'first', 'files', 'gaps',
                                                 'v')}).encode()
        head = Head(int(record['seq']), str(record['hash']), int(record['first']),
                    int(record['files']), int(record['gaps']), 'head_mac' in record)
    except (ValueError, KeyError, TypeError):
        return None, 'not a saved head'
    if 'head_mac' in record:
        if key is None:
            return head, ''     # cannot be checked without the key; used as it is
        good = hmac.compare_digest(str(record['head_mac']), hmac.new(
            key.mac, b'head\0' + body, hashlib.sha256).hexdigest())
    else:
        good = (key is None or plain_ok) and record.get('head_hash') == hashlib.sha256(
            b'head\0' + body).hexdigest()
    return (head, '') if good else (None, 'altered, or not sealed with this key')


def legacy_head(text: str | None) -> Head | None:
    """The head the store's database kept before ``audit.head`` (``"<seq>:<hash>"``)."""
    if text and ':' in text:
        seq, digest = text.split(':', 1)
        return Head(int(seq), digest, first=0)
    return None


# ----------------------------------------------------------------------------- check

def located_lines(files: Iterable[Path]) -> Iterator[tuple[str, int, str]]:
    """``(file name, line number in it, line)``, oldest first."""
    for path in files:
        with open(path, encoding='utf-8') as f:
            for n, line in enumerate(f, start=1):
                yield path.name, n, line.rstrip('\n')


def verify_log(path: Path | str, key: AuditKeys | None = None,
               db_head: str | None = None) -> AuditVerification:
    """Check a log on disk without changing anything: every record's seal, the chain, the
    sequence, the files and the saved head.

    :param key: the audit keys; without them MACs cannot be checked (and the result says so).
    :param db_head: the head a store's database kept before ``audit.head`` existed.
    """
    path = Path(path)
    files, holes = log_files(path)
    try:
        lines = list(located_lines(files))
    except OSError as exc:
        return AuditVerification(False, 0, 1, f'cannot read {path}: {exc}')
    head, why = read_head(path, key)
    problems: list[str] = [f'{name} is missing (a rotated file was deleted)' for name in holes]
    result = check_lines(lines, key, persistent=True)
    if not result.ok and not result.gaps:       # an altered or removed line: no further check
        result.gaps = problems
        result.message = '; '.join(problems + [result.message])
        return result
    last = _last_record(lines)
    if head is None and why == 'missing' and (last is None or 'v' not in last):
        head = legacy_head(db_head)
    elif head is None:
        problems.append(f'the saved head {head_path(path).name} is {why}')
    if head is not None and head.seq > 0:
        problems += _against_head(lines, head, path)
        kept = sum(f'"action":"{GAP_ACTION}"' in line for _, _, line in lines)
        if head.gaps > kept:
            problems.append(f'{head.gaps - kept} earlier gap(s) in the log, recorded in files '
                            'since rotated out')
    if key is not None and last is not None and 'mac' not in last:
        problems.append('the log is not keyed (its last record has no MAC): anyone who can '
                        'write the store could have rewritten it')
    result.gaps = problems + result.gaps
    if result.gaps:
        result.ok = False
        result.message = '; '.join(result.gaps[:5])
    return result


def _last_record(lines: list[tuple[str, int, str]]) -> dict | None:
    return json.loads(lines[-1][2]) if lines else None


def _against_head(lines: list[tuple[str, int, str]], head: Head, path: Path) -> list[str]:
    seqs = {int(json.loads(line)['seq']): line_hash(line) for _, _, line in lines}
    end = max(seqs, default=0)
    out = []
    if end < head.seq:
        out.append(f'the log ends at seq {end} but its saved head says seq {head.seq}: lines '
                   'were cut off the end')
    elif seqs.get(head.seq) != head.hash:
        out.append(f'the record with seq {head.seq} is not the one the saved head names: the '
                   'end of the log was rewritten')
    start = min(seqs, default=0)
    if head.first and start > head.first:
        out.append(f'the log starts at seq {start} but its saved head says {head.first}: the '
                   f'oldest file(s) of {path.name} were deleted')
    return out


def check_lines(lines: list[tuple[str, int, str]], key: AuditKeys | None,
                persistent: bool) -> AuditVerification:
    """Seals, chain and sequence of located lines; gap records are collected, not fatal."""
    prev_hash: str | None = None
    prev_seq = 0
    rotated_out = 0
    keyed_seen = unchecked = 0
    gaps: list[str] = []

    def bad(index: int, text: str) -> AuditVerification:
        name, k, _ = lines[index - 1]
        return AuditVerification(False, index - 1, index, f'line {k} of {name} {text}',
                                 file=name, file_line=k, keyed=key is not None)

    for n, (_, _, line) in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            seq, prev = int(record['seq']), str(record['prev'])
        except (ValueError, KeyError, TypeError) as exc:
            return bad(n, f'is not an audit record ({exc})')
        sealed = seal_ok(record, key)
        if sealed is False:
            return bad(n, 'was altered: its content does not match its '
                          + ('MAC (rewritten without the key?)' if 'mac' in record else 'hash'))
        if 'mac' in record:
            keyed_seen += 1
            unchecked += sealed is None
        elif keyed_seen:
            return bad(n, 'is unkeyed after keyed records: the log was rewritten without the '
                          'key')
        is_gap = record.get('action') == GAP_ACTION
        if is_gap:
            gaps.append(_gap_text(record, lines[n - 1]))
        if prev_hash is None:
            # A log starts at the genesis, or (older files rotated out) with a rotation record;
            # the RAM window may start anywhere.
            if persistent and (prev != GENESIS_PREV or seq != 1):
                if record.get('action') not in (ROTATE_ACTION, GAP_ACTION):
                    return bad(n, 'is not the start of the log (lines were removed before it)')
                rotated_out = seq - 1
        elif is_gap:
            pass        # chained to the saved head, not to the line before: reported above
        elif prev != prev_hash:
            return bad(n - 1, 'was altered, or line(s) were inserted or removed after it: the '
                              'next record chains to another one')
        elif seq != prev_seq + 1:
            return bad(n, f'has seq {seq}, expected {prev_seq + 1}')
        prev_hash, prev_seq = line_hash(line), seq
    files = len({name for name, _, _ in lines})
    message = f'{len(lines)} records, chain intact'
    if files > 1:
        message += f' across {files} files'
    if rotated_out:
        message += f' (records 1 to {rotated_out} were rotated out)'
    if key is None:
        message += f' ({UNKEYED_NOTE}' + (f'; {unchecked} MACs not checked without the key)'
                                          if unchecked else ')')
    return AuditVerification(not gaps, len(lines), 0, '; '.join(gaps) or message, gaps=gaps,
                             keyed=key is not None)


def _gap_text(record: dict, where: tuple[str, int, str]) -> str:
    params = record.get('params') or {}
    return (f'gap before line {where[1]} of {where[0]} (seq {record.get("seq")}): '
            f'{params.get("reason", "records are missing")}')


__all__ = ['AuditVerification', 'GAP_ACTION', 'GENESIS_PREV', 'Head', 'ROTATE_ACTION',
           'UNKEYED_NOTE', 'check_lines', 'line_hash', 'log_files', 'read_head', 'seal',
           'verify_log', 'write_head', 'write_head_slot']
