"""``python -m engram_ros.apps.cli``: the ``engram`` command line."""

import sys

from engram_ros.apps.cli import main

sys.exit(main())
