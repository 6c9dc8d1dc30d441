"""Shim: the memory node moved to :mod:`engram_ros.ros.nodes.memory_node`; this only re-exports
it, and ``python -m engram_ros.nodes.memory_node`` still starts it."""

from __future__ import annotations

import sys

from engram_ros.ros.nodes.memory_node import MemoryNode
from engram_ros.ros.nodes.memory_node import main

__all__ = ['MemoryNode', 'main']

if __name__ == '__main__':
    sys.exit(main())
