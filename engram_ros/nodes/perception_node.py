"""Shim: the perception node moved to :mod:`engram_ros.ros.nodes.perception_node`; this only
re-exports it, and ``python -m engram_ros.nodes.perception_node`` still starts it."""

from __future__ import annotations

import sys

from engram_ros.ros.nodes.perception_node import PerceptionNode
from engram_ros.ros.nodes.perception_node import main

__all__ = ['PerceptionNode', 'main']

if __name__ == '__main__':
    sys.exit(main())
