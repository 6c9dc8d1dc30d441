"""Free text that names no tag the memory knows, matched to its tags by meaning.

Stage one of recall filters on exact tags, and :func:`engram_ros.core.sketch.text_to_tags`
maps the words of a query onto them ("the red cup" -> ``color:red``, ``label:mug``). A query
such as "something to drink coffee from" names no known word, so it would find nothing. Here
the query text and a short phrase per tag in the memory ("a mug", "the sound of a doorbell",
"the kitchen") are embedded by a sentence encoder into one space; the tags whose phrases are
close enough become the query's tags, and the recall answer says which matched and how well.

Exact matching always comes first: this is a fallback for text that matched nothing, so an
explicit word is never overridden by a guess. A match needs a cosine similarity of at least
``threshold``; next to the best tag, others are kept when within ``margin`` of it (a "cup or
mug" question may mean both), at most ``max_tags``.

The encoder is any callable ``embed(list[str]) -> (n, d) unit rows``; the nodes use the offline
all-MiniLM-L6-v2 (:class:`engram_ros.perception.text.TextEncoder`). Phrase vectors are cached,
so a query costs one sentence embedding (a few ms on a CPU core). Nothing here imports ROS.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Callable
from typing import Iterable
from typing import Sequence

import numpy as np

#: Tag namespaces that name things a person asks about (colours and sizes are matched exactly,
#: visual words and place ids mean nothing to a sentence model).
NAMESPACES = ('label', 'sound', 'room')

Embed = Callable[[Sequence[str]], np.ndarray]


def tag_phrase(tag: str) -> str:
    """The phrase a tag is embedded as: ``label:coffee_mug`` -> ``'a coffee mug'``.

    :raises ValueError: for a tag outside :data:`NAMESPACES`.
    """
    namespace, _, value = tag.partition(':')
    words = value.replace('_', ' ').strip()
    if not words or namespace not in NAMESPACES:
        raise ValueError(f'tag {tag!r} has no phrase; accepted namespaces: {NAMESPACES}')
    if namespace == 'label':
        return f'a {words}'
    if namespace == 'sound':
        return f'the sound of a {words}'
    return f'the {words}'


@dataclass(frozen=True)
class SemanticMatch:
    """A tag that a query's text means, and the cosine similarity of the two [-1, 1]."""

    tag: str
    similarity: float


#: Query texts whose embeddings :class:`SemanticTags` keeps (least recently used dropped).
TEXT_CACHE_SIZE = 256


class SemanticTags:
    """Query text -> the memory's tags it means (see the module docstring).

    :param embed: sentence encoder, ``list[str] -> (n, d)`` unit rows.
    :param threshold: least cosine similarity of the best match.
    :param margin: further tags are kept within this much of the best one.
    :param max_tags: most tags a text maps to.
    :raises ValueError: for a threshold outside [-1, 1], a negative margin or ``max_tags < 1``.
    """

    def __init__(self, embed: Embed, *, threshold: float = 0.38, margin: float = 0.05,
                 max_tags: int = 3) -> None:
        if not -1.0 <= threshold <= 1.0 or margin < 0.0 or max_tags < 1:
            raise ValueError(f'threshold={threshold} must be in [-1, 1], margin={margin} >= 0, '
                             f'max_tags={max_tags} >= 1')
        self._embed = embed
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.max_tags = int(max_tags)
        self._lock = threading.Lock()
        self._phrases: dict[str, np.ndarray] = {}
        #: Embeddings of recent query texts, most recent last: running the sentence model was
        #: nearly all of a recall whose text needs meaning (15-40 ms on the 2-core machine),
        #: and planners repeat their questions. Exact: the encoder is deterministic.
        self._texts: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    def _text_vector(self, text: str) -> np.ndarray:
        with self._lock:
            vector = self._texts.get(text)
            if vector is not None:
                self._texts.move_to_end(text)
                return vector
        vector = np.asarray(self._embed([text]), dtype=np.float32)[0]
        with self._lock:
            self._texts[text] = vector
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        return vector

    def _vectors(self, tags: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in tags if t not in self._phrases]
        if missing:
            rows = np.asarray(self._embed([tag_phrase(t) for t in missing]), dtype=np.float32)
            with self._lock:
                self._phrases.update(zip(missing, rows))
        with self._lock:
            return np.stack([self._phrases[t] for t in tags])

    def match(self, text: str, tags: Iterable[str]) -> list[SemanticMatch]:
        """The tags among ``tags`` that ``text`` means, best first (empty when none is close).

        Tags outside :data:`NAMESPACES` are ignored.
        """
        candidates = sorted({t for t in tags if t.partition(':')[0] in NAMESPACES
                             and t.partition(':')[2]})
        if not text.strip() or not candidates:
            return []
        query = self._text_vector(text.strip())
        sims = self._vectors(candidates) @ query
        order = np.argsort(-sims, kind='stable')
        best = float(sims[order[0]])
        if best < self.threshold:
            return []
        return [SemanticMatch(candidates[i], float(sims[i])) for i in order[:self.max_tags]
                if sims[i] >= max(self.threshold, best - self.margin)]

    def related(self, tag: str, tags: Iterable[str], threshold: float) -> list[SemanticMatch]:
        """The tags among ``tags`` whose phrases lie within cosine ``threshold`` of ``tag``'s
        (``label:toy`` -> ``label:toy_car`` 0.80), best first; every one that does, not only
        :attr:`max_tags` (a category has as many members as it has). Tags outside
        :data:`NAMESPACES` are ignored; ``tag`` itself is never returned.
        """
        candidates = sorted({t for t in tags if t != tag and t.partition(':')[0] in NAMESPACES
                             and t.partition(':')[2]})
        if not candidates or tag.partition(':')[0] not in NAMESPACES:
            return []
        sims = self._vectors(candidates) @ self._vectors([tag])[0]
        order = np.argsort(-sims, kind='stable')
        return [SemanticMatch(candidates[i], float(sims[i])) for i in order
                if sims[i] >= threshold]
