"""Stage 1 as Milvus boolean expressions, and the plan that picks how a filtered search runs.

A :class:`~engram_ros.core.backend.Stage1Filter` becomes one expression over the scalar fields
of the fleet collection (:mod:`.milvus`): ``kind`` (the stable kind code), ``tags`` (an ARRAY
of VARCHAR: ``ARRAY_CONTAINS_ALL`` / ``ARRAY_CONTAINS_ANY`` / ``not ARRAY_CONTAINS_ANY``; or
``LIKE`` on ``tag_text``, their hex forms in one string, which milvus-lite evaluates far
faster than array functions), the
position ``x``/``y``/``z`` (a region becomes the box around its ball, slightly padded; the
exact 3D distance is checked by the caller on the returned float32 positions, as the embedded
index checks its own), the sighting interval ``first_seen``/``last_seen`` and the belief
interval ``valid_from``/``valid_to`` with ``current`` (a current belief's interval is
``[max(valid_from, first_seen), VALID_TO_OPEN)``, a history belief's its own), and the
writer ``robot`` (``in`` / ``not in`` a list of robot ids).

The plan (:func:`plan`) is the embedded index's (:mod:`engram_ros.core.index.dense`) applied to
a count the engine gives: a filter that matches at most ``exact_threshold`` engrams is answered
by fetching their vectors with a scalar query and ranking them exactly here; a larger set by
the engine's filtered HNSW search, with ``ef`` raised as the matching fraction drops, because
a filtered HNSW search with a fixed ``ef`` loses recall when few engrams pass (measured in
``docs/benchmarks/fleet_filter.md``). Nothing here imports ROS or pymilvus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engram_ros.core.backend import Stage1Filter
from engram_ros.core.model.engram import kind_code

#: ``valid_to`` stored for a current belief (its interval is open): a finite stand-in for
#: infinity that every engine's DOUBLE accepts and no real time reaches.
VALID_TO_OPEN = 1.0e300


def _num(value: float) -> str:
    """A float as an expression literal that reads back to the same double."""
    return repr(float(value))


def _strings(values: Sequence[str]) -> str:
    """A list literal of strings, quoted and escaped for a Milvus expression."""
    quoted = []
    for v in values:
        escaped = v.replace('\\', '\\\\').replace('"', '\\"')
        quoted.append(f'"{escaped}"')
    return '[' + ', '.join(quoted) + ']'


def tag_text(tags: Sequence[str]) -> str:
    """The ``tag_text`` field of an engram: each tag's UTF-8 bytes in hex between ``|``
    (``|6c6162656c3a6d7567|...|``), so that ``LIKE "%|<hex>|%"`` matches one tag exactly: hex
    has no LIKE wildcard (``%``, ``_``) and no quote to escape."""
    if not tags:
        return '|'
    return '|' + '|'.join(t.encode('utf-8').hex() for t in tags) + '|'


def _tag_like(tag: str) -> str:
    return f'tag_text like "%|{tag.encode("utf-8").hex()}|%"'


def _tag_parts(where: Stage1Filter, tags: str) -> list[str]:
    """The tag conditions: ``ARRAY_CONTAINS_*`` on the ``tags`` ARRAY (``tags='array'``: a
    Milvus server evaluates them natively and can index them) or ``LIKE`` on ``tag_text``
    (``'text'``: milvus-lite evaluates array functions row by row in Python, LIKE in Arrow)."""
    parts: list[str] = []
    if tags == 'array':
        if where.tags_all:
            parts.append(f'ARRAY_CONTAINS_ALL(tags, {_strings(where.tags_all)})')
        if where.tags_any:
            parts.append(f'ARRAY_CONTAINS_ANY(tags, {_strings(where.tags_any)})')
        if where.tags_none:
            parts.append(f'not ARRAY_CONTAINS_ANY(tags, {_strings(where.tags_none)})')
        return parts
    if tags != 'text':
        raise ValueError(f"tags={tags!r}: 'array' or 'text'")
    parts.extend(_tag_like(t) for t in where.tags_all)
    if where.tags_any:
        parts.append(' or '.join(f'({_tag_like(t)})' for t in where.tags_any))
    parts.extend(f'not ({_tag_like(t)})' for t in where.tags_none)
    return parts


def region_box(where: Stage1Filter) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` corners of the box around the filter's ball, padded so that a float32
    position on the ball's surface is never cut by the box; ``None`` without a region."""
    if where.region is None:
        return None
    center = np.asarray(where.region.center, dtype=np.float64)
    pad = where.region.radius * (1.0 + 1e-5) + 1e-4
    return center - pad, center + pad


def expression(where: Stage1Filter | None, tags: str = 'array') -> str:
    """The Milvus boolean expression of ``where``; ``''`` for no filter at all (history
    included). A region is its padded box: :func:`in_region` finishes it. ``tags``: how tag
    conditions are written (see :func:`_tag_parts`)."""
    if where is None:
        return ''
    parts: list[str] = []
    if where.kinds:
        parts.append(f'kind in [{", ".join(str(kind_code(k)) for k in where.kinds)}]')
    parts.extend(_tag_parts(where, tags))
    box = region_box(where)
    if box is not None:
        for axis, low, high in zip('xyz', box[0], box[1]):
            parts.append(f'{axis} >= {_num(low)} and {axis} <= {_num(high)}')
    if where.robots:
        parts.append(f'robot in {_strings(where.robots)}')
    if where.not_robots:
        parts.append(f'robot not in {_strings(where.not_robots)}')
    if where.t_start is not None:
        parts.append(f'last_seen >= {_num(where.t_start)}')
    if where.t_end is not None:
        parts.append(f'first_seen <= {_num(where.t_end)}')
    at_time, changed_since = where.at_time, where.changed_since
    if at_time is None and changed_since is None:
        if not where.include_history:
            parts.append('current == true')
    else:
        if at_time is not None:
            parts.append(f'valid_from <= {_num(at_time)} and valid_to > {_num(at_time)}')
        if changed_since is not None:
            c = _num(changed_since)
            parts.append(f'(valid_from >= {c} or (current == false and valid_to >= {c}))')
    if not parts:
        return 'id > 0'            # every engram: a count or query needs some expression
    return ' and '.join(f'({p})' for p in parts)


def in_region(where: Stage1Filter | None, xyz: np.ndarray) -> np.ndarray:
    """Which rows of ``xyz`` (n x 3, the stored float32 positions) lie in the filter's ball
    (all of them without a region), by the distance the embedded index computes."""
    n = xyz.shape[0]
    if where is None or where.region is None:
        return np.ones(n, dtype=bool)
    d = xyz.astype(np.float64) - np.asarray(where.region.center, dtype=np.float64)
    return np.sqrt(np.einsum('ij,ij->i', d, d)) <= where.region.radius


@dataclass(frozen=True)
class Plan:
    """How one filtered search runs: ``exact`` (fetch the ``matching`` engrams and rank them
    here) or the engine's HNSW with ``ef``; ``limit`` is how many hits to ask the engine for
    (more than ``k`` when a region's exact check may drop some)."""

    matching: int
    exact: bool
    ef: int
    limit: int


def plan(matching: int, total: int, k: int, *, has_region: bool, exact_threshold: int,
         ef_search: int, filtered_ef: int, max_ef: int) -> Plan:
    """The plan for a search of ``k`` among ``matching`` of ``total`` engrams.

    :param matching: engrams the expression matches (for a region, its box).
    :param exact_threshold: at most this many matching: exact ranking.
    :param ef_search: the ``ef`` of an unfiltered search, and the least of a filtered one.
    :param filtered_ef: ``ef`` scaled by ``total / matching`` (capped at ``max_ef``).
    """
    limit = k if not has_region else max(4 * k, k + 32)
    if matching <= exact_threshold:
        return Plan(matching, True, 0, limit)
    fraction = max(matching, 1) / max(total, 1)
    ef = int(min(max_ef, max(ef_search, math.ceil(filtered_ef / fraction), limit)))
    return Plan(matching, False, ef, limit)


def rank_exact(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows most cosine-similar to the unit ``query``, best first: ``(ids, scores)``
    as ``int64`` and ``float32``."""
    if ids.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0.0] = 1.0
    scores = (vectors @ query) / norms
    top = min(k, scores.shape[0])
    best = np.argpartition(-scores, top - 1)[:top]
    best = best[np.argsort(-scores[best], kind='stable')]
    return ids[best].astype(np.int64), scores[best].astype(np.float32)
