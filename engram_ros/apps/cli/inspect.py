"""``engram stats | list | show | search``: look at what the robot remembers, offline.

Reading is audited like any other access (``list``, ``get``, ``recall`` records), except
``stats``, which counts rows and files without looking at any engram's content.
"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

import numpy as np

from engram_ros.apps.cli.common import add_filter
from engram_ros.apps.cli.common import CliError
from engram_ros.apps.cli.common import ENGRAM_HEADER
from engram_ros.apps.cli.common import engram_row
from engram_ros.apps.cli.common import finite
from engram_ros.apps.cli.common import iso
from engram_ros.apps.cli.common import parse_time
from engram_ros.apps.cli.common import positive_int
from engram_ros.apps.cli.common import print_engrams
from engram_ros.apps.cli.common import print_table
from engram_ros.apps.cli.common import progress
from engram_ros.apps.cli.common import requester
from engram_ros.apps.cli.common import selection
from engram_ros.core.memory import MemoryStore
from engram_ros.core.model.codec import to_record
from engram_ros.core.model.engram import KINDS
from engram_ros.core.query import RecallQuery


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sub.add_parser('stats', help='how much is remembered, of what kinds')
    p = sub.add_parser('list', help='list engrams (filters, paging)')
    add_filter(p)
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


def cmd_stats(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    kinds: dict[str, int] = {}
    tiers: dict[str, int] = {}
    pinned = with_evidence = 0
    total = len(store)
    with progress(total, 'reading') as bar:
        for e in store.storage.iter_all(batch_size=2000):
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
            tiers[e.tier] = tiers.get(e.tier, 0) + 1
            pinned += int(e.pinned)
            with_evidence += int(bool(e.evidence))
            bar.update()
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
    result = store.list_engrams(selection(args), offset=args.offset, limit=args.limit,
                                requester=requester(args))
    print_engrams(result.engrams, args, out)
    if not args.json:
        print(f'{len(result.engrams)} of {result.total} engrams (offset {args.offset})',
              file=out)
    return 0


def cmd_show(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    engrams, unknown = store.get_engrams(args.ids, requester=requester(args))
    for e in engrams:
        record = to_record(e)
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
        _print_record(e.id, record, paths, out)
    if unknown:
        raise CliError(f'unknown id(s): {", ".join(map(str, unknown))}')
    return 0


def _print_record(engram_id: int, record: dict, paths: list[dict], out: TextIO) -> None:
    print(f'engram {engram_id}', file=out)
    for key, value in record.items():
        if key in ('covariance', 'evidence', 'evidence_files'):
            continue
        if key in ('first_seen', 'last_seen', 'last_access'):
            value = f'{iso(value)} ({value:.3f})'
        print(f'  {key:18s} {value}', file=out)
    for item in paths:
        where = item['path'] or '(outside the store)'
        print(f'  evidence           {where}{"" if item["exists"] else "  [missing]"}',
              file=out)


def cmd_search(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    near = args.near
    query = RecallQuery(text=args.text, tags_all=tuple(args.tag), kinds=tuple(args.kind),
                        center=None if near is None else np.array([near[0], near[1], 0.0]),
                        radius=0.0 if near is None else near[2], t_start=args.since,
                        t_end=args.until, k=args.k)
    result = store.recall(query, requester=requester(args))
    if args.json:
        for hit in result.hits:
            record = to_record(hit.engram)
            record.pop('vector')
            record['score'] = hit.score
            print(json.dumps(record), file=out)
        return 0
    rows = [engram_row(h.engram) + [f'{h.score:.2f}'] for h in result.hits]
    print_table(rows, ENGRAM_HEADER + ('score',), out)
    print(result.message, file=out)
    return 0


COMMANDS = {'stats': cmd_stats, 'list': cmd_list, 'show': cmd_show, 'search': cmd_search}
