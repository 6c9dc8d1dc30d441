#!/usr/bin/env bash
# The README's first command: set everything up (idempotent), then the main demo: a robot
# patrols the simulated house, its memory fills, a planner asks it questions (engram_ros/sim/demo.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup.sh"
# shellcheck source=tools/env.sh
source "$ROOT/tools/env.sh"
cd "$ROOT"
exec python -m engram_ros.sim.demo "$@"
