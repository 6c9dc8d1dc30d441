"""Shim: the launcher moved to :mod:`engram_ros.apps.launcher` and its node sets to
:mod:`engram_ros.apps.wiring`; this only re-exports them, and ``python -m engram_ros.launcher``
still runs ``engram_launch``."""

from __future__ import annotations

import sys

from engram_ros.apps.launcher import build_parser
from engram_ros.apps.launcher import Child
from engram_ros.apps.launcher import Launcher
from engram_ros.apps.launcher import main
from engram_ros.apps.wiring import default_params_file
from engram_ros.apps.wiring import NODES
from engram_ros.apps.wiring import NodeSpec
from engram_ros.apps.wiring import SETS

__all__ = ['build_parser', 'Child', 'Launcher', 'main', 'default_params_file', 'NODES',
           'NodeSpec', 'SETS']

if __name__ == '__main__':
    sys.exit(main())
