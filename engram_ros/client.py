"""Shim: the memory client moved to :mod:`engram_ros.ros.client`; this only re-exports it."""

from __future__ import annotations

from engram_ros.ros.client import MemoryClient
from engram_ros.ros.client import spinning_node

__all__ = ['MemoryClient', 'spinning_node']
