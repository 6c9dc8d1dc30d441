# Source this file (bash) to use the built package without install/setup.bash:
#   source tools/env.sh
# It puts the virtual environment, the ROS 2 prefix (a sourced distro or the wheels inside the
# virtual environment) and the colcon install space on the paths ROS and Python read.
_engram_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_engram_venv=${ENGRAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/engram_ros/venv}
export ENGRAM_ROOT=$_engram_root
export ENGRAM_INSTALL=$_engram_root/install/engram_ros
export ENGRAM_INSTALL_PY=$ENGRAM_INSTALL/lib/python3.11/site-packages
if [ -x "$_engram_venv/bin/python" ]; then
  ENGRAM_INSTALL_PY=$ENGRAM_INSTALL/$("$_engram_venv/bin/python" -c \
    'import sysconfig; print(sysconfig.get_path("purelib", vars={"base": ""}).lstrip("/"))' \
    2>/dev/null || echo lib/python3.11/site-packages)
  export PATH=$_engram_venv/bin:$PATH
fi
if [ -z "${ROS_DISTRO:-}" ]; then
  # ROS 2 from the wheels: the virtual environment is the ROS prefix.
  export AMENT_PREFIX_PATH=$_engram_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  export CMAKE_PREFIX_PATH=$_engram_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
fi
# Stand-in interface packages (tf2_msgs, vision_msgs) that tools/setup.sh built because none was
# installed: an underlay, so they come before this package on the paths (after, in lookup order).
_engram_shims=$(cat "$_engram_root/build/.engram-shims-prefix" 2>/dev/null || true)
case ":${AMENT_PREFIX_PATH:-}:" in *":$_engram_shims:"*) _engram_shims='' ;; esac
if [ -n "$_engram_shims" ] && [ -d "$_engram_shims" ]; then
  export ENGRAM_SHIMS=$_engram_shims
  export AMENT_PREFIX_PATH=$_engram_shims${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  export CMAKE_PREFIX_PATH=$_engram_shims${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export PYTHONPATH=$_engram_shims/${ENGRAM_INSTALL_PY#"$ENGRAM_INSTALL"/}${PYTHONPATH:+:$PYTHONPATH}
  export LD_LIBRARY_PATH=$_engram_shims/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export AMENT_PREFIX_PATH=$ENGRAM_INSTALL${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
# The source tree first, so edits take effect without a rebuild; the generated msg/srv modules
# are found in the install space (engram_ros/__init__.py extends the package path).
export PYTHONPATH=$ENGRAM_ROOT:$ENGRAM_INSTALL_PY${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=$ENGRAM_INSTALL/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Keep DDS traffic on this machine unless the user chose otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export HF_HUB_OFFLINE=1
unset _engram_root _engram_venv _engram_shims
