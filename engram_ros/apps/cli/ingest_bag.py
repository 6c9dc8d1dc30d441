"""``engram ingest-bag BAG --store DIR [--params FILE] [--keep-partial]``: build a memory
offline from a rosbag2 bag (MCAP or SQLite 3); see :mod:`engram_ros.apps.bag_ingest`.

Exit status: 0 done, 2 a bag or settings that cannot make a memory (the message names the
problem and the topic; the new store is removed unless ``--keep-partial``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('ingest-bag', help='build a memory offline from a rosbag2 bag (MCAP or '
                                          'sqlite3): perception and memory at full speed')
    p.add_argument('bag', type=Path, help='bag directory (or its .mcap file\'s directory)')
    # also accepted after the command; SUPPRESS keeps a --store given before it
    p.add_argument('--store', type=Path, default=argparse.SUPPRESS,
                   help='new store directory (required)')
    p.add_argument('--params', type=Path, default=None, metavar='FILE',
                   help='parameter file as the launchers read it (default config/engram.yaml; '
                        'engram_memory persist must be true)')
    p.add_argument('--keep-partial', action='store_true',
                   help='keep the store when the ingest fails half-way')
    p.add_argument('--namespace', default='', help='namespace of the recorded topics')
    p.add_argument('--remap', action='append', default=[], metavar='NAME:=TOPIC',
                   help='bag topic of a perception input, e.g. '
                        'camera/color/image_raw:=/front/color/image_raw')


def cmd_ingest_bag(args: argparse.Namespace, out: TextIO) -> int:
    from engram_ros.apps.bag_ingest import BagError
    from engram_ros.apps.bag_ingest import ingest_bag
    from engram_ros.apps.bag_ingest import IngestError
    from engram_ros.apps.bag_ingest import summary

    def fail(message: str) -> int:
        print(f'engram ingest-bag: error: {message}', file=sys.stderr)
        return 2

    if getattr(args, 'store', None) is None:
        return fail('give --store DIR (a new directory)')
    remaps = {}
    for item in args.remap:
        name, sep, topic = item.partition(':=')
        if not sep or not name or not topic:
            return fail(f'--remap {item!r}: accepted NAME:=TOPIC')
        remaps[name] = topic
    try:
        report = ingest_bag(args.bag, args.store, args.params, args.keep_partial,
                            args.namespace, remaps, out)
    except (IngestError, BagError) as exc:
        kept = ' (partial store kept)' if args.keep_partial and args.store.exists() else ''
        return fail(f'{exc}{kept}')
    print(summary(report), file=out)
    return 0
