"""``engram --node ...``: the commands that also work against a running memory node.

They go through the node's services (``ListEngrams``, ``Recall``, ``ForgetEngrams``) with the
typed client, so the node keeps its store open and audits the requests itself. ROS is imported
only here and only when ``--node`` is given: the offline commands need no ROS graph.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TextIO
from typing import TYPE_CHECKING

from engram_ros.apps.cli.common import CliError
from engram_ros.apps.cli.common import confirm
from engram_ros.apps.cli.common import print_engrams
from engram_ros.apps.cli.common import requester
from engram_ros.apps.cli.common import selection
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import KINDS

if TYPE_CHECKING:     # rclpy is imported only for --node
    from engram_ros.ros.client import MemoryClient

#: The commands ``--node`` accepts; the others work on a store directory only.
NODE_COMMANDS = ('stats', 'list', 'search', 'forget')


def run_node(args: argparse.Namespace, out: TextIO) -> int:
    """The ``--node`` commands, through the memory node's services.

    :raises CliError: for a command that works offline only, or a request the node refused.
    :raises RuntimeError: when the node's services are not there (the client's timeout).
    """
    from engram_ros.ros.client import MemoryClient
    from engram_ros.ros.client import spinning_node

    if args.command not in NODE_COMMANDS:
        raise CliError(f'{args.command!r} works offline only (--store); with --node: '
                       f'{", ".join(NODE_COMMANDS)}')
    with spinning_node(f'engram_cli_{os.getpid()}') as node:
        client = MemoryClient(node, args.namespace)
        command = {'stats': _stats, 'list': _list, 'search': _search, 'forget': _forget}
        return command[args.command](client, args, out)


def _stats(client: MemoryClient, args: argparse.Namespace, out: TextIO) -> int:
    counts = {}
    for kind in KINDS:
        r = client.list_engrams(kinds=[kind], limit=1, requester=requester(args))
        counts[kind] = r.total
    stats = {'engrams': sum(counts.values()), 'kinds': counts}
    print(json.dumps(stats) if args.json else
          f'engrams {stats["engrams"]} ({", ".join(f"{k} {v}" for k, v in counts.items())})',
          file=out)
    return 0


def _list(client: MemoryClient, args: argparse.Namespace, out: TextIO) -> int:
    from engram_ros.srv import ListEngrams

    s = selection(args)
    r = client.list_engrams(
        offset=args.offset, limit=args.limit, requester=requester(args), kinds=s.kinds,
        tags_all=s.tags_all, tags_any=s.tags_any, tags_none=s.tags_none,
        center=None if s.center is None else s.center, radius=s.radius,
        start=s.t_start or 0.0, end=s.t_end or 0.0, tier=s.tier, pinned=s.pinned)
    if r.status != ListEngrams.Response.STATUS_OK:
        raise CliError(r.message)
    print_engrams(map(_engram_from_msg, r.engrams), args, out)
    if not args.json:
        print(r.message, file=out)
    return 0


def _search(client: MemoryClient, args: argparse.Namespace, out: TextIO) -> int:
    near = args.near
    r = client.recall(text=args.text, tags_all=args.tag, kinds=args.kind, k=args.k,
                      center=None if near is None else (near[0], near[1], 0.0),
                      radius=0.0 if near is None else near[2],
                      start=args.since or 0.0, end=args.until or 0.0)
    if r.status != 0:
        raise CliError(r.message)
    print_engrams(map(_engram_from_msg, r.engrams), args, out)
    return 0


def _forget(client: MemoryClient, args: argparse.Namespace, out: TextIO) -> int:
    from engram_ros.srv import ForgetEngrams

    who = requester(args)
    s = selection(args)
    chosen = dict(kinds=s.kinds, tags_all=s.tags_all, tags_any=s.tags_any,
                  tags_none=s.tags_none, center=s.center, radius=s.radius,
                  start=s.t_start or 0.0, end=s.t_end or 0.0, tier=s.tier, pinned=s.pinned)
    preview = client.forget_engrams(args.ids, dry_run=True, requester=who, **chosen)
    print(preview.message, file=out)
    if preview.status not in (ForgetEngrams.Response.STATUS_OK,
                              ForgetEngrams.Response.STATUS_UNKNOWN_ID):
        raise CliError(preview.message)
    if args.dry_run or not preview.forgotten_ids:
        return 1 if preview.unknown_ids else 0
    if not args.yes and not confirm(f'forget {preview.forgotten} engrams for good?'):
        print('nothing forgotten', file=out)
        return 1
    r = client.forget_engrams(list(preview.forgotten_ids), requester=who)
    print(r.message, file=out)
    return 0 if r.status == ForgetEngrams.Response.STATUS_OK and not preview.unknown_ids \
        else 1


def _engram_from_msg(msg) -> Engram:
    from engram_ros.ros.conversions.memory import engram_from_msg

    return engram_from_msg(msg)
