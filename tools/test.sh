#!/usr/bin/env bash
# The README's second command: set everything up (idempotent), then run every test tier with
# pytest: core (no ROS), nodes (real rclpy over Fast DDS). Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup.sh"
# shellcheck source=tools/env.sh
source "$ROOT/tools/env.sh"
cd "$ROOT"
# Plugins of unrelated packages in the environment (dash, via open3d) stay out of the run.
# No test is retried: a test that needs a retry has a race, and the race is fixed instead.
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
exec python -m pytest "$@"
