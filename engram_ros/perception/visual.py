"""Images -> context vectors: the visual encoders behind one small interface.

:class:`VisualEncoder` is what the pipeline calls: ``encode(rgb, depth) -> (dim,)`` unit
vector, plus ``visual_words(rgb)`` for the sketch (``vw:<id>`` tags; empty for encoders without
a vocabulary).

:class:`OrbBowEncoder` (the default, fully offline) describes an image by

* a bag of ORB visual words (a binary vocabulary of ``K`` words, tf-idf, square-rooted);
* colour cues: hue/achromatic histograms, global and per 2x2 cell;
* layout cues: a 4x4 grid of brightness and, when given, of depth;

and compresses the concatenation to ``dim`` with a small torch MLP trained contrastively on
procedural scenes (``tools/train_perception_models.py``; weights in ``models/``).

:class:`TorchBackboneEncoder` is the drop-in for a learned backbone (CLIP/DINO class) exported
as TorchScript with local weights: images are resized and normalised, the model's output is
mapped to ``dim`` by a fixed seeded random projection when its width differs.
"""

from __future__ import annotations

import abc
import functools
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from engram_ros.core.model.engram import normalize_vector

_LOG = logging.getLogger(__name__)

#: Where the shipped vocabulary and compressor weights live.
MODELS_DIR = Path(__file__).resolve().parent / 'models'
VOCABULARY_FILE = MODELS_DIR / 'visual_vocabulary.npz'
COMPRESSOR_FILE = MODELS_DIR / 'visual_compressor.pt'

#: ORB settings; the vocabulary is trained with the same ones.
ORB_FEATURES = 500
_MAX_WIDTH = 640
_HUE_BINS = 8
_COLOUR_BINS = _HUE_BINS + 3            # + dark, grey, bright for unsaturated pixels
_GRID = 4


class VisualEncoder(abc.ABC):
    """Image -> unit context vector of length :attr:`dim`."""

    dim: int

    @abc.abstractmethod
    def encode(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """Return a unit float32 vector of length :attr:`dim` for an HxWx3 RGB uint8 image."""

    def visual_words(self, rgb: np.ndarray, top: int = 8) -> tuple[int, ...]:
        """The ``top`` most frequent visual word ids of the image (none by default)."""
        return ()


def orb_descriptors(grey: np.ndarray, n_features: int = ORB_FEATURES) -> np.ndarray:
    """ORB descriptors (Nx32 uint8) of a grey image; an empty array when there are none."""
    orb = cv2.ORB_create(nfeatures=n_features)       # cheap; one per call keeps threads apart
    _, desc = orb.detectAndCompute(grey, None)
    return desc if desc is not None else np.zeros((0, 32), np.uint8)


def assign_words(descriptors: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Index of the nearest (Hamming) vocabulary word for each binary descriptor."""
    if len(descriptors) == 0:
        return np.zeros(0, np.int64)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    return np.array([m.trainIdx for m in matcher.match(descriptors, vocabulary)], np.int64)


def colour_cues(rgb: np.ndarray) -> np.ndarray:
    """Hue / achromatic histograms, global and per 2x2 cell (5 x 11 values, each summing to 1)."""
    small = cv2.resize(rgb, (64, 48), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    bins = np.where(s > 60, (h * _HUE_BINS) // 256,
                    _HUE_BINS + np.where(v < 60, 0, np.where(v < 190, 1, 2)))
    out = [np.bincount(bins.reshape(-1), minlength=_COLOUR_BINS)]
    for rows in (slice(0, 24), slice(24, 48)):
        for cols in (slice(0, 32), slice(32, 64)):
            out.append(np.bincount(bins[rows, cols].reshape(-1), minlength=_COLOUR_BINS))
    hist = np.stack(out).astype(np.float32)
    return (hist / hist.sum(axis=1, keepdims=True)).reshape(-1)


def layout_cues(rgb: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    """4x4 grid of brightness (zero mean) and of depth (relative; zeros without depth)."""
    grey = cv2.resize(rgb, (_GRID, _GRID), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = grey.mean(axis=2).reshape(-1) / 255.0
    grey -= grey.mean()
    cells = np.zeros(_GRID * _GRID, np.float32)
    if depth is not None and depth.size:
        d = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        valid = (d > 0).astype(np.float32)
        s = cv2.resize(d, (_GRID, _GRID), interpolation=cv2.INTER_AREA)
        n = cv2.resize(valid, (_GRID, _GRID), interpolation=cv2.INTER_AREA)
        cells = np.where(n > 0.05, s / np.maximum(n, 1e-6), 0).reshape(-1)
        peak = float(cells.max())
        if peak > 0:
            cells = cells / peak
    return np.concatenate([grey, cells]).astype(np.float32)


def grey_image(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if grey.shape[1] > _MAX_WIDTH:
        grey = cv2.resize(grey, (_MAX_WIDTH, grey.shape[0] * _MAX_WIDTH // grey.shape[1]),
                          interpolation=cv2.INTER_AREA)
    return grey


def bow_features(rgb: np.ndarray, depth: np.ndarray | None, vocabulary: np.ndarray,
                 idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The uncompressed description of an image and its visual word ids.

    Returns ``(features, words)``: features are the square-rooted, L2-normalised tf-idf bag of
    words followed by colour and layout cues (weighted so each block has a similar norm).
    """
    words = assign_words(orb_descriptors(grey_image(rgb)), vocabulary)
    bow = np.bincount(words, minlength=len(vocabulary)).astype(np.float32) * idf
    bow = np.sqrt(bow)
    norm = float(np.linalg.norm(bow))
    if norm > 0:
        bow /= norm
    colour = np.sqrt(colour_cues(rgb)) / np.sqrt(5.0)
    layout = layout_cues(rgb, depth)
    return np.concatenate([bow, colour, layout]).astype(np.float32), words


def feature_size(vocabulary_size: int) -> int:
    return vocabulary_size + 5 * _COLOUR_BINS + 2 * _GRID * _GRID


class Compressor(torch.nn.Module):
    """The small MLP from the uncompressed description to the context vector."""

    def __init__(self, n_in: int, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.GELU(),
                                       torch.nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.net(x), dim=-1)


class OrbBowEncoder(VisualEncoder):
    """ORB bag of words + colour/layout cues, compressed to ``dim`` by a trained MLP."""

    def __init__(self, vocabulary: np.ndarray, idf: np.ndarray, compressor: Compressor) -> None:
        self.vocabulary = np.ascontiguousarray(vocabulary, dtype=np.uint8)
        self.idf = np.asarray(idf, dtype=np.float32)
        self.compressor = compressor.eval()
        self.dim = int(compressor.net[-1].out_features)

    @classmethod
    def load(cls, vocabulary_file: Path = VOCABULARY_FILE,
             compressor_file: Path = COMPRESSOR_FILE) -> 'OrbBowEncoder':
        """Load the shipped (or regenerated) vocabulary and compressor.

        :raises FileNotFoundError: when a model file is missing (run
            ``tools/train_perception_models.py``).
        """
        with np.load(vocabulary_file) as data:
            vocabulary, idf = data['vocabulary'], data['idf']
        state = torch.load(compressor_file, map_location='cpu', weights_only=True)
        n_in, dim = int(state['n_in']), int(state['dim'])
        compressor = Compressor(n_in, dim, int(state['hidden']))
        compressor.load_state_dict({k: v.float() for k, v in state['weights'].items()})
        return cls(vocabulary, idf, compressor)

    def features(self, rgb: np.ndarray, depth: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        return bow_features(rgb, depth, self.vocabulary, self.idf)

    def compress(self, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.compressor(torch.from_numpy(np.atleast_2d(features)))
        return out.numpy().astype(np.float32)

    def encode(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        features, _ = self.features(rgb, depth)
        return normalize_vector(self.compress(features)[0])

    def encode_with_words(self, rgb: np.ndarray, depth: np.ndarray | None = None,
                          top: int = 8) -> tuple[np.ndarray, tuple[int, ...]]:
        """Vector and the ``top`` most frequent visual words, from one ORB pass."""
        features, words = self.features(rgb, depth)
        return normalize_vector(self.compress(features)[0]), _top_words(words, top)

    def visual_words(self, rgb: np.ndarray, top: int = 8) -> tuple[int, ...]:
        return _top_words(assign_words(orb_descriptors(grey_image(rgb)), self.vocabulary), top)


def _top_words(words: np.ndarray, top: int) -> tuple[int, ...]:
    if top <= 0 or len(words) == 0:
        return ()
    counts = np.bincount(words)
    order = np.argsort(-counts, kind='stable')[:top]
    return tuple(int(w) for w in order if counts[w] > 0)


@functools.lru_cache(maxsize=16)
def random_projection(n_in: int, dim: int, seed: int = 0) -> np.ndarray:
    """A fixed, seeded ``n_in x dim`` projection that roughly keeps cosine similarities
    (read-only, computed once per arguments: each sound's embedding used to redo the QR).

    Orthonormal rows (an isometry) when ``n_in <= dim``; a random orthonormal projection onto
    ``dim`` directions (Johnson-Lindenstrauss) otherwise.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(max(n_in, dim), min(n_in, dim)))
    q, _ = np.linalg.qr(a)
    out = (q if n_in >= dim else q.T).astype(np.float32).reshape(n_in, dim)
    out.flags.writeable = False
    return out


class TorchBackboneEncoder(VisualEncoder):
    """A learned image backbone (TorchScript, local weights) as a visual encoder.

    The model takes a float tensor ``1x3xHxW`` (RGB, normalised by ``mean``/``std``) and returns
    any ``1xF`` (or ``1xFx...``, mean-pooled) feature; a fixed projection maps F to ``dim``.
    """

    def __init__(self, model: torch.nn.Module, dim: int, input_size: tuple[int, int] = (224, 224),
                 mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
                 std: tuple[float, float, float] = (0.229, 0.224, 0.225)) -> None:
        self.model = model.eval()
        self.dim = int(dim)
        self.input_size = input_size
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self._projection: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: str | Path, dim: int, **kwargs) -> 'TorchBackboneEncoder':
        """Load a TorchScript model file (``torch.jit.save``); nothing is downloaded.

        :raises FileNotFoundError: when ``path`` does not exist.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'no TorchScript model at {path}')
        return cls(torch.jit.load(str(path), map_location='cpu'), dim, **kwargs)

    def encode(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        x = cv2.resize(rgb, self.input_size, interpolation=cv2.INTER_AREA).astype(np.float32)
        x = (x / 255.0 - self.mean) / self.std
        tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            out = self.model(tensor)
        feat = out.reshape(out.shape[0], out.shape[1], -1).mean(-1) if out.ndim > 2 else out
        feat = feat[0].float().numpy()
        if feat.shape[0] != self.dim:
            if self._projection is None or self._projection.shape[0] != feat.shape[0]:
                self._projection = random_projection(feat.shape[0], self.dim)
            feat = feat @ self._projection
        return normalize_vector(feat)


def load_visual_encoder(spec: str, dim: int) -> VisualEncoder:
    """Build the encoder named by a parameter value.

    ``orb_bow`` (the shipped default) or ``torchscript:/path/to/model.pt``.

    :raises ValueError: for an unknown spec or a shipped model of another dimension.
    :raises FileNotFoundError: when a model file is missing.
    """
    if spec == 'orb_bow':
        encoder: VisualEncoder = OrbBowEncoder.load()
    elif spec.startswith('torchscript:'):
        encoder = TorchBackboneEncoder.from_file(spec.split(':', 1)[1], dim)
    else:
        raise ValueError(f'unknown visual encoder {spec!r}; accepted: orb_bow, '
                         'torchscript:<path>')
    if encoder.dim != dim:
        raise ValueError(f'visual encoder {spec!r} gives {encoder.dim}-d vectors; the memory '
                         f'dimension is {dim} (retrain with tools/train_perception_models.py '
                         f'--dim {dim})')
    return encoder
