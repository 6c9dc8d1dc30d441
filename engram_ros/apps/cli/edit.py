"""``engram edit | forget``: correct what the robot remembers, or delete it for good.

Both go through the store's governance operations, so they are validated and audited the same
way as the memory node's ``EditEngram``/``ForgetEngrams`` services. ``forget`` previews first
and asks (or needs ``--yes``): a forgotten engram and its evidence files cannot come back.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from engram_ros.apps.cli.common import add_filter
from engram_ros.apps.cli.common import confirm
from engram_ros.apps.cli.common import parse_time
from engram_ros.apps.cli.common import positive_int
from engram_ros.apps.cli.common import print_engrams
from engram_ros.apps.cli.common import requester
from engram_ros.apps.cli.common import selection
from engram_ros.core.memory import MemoryStore


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('edit', help='add/remove tags, rename, pin or unpin an engram')
    p.add_argument('id', type=positive_int)
    p.add_argument('--add-tag', action='append', default=[])
    p.add_argument('--remove-tag', action='append', default=[])
    p.add_argument('--label', help='new label ("" clears it)')
    pin = p.add_mutually_exclusive_group()
    pin.add_argument('--pin', action='store_const', const=True, dest='pinned', default=None)
    pin.add_argument('--unpin', action='store_const', const=False, dest='pinned')

    p = sub.add_parser('forget', help='delete engrams for good (asks first)')
    add_filter(p, ids=True)
    p.add_argument('--before', type=parse_time, help='seen before this time')
    p.add_argument('--after', type=parse_time, help='seen after this time')
    p.add_argument('--yes', action='store_true', help='do not ask for confirmation')
    p.add_argument('--dry-run', action='store_true', help='only say what would be forgotten')


def cmd_edit(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    engram = store.edit(args.id, add_tags=args.add_tag, remove_tags=args.remove_tag,
                        label=args.label, pinned=args.pinned, requester=requester(args))
    print_engrams([engram], args, out)
    return 0


def cmd_forget(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    who = requester(args)
    preview = store.forget(args.ids, selection(args), dry_run=True, requester=who)
    print(preview.message, file=out)
    if args.dry_run or not preview.forgotten_ids:
        return 1 if preview.unknown_ids else 0
    if not args.yes and not confirm(f'forget {len(preview.forgotten_ids)} engrams for good?'):
        print('nothing forgotten', file=out)
        return 1
    result = store.forget(preview.forgotten_ids, requester=who)
    print(f'{result.message}; {result.evidence_files} evidence files deleted', file=out)
    return 1 if preview.unknown_ids else 0


COMMANDS = {'edit': cmd_edit, 'forget': cmd_forget}
