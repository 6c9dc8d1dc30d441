"""Shim: the engram data model moved to :mod:`engram_ros.core.model.engram`.

Re-exports its public names so existing imports keep working until they are rewritten.
"""

from __future__ import annotations

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import KINDS
from engram_ros.core.model.engram import MODALITIES
from engram_ros.core.model.engram import normalize_vector
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import stack_rows
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.model.engram import TIERS

__all__ = ['Engram', 'InvalidObservation', 'kind_code', 'KINDS', 'MODALITIES',
           'normalize_vector', 'Observation', 'stack_rows', 'TIER_LONG', 'TIER_SHORT', 'TIERS']
