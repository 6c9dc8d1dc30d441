"""Detector labels read as words: what a thing is (its head noun), its colour words, bad input.

Detectors name things in phrases: "red ball", "soccer ball", "blue box", "teddy bear". The
memory keeps the label *as given* (canonical: ``label:red_ball``), so two things the detector
tells apart never merge, and old stores read the same; this module says what such a label
means, once, for both sides of the memory:

* on the way in, colour words become ``color:`` tags (:func:`detection_tags`: the detector's
  word replaces the colour named from pixels for that sighting);
* on the way out, a question about "the ball" or "the box" finds ``red_ball``, ``soccer_ball``
  and ``blue_box`` through their head noun (:func:`parse_label` ``.head``, used by
  :mod:`engram_ros.core.categories`), and "the red ball" finds ``red_ball`` or a ``ball``
  tagged ``color:red``.

The head is the shortest ending of the phrase that is a vocabulary word of
:mod:`engram_ros.core.sketch` (``toothbrush_cup`` -> ``mug``, ``tennis_ball`` -> ``ball``), else
its last word (``paint_can`` -> ``can``); a few compounds are not their last word
(:data:`NOT_THEIR_HEAD`: a hot dog is no dog) and are their own head. Labels that are empty,
numeric ids or not ASCII are kept as they are (an empty one as :data:`UNLABELED`) and marked
with a ``problem`` the caller counts; they are never dropped here. Nothing here imports ROS.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from engram_ros.core import sketch

#: The label of a detection whose label is empty (or only punctuation).
UNLABELED = 'unlabeled'

#: Words that only shade a colour ("dark blue box"): dropped next to a colour word.
SHADE_WORDS: frozenset[str] = frozenset({'light', 'dark', 'bright', 'pale', 'deep', 'pastel'})

#: Compounds that are not a kind of their last word; each is its own head.
NOT_THEIR_HEAD: frozenset[str] = frozenset({
    'hot_dog', 'teddy_bear', 'bell_pepper', 'sea_lion', 'remote_control', 'traffic_light',
    'stop_sign', 'fire_hydrant', 'parking_meter', 'dining_table_set'})

#: Problems of a label: none, empty, only digits (a class id nobody named), not ASCII.
PROBLEMS: tuple[str, ...] = ('', 'empty', 'numeric', 'non_ascii')


@dataclass(frozen=True)
class LabelParse:
    """What a detector label means.

    :ivar label: canonical label value, as the engram keeps it (``'red_ball'``).
    :ivar base: the label without its colour words (``'ball'``; ``'soccer_ball'`` for
        ``red soccer ball``).
    :ivar head: what kind of thing it is (``'ball'`` for both).
    :ivar colors: canonical colours its words name (``('red',)``).
    :ivar problem: one of :data:`PROBLEMS` (``''``: none).
    """

    label: str
    base: str
    head: str
    colors: tuple[str, ...] = ()
    problem: str = ''


def label_problem(raw: str) -> str:
    """The problem of a raw detector label (see :data:`PROBLEMS`)."""
    value = sketch.clean_value(raw)
    if not value:
        return 'empty'
    if not raw.isascii():
        return 'non_ascii'
    if value.replace('_', '').isdigit():
        return 'numeric'
    return ''


@functools.lru_cache(maxsize=4096)
def parse_label(raw: str) -> LabelParse:
    """Read a detector label or a stored label value (``'Red Ball'``, ``'red_ball'``).

    Never raises: a label that cannot be read as words is kept whole, with its ``problem``.
    """
    problem = label_problem(raw)
    if problem == 'empty':
        return LabelParse(UNLABELED, UNLABELED, UNLABELED, (), problem)
    label = _canonical(sketch.clean_value(raw))
    if problem:
        return LabelParse(label, label, label, (), problem)
    words = label.split('_')
    colors: list[str] = []
    rest: list[str] = []
    for i, word in enumerate(words):
        color = sketch.vocabulary_lookup('color', word)
        last = i == len(words) - 1
        if color is not None and not last:
            colors.append(color)
        elif (word in SHADE_WORDS and not last
              and sketch.vocabulary_lookup('color', words[i + 1]) is not None):
            continue
        else:
            rest.append(word)
    if not rest:                # only colour words ("orange", "red_ball" cannot get here)
        return LabelParse(label, label, label, tuple(dict.fromkeys(colors)))
    base = _canonical('_'.join(rest))
    return LabelParse(label, base, _head(base), tuple(dict.fromkeys(colors)))


def _canonical(value: str) -> str:
    return sketch.normalize_tag(f'label:{value}').partition(':')[2]


def _head(base: str) -> str:
    """Shortest ending of ``base`` that is a vocabulary word, else its last word."""
    if base in NOT_THEIR_HEAD:
        return base
    words = base.split('_')
    for n in range(1, len(words) + 1):
        ending = '_'.join(words[-n:])
        known = sketch.vocabulary_lookup('label', ending)
        if known is not None:
            return known
    return _canonical(words[-1])


def detection_tags(label: str, pixel_color: str | None, size_class: str | None = None
                   ) -> tuple[str, ...]:
    """Sketch tags of one object sighting: its label as given, the colours its words name
    (else ``pixel_color``, the colour named from its pixels), its size class.

    ``('red ball', 'gray', 'small')`` -> ``('color:red', 'label:red_ball', 'size:small')``.
    """
    parsed = parse_label(label)
    colors = parsed.colors or ((pixel_color,) if pixel_color else ())
    tags = [f'label:{parsed.label}'] + [f'color:{c}' for c in colors]
    if size_class:
        tags.append(f'size:{size_class}')
    return sketch.normalize_tags(tags)
