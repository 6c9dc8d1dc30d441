"""The store's settings and the small records its operations return.

Kept apart from the store so that the nodes, the CLI and the message conversions can name a
:class:`StoreConfig` or a :class:`ConsolidationReport` without the machinery behind them.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np

from engram_ros.core.forgetting import RetentionPolicy
from engram_ros.core.merge import MergePolicy
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.ranking import RankingWeights
from engram_ros.core.visibility import MissPolicy

#: The store's one logger: the package's name (its modules log as one; log configurations and
#: tests name it).
LOGGER_NAME = 'engram_ros.core.memory'
#: Meta key: the generation of the index cache saved at the last clean close ('' = stale).
META_INDEX_GENERATION = 'index_generation'
#: ``"<seq>:<sha256>"`` of the audit log's last line at the last clean close, as stores kept
#: it before the audit log saved its own head (``audit.head``): read, no longer written.
META_AUDIT_HEAD = 'audit_head'


class ObservationExcluded(Exception):
    """An observation inside a privacy zone or window: not stored (no error of the producer)."""


@dataclass
class StoreConfig:
    """Parameters of the store (the memory node fills it from ``config/engram.yaml``)."""

    dim: int = 256
    frame_id: str = 'map'
    max_k: int = 100
    short_term_capacity: int = 10000
    #: Most engrams kept in all; consolidation forgets the least worth keeping past it.
    budget: int = 1_000_000
    merge: MergePolicy = field(default_factory=MergePolicy)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    ranking: RankingWeights = field(default_factory=RankingWeights)
    #: Privacy zones and windows where nothing is stored; evidence retention limits.
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    #: [m] an object is anchored to the nearest current place within this distance.
    anchor_radius: float = 5.0
    #: [s] two consecutive place observations at most this far apart make a traversal edge.
    edge_max_gap: float = 60.0
    #: [s] a thing not seen for this long after the robot was at its place counts as missed.
    move_grace: float = 5.0
    #: When a thing not seen where a keyframe's view should have shown it has ended.
    misses: MissPolicy = field(default_factory=MissPolicy)
    #: From this many changed engrams on, consolidation finds duplicates for all of them at
    #: once (a grid over positions, vectorised similarity) instead of one index query each.
    batch_consolidation_min: int = 512
    #: After a crash (index rebuilt from storage) the HNSW graph is built: ``'background'``
    #: (the memory answers at once, exactly, while a thread builds it), ``'inline'`` (before
    #: the store opens) or ``'manual'`` (when :meth:`MemoryStore.build_graph` is called, or at
    #: close). See :mod:`engram_ros.core.memory.lifecycle`.
    graph_build: str = 'background'
    #: [s] how long a clean close waits for a graph still being built. Past it the build is
    #: abandoned and no index cache is saved, so the next open rebuilds the index from storage
    #: as after a crash (16-19 s to first answers at 1M) instead of the close taking the
    #: minutes the graph needs (a launch file's shutdown timeout would kill the node first).
    #: ``None`` waits for the build (builds it at close in ``'manual'`` mode) and saves it.
    close_graph_wait: float | None = 10.0


@dataclass
class IngestResult:
    """What one observation did to the memory."""

    engram_id: int
    merged: bool
    promoted: bool
    evicted: list[int] = field(default_factory=list)


@dataclass
class ConsolidationScope:
    """Which engrams a consolidation touches; the default is all of them."""

    center: np.ndarray | None = None
    radius: float = 0.0
    t_start: float | None = None
    t_end: float | None = None


@dataclass
class ConsolidationReport:
    merged: int = 0
    forgotten: int = 0
    promoted: int = 0
    size_before: int = 0
    size_after: int = 0
    dry_run: bool = False
    evicted_ids: list[int] = field(default_factory=list)
    #: Evidence files deleted (or, dry run, to delete) because they were past their retention.
    evidence_expired: int = 0
    #: (old id, new id) of beliefs that became history because the thing was seen elsewhere.
    moved: list[tuple[int, int]] = field(default_factory=list)
    #: One-off sightings forgotten as label noise of a well-established engram.
    absorbed: int = 0
    #: Beliefs that ended (history, no successor): not seen where they should have been.
    ended: list[int] = field(default_factory=list)
