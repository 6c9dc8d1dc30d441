"""``engram keygen FILE``: a new evidence encryption key, written once with mode 0600.

Needs no store: the key is what a memory node is started with to encrypt evidence files.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

from engram_ros.apps.cli.common import CliError
from engram_ros.core.evidence import EvidenceStore


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('keygen', help='write a new evidence encryption key (mode 0600)')
    p.add_argument('file', type=Path)


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
