"""Shim: the ``engram`` command line moved to :mod:`engram_ros.apps.cli`; this keeps
``from engram_ros.cli import main`` and ``python -m engram_ros.cli`` working until the
integrator rewrites the importers."""

from __future__ import annotations

import sys

from engram_ros.apps.cli import build_parser  # noqa: F401
from engram_ros.apps.cli import main
from engram_ros.apps.cli.common import CliError  # noqa: F401
from engram_ros.apps.cli.common import open_store  # noqa: F401
from engram_ros.apps.cli.common import parse_time  # noqa: F401

if __name__ == '__main__':
    sys.exit(main())
