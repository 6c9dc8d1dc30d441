"""``engram verify [--key FILE]``: check that a store is whole: SQLite, index cache vs rows,
evidence, audit chain; without changing a byte of it (:mod:`engram_ros.core.store_check`), so
a second run finds what the first found.

Each check prints one line (``ok`` or ``FAILED`` with the first problems); the exit status is 1
when any check failed. With ``--key`` (the memory's key file) every audit record's MAC and the
saved head are checked: a log rewritten by someone without the key fails. Without it the audit
line says ``unkeyed: detects accidental damage only``.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from engram_ros.core.store_check import check_store


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('verify', help='check SQLite, index, evidence files and the audit chain '
                                      '(read-only)')
    # Also accepted after the verb; SUPPRESS keeps a global --key given before it.
    p.add_argument('--key', default=argparse.SUPPRESS, metavar='FILE',
                   help='the key file the audit log is keyed with (engram keygen)')


def cmd_verify(directory, key, out: TextIO) -> int:
    """Print one line per check; 1 when any failed."""
    failed = False
    for check in check_store(directory, key):
        failed = failed or bool(check.problems)
        status = 'ok' if not check.problems else 'FAILED'
        text = check.ok_text if not check.problems else '; '.join(check.problems[:5])
        print(f'{check.name:10s} {status:7s} {text}', file=out)
    return 1 if failed else 0


#: Not an ordinary offline command: it never opens the store for writing (see the CLI's main).
COMMANDS: dict = {}
