"""What every ``engram`` command shares: argument types, the engram filter, who is asking,
tables and JSON lines, progress bars, and opening a store for offline work.

The verbs (one module per command group) stay thin: they read their arguments, call the store
(or the memory node) and print; everything two of them need lives here.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import math
import sys
from pathlib import Path
from typing import Iterable
from typing import Sequence
from typing import TextIO

import numpy as np
from tqdm import tqdm

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit import AuditError
from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import check_key
from engram_ros.core.governance import EngramFilter
from engram_ros.core.keys import AuditKeys
from engram_ros.core.keys import KeyFileError
from engram_ros.core.keys import read_key_file
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import META_AUDIT_HEAD
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.codec import to_record
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import KINDS
from engram_ros.core.model.engram import TIERS
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import StoreOpenError


class CliError(Exception):
    """A command that cannot be done; printed as ``engram: error: ...``, exit status 1."""


# ----------------------------------------------------------------------------- argument types

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


def add_filter(p: argparse.ArgumentParser, *, ids: bool = False) -> None:
    """The selection options of ``list`` and ``forget`` (read back by :func:`selection`)."""
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


def selection(args: argparse.Namespace) -> EngramFilter:
    """The :class:`EngramFilter` the options of :func:`add_filter` (and the times) describe."""
    near = getattr(args, 'near', None)
    start = getattr(args, 'since', None) or getattr(args, 'after', None)
    end = getattr(args, 'until', None) or getattr(args, 'before', None)
    return EngramFilter(
        kinds=tuple(args.kind), tags_all=tuple(args.tag),
        tags_any=tuple(getattr(args, 'any_tag', ())), tags_none=tuple(getattr(args, 'no_tag', ())),
        center=None if near is None else np.array([near[0], near[1], 0.0]),
        radius=0.0 if near is None else near[2], t_start=start, t_end=end,
        tier=getattr(args, 'tier', None) or '', pinned=getattr(args, 'pinned', None))


def requester(args: argparse.Namespace) -> str:
    """Who asks, for the audit log: ``--as`` or ``cli:<user>``."""
    if args.requester:
        return args.requester
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = 'unknown'
    return f'cli:{user}'


def confirm(question: str) -> bool:
    """Ask on the terminal; without one, refuse (a script must say ``--yes``)."""
    if not sys.stdin.isatty():
        raise CliError('refusing to forget without confirmation: stdin is not a terminal; '
                       'add --yes')
    answer = input(f'{question} [y/N] ').strip().lower()
    return answer in ('y', 'yes')


# ----------------------------------------------------------------------------- output

def iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).isoformat(timespec='seconds') if t else '-'


def print_table(rows: list[Sequence[str]], header: Sequence[str], out: TextIO) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = '  '.join(h.ljust(w) for h, w in zip(header, widths))
    print(line.rstrip(), file=out)
    print('  '.join('-' * w for w in widths), file=out)
    for r in rows:
        print('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)


ENGRAM_HEADER = ('id', 'kind', 'label', 'tier', 'pin', 'where [m]', 'last seen', 'seen',
                 'tags')


def engram_row(e: Engram) -> list[str]:
    """One engram as a row of :data:`ENGRAM_HEADER`."""
    x, y, z = (float(v) for v in e.position)
    return [str(e.id), e.kind, e.label or '-', e.tier, 'yes' if e.pinned else '',
            f'({x:.2f}, {y:.2f}, {z:.2f})', iso(e.last_seen), str(e.observation_count),
            ' '.join(t for t in e.tags if not t.startswith('label:'))]


def print_engrams(engrams: Iterable[Engram], args: argparse.Namespace, out: TextIO) -> None:
    """A table, or with ``--json`` one record (without its vector) per line."""
    engrams = list(engrams)
    if args.json:
        for e in engrams:
            record = to_record(e)
            record.pop('vector')
            print(json.dumps(record), file=out)
        return
    print_table([engram_row(e) for e in engrams], ENGRAM_HEADER, out)


def progress(total: int, label: str, stream: TextIO | None = None) -> tqdm:
    """A progress bar on stderr (or ``stream``), drawn only when it is a terminal."""
    stream = stream or sys.stderr
    return tqdm(total=max(int(total), 0), desc=label, file=stream, disable=not stream.isatty(),
                mininterval=0.1, unit='engram')


# ----------------------------------------------------------------------------- the store

def audit_keys(key_file: Path | str | None, store_dir: Path) -> AuditKeys | None:
    """The audit keys of ``--key FILE`` (``None`` without one).

    :raises StoreOpenError: for a key file that cannot be used (missing, malformed, readable
        by others, inside the store); nothing is touched then.
    """
    if not key_file:
        return None
    try:
        return read_key_file(key_file, store_dir=store_dir).audit_keys()
    except KeyFileError as exc:
        raise StoreOpenError(f'--key: {exc}') from None


def open_store(directory: Path, frame_id: str = 'map', create: bool = False,
               dim: int | None = None, key: AuditKeys | None = None) -> MemoryStore:
    """The memory in ``directory``, audited, for offline work.

    :param dim: vector dimension for a store that has none yet (default 256).
    :param key: the audit keys; a keyed log cannot be extended without them.
    :raises StoreOpenError: when ``directory`` is not a store, or its audit log cannot be
        opened (keyed, and no or another key given); it is not touched then.
    """
    try:
        check_key(Path(directory) / AUDIT_FILE_NAME, key)     # before anything is opened
    except AuditError as exc:
        raise StoreOpenError(str(exc)) from None
    storage = SQLiteStorage(directory, create=create)
    try:
        dim = int(storage.get_meta('dim') or dim or 256)
        try:
            audit = AuditLog(storage.directory / AUDIT_FILE_NAME, key=key,
                             db_head=storage.get_meta(META_AUDIT_HEAD))
        except AuditError as exc:
            raise StoreOpenError(str(exc)) from None
        return MemoryStore(storage, StoreConfig(dim=dim, frame_id=frame_id), audit=audit)
    except BaseException:
        storage.close()
        raise
