"""Where one Recall's CPU goes, end to end, at N engrams (no DDS: the node's callback path).

    source tools/env.sh
    python benchmarks/profile_recall.py --size 100000 --calls 2000 [--store DIR] [--compact]

Fills a SQLite store like ``benchmarks/bench_service.py`` (reuse one with ``--store``), opens it
the way the memory node does (``open_store``: SQLite, audit log on disk), and runs the node's
Recall callback path in this process: request message -> ``recall_query_from_request`` ->
``MemoryStore.recall`` (filter, rank, record fetch, audit record) -> ``fill_recall_response``
-> CDR serialisation of the response (``rclpy.serialization``, what DDS then sends). Prints
the CPU per call (``time.process_time``) of each query, then the top functions of a cProfile
of the text + tag query at k=10 (the single-client target of issue 12).
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
    parser.add_argument('--top', type=int, default=25, help='functions shown by the profile')
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
        'text + tag (10%), k=10': lambda: dict(text='where is the thing', tags_any=[
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
        conversions.fill_recall_response(result, response, request.include_vectors,
                                         request.compact)
        serialize_message(response)
        return response

    try:
        print(f'{store_dir}, {len(store)} engrams, {args.calls} calls per query'
              f'{" (compact)" if args.compact else ""}')
        print(f'{"query":28s} {"CPU ms/call":>12s} {"hits":>5s}')
        for name, make in queries.items():
            for _ in range(50):
                call(make())
            requests = [make() for _ in range(args.calls)]
            t = time.process_time()
            for kwargs in requests:
                response = call(kwargs)
            cpu = (time.process_time() - t) / args.calls * 1e3
            assert response.status == 0, response.message
            print(f'{name:28s} {cpu:12.3f} {len(response.engrams):5d}')
        make = queries['text + tag (10%), k=10']
        requests = [make() for _ in range(args.calls)]
        profile = cProfile.Profile()
        profile.enable()
        for kwargs in requests:
            call(kwargs)
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats('tottime').print_stats(args.top)
        print(out.getvalue())
    finally:
        store.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
