"""Where one Recall's CPU goes, end to end, at N engrams (no DDS: the node's callback path).

    source tools/env.sh
    python benchmarks/profile_recall.py --size 100000 --calls 2000 [--store DIR] [--compact]

Fills a SQLite store like ``benchmarks/bench_service.py`` (reuse one with ``--store``), opens it
the way the memory node does (``open_store``: SQLite, audit log on disk), and runs the node's
Recall callback path in this process: request message -> ``recall_query_from_request`` ->
``MemoryStore.recall`` (filter, rank, record fetch, audit record) -> ``fill_recall_response``
-> CDR serialisation of the response (``rclpy.serialization``, what DDS then sends). Prints
the CPU (``time.process_time``) and wall time per call of each query (the wall time includes
waiting for the disk: the audit record is written per call), then the top functions (by CPU
time) of a cProfile of the text + tag query at k=10 (the single-client target of issue 12).

The script runs unchanged against an older checkout (without ``--compact``), to measure before
and after side by side: copy it into that checkout's ``benchmarks/`` and run it there.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import DIM  # noqa: E402
from bench_service import fill  # noqa: E402

from engram_ros.ros import memory_parameters  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402
from engram_ros.ros.conversions import memory as conversions  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402


def params(store: Path):
    """Node parameter values: the package defaults (config/engram.yaml) with a store on disk."""
    import yaml
    root = Path(__file__).resolve().parents[1]
    values = yaml.safe_load((root / 'config' / 'engram.yaml').read_text())
    flat: dict = {}

    def walk(prefix: str, tree: dict) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(f'{prefix}{key}.', value)
            else:
                flat[prefix + key] = value
    walk('', next(iter(values.values()))['ros__parameters'])
    flat.update(persist=True, store_dir=str(store))
    return lambda name: flat.get(name)   # unset array parameters: None, as an empty one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=100000)
    parser.add_argument('--calls', type=int, default=2000)
    parser.add_argument('--store', type=Path, default=None,
                        help='reuse a filled store directory (filled if missing)')
    parser.add_argument('--compact', action='store_true', help='ask compact answers')
    parser.add_argument('--top', type=int, default=25,
                        help='functions shown by the profile (0: no profile)')
    args = parser.parse_args()
    store_dir = args.store or Path(tempfile.mkdtemp(prefix='engram_prof_')) / 'store'
    if not (store_dir / 'engrams.sqlite3').exists():
        t = time.perf_counter()
        fill(store_dir, args.size)
        print(f'filled {args.size} engrams in {time.perf_counter() - t:.1f} s')
    store, _ = memory_parameters.open_store(params(store_dir))
    rng = np.random.default_rng(1)
    compact = {'compact': True} if args.compact else {}
    queries = {
        'text + tag (10%), k=10': lambda: dict(text='where is the red mug', tags_any=[
            'label:frequent'], k=10, **compact),
        'tag filter (1%), k=10': lambda: dict(tags_all=['label:rare'], k=10, **compact),
        'vector + tag (10%), k=10': lambda: dict(vector=rng.normal(size=DIM),
                                                 tags_all=['label:frequent'], k=10, **compact),
        'tag filter (1%), k=1': lambda: dict(tags_all=['label:rare'], k=1, **compact),
    }
    make_request = MemoryClient.make_recall_request

    def call(kwargs: dict) -> Recall.Response:
        request = make_request(**kwargs)
        response = Recall.Response()
        result = store.recall(conversions.recall_query_from_request(request),
                              requester=conversions.requester_of(request))
        # As the node calls it (without compact where an older checkout has none, so that
        # this script also measures the code before a change; see --help).
        conversions.fill_recall_response(result, response, request.include_vectors,
                                         *((True,) if kwargs.get('compact') else ()))
        serialize_message(response)
        return response

    try:
        print(f'{Path(conversions.__file__).parents[3]}: {store_dir}, {len(store)} engrams, '
              f'{args.calls} calls per query'
              f'{" (compact)" if args.compact else ""}')
        print(f'{"query":28s} {"CPU ms/call":>12s} {"wall ms/call":>13s} {"hits":>5s}')
        for make in queries.values():       # warm-up: caches, the first index reads
            for _ in range(50):
                call(make())
        # Interleaved blocks of 50 calls, so that a change of load weighs on every query.
        cpu = dict.fromkeys(queries, 0.0)
        wall = dict.fromkeys(queries, 0.0)
        hits = dict.fromkeys(queries, 0)
        for _ in range(max(1, args.calls // 50)):
            for name, make in queries.items():
                requests = [make() for _ in range(50)]
                t, w = time.process_time(), time.perf_counter()
                for kwargs in requests:
                    response = call(kwargs)
                cpu[name] += time.process_time() - t
                wall[name] += time.perf_counter() - w
                assert response.status == 0, response.message
                hits[name] = len(response.engrams)
        n = max(1, args.calls // 50) * 50
        for name in queries:
            print(f'{name:28s} {cpu[name] / n * 1e3:12.3f} {wall[name] / n * 1e3:13.3f} '
                  f'{hits[name]:5d}')
        if not args.top:
            return 0
        make = queries['text + tag (10%), k=10']
        requests = [make() for _ in range(args.calls)]
        profile = cProfile.Profile(time.process_time)   # CPU time: robust to a loaded machine
        profile.enable()
        for kwargs in requests:
            call(kwargs)
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats('tottime').print_stats(args.top)
        stats.sort_stats('cumulative').print_stats('engram_ros|rclpy_serialize', args.top)
        print(out.getvalue())
    finally:
        store.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
