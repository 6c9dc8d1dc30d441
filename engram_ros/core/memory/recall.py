"""Where engrams are ranked for a query: two-stage recall (filter, then rank), and the
recall statistics it leaves behind.

Stage one narrows by tags, kinds, region, time window and validity (history is hidden unless
the query asks ``at_time`` or ``changed_since``), expressed as a
:class:`~engram_ros.core.backend.Stage1Filter` so another engine could run it; stage two ranks
what is left (:mod:`engram_ros.core.ranking`). A scope beyond this robot adds the other
robots' candidates from the fleet, ranked by the same code and merged by score
(:mod:`.fleet_recall`). Query text becomes tags word by word, or by meaning when the store has
a :attr:`~MemoryStore.text_matcher`; a word that names a category finds the labels that are
one (:mod:`engram_ros.core.categories`). The engrams returned count as recalled: their
statistics are kept in the state and written at the next consolidation or close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core import categories
from engram_ros.core import sketch
from engram_ros.core.audit import AuditLog
from engram_ros.core.backend import filter_index
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.labels import parse_label
from engram_ros.core.memory import fleet_recall
from engram_ros.core.query import FleetAnswer
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallHit
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallResult
from engram_ros.core.query import RecallScope
from engram_ros.core.query import RecallStatus
from engram_ros.core.ranking import rank
from engram_ros.core.semantic import NAMESPACES as SEMANTIC_NAMESPACES
from engram_ros.core.semantic import SemanticMatch

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore


def recall(store: MemoryStore, query: RecallQuery, now: float | None) -> RecallResult:
    """Answer ``query`` (see :meth:`MemoryStore.recall`); raises :class:`QueryError`."""
    config = store.config
    query.validate(config.dim, config.max_k, config.frame_id)
    now = store.clock() if now is None else now
    own = fleet_recall.own_robot_id(store)
    local, others = fleet_recall.reach(query, own)
    try:
        tags_all = sketch.normalize_tags(query.tags_all)
        tags_any = sketch.normalize_tags(query.tags_any)
        tags_none = sketch.normalize_tags(query.tags_none)
    except ValueError as exc:
        raise QueryError(RecallStatus.INVALID_TAG, str(exc)) from None
    groups: list[tuple[str, ...]] = []
    resolved: list[categories.Resolved] = []
    meant: list[SemanticMatch] = []
    if query.text.strip():
        groups, resolved, meant = _text_tags(store, query.text)
        if others is not None:
            # Words are resolved against this robot's labels; another robot may carry the
            # word's own tag (one this memory has no engram for), so each word's group gets
            # it too, ranked alike on both sides.
            widened = [tuple(dict.fromkeys((*r.tags, r.tag))) for r in resolved]
            groups = groups + widened if meant else widened
        text_tags = tuple(dict.fromkeys(t for g in groups for t in g))
        if not text_tags and query.vector is None and not (tags_all or tags_any):
            unmatched = categories.describe(resolved)
            return RecallResult(message=f'nothing in the memory matches {query.text!r}: '
                                        'no known label, room, colour or sound in it'
                                        + (', nor one close in meaning'
                                           if store.text_matcher is not None else '')
                                        + (f' ({unmatched})' if unmatched else ''))
        tags_any = tags_any + tuple(t for t in text_tags if t not in tags_any)
    # Ranking counts each question word once, whichever of the labels it means an engram has.
    query_tags: list[str | tuple[str, ...]] = list(dict.fromkeys(
        tags_all + tuple(t for t in tags_any if not any(t in g for g in groups))))
    query_tags += [g for g in groups if not set(g) & set(tags_all)]
    # Stage 1 as data (the backend boundary): what another engine would be asked to filter.
    where = Stage1Filter.for_recall(query, tags_all=tags_all, tags_any=tags_any,
                                    tags_none=tags_none)
    hits: list[RecallHit] = []
    n_candidates = 0
    if local:
        hits, n_candidates = _local_hits(store, query, where, query_tags, now, own)
    fleet = fleet_recall.FleetPart(FleetAnswer.NOT_ASKED)
    if others is not None:
        fleet = fleet_recall.fleet_hits(store, query, where, others, query_tags, now)
        hits = fleet_recall.merge(hits, fleet.hits, query.k)
        n_candidates += fleet.candidates
    message = f'{len(hits)} of {n_candidates} candidates'
    if fleet.answer == FleetAnswer.ANSWERED:
        message += (f' ({sum(h.robot != own for h in hits)} from other robots of the fleet'
                    f'{fleet.note})')
    elif fleet.note:
        message += f' ({fleet.note})'
    if meant:
        message += ' (no exact word; text means ' + ', '.join(
            f'{m.tag} {m.similarity:.2f}' for m in meant) + ')'
    elif resolved:
        message += f' (text matched {categories.describe(resolved)})'
    return RecallResult(hits=hits, candidates=n_candidates, message=message,
                        fleet=fleet.answer)


def _local_hits(store: MemoryStore, query: RecallQuery, where: Stage1Filter,
                query_tags: list[str | tuple[str, ...]], now: float,
                own: str) -> tuple[list[RecallHit], int]:
    """This robot's ranked hits (marked ``own``) and its stage-1 candidate count; the hits
    count as recalled."""
    with store._lock:
        index = store.index
        candidates = filter_index(index, where, store.state.validity)
        n_candidates = len(index) if candidates is None else len(candidates)
        ranked = rank(index, query, candidates, query_tags, store.config.ranking, now)
        ids = [int(i) for i in index.ids_of(ranked.slots)]
    engrams = {e.id: e for e in store.storage.get(ids)}
    hits = []
    for i, engram_id in enumerate(ids):
        engram = engrams.get(engram_id)
        if engram is None:      # forgotten between the two stages
            continue
        hits.append(RecallHit(engram, float(ranked.combined[i]), float(ranked.symbolic[i]),
                              float(ranked.dense[i]), float(ranked.spatial[i]),
                              float(ranked.temporal[i]), float(ranked.support[i]), robot=own))
    with store._lock:
        store.state.touch([h.engram.id for h in hits], now)
    return hits, n_candidates


#: Tag namespaces a question's words are resolved in (against the tags live engrams carry).
_WORD_NAMESPACES = ('label', 'color', 'room', 'size', 'sound')


def _text_tags(store: MemoryStore, text: str
               ) -> tuple[list[tuple[str, ...]], list[categories.Resolved], list[SemanticMatch]]:
    """What the query text asks for, as groups of tags live engrams carry (one group per word):
    known words resolved to the labels they name (exact, is-a, meaning: see
    :mod:`engram_ros.core.categories`); when none finds anything, (with a matcher) the tags
    closest in meaning to the whole text. Words that find nothing are left out, so a question
    never becomes a filter that matches nothing."""
    known = store.known_labels()
    text_tags = sketch.text_to_tags(text, known_labels=categories.question_words(known))
    with store._lock:   # the question's tags and every label, not every tag name (vw:, place:)
        present = store.index.present_tags(_WORD_NAMESPACES, among=list(text_tags) + [
            f'label:{form}' for label in known for form in (label, parse_label(label).label)])
        # A room the map names that no vocabulary lists ("workshop", "server room"): its
        # words name it when the memory holds that room tag.
        rooms = [t for t in store.index.present_tags(('room',), among=sketch.word_tags(
            text, 'room')) if t not in text_tags]
    text_tags += tuple(rooms)
    present += rooms
    resolved = [categories.resolve(t, present, store.text_matcher) for t in text_tags]
    groups = [r.tags for r in resolved if r.matches]
    meant: list[SemanticMatch] = []
    if not groups and store.text_matcher is not None:
        # No word found anything: the memory's tags closest in meaning to the text, if any.
        with store._lock:
            present = store.index.present_tags(SEMANTIC_NAMESPACES)
        meant = store.text_matcher.match(text, present)
        # Nested groups (best; best or second; ...): the closer a tag's meaning, the more
        # of them an engram with it carries, so ranking follows the similarity.
        groups = [tuple(m.tag for m in meant[:n + 1]) for n in range(len(meant))]
    return groups, resolved, meant


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
    store.storage.put(engrams, dirty=False)   # statistics only: nothing to consolidate


def query_summary(audit: AuditLog | None, query: RecallQuery) -> dict:
    """What the audit log keeps of a query: digests of its words and tags, its bounds."""
    if audit is None:
        return {}
    scope = query.scope
    out: dict = {'k': query.k, 'scope': (RecallScope(scope).name.lower()
                                         if scope in tuple(RecallScope) else scope)}
    if query.robots:
        out['robots'] = list(query.robots)
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
