"""``engram verify``: check that a store is whole: SQLite, index vs rows, evidence, audit chain.

Each check prints one line (``ok`` or ``FAILED`` with the first problems); the exit status is 1
when any check failed.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from engram_ros.apps.cli.common import progress
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import META_AUDIT_HEAD


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sub.add_parser('verify', help='check SQLite, index, evidence files and the audit chain')


def cmd_verify(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    problems: list[str] = []

    def report(name: str, issues: list[str], ok_text: str) -> None:
        problems.extend(issues)
        status = 'ok' if not issues else 'FAILED'
        print(f'{name:10s} {status:7s} {ok_text if not issues else "; ".join(issues[:5])}',
              file=out)

    report('sqlite', store.storage.integrity_check(), 'quick_check ok')
    count = store.storage.count()
    ids_in_rows = set()
    missing_files = []
    with progress(count, 'checking') as bar:
        for e in store.storage.iter_all(batch_size=2000):
            ids_in_rows.add(e.id)
            for uri in e.evidence:
                path = store.evidence.path_of(uri) if store.evidence is not None else None
                if path is not None and not path.is_file():
                    missing_files.append(f'engram {e.id}: {path} is missing')
            bar.update()
    index_ids = store.indexed_ids()
    index_issues = []
    if index_ids != ids_in_rows:
        index_issues.append(f'{len(ids_in_rows - index_ids)} rows not in the index, '
                            f'{len(index_ids - ids_in_rows)} index entries without a row')
    report('index', index_issues, f'{len(index_ids)} entries match {count} rows')
    report('evidence', missing_files, 'every referenced evidence file exists')
    if store.audit is not None:
        result = store.audit.verify(_audit_head(store))
        report('audit', [] if result.ok else [result.message], result.message)
    return 1 if problems else 0


def _audit_head(store: MemoryStore) -> tuple[int, str] | None:
    """The audit chain's head as the store last recorded it (``None``: never recorded)."""
    head_text = store.storage.get_meta(META_AUDIT_HEAD)
    if head_text and ':' in head_text:
        seq, digest = head_text.split(':', 1)
        return int(seq), digest
    return None


COMMANDS = {'verify': cmd_verify}
