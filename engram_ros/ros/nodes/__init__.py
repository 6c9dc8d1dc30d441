"""rclpy nodes: thin wrappers that translate messages and call engram_ros.core.

Numerical libraries default to one thread per core, and their idle threads spin: on a robot's
few cores that steals time from the DDS and executor threads and multiplied Recall latency
(7 ms instead of 3.6 ms for k=1 at 100k engrams on 2 cores). Per-query work here is small,
so nodes run BLAS and OpenMP single-threaded unless the user set these variables. This must
happen before numpy, faiss or torch are imported, hence here.
"""

import os

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')
