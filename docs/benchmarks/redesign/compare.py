"""Median (min-max) of each figure over the runs in runs/, d893798 (base) beside the redesign
(main), and the ratio of the medians: ``python compare.py [ROUNDS]``, e.g. ``1,2,3``."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RUNS = Path(__file__).resolve().parent / 'runs'


def load(kind: str, side: str, rounds: list[str] | None) -> list[dict]:
    out = []
    for f in sorted(RUNS.glob(f'{kind}_{side}_*.json')):
        if rounds is None or f.stem.rsplit('_', 1)[1] in rounds:
            out.append(json.loads(f.read_text()))
    return out


def row(name: str, base: list[float], new: list[float]) -> str:
    mb, mn = statistics.median(base), statistics.median(new)
    return (f'| {name} | {mb:.3g} ({min(base):.3g}-{max(base):.3g}) | '
            f'{mn:.3g} ({min(new):.3g}-{max(new):.3g}) | {mn / mb:.2f} |')


def index_rows(base: list[dict], new: list[dict]) -> list[str]:
    if not base or not new:
        return []
    out = []
    for i, r in enumerate(base[0]['results'][0]['rows']):
        for key, what in (('cpu_p50_ms', 'CPU p50 [ms]'), ('cpu_p99_ms', 'CPU p99 [ms]'),
                          ('recall_at_10', 'recall@10')):
            values = [[run['results'][0]['rows'][i][key] for run in side] for side in (base, new)]
            out.append(row(f'index filter + top-10, 100k, {r["filter"]}: {what}', *values))
    out.append(row('index build 100k [s]', [r['results'][0]['build_s'] for r in base],
                   [r['results'][0]['build_s'] for r in new]))
    return out


def service_rows(base: list[dict], new: list[dict]) -> list[str]:
    if not base or not new:
        return []
    out = []
    for query in base[0]['results']:
        for key in ('p50_ms', 'p99_ms'):
            values = [[run['results'][query][key] for run in side] for side in (base, new)]
            out.append(row(f'Recall over DDS, {query}: {key[:3]} [ms]', *values))
    return out


def consolidation_rows(base: list[dict], new: list[dict]) -> list[str]:
    if not base or not new:
        return []
    out = []
    for i, t in enumerate(base[0]['throughput']):
        values = [[run['throughput'][i]['engrams_per_cpu_s'] for run in side]
                  for side in (base, new)]
        out.append(row(f'consolidation, {t["engrams"] // 1000}k engrams, {t["storage"]}: '
                       'engrams per CPU s', *values))
    return out


def main() -> None:
    rounds = sys.argv[1].split(',') if len(sys.argv) > 1 else None
    print('| measure | d893798: median (min-max) | redesign: median (min-max) | new/old |')
    print('|---|---:|---:|---:|')
    for kind, rows in (('index', index_rows), ('service', service_rows),
                       ('consol', consolidation_rows)):
        for line in rows(load(kind, 'base', rounds), load(kind, 'main', rounds)):
            print(line)


if __name__ == '__main__':
    main()
