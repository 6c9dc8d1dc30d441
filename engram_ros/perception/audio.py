"""Audio: segments by energy onset, a log-mel embedding, and a prototype sound classifier.

* :class:`AudioSegmenter` cuts a stream of mono chunks into sound events: a frame is active
  when its energy is ``threshold_db`` above a tracked noise floor (and above ``min_db``); an
  event ends after ``hangover`` seconds of quiet or at ``max_duration``.
* :func:`audio_features` summarises an event's log-mel spectrogram (level-normalised mean, std
  and peak per band, envelope modulation, spectral flatness): a fixed-size description.
* :func:`audio_embedding` maps that description to the memory's ``dim`` with a fixed isometry,
  after standardising it with the statistics shipped in the prototypes file.
* :class:`SoundClassifier` names an event by its nearest neighbours (cosine, k-NN) among
  synthesised example sounds of each class and of a *background* class (noise bursts, tones,
  chirps, clicks): a sound whose neighbours are background, or not close enough, gets no tag.
  The examples (:mod:`.sounds`) are made by ``tools/train_perception_models.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from functools import lru_cache
from pathlib import Path

import numpy as np

from engram_ros.core.model.engram import normalize_vector
from engram_ros.perception.visual import MODELS_DIR
from engram_ros.perception.visual import random_projection

PROTOTYPES_FILE = MODELS_DIR / 'sound_prototypes.npz'
N_MELS = 40
_MOD_BINS = 8


@dataclass
class AudioSegment:
    """One sound event: ``stamp`` of its first sample [s], mono float32 samples."""

    stamp: float
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class AudioSegmenter:
    """Streaming energy/onset segmentation of mono audio."""

    frame_duration: float = 0.02
    threshold_db: float = 12.0
    min_db: float = -50.0
    hangover: float = 0.4
    min_duration: float = 0.1
    max_duration: float = 4.0
    #: How fast the noise floor follows louder frames [dB per frame]; it drops at once.
    floor_rise_db: float = 0.05
    _sr: int = 0
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _pending_stamp: float = 0.0
    _floor: float | None = None
    _event: list[np.ndarray] = field(default_factory=list)
    _event_stamp: float = 0.0
    _quiet: int = 0
    _previous: np.ndarray | None = None

    def reset(self) -> None:
        self._sr, self._floor, self._event, self._quiet, self._previous = 0, None, [], 0, None
        self._pending = np.zeros(0, np.float32)

    def push(self, stamp: float, samples: np.ndarray, sample_rate: int) -> list[AudioSegment]:
        """Feed a chunk (``stamp`` of its first sample); return the events it completed."""
        if sample_rate != self._sr:
            self.reset()
            self._sr = sample_rate
        if len(self._pending) == 0:
            self._pending_stamp = stamp
        self._pending = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        n = max(1, int(round(self.frame_duration * sample_rate)))
        done: list[AudioSegment] = []
        while len(self._pending) >= n:
            frame, self._pending = self._pending[:n], self._pending[n:]
            frame_stamp = self._pending_stamp
            self._pending_stamp += n / sample_rate
            segment = self._frame(frame_stamp, frame)
            if segment is not None:
                done.append(segment)
        return done

    def _frame(self, stamp: float, frame: np.ndarray) -> AudioSegment | None:
        energy = 10.0 * math.log10(float(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
        if self._floor is None or energy < self._floor:
            self._floor = energy
        active = energy > max(self._floor + self.threshold_db, self.min_db)
        if not active and not self._event:
            self._floor += self.floor_rise_db
        previous, self._previous = self._previous, frame
        if not self._event:
            if active:                  # onset: keep one frame of pre-roll
                self._event = [previous, frame] if previous is not None else [frame]
                self._event_stamp = stamp - (self.frame_duration if previous is not None else 0)
                self._quiet = 0
            return None
        self._event.append(frame)
        self._quiet = 0 if active else self._quiet + 1
        length = sum(len(f) for f in self._event) / self._sr
        if self._quiet * self.frame_duration >= self.hangover or length >= self.max_duration:
            frames, self._event = self._event, []
            if self._quiet:
                frames = frames[:len(frames) - self._quiet + 1]
            samples = np.concatenate(frames)
            if len(samples) / self._sr >= self.min_duration:
                return AudioSegment(self._event_stamp, samples, self._sr)
        return None


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular mel filters (n_mels x n_fft//2+1) from 50 Hz to Nyquist."""
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(np.array(50.0)), mel(np.array(sample_rate / 2)), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bank = np.zeros((n_mels, len(freqs)), np.float32)
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        bank[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, 1)
    return bank


def log_mel(samples: np.ndarray, sample_rate: int, n_mels: int = N_MELS) -> np.ndarray:
    """Log-mel spectrogram (frames x n_mels, dB) with 32 ms windows and a 10 ms hop."""
    n_fft = 1 << int(math.ceil(math.log2(0.032 * sample_rate)))
    hop = max(1, int(0.01 * sample_rate))
    x = np.asarray(samples, np.float32)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft).astype(np.float32), axis=1)) ** 2
    return 10.0 * np.log10(spec @ mel_filterbank(sample_rate, n_fft, n_mels).T + 1e-10)


def audio_features(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fixed-size description of a sound event (3 x N_MELS + 8 + 2 values)."""
    s = log_mel(samples, sample_rate)
    frame_db = s.max(axis=1)
    s = s - s.max()                                   # level invariance
    s = np.maximum(s, -80.0)
    mean, std, peak = s.mean(axis=0), s.std(axis=0), np.percentile(s, 90, axis=0)
    env = frame_db - frame_db.mean()
    spectrum = np.abs(np.fft.rfft(env, n=256))[1:]    # 100 frames/s: bins of 0.39 Hz
    edges = np.array([0.5, 1, 2, 4, 7, 11, 16, 25, 50]) / (100.0 / 256)
    mod = np.array([spectrum[int(a):max(int(a) + 1, int(b))].mean()
                    for a, b in zip(edges[:-1], edges[1:])])
    mod = mod / (mod.sum() + 1e-9)
    power = 10 ** (s / 10.0)
    flatness = np.exp(np.mean(np.log(power + 1e-12), axis=1)) / (power.mean(axis=1) + 1e-12)
    active = float(np.mean(frame_db > frame_db.max() - 20.0))
    return np.concatenate([mean / 20.0, std / 10.0, peak / 20.0, mod * 4.0,
                           [float(np.mean(flatness)) * 4.0, active * 2.0]]).astype(np.float32)


@dataclass
class SoundModel:
    """Standardisation statistics and labelled example sounds (from the prototypes file)."""

    mean: np.ndarray
    scale: np.ndarray
    classes: tuple[str, ...]        # sound: values; '' is the background class
    examples: np.ndarray            # N x features, unit rows, standardised space
    labels: np.ndarray              # N indices into classes

    @classmethod
    def load(cls, path: Path = PROTOTYPES_FILE) -> 'SoundModel':
        """:raises FileNotFoundError: when the file is missing (run the training script)."""
        with np.load(path) as data:
            return cls(data['mean'], data['scale'], tuple(str(c) for c in data['classes']),
                       data['examples'], data['labels'])

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return normalize_vector((features - self.mean) / self.scale)


def audio_embedding(features: np.ndarray, model: SoundModel, dim: int) -> np.ndarray:
    """The context vector of a sound: standardised features through a fixed isometry to dim."""
    z = model.standardise(features)
    return normalize_vector(z @ random_projection(len(z), dim, seed=1))


class SoundClassifier:
    """k-nearest-neighbour sound classifier with a background class and a similarity floor."""

    def __init__(self, model: SoundModel, min_similarity: float = 0.5, k: int = 5) -> None:
        self.model = model
        self.min_similarity = min_similarity
        self.k = k

    def classify(self, features: np.ndarray) -> tuple[str, float]:
        """Return ``(class, similarity)``: the majority class of the ``k`` nearest examples and
        their mean cosine; the class is ``''`` for background or below ``min_similarity``."""
        sims = self.model.examples @ self.model.standardise(features)
        nearest = np.argsort(-sims)[:self.k]
        votes = np.bincount(self.model.labels[nearest], minlength=len(self.model.classes))
        best = int(np.argmax(votes))
        score = float(sims[nearest][self.model.labels[nearest] == best].mean())
        name = self.model.classes[best]
        return (name if name and score >= self.min_similarity else ''), score
