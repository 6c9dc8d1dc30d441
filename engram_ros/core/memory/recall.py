"""Where engrams are ranked for a query: two-stage recall (filter, then rank), and the
recall statistics it leaves behind.

Stage one narrows by tags, kinds, region and time window (the index) and by validity (history
is hidden unless the query asks ``at_time`` or ``changed_since``); stage two ranks what is left
(:mod:`engram_ros.core.ranking`). Query text becomes tags word by word, or by meaning when the
store has a :attr:`~MemoryStore.text_matcher`. The engrams returned count as recalled: their
statistics are kept in the state and written at the next consolidation or close.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.audit import AuditLog
from engram_ros.core.engram import kind_code
from engram_ros.core.index import EngramIndex
from engram_ros.core.memory.state import MemoryState
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallHit
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallResult
from engram_ros.core.query import RecallStatus
from engram_ros.core.ranking import rank
from engram_ros.core.semantic import NAMESPACES as SEMANTIC_NAMESPACES
from engram_ros.core.semantic import SemanticMatch
from engram_ros.core.validity import valid_mask

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore


def recall(store: MemoryStore, query: RecallQuery, now: float | None) -> RecallResult:
    """Answer ``query`` (see :meth:`MemoryStore.recall`); raises :class:`QueryError`."""
    config = store.config
    query.validate(config.dim, config.max_k, config.frame_id)
    now = time.time() if now is None else now
    try:
        tags_all = sketch.normalize_tags(query.tags_all)
        tags_any = sketch.normalize_tags(query.tags_any)
        tags_none = sketch.normalize_tags(query.tags_none)
    except ValueError as exc:
        raise QueryError(RecallStatus.INVALID_TAG, str(exc)) from None
    text_tags: tuple[str, ...] = ()
    meant: list[SemanticMatch] = []
    if query.text.strip():
        text_tags, meant = _text_tags(store, query.text)
        if not text_tags and query.vector is None and not (tags_all or tags_any):
            return RecallResult(message=f'nothing in the memory matches {query.text!r}: '
                                        'no known label, room, colour or sound in it'
                                        + (', nor one close in meaning'
                                           if store.text_matcher is not None else ''))
        tags_any = tags_any + tuple(t for t in text_tags if t not in tags_any)
    query_tags = tuple(dict.fromkeys(tags_all + tags_any))
    kinds = [kind_code(k) for k in query.kinds]
    with store._lock:
        index = store.index
        candidates = index.filter(
            tags_all=tags_all, tags_any=tags_any, tags_none=tags_none, kinds=kinds,
            center=query.center if query.radius > 0.0 else None, radius=query.radius,
            t_start=query.t_start, t_end=query.t_end)
        candidates = valid_slots(index, store.state, candidates, query.at_time,
                                 query.changed_since)
        n_candidates = len(index) if candidates is None else len(candidates)
        ranked = rank(index, query, candidates, query_tags, config.ranking, now)
        ids = [int(i) for i in index.ids_of(ranked.slots)]
    engrams = {e.id: e for e in store.storage.get(ids)}
    hits = []
    for i, engram_id in enumerate(ids):
        engram = engrams.get(engram_id)
        if engram is None:      # forgotten between the two stages
            continue
        hits.append(RecallHit(engram, float(ranked.combined[i]), float(ranked.symbolic[i]),
                              float(ranked.dense[i]), float(ranked.spatial[i]),
                              float(ranked.temporal[i]), float(ranked.support[i])))
    with store._lock:
        store.state.touch([h.engram.id for h in hits], now)
    message = f'{len(hits)} of {n_candidates} candidates'
    if meant:
        message += ' (no exact word; text means ' + ', '.join(
            f'{m.tag} {m.similarity:.2f}' for m in meant) + ')'
    elif text_tags:
        message += f' (text matched {", ".join(text_tags)})'
    return RecallResult(hits=hits, candidates=n_candidates, message=message)


def _text_tags(store: MemoryStore, text: str) -> tuple[tuple[str, ...], list[SemanticMatch]]:
    """Tags the query text names: known words, else (with a matcher) tags close in meaning."""
    text_tags = sketch.text_to_tags(text, known_labels=store.known_labels())
    meant: list[SemanticMatch] = []
    if not text_tags and store.text_matcher is not None:
        # No known word in the text: the memory's tags closest in meaning, if any.
        with store._lock:
            present = store.index.present_tags(SEMANTIC_NAMESPACES)
        meant = store.text_matcher.match(text, present)
        text_tags = tuple(m.tag for m in meant)
    return text_tags, meant


def valid_slots(index: EngramIndex, state: MemoryState, slots: np.ndarray | None,
                at_time: float | None, changed_since: float | None) -> np.ndarray | None:
    """Narrow filter-stage slots to the beliefs a recall may see (under the index lock).

    ``None`` (every live engram) stays ``None`` when there is no history to hide.
    """
    if at_time is None and changed_since is None:
        if not state.history:
            return slots
        hidden = np.array([index.slot_of(i) for i in state.history], dtype=np.int64)
        if slots is None:
            slots = index.live_slots()
        return np.asarray(slots)[~np.isin(slots, hidden)]
    if slots is None:
        slots = index.live_slots()
    slots = np.asarray(slots, dtype=np.int64)
    valid_from = index.first_seen_of(slots).astype(np.float64)
    valid_to = np.full(len(slots), math.inf)
    if state.validity:
        ids = index.ids_of(slots)
        for j, engram_id in enumerate(ids):
            override = state.validity.get(int(engram_id))
            if override is not None:
                valid_from[j], valid_to[j] = override
    return slots[valid_mask(valid_from, valid_to, at_time=at_time,
                            changed_since=changed_since)]


def flush_touched(store: MemoryStore) -> None:
    """Write the recall statistics kept since the last flush (under the write lock)."""
    with store._lock:
        touched = store.state.take_touched()
    if not touched:
        return
    engrams = store.storage.get(list(touched))
    for engram in engrams:
        last, count = touched[engram.id]
        engram.last_access = max(engram.last_access, last)
        engram.recall_count += count
    store.storage.put(engrams)


def query_summary(audit: AuditLog | None, query: RecallQuery) -> dict:
    """What the audit log keeps of a query: digests of its words and tags, its bounds."""
    if audit is None:
        return {}
    out: dict = {'k': query.k}
    if query.text:
        out['text'] = audit.digest(query.text)
    for name in ('tags_all', 'tags_any', 'tags_none'):
        if getattr(query, name):
            out[name] = audit.digests(getattr(query, name))
    if query.kinds:
        out['kinds'] = list(query.kinds)
    if query.vector is not None:
        out['vector'] = True
    if query.radius and query.center is not None:
        out['center'] = [round(float(c), 3) for c in np.asarray(query.center).reshape(-1)]
        out['radius'] = float(query.radius)
    for name, key in (('t_start', 'start'), ('t_end', 'end'), ('at_time', 'at_time'),
                      ('changed_since', 'changed_since')):
        if getattr(query, name) is not None:
            out[key] = getattr(query, name)
    return out
