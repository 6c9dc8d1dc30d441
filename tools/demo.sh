#!/usr/bin/env bash
# The README's first command: set everything up (idempotent), then the main demo: a robot
# patrols the simulated house, its memory fills, a planner asks it questions (engram_ros/sim/demo.py).
# With --fleet first: the fleet demo, two robots sharing one memory (engram_ros/sim/fleet_demo.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup.sh"
# shellcheck source=tools/env.sh
source "$ROOT/tools/env.sh"
cd "$ROOT"
if [[ "${1:-}" == --fleet ]]; then
  shift
  exec python -m engram_ros.sim.fleet_demo "$@"
fi
exec python -m engram_ros.sim.demo "$@"
