#!/usr/bin/env bash
# Idempotent set-up of everything engram_ros needs, then a colcon build of the package.
#
#  * A ROS 2 distro installed and sourced (ROS_DISTRO set, rclpy importable): use it. The virtual
#    environment sees the distro's Python packages (--system-site-packages) and only adds the
#    non-ROS dependencies.
#  * No ROS (a fresh Debian 12 / Python 3.11 machine): install ROS 2 Kilted from the package
#    index (ros-* wheels) into the virtual environment, with the versions pinned in
#    requirements/ros-kilted.txt.
#
# Re-running is cheap: each step checks whether it is already done.
# Environment: ENGRAM_VENV (default <repo>/.venv), ENGRAM_QUIET=1 for less output.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The virtual environment lives outside the source tree: CMake refuses exported include paths
# (numpy's, inside the venv) that lie in the package's source directory.
VENV=${ENGRAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/engram_ros/venv}
STAMP_DIR=$VENV/.engram-stamps
BUILD_STAMP=$ROOT/build/.engram-colcon-stamp

log() { printf '[setup] %s\n' "$*" >&2; }

# --- 1. Debian packages --------------------------------------------------------------------
# Each entry: a Debian package and the check that says it is already there (an interpreter from
# pyenv or a distro image may bring its own venv and headers). cmake/g++/make: colcon builds the
# generated interfaces; libusb-1.0-0 and libgomp1: open3d and faiss load them at import.
has_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
py_has_venv() { python3 -c 'import venv, ensurepip' 2>/dev/null; }
py_has_headers() { python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; }
need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
py_has_venv || need_apt+=(python3-venv)
py_has_headers || need_apt+=(python3-dev)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
has_lib libusb-1.0.so.0 || need_apt+=(libusb-1.0-0)
has_lib libgomp.so.1 || need_apt+=(libgomp1)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=''
  [ "$(id -u)" -eq 0 ] || SUDO='sudo'
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- 2. Virtual environment ----------------------------------------------------------------
ROS_FROM_DISTRO=0
if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' 2>/dev/null; then
  ROS_FROM_DISTRO=1
  log "using the sourced ROS 2 distro: $ROS_DISTRO"
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  mkdir -p "$(dirname "$VENV")"
  if ((ROS_FROM_DISTRO)); then
    python3 -m venv --system-site-packages "$VENV"
  else
    python3 -m venv "$VENV"
  fi
fi
PY=$VENV/bin/python
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' || {
  log "Python >= 3.10 is required, found $("$PY" --version)"; exit 1; }
if ((!ROS_FROM_DISTRO)); then
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
    log "the ROS 2 Kilted wheels are built for Python 3.11; found $("$PY" --version)."
    log "Use Python 3.11, or install and source a ROS 2 distro first."; exit 1; }
fi
mkdir -p "$STAMP_DIR"

# pip_install NAME FILE: install a pinned requirements file once per content hash; every
# transitive dependency is held to requirements/constraints.txt.
CONSTRAINTS=$ROOT/requirements/constraints.txt
pip_install() {
  local name=$1 file=$2 hash
  hash=$(cat "$file" "$CONSTRAINTS" | sha256sum | cut -c1-16)
  if [ -f "$STAMP_DIR/$name" ] && [ "$(cat "$STAMP_DIR/$name")" = "$hash" ]; then
    return 0
  fi
  log "installing $name packages (${file#"$ROOT"/})"
  "$PY" -m pip install --disable-pip-version-check -q -r "$file" -c "$CONSTRAINTS"
  echo "$hash" > "$STAMP_DIR/$name"
}
pip_install base "$ROOT/requirements/base.txt"
if ((!ROS_FROM_DISTRO)); then
  pip_install ros-kilted "$ROOT/requirements/ros-kilted.txt"
fi

# --- 3. Repair the ROS wheels' exported CMake files ------------------------------------------
# They name the wheel build machine's Python include and numpy paths; point them at ours.
if ((!ROS_FROM_DISTRO)) && [ ! -f "$STAMP_DIR/cmake-paths" ]; then
  py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$PY" -c 'import numpy; print(numpy.get_include())')
  grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
  done
  touch "$STAMP_DIR/cmake-paths"
fi

# shellcheck source=tools/env.sh
source "$ROOT/tools/env.sh"

# --- 4. Stand-in interface packages (shims/) ----------------------------------------------------
# tf2_msgs and vision_msgs are not on the package index. Where one is not installed (no sourced
# distro has it), build the package of the same name and definitions from shims/ in its own
# colcon workspace under the cache, keyed by a hash of its sources, so that worktrees and
# re-runs share one build. $ROOT/build/.engram-shims-prefix names the install that tools/env.sh
# puts on the paths (before this package, as an underlay would be); it is removed when every
# package is found installed.
SHIMS_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/engram_ros/shims
SHIMS_POINTER=$ROOT/build/.engram-shims-prefix
installed_elsewhere() {  # PACKAGE: found in an ament prefix that is not a shim install
  local prefix
  IFS=: read -ra _prefixes <<< "${AMENT_PREFIX_PATH:-}"
  for prefix in "${_prefixes[@]}"; do
    case $prefix in "$SHIMS_CACHE"/*|"$ENGRAM_INSTALL") continue ;; esac
    [ -e "$prefix/share/ament_index/resource_index/packages/$1" ] && return 0
  done
  return 1
}
missing=()
for dir in "$ROOT"/shims/*/; do
  pkg=$(basename "$dir")
  [ -f "$dir/package.xml" ] || continue
  installed_elsewhere "$pkg" || missing+=("$pkg")
done
mkdir -p "$ROOT/build"
if ((${#missing[@]})); then
  shim_hash=$(cd "$ROOT/shims" && for pkg in "${missing[@]}"; do
      find "$pkg" -type f ! -name '*.pyc'; done | LC_ALL=C sort | xargs sha256sum \
    | { cat; echo "$PY"; cat "$ROOT/requirements/ros-kilted.txt"; } | sha256sum | cut -c1-16)
  shim_dir=$SHIMS_CACHE/$shim_hash
  mkdir -p "$SHIMS_CACHE"
  exec 8>"$SHIMS_CACHE/.lock"
  flock 8
  if [ ! -f "$shim_dir/.engram-shims-ok" ]; then
    log "building stand-in interface packages: ${missing[*]} ($shim_dir)"
    rm -rf "$shim_dir"
    mkdir -p "$shim_dir/src"
    for pkg in "${missing[@]}"; do cp -r "$ROOT/shims/$pkg" "$shim_dir/src/"; done
    (cd "$shim_dir" && "$VENV/bin/colcon" build --base-paths "$shim_dir/src" \
        --build-base "$shim_dir/build" --install-base "$shim_dir/install" --merge-install \
        --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY" \
        >"$shim_dir/colcon-build.log" 2>&1) || {
      tail -40 "$shim_dir/colcon-build.log" >&2
      log "building the stand-in interfaces failed: see $shim_dir/colcon-build.log"
      exit 1
    }
    printf '%s\n' "${missing[@]}" > "$shim_dir/.engram-shims-ok"
  fi
  flock -u 8
  echo "$shim_dir/install" > "$SHIMS_POINTER"
else
  rm -f "$SHIMS_POINTER"
fi
# shellcheck source=tools/env.sh
source "$ROOT/tools/env.sh"

# --- 5. colcon build -------------------------------------------------------------------------
src_hash=$(cd "$ROOT" && ls msg srv scripts && cat package.xml CMakeLists.txt msg/*.msg srv/*.srv \
  | sha256sum | cut -c1-16)
# One build at a time per checkout (parallel test runs or shells share build/ and install/).
mkdir -p "$ROOT/log"
exec 9>"$ROOT/log/.setup.lock"
flock 9
if [ ! -f "$ROOT/install/engram_ros/share/engram_ros/package.xml" ] \
   || [ "$(cat "$BUILD_STAMP" 2>/dev/null)" != "$src_hash" ]; then
  log "colcon build (interfaces + Python package)"
  # --packages-select as the README's workspace command, so every set-up runs that command.
  (cd "$ROOT" && "$VENV/bin/colcon" build --packages-select engram_ros --base-paths "$ROOT" \
      --build-base "$ROOT/build" --install-base "$ROOT/install" \
      --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY" \
      >"$ROOT/log/colcon-build.log" 2>&1) || {
    tail -40 "$ROOT/log/colcon-build.log" >&2
    log "colcon build failed: see log/colcon-build.log"
    exit 1
  }
  echo "$src_hash" > "$BUILD_STAMP"
fi
# Python sources change often: refresh the installed copy without a rebuild.
cp -r "$ROOT/engram_ros/." "$ENGRAM_INSTALL_PY/engram_ros/"
flock -u 9
log "ready"
