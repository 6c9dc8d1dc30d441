"""Where people see, correct and delete what is kept, and where evidence files expire.

The requests are :mod:`engram_ros.core.governance`; this module carries them out on the
store: selecting ids by a filter, editing one engram, forgetting a selection for good (rows,
evidence files only those engrams referenced, and the saved index cache), and deleting evidence
files past their retention (:mod:`engram_ros.core.privacy`), of refused observations, or that
a merge dropped from an engram's capped evidence list. Every file is deleted through
:func:`engram_ros.core.evidence.delete_inside`: nothing outside the evidence directory, even
behind a symlink inside it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.evidence import delete_inside
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import ForgetResult
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.memory import lifecycle
from engram_ros.core.memory import writes
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import TIER_SHORT

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)


def select(store: MemoryStore, selection: EngramFilter) -> list[int]:
    """Ids (increasing) of the live engrams a normalized filter picks."""
    kinds = [kind_code(k) for k in selection.kinds]
    with store._lock:
        index, state = store.index, store.state
        slots = index.filter(
            tags_all=selection.tags_all, tags_any=selection.tags_any,
            tags_none=selection.tags_none, kinds=kinds,
            center=selection.center if selection.radius > 0.0 else None,
            radius=selection.radius, t_start=selection.t_start, t_end=selection.t_end)
        if slots is None:
            slots = index.live_slots()
        ids = [int(i) for i in index.ids_of(np.asarray(slots))]
        if selection.tier:
            short = state.short
            want_short = selection.tier == TIER_SHORT
            ids = [i for i in ids if (i in short) == want_short]
        if selection.pinned is not None:
            ids = [i for i in ids if (i in state.pinned) == selection.pinned]
    return sorted(ids)


def edit(store: MemoryStore, engram_id: int, add_tags: Sequence[str],
         remove_tags: Sequence[str], label: str | None, pinned: bool | None) -> Engram:
    """Correct one engram (see :meth:`MemoryStore.edit`); raises :class:`GovernanceError`."""
    try:
        add = sketch.normalize_tags(tuple(add_tags))
        remove = sketch.normalize_tags(tuple(remove_tags))
        new_label = None if label is None else label.strip()
        label_tag = sketch.normalize_tags(('label:' + new_label,)) if new_label else ()
    except ValueError as exc:
        raise GovernanceError(GovernanceStatus.INVALID_TAG, str(exc)) from None
    both = set(add) & set(remove)
    if both:
        raise GovernanceError(GovernanceStatus.INVALID_EDIT,
                              f'tag(s) {", ".join(sorted(both))} both added and removed')
    if not (add or remove or label is not None or pinned is not None):
        raise GovernanceError(GovernanceStatus.INVALID_EDIT,
                              'nothing to change: give tags to add or remove, a label, '
                              'pin or unpin')
    with store._write_lock:
        found = store.storage.get([engram_id])
        if not found:
            raise GovernanceError(GovernanceStatus.UNKNOWN_ID,
                                  f'no engram with id {engram_id} in the memory')
        engram = found[0]
        tags = set(engram.tags) - set(remove)
        if new_label is not None:
            if engram.label:
                tags.discard(sketch.normalize_tags(('label:' + engram.label,))[0])
            engram.label = new_label   # as given; its tag is canonical, as on ingest
            tags.update(label_tag)
        tags.update(add)
        removed_something = bool(set(engram.tags) - tags)
        engram.tags = tuple(sorted(tags))
        if pinned is not None:
            engram.pinned = bool(pinned)
        store.storage.put([engram])
        with store._lock:
            writes.publish_one(store, engram)
        if removed_something:
            purge(store)
        return engram


def forget_selected(store: MemoryStore, ids: Sequence[int], selection: EngramFilter | None,
                    dry_run: bool) -> ForgetResult:
    """Forget ``ids`` and/or what ``selection`` picks (see :meth:`MemoryStore.forget`)."""
    bad = [i for i in ids if not isinstance(i, (int, np.integer)) or int(i) <= 0]
    if bad:
        raise GovernanceError(GovernanceStatus.UNKNOWN_ID,
                              f'invalid id(s) {bad[:10]}; ids are integers >= 1')
    if selection is not None:
        selection = selection.normalized(store.config.frame_id)
    has_filter = selection is not None and not selection.is_empty()
    if not ids and not has_filter:
        raise GovernanceError(GovernanceStatus.EMPTY_SELECTION,
                              'nothing selected: give ids, tags, kinds, a region, a time '
                              'window, a tier or pinned; to erase the whole memory delete '
                              'its store directory')
    with store._write_lock:
        chosen: list[int] | None = None
        unknown: list[int] = []
        if ids:
            wanted = list(dict.fromkeys(int(i) for i in ids))
            with store._lock:
                chosen = [i for i in wanted if i in store.index]
            unknown = [i for i in wanted if i not in set(chosen)]
        if has_filter:
            assert selection is not None
            picked = select(store, selection)
            chosen = picked if chosen is None else sorted(set(chosen) & set(picked))
        chosen = chosen or []
        result = ForgetResult(list(chosen), unknown, dry_run=dry_run)
        if dry_run:
            return result
        if chosen:
            files = _evidence_paths(store, chosen)
            writes.forget(store, chosen)
            result.evidence_files = sum(1 for f in files if not f.exists())
        # Even when nothing matched: what earlier evictions and merges removed may still sit
        # in the WAL, and a user who asks to forget expects it gone now.
        purge(store)
        return result


def purge(store: MemoryStore) -> None:
    """Make deleted data unrecoverable from the store directory (see the package doc): the
    WAL checkpointed and truncated, the saved index cache deleted (a clean close saves it
    again, compacted: without any removed engram)."""
    store.storage.purge()
    lifecycle.drop_cache(store)


def _evidence_paths(store: MemoryStore, ids: Sequence[int]) -> list[Path]:
    if store.evidence is None:
        return []
    paths = []
    for engram in store.storage.get(list(ids)):
        paths += [p for p in map(store.evidence.path_of, engram.evidence) if p is not None]
    return paths


def drop_unreferenced_evidence(store: MemoryStore, uris: Sequence[str]) -> int:
    """Delete the evidence files ``uris`` name unless an engram references them: those of a
    refused observation, or those a merge dropped from an engram's capped evidence list
    (called after the merged engram is committed).

    :returns: how many files were deleted.
    """
    if store.evidence is None or not uris:
        return 0
    uris = list(dict.fromkeys(uris))
    in_use = store.storage.evidence_users(uris)
    deleted = 0
    for uri in uris:
        if uri not in in_use:
            try:
                deleted += store.evidence.delete(uri)
            except OSError as exc:
                _LOG.warning('could not delete evidence %s: %s', uri, exc)
    return deleted


def expire_evidence(store: MemoryStore, now: float, dry_run: bool) -> int:
    """Delete evidence files past their retention; drop their URIs from engrams."""
    evidence = store.evidence
    if evidence is None or not store.config.privacy.retention:
        return 0
    expired = evidence.expired(store.config.privacy, now)
    if dry_run or not expired:
        return len(expired)
    uris = [p.as_uri() for p in expired]
    users = store.storage.evidence_users(uris)
    gone = set(expired)
    changed = []
    for engram in store.storage.get(sorted({i for ids in users.values() for i in ids})):
        engram.evidence = tuple(u for u in engram.evidence if evidence.path_of(u) not in gone)
        changed.append(engram)
    if changed:
        store.storage.put(changed)
    deleted = 0
    for path in expired:
        try:
            deleted += delete_inside(evidence.directory, path.relative_to(evidence.directory))
        except (OSError, ValueError) as exc:
            _LOG.warning('could not delete expired evidence %s: %s', path, exc)
    _LOG.info('evidence retention: deleted %d files, updated %d engrams', deleted,
              len(changed))
    return deleted
