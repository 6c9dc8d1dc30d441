"""``engram --store DIR backup TARGET``: a consistent copy of a store, also while its memory
node runs and writes.

It never opens the store as a memory (that would load the index and write to the store the
node owns): it reads the database through SQLite's online backup API and copies files beside
it; what is copied how is :mod:`engram_ros.core.storage.backup`. Nothing is written to the
source store, its audit log included (a second writer would fork the chain the node appends
to).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from engram_ros.apps.cli.common import CliError
from engram_ros.core.storage.backup import backup_store
from engram_ros.core.storage.backup import BackupError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('backup', help='copy the store (also while the memory node runs) into '
                                      'a new directory')
    p.add_argument('target', type=Path, help='new (or empty) directory for the backup')


def cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    try:
        report = backup_store(args.store, args.target)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f'backup of {report.engrams} engrams, {report.evidence_files} evidence files and '
          f'{report.audit_files} audit files written to {report.target}', file=out)
    if report.evidence_dropped:
        print(f'{report.evidence_dropped} evidence references were dropped: the running '
              'memory deleted their files during the backup', file=out)
    print(f'check it with: engram --store {report.target} verify', file=out)
    return 0
