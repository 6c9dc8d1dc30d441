#!/usr/bin/env bash
# The README's first command: set everything up (idempotent), then run the demo.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup.sh"
# shellcheck source=tools/env.sh
source "$ROOT/tools/env.sh"
cd "$ROOT"
exec python -m engram_ros.demo "$@"
