"""Scoring of the quality benchmark (issue 14): a memory's object beliefs against the
simulator's ground truth. Plain data in, figures out; no ROS, no simulator, no store.

A *belief* is one object engram as the scoring sees it (:class:`Belief`); the *truth* is the
simulator's ground truth (``sim/ground_truth`` JSON: ``objects`` with ``label``, ``center``,
``room``; ``rooms``). Distances are in the plane (x, y) of the memory frame, to the centre of
the true thing's extent.

Whether a belief *names* a true thing: their labels in the memory's canonical form
(``label:`` tags, e.g. 'fridge' -> 'refrigerator') share a word that is not a colour
(:func:`names`): 'ball' names 'red ball', 'teddy_bear' names 'teddy'; 'red mug' does not name
'red ball'. Position decides the rest.

Used by ``benchmarks/bench_quality.py``; tested by ``test/apps/test_bench_quality.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable
from typing import Sequence

#: Answer radius: a top-1 answer counts when it lies this close to the thing [m].
NEAR = 0.5
#: Ghost radius: a current belief further than this from every true thing it names [m].
GHOST = 1.0
#: Colour words never make two labels name the same thing on their own.
COLOUR_WORDS = frozenset({
    'red', 'green', 'blue', 'yellow', 'white', 'black', 'grey', 'gray', 'silver', 'orange',
    'purple', 'brown', 'cyan', 'pink', 'beige', 'teal', 'dark', 'light'})


@dataclass(frozen=True)
class Belief:
    """One object engram: what the scoring needs of it."""

    id: int
    label: str
    x: float
    y: float
    valid_to: float | None = None      # None: a current belief
    successor: int = 0                 # the belief that replaced it (0: none)
    tier: str = 'long'
    count: int = 1                     # observations merged into it
    room: str = ''                     # its room: tag ('' when none)

    @property
    def current(self) -> bool:
        return self.valid_to is None


def belief_of(engram) -> Belief:
    """A :class:`Belief` from a core :class:`~engram_ros.core.model.engram.Engram`."""
    rooms = [t.partition(':')[2] for t in engram.tags if t.startswith('room:')]
    return Belief(int(engram.id), engram.label, float(engram.position[0]),
                  float(engram.position[1]), engram.valid_to, int(engram.successor_id or 0),
                  engram.tier, int(engram.observation_count), rooms[0] if rooms else '')


def canonical(label: str) -> str:
    """The memory's canonical form of a label, without the ``label:`` namespace."""
    from engram_ros.core.sketch import normalize_tag
    try:
        return normalize_tag('label:' + label).partition(':')[2] if label.strip() else ''
    except ValueError:
        return label.strip().lower()


def words(label: str) -> set[str]:
    return {w for w in canonical(label).replace('-', '_').replace(' ', '_').split('_') if w}


def names(belief_label: str, truth_label: str) -> bool:
    """Whether a belief labelled ``belief_label`` names the thing labelled ``truth_label``."""
    a, b = canonical(belief_label), canonical(truth_label)
    if not a or not b:
        return False
    if a == b:
        return True
    return bool((words(a) - COLOUR_WORDS) & (words(b) - COLOUR_WORDS))


def distance(belief: Belief, thing: dict) -> float:
    cx, cy = thing['center'][:2]
    return math.hypot(belief.x - cx, belief.y - cy)


def room_at(x: float, y: float, rooms: Sequence[dict]) -> str:
    for room in rooms:
        if room['min'][0] <= x <= room['max'][0] and room['min'][1] <= y <= room['max'][1]:
            return room['name']
    return ''


# ----------------------------------------------------------------------------- (a) top-1
def top1_right(answer: Belief | None, thing: dict) -> bool:
    """The top-1 answer to "where is <thing>" names it and lies within :data:`NEAR`."""
    return (answer is not None and names(answer.label, thing['label'])
            and distance(answer, thing) <= NEAR)


# ----------------------------------------------------------------------------- (b) questions
def applicable(question: dict, truth: dict) -> bool:
    """A question applies when the world holds a thing with one of its expected labels (in the
    question's room, when it names one: a thing moved out of it cannot be the answer)."""
    return any(o['label'] in question['expect'] and (
        not question.get('room') or room_at(*o['center'][:2], truth['rooms']) == question['room'])
        for o in truth['objects'])


def answered(question: dict, answer: Belief | None, truth: dict) -> dict:
    """Whether the top-1 ``answer`` answers ``question``: within :data:`NEAR` of a thing with
    an expected label (in the question's room, when it names one), as the question list
    defines it (``position``); ``named``: the answer's label also names that thing."""
    out = {'position': False, 'named': False, 'error_m': None}
    if answer is None:
        return out
    for thing in truth['objects']:
        if thing['label'] not in question['expect']:
            continue
        if question.get('room') and room_at(*thing['center'][:2], truth['rooms']) != \
                question['room']:
            continue
        d = distance(answer, thing)
        if out['error_m'] is None or d < out['error_m']:
            out['error_m'] = round(d, 3)
        if d <= NEAR:
            out['position'] = True
            out['named'] = out['named'] or names(answer.label, thing['label'])
    return out


def question_summary(results: Sequence[dict]) -> dict:
    """Answered / applicable, overall, per ``via`` and per ``kind``."""
    def share(rows: list[dict]) -> dict:
        n = len(rows)
        return {'applicable': n, 'answered': sum(r['position'] for r in rows),
                'answered_named': sum(r['named'] for r in rows),
                'pct': round(100.0 * sum(r['position'] for r in rows) / n, 1) if n else None}
    rows = [r for r in results if r['applicable']]
    out = {'all': share(rows), 'not_applicable': len(results) - len(rows)}
    for key in ('via', 'kind'):
        out[key] = {v: share([r for r in rows if r[key] == v])
                    for v in sorted({r[key] for r in rows})}
    return out


# ----------------------------------------------------------------------------- (c), (d)
def ghosts(current: Iterable[Belief], truth: dict) -> list[Belief]:
    """Current beliefs further than :data:`GHOST` from every true thing they name."""
    out = []
    for belief in current:
        if not belief.current:
            continue
        near = [t for t in truth['objects']
                if names(belief.label, t['label']) and distance(belief, t) <= GHOST]
        if not near:
            out.append(belief)
    return out


def per_thing(current: Iterable[Belief], truth: dict) -> float:
    """Current object beliefs per true thing."""
    n = sum(1 for b in current if b.current)
    return round(n / max(1, len(truth['objects'])), 3)


# ----------------------------------------------------------------------------- (e) moves
def chain_end(belief_id: int, snapshot: dict[int, Belief]) -> Belief | None:
    """Follow successors from ``belief_id`` to the belief that is current (or None)."""
    seen = set()
    belief = snapshot.get(belief_id)
    while belief is not None and not belief.current and belief.successor \
            and belief.id not in seen:
        seen.add(belief.id)
        belief = snapshot.get(belief.successor)
    return belief if belief is not None and belief.current else None


def move_noticed(label: str, old: dict, new: dict, before: Sequence[Belief],
                 after: Sequence[Belief]) -> dict:
    """Whether the move of ``label`` from true thing ``old`` to ``new`` (truth entries before
    and after) was noticed between the snapshots ``before`` (end of the lap before the move)
    and ``after`` (end of the next lap that passes the old place).

    Noticed: the memory had a current belief naming the thing within :data:`GHOST` of its old
    place; in ``after`` none of those is current any more, and one of them ended with a
    successor (followed to the current one) naming the thing within :data:`NEAR` of the new
    place. ``why`` says what failed.
    """
    olds = [b for b in before if b.current and names(b.label, label)
            and distance(b, old) <= GHOST]
    if not olds:
        return {'noticed': False, 'why': 'no belief at the old place before the move'}
    snapshot = {b.id: b for b in after}
    still = [b.id for b in olds if b.id in snapshot and snapshot[b.id].current]
    successors = []
    for b in olds:
        if b.id in snapshot and not snapshot[b.id].current:
            end = chain_end(b.id, snapshot)
            if end is not None:
                successors.append(end)
    right = [s for s in successors if names(s.label, label) and distance(s, new) <= NEAR]
    if still:
        return {'noticed': False, 'why': f'old belief still current ({len(still)})',
                'old': [b.id for b in olds]}
    if not right:
        why = ('old belief ended without a successor at the new place' if any(
            b.id in snapshot for b in olds) else 'old belief forgotten, no successor')
        return {'noticed': False, 'why': why, 'old': [b.id for b in olds]}
    return {'noticed': True, 'why': '', 'old': [b.id for b in olds],
            'successor': right[0].id}


# ----------------------------------------------------------------------------- (g) false forgets
def false_forgets(forgotten: Sequence[Belief], truth: dict, after: Sequence[Belief]) -> dict:
    """What the label-noise rule forgot of real things.

    ``forgotten``: the engrams the rule forgot as label noise (as they were just before), with
    ``truth`` the ground truth then and ``after`` the memory's beliefs after (e.g. at the end of
    that lap). A forgotten engram *named a real thing* when it names a true thing within
    :data:`GHOST` of it (its label was right: a real sighting, not noise). That thing is
    *falsely forgotten* when no current belief of ``after`` names it within :data:`GHOST`:
    the memory lost it. ``rate_pct``: falsely forgotten things over the true things (target
    <= 1 %).
    """
    named: dict[str, list[int]] = {}
    for belief in forgotten:
        for t in truth['objects']:
            if names(belief.label, t['label']) and distance(belief, t) <= GHOST:
                named.setdefault(t['label'], []).append(belief.id)
    lost = sorted(label for label in named if not any(
        b.current and names(b.label, label) and distance(b, t) <= GHOST
        for b in after for t in truth['objects'] if t['label'] == label))
    return {'forgotten': len(forgotten),
            'naming_real': sum(len(v) for v in named.values()),
            'things_lost': lost, 'things': len(truth['objects']),
            'rate_pct': round(100.0 * len(lost) / max(1, len(truth['objects'])), 2)}


def size_ratio(sizes: dict[int, int], last: int, first: int = 2) -> float | None:
    """Store size at the end of lap ``last`` over lap ``first``."""
    if first not in sizes or last not in sizes or not sizes[first]:
        return None
    return round(sizes[last] / sizes[first], 3)


__all__ = ['Belief', 'belief_of', 'names', 'canonical', 'distance', 'room_at', 'top1_right',
           'applicable', 'answered', 'question_summary', 'ghosts', 'per_thing', 'chain_end',
           'move_noticed', 'false_forgets', 'size_ratio', 'NEAR', 'GHOST']
