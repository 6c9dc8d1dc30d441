"""``engram fleet consolidate | forget``: the fleet collection's upkeep (issue 15).

::

    engram fleet consolidate URI [--collection C] [--holder ID] [--ttl S] [--lock FILE]
                                 [--tolerance S] [--token T]
    engram --store DIR fleet forget URI [--collection C] [--robot R] [--id ID] [--tag T]
                                 [--near X Y R] [--before T] [--after T] [--dry-run] [--yes]

``URI`` is a milvus-lite database file or a Milvus server (``http://host:19530``).
``consolidate`` takes the OS lock (next to a milvus-lite file, or ``--lock``; a server URI
without ``--lock`` is guarded by the lease alone) and the lease, merges what two robots saw
of one thing, ends beliefs another robot saw moved, and gives both back
(:mod:`engram_ros.core.fleet.consolidate`). ``forget`` deletes rows of the fleet collection
and compacts it; it is audited in the audit log of the store given with ``--store`` (the
asking robot's memory), so it needs one (:mod:`engram_ros.core.fleet.forget`).

Exit status: 0 done; 1 failed (Milvus unreachable, no such collection, the lease lost during
the run, a refused forget request, unknown ids); 2 bad arguments (or ``forget`` without
``--store``); 3 refused: another consolidator holds the lock or the lease.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from engram_ros.apps.cli.common import add_filter
from engram_ros.apps.cli.common import audit_keys
from engram_ros.apps.cli.common import confirm
from engram_ros.apps.cli.common import finite
from engram_ros.apps.cli.common import open_store
from engram_ros.apps.cli.common import parse_time
from engram_ros.apps.cli.common import requester
from engram_ros.apps.cli.common import selection
from engram_ros.core.fleet.consolidate import DEFAULT_TOLERANCE
from engram_ros.core.fleet.consolidate import FLEET_OWNER
from engram_ros.core.fleet.consolidate import OK
from engram_ros.core.fleet.consolidate import run_consolidation
from engram_ros.core.fleet.lease import default_holder
from engram_ros.core.fleet.lease import DEFAULT_TTL
from engram_ros.core.fleet.lease import LeaseRefused
from engram_ros.core.storage import StoreOpenError

#: Exit status of a consolidation refused because another consolidator holds lock or lease.
EXIT_REFUSED = 3


def add_fleet_commands(fleet_sub: argparse._SubParsersAction) -> None:
    """Register ``consolidate`` and ``forget`` under ``engram fleet``."""
    p = fleet_sub.add_parser('consolidate', help='merge what two robots saw of one thing, end '
                                                 'beliefs another robot saw moved (one '
                                                 'consolidator at a time)')
    _common(p)
    p.add_argument('--holder', default='', help='consolidator id in the lease and provenance '
                                                '(default consolidator@HOST:PID)')
    p.add_argument('--ttl', type=_seconds(False), default=DEFAULT_TTL,
                   help=f'lease time [s] (default {DEFAULT_TTL:g})')
    p.add_argument('--lock', default=None, metavar='FILE',
                   help='OS lock file (default: next to a milvus-lite file; a server URI has '
                        'none unless given)')
    p.add_argument('--tolerance', type=_seconds(True), default=DEFAULT_TOLERANCE,
                   help=f'clock tolerance between robots [s] (default {DEFAULT_TOLERANCE:g})')

    p = fleet_sub.add_parser('forget', help='delete rows of the fleet collection for good and '
                                            'compact it (audited in --store\'s log)')
    _common(p)
    p.add_argument('--robot', default='', help='every row this robot wrote')
    add_filter(p, ids=True)
    p.add_argument('--before', type=parse_time, help='seen before this time')
    p.add_argument('--after', type=parse_time, help='seen after this time')
    p.add_argument('--yes', action='store_true', help='do not ask for confirmation')
    p.add_argument('--dry-run', action='store_true', help='only say what would be forgotten')


def _seconds(zero_ok: bool):
    """An argparse type: a finite number of seconds, > 0 (or >= 0 with ``zero_ok``)."""
    def parse(text: str) -> float:
        value = finite(text)
        if value < 0.0 or (value == 0.0 and not zero_ok):
            raise argparse.ArgumentTypeError(f'{text!r}: accepted a number of seconds '
                                             f'{">= 0" if zero_ok else "> 0"}')
        return value
    return parse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument('uri', help='milvus-lite database file or Milvus server URI')
    p.add_argument('--collection', default='engrams', help='collection (default engrams)')
    p.add_argument('--token', default='', help='Milvus user:password or API token')


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``engram fleet consolidate`` or ``forget``; the exit status."""
    try:
        if args.fleet_command == 'consolidate':
            return _consolidate(args, out)
        return _forget(args, out)
    except LeaseRefused as exc:
        print(f'engram: refused ({exc.status}): {exc}', file=sys.stderr)
        return EXIT_REFUSED
    except (ValueError, RuntimeError) as exc:   # no collection, Milvus unreachable, refusals
        print(f'engram: error: {exc}', file=sys.stderr)
        return 1


def _consolidate(args: argparse.Namespace, out: TextIO) -> int:
    result = run_consolidation(args.uri, holder=args.holder or default_holder(),
                               collection=args.collection, token=args.token, ttl=args.ttl,
                               lock_path=args.lock, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(result.as_dict()), file=out)
    else:
        print(f'{result.status}: {result.message} (holder {result.holder}, token '
              f'{result.token})', file=out)
    return 0 if result.status == OK else 1


def _forget(args: argparse.Namespace, out: TextIO) -> int:
    from engram_ros.core.backends.milvus import MilvusBackend
    from engram_ros.core.fleet.forget import fleet_forget
    from engram_ros.core.fleet.provenance import Provenance
    if args.store is None:
        print('engram: error: a fleet forget is audited in the asking memory\'s log: give '
              '--store DIR before "fleet"', file=sys.stderr)
        return 2
    try:
        store = open_store(args.store, args.frame, key=audit_keys(args.key, args.store))
    except StoreOpenError as exc:
        print(f'engram: error: {exc}', file=sys.stderr)
        return 2
    try:
        backend = MilvusBackend.open_existing(args.uri, collection=args.collection,
                                              token=args.token, frame_id=args.frame,
                                              robot_id=FLEET_OWNER)
        records = Provenance(args.uri, args.collection, token=args.token)
        try:
            who = requester(args)
            chosen = dict(ids=args.ids, robot=args.robot, selection=selection(args),
                          requester=who, provenance=records)
            preview = fleet_forget(backend, store.audit, dry_run=True, **chosen)
            print(preview.message, file=out)
            if args.dry_run or not (preview.forgotten_ids or preview.derived_ids):
                return 1 if preview.unknown_ids else 0
            if not args.yes and not confirm(
                    f'forget {len(preview.forgotten_ids) + len(preview.derived_ids)} fleet '
                    f'engrams for good?'):
                print('nothing forgotten', file=out)
                return 1
            result = fleet_forget(backend, store.audit, ids=preview.forgotten_ids,
                                  requester=who, provenance=records)
            print(f'{result.message}; compaction requested (job {result.compaction_job})',
                  file=out)
            return 1 if preview.unknown_ids else 0
        finally:
            records.close()
            backend.close()
    finally:
        store.close()
