"""CPU time of MemoryStore.recall in-process on a copy of the 100k bench store (no DDS).

``python recall_cpu.py base|main`` from the tree to measure (``source tools/env.sh`` there);
the store is the one ``bench_service.py --store /tmp/bench100k/store`` filled.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import SQLiteStorage


def main() -> None:
    # d893798 kept the store in core/store.py; the redesign in core/memory/.
    module = 'engram_ros.core.store' if sys.argv[1] == 'base' else 'engram_ros.core.memory'
    memory = importlib.import_module(module)
    tmp = Path(tempfile.mkdtemp()) / 'store'
    shutil.copytree('/tmp/bench100k/store', tmp)
    store = memory.MemoryStore(SQLiteStorage(tmp), memory.StoreConfig(dim=256))
    rng = np.random.default_rng(1)
    queries = {
        'tag 1%': lambda: RecallQuery(tags_all=('label:rare',), k=10),
        'vector': lambda: RecallQuery(vector=rng.normal(size=256), k=10),
        'vector+tag 10%': lambda: RecallQuery(vector=rng.normal(size=256),
                                              tags_all=('label:frequent',), k=10),
        'vector+radius 5m': lambda: RecallQuery(vector=rng.normal(size=256),
                                                center=rng.uniform(0, 100, 3) * (1, 1, 0),
                                                radius=5.0, k=10),
    }
    out = {}
    for name, make in queries.items():
        for _ in range(20):
            store.recall(make())
        times = []
        for _ in range(300):
            query = make()
            t = time.thread_time()
            store.recall(query)
            times.append((time.thread_time() - t) * 1e3)
        out[name] = float(np.median(times))
    store.close()
    shutil.rmtree(tmp.parent)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
