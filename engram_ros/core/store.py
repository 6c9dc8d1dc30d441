"""Shim: the store moved to :mod:`engram_ros.core.memory`; this module only re-exports the names
imported from ``engram_ros.core.store`` (the integrator rewrites the importers and deletes it).
"""

from __future__ import annotations

from engram_ros.core.memory import ConsolidationReport
from engram_ros.core.memory import ConsolidationScope
from engram_ros.core.memory import IngestResult
from engram_ros.core.memory import META_AUDIT_HEAD
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import ObservationExcluded
from engram_ros.core.memory import StoreConfig
from engram_ros.core.query import QueryError

__all__ = ['ConsolidationReport', 'ConsolidationScope', 'IngestResult', 'META_AUDIT_HEAD',
           'MemoryStore', 'ObservationExcluded', 'QueryError', 'StoreConfig']
