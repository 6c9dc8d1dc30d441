"""Categories (is-a): a question's words resolved to the labels the memory holds.

"Where is the ball?" should find ``red_ball`` and ``soccer_ball``; "the toys" a teddy bear, a
duck and a ball; "furniture" the sofa and the chairs. A question's label word resolves to the
labels *present in the memory* that are:

* **exact**: the word's own label;
* **is-a**: labels whose head noun or colourless base is the word (:mod:`engram_ros.core.labels`:
  ``soccer_ball`` is a ball, ``red_ball`` a ball) or that the small table
  :data:`CATEGORIES` lists under it (transitively: a toy -> a ball -> a beach ball);
* **meaning**: labels whose name the offline sentence model puts close to the word's
  (cosine >= :data:`MEMBER_SIMILARITY`), for a category word of the table (so "tool" also
  finds a wrench the table does not list) and for a word that found nothing else (a "sink"
  finds a ``washbasin``).

Only labels the memory holds come out, so a category never becomes a filter that matches
nothing; a word that resolves to none is left out (and said so in the recall message). The
table's words are also words a question may use (:func:`category_words`). Nothing here imports
ROS.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable
from typing import Protocol

from engram_ros.core.labels import parse_label

#: Category -> what is one (labels or further categories), as people write them; canonical
#: forms (synonyms, singulars, ``_``) are derived. Extend freely.
CATEGORIES: dict[str, tuple[str, ...]] = {
    'ball': ('soccer ball', 'football', 'tennis ball', 'beach ball', 'basketball', 'baseball',
             'volleyball', 'sports ball', 'rubber ball', 'golf ball'),
    'toy': ('teddy', 'teddy bear', 'stuffed animal', 'plush toy', 'ball', 'duck', 'rubber duck',
            'toy duck', 'droid', 'toy robot', 'toy car', 'doll', 'action figure', 'lego',
            'building blocks', 'puzzle', 'kite', 'frisbee', 'yo-yo', 'spinning top',
            'rocking horse', 'toy train'),
    'teddy': ('teddy bear',),
    'teddy_bear': ('teddy',),
    'furniture': ('sofa', 'chair', 'armchair', 'stool', 'bench', 'table', 'coffee table',
                  'side table', 'dining table', 'desk', 'bed', 'dresser', 'shelf', 'shelving',
                  'bookshelf', 'bookcase', 'cabinet', 'cupboard', 'wardrobe', 'closet',
                  'nightstand', 'bedside table', 'chest of drawers', 'tv stand', 'ottoman',
                  'workbench', 'crib', 'futon', 'sideboard'),
    'seat': ('chair', 'armchair', 'stool', 'sofa', 'bench', 'ottoman'),
    'tool': ('drill', 'hammer', 'screwdriver', 'wrench', 'spanner', 'pliers', 'saw',
             'toolbox', 'tape measure', 'spirit level', 'chisel', 'mallet', 'soldering iron'),
    'box': ('cardboard box', 'crate', 'carton', 'storage box', 'shoebox', 'shoe box'),
    'cup': ('coffee cup', 'toothbrush cup', 'teacup', 'mug', 'beaker'),
    'kitchenware': ('mug', 'cup', 'bowl', 'plate', 'glass', 'kettle', 'pan', 'pot', 'saucepan',
                    'frying pan', 'spoon', 'fork', 'knife', 'teapot', 'jug', 'cutting board',
                    'toaster'),
    'appliance': ('refrigerator', 'oven', 'microwave', 'toaster', 'kettle', 'dishwasher',
                  'washing machine', 'dryer', 'vacuum cleaner', 'iron', 'blender'),
    'electronics': ('tv', 'laptop', 'phone', 'printer', 'keyboard', 'mouse', 'remote',
                    'tablet', 'speaker', 'router', 'game console', 'camera', 'droid'),
    'electronic_device': ('electronics',),
    'device': ('electronics', 'appliance'),
    'container': ('box', 'trash can', 'bucket', 'basket', 'laundry basket', 'bowl', 'jar',
                  'can', 'paint can', 'vase', 'toolbox', 'bottle', 'crate'),
    'animal': ('dog', 'cat', 'bird', 'duck'),
}

#: Least cosine similarity of a label's name to a question word's for "meaning" (the sentence
#: model's phrases "a toy" and "a toy car" are 0.80, "a tool" and "a drill" 0.70, "a toy" and
#: "a ball" 0.56, "a box" and "a toolbox" 0.59; unrelated pairs stay under 0.55).
MEMBER_SIMILARITY = 0.6

#: How a question's tag was resolved: its own tag, a member of it, a label close in meaning.
HOW = ('exact', 'is-a', 'meaning')


class Related(Protocol):
    """A sentence model over tag names (:meth:`engram_ros.core.semantic.SemanticTags.related`)."""

    def related(self, tag: str, tags: Iterable[str], threshold: float) -> list: ...


@dataclass(frozen=True)
class Resolved:
    """The labels a question's ``tag`` resolved to, and how each was found (see :data:`HOW`)."""

    tag: str
    matches: tuple[tuple[str, str], ...]     # (tag present in the memory, how)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.matches)


def _label_value(word: str) -> str:
    return parse_label(word).label


@functools.lru_cache(maxsize=1)
def _closure() -> dict[str, frozenset[str]]:
    """Category -> every label value that is one, through nested categories."""
    direct: dict[str, set[str]] = {}
    for category, members in CATEGORIES.items():
        direct.setdefault(_label_value(category), set()).update(_label_value(m) for m in members)
    out: dict[str, frozenset[str]] = {}
    for category in direct:
        seen: set[str] = set()
        todo = list(direct[category])
        while todo:
            member = todo.pop()
            if member in seen:
                continue
            seen.add(member)
            todo.extend(direct.get(member, ()))
        seen.discard(category)
        out[category] = frozenset(seen)
    return out


def category_words() -> frozenset[str]:
    """The table's categories and members, as words a question may use."""
    words = set(_closure())
    for members in _closure().values():
        words.update(members)
    return frozenset(words)


def is_a(label: str, category: str) -> bool:
    """True when the label value ``label`` is a ``category`` (a label value), not itself."""
    if label == category:
        return False
    parsed = parse_label(label)
    members = _closure().get(category, frozenset())
    return (category in (parsed.head, parsed.base)
            or bool({label, parsed.base, parsed.head} & members))


def question_words(known_labels: Iterable[str]) -> frozenset[str]:
    """Words a question may name labels by: the memory's labels, their bases and heads
    (``soccer_ball`` -> ``ball``; ``teddy_bear`` -> ``teddy``... through the table), and the
    table's categories."""
    return _question_words(frozenset(known_labels))


@functools.lru_cache(maxsize=8)
def _question_words(known: frozenset[str]) -> frozenset[str]:
    words = set(known) | category_words()
    for label in known:
        parsed = parse_label(label.partition(':')[2] if label.startswith('label:') else label)
        words.update((parsed.base, parsed.head))
    return frozenset(w for w in words if w)


def resolve(tag: str, present: Iterable[str], model: Related | None = None) -> Resolved:
    """The tags among ``present`` (tags live engrams carry) that a question's ``tag`` finds.

    A ``label:`` tag finds its own tag, its members (is-a) and, with ``model``, labels close
    in meaning (see the module docstring); any other tag finds only itself. Empty ``matches``:
    nothing in the memory carries it.
    """
    present = set(present)
    namespace, _, value = tag.partition(':')
    matches: list[tuple[str, str]] = [(tag, 'exact')] if tag in present else []
    if namespace != 'label':
        return Resolved(tag, tuple(matches))
    labels = sorted(t for t in present if t.startswith('label:') and t != tag)
    matches += [(t, 'is-a') for t in labels if is_a(t[len('label:'):], value)]
    if model is not None and (value in _closure() or not matches):
        found = {t for t, _ in matches}
        near = model.related(tag, [t for t in labels if t not in found], MEMBER_SIMILARITY)
        matches += [(m.tag, 'meaning') for m in near]
    return Resolved(tag, tuple(matches))


def describe(resolved: Iterable[Resolved]) -> str:
    """How a question's tags were matched, for the recall message:
    ``'label:mug (exact), label:red_ball (is-a label:ball); label:person: none'``."""
    parts = []
    for r in resolved:
        if not r.matches:
            parts.append(f'{r.tag}: none')
            continue
        parts.extend(t + (' (exact)' if how == 'exact' else f' ({how} {r.tag})')
                     for t, how in r.matches)
    return ', '.join(parts)


def rebuild() -> None:
    """Forget derived tables; call it after changing :data:`CATEGORIES` or a vocabulary."""
    _closure.cache_clear()
    _question_words.cache_clear()
    parse_label.cache_clear()

