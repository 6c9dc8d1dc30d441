"""``engram export | import``: move a memory between stores as JSON lines.

An export is one record per line and a folder ``FILE.evidence`` beside the file holding copies
of the evidence files the store owns (paths relative to it travel in ``evidence_files``;
evidence outside the store stays a reference). An import adds the engrams with new ids and
copies the evidence into the target store; references between the imported engrams (a
history's successor, an object's anchor place) are renumbered to the new ids.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Sequence
from typing import TextIO

from engram_ros.apps.cli.common import CliError
from engram_ros.apps.cli.common import progress
from engram_ros.apps.cli.common import requester
from engram_ros.core.audit import id_summary
from engram_ros.core.files import open_private
from engram_ros.core.files import private_dir
from engram_ros.core.files import tighten
from engram_ros.core.memory import MemoryStore
from engram_ros.core.model.codec import from_record
from engram_ros.core.model.codec import to_record
from engram_ros.core.model.engram import Engram


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('export', help='write engrams as JSON lines, evidence copied beside')
    p.add_argument('file', type=Path)
    p = sub.add_parser('import', help='add engrams from an export (new ids)')
    p.add_argument('file', type=Path)


def evidence_folder(file: Path) -> Path:
    """Where the evidence files of the export ``file`` are copied."""
    return file.with_name(file.name + '.evidence')


def export_dim(file: Path) -> int | None:
    """The vector dimension of the first record of an export, if it has one."""
    try:
        with open(file, encoding='utf-8') as f:
            return len(json.loads(f.readline())['vector'])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- export

def cmd_export(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    target: Path = args.file
    folder = evidence_folder(target)
    if target.exists() or folder.exists():
        raise CliError(f'{target} or {folder} exists; choose a new file name')
    private_dir(folder)      # an export holds what the store does: as private as the store
    ids = []
    copied = 0
    fd = open_private(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, 'w', encoding='utf-8') as f, progress(len(store), 'exporting') as bar:
        for engram in store.storage.iter_all(batch_size=2000):
            record = to_record(engram)
            files = _copy_evidence_out(store, engram, folder)
            copied += len(files)
            # Copied files travel as paths relative to the evidence folder; other URIs as they are.
            record['evidence'] = [u for u in engram.evidence if store.evidence is None
                                  or store.evidence.path_of(u) is None]
            record['evidence_files'] = files
            f.write(json.dumps(record) + '\n')
            ids.append(engram.id)
            bar.update()
    store.audit_event('export', requester(args), {'file': str(target.resolve())},
                      dict(id_summary(ids), evidence_files=copied))
    print(f'exported {len(ids)} engrams to {target} ({copied} evidence files in {folder})',
          file=out)
    return 0


def _copy_evidence_out(store: MemoryStore, engram: Engram, folder: Path) -> list[str]:
    """Copy the evidence files of ``engram`` the store owns; their paths relative to it."""
    files = []
    for uri in engram.evidence:
        path = store.evidence.path_of(uri) if store.evidence is not None else None
        if path is not None and path.is_file():
            relative = path.relative_to(store.evidence.directory)  # type: ignore[union-attr]
            private_dir((folder / relative).parent)
            shutil.copy2(path, folder / relative)
            tighten(folder / relative)
            files.append(relative.as_posix())
    return files


# ----------------------------------------------------------------------------- import

def cmd_import(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    source: Path = args.file
    try:
        lines = source.read_text(encoding='utf-8').splitlines()
    except OSError as exc:
        raise CliError(f'cannot read {source}: {exc.strerror}') from None
    engrams = []
    with progress(len(lines), 'importing') as bar:
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                engram = from_record(record)
            except (ValueError, KeyError, TypeError) as exc:
                raise CliError(f'{source}:{n} is not an exported engram ({exc}); nothing '
                               'imported') from None
            if engram.vector.shape[0] != store.config.dim:
                raise CliError(f'{source}:{n} has a {engram.vector.shape[0]}-d vector; the '
                               f'store uses {store.config.dim}; nothing imported')
            engram.evidence = _copy_evidence_in(store, engram, record, evidence_folder(source))
            engrams.append(engram)
            bar.update()
    new_ids = load_renumbered(store, engrams)
    store.audit_event('import', requester(args), {'file': str(source.resolve())},
                      id_summary(new_ids))
    print(f'imported {len(engrams)} engrams from {source}', file=out)
    return 0


def _copy_evidence_in(store: MemoryStore, engram: Engram, record: dict,
                      folder: Path) -> tuple[str, ...]:
    """Copy the exported evidence files of one record into the store; all its URIs."""
    evidence = store.evidence
    uris = [u for u in engram.evidence if evidence is None
            or evidence.path_of(u) is None]    # references outside the store stay
    for relative in record.get('evidence_files', ()):
        src = (folder / relative).resolve()
        if evidence is None or not src.is_relative_to(folder.resolve()) or not src.is_file():
            continue
        dest = evidence.directory / relative
        if dest.exists():
            dest = dest.with_name(f'imported-{time.time_ns()}-{dest.name}')
        private_dir(dest.parent)      # the store's files are private, imported ones too
        shutil.copy2(src, dest)
        tighten(dest)
        uris.append(dest.as_uri())
    return tuple(uris)


def load_renumbered(store: MemoryStore, engrams: Sequence[Engram]) -> list[int]:
    """Add ``engrams`` with new ids, their references to each other renumbered to match.

    ``successor_id`` and ``anchor_id`` name other engrams by id; the store assigns new ids as it
    loads. So the engrams are loaded in waves, those referred to before those that refer to
    them (one wave when nothing refers to anything). A reference to an engram that is not in
    ``engrams`` (or a cycle, which a store does not make) becomes 0: there is nothing to point to.

    :returns: the new ids, in the order of ``engrams``.
    """
    position = {e.id: i for i, e in enumerate(engrams)}
    new_ids = [0] * len(engrams)
    pending = list(range(len(engrams)))

    def known(ref: int) -> bool:
        return ref not in position or new_ids[position[ref]] != 0

    while pending:
        ready = [i for i in pending
                 if known(engrams[i].successor_id) and known(engrams[i].anchor_id)]
        ready = ready or pending        # a cycle: load the rest, its references dropped
        batch = []
        for i in ready:
            e = engrams[i].copy()
            e.successor_id = _renumbered(e.successor_id, position, new_ids)
            e.anchor_id = _renumbered(e.anchor_id, position, new_ids)
            batch.append(e)
        for i, new_id in zip(ready, store.bulk_load(batch)):
            new_ids[i] = new_id
        pending = [i for i in pending if new_ids[i] == 0]
    return new_ids


def _renumbered(ref: int, position: dict[int, int], new_ids: list[int]) -> int:
    return new_ids[position[ref]] if ref in position else 0


COMMANDS = {'export': cmd_export, 'import': cmd_import}
