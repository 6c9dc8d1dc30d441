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
    engram --store DIR verify [--key F]   # SQLite, index vs rows, evidence, audit (read-only)
    engram --store DIR backup TARGET      # a consistent copy, also while the node runs
    engram --store DIR map --out map.png  # top-down picture, coloured by kind
    engram keygen FILE                    # a new master key (audit MACs, evidence encryption)
    engram ingest-bag BAG --store DIR [--params FILE] [--keep-partial]   # memory from a bag
    engram fleet serve FILE [--address HOST:PORT]   # one milvus-lite file for many robots
    engram fleet consolidate URI [--holder ID]     # merge the fleet's duplicates (exit 3: busy)
    engram --store DIR fleet forget URI [--robot R] [--id ID] [--tag T] [--yes]

A store whose audit log is keyed needs its key file for every command: ``--key FILE``.

Against a running memory node (its services)::

    engram --node [--namespace /robot1] stats | list | search | forget

Times (``--since``, ``--before``, ...) are ISO 8601 (``2024-05-01T12:00``, local time when no
zone is given) or seconds since the Unix epoch. Exit status: 0 done, 1 failed or refused
(message on stderr), 2 bad arguments or not a store, 3 ``fleet consolidate`` refused because
another consolidator holds the lock or the lease. Every command that reads or changes
engrams is written to the store's audit log with requester ``cli:<user>`` (``--as`` changes it).

This module assembles the parser from the command groups (one module each, as ros2cli keeps
one verb per file) and maps what they raise to exit statuses; :mod:`.common` holds what the
groups share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence
from typing import TextIO

from engram_ros.apps.cli import backup
from engram_ros.apps.cli import edit
from engram_ros.apps.cli import fleet
from engram_ros.apps.cli import ingest_bag
from engram_ros.apps.cli import inspect
from engram_ros.apps.cli import keygen
from engram_ros.apps.cli import map as map_  # the module, not the builtin
from engram_ros.apps.cli import transfer
from engram_ros.apps.cli import verify
from engram_ros.apps.cli.common import audit_keys
from engram_ros.apps.cli.common import CliError
from engram_ros.apps.cli.common import open_store
from engram_ros.apps.cli.node import run_node
from engram_ros.core.governance import GovernanceError
from engram_ros.core.query import QueryError
from engram_ros.core.storage import StoreOpenError

#: The command groups that work on a store directory, in the order ``--help`` lists them.
_OFFLINE_GROUPS = (inspect, edit, transfer, verify, map_)
_OFFLINE = {name: command for group in _OFFLINE_GROUPS
            for name, command in group.COMMANDS.items()}


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
    parser.add_argument('--key', default=None, metavar='FILE',
                        help='key file of a keyed audit log (engram keygen; kept outside the '
                             'store)')
    parser.add_argument('--json', action='store_true', help='JSON lines instead of tables')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for group in (*_OFFLINE_GROUPS, backup, keygen, ingest_bag, fleet):
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one ``engram`` command; return its exit status (argparse exits 2 by itself)."""
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == 'keygen':
            return keygen.cmd_keygen(args, out)
        if args.command == 'ingest-bag':
            return ingest_bag.cmd_ingest_bag(args, out)
        if args.command == 'fleet':
            return fleet.cmd_fleet(args, out)
        if args.node:
            return run_node(args, out)
        if args.store is None:
            parser.error('give --store DIR (offline) or --node (a running memory node)')
        if args.command == 'backup':    # reads the store beside a running node; no memory
            return backup.cmd_backup(args, out)
        if args.command == 'list' and not 1 <= args.limit <= 1000:
            parser.error(f'--limit {args.limit}: accepted 1..1000')
        importing = args.command == 'import'
        try:
            key = audit_keys(args.key, args.store)
            if args.command == 'verify':
                return verify.cmd_verify(args.store, key, out)
            store = open_store(args.store, args.frame, create=importing,
                               dim=transfer.export_dim(args.file) if importing else None,
                               key=key)
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
