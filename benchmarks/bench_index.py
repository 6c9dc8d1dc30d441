#!/usr/bin/env python3
"""Benchmark of the hot index (``engram_ros.core.index``): filtered top-k latency and recall.

Fills an :class:`EngramIndex` with synthetic engrams (clustered 256-d unit vectors; tags from
families of known selectivity: 50 %, 10 %, 1 %, 0.1 %, 0.01 %), then per size and per
selectivity measures, on one core, the latency of ``filter`` + ``dense_topk`` (k = 10) and its
recall@10 against an exact faiss ``IndexFlatIP`` over the float32 vectors restricted (with an
``IDSelectorBitmap``) to the same matching subset; the baseline's own latency is reported
beside it. Latency is given both as wall time and as the calling thread's CPU time
(``time.thread_time``), which stays meaningful on a shared machine. Also reports build time
and resident memory per engram (VmRSS delta / N, taken before the float32 ground-truth matrix
exists).

Example::

    .venv/bin/python benchmarks/bench_index.py --sizes 10000 100000 1000000 \\
        --out docs/benchmarks/index.json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram_ros.core.index import EngramIndex  # noqa: E402

_LOG = logging.getLogger('bench_index')

#: Tag families: (tag, probability that an engram carries it).
SELECTIVITIES: tuple[tuple[str, float], ...] = (
    ('sel:50', 0.5), ('sel:10', 0.1), ('sel:1', 0.01), ('sel:0.1', 0.001),
    ('sel:0.01', 0.0001))
CHUNK = 50_000


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('VmRSS not found in /proc/self/status')


def latent_model(seed: int, n_clusters: int, dim: int, latent_dim: int) -> dict:
    """Cluster centres in a low-dimensional latent space and a random linear embedding."""
    rng = np.random.default_rng([seed, 1])
    return {'centers': rng.standard_normal((n_clusters, latent_dim), dtype=np.float32),
            'embed': rng.standard_normal((latent_dim, dim), dtype=np.float32)}


def clustered(rng: np.random.Generator, model: dict, n: int, spread: float,
              noise: float) -> np.ndarray:
    """Unit vectors from a Gaussian mixture in the latent space, embedded, plus noise.

    Real embeddings have a low intrinsic dimension; isotropic 256-d noise around cluster
    centres is a much harder (and less realistic) case for HNSW.
    """
    cen = model['centers']
    z = cen[rng.integers(0, cen.shape[0], n)]
    z += rng.standard_normal(z.shape, dtype=np.float32) * np.float32(spread)
    x = z @ model['embed']
    x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(noise)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def chunks(n: int, seed: int, model: dict, args: argparse.Namespace) -> Iterator[dict]:
    """Deterministic synthetic engrams, chunk by chunk (so float32 data can be regenerated)."""
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        rng = np.random.default_rng([seed, start])
        vectors = clustered(rng, model, m, args.spread, args.noise)
        member = np.stack([rng.random(m) < p for _, p in SELECTIVITIES], axis=1)
        first = 1.7e9 + rng.uniform(0, 3e6, m)
        yield {
            'ids': 1000 + 3 * np.arange(start, start + m, dtype=np.int64),  # sparse ids
            'vectors': vectors,
            'kinds': rng.integers(0, 4, m),
            'positions': rng.uniform(-50, 50, (m, 3)),
            'first_seen': first,
            'last_seen': first + rng.exponential(600, m),
            'member': member,
        }


def tags_for(member: np.ndarray, labels: np.ndarray) -> list[list[str]]:
    names = [t for t, _ in SELECTIVITIES]
    out = []
    for row, label in zip(member.tolist(), labels.tolist()):
        out.append([f'label:{label}'] + [names[j] for j, on in enumerate(row) if on])
    return out


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times) * 1e3, q))


def run_size(n: int, args: argparse.Namespace) -> dict:
    dim = args.dim
    model = latent_model(args.seed, args.clusters, dim, args.latent_dim)
    gc.collect()
    rss0 = rss_bytes()
    index = EngramIndex(dim, **({'exact_threshold': args.exact_threshold}
                                if args.exact_threshold is not None else {}),
                        **({'ef_search': args.ef_search} if args.ef_search is not None else {}),
                        **({'max_ef': args.max_ef} if args.max_ef is not None else {}),
                        **({'max_exact': args.max_exact} if args.max_exact is not None else {}))
    faiss.omp_set_num_threads(args.build_threads)
    member_parts = []
    t0 = time.perf_counter()
    for ch in chunks(n, args.seed, model, args):
        labels = np.arange(ch['ids'].shape[0]) % 50
        index.add_batch(ch['ids'], ch['vectors'], kinds=ch['kinds'], positions=ch['positions'],
                        first_seen=ch['first_seen'], last_seen=ch['last_seen'],
                        tags=tags_for(ch['member'], labels))
        member_parts.append(np.packbits(ch['member'], axis=1))
        del ch
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    gc.collect()
    rss1 = rss_bytes()
    member = np.unpackbits(np.concatenate(member_parts), axis=1)[:, :len(SELECTIVITIES)]
    del member_parts
    _LOG.info('n=%d built in %.1f s, RSS/engram %.0f B, memory_bytes/engram %.0f B', n,
              build_s, (rss1 - rss0) / n, index.memory_bytes() / n)

    qrng = np.random.default_rng([args.seed, 999_999])
    queries = clustered(qrng, model, args.queries, args.spread, args.noise)

    # exact float32 baseline and ground truth (allocated after the RSS measurement)
    flat = faiss.IndexFlatIP(dim)
    for ch in chunks(n, args.seed, model, args):
        flat.add(ch['vectors'])
        del ch

    rows = []
    filters: list[tuple[str, float, str | None]] = [('none', 1.0, None)]
    filters += [(tag, p, tag) for tag, p in SELECTIVITIES]
    for j, (name, p, tag) in enumerate(filters):
        if tag is None:
            mask = None
            matching = n
        else:
            mask = member[:, j - 1].astype(bool)
            matching = int(mask.sum())
        if matching == 0:
            rows.append({'filter': name, 'selectivity': p, 'matching': 0})
            continue
        bits = None if mask is None else np.packbits(mask, bitorder='little')
        params = None
        if bits is not None:
            sel = faiss.IDSelectorBitmap(bits.shape[0], faiss.swig_ptr(bits))
            params = faiss.SearchParameters(sel=sel)
        lat, cpu, base_lat, base_cpu, recalls, n_cand = [], [], [], [], [], []
        for qi in range(args.queries):
            q = queries[qi]
            c = time.thread_time()
            t = time.perf_counter()
            cand = index.filter(tags_all=[tag]) if tag is not None else None
            slots, _ = index.dense_topk(q, args.k, cand)
            lat.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            n_cand.append(n if cand is None else cand.shape[0])
            c = time.thread_time()
            t = time.perf_counter()
            _, gt = flat.search(q[None, :], args.k, params=params)
            base_lat.append(time.perf_counter() - t)
            base_cpu.append(time.thread_time() - c)
            gt = gt[0][gt[0] >= 0]
            recalls.append(len(np.intersect1d(gt, slots)) / max(1, gt.shape[0]))
        if n_cand[0] != matching:
            raise RuntimeError(f'filter returned {n_cand[0]} candidates, expected {matching}')
        row = {
            'filter': name, 'selectivity': p, 'matching': matching,
            'p50_ms': percentile_ms(lat, 50), 'p99_ms': percentile_ms(lat, 99),
            'cpu_p50_ms': percentile_ms(cpu, 50), 'cpu_p99_ms': percentile_ms(cpu, 99),
            'recall_at_10': float(np.mean(recalls)), 'min_recall_at_10': float(np.min(recalls)),
            'flat_p50_ms': percentile_ms(base_lat, 50), 'flat_p99_ms': percentile_ms(base_lat, 99),
            'flat_cpu_p50_ms': percentile_ms(base_cpu, 50),
            'flat_cpu_p99_ms': percentile_ms(base_cpu, 99),
            'path': 'exact' if index._use_exact(matching) else 'hnsw',
        }
        rows.append(row)
        _LOG.info('n=%d %s: %s', n, name, row)
    result = {
        'n': n, 'dim': dim, 'build_s': build_s, 'build_threads': args.build_threads,
        'rss_bytes_per_engram': (rss1 - rss0) / n,
        'memory_bytes_per_engram': index.memory_bytes() / n,
        'exact_threshold': index.exact_threshold, 'ef_search': index.ef_search,
        'max_ef': index.max_ef, 'max_exact': index.max_exact,
        'filtered_ef': index.filtered_ef, 'hnsw_m': index.hnsw_m,
        'ef_construction': index.ef_construction, 'rows': rows,
    }
    del flat, index
    gc.collect()
    return result


def table(results: list[dict]) -> str:
    lines = ['| N | filter | matching | path | CPU p50 ms | CPU p99 ms | wall p50 ms '
             '| wall p99 ms | recall@10 | flat CPU p50 ms | flat CPU p99 ms |',
             '|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|']
    for res in results:
        for r in res['rows']:
            if not r['matching']:
                lines.append(f'| {res["n"]} | {r["filter"]} | 0 |' + ' - |' * 8)
                continue
            lines.append(
                f'| {res["n"]} | {r["filter"]} | {r["matching"]} | {r["path"]} | '
                f'{r["cpu_p50_ms"]:.2f} | {r["cpu_p99_ms"]:.2f} | {r["p50_ms"]:.2f} | '
                f'{r["p99_ms"]:.2f} | {r["recall_at_10"]:.3f} | {r["flat_cpu_p50_ms"]:.2f} | '
                f'{r["flat_cpu_p99_ms"]:.2f} |')
    lines += ['', '| N | build s (threads) | RSS B/engram | memory_bytes B/engram |',
              '|---:|---:|---:|---:|']
    for res in results:
        lines.append(f'| {res["n"]} | {res["build_s"]:.1f} ({res["build_threads"]}) | '
                     f'{res["rss_bytes_per_engram"]:.0f} | '
                     f'{res["memory_bytes_per_engram"]:.0f} |')
    return '\n'.join(lines)


def cpu_model() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    for line in out.splitlines():
        if line.startswith('Model name'):
            return line.split(':', 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000])
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument('--queries', type=int, default=200)
    parser.add_argument('--k', type=int, default=10)
    parser.add_argument('--clusters', type=int, default=1000)
    parser.add_argument('--latent-dim', type=int, default=32,
                        help='intrinsic dimension of the synthetic embeddings')
    parser.add_argument('--spread', type=float, default=0.7,
                        help='std of a cluster in the latent space (centres have std 1)')
    parser.add_argument('--noise', type=float, default=0.5,
                        help='std of the isotropic noise added after embedding')
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--build-threads', type=int, default=1,
                        help='faiss threads while building (queries always use 1)')
    parser.add_argument('--exact-threshold', type=int, default=None)
    parser.add_argument('--ef-search', type=int, default=None)
    parser.add_argument('--max-ef', type=int, default=None)
    parser.add_argument('--max-exact', type=int, default=None)
    parser.add_argument('--out', type=Path, default=None, help='JSON output file')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    faiss.omp_set_num_threads(1)
    results = [run_size(n, args) for n in args.sizes]
    report = {'machine': {'cpu': cpu_model(), 'cores': os.cpu_count()},
              'command': ' '.join(sys.argv), 'faiss': faiss.__version__,
              'numpy': np.__version__, 'queries': args.queries, 'k': args.k,
              'results': results}
    sys.stdout.write(table(results) + '\n')
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
