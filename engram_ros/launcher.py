"""Shim: the launcher moved to :mod:`engram_ros.apps.launcher`; this only re-exports it, and
``python -m engram_ros.launcher`` still runs ``engram_launch``."""

from __future__ import annotations

import sys

from engram_ros.apps.launcher import build_parser
from engram_ros.apps.launcher import Child
from engram_ros.apps.launcher import default_params_file
from engram_ros.apps.launcher import Launcher
from engram_ros.apps.launcher import main
from engram_ros.apps.launcher import NODES
from engram_ros.apps.launcher import NodeSpec
from engram_ros.apps.launcher import SETS

__all__ = ['build_parser', 'Child', 'Launcher', 'main', 'default_params_file', 'NODES',
           'NodeSpec', 'SETS']

if __name__ == '__main__':
    sys.exit(main())
