"""``engram``: see, correct, delete, export and check what a robot remembers.

Offline, on a store directory (stop the memory node first, or use ``--node``)::

    engram --store DIR stats
    engram --store DIR list [--kind K] [--tag T] [--near X Y R] [--since T] [--limit N]
    engram --store DIR show ID [ID ...]
    engram --store DIR search --text "red mug" [--tag T] [--near X Y R] [--since T] [-k 5]
    engram --store DIR edit ID [--add-tag T] [--remove-tag T] [--label L] [--pin | --unpin]
    engram --store DIR forget [--id ID] [--tag T] [--near X Y R] [--before T] [--after T] [--yes]
    engram --store DIR export FILE        # JSON lines + FILE's evidence folder beside it
    engram --store DIR import FILE
    engram --store DIR verify             # SQLite, index vs rows, evidence files, audit chain
    engram --store DIR map --out map.png  # top-down picture, coloured by kind
    engram keygen FILE                    # a new evidence encryption key

Against a running memory node (its services)::

    engram --node [--namespace /robot1] stats | list | search | forget

Times (``--since``, ``--before``, ...) are ISO 8601 (``2024-05-01T12:00``, local time when no
zone is given) or seconds since the Unix epoch. Exit status: 0 done, 1 failed or refused
(message on stderr), 2 bad arguments or not a store. Every command that reads or changes
engrams is written to the store's audit log with requester ``cli:<user>`` (``--as`` changes it).
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable
from typing import Sequence
from typing import TextIO

import numpy as np

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import id_summary
from engram_ros.core.engram import Engram
from engram_ros.core.engram import KINDS
from engram_ros.core.engram import TIERS
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import GovernanceError
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import StoreOpenError
from engram_ros.core.store import META_AUDIT_HEAD
from engram_ros.core.store import MemoryStore
from engram_ros.core.store import StoreConfig

#: BGR colours of the map, per kind.
_MAP_COLOURS = {'place': (255, 128, 50), 'object': (30, 150, 255), 'audio': (230, 50, 150),
                'event': (80, 200, 80)}


class CliError(Exception):
    """A command that cannot be done; printed as ``engram: error: ...``, exit status 1."""


class Progress:
    """A tiny progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            frac = self.done / self.total if self.total else 1.0
            bar = '#' * int(30 * min(frac, 1.0))
            self.stream.write(f'\r{self.label} [{bar:<30}] {self.done}/{self.total}')
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write('\n')
            self.stream.flush()

    def __enter__(self) -> 'Progress':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- arguments

def parse_time(text: str) -> float:
    """ISO 8601 (local time without a zone) or epoch seconds -> epoch seconds.

    :raises argparse.ArgumentTypeError: for anything else.
    """
    try:
        value = float(text)
    except ValueError:
        try:
            stamp = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not a time; give ISO 8601 (2024-05-01T12:00) or epoch '
                'seconds') from None
        return stamp.timestamp()
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f'{text!r}: epoch seconds must be finite and >= 0')
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} must be >= 1')
    return value


def finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'{text!r} must be finite')
    return value


def _add_filter(p: argparse.ArgumentParser, *, ids: bool = False) -> None:
    if ids:
        p.add_argument('--id', type=positive_int, action='append', default=[], dest='ids',
                       help='engram id (repeatable)')
    p.add_argument('--kind', action='append', default=[], choices=KINDS,
                   help='engram kind (repeatable: any of them)')
    p.add_argument('--tag', action='append', default=[],
                   help='canonical tag the engram must carry, e.g. label:mug (repeatable: all)')
    p.add_argument('--any-tag', action='append', default=[],
                   help='tag of which at least one must be carried (repeatable)')
    p.add_argument('--no-tag', action='append', default=[], help='tag it must not carry')
    p.add_argument('--near', nargs=3, type=finite, metavar=('X', 'Y', 'R'),
                   help='within R metres of (X, Y, 0) in the memory frame (3-D distance)')
    p.add_argument('--tier', choices=TIERS)
    pin = p.add_mutually_exclusive_group()
    pin.add_argument('--pinned', action='store_const', const=True, default=None)
    pin.add_argument('--unpinned', action='store_const', const=False, dest='pinned')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='engram', description='See, correct, delete, export and check what a robot '
                                   'remembers (engram_ros).',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--store', type=Path, help='store directory (offline)')
    where.add_argument('--node', action='store_true', help='talk to a running memory node')
    parser.add_argument('--namespace', default='', help='the memory node\'s namespace (--node)')
    parser.add_argument('--as', dest='requester', default=None,
                        help='requester name for the audit log (default cli:<user>)')
    parser.add_argument('--frame', default='map', help='memory frame (default map)')
    parser.add_argument('--json', action='store_true', help='JSON lines instead of tables')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    sub.add_parser('stats', help='how much is remembered, of what kinds')
    p = sub.add_parser('list', help='list engrams (filters, paging)')
    _add_filter(p)
    p.add_argument('--since', type=parse_time, help='seen at or after this time')
    p.add_argument('--until', type=parse_time, help='seen at or before this time')
    p.add_argument('--offset', type=int, default=0)
    p.add_argument('--limit', type=int, default=100, help='page size, 1..1000')

    p = sub.add_parser('show', help='one engram in full, with its evidence files')
    p.add_argument('ids', type=positive_int, nargs='+', metavar='ID')

    p = sub.add_parser('search', help='ask the memory as a planner would (ranked)')
    p.add_argument('--text', default='')
    p.add_argument('--tag', action='append', default=[], help='tag that must be carried')
    p.add_argument('--near', nargs=3, type=finite, metavar=('X', 'Y', 'R'))
    p.add_argument('--since', type=parse_time)
    p.add_argument('--until', type=parse_time)
    p.add_argument('--kind', action='append', default=[], choices=KINDS)
    p.add_argument('-k', type=positive_int, default=10)

    p = sub.add_parser('edit', help='add/remove tags, rename, pin or unpin an engram')
    p.add_argument('id', type=positive_int)
    p.add_argument('--add-tag', action='append', default=[])
    p.add_argument('--remove-tag', action='append', default=[])
    p.add_argument('--label', help='new label ("" clears it)')
    pin = p.add_mutually_exclusive_group()
    pin.add_argument('--pin', action='store_const', const=True, dest='pinned', default=None)
    pin.add_argument('--unpin', action='store_const', const=False, dest='pinned')

    p = sub.add_parser('forget', help='delete engrams for good (asks first)')
    _add_filter(p, ids=True)
    p.add_argument('--before', type=parse_time, help='seen before this time')
    p.add_argument('--after', type=parse_time, help='seen after this time')
    p.add_argument('--yes', action='store_true', help='do not ask for confirmation')
    p.add_argument('--dry-run', action='store_true', help='only say what would be forgotten')

    p = sub.add_parser('export', help='write engrams as JSON lines, evidence copied beside')
    p.add_argument('file', type=Path)
    p = sub.add_parser('import', help='add engrams from an export (new ids)')
    p.add_argument('file', type=Path)
    sub.add_parser('verify', help='check SQLite, index, evidence files and the audit chain')
    p = sub.add_parser('map', help='draw a top-down picture of the memory')
    p.add_argument('--out', type=Path, required=True, help='PNG file to write')
    p.add_argument('--size', type=positive_int, default=1000, help='image width [px]')
    p = sub.add_parser('keygen', help='write a new evidence encryption key (mode 0600)')
    p.add_argument('file', type=Path)
    return parser


# ----------------------------------------------------------------------------- helpers

def _requester(args: argparse.Namespace) -> str:
    if args.requester:
        return args.requester
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = 'unknown'
    return f'cli:{user}'


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).isoformat(timespec='seconds') if t else '-'


def _selection(args: argparse.Namespace) -> EngramFilter:
    near = getattr(args, 'near', None)
    start = getattr(args, 'since', None) or getattr(args, 'after', None)
    end = getattr(args, 'until', None) or getattr(args, 'before', None)
    return EngramFilter(
        kinds=tuple(args.kind), tags_all=tuple(args.tag),
        tags_any=tuple(getattr(args, 'any_tag', ())), tags_none=tuple(getattr(args, 'no_tag', ())),
        center=None if near is None else np.array([near[0], near[1], 0.0]),
        radius=0.0 if near is None else near[2], t_start=start, t_end=end,
        tier=getattr(args, 'tier', None) or '', pinned=getattr(args, 'pinned', None))


def engram_record(engram: Engram) -> dict:
    """An engram as plain JSON-able data (the export format, one object per line)."""
    return {'id': engram.id, 'kind': engram.kind, 'label': engram.label,
            'frame_id': engram.frame_id, 'position': engram.position.tolist(),
            'orientation': engram.orientation.tolist(),
            'covariance': engram.covariance.tolist(), 'vector': engram.vector.tolist(),
            'first_seen': engram.first_seen, 'last_seen': engram.last_seen,
            'tags': list(engram.tags), 'modality': engram.modality,
            'confidence': engram.confidence, 'evidence': list(engram.evidence),
            'observation_count': engram.observation_count, 'score': engram.score,
            'tier': engram.tier, 'pinned': engram.pinned, 'last_access': engram.last_access,
            'recall_count': engram.recall_count}


def engram_from_record(record: dict) -> Engram:
    """Inverse of :func:`engram_record`.

    :raises KeyError, ValueError, TypeError: for a malformed record.
    """
    return Engram(
        id=int(record['id']), kind=str(record['kind']), frame_id=str(record['frame_id']),
        position=np.asarray(record['position'], dtype=np.float64),
        vector=np.asarray(record['vector'], dtype=np.float32),
        first_seen=float(record['first_seen']), last_seen=float(record['last_seen']),
        tags=tuple(record.get('tags', ())), label=str(record.get('label', '')),
        orientation=np.asarray(record.get('orientation', (0, 0, 0, 1)), dtype=np.float64),
        covariance=np.asarray(record['covariance'], dtype=np.float64),
        modality=str(record.get('modality', 'vision')),
        confidence=float(record.get('confidence', 1.0)),
        evidence=tuple(record.get('evidence', ())),
        observation_count=int(record.get('observation_count', 1)),
        score=float(record.get('score', 0.5)), tier=str(record.get('tier', 'short')),
        pinned=bool(record.get('pinned', False)),
        last_access=float(record.get('last_access', 0.0)),
        recall_count=int(record.get('recall_count', 0)))


def _print_table(rows: list[Sequence[str]], header: Sequence[str], out: TextIO) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = '  '.join(h.ljust(w) for h, w in zip(header, widths))
    print(line.rstrip(), file=out)
    print('  '.join('-' * w for w in widths), file=out)
    for r in rows:
        print('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)


def _engram_row(e: Engram) -> list[str]:
    x, y, z = (float(v) for v in e.position)
    return [str(e.id), e.kind, e.label or '-', e.tier, 'yes' if e.pinned else '',
            f'({x:.2f}, {y:.2f}, {z:.2f})', _iso(e.last_seen), str(e.observation_count),
            ' '.join(t for t in e.tags if not t.startswith('label:'))]


_ENGRAM_HEADER = ('id', 'kind', 'label', 'tier', 'pin', 'where [m]', 'last seen', 'seen',
                  'tags')


def _print_engrams(engrams: Iterable[Engram], args: argparse.Namespace, out: TextIO) -> None:
    engrams = list(engrams)
    if args.json:
        for e in engrams:
            record = engram_record(e)
            record.pop('vector')
            print(json.dumps(record), file=out)
        return
    _print_table([_engram_row(e) for e in engrams], _ENGRAM_HEADER, out)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError('refusing to forget without confirmation: stdin is not a terminal; '
                       'add --yes')
    answer = input(f'{question} [y/N] ').strip().lower()
    return answer in ('y', 'yes')


# ----------------------------------------------------------------------------- offline

def open_store(directory: Path, frame_id: str = 'map', create: bool = False,
               dim: int | None = None) -> MemoryStore:
    """The memory in ``directory``, audited, for offline work.

    :param dim: vector dimension for a store that has none yet (default 256).
    :raises StoreOpenError: when ``directory`` is not a store (it is not touched then).
    """
    storage = SQLiteStorage(directory, create=create)
    try:
        dim = int(storage.get_meta('dim') or dim or 256)
        audit = AuditLog(storage.directory / AUDIT_FILE_NAME)
        return MemoryStore(storage, StoreConfig(dim=dim, frame_id=frame_id), audit=audit)
    except BaseException:
        storage.close()
        raise


def cmd_stats(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    kinds: dict[str, int] = {}
    tiers: dict[str, int] = {}
    pinned = with_evidence = 0
    total = len(store)
    with Progress(total, 'reading') as progress:
        for e in store.storage.iter_all(batch_size=2000):
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
            tiers[e.tier] = tiers.get(e.tier, 0) + 1
            pinned += int(e.pinned)
            with_evidence += int(bool(e.evidence))
            progress.update()
    files = list(store.evidence.files()) if store.evidence is not None else []
    directory = store.storage.directory  # type: ignore[attr-defined]
    stats = {'store': str(directory), 'engrams': total, 'kinds': kinds, 'tiers': tiers,
             'pinned': pinned, 'with_evidence': with_evidence, 'evidence_files': len(files),
             'evidence_bytes': sum(p.stat().st_size for p in files),
             'database_bytes': sum(p.stat().st_size for p in directory.glob('engrams.sqlite3*')),
             'dim': store.config.dim,
             'audit_records': store.audit.head[0] if store.audit is not None else 0}
    if args.json:
        print(json.dumps(stats), file=out)
    else:
        for key, value in stats.items():
            if isinstance(value, dict):
                value = ', '.join(f'{k} {v}' for k, v in sorted(value.items())) or '-'
            print(f'{key:16s} {value}', file=out)
    return 0


def cmd_list(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    selection = _selection(args)
    result = store.list_engrams(selection, offset=args.offset, limit=args.limit,
                                requester=_requester(args))
    _print_engrams(result.engrams, args, out)
    if not args.json:
        print(f'{len(result.engrams)} of {result.total} engrams (offset {args.offset})',
              file=out)
    return 0


def cmd_show(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    engrams, unknown = store.get_engrams(args.ids, requester=_requester(args))
    for e in engrams:
        record = engram_record(e)
        record.pop('vector')
        paths = []
        for uri in e.evidence:
            path = store.evidence.path_of(uri) if store.evidence is not None else None
            paths.append({'uri': uri, 'path': None if path is None else str(path),
                          'exists': bool(path is not None and path.is_file())})
        record['evidence_files'] = paths
        if args.json:
            print(json.dumps(record), file=out)
            continue
        print(f'engram {e.id}', file=out)
        for key, value in record.items():
            if key in ('covariance', 'evidence', 'evidence_files'):
                continue
            if key in ('first_seen', 'last_seen', 'last_access'):
                value = f'{_iso(value)} ({value:.3f})'
            print(f'  {key:18s} {value}', file=out)
        for item in paths:
            where = item['path'] or '(outside the store)'
            print(f'  evidence           {where}{"" if item["exists"] else "  [missing]"}',
                  file=out)
    if unknown:
        raise CliError(f'unknown id(s): {", ".join(map(str, unknown))}')
    return 0


def cmd_search(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    near = args.near
    query = RecallQuery(text=args.text, tags_all=tuple(args.tag), kinds=tuple(args.kind),
                        center=None if near is None else np.array([near[0], near[1], 0.0]),
                        radius=0.0 if near is None else near[2], t_start=args.since,
                        t_end=args.until, k=args.k)
    result = store.recall(query, requester=_requester(args))
    if args.json:
        for hit in result.hits:
            record = engram_record(hit.engram)
            record.pop('vector')
            record['score'] = hit.score
            print(json.dumps(record), file=out)
        return 0
    rows = [_engram_row(h.engram) + [f'{h.score:.2f}'] for h in result.hits]
    _print_table(rows, _ENGRAM_HEADER + ('score',), out)
    print(result.message, file=out)
    return 0


def cmd_edit(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    engram = store.edit(args.id, add_tags=args.add_tag, remove_tags=args.remove_tag,
                        label=args.label, pinned=args.pinned, requester=_requester(args))
    _print_engrams([engram], args, out)
    return 0


def cmd_forget(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    selection = _selection(args)
    requester = _requester(args)
    preview = store.forget(args.ids, selection, dry_run=True, requester=requester)
    print(preview.message, file=out)
    if args.dry_run or not preview.forgotten_ids:
        return 1 if preview.unknown_ids else 0
    if not args.yes and not _confirm(f'forget {len(preview.forgotten_ids)} engrams for good?'):
        print('nothing forgotten', file=out)
        return 1
    result = store.forget(preview.forgotten_ids, requester=requester)
    print(f'{result.message}; {result.evidence_files} evidence files deleted', file=out)
    return 1 if preview.unknown_ids else 0


def _evidence_folder(file: Path) -> Path:
    return file.with_name(file.name + '.evidence')


def cmd_export(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    target: Path = args.file
    folder = _evidence_folder(target)
    if target.exists() or folder.exists():
        raise CliError(f'{target} or {folder} exists; choose a new file name')
    folder.mkdir(parents=True)
    total = len(store)
    ids = []
    copied = 0
    with open(target, 'x', encoding='utf-8') as f, Progress(total, 'exporting') as progress:
        for engram in store.storage.iter_all(batch_size=2000):
            record = engram_record(engram)
            files = []
            for uri in engram.evidence:
                path = store.evidence.path_of(uri) if store.evidence is not None else None
                if path is not None and path.is_file():
                    relative = path.relative_to(store.evidence.directory)  # type: ignore
                    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, folder / relative)
                    files.append(relative.as_posix())
                    copied += 1
            # Copied files travel as paths relative to the evidence folder; other URIs as they are.
            record['evidence'] = [u for u in engram.evidence if store.evidence is None
                                  or store.evidence.path_of(u) is None]
            record['evidence_files'] = files
            f.write(json.dumps(record) + '\n')
            ids.append(engram.id)
            progress.update()
    store.audit_event('export', _requester(args), {'file': str(target.resolve())},
                      dict(id_summary(ids), evidence_files=copied))
    print(f'exported {len(ids)} engrams to {target} ({copied} evidence files in {folder})',
          file=out)
    return 0


def cmd_import(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    source: Path = args.file
    folder = _evidence_folder(source)
    try:
        lines = source.read_text(encoding='utf-8').splitlines()
    except OSError as exc:
        raise CliError(f'cannot read {source}: {exc.strerror}') from None
    engrams = []
    evidence = store.evidence
    with Progress(len(lines), 'importing') as progress:
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                engram = engram_from_record(record)
            except (ValueError, KeyError, TypeError) as exc:
                raise CliError(f'{source}:{n} is not an exported engram ({exc}); nothing '
                               'imported') from None
            if engram.vector.shape[0] != store.config.dim:
                raise CliError(f'{source}:{n} has a {engram.vector.shape[0]}-d vector; the '
                               f'store uses {store.config.dim}; nothing imported')
            uris = [u for u in engram.evidence if evidence is None
                    or evidence.path_of(u) is None]    # references outside the store stay
            for relative in record.get('evidence_files', ()):
                src = (folder / relative).resolve()
                if evidence is None or not src.is_relative_to(folder.resolve()) \
                        or not src.is_file():
                    continue
                dest = evidence.directory / relative
                if dest.exists():
                    dest = dest.with_name(f'imported-{time.time_ns()}-{dest.name}')
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
                uris.append(dest.as_uri())
            engram.evidence = tuple(uris)
            engrams.append(engram)
            progress.update()
    new_ids = store.bulk_load(engrams)
    store.audit_event('import', _requester(args), {'file': str(source.resolve())},
                      id_summary(new_ids))
    print(f'imported {len(engrams)} engrams from {source}', file=out)
    return 0


def _export_dim(file: Path) -> int | None:
    """The vector dimension of the first record of an export, if it has one."""
    try:
        with open(file, encoding='utf-8') as f:
            return len(json.loads(f.readline())['vector'])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cmd_verify(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    problems: list[str] = []

    def report(name: str, issues: list[str], ok_text: str) -> None:
        problems.extend(issues)
        status = 'ok' if not issues else 'FAILED'
        print(f'{name:10s} {status:7s} {ok_text if not issues else "; ".join(issues[:5])}',
              file=out)

    report('sqlite', store.storage.integrity_check(), 'quick_check ok')
    count = store.storage.count()
    ids_in_rows = set()
    missing_files = []
    with Progress(count, 'checking') as progress:
        for e in store.storage.iter_all(batch_size=2000):
            ids_in_rows.add(e.id)
            for uri in e.evidence:
                path = store.evidence.path_of(uri) if store.evidence is not None else None
                if path is not None and not path.is_file():
                    missing_files.append(f'engram {e.id}: {path} is missing')
            progress.update()
    with store._lock:   # a consistent read of the index (same process, no writer running)
        index_ids = {int(i) for i in store.index.ids_of(store.index.live_slots())}
    index_issues = []
    if index_ids != ids_in_rows:
        index_issues.append(f'{len(ids_in_rows - index_ids)} rows not in the index, '
                            f'{len(index_ids - ids_in_rows)} index entries without a row')
    report('index', index_issues, f'{len(index_ids)} entries match {count} rows')
    report('evidence', missing_files, 'every referenced evidence file exists')
    audit_issues = []
    if store.audit is not None:
        head_text = store.storage.get_meta(META_AUDIT_HEAD)
        head = None
        if head_text and ':' in head_text:
            seq, digest = head_text.split(':', 1)
            head = (int(seq), digest)
        result = store.audit.verify(head)
        if not result.ok:
            audit_issues.append(result.message)
        report('audit', audit_issues, result.message)
    return 1 if problems else 0


def cmd_map(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    import cv2

    engrams = list(store.storage.iter_all(batch_size=5000))
    width = args.size
    margin = 60
    if engrams:
        xy = np.array([e.position[:2] for e in engrams])
        lo, hi = xy.min(axis=0) - 0.5, xy.max(axis=0) + 0.5
    else:
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    span = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-3))
    scale = (width - 2 * margin) / span
    height = int((hi[1] - lo[1]) * scale) + 2 * margin
    image = np.full((height, width, 3), 255, dtype=np.uint8)

    def pixel(x: float, y: float) -> tuple[int, int]:
        return (int(margin + (x - lo[0]) * scale), int(height - margin - (y - lo[1]) * scale))

    step = 10 ** math.floor(math.log10(span / 2)) if span > 0 else 1.0
    for gx in np.arange(math.floor(lo[0] / step) * step, hi[0] + step, step):
        cv2.line(image, pixel(gx, lo[1]), pixel(gx, hi[1]), (230, 230, 230), 1)
    for gy in np.arange(math.floor(lo[1] / step) * step, hi[1] + step, step):
        cv2.line(image, pixel(lo[0], gy), pixel(hi[0], gy), (230, 230, 230), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    with Progress(len(engrams), 'drawing') as progress:
        for e in engrams:
            centre = pixel(float(e.position[0]), float(e.position[1]))
            colour = _MAP_COLOURS.get(e.kind, (128, 128, 128))
            radius = 4 + 2 * min(e.observation_count, 5)
            cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA)
            if e.pinned:
                cv2.circle(image, centre, radius + 3, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(image, e.label or f'#{e.id}', (centre[0] + radius + 2, centre[1] + 4),
                        font, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
            progress.update()
    for i, (kind, colour) in enumerate(_MAP_COLOURS.items()):
        cv2.circle(image, (15, 15 + 18 * i), 6, colour, -1, cv2.LINE_AA)
        cv2.putText(image, kind, (28, 20 + 18 * i), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f'{len(engrams)} engrams, grid {step:g} m, x right, y up '
                       f'({store.config.frame_id})', (10, height - 15), font, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(args.out), image):
        raise CliError(f'cannot write {args.out} (does the folder exist, does it end in .png?)')
    print(f'wrote {args.out} ({width}x{height}, {len(engrams)} engrams)', file=out)
    return 0


_OFFLINE = {'stats': cmd_stats, 'list': cmd_list, 'show': cmd_show, 'search': cmd_search,
            'edit': cmd_edit, 'forget': cmd_forget, 'export': cmd_export,
            'import': cmd_import, 'verify': cmd_verify, 'map': cmd_map}


def cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    path: Path = args.file
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f'{path} exists; a key is never overwritten') from None
    with os.fdopen(fd, 'wb') as f:
        f.write(EvidenceStore.generate_key() + b'\n')
    print(f'wrote a new evidence key to {path}; keep it safe: without it encrypted evidence '
          'cannot be read', file=out)
    return 0


# ----------------------------------------------------------------------------- online

_NODE_COMMANDS = ('stats', 'list', 'search', 'forget')


def run_node(args: argparse.Namespace, out: TextIO) -> int:
    """The ``--node`` commands, through the memory node's services."""
    from engram_ros.client import MemoryClient
    from engram_ros.client import spinning_node
    from engram_ros.srv import ForgetEngrams
    from engram_ros.srv import ListEngrams

    if args.command not in _NODE_COMMANDS:
        raise CliError(f'{args.command!r} works offline only (--store); with --node: '
                       f'{", ".join(_NODE_COMMANDS)}')
    requester = _requester(args)
    with spinning_node(f'engram_cli_{os.getpid()}') as node:
        client = MemoryClient(node, args.namespace)
        if args.command == 'stats':
            counts = {}
            for kind in KINDS:
                r = client.list_engrams(kinds=[kind], limit=1, requester=requester)
                counts[kind] = r.total
            stats = {'engrams': sum(counts.values()), 'kinds': counts}
            print(json.dumps(stats) if args.json else
                  f'engrams {stats["engrams"]} ({", ".join(f"{k} {v}" for k, v in counts.items())})',
                  file=out)
            return 0
        if args.command == 'list':
            s = _selection(args)
            r = client.list_engrams(
                offset=args.offset, limit=args.limit, requester=requester, kinds=s.kinds,
                tags_all=s.tags_all, tags_any=s.tags_any, tags_none=s.tags_none,
                center=None if s.center is None else s.center, radius=s.radius,
                start=s.t_start or 0.0, end=s.t_end or 0.0, tier=s.tier, pinned=s.pinned)
            if r.status != ListEngrams.Response.STATUS_OK:
                raise CliError(r.message)
            _print_engrams(map(_engram_from_msg, r.engrams), args, out)
            if not args.json:
                print(r.message, file=out)
            return 0
        if args.command == 'search':
            near = args.near
            r = client.recall(text=args.text, tags_all=args.tag, kinds=args.kind, k=args.k,
                              center=None if near is None else (near[0], near[1], 0.0),
                              radius=0.0 if near is None else near[2],
                              start=args.since or 0.0, end=args.until or 0.0)
            if r.status != 0:
                raise CliError(r.message)
            _print_engrams(map(_engram_from_msg, r.engrams), args, out)
            return 0
        s = _selection(args)
        selection = dict(kinds=s.kinds, tags_all=s.tags_all, tags_any=s.tags_any,
                         tags_none=s.tags_none, center=s.center, radius=s.radius,
                         start=s.t_start or 0.0, end=s.t_end or 0.0, tier=s.tier,
                         pinned=s.pinned)
        preview = client.forget_engrams(args.ids, dry_run=True, requester=requester,
                                        **selection)
        print(preview.message, file=out)
        if preview.status not in (ForgetEngrams.Response.STATUS_OK,
                                  ForgetEngrams.Response.STATUS_UNKNOWN_ID):
            raise CliError(preview.message)
        if args.dry_run or not preview.forgotten_ids:
            return 1 if preview.unknown_ids else 0
        if not args.yes and not _confirm(f'forget {preview.forgotten} engrams for good?'):
            print('nothing forgotten', file=out)
            return 1
        r = client.forget_engrams(list(preview.forgotten_ids), requester=requester)
        print(r.message, file=out)
        return 0 if r.status == ForgetEngrams.Response.STATUS_OK and not preview.unknown_ids \
            else 1


def _engram_from_msg(msg) -> Engram:
    from engram_ros import conversions

    engram = conversions.engram_from_msg(msg)
    return engram


# ----------------------------------------------------------------------------- main

def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == 'keygen':
            return cmd_keygen(args, out)
        if args.node:
            return run_node(args, out)
        if args.store is None:
            parser.error('give --store DIR (offline) or --node (a running memory node)')
        if args.command == 'list' and not 1 <= args.limit <= 1000:
            parser.error(f'--limit {args.limit}: accepted 1..1000')
        try:
            store = open_store(args.store, args.frame, create=args.command == 'import',
                               dim=_export_dim(args.file) if args.command == 'import' else None)
        except StoreOpenError as exc:
            print(f'engram: error: {exc}', file=sys.stderr)
            return 2
        try:
            return _OFFLINE[args.command](store, args, out)
        finally:
            store.close()
    except (CliError, GovernanceError, QueryError) as exc:
        print(f'engram: error: {exc}', file=sys.stderr)
        return 1
    except RuntimeError as exc:   # service missing or not answering (--node)
        print(f'engram: error: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
