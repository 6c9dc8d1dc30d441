"""The engram data model: the one definition of what the memory stores.

An engram has three parts (see the README):

* a **context vector**: an L2-normalised float32 embedding for fuzzy similarity;
* a **sketch**: a few canonical, human-readable tags for exact filtering and debugging;
* **associative metadata**: pose and frame, time, modality, confidence, evidence URIs.

Perception produces :class:`Observation` objects; the store turns them into :class:`Engram`
objects (new ones, or merged into existing ones). Nothing here imports ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol
from typing import Sequence

import numpy as np

from engram_ros.core.model.limits import MAX_LABEL_BYTES
from engram_ros.core.model.limits import MAX_TAG_BYTES
from engram_ros.core.model.limits import MAX_TAGS_PER_OBSERVATION
from engram_ros.core.model.limits import oversized_tag
from engram_ros.core.model.limits import utf8_len

#: Kinds of engram the memory knows. The order is stable: the index stores the position as a
#: small integer code, so new kinds are only ever appended.
KINDS: tuple[str, ...] = ('place', 'object', 'audio', 'event')

#: Modalities an observation can come from.
MODALITIES: tuple[str, ...] = ('vision', 'depth', 'audio', 'text', 'multi')

#: Storage tiers of the hierarchical store.
TIER_SHORT = 'short'
TIER_LONG = 'long'
TIERS: tuple[str, ...] = (TIER_SHORT, TIER_LONG)

#: Identity covariance used when a producer gives none (1 m^2 / 1 rad^2 diagonal). An all-zero
#: covariance, the ROS convention for "unknown", is kept as it is and weighed as unknown when
#: sightings are fused (:func:`engram_ros.core.merge.position_variances`).
_DEFAULT_COVARIANCE = tuple(float(i % 7 == 0) for i in range(36))

#: Why an observation was refused, for the node's per-reason counters: a size limit
#: (:mod:`engram_ros.core.model.limits`) or anything else that breaks the contract.
REASON_MALFORMED = 'malformed'
REASON_LABEL_TOO_LONG = 'label_too_long'
REASON_TOO_MANY_TAGS = 'too_many_tags'
REASON_TAG_TOO_LONG = 'tag_too_long'


class InvalidObservation(ValueError):
    """An observation that cannot be stored; the message says what was wrong, ``reason`` which
    rule it broke (one of the ``REASON_*`` names)."""

    def __init__(self, message: str, reason: str = REASON_MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


class ViewLike(Protocol):
    """What an observation needs of a camera view (:class:`engram_ros.core.visibility.View`).

    A protocol rather than an import: the model imports nothing from the layers built on it.
    """

    def validate(self) -> None:
        """Raise ``ValueError`` naming what is wrong with the view."""


def kind_code(kind: str) -> int:
    """Return the stable integer code of ``kind``.

    :raises ValueError: for a kind not in :data:`KINDS`.
    """
    try:
        return KINDS.index(kind)
    except ValueError:
        raise ValueError(f'unknown kind {kind!r}; accepted: {", ".join(KINDS)}') from None


def normalize_vector(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return ``vector`` as a float32 array of unit length (a zero vector stays zero)."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    if norm > 0.0:
        v = v / norm
    return v.astype(np.float32, copy=False)


def stack_rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``np.stack`` of many equal-length 1-d arrays, several times faster for thousands of
    small ones (one concatenate, no per-array reshape): the batch paths over engrams use it.

    :raises ValueError: for no arrays, or arrays of different lengths.
    """
    if not arrays:
        raise ValueError('stack_rows needs at least one array')
    width = len(arrays[0])
    if np.any(np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays)) != width):
        raise ValueError('stack_rows: the arrays differ in length')
    return np.concatenate(arrays).reshape(len(arrays), width)


@dataclass
class Observation:
    """One encoded observation on its way into the memory (what perception publishes).

    Positions are metres in ``frame_id``; stamps are seconds since the Unix epoch.
    """

    kind: str
    frame_id: str
    position: np.ndarray
    stamp: float
    vector: np.ndarray
    tags: tuple[str, ...] = ()
    label: str = ''
    orientation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    covariance: np.ndarray = field(default_factory=lambda: np.array(_DEFAULT_COVARIANCE))
    modality: str = 'vision'
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()
    #: SLAM keyframe this (place) observation was taken at; "" when there is none. A
    #: keyframe correction moves the place engram that carries it (and what is anchored there).
    keyframe_id: str = ''
    #: What the camera could see at a place observation (:class:`engram_ros.core.visibility.
    #: View`), or None; the memory uses it to notice things missed where they were. Not stored.
    view: ViewLike | None = None
    #: Where the camera was (memory frame [m]) when an object observation was made, or None:
    #: how far away the detector can see this thing (core/visibility.py). Not stored.
    viewpoint: np.ndarray | None = None

    def validate(self, dim: int, frame_id: str | None = None) -> None:
        """Check the observation against the store's contract.

        :param dim: the store's context-vector dimension.
        :param frame_id: the store's fixed frame; ``None`` accepts any non-empty frame.
        :raises InvalidObservation: naming the first problem found (size limits first).
        """
        self._check_sizes()
        if self.kind not in KINDS:
            raise InvalidObservation(f'unknown kind {self.kind!r}; accepted: {", ".join(KINDS)}')
        if self.modality not in MODALITIES:
            raise InvalidObservation(
                f'unknown modality {self.modality!r}; accepted: {", ".join(MODALITIES)}')
        if not self.frame_id:
            raise InvalidObservation('empty frame_id; observations must name their frame')
        if frame_id is not None and self.frame_id != frame_id:
            raise InvalidObservation(
                f'frame {self.frame_id!r} is not the memory frame {frame_id!r}; '
                'transform observations before publishing them')
        _check_finite('position', self.position, 3)
        _check_finite('orientation', self.orientation, 4)
        _check_finite('covariance', self.covariance, 36)
        q_norm = float(np.linalg.norm(self.orientation))
        if abs(q_norm - 1.0) > 1e-3:
            raise InvalidObservation(
                f'orientation quaternion has norm {q_norm:.4f}; a unit quaternion is required')
        if not math.isfinite(self.stamp) or self.stamp < 0.0:
            raise InvalidObservation(f'stamp {self.stamp!r} must be finite and >= 0')
        _check_finite('vector', self.vector, dim)
        if not float(np.linalg.norm(self.vector)) > 0.0:
            raise InvalidObservation('vector is all zeros; it cannot be ranked')
        if not (0.0 <= self.confidence <= 1.0) or not math.isfinite(self.confidence):
            raise InvalidObservation(f'confidence {self.confidence!r} must be in [0, 1]')
        if self.viewpoint is not None:
            _check_finite('viewpoint', self.viewpoint, 3)
        if self.view is not None:
            if self.kind != 'place':
                raise InvalidObservation(f'a view belongs to a place observation, not a '
                                         f'{self.kind} one')
            try:
                self.view.validate()
            except ValueError as exc:
                raise InvalidObservation(str(exc)) from None

    def _check_sizes(self) -> None:
        """:raises InvalidObservation: past a limit of :mod:`engram_ros.core.model.limits`."""
        if utf8_len(self.label) > MAX_LABEL_BYTES:
            raise InvalidObservation(
                f'label of {utf8_len(self.label)} bytes; accepted: at most {MAX_LABEL_BYTES} '
                'bytes (MAX_LABEL_BYTES)', REASON_LABEL_TOO_LONG)
        if len(self.tags) > MAX_TAGS_PER_OBSERVATION:
            raise InvalidObservation(
                f'{len(self.tags)} tags; accepted: at most {MAX_TAGS_PER_OBSERVATION} per '
                'observation (MAX_TAGS_PER_OBSERVATION)', REASON_TOO_MANY_TAGS)
        long_tag = oversized_tag(self.tags)
        if long_tag is not None:
            raise InvalidObservation(
                f'tag {long_tag!r} is too long; accepted: at most {MAX_TAG_BYTES} bytes '
                '(MAX_TAG_BYTES)', REASON_TAG_TOO_LONG)


@dataclass
class Engram:
    """A memory trace: one place, object, sound or event, possibly seen many times.

    ``vector`` is unit length. ``covariance`` is the 6x6 row-major pose covariance
    (x, y, z, roll, pitch, yaw) as in ``geometry_msgs/PoseWithCovariance``.
    """

    id: int
    kind: str
    frame_id: str
    position: np.ndarray
    vector: np.ndarray
    first_seen: float
    last_seen: float
    tags: tuple[str, ...] = ()
    label: str = ''
    orientation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    covariance: np.ndarray = field(default_factory=lambda: np.array(_DEFAULT_COVARIANCE))
    modality: str = 'vision'
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()
    observation_count: int = 1
    #: Usefulness / consolidation score in [0, 1]; grows when recalls of it help a planner.
    score: float = 0.5
    tier: str = TIER_SHORT
    pinned: bool = False
    #: Last time (s since epoch) it was written or recalled: the LRU key of the short-term tier.
    last_access: float = 0.0
    recall_count: int = 0
    #: Temporal validity of this belief [s since epoch]: it is the current belief from
    #: ``valid_from`` until ``valid_to``; ``valid_to is None`` marks a current belief, a time
    #: marks history (the thing was later believed elsewhere, see ``successor_id``).
    valid_from: float = 0.0
    valid_to: float | None = None
    #: The engram that replaced this one when it became history (0 = none).
    successor_id: int = 0
    #: Place engram an object (or sound, event) is anchored to: the nearest place when it was
    #: last placed; a pose correction of that place moves it along (0 = none).
    anchor_id: int = 0
    #: SLAM keyframe a place engram is attached to ("" = none).
    keyframe_id: str = ''

    @property
    def current(self) -> bool:
        """True for a current belief, False for history."""
        return self.valid_to is None

    @classmethod
    def from_observation(cls, engram_id: int, obs: Observation) -> 'Engram':
        """Make a new short-term engram from a validated observation."""
        return cls(
            id=engram_id, kind=obs.kind, frame_id=obs.frame_id,
            position=np.asarray(obs.position, dtype=np.float64).copy(),
            vector=normalize_vector(obs.vector),
            first_seen=obs.stamp, last_seen=obs.stamp,
            tags=tuple(sorted(set(obs.tags))), label=obs.label,
            orientation=np.asarray(obs.orientation, dtype=np.float64).copy(),
            covariance=np.asarray(obs.covariance, dtype=np.float64).copy(),
            modality=obs.modality, confidence=float(obs.confidence),
            evidence=tuple(obs.evidence), last_access=obs.stamp, valid_from=obs.stamp,
            keyframe_id=obs.keyframe_id)

    def copy(self, *, skip: tuple[str, ...] = ()) -> 'Engram':
        """Deep copy (arrays included).

        :param skip: names of array fields the caller is about to replace: these are shared
            with ``self`` instead of copied (a batch merge sets position, covariance, vector).
        """
        # Not dataclasses.replace: this is on the consolidation hot path, and every field is
        # either immutable or an array copied here.
        out = object.__new__(Engram)
        out.__dict__.update(self.__dict__)
        out.orientation = self.orientation.copy()
        if not skip:
            out.position = self.position.copy()
            out.vector = self.vector.copy()
            out.covariance = self.covariance.copy()
            return out
        for name in ('position', 'vector', 'covariance'):
            if name not in skip:
                setattr(out, name, getattr(self, name).copy())
        return out


def _check_finite(name: str, value: Sequence[float] | np.ndarray, length: int) -> None:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape[0] != length:
        raise InvalidObservation(f'{name} has {arr.shape[0]} values; {length} are required')
    if not np.all(np.isfinite(arr)):
        raise InvalidObservation(f'{name} contains NaN or inf')
