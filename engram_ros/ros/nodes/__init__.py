"""rclpy nodes: thin wrappers that translate messages and call engram_ros.core.

Numerical libraries default to one thread per core, and their idle threads spin: on a robot's
few cores that steals time from the DDS and executor threads and multiplied Recall latency
(7 ms instead of 3.6 ms for k=1 at 100k engrams on 2 cores). Per-query work here is small,
so nodes run BLAS and OpenMP single-threaded unless the user set these variables. This must
happen before numpy, faiss or torch are imported, hence here.

Fast DDS drops a service reply when the client's reply reader has not matched within 100 ms
(a loaded machine's discovery can take longer): the client then waits in vain. Unless the user
gave Fast DDS a profiles file, the nodes load ``config/fastdds.xml``, which lets a reply wait
up to 5 s for its reader. Environment variables are read when rclpy creates the participant,
so this too must happen before ``rclpy.init``.
"""

import os
from pathlib import Path

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')


def _fastdds_profiles() -> str:
    """The package's Fast DDS profiles file: in the source tree, else in the install space."""
    here = Path(__file__).resolve()
    source = here.parents[3] / 'config' / 'fastdds.xml'
    if source.is_file():
        return str(source)
    try:
        from ament_index_python.packages import get_package_share_directory
        return str(Path(get_package_share_directory('engram_ros')) / 'config' / 'fastdds.xml')
    except Exception:       # no ament index: run from a plain checkout without the file
        return ''


if 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ:
    _profiles = _fastdds_profiles()
    if _profiles:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = _profiles
