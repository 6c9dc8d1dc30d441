"""``engram keygen FILE``: a new master key, written once with mode 0600.

Needs no store. The memory node is started with it (``audit_key_file`` keys the audit log,
``encryption_key_file`` encrypts evidence; one file may serve both, each use derives its own
sub-key) and ``engram --key FILE`` opens or verifies a keyed store. Keep it outside the store
directory. Format and the old Fernet key files: :mod:`engram_ros.core.keys`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from engram_ros.apps.cli.common import CliError
from engram_ros.core.keys import write_key_file


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('keygen', help='write a new master key (audit MACs, evidence '
                                      'encryption; mode 0600)')
    p.add_argument('file', type=Path)


def cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    path: Path = args.file
    try:
        write_key_file(path)
    except FileExistsError:
        raise CliError(f'{path} exists; a key is never overwritten') from None
    except OSError as exc:
        raise CliError(f'cannot write {path}: {exc.strerror}') from None
    print(f'wrote a new key to {path} (mode 0600); keep it safe and outside the store: '
          'without it encrypted evidence cannot be read and a keyed audit log can be neither '
          'extended nor verified', file=out)
    return 0
